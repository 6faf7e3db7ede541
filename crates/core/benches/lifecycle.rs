//! Lifecycle benchmarks of the engine: interrupt latency with running tool
//! processes, the CPU cost of consuming a long response, and steer latency.
//!
//! `cargo bench -p tiller-core --bench lifecycle [-- FILTER...]` runs the
//! benches whose id is a filter or starts with a filter and a `-`
//! (`interrupt`, `interrupt-sleep`, `interrupt-bg1`, `interrupt-bg10`,
//! `interrupt-bg100`, `stream`, `stream-2000`, `stream-20000`,
//! `stream-200000`, `stream-chat` (20,000 deltas over Chat Completions),
//! `steer`, `compaction`), or all of them. Results go to stdout as a table
//! (and to the summary file, see `tiller-bench-support`); `BENCHMARKS.md`
//! explains each figure and records the last run. `TILLER_BENCH_QUICK=1` runs
//! a few samples of each.
//!
//! The mock model runs on its own single-threaded tokio runtime, as a remote
//! model would run elsewhere: its CPU time can then be read on its one thread
//! and subtracted from the process's, and it does not take the engine's worker
//! threads. The engine runs on a two-worker runtime like `tiller exec`'s on this
//! machine; the bench itself (the "front end" that submits ops and reads
//! events) runs on the main thread.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::signal::{Signal, killpg};
use nix::sys::time::TimeValLike as _;
use nix::unistd::Pid;
use serde_json::json;
use tempfile::TempDir;
use tiller_bench_support::{Figure, Report, Stats, Unit, runtime, samples, thousands};
use tiller_core::client::sse::SseDecoder;
use tiller_core::config::{ApprovalPolicy, Config, ConfigOverrides, ProviderConfig, WireApi};
use tiller_core::process_tree::{
    DirectChild, ProcessTree, ToolMarker, kill_tree, spawn_registered,
};
use tiller_core::{EventStream, SessionHandle, SessionOptions, SessionSource, spawn_session};
use tiller_mock_model::{Item, MockModel, Script, Step};
use tiller_protocol::{Event, EventMsg, Op, Reply, TurnItemKind, UserInput};
use tiller_test_support::{input_summary, pid_alive, read_pids_when_ready};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::runtime::Handle;

/// The longest anything is waited for before the bench gives up.
const DEADLINE: Duration = Duration::from_secs(30);

fn main() {
    let filter = Filter(
        std::env::args()
            .skip(1)
            .filter(|arg| !arg.starts_with("--"))
            .collect(),
    );

    let mock_runtime = runtime("mock-model", 1);
    let engine_runtime = runtime("engine", 2);
    let mock_handle = mock_runtime.handle().clone();
    let mut report = Report::start("lifecycle");
    engine_runtime.block_on(async {
        tiller_core::process_tree::become_subreaper().unwrap();
        let bench = Bench::start(mock_handle).await;
        interrupt_benches(&bench, &filter, &mut report).await;
        stream_cpu_benches(&bench, &filter, &mut report).await;
        if filter.wants("stream-chat") {
            chat_stream_bench(&bench, &mut report).await;
        }
        if filter.wants("steer") {
            steer_bench(&bench, &mut report).await;
        }
        if filter.wants("compaction") {
            compaction_bench(&bench, &mut report).await;
        }
    });
    drop(engine_runtime);
    drop(mock_runtime);
    report.finish();
}

fn processes(n: usize) -> String {
    if n == 1 {
        "1 process".to_string()
    } else {
        format!("{n} processes")
    }
}

/// The interrupt target holds at every size: it is a latency, not a rate.
fn interrupt_target(figure: Figure) -> Figure {
    figure.at_most(10.0, "≤ 10 ms p99")
}

// ---------------------------------------------------------------------------
// 1. Interrupt -> TurnAborted with running tool processes.

/// What the tool call of an interrupt iteration runs.
#[derive(Debug, Clone, Copy)]
enum ToolLoad {
    /// `exec sleep 60`: the tool's process is the `sleep` itself.
    Sleep,
    /// A bash script that starts this many background `sleep 60` and waits.
    Background(usize),
}

