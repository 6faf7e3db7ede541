//! Lifecycle benchmarks of the engine: interrupt latency with running tool
//! processes, the CPU cost of consuming a long response, and steer latency.
//!
//! `cargo bench -p tiller-core --bench lifecycle [-- FILTER...]` runs the
//! benches whose id is a filter or starts with a filter and a `-`
//! (`interrupt`, `interrupt-sleep`, `interrupt-bg1`, `interrupt-bg10`,
//! `interrupt-bg100`, `stream`, `stream-2000`, `stream-20000`,
//! `stream-200000`, `steer`), or all of them. Results go to stdout as a table; `BENCHMARKS.md`
//! explains each figure and records the last run.
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
use tiller_core::client::sse::SseDecoder;
use tiller_core::config::{ApprovalPolicy, Config, ConfigOverrides, ProviderConfig};
use tiller_core::process_tree::{
    DirectChild, ProcessTree, ToolMarker, kill_tree, spawn_registered,
};
use tiller_core::{EventStream, SessionHandle, SessionOptions, SessionSource, spawn_session};
use tiller_mock_model::{Item, MockModel, Script, Step};
use tiller_protocol::{Event, EventMsg, Op, Reply, UserInput};
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

    let mock_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("mock-model")
        .enable_all()
        .build()
        .unwrap();
    let engine_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("engine")
        .enable_all()
        .build()
        .unwrap();
    let mock_handle = mock_runtime.handle().clone();
    let mut table = Table::default();
    let other_load = OtherLoad::start();
    engine_runtime.block_on(async {
        tiller_core::process_tree::become_subreaper().unwrap();
        let bench = Bench::start(mock_handle).await;
        println!("{}", bench.describe_machine());
        interrupt_benches(&bench, &filter, &mut table).await;
        stream_cpu_benches(&bench, &filter, &mut table).await;
        if filter.wants("steer") {
            steer_bench(&bench, &mut table).await;
        }
    });
    drop(engine_runtime);
    drop(mock_runtime);
    table.print();
    println!("{}", other_load.report());
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
            ToolLoad::Sleep => "interrupt -> TurnAborted, `exec sleep 60`".to_string(),
            ToolLoad::Background(n) => {
                format!("interrupt -> TurnAborted, bash + {n} background sleep")
            }
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

async fn interrupt_benches(bench: &Bench, filter: &Filter, table: &mut Table) {
    for (id, load, iterations) in [
        ("interrupt-sleep", ToolLoad::Sleep, 200),
        ("interrupt-bg1", ToolLoad::Background(1), 200),
        ("interrupt-bg10", ToolLoad::Background(10), 200),
        ("interrupt-bg100", ToolLoad::Background(100), 100),
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
        table.row(
            &name,
            "p99 <= 10 ms",
            &to_aborted,
            Some(Duration::from_millis(10)),
        );
        table.row(
            &format!(
                "  of which: interrupt -> ExecCommandEnd ({})",
                load.processes()
            ),
            "-",
            &to_exec_end,
            None,
        );
        if let ToolLoad::Background(_) = load {
            kill_breakdown(bench, load, iterations / 4, table).await;
        }
    }
}

/// The same process tree without the engine: `process_tree::kill_tree` called
/// directly, and the kernel's floor (`SIGTERM` to the group, then polling until
/// every pid is dead, without reaping).
async fn kill_breakdown(bench: &Bench, load: ToolLoad, iterations: usize, table: &mut Table) {
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
    table.row(
        &format!("  kill_tree alone, same {n} processes"),
        "-",
        &alone,
        None,
    );
    table.row(
        &format!("  SIGTERM to the group until all {n} are dead (kernel floor)"),
        "-",
        &floor,
        None,
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
                    EventMsg::ExecCommandEnd { .. } => exec_end_at = Some(Instant::now()),
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
        to_exec_end: exec_end_at.expect("ExecCommandEnd before TurnAborted") - started,
        alive,
        unreaped,
    }
}

