//! The `tiller app-server` under measurement: the child process and its two
//! mock models, the JSON-RPC lines both ways, the load threads that stream in
//! the background, and the `/proc` readings of the server's memory and CPU.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tiller_bench_support::{Report, runtime};
use tiller_mock_model::{Item, MockModel, Script, Step};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, mpsc};

const TILLER: &str = env!("CARGO_BIN_EXE_tiller");
/// The longest anything is waited for before the bench gives up.
pub(super) const DEADLINE: Duration = Duration::from_secs(60);
/// Each load thread's turns: this many deltas, this far apart (100 a second).
const LOAD_DELTAS: usize = 500;
pub(super) const LOAD_DELTA_MS: u64 = 10;

/// A server's two mock models, each on its own one-thread runtime so that
/// neither the load's streams nor this bench's reading of them delays the
/// arrival `Instant` the measured mock records. Fresh for each server: the
/// mock keeps every request it received, and the steer samples read them.
pub(super) struct Models {
    pub(super) mock: Arc<MockModel>,
    load: Arc<MockModel>,
    runtimes: Vec<Runtime>,
}

impl Models {
    pub(super) async fn start() -> Models {
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
pub(super) struct Home {
    pub(super) home: tempfile::TempDir,
    pub(super) work: tempfile::TempDir,
}

impl Home {
    pub(super) fn new(models: &Models) -> Home {
        let home = tempfile::TempDir::new().unwrap();
        let work = tempfile::TempDir::new().unwrap();
        std::fs::write(
            home.path().join("config.toml"),
            tiller_test_support::mock_provider_config(&models.mock.base_url(), "")
                + &format!(
                    "\n[model_providers.load]\nbase_url = \"{}\"\n",
                    models.load.base_url()
                ),
        )
        .unwrap();
        Home { home, work }
    }
}

/// A line the server printed and when it was read.
pub(super) struct Line {
    pub(super) at: Instant,
    pub(super) message: Value,
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

pub(super) struct Server {
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
    pub(super) async fn start() -> Server {
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
    pub(super) async fn stream_in_background(&mut self, threads: usize) {
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
    pub(super) fn window(&self) -> Window {
        Window {
            started: Instant::now(),
            deltas: self.background.deltas(),
            server_cpu: cpu_time(self.pid()),
        }
    }

    /// How many deltas a second the load threads delivered since `window`
    /// began, and how busy the server was.
    pub(super) fn note_load(&self, report: &mut Report, what: &str, window: &Window) {
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

    /// The mock model that serves the measured thread.
    pub(super) fn mock(&self) -> Arc<MockModel> {
        Arc::clone(&self.models.mock)
    }

    /// The folder the measured thread's tools run in.
    pub(super) fn work_dir(&self) -> &Path {
        self.home.work.path()
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    async fn write(&mut self, message: &Value) {
        write_line(&self.stdin, message).await;
    }

    pub(super) async fn send(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.write(&json!({"id": id, "method": method, "params": params}))
            .await;
        id
    }

    pub(super) async fn next(&mut self) -> Line {
        tokio::time::timeout(DEADLINE, self.lines.recv())
            .await
            .expect("the server went silent")
            .expect("the server closed stdout")
    }

    pub(super) async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Line {
        loop {
            let line = self.next().await;
            if pred(&line.message) {
                return line;
            }
        }
    }

    pub(super) async fn response(&mut self, id: u64) -> Value {
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

    pub(super) async fn thread_start(&mut self) -> String {
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

    pub(super) async fn turn_start(&mut self, thread: &str, text: &str) -> String {
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

    pub(super) async fn completed(&mut self, turn: &str) -> Line {
        self.until(|m| m["method"] == "turn/completed" && m["params"]["turn"]["id"] == turn)
            .await
    }

    /// Close stdin (the server interrupts the load threads' turns and exits)
    /// and check that it exited cleanly, that no load turn failed, and that
    /// neither model rejected a request.
    pub(super) async fn close(mut self) {
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

pub(super) struct Window {
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

/// A `kB` field of `/proc/PID/status`.
pub(super) fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// User plus system CPU time of `pid` so far.
pub(super) fn cpu_time(pid: u32) -> Duration {
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

/// `1 thread`, `N threads`.
pub(super) fn threads_text(threads: usize) -> String {
    if threads == 1 {
        "1 thread".to_string()
    } else {
        format!("{threads} threads")
    }
}