impl ToolLoad {
    fn name(self) -> String {
        match self {
            ToolLoad::Sleep => "interrupt → `TurnAborted`, 1 process (`exec sleep 60`)".to_string(),
            ToolLoad::Background(n) => format!(
                "interrupt → `TurnAborted`, {} processes (bash + {n} background `sleep`)",
                n + 1
            ),
        }
    }

    /// The script, writing every pid it starts to `pidfile`.
    fn script(self, pidfile: &Path) -> String {
        let file = pidfile.display();
        match self {
            ToolLoad::Sleep => format!("echo $$ > '{file}'; exec sleep 60"),
            ToolLoad::Background(n) => format!(
                "echo $$ >> '{file}'; for i in $(seq {n}); do sleep 60 & echo $! >> '{file}'; done; wait"
            ),
        }
    }

    /// How many pids the script writes.
    fn processes(self) -> usize {
        match self {
            ToolLoad::Sleep => 1,
            ToolLoad::Background(n) => n + 1,
        }
    }
}

async fn interrupt_benches(bench: &Bench, filter: &Filter, report: &mut Report) {
    for (id, load, iterations) in [
        ("interrupt-sleep", ToolLoad::Sleep, samples(200, 20)),
        ("interrupt-bg1", ToolLoad::Background(1), samples(200, 20)),
        ("interrupt-bg10", ToolLoad::Background(10), samples(200, 20)),
        (
            "interrupt-bg100",
            ToolLoad::Background(100),
            samples(100, 8),
        ),
    ] {
        if !filter.wants(id) {
            continue;
        }
        let name = load.name();
        eprint!("{name}: ");
        let mut to_aborted = Vec::with_capacity(iterations);
        let mut to_exec_end = Vec::with_capacity(iterations);
        for i in 0..iterations {
            let sample = interrupt_once(bench, load, i).await;
            assert_eq!(
                sample.alive, 0,
                "{name}: {} tool process(es) still alive when TurnAborted arrived",
                sample.alive
            );
            assert_eq!(
                sample.unreaped, 0,
                "{name}: {} tool process(es) dead but not reaped when TurnAborted arrived",
                sample.unreaped
            );
            to_aborted.push(sample.to_aborted);
            to_exec_end.push(sample.to_exec_end);
            progress(i);
        }
        eprintln!();
        let n = load.processes();
        report.durations(
            interrupt_target(Figure::new(format!("interrupt/{n}"), name)),
            &to_aborted,
        );
        report.durations(
            Figure::detail(
                format!("interrupt/exec-end/{n}"),
                format!("interrupt → command item completed, {}", processes(n)),
            ),
            &to_exec_end,
        );
        if let ToolLoad::Background(_) = load {
            kill_breakdown(bench, load, (iterations / 4).max(2), report).await;
        }
    }
}

/// The same process tree without the engine: `process_tree::kill_tree` called
/// directly, and the kernel's floor (`SIGTERM` to the group, then polling until
/// every pid is dead, without reaping).
async fn kill_breakdown(bench: &Bench, load: ToolLoad, iterations: usize, report: &mut Report) {
    let mut alone = Vec::with_capacity(iterations);
    let mut floor = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let (mut child, registration, tree, pids) = spawn_tool(bench, load, i).await;
        let started = Instant::now();
        let report = kill_tree(&tree, Some(&mut child)).await;
        alone.push(started.elapsed());
        assert!(report.complete, "kill_tree gave up");
        assert!(pids.iter().all(|&pid| !pid_alive(pid)));
        drop(registration);

        let (mut child, registration, tree, pids) = spawn_tool(bench, load, i).await;
        let started = Instant::now();
        killpg(
            Pid::from_raw(i32::try_from(tree.pgid()).unwrap()),
            Signal::SIGTERM,
        )
        .unwrap();
        while pids.iter().any(|&pid| pid_alive(pid)) {
            std::thread::sleep(Duration::from_micros(50));
        }
        floor.push(started.elapsed());
        kill_tree(&tree, Some(&mut child)).await;
        drop(registration);
    }
    let n = load.processes();
    report.durations(
        Figure::detail(
            format!("interrupt/kill-tree/{n}"),
            format!("`process_tree::kill_tree` alone, {}", processes(n)),
        ),
        &alone,
    );
    report.durations(
        Figure::detail(
            format!("interrupt/kernel-floor/{n}"),
            format!("kernel floor: `SIGTERM` to the group until all {n} are dead"),
        ),
        &floor,
    );
}

