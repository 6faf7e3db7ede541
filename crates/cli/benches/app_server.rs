//! `tiller app-server`: how fast an interrupt ends a turn, how fast a steer
//! reaches the model, and what a hundred streaming threads cost.
//!
//! `cargo bench -p tiller-cli --bench app_server`. The release binary runs as a
//! child speaking JSON-RPC on stdin/stdout; the mock model runs in this process
//! and `$TILLER_HOME/config.toml` points the server at it.
//!
//! - interrupt: a turn runs `sleep` (its pid written to a file first); the time
//!   is from just before `turn/interrupt` is written to the moment
//!   `turn/completed` is read, and the `sleep` must already be gone then;
//! - steer: while text streams, the time from just before `turn/steer` is
//!   written to the mock's recorded arrival `Instant` of the next request;
//! - 100 threads streaming at once: the server's peak RSS (`VmHWM`) over an
//!   idle baseline, per thread, and its CPU time (`utime + stime`) per 1,000
//!   deltas streamed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tiller_mock_model::{Item, MockModel, Script, Step};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

const TILLER: &str = env!("CARGO_BIN_EXE_tiller");
const INTERRUPT_RUNS: usize = 200;
const STEER_RUNS: usize = 200;
/// A fresh thread every this many turns, so the history stays short.
const TURNS_PER_THREAD: usize = 20;
const THREADS: usize = 100;
const DELTAS_PER_THREAD: usize = 1000;
const DEADLINE: Duration = Duration::from_secs(30);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    println!(
        "machine: {} CPUs; load average {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        load_average()
    );
    let mut table = Table::default();

    let interrupt = interrupt_to_completed().await;
    table.row(
        "turn/interrupt -> turn/completed (sleep tool already dead)",
        "p99 <= 10 ms",
        &interrupt,
        Some(Duration::from_millis(10)),
    );
    let floor = round_trip().await;
    table.row(
        "  reference: thread/queue/list round trip (no work)",
        "-",
        &floor,
        None,
    );
    let steer = steer_to_next_request().await;
    table.row(
        "turn/steer -> next model request, while streaming",
        "p99 <= 10 ms",
        &steer,
        Some(Duration::from_millis(10)),
    );
    let many = hundred_threads().await;
    table.print();
    println!();
    println!(
        "{THREADS} threads streaming {DELTAS_PER_THREAD} deltas each ({} deltas received, {:.2?} wall):",
        many.deltas, many.wall
    );
    println!(
        "  peak RSS: idle {} KiB, with {THREADS} threads {} KiB -> {:.1} KiB per thread (target <= 1024 KiB: {})",
        many.idle_hwm_kib,
        many.busy_hwm_kib,
        many.per_thread_kib(),
        yes_no(many.per_thread_kib() <= 1024.0)
    );
    println!(
        "  server CPU: {:.3} s over the run -> {:.2} ms per 1,000 deltas",
        many.cpu.as_secs_f64(),
        many.cpu_per_thousand_ms()
    );
    println!("load average after: {}", load_average());
}

/// The model's home: a temp `TILLER_HOME` whose config points at `mock`.
struct Home {
    home: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Home {
    fn new(mock: &MockModel) -> Home {
        let home = tempfile::TempDir::new().unwrap();
        let work = tempfile::TempDir::new().unwrap();
        std::fs::write(
            home.path().join("config.toml"),
            format!(
                "model_provider = \"mock\"\n\n[model_providers.mock]\nbase_url = \"{}\"\n",
                mock.base_url()
            ),
        )
        .unwrap();
        Home { home, work }
    }
}

/// A line the server printed and when it was read.
struct Line {
    at: Instant,
    message: Value,
}

struct Server {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Line>,
    next_id: u64,
    work: String,
}

impl Server {
    async fn start(home: &Home) -> Server {
        let mut child = Command::new(TILLER)
            .arg("app-server")
            .env("TILLER_HOME", home.home.path())
            .env("HOME", home.home.path())
            .env_remove("RUST_LOG")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let at = Instant::now();
                let message = serde_json::from_str(&line).unwrap();
                if tx.send(Line { at, message }).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            stdin,
            lines,
            next_id: 0,
            work: home.work.path().display().to_string(),
        };
        let id = server
            .send(
                "initialize",
                json!({"clientInfo": {"name": "bench", "version": "1"}}),
            )
            .await;
        server.response(id).await;
        server.write(&json!({"method": "initialized"})).await;
        server
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    async fn write(&mut self, message: &Value) {
        let mut bytes = serde_json::to_vec(message).unwrap();
        bytes.push(b'\n');
        self.stdin.write_all(&bytes).await.unwrap();
    }