// ---------------------------------------------------------------------------
// 3. CPU time to consume one long response.

async fn stream_cpu_benches(bench: &Bench, filter: &Filter, table: &mut Table) {
    for (deltas, iterations) in [(2_000, 50), (20_000, 30), (200_000, 5)] {
        if !filter.wants(&format!("stream-{deltas}")) {
            continue;
        }
        let name = format!("CPU to consume {deltas} text deltas (engine)");
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
        let target = (deltas == 20_000).then_some(Duration::from_millis(100));
        table.row(
            &name,
            if target.is_some() { "<= 100 ms" } else { "-" },
            &engine,
            target,
        );
        table.row(
            &format!("  raw HTTP read of the same {deltas}-delta body (floor)"),
            "-",
            &raw,
            None,
        );
        if deltas == 20_000 {
            sse_framing_rows(bench, deltas, 10, table).await;
        }
        table.row(
            "  mock model serving it (not in the figure)",
            "-",
            &mock,
            None,
        );
        table.row(
            &format!("  wall time of the turn ({deltas} deltas)"),
            "-",
            &wall,
            None,
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
    bench.mock.push_step(text_response(deltas));
    let (session, mut events) = bench.session();
    next_event(&mut events).await; // SessionConfigured

    let mock_before = bench.mock_cpu().await;
    let process_before = process_cpu();
    let started = Instant::now();
    start_turn(&session, "say a lot").await;
    let mut seen = 0;
    loop {
        let event = next_event(&mut events).await;
        match event.msg {
            EventMsg::AgentMessageDelta { .. } => seen += 1,
            EventMsg::TurnCompleted { .. } => break,
            msg if msg.is_terminal() => panic!("the turn ended with {msg:?}"),
            _ => {}
        }
    }
    let wall = started.elapsed();
    let process = process_cpu() - process_before;
    let mock = bench.mock_cpu().await - mock_before;
    assert_eq!(seen, deltas, "every delta reaches the client");
    shut_down(session, events).await;
    StreamSample {
        engine: process.saturating_sub(mock),
        mock,
        wall,
    }
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
async fn sse_framing_rows(bench: &Bench, deltas: usize, iterations: usize, table: &mut Table) {
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
                while let Some(event) = decoder.next_event() {
                    std::hint::black_box(event);
                    n += 1;
                }
            }
            out.push(cpu(UsageWho::RUSAGE_THREAD) - before);
            assert!(n > deltas, "every event was framed");
        }
    }
    let body_bytes = chunk_sizes.iter().sum::<usize>() / iterations;
    chunk_sizes.sort_unstable();
    let median_chunk = chunk_sizes.get(chunk_sizes.len() / 2).copied().unwrap_or(0);
    let max_chunk = chunk_sizes.last().copied().unwrap_or(0);
    table.row(
        &format!(
            "  SSE framing alone, {:.1} MiB body in the chunks reqwest delivered (median {:.0} KiB, max {:.0} KiB)",
            body_bytes as f64 / (1024.0 * 1024.0),
            median_chunk as f64 / 1024.0,
            max_chunk as f64 / 1024.0
        ),
        "-",
        &as_received,
        None,
    );
    table.row(
        "  SSE framing alone, the same bytes in 4 KiB chunks",
        "-",
        &recut,
        None,
    );
}

// ---------------------------------------------------------------------------
// 4. Steer -> next model request while streaming.