/// Start the load's script as a tool would be started, outside any session.
async fn spawn_tool(
    bench: &Bench,
    load: ToolLoad,
    i: usize,
) -> (tokio::process::Child, DirectChild, ProcessTree, Vec<i32>) {
    let pidfile = bench
        .work
        .path()
        .join(format!("direct-pids-{}-{i}", load.processes()));
    let _ = std::fs::remove_file(&pidfile);
    let marker = ToolMarker::new();
    let (name, value) = marker.env();
    let mut command = tokio::process::Command::new("bash");
    command
        .arg("-c")
        .arg(load.script(&pidfile))
        .env(name, value)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let (child, registration) = spawn_registered(&mut command).unwrap();
    let tree = ProcessTree::new(child.id().unwrap(), marker).unwrap();
    let pids = read_pids_when_ready(&pidfile, load.processes(), DEADLINE).await;
    let _ = std::fs::remove_file(&pidfile);
    (child, registration, tree, pids)
}

struct InterruptSample {
    to_aborted: Duration,
    to_exec_end: Duration,
    /// Tool processes alive (not zombies) when `TurnAborted` arrived.
    alive: usize,
    /// Tool processes still in `/proc` (zombies) when `TurnAborted` arrived.
    unreaped: usize,
}

async fn interrupt_once(bench: &Bench, load: ToolLoad, i: usize) -> InterruptSample {
    let pidfile = bench
        .work
        .path()
        .join(format!("pids-{}-{i}", load.processes()));
    bench.mock.push_step(Step::function_call(
        format!("call_{i}"),
        "shell",
        json!({
            "command": ["bash", "-c", load.script(&pidfile)],
            "timeout_ms": 600_000,
        }),
    ));
    let (session, mut events) = bench.session();
    start_turn(&session, "run the tool").await;
    let pids = read_pids_when_ready(&pidfile, load.processes(), DEADLINE).await;
    assert!(
        pids.iter().all(|&pid| pid_alive(pid)),
        "a tool process died before the interrupt"
    );

    let started = Instant::now();
    let (reply, (aborted_at, exec_end_at, alive, unreaped)) =
        tokio::join!(session.submit(Op::Interrupt), async {
            let mut exec_end_at = None;
            loop {
                let event = next_event(&mut events).await;
                match event.msg {
                    EventMsg::ItemCompleted { item }
                        if matches!(item.kind, TurnItemKind::CommandExecution { .. }) =>
                    {
                        exec_end_at = Some(Instant::now())
                    }
                    EventMsg::TurnAborted { .. } => {
                        let at = Instant::now();
                        let alive = pids.iter().filter(|&&pid| pid_alive(pid)).count();
                        let unreaped = pids
                            .iter()
                            .filter(|&&pid| Path::new(&format!("/proc/{pid}")).exists())
                            .count();
                        return (at, exec_end_at, alive, unreaped);
                    }
                    msg if msg.is_terminal() => panic!("the turn ended with {msg:?}"),
                    _ => {}
                }
            }
        });
    assert_eq!(reply, Ok(Reply::Done));
    shut_down(session, events).await;
    let _ = std::fs::remove_file(&pidfile);
    InterruptSample {
        to_aborted: aborted_at - started,
        to_exec_end: exec_end_at.expect("the command item completed before TurnAborted") - started,
        alive,
        unreaped,
    }
}

// ---------------------------------------------------------------------------
// 3. CPU time to consume one long response.

