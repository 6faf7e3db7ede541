//! `tiller app-server` at 1, 10 and 100 concurrent threads: how fast an
//! interrupt ends a turn and how fast a steer reaches the model while the
//! other threads stream, and what streaming threads cost in memory and CPU.
//!
//! `cargo bench -p tiller-cli --bench app_server` (`TILLER_BENCH_QUICK=1` for
//! a few samples of each). The release binary runs as a child speaking
//! JSON-RPC on stdin/stdout. Each server has two mock models in this process,
//! each on its own one-thread runtime: `mock`, which serves the measured
//! thread, and `load`, which serves the others; `$TILLER_HOME/config.toml`
//! names both, and the load threads pick theirs with
//! `thread/start { modelProvider }`.
//!
//! At each level (1, 10, 100 threads) one server runs N − 1 load threads,
//! each streaming text turn after turn ([`server::LOAD_DELTA_MS`] apart, a fast real
//! model's pace), and one measured thread (a fresh one every
//! [`TURNS_PER_THREAD`] turns):
//!
//! - interrupt: a turn runs `sleep` (its pid written to a file first); the time
//!   is from just before `turn/interrupt` is written to the moment
//!   `turn/completed` is read, and the `sleep` must already be gone then;
//! - reference: a `thread/queue/list` round trip (no work), the floor of pipes
//!   and scheduling under both figures;
//! - steer: while text streams, the time from just before `turn/steer` is
//!   written to the mock's recorded arrival `Instant` of the next request.
//!
//! Then over WebSocket (`--listen ws://127.0.0.1:0`), two connections
//! subscribed to the measured thread: interrupt and steer as above, read on
//! both connections, and the memory of an idle connection ([`ws`]).
//!
//! Then, in a fresh server per run, N threads stream 1,000 deltas each at
//! once: the server's peak RSS (`VmHWM`) over its idle baseline, per thread,
//! and its CPU time (`utime + stime`) per 1,000 deltas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::json;
use tiller_bench_support::{Figure, Report, Unit, runtime, samples};
use tiller_mock_model::{Item, Step};
use tiller_test_support::{pid_alive, read_pids_when_ready};

mod server;
mod ws;

use server::{DEADLINE, Server, cpu_time, status_kib, threads_text};

/// How many threads run in the server at once, the measured one included.
const LEVELS: [usize; 3] = [1, 10, 100];
/// A fresh measured thread every this many turns, so its history stays short.
const TURNS_PER_THREAD: usize = 20;
/// The streaming runs: deltas per thread, this far apart.
const DELTAS_PER_THREAD: usize = 1000;
const DELTA_MS: u64 = 2;

fn main() {
    let runtime = runtime("bench", 2);
    let mut report = Report::start("app_server");
    runtime.block_on(bench(&mut report));
    drop(runtime);
    report.finish();
}

async fn bench(report: &mut Report) {
    for threads in LEVELS {
        latency_at(threads, report).await;
    }
    websocket(report).await;
    let runs = samples(3, 1);
    for threads in LEVELS {
        let mut rss = Vec::with_capacity(runs);
        let mut cpu = Vec::with_capacity(runs);
        for _ in 0..runs {
            let run = streaming_threads(threads).await;
            report.note(format!(
                "{} x {DELTAS_PER_THREAD} deltas: VmHWM {} KiB idle -> {} KiB, {:.3} s server CPU, {:.2?} wall",
                threads_text(threads),
                run.idle_hwm_kib,
                run.busy_hwm_kib,
                run.cpu.as_secs_f64(),
                run.wall
            ));
            rss.push(run.per_thread_kib(threads));
            cpu.push(run.cpu_per_thousand_ms());
        }
        let figure = Figure::new(
            format!("app-server/rss/{threads}"),
            format!(
                "peak RSS per thread (VmHWM over idle ÷ threads), {}",
                streaming(threads)
            ),
        );
        // The target is the cost of a thread among many (issue 4 sets it at
        // 100); with one or ten, the server's one-time cost of its first
        // streams (worker stacks, connection pool, buffers) is shared by few.
        let figure = if threads == 100 {
            // 1 MB, decimal.
            figure.at_most(1e6 / 1024.0, "≤ 1 MB (at 100)")
        } else {
            figure
        };
        report.values(figure, Unit::KiB, &rss);
        report.values(
            Figure::new(
                format!("app-server/cpu/{threads}"),
                format!("server CPU per 1,000 deltas, {}", streaming(threads)),
            ),
            Unit::Millis,
            &cpu,
        );
    }
}