async fn steer_bench(bench: &Bench, table: &mut Table) {
    let iterations = 200;
    let name = "steer -> next request at the mock (streaming)";
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
    table.row(
        name,
        "<= 10 ms",
        &to_request,
        Some(Duration::from_millis(10)),
    );
    table.row(
        "  of which: Steer submitted -> its reply",
        "-",
        &to_reply,
        None,
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
        let config = Config::load(
            self.home.path(),
            ConfigOverrides {
                approval_policy: Some(ApprovalPolicy::Never),
                cwd: Some(self.work.path().to_path_buf()),
                provider_override: Some(ProviderConfig::for_local_server(self.mock.base_url())),
                ..ConfigOverrides::default()
            },
        )
        .unwrap()
        .config;
        spawn_session(SessionOptions {
            config,
            api_key: None,
            source: SessionSource::Ephemeral {
                history: Vec::new(),
            },
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

    fn describe_machine(&self) -> String {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, name)| name.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".to_string());
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        format!(
            "machine: {} CPUs ({cpu}); load average {}",
            std::thread::available_parallelism().map_or(0, usize::from),
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        )
    }
}

/// How much other work shared the machine while the bench ran: the machine's
/// busy CPU time (`/proc/stat`) minus this process's and its reaped children's
/// (`/proc/self/stat`), both in clock ticks of 10 ms (`USER_HZ` is 100 on x86-64).
struct OtherLoad {
    started: Instant,
    machine: [u64; 2],
    own: u64,
}

impl OtherLoad {
    fn start() -> OtherLoad {
        OtherLoad {
            started: Instant::now(),
            machine: machine_ticks(),
            own: own_ticks(),
        }
    }

    fn report(&self) -> String {
        let [busy, steal] = machine_ticks();
        let other = (busy - self.machine[0]).saturating_sub(own_ticks() - self.own);
        let secs = self.started.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let cpus = |ticks: u64| ticks as f64 / 100.0 / secs;
        format!(
            "other processes used {:.2} CPUs on average during the {secs:.0} s run (hypervisor steal {:.2} CPUs); load average now {}",
            cpus(other),
            cpus(steal - self.machine[1]),
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        )
    }
}

/// Busy (user, nice, system, irq, softirq) and steal ticks of all CPUs.
fn machine_ticks() -> [u64; 2] {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    [
        field(0) + field(1) + field(2) + field(5) + field(6),
        field(7),
    ]
}

/// utime + stime + cutime + cstime of this process.
fn own_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    // Fields 14 to 17 of the whole line are 12 to 15 after the name.
    after_name
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum()
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
        .submit(Op::StartTurn {
            items: vec![UserInput::text(text)],
            client_message_id: None,
        })
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

// ---------------------------------------------------------------------------
// Statistics and the table.

#[derive(Default)]
struct Table {
    rows: Vec<[String; 7]>,
}

impl Table {
    fn row(
        &mut self,
        name: &str,
        target_text: &str,
        samples: &[Duration],
        p99_limit: Option<Duration>,
    ) {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let median = percentile(&sorted, 50.0);
        let p99 = percentile(&sorted, 99.0);
        let max = sorted.last().copied().unwrap_or_default();
        let met = match p99_limit {
            None => "-".to_string(),
            Some(limit) if p99 <= limit => "yes".to_string(),
            Some(_) => "NO".to_string(),
        };
        let show = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        self.rows.push([
            name.to_string(),
            target_text.to_string(),
            sorted.len().to_string(),
            show(median),
            show(p99),
            show(max),
            met,
        ]);
    }

    fn print(&self) {
        let header = ["figure", "target", "n", "median", "p99", "max", "met"];
        let mut widths = header.map(str::len);
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let cells: Vec<String> = cells
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(i, (cell, width))| {
                    if i == 0 {
                        format!("{cell:<width$}")
                    } else {
                        format!("{cell:>width$}")
                    }
                })
                .collect();
            println!("| {} |", cells.join(" | "));
        };
        line(&header.map(str::to_string));
        println!(
            "|{}|",
            widths
                .iter()
                .enumerate()
                .map(|(i, w)| if i == 0 {
                    format!(":{}", "-".repeat(w + 1))
                } else {
                    format!("{}:", "-".repeat(w + 1))
                })
                .collect::<Vec<_>>()
                .join("|")
        );
        for row in &self.rows {
            line(row);
        }
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], pct: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