async fn stream_cpu_benches(bench: &Bench, filter: &Filter, report: &mut Report) {
    for (deltas, iterations) in [
        (2_000, samples(50, 5)),
        (20_000, samples(30, 5)),
        (200_000, samples(5, 2)),
    ] {
        if !filter.wants(&format!("stream-{deltas}")) {
            continue;
        }
        let shown = thousands(deltas);
        let name = format!("engine CPU to consume {shown} text deltas");
        eprint!("{name}: ");
        let mut engine = Vec::with_capacity(iterations);
        let mut mock = Vec::with_capacity(iterations);
        let mut wall = Vec::with_capacity(iterations);
        let mut raw = Vec::with_capacity(iterations);
        for i in 0..iterations {
            let sample = stream_cpu_once(bench, deltas).await;
            engine.push(sample.engine);
            mock.push(sample.mock);
            wall.push(sample.wall);
            raw.push(raw_read_cpu(bench, deltas).await);
            progress(i);
        }
        eprintln!();
        // The target is for 20,000 deltas; the other sizes show the growth.
        let figure = Figure::new(format!("stream/{deltas}"), name);
        report.durations(
            if deltas == 20_000 {
                figure.at_most(100.0, "≤ 100 ms p99")
            } else {
                figure
            },
            &engine,
        );
        report.durations(
            Figure::detail(
                format!("stream/raw-read/{deltas}"),
                format!("{shown} deltas: raw HTTP read of the same body (floor)"),
            ),
            &raw,
        );
        if deltas == 20_000 {
            sse_framing_rows(bench, deltas, samples(10, 2), report).await;
        }
        report.durations(
            Figure::detail(
                format!("stream/mock/{deltas}"),
                format!("{shown} deltas: mock model serving it (not in the figure)"),
            ),
            &mock,
        );
        report.durations(
            Figure::detail(
                format!("stream/wall/{deltas}"),
                format!("{shown} deltas: wall time of the turn"),
            ),
            &wall,
        );
    }
}

struct StreamSample {
    /// CPU of the whole process minus the mock model's thread.
    engine: Duration,
    /// CPU of the mock model's thread.
    mock: Duration,
    wall: Duration,
}

fn text_response(deltas: usize) -> Step {
    Step::response(vec![Item::text_deltas(std::iter::repeat_n("tok ", deltas))])
}

async fn stream_cpu_once(bench: &Bench, deltas: usize) -> StreamSample {
    stream_cpu_on(bench, deltas, WireApi::Responses).await
}

async fn stream_cpu_on(bench: &Bench, deltas: usize, wire: WireApi) -> StreamSample {
    bench.mock.push_step(text_response(deltas));
    let (session, mut events) = bench.session_with(wire, None, Vec::new());
    next_event(&mut events).await; // SessionConfigured

    let (seen, sample) = measured(bench, async {
        start_turn(&session, "say a lot").await;
        let mut seen = 0;
        loop {
            let event = next_event(&mut events).await;
            match event.msg {
                EventMsg::AgentMessageDelta { .. } => seen += 1,
                EventMsg::TurnCompleted { .. } => break seen,
                msg if msg.is_terminal() => panic!("the turn ended with {msg:?}"),
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(seen, deltas, "every delta reaches the client");
    shut_down(session, events).await;
    sample
}

/// Run `work`, and measure it: the engine's CPU (the process's, minus the
/// mock's thread), the mock's, and the wall time.
async fn measured<T>(
    bench: &Bench,
    work: impl std::future::Future<Output = T>,
) -> (T, StreamSample) {
    let mock_before = bench.mock_cpu().await;
    let process_before = process_cpu();
    let started = Instant::now();
    let out = work.await;
    let wall = started.elapsed();
    let process = process_cpu() - process_before;
    let mock = bench.mock_cpu().await - mock_before;
    let sample = StreamSample {
        engine: process.saturating_sub(mock),
        mock,
        wall,
    };
    (out, sample)
}

/// The floor: process CPU (minus the mock's thread) of a client that posts the
/// same request over a raw socket and reads the answer to the end without
/// looking at it.
async fn raw_read_cpu(bench: &Bench, deltas: usize) -> Duration {
    bench.mock.push_step(text_response(deltas));
    let body = json!({
        "model": "bench",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "say a lot"}]}],
        "stream": true,
    })
    .to_string();
    let addr = bench.mock.local_addr();
    let mock_before = bench.mock_cpu().await;
    let process_before = process_cpu();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/responses HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: text/event-stream\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        if total == 0 {
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "raw request refused");
        }
        total += n;
    }
    let process = process_cpu() - process_before;
    let mock = bench.mock_cpu().await - mock_before;
    assert!(total > deltas * 50, "the whole body arrived");
    process.saturating_sub(mock)
}