/// Over WebSocket, two connections subscribed to the measured thread.
async fn websocket(report: &mut Report) {
    let server = ws::WsServer::start().await;
    let interrupt = ws::interrupt(&server).await;
    report.durations(
        Figure::new(
            "app-server/ws/interrupt",
            "over ws, 2 connections subscribed: `turn/interrupt` → `turn/completed` read on both, sleep dead",
        )
        .at_most(5.0, "≤ 5 ms p99"),
        &interrupt,
    );
    let steer = ws::steer(&server).await;
    report.durations(
        Figure::new(
            "app-server/ws/steer",
            "over ws, 2 connections subscribed: `turn/steer` from the second → next model request",
        )
        .at_most(5.0, "≤ 5 ms p99"),
        &steer,
    );
    let kib = ws::idle_connection_kib(&server).await;
    report.values(
        Figure::new(
            "app-server/ws/idle-connection",
            format!(
                "memory per idle WebSocket connection (VmRSS over {} initialized connections)",
                ws::IDLE_CONNECTIONS
            ),
        ),
        Unit::KiB,
        &[kib],
    );
    server.stop().await;
}

fn streaming(threads: usize) -> String {
    if threads == 1 {
        "1 thread streaming".to_string()
    } else {
        format!("{threads} threads streaming at once")
    }
}

fn concurrent(threads: usize) -> String {
    match threads {
        1 => "1 thread".to_string(),
        n => format!("{n} threads ({} others streaming)", n - 1),
    }
}

/// The latency figures with `threads − 1` load threads streaming.
async fn latency_at(threads: usize, report: &mut Report) {
    let mut server = Server::start().await;
    server.stream_in_background(threads - 1).await;

    let window = server.window();
    let interrupt = interrupt_to_completed(&mut server).await;
    server.note_load(report, "interrupt", &window);
    report.durations(
        Figure::new(
            format!("app-server/interrupt/{threads}"),
            format!(
                "`turn/interrupt` → `turn/completed`, sleep dead, {}",
                concurrent(threads)
            ),
        )
        .at_most(10.0, "≤ 10 ms p99"),
        &interrupt,
    );

    let floor = round_trip(&mut server).await;
    report.durations(
        Figure::detail(
            format!("app-server/round-trip/{threads}"),
            format!(
                "app-server reference: `thread/queue/list` round trip (no work), {}",
                concurrent(threads)
            ),
        ),
        &floor,
    );

    let window = server.window();
    let steer = steer_to_next_request(&mut server).await;
    server.note_load(report, "steer", &window);
    report.durations(
        Figure::new(
            format!("app-server/steer/{threads}"),
            format!(
                "`turn/steer` → next model request, while streaming, {}",
                concurrent(threads)
            ),
        )
        .at_most(10.0, "≤ 10 ms p99"),
        &steer,
    );
    server.close().await;
}

async fn interrupt_to_completed(server: &mut Server) -> Vec<Duration> {
    let runs = samples(200, 20);
    let mock = server.mock();
    let mut samples = Vec::with_capacity(runs);
    let mut thread = String::new();
    // One untimed run first: page cache, the shell's first start.
    for run in 0..=runs {
        if run % TURNS_PER_THREAD == 0 {
            thread = server.thread_start().await;
        }
        let pidfile = server.work_dir().join(format!("sleep-{run}.pid"));
        let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
        mock.push_step(Step::function_call(
            format!("call_{run}"),
            "shell",
            json!({"command": ["bash", "-lc", script]}),
        ));
        let turn = server.turn_start(&thread, "sleep").await;
        let pid = read_pids_when_ready(&pidfile, 1, DEADLINE).await[0];
        let asked = Instant::now();
        let id = server
            .send(
                "turn/interrupt",
                json!({"threadId": thread, "turnId": turn}),
            )
            .await;
        // The reference order is response, then `turn/completed`.
        let mut answered = false;
        let completed = loop {
            let line = server.next().await;
            let message = &line.message;
            answered |= message["id"].as_u64() == Some(id) && message.get("method").is_none();
            if message["method"] == "turn/completed" && message["params"]["turn"]["id"] == turn {
                break line;
            }
        };
        assert!(
            !pid_alive(pid),
            "run {run}: the sleep ({pid}) is still alive at turn/completed"
        );
        assert_eq!(completed.message["params"]["turn"]["status"], "interrupted");
        if !answered {
            server.response(id).await;
        }
        if run > 0 {
            samples.push(completed.at - asked);
        }
    }
    samples
}