    async fn send(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.write(&json!({"id": id, "method": method, "params": params}))
            .await;
        id
    }

    async fn next(&mut self) -> Line {
        tokio::time::timeout(DEADLINE, self.lines.recv())
            .await
            .expect("the server went silent")
            .expect("the server closed stdout")
    }

    async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Line {
        loop {
            let line = self.next().await;
            if pred(&line.message) {
                return line;
            }
        }
    }

    async fn response(&mut self, id: u64) -> Value {
        let line = self
            .until(|m| m["id"].as_u64() == Some(id) && m.get("method").is_none())
            .await;
        assert!(
            line.message.get("error").is_none(),
            "request {id}: {}",
            line.message
        );
        line.message
    }

    async fn thread_start(&mut self) -> String {
        let work = self.work.clone();
        let id = self
            .send(
                "thread/start",
                json!({"cwd": work, "approvalPolicy": "never"}),
            )
            .await;
        let response = self.response(id).await;
        response["result"]["thread"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn turn_start(&mut self, thread: &str, text: &str) -> String {
        let id = self
            .send(
                "turn/start",
                json!({"threadId": thread, "input": [{"type": "text", "text": text}]}),
            )
            .await;
        let response = self.response(id).await;
        response["result"]["turn"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn completed(&mut self, turn: &str) -> Line {
        self.until(|m| m["method"] == "turn/completed" && m["params"]["turn"]["id"] == turn)
            .await
    }

    async fn close(mut self) {
        drop(self.stdin);
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "the server exited with {status}");
    }
}

async fn interrupt_to_completed() -> Vec<Duration> {
    let mock = MockModel::start(Script::new(Vec::new())).await.unwrap();
    let home = Home::new(&mock);
    let mut server = Server::start(&home).await;
    let mut samples = Vec::with_capacity(INTERRUPT_RUNS);
    let mut thread = String::new();
    // One untimed run first: page cache, the shell's first start.
    for run in 0..=INTERRUPT_RUNS {
        if run % TURNS_PER_THREAD == 0 {
            thread = server.thread_start().await;
        }
        let pidfile = home.work.path().join(format!("sleep-{run}.pid"));
        let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
        mock.push_step(Step::function_call(
            format!("call_{run}"),
            "shell",
            json!({"command": ["bash", "-lc", script]}),
        ));
        let turn = server.turn_start(&thread, "sleep").await;
        let pid = wait_for_pid(&pidfile).await;
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
            !alive(pid),
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
    server.close().await;
    samples
}

/// The floor under both figures above: a request that does no work, answered
/// by the thread's driver, with the same pipes and the same scheduling.
async fn round_trip() -> Vec<Duration> {
    let mock = MockModel::start(Script::new(Vec::new())).await.unwrap();
    let home = Home::new(&mock);
    let mut server = Server::start(&home).await;
    let thread = server.thread_start().await;
    let mut samples = Vec::with_capacity(INTERRUPT_RUNS);
    for run in 0..=INTERRUPT_RUNS {
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
        // Spaced like the interrupts, so the server is idle when asked.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.close().await;
    samples
}

async fn steer_to_next_request() -> Vec<Duration> {
    let mock = MockModel::start(Script::new(Vec::new())).await.unwrap();
    let home = Home::new(&mock);
    let mut server = Server::start(&home).await;
    let mut samples = Vec::with_capacity(STEER_RUNS);
    let mut thread = String::new();
    for run in 0..=STEER_RUNS {
        if run % TURNS_PER_THREAD == 0 {
            thread = server.thread_start().await;
        }
        // A long stream (2 s) that the steer cuts, then the answer to the steer.
        let words: Vec<String> = (0..400).map(|i| format!("w{i} ")).collect();
        mock.push_step(Step::response(vec![Item::text_deltas(words)]).with_delta_delay(5));
        mock.push_step(Step::text("steered"));
        let before = mock.requests().len();
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
    }
    server.close().await;
    samples
}

struct ManyThreads {
    idle_hwm_kib: u64,
    busy_hwm_kib: u64,
    cpu: Duration,
    deltas: usize,
    wall: Duration,
}

impl ManyThreads {
    fn per_thread_kib(&self) -> f64 {
        self.busy_hwm_kib.saturating_sub(self.idle_hwm_kib) as f64 / THREADS as f64
    }

    fn cpu_per_thousand_ms(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e3 / self.deltas as f64 * 1000.0
    }
}

async fn hundred_threads() -> ManyThreads {
    let mock = MockModel::start(Script::new(Vec::new())).await.unwrap();
    let home = Home::new(&mock);
    let mut server = Server::start(&home).await;
    let pid = server.pid();
    let idle_hwm_kib = status_kib(pid, "VmHWM");
    for _ in 0..THREADS {
        let words: Vec<String> = (0..DELTAS_PER_THREAD).map(|i| format!("w{i} ")).collect();
        // 1,000 deltas 2 ms apart: about 2 s of streaming per thread.
        mock.push_step(Step::response(vec![Item::text_deltas(words)]).with_delta_delay(2));
    }
    let mut threads = Vec::with_capacity(THREADS);
    for _ in 0..THREADS {
        threads.push(server.thread_start().await);
    }
    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    let mut ids = Vec::with_capacity(THREADS);
    for thread in &threads {
        let id = server
            .send(
                "turn/start",
                json!({"threadId": thread, "input": [{"type": "text", "text": "stream"}]}),
            )
            .await;
        ids.push(id);
    }
    let mut completed = 0;
    let mut deltas = 0;
    while completed < THREADS {
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
    server.close().await;
    ManyThreads {
        idle_hwm_kib,
        busy_hwm_kib,
        cpu,
        deltas,
        wall,
    }
}

async fn wait_for_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        // A file the tool writes: nothing to wait on but the file system.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Whether `pid` is alive (a zombie counts as dead).
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// A `kB` field of `/proc/PID/status`.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// User plus system CPU time of `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // After the name: state is field 3, utime 14, stime 15 (1-based).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn yes_no(met: bool) -> String {
    if met { "yes" } else { "NO" }.to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Default)]
struct Table {
    rows: Vec<[String; 7]>,
}

impl Table {
    fn row(&mut self, name: &str, target: &str, samples: &[Duration], p99_limit: Option<Duration>) {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let p99 = percentile(&sorted, 99.0);
        let show = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        self.rows.push([
            name.to_string(),
            target.to_string(),
            sorted.len().to_string(),
            show(percentile(&sorted, 50.0)),
            show(p99),
            show(sorted.last().copied().unwrap_or_default()),
            p99_limit.map_or_else(|| "-".to_string(), |limit| yes_no(p99 <= limit)),
        ]);
    }

    fn print(&self) {
        let header = ["figure", "target", "n", "median", "p99", "max", "met"].map(str::to_string);
        let mut widths = [0; 7];
        for row in std::iter::once(&header).chain(&self.rows) {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(&self.rows) {
            let cells: Vec<String> = row
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
        }
    }
}