/// One part of the engine's time measured on its own: SSE framing
/// (`client::sse::SseDecoder`, as `ResponsesClient::stream` uses it) over the
/// exact chunks reqwest delivered for this response, and over the same bytes
/// cut into 4 KiB chunks. Both run on this thread, so their CPU time is this
/// thread's.
async fn sse_framing_rows(bench: &Bench, deltas: usize, iterations: usize, report: &mut Report) {
    use futures::StreamExt as _;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let mut as_received = Vec::with_capacity(iterations);
    let mut recut = Vec::with_capacity(iterations);
    let mut chunk_sizes = Vec::new();
    for _ in 0..iterations {
        bench.mock.push_step(text_response(deltas));
        let response = http
            .post(format!("{}/responses", bench.mock.base_url()))
            .json(&json!({
                "model": "bench",
                "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "say a lot"}]}],
                "stream": true,
            }))
            .send()
            .await
            .unwrap();
        let mut body = response.bytes_stream();
        let mut chunks = Vec::new();
        while let Some(chunk) = body.next().await {
            chunks.push(chunk.unwrap());
        }
        chunk_sizes.extend(chunks.iter().map(bytes::Bytes::len));
        let small: Vec<bytes::Bytes> = chunks
            .iter()
            .flat_map(|chunk| {
                (0..chunk.len())
                    .step_by(4096)
                    .map(|at| chunk.slice(at..chunk.len().min(at + 4096)))
            })
            .collect();
        for (chunks, out) in [(chunks, &mut as_received), (small, &mut recut)] {
            let before = cpu(UsageWho::RUSAGE_THREAD);
            let mut decoder = SseDecoder::new();
            let mut n = 0;
            for chunk in &chunks {
                decoder.push(chunk);
                while let Ok(Some(event)) = decoder.next_event() {
                    std::hint::black_box(event);
                    n += 1;
                }
            }
            out.push(cpu(UsageWho::RUSAGE_THREAD) - before);
            assert!(n > deltas, "every event was framed");
        }
    }
    let shown = thousands(deltas);
    let body_bytes = chunk_sizes.iter().sum::<usize>() / iterations;
    chunk_sizes.sort_unstable();
    let median_chunk = chunk_sizes.get(chunk_sizes.len() / 2).copied().unwrap_or(0);
    let max_chunk = chunk_sizes.last().copied().unwrap_or(0);
    report.durations(
        Figure::detail(
            format!("stream/sse-as-received/{deltas}"),
            format!(
                "{shown} deltas: SSE framing alone, {:.1} MiB body in the chunks reqwest delivered (median {:.0} KiB, max {:.0} KiB)",
                body_bytes as f64 / (1024.0 * 1024.0),
                median_chunk as f64 / 1024.0,
                max_chunk as f64 / 1024.0
            ),
        ),
        &as_received,
    );
    report.durations(
        Figure::detail(
            format!("stream/sse-4k/{deltas}"),
            format!("{shown} deltas: SSE framing alone, the same bytes in 4 KiB chunks"),
        ),
        &recut,
    );
}