/// The floor under both figures: a request that does no work, answered by
/// the thread's driver, with the same pipes and the same scheduling.
async fn round_trip(server: &mut Server) -> Vec<Duration> {
    let runs = samples(100, 10);
    let thread = server.thread_start().await;
    let mut samples = Vec::with_capacity(runs);
    for run in 0..=runs {
        let asked = Instant::now();
        let id = server
            .send("thread/queue/list", json!({"threadId": thread}))
            .await;
        let line = server
            .until(|m| m["id"].as_u64() == Some(id) && m.get("method").is_none())
            .await;
        if run > 0 {
            samples.push(line.at - asked);
        }
        // Spaced like the interrupts, so the server is otherwise idle when asked.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    samples
}

async fn steer_to_next_request(server: &mut Server) -> Vec<Duration> {
    let runs = samples(200, 20);
    let mock = server.mock();
    // Counted here: `requests()` copies every request the mock kept.
    let mut before = mock.requests().len();
    let mut samples = Vec::with_capacity(runs);
    let mut thread = String::new();
    for run in 0..=runs {
        if run % TURNS_PER_THREAD == 0 {
            thread = server.thread_start().await;
        }
        // A long stream (2 s) that the steer cuts, then the answer to the steer.
        let words: Vec<String> = (0..400).map(|i| format!("w{i} ")).collect();
        mock.push_step(Step::response(vec![Item::text_deltas(words)]).with_delta_delay(5));
        mock.push_step(Step::text("steered"));
        let turn = server.turn_start(&thread, "stream").await;
        server
            .until(|m| m["method"] == "item/agentMessage/delta")
            .await;
        let asked = Instant::now();
        let id = server
            .send(
                "turn/steer",
                json!({"threadId": thread, "expectedTurnId": turn,
                       "input": [{"type": "text", "text": "change of plan"}]}),
            )
            .await;
        let requests = mock.wait_for_requests(before + 2, DEADLINE).await.unwrap();
        let next = &requests[before + 1];
        assert!(next.rejected.is_none(), "{:?}", next.rejected);
        server.response(id).await;
        let completed = server.completed(&turn).await;
        assert_eq!(completed.message["params"]["turn"]["status"], "completed");
        if run > 0 {
            samples.push(next.arrived - asked);
        }
        before += 2;
    }
    samples
}

struct StreamingRun {
    idle_hwm_kib: u64,
    busy_hwm_kib: u64,
    cpu: Duration,
    deltas: usize,
    wall: Duration,
}

impl StreamingRun {
    fn per_thread_kib(&self, threads: usize) -> f64 {
        self.busy_hwm_kib.saturating_sub(self.idle_hwm_kib) as f64 / threads as f64
    }

    fn cpu_per_thousand_ms(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e3 / self.deltas as f64 * 1000.0
    }
}

/// `threads` threads in a fresh server, each streaming [`DELTAS_PER_THREAD`]
/// deltas [`DELTA_MS`] apart, all at once.
async fn streaming_threads(threads: usize) -> StreamingRun {
    let mut server = Server::start().await;
    let pid = server.pid();
    let idle_hwm_kib = status_kib(pid, "VmHWM");
    let mock = server.mock();
    for _ in 0..threads {
        let words: Vec<String> = (0..DELTAS_PER_THREAD).map(|i| format!("w{i} ")).collect();
        mock.push_step(Step::response(vec![Item::text_deltas(words)]).with_delta_delay(DELTA_MS));
    }
    let mut ids = Vec::with_capacity(threads);
    for _ in 0..threads {
        ids.push(server.thread_start().await);
    }
    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    for thread in &ids {
        server
            .send(
                "turn/start",
                json!({"threadId": thread, "input": [{"type": "text", "text": "stream"}]}),
            )
            .await;
    }
    let mut completed = 0;
    let mut deltas = 0;
    while completed < threads {
        let line = server.next().await;
        match line.message["method"].as_str() {
            Some("item/agentMessage/delta") => deltas += 1,
            Some("turn/completed") => {
                assert_eq!(line.message["params"]["turn"]["status"], "completed");
                completed += 1;
            }
            _ => {}
        }
    }
    let wall = started.elapsed();
    let cpu = cpu_time(pid) - cpu_before;
    let busy_hwm_kib = status_kib(pid, "VmHWM");
    assert_eq!(deltas, threads * DELTAS_PER_THREAD, "every delta arrived");
    server.close().await;
    StreamingRun {
        idle_hwm_kib,
        busy_hwm_kib,
        cpu,
        deltas,
        wall,
    }
}
