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
//! each streaming text turn after turn ([`LOAD_DELTA_MS`] apart, a fast real
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
//! Then, in a fresh server per run, N threads stream 1,000 deltas each at
//! once: the server's peak RSS (`VmHWM`) over its idle baseline, per thread,
//! and its CPU time (`utime + stime`) per 1,000 deltas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tiller_bench_support::{Figure, Report, Unit, runtime, samples};
use tiller_mock_model::{Item, MockModel, Script, Step};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, mpsc};

const TILLER: &str = env!("CARGO_BIN_EXE_tiller");
/// How many threads run in the server at once, the measured one included.
const LEVELS: [usize; 3] = [1, 10, 100];
/// A fresh measured thread every this many turns, so its history stays short.
const TURNS_PER_THREAD: usize = 20;
/// Each load thread's turns: this many deltas, this far apart (100 a second).
const LOAD_DELTAS: usize = 500;
const LOAD_DELTA_MS: u64 = 10;
/// The streaming runs: deltas per thread, this far apart.
const DELTAS_PER_THREAD: usize = 1000;
const DELTA_MS: u64 = 2;
const DEADLINE: Duration = Duration::from_secs(60);

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

fn streaming(threads: usize) -> String {
    if threads == 1 {
        "1 thread streaming".to_string()
    } else {
        format!("{threads} threads streaming at once")
    }
}