/// The same 20,000 deltas over Chat Completions, alternating with Responses
/// so both see the same machine: the target is the Chat client within 10 %
/// of the Responses one.
async fn chat_stream_bench(bench: &Bench, report: &mut Report) {
    const DELTAS: usize = 20_000;
    let iterations = samples(30, 5);
    let name = "engine CPU to consume 20,000 text deltas, Chat Completions";
    eprint!("{name}: ");
    let mut chat = Vec::with_capacity(iterations);
    let mut responses = Vec::with_capacity(iterations);
    let mut chat_client = Vec::with_capacity(iterations);
    let mut responses_client = Vec::with_capacity(iterations);
    for i in 0..iterations {
        // Which goes first alternates: the first run of a pair pays for
        // what the previous pair left behind (freed memory, cold caches).
        if i % 2 == 0 {
            chat.push(stream_cpu_on(bench, DELTAS, WireApi::Chat).await.engine);
            responses.push(
                stream_cpu_on(bench, DELTAS, WireApi::Responses)
                    .await
                    .engine,
            );
        } else {
            responses.push(
                stream_cpu_on(bench, DELTAS, WireApi::Responses)
                    .await
                    .engine,
            );
            chat.push(stream_cpu_on(bench, DELTAS, WireApi::Chat).await.engine);
        }
        chat_client.push(client_cpu(bench, DELTAS, WireApi::Chat).await);
        responses_client.push(client_cpu(bench, DELTAS, WireApi::Responses).await);
        progress(i);
    }
    report.durations(
        Figure::detail(
            "stream-chat/client/20000",
            "20,000 deltas: the Chat client alone (request, stream read to the end)",
        ),
        &chat_client,
    );
    report.durations(
        Figure::detail(
            "stream-chat/client-responses/20000",
            "20,000 deltas: the Responses client alone, the same",
        ),
        &responses_client,
    );
    eprintln!();
    // Each Chat run is paired with the Responses run right after it, so the
    // two see the same machine; the target is on the median of the ratios.
    let ratios: Vec<f64> = chat
        .iter()
        .zip(&responses)
        .map(|(chat, responses)| chat.as_secs_f64() / responses.as_secs_f64())
        .collect();
    let overhead = (Stats::of(&ratios).median - 1.0) * 100.0;
    report.durations(
        Figure::new("stream-chat/20000", name).at_most(100.0, "≤ 100 ms p99"),
        &chat,
    );
    report.durations(
        Figure::detail(
            "stream-chat/responses/20000",
            "20,000 deltas: the same, Responses, interleaved with the Chat runs",
        ),
        &responses,
    );
    report.row(
        Figure::new(
            "stream-chat/vs-responses",
            format!(
                "Chat Completions CPU over Responses, 20,000 deltas (median of {iterations} paired ratios)"
            ),
        )
        .at_most(10.0, "≤ +10 %"),
        Unit::Percent,
        Stats::derived(iterations, overhead),
    );
}

/// CPU (process minus the mock's thread) of one model client reading a
/// 20,000-delta answer to the end, with no session around it.
async fn client_cpu(bench: &Bench, deltas: usize, wire: WireApi) -> Duration {
    use futures::StreamExt as _;

    bench.mock.push_step(text_response(deltas));
    let mut provider = ProviderConfig::for_local_server(bench.mock.base_url());
    provider.wire_api = wire;
    let client = tiller_core::client::client_for(&provider, None).unwrap();
    let request = tiller_core::client::ModelRequest {
        model: "bench".to_string(),
        instructions: "be brief".to_string(),
        input: vec![tiller_protocol::ResponseItem::user_text("say a lot")],
        tools: Vec::new(),
        reasoning: None,
    };
    let (seen, sample) = measured(bench, async {
        let mut stream = client.stream(&request).await.unwrap();
        let mut seen = 0;
        while let Some(event) = stream.next().await {
            if let tiller_core::client::ResponseEvent::OutputTextDelta(_) = event.unwrap() {
                seen += 1;
            }
        }
        seen
    })
    .await;
    assert_eq!(seen, deltas);
    sample.engine
}

// ---------------------------------------------------------------------------
// 5. Compaction: what one costs the engine, and what checking costs a turn.

/// A history of `pairs` user/assistant exchanges of about 1 KiB each.
fn long_history(pairs: usize) -> Vec<tiller_protocol::ResponseItem> {
    (0..pairs)
        .flat_map(|i| {
            [
                tiller_protocol::ResponseItem::user_text(format!(
                    "question {i}: {}",
                    "why ".repeat(120)
                )),
                tiller_protocol::ResponseItem::assistant_text(format!(
                    "answer {i}: {}",
                    "because ".repeat(60)
                )),
            ]
        })
        .collect()
}

/// One turn on a 1,000-exchange history (about 250,000 estimated tokens):
/// with no window (nothing to check), with a window it fits in (checked
/// before each request), and with a window it does not fit (compacted
/// first: one summary request, the history replaced, the rollout line).
async fn compaction_bench(bench: &Bench, report: &mut Report) {
    const PAIRS: usize = 1_000;
    let iterations = samples(30, 5);
    eprint!("compaction ({PAIRS} exchanges of history): ");
    let mut rows = [
        CompactionRow::new(
            None,
            "compaction/none",
            "a turn, no context window known (nothing checked)",
        ),
        CompactionRow::new(
            Some(10_000_000),
            "compaction/checked",
            "a turn, window known and not reached (checked before the request)",
        ),
        CompactionRow::new(
            Some(50_000),
            "compaction/compacted",
            "a turn that compacts first (summary request + history replaced)",
        ),
    ];
    for i in 0..iterations {
        for row in &mut rows {
            let compacts = row.window.is_some_and(|w| w < 1_000_000);
            if compacts {
                bench
                    .mock
                    .push_step(Step::text("SUMMARY: a long talk about why"));
            }
            bench.mock.push_step(Step::text("fine"));
            let (session, mut events) =
                bench.session_with(WireApi::Responses, row.window, long_history(PAIRS));
            next_event(&mut events).await; // SessionConfigured
            let (compacted, sample) = measured(bench, async {
                start_turn(&session, "go on").await;
                let mut compacted = false;
                loop {
                    match next_event(&mut events).await.msg {
                        EventMsg::ItemCompleted { item }
                            if matches!(item.kind, TurnItemKind::ContextCompaction { .. }) =>
                        {
                            compacted = true;
                        }
                        EventMsg::TurnCompleted { .. } => break compacted,
                        msg if msg.is_terminal() => panic!("the turn ended with {msg:?}"),
                        _ => {}
                    }
                }
            })
            .await;
            assert_eq!(
                compacted, compacts,
                "compacted exactly when the window is small"
            );
            row.cpu.push(sample.engine);
            row.wall.push(sample.wall);
            shut_down(session, events).await;
        }
        progress(i);
    }
    eprintln!();
    for row in &rows {
        report.durations(
            Figure::new(
                format!("{}/cpu", row.id),
                format!("engine CPU: {}", row.name),
            ),
            &row.cpu,
        );
        report.durations(
            Figure::detail(
                format!("{}/wall", row.id),
                format!("wall time: {}", row.name),
            ),
            &row.wall,
        );
    }
}

/// One case of the compaction bench and its samples.
struct CompactionRow {
    window: Option<u64>,
    id: &'static str,
    name: &'static str,
    cpu: Vec<Duration>,
    wall: Vec<Duration>,
}

impl CompactionRow {
    fn new(window: Option<u64>, id: &'static str, name: &'static str) -> CompactionRow {
        CompactionRow {
            window,
            id,
            name,
            cpu: Vec::new(),
            wall: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------
// 4. Steer -> next model request while streaming.

async fn steer_bench(bench: &Bench, report: &mut Report) {
    let iterations = samples(200, 20);
    let name = "`Steer` → next request at the model, while streaming";
    eprint!("{name}: ");
    let mut to_request = Vec::with_capacity(iterations);
    let mut to_reply = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let (request, reply) = steer_once(bench, i).await;
        to_request.push(request);
        to_reply.push(reply);
        progress(i);
    }
    eprintln!();
    report.durations(
        Figure::new("steer/engine", name).at_most(10.0, "≤ 10 ms p99"),
        &to_request,
    );
    report.durations(
        Figure::detail("steer/reply", "`Steer` submitted → its reply (engine)"),
        &to_reply,
    );
}

async fn steer_once(bench: &Bench, i: usize) -> (Duration, Duration) {
    // 2,000 deltas 5 ms apart: the stream would last 10 s if nothing cut it.
    bench
        .mock
        .push_step(text_response(2_000).with_delta_delay(5));
    bench.mock.push_step(Step::text("steered"));
    let before = bench.mock.requests().len();
    let (session, mut events) = bench.session();
    let turn_id = start_turn(&session, "write slowly").await;
    wait_for(&mut events, |msg| {
        matches!(msg, EventMsg::AgentMessageDelta { .. })
    })
    .await;

    let steer = format!("steer number {i}");
    let started = Instant::now();
    let reply = session
        .submit(Op::Steer {
            items: vec![UserInput::text(steer.clone())],
            expected_turn_id: turn_id.clone(),
            client_message_id: None,
        })
        .await;
    let replied = Instant::now();
    assert_eq!(reply, Ok(Reply::Steered { turn_id }));
    let requests = bench
        .mock
        .wait_for_requests(before + 2, DEADLINE)
        .await
        .unwrap();
    let next = &requests[before + 1];
    assert_eq!(next.rejected, None, "the mock accepted the request");
    let last = input_summary(next).pop();
    assert_eq!(
        last.as_deref(),
        Some(format!("user: {steer}").as_str()),
        "the steer text is the last input item"
    );
    wait_for(&mut events, |msg| {
        matches!(msg, EventMsg::TurnCompleted { .. })
    })
    .await;
    shut_down(session, events).await;
    (next.arrived - started, replied - started)
}

// ---------------------------------------------------------------------------
// The harness: a mock model on its own runtime, sessions wired to it.

/// The command-line filters: a bench runs when there are none, or when one
/// equals its id or a prefix of it up to a `-` (`stream` runs `stream-2000`).
struct Filter(Vec<String>);

impl Filter {
    fn wants(&self, id: &str) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|f| {
                id == f
                    || id
                        .strip_prefix(f.as_str())
                        .is_some_and(|rest| rest.starts_with('-'))
            })
    }
}