fn threads_text(threads: usize) -> String {
    if threads == 1 {
        "1 thread".to_string()
    } else {
        format!("{threads} threads")
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

/// A server's two mock models, each on its own one-thread runtime so that
/// neither the load's streams nor this bench's reading of them delays the
/// arrival `Instant` the measured mock records. Fresh for each server: the
/// mock keeps every request it received, and the steer samples read them.
struct Models {
    mock: Arc<MockModel>,
    load: Arc<MockModel>,
    runtimes: Vec<Runtime>,
}

impl Models {
    async fn start() -> Models {
        let mut runtimes = Vec::new();
        let mut models = Vec::new();
        for name in ["mock-model", "load-model"] {
            let runtime = runtime(name, 1);
            let model = runtime
                .spawn(MockModel::start(Script::new(Vec::new())))
                .await
                .unwrap()
                .unwrap();
            models.push(Arc::new(model));
            runtimes.push(runtime);
        }
        let load = models.pop().unwrap();
        let mock = models.pop().unwrap();
        Models {
            mock,
            load,
            runtimes,
        }
    }
}

impl Drop for Models {
    /// Dropped in the bench's async code, where a runtime may not block.
    fn drop(&mut self) {
        for runtime in self.runtimes.drain(..) {
            runtime.shutdown_background();
        }
    }
}

/// A temp `TILLER_HOME` whose config names both models, and a work folder.
struct Home {
    home: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Home {
    fn new(models: &Models) -> Home {
        let home = tempfile::TempDir::new().unwrap();
        let work = tempfile::TempDir::new().unwrap();
        std::fs::write(
            home.path().join("config.toml"),
            format!(
                "model_provider = \"mock\"\n\n[model_providers.mock]\nbase_url = \"{}\"\n\n[model_providers.load]\nbase_url = \"{}\"\n",
                models.mock.base_url(),
                models.load.base_url()
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

/// The server's stdin, shared by the measurement and the load driver; each
/// writes whole lines under the lock. `None` once closed.
type Stdin = Arc<Mutex<Option<ChildStdin>>>;

async fn write_line(stdin: &Stdin, message: &Value) {
    let mut bytes = serde_json::to_vec(message).unwrap();
    bytes.push(b'\n');
    if let Some(stdin) = stdin.lock().await.as_mut() {
        stdin.write_all(&bytes).await.unwrap();
    }
}

struct Server {
    models: Models,
    child: Child,
    stdin: Stdin,
    /// Every line that is not about a load thread.
    lines: mpsc::UnboundedReceiver<Line>,
    background: Arc<Background>,
    /// Load threads whose turn ended, to start the next one.
    restart: mpsc::UnboundedSender<String>,
    restarts: Option<mpsc::UnboundedReceiver<String>>,
    next_id: u64,
    home: Home,
    work: String,
    load_threads: usize,
}

impl Server {
    async fn start() -> Server {
        let models = Models::start().await;
        let home = Home::new(&models);
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
        let stdin = Arc::new(Mutex::new(Some(child.stdin.take().unwrap())));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        let (restart, restarts) = mpsc::unbounded_channel();
        let background = Arc::new(Background::default());
        let reader = (Arc::clone(&background), restart.clone());
        tokio::spawn(async move {
            let (background, restart) = reader;
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let at = Instant::now();
                let message: Value = serde_json::from_str(&line).unwrap();
                if background.take(&message, &restart) {
                    continue;
                }
                if tx.send(Line { at, message }).is_err() {
                    break;
                }
            }
        });
        let work = home.work.path().display().to_string();
        let mut server = Server {
            models,
            child,
            stdin,
            lines,
            background,
            restart,
            restarts: Some(restarts),
            next_id: 0,
            home,
            work,
            load_threads: 0,
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

    /// Start `threads` load threads on the `load` model and wait until each
    /// has streamed a delta. From then on, each starts its next turn as soon
    /// as one completes, until the server is closed.
    async fn stream_in_background(&mut self, threads: usize) {
        if threads == 0 {
            return;
        }

        let restarts = self.restarts.take().expect("one load per server");
        tokio::spawn(drive_load(
            Arc::clone(&self.models.load),
            Arc::clone(&self.stdin),
            restarts,
            Arc::clone(&self.background),
        ));
        for _ in 0..threads {
            let thread = self.thread_start_on("load").await;
            self.background.add(&thread);
            self.restart.send(thread).unwrap();
        }
        self.load_threads = threads;
        let deadline = Instant::now() + DEADLINE;
        while self.background.streaming() < threads {
            assert!(
                Instant::now() < deadline,
                "only {} of {threads} load threads streamed",
                self.background.streaming()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The start of a measurement, for [`Server::note_load`].
    fn window(&self) -> Window {
        Window {
            started: Instant::now(),
            deltas: self.background.deltas(),
            server_cpu: cpu_time(self.pid()),
        }
    }

    /// How many deltas a second the load threads delivered since `window`
    /// began, and how busy the server was.
    fn note_load(&self, report: &mut Report, what: &str, window: &Window) {
        let secs = window.started.elapsed().as_secs_f64();
        let cpus = (cpu_time(self.pid()) - window.server_cpu).as_secs_f64() / secs;
        let load = if self.load_threads == 0 {
            String::new()
        } else {
            let rate = (self.background.deltas() - window.deltas) as f64 / secs;
            format!(
                "the {} load threads delivered {rate:.0} deltas/s ({} nominal), ",
                self.load_threads,
                self.load_threads as u64 * 1000 / LOAD_DELTA_MS,
            )
        };
        report.note(format!(
            "{}, {what} samples ({secs:.1} s): {load}the server used {cpus:.2} CPUs",
            threads_text(self.load_threads + 1),
        ));
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    async fn write(&mut self, message: &Value) {
        write_line(&self.stdin, message).await;
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
        self.thread_start_on("mock").await
    }

    async fn thread_start_on(&mut self, provider: &str) -> String {
        let work = self.work.clone();
        let id = self
            .send(
                "thread/start",
                json!({"cwd": work, "approvalPolicy": "never", "modelProvider": provider}),
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

    /// Close stdin (the server interrupts the load threads' turns and exits)
    /// and check that it exited cleanly, that no load turn failed, and that
    /// neither model rejected a request.
    async fn close(mut self) {
        self.background.stopping.store(true, Ordering::SeqCst);
        drop(self.stdin.lock().await.take());
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "the server exited with {status}");
        let errors = self.background.errors.lock().unwrap().clone();
        assert!(errors.is_empty(), "load threads: {errors:?}");
        for model in [&self.models.mock, &self.models.load] {
            let rejected: Vec<_> = model
                .requests()
                .into_iter()
                .filter_map(|request| request.rejected)
                .collect();
            assert!(rejected.is_empty(), "rejected requests: {rejected:?}");
        }
        drop(self.home);
    }
}

struct Window {
    started: Instant,
    deltas: u64,
    server_cpu: Duration,
}

/// The load threads as the bench sees them: the reader task counts their
/// deltas and hands their ended turns to [`drive_load`], so the measurement
/// never sees their lines.
#[derive(Default)]
struct Background {
    /// Thread id → deltas it streamed.
    threads: StdMutex<HashMap<String, u64>>,
    deltas: AtomicU64,
    errors: StdMutex<Vec<String>>,
    stopping: AtomicBool,
}

impl Background {
    fn add(&self, thread: &str) {
        self.threads.lock().unwrap().insert(thread.to_string(), 0);
    }

    fn deltas(&self) -> u64 {
        self.deltas.load(Ordering::Relaxed)
    }

    /// How many load threads have streamed at least one delta.
    fn streaming(&self) -> usize {
        self.threads
            .lock()
            .unwrap()
            .values()
            .filter(|&&n| n > 0)
            .count()
    }

    /// Whether `message` is about a load thread (then it is handled here).
    fn take(&self, message: &Value, restart: &mpsc::UnboundedSender<String>) -> bool {
        if let Some(id) = message["id"].as_str()
            && id.starts_with("load-")
        {
            if let Some(error) = message.get("error") {
                self.errors.lock().unwrap().push(format!("{id}: {error}"));
            }
            return true;
        }

        let Some(thread) = message["params"]["threadId"].as_str() else {
            return false;
        };
        let method = message["method"].as_str().unwrap_or_default();
        let delta = method == "item/agentMessage/delta";
        let known = self
            .threads
            .lock()
            .unwrap()
            .get_mut(thread)
            .map(|n| *n += u64::from(delta))
            .is_some();
        if !known {
            return false;
        }

        if delta {
            self.deltas.fetch_add(1, Ordering::Relaxed);
        } else if method == "turn/completed" && !self.stopping.load(Ordering::SeqCst) {
            let status = &message["params"]["turn"]["status"];
            if status != "completed" {
                self.errors
                    .lock()
                    .unwrap()
                    .push(format!("a load turn ended {status}"));
            }
            let _ = restart.send(thread.to_string());
        }
        true
    }
}

/// Start the next turn of each load thread handed over, on the `load` model.
async fn drive_load(
    load: Arc<MockModel>,
    stdin: Stdin,
    mut restarts: mpsc::UnboundedReceiver<String>,
    background: Arc<Background>,
) {
    let mut n = 0;
    while let Some(thread) = restarts.recv().await {
        if background.stopping.load(Ordering::SeqCst) {
            break;
        }
        let words = (0..LOAD_DELTAS).map(|i| format!("w{i} "));
        load.push_step(
            Step::response(vec![Item::text_deltas(words)]).with_delta_delay(LOAD_DELTA_MS),
        );
        n += 1;
        let request = json!({"id": format!("load-{n}"), "method": "turn/start",
            "params": {"threadId": thread, "input": [{"type": "text", "text": "stream"}]}});
        write_line(&stdin, &request).await;
    }
}

async fn interrupt_to_completed(server: &mut Server) -> Vec<Duration> {
    let runs = samples(200, 20);
    let mock = Arc::clone(&server.models.mock);
    let mut samples = Vec::with_capacity(runs);
    let mut thread = String::new();
    // One untimed run first: page cache, the shell's first start.
    for run in 0..=runs {
        if run % TURNS_PER_THREAD == 0 {
            thread = server.thread_start().await;
        }
        let pidfile = server.home.work.path().join(format!("sleep-{run}.pid"));
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
    let mock = Arc::clone(&server.models.mock);
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
    for _ in 0..threads {
        let words: Vec<String> = (0..DELTAS_PER_THREAD).map(|i| format!("w{i} ")).collect();
        server
            .models
            .mock
            .push_step(Step::response(vec![Item::text_deltas(words)]).with_delta_delay(DELTA_MS));
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