struct Bench {
    mock: MockModel,
    mock_runtime: Handle,
    home: TempDir,
    work: TempDir,
}

impl Bench {
    async fn start(mock_runtime: Handle) -> Bench {
        let mock = mock_runtime
            .spawn(MockModel::start(Script::new(Vec::new())))
            .await
            .unwrap()
            .unwrap();
        Bench {
            mock,
            mock_runtime,
            home: TempDir::new().unwrap(),
            work: TempDir::new().unwrap(),
        }
    }

    /// A new session talking to the mock, so every iteration starts from an
    /// empty history.
    fn session(&self) -> (SessionHandle, EventStream) {
        self.session_with(WireApi::Responses, None, Vec::new())
    }

    /// A new session on `wire`, with a context `window` if given, starting
    /// from `history`.
    fn session_with(
        &self,
        wire: WireApi,
        window: Option<u64>,
        history: Vec<tiller_protocol::ResponseItem>,
    ) -> (SessionHandle, EventStream) {
        let mut provider = ProviderConfig::for_local_server(self.mock.base_url());
        provider.wire_api = wire;
        let mut config = Config::load(
            self.home.path(),
            ConfigOverrides {
                approval_policy: Some(ApprovalPolicy::Never),
                cwd: Some(self.work.path().to_path_buf()),
                provider_override: Some(provider),
                ..ConfigOverrides::default()
            },
        )
        .unwrap()
        .config;
        config.context_window = window;
        spawn_session(SessionOptions {
            config,
            api_key: None,
            source: SessionSource::Ephemeral { history },
        })
        .unwrap()
    }

    /// CPU time (user + system) of the mock model's one thread so far.
    async fn mock_cpu(&self) -> Duration {
        self.mock_runtime
            .spawn(async { cpu(UsageWho::RUSAGE_THREAD) })
            .await
            .unwrap()
    }
}

fn process_cpu() -> Duration {
    cpu(UsageWho::RUSAGE_SELF)
}

fn cpu(who: UsageWho) -> Duration {
    let usage = getrusage(who).unwrap();
    let micros = usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
    Duration::from_micros(u64::try_from(micros).unwrap())
}

async fn start_turn(session: &SessionHandle, text: &str) -> String {
    match session
        .submit(Op::start_turn(vec![UserInput::text(text)]))
        .await
    {
        Ok(Reply::TurnStarted { turn_id }) => turn_id,
        other => panic!("StartTurn was answered with {other:?}"),
    }
}

async fn next_event(events: &mut EventStream) -> Event {
    tokio::time::timeout(DEADLINE, events.recv())
        .await
        .expect("no event before the deadline")
        .expect("the event stream ended")
}

async fn wait_for(events: &mut EventStream, pred: impl Fn(&EventMsg) -> bool) -> Event {
    loop {
        let event = next_event(events).await;
        if pred(&event.msg) {
            return event;
        }
        if event.is_terminal() {
            panic!("the turn ended early with {:?}", event.msg);
        }
    }
}

async fn shut_down(session: SessionHandle, mut events: EventStream) {
    let _ = session.submit(Op::Shutdown).await;
    while let Some(event) = events.try_recv() {
        drop(event);
    }
}

fn progress(i: usize) {
    if i % 10 == 9 {
        eprint!(".");
        let _ = std::io::stderr().flush();
    }
}
