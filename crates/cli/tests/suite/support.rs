//! Running the `tiller` binary from a test: a scratch folder per test, the
//! child's output collected as it comes, waits on events with a deadline, and
//! the checks every test shares (invariant I2 on `--json` output, processes
//! left behind).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;
use tiller_test_support::{TurnMark, assert_marks_one_terminal_per_turn};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use tiller_test_support::{DEADLINE, pid_alive, read_pids_when_ready};

/// The binary under test.
pub const TILLER: &str = env!("CARGO_BIN_EXE_tiller");

/// The demo script shipped in `examples/`.
pub const DEMO_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo.json");

/// How long an interrupted run may take to exit once signalled. Far less than
/// the shell tool's 10 s default timeout, so a run that ignored the signal and
/// let the command time out instead cannot pass.
pub const PROMPT_EXIT: Duration = Duration::from_secs(5);

/// The one turn id used for `tiller exec --json` output: exec runs one turn,
/// and its JSON lines carry no turn id.
const EXEC_TURN: &str = "t1";

/// A scratch folder: `home/` is `TILLER_HOME` (and `HOME`), `work/` is the
/// folder the agent works in (`--cd`).
pub struct Scratch {
    dir: TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = TempDir::new().unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        Scratch { dir }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// The path of `name` inside `work/`.
    pub fn work_file(&self, name: &str) -> PathBuf {
        self.work().join(name)
    }

    /// Write a mock-model script (a JSON array of steps) and return its path.
    pub fn script(&self, steps: Value) -> PathBuf {
        self.script_named("script.json", steps)
    }

    /// Write a mock-model script to `name` (beside `home/` and `work/`), for a
    /// test that needs more than one script, and return its path.
    pub fn script_named(&self, name: &str, steps: Value) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, serde_json::to_string_pretty(&steps).unwrap()).unwrap();
        path
    }

    /// Write `$TILLER_HOME/config.toml` and return its path.
    pub fn config(&self, text: &str) -> PathBuf {
        let path = self.home().join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Write a `config.toml` that makes the model server at `base_url` the
    /// provider, with `extra` lines in its table; returns its path.
    pub fn mock_config(&self, base_url: &str, extra: &str) -> PathBuf {
        self.config(&tiller_test_support::mock_provider_config(base_url, extra))
    }

    /// `tiller ARGS` with this scratch home, no stdin, and stdout and stderr
    /// captured. Variables from the developer's shell that would change what
    /// tiller does are removed. Every process started this way carries
    /// [`SCRATCH_TAG_ENV`], and passes it on to the tools it runs, so that
    /// [`Scratch::wait_no_process_left`] can find whatever is left of them.
    pub fn tiller(&self, args: &[&str]) -> Command {
        let mut command = Command::new(TILLER);
        command.args(args);
        self.prepare(&mut command);
        command
    }

    /// `tiller ARGS` as [`Scratch::tiller`] runs it, but in a mount namespace
    /// of its own where `home/sessions` is a tmpfs of `kib` KiB: a disk that
    /// fills up. With `full`, the disk is filled before tiller starts. The
    /// file `home/sessions/fill` takes the space; a tool can write it too.
    /// Reach the disk from outside through `/proc/<pid>/root` while tiller runs.
    pub fn tiller_on_small_disk(&self, args: &[&str], kib: u32, full: bool) -> Command {
        let sessions = self.home().join("sessions");
        std::fs::create_dir_all(&sessions).unwrap();
        let mut command = Command::new("unshare");
        if !nix::unistd::geteuid().is_root() {
            command.args(["--user", "--map-root-user"]);
        }
        let fill = if full {
            "head -c $(($2 * 1024)) /dev/zero > \"$1/fill\" 2>/dev/null; "
        } else {
            ""
        };
        let script = format!(
            "mount -t tmpfs -o size=\"$2\"k tiller-test \"$1\" || exit 99; {fill}shift 2; exec \"$@\""
        );
        command
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(script)
            .arg("sh")
            .arg(&sessions)
            .arg(kib.to_string())
            .arg(TILLER)
            .args(args);
        self.prepare(&mut command);
        command
    }

    fn prepare(&self, command: &mut Command) {
        command
            .env(SCRATCH_TAG_ENV, self.dir.path())
            .env("TILLER_HOME", self.home())
            .env("HOME", self.home())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
    }

    /// `tiller ARGS` for a pseudo-terminal ([`PtyChild`](tiller_test_support::PtyChild)
    /// sets its stdio), with the environment [`Scratch::tiller`] gives it but
    /// colour allowed (the terminal decides) and `TERM` set to `term`.
    pub fn tiller_for_pty(&self, args: &[&str], term: &str) -> std::process::Command {
        let mut command = std::process::Command::new(TILLER);
        command
            .args(args)
            .env(SCRATCH_TAG_ENV, self.dir.path())
            .env("TILLER_HOME", self.home())
            .env("HOME", self.home())
            .env("TERM", term)
            .env_remove("NO_COLOR")
            .env_remove("RUST_LOG")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL");
        command
    }

    /// `tiller exec --cd work/ --script SCRIPT ARGS`.
    pub fn exec(&self, script: &Path, args: &[&str]) -> Command {
        let work = self.work();
        let mut all = vec![
            "exec",
            "--cd",
            work.to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        self.tiller(&all)
    }
}

impl Scratch {
    /// Every rollout file under `home/sessions`, sorted by path.
    pub fn rollout_files(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut dirs = vec![self.home().join("sessions")];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "jsonl") {
                    found.push(path);
                }
            }
        }
        found.sort();
        found
    }

    /// The one rollout file of session `id`.
    pub fn rollout_of(&self, id: &str) -> PathBuf {
        let suffix = format!("-{id}.jsonl");
        let matching: Vec<PathBuf> = self
            .rollout_files()
            .into_iter()
            .filter(|p| p.to_str().unwrap().ends_with(&suffix))
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "expected one rollout for session {id}, found {matching:?}"
        );
        matching.into_iter().next().unwrap()
    }

    /// The session id in a rollout file's name (`rollout-<stamp>-<id>.jsonl`).
    pub fn session_id_of(path: &Path) -> String {
        let stem = path.file_stem().unwrap().to_str().unwrap();
        stem.get(stem.len() - SESSION_ID_LEN..).unwrap().to_owned()
    }

    /// `tiller sessions --json`, which must succeed, parsed.
    pub async fn sessions_json(&self) -> Vec<Value> {
        let listed = run(&mut self.tiller(&["sessions", "--json"])).await;
        listed.assert_exit(0);
        serde_json::from_str::<Value>(&listed.stdout)
            .unwrap_or_else(|e| {
                panic!(
                    "`tiller sessions --json` is not JSON ({e}):\n{}",
                    listed.stdout
                )
            })
            .as_array()
            .unwrap_or_else(|| panic!("not a JSON array:\n{}", listed.stdout))
            .clone()
    }

    /// Live (non-zombie) processes started by this scratch's `tiller` runs,
    /// however far down: the tools, their children, the orphan watchdog.
    pub fn processes_left(&self) -> Vec<i32> {
        let entry = format!("{SCRATCH_TAG_ENV}={}", self.dir.path().display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                // Another user's process, or one that just exited: not ours.
                let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
                    return false;
                };
                environ.split(|b| *b == 0).any(|e| e == entry.as_bytes()) && pid_alive(*pid)
            })
            .collect()
    }

    /// Wait, within [`DEADLINE`], until no process started by this scratch's
    /// `tiller` runs is alive (zombies count as dead). After a SIGKILL of
    /// tiller the watchdog needs a moment to kill what the tools left.
    pub async fn wait_no_process_left(&self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let alive = self.processes_left();
            if alive.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "processes still alive after {DEADLINE:?}: {}",
                describe_processes(&alive)
            );
            // Processes that are not our children: nothing to wait on but /proc.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The length of a session id (a hyphenated UUID).
const SESSION_ID_LEN: usize = 36;

/// The variable that tags every process a [`Scratch`] starts, and their descendants.
pub const SCRATCH_TAG_ENV: &str = "TILLER_TEST_SCRATCH";

/// `pid (command line)` for each of `pids`, for failure messages.
pub fn describe_processes(pids: &[i32]) -> String {
    pids.iter()
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                .unwrap_or_default();
            format!("{pid} ({})", cmdline.trim())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A script step whose one response is the text `answer`.
pub fn text_step(answer: &str) -> Value {
    serde_json::json!({"type": "response", "items": [{"type": "text", "text": answer}]})
}

/// A script step whose one response is a `shell` call running `script` with `bash -lc`.
pub fn shell_step(call_id: &str, script: &str) -> Value {
    serde_json::json!({"type": "response", "items": [{"type": "function_call", "name": "shell",
        "call_id": call_id, "arguments": {"command": ["bash", "-lc", script]}}]})
}

/// The session id a `tiller exec --json` run announced in `thread.started`.
pub fn thread_id(events: &[Value]) -> String {
    let (at, started) = only_event(events, "thread.started");
    assert_eq!(at, 0, "thread.started is not the first event: {events:#?}");
    started["thread_id"]
        .as_str()
        .unwrap_or_else(|| panic!("thread.started without a thread_id: {started}"))
        .to_owned()
}

/// The complete lines of a rollout file, parsed. Every complete line must be
/// JSON; a last line without its newline (tiller killed mid-write) is left out.
pub fn rollout_lines(path: &Path) -> Vec<Value> {
    parse_rollout(&std::fs::read(path).unwrap(), &path.display().to_string())
}

/// [`rollout_lines`] of bytes read from `origin` earlier.
pub fn parse_rollout(bytes: &[u8], origin: &str) -> Vec<Value> {
    let complete = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => &bytes[..=end],
        None => &[],
    };
    String::from_utf8_lossy(complete)
        .lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{origin}:{}: not JSON ({e}): {line}", i + 1))
        })
        .collect()
}

/// The payloads of a rollout's `response_item` lines, in order.
pub fn response_items(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|line| line["type"] == "response_item")
        .map(|line| &line["payload"])
        .collect()
}

/// The text of a message item (all its parts), or `""`.
pub fn message_text(item: &Value) -> String {
    item["content"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<String>()
        })
        .unwrap_or_default()
}

/// Invariant I1 on a rollout's history: every function call has exactly one
/// output after it, and no output comes without an earlier call.
pub fn assert_valid_history(lines: &[Value]) {
    let items = response_items(lines);
    let mut open: Vec<&str> = Vec::new();
    let mut answered: Vec<&str> = Vec::new();
    for item in &items {
        let call_id = item["call_id"].as_str().unwrap_or_default();
        match item["type"].as_str() {
            Some("function_call") => {
                assert!(
                    !open.contains(&call_id) && !answered.contains(&call_id),
                    "call {call_id} made twice: {items:#?}"
                );
                open.push(call_id);
            }
            Some("function_call_output") => {
                assert!(
                    open.contains(&call_id),
                    "output for {call_id} without an open call: {items:#?}"
                );
                open.retain(|c| *c != call_id);
                answered.push(call_id);
            }
            _ => {}
        }
    }
    assert!(
        open.is_empty(),
        "calls without an output {open:?}: {items:#?}"
    );
}

/// The lifecycle `event` lines of a rollout, as `(type, turn_id)`.
pub fn lifecycle_events(lines: &[Value]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter(|line| line["type"] == "event")
        .map(|line| {
            (
                line["payload"]["type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                line["payload"]["turn_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// Invariant I2 on a rollout: each `turn_started` is followed by exactly one
/// terminal line for its turn, and nothing for that turn after it.
pub fn assert_one_terminal_per_turn_in_rollout(lines: &[Value]) {
    let marks: Vec<TurnMark> = lifecycle_events(lines)
        .into_iter()
        .map(|(kind, turn)| match kind.as_str() {
            "turn_started" => TurnMark::Started(turn),
            _ => TurnMark::Terminal(turn),
        })
        .collect();
    assert_marks_one_terminal_per_turn(&marks);
}

/// How a child ended and what it printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Panic, showing everything the child printed, unless it exited with `code`.
    pub fn assert_exit(&self, code: i32) {
        assert_eq!(
            self.status.code(),
            Some(code),
            "expected exit code {code}, got {:?}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }

    /// The lines of `--json` output, parsed and checked for invariant I2.
    pub fn json(&self) -> Vec<Value> {
        parse_exec_json(&self.stdout)
    }
}

/// Run `command` to the end, within [`DEADLINE`].
pub async fn run(command: &mut Command) -> Finished {
    let output = tokio::time::timeout(DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("{command:?} did not exit within {DEADLINE:?}"))
        .unwrap();
    Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Run `command` with `input` on its stdin, to the end, within [`DEADLINE`].
pub async fn run_with_stdin(command: &mut Command, input: &str) -> Finished {
    command.stdin(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    // Written from a task so that a child that reads little and prints a lot
    // cannot deadlock the test; closing stdin is the end of the prompt.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
    });
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{command:?} did not exit within {DEADLINE:?}"))
        .unwrap();
    writer.await.unwrap();
    Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A child still running, its stdout collected as it arrives so a test can
/// wait for something to be printed.
pub struct Running {
    child: Child,
    stdout: Vec<u8>,
    chunks: mpsc::UnboundedReceiver<Vec<u8>>,
    stderr: JoinHandle<String>,
}

impl Running {
    pub fn spawn(command: &mut Command) -> Running {
        let mut child = command.spawn().unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let (sender, chunks) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            loop {
                match out.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sender.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = err.read_to_end(&mut text).await;
            String::from_utf8_lossy(&text).into_owned()
        });
        Running {
            child,
            stdout: Vec::new(),
            chunks,
            stderr,
        }
    }

    /// Wait, within [`DEADLINE`], until the stdout printed so far satisfies `pred`.
    pub async fn wait_stdout(&mut self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !pred(&String::from_utf8_lossy(&self.stdout)) {
            match tokio::time::timeout_at(deadline, self.chunks.recv()).await {
                Ok(Some(chunk)) => self.stdout.extend_from_slice(&chunk),
                Ok(None) => panic!(
                    "stdout closed before {what}; stdout:\n{}",
                    String::from_utf8_lossy(&self.stdout)
                ),
                Err(_) => panic!(
                    "waited {DEADLINE:?} for {what}; stdout:\n{}",
                    String::from_utf8_lossy(&self.stdout)
                ),
            }
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id().expect("the child was already reaped")).unwrap()
    }

    /// Send `signal` to the child (only to it: tools run in groups of their own).
    pub fn signal(&self, signal: Signal) {
        // The child is not reaped before `finish`, so its pid cannot have been reused.
        let pid = self.child.id().expect("the child was already reaped");
        kill(Pid::from_raw(i32::try_from(pid).unwrap()), signal).unwrap();
    }

    /// Wait for the child to exit, within `limit`, and collect all of its output.
    pub async fn finish(mut self, limit: Duration) -> Finished {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => {
                self.child.kill().await.unwrap();
                panic!(
                    "the child did not exit within {limit:?}; stdout so far:\n{}",
                    String::from_utf8_lossy(&self.stdout)
                );
            }
        };
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, self.chunks.recv()).await {
            self.stdout.extend_from_slice(&chunk);
        }
        let stderr = tokio::time::timeout_at(deadline, self.stderr)
            .await
            .expect("stderr still open after the child exited")
            .unwrap();
        Finished {
            status,
            stdout: String::from_utf8_lossy(&self.stdout).into_owned(),
            stderr,
        }
    }
}

/// `tiller mock-model --script FILE`, running as a process of its own.
pub struct MockModelProcess {
    running: Running,
    pub url: String,
}

impl MockModelProcess {
    /// Start it and wait, within [`DEADLINE`], for the base URL it prints.
    pub async fn start(scratch: &Scratch, script: &Path) -> MockModelProcess {
        let mut running = Running::spawn(&mut scratch.tiller(&[
            "mock-model",
            "--script",
            script.to_str().unwrap(),
        ]));
        running
            .wait_stdout("the mock model's URL", |out| out.contains('\n'))
            .await;
        let printed = String::from_utf8_lossy(&running.stdout).into_owned();
        let url = printed.lines().next().unwrap().trim().to_owned();
        MockModelProcess { running, url }
    }

    /// Stop it with Ctrl+C (SIGINT) and reap it.
    pub async fn stop(self) -> Finished {
        self.running.signal(Signal::SIGINT);
        self.running.finish(DEADLINE).await
    }
}

/// What a line of `tiller exec --json` says about the turn, for invariant I2.
/// `thread.started` belongs to the session, not the turn, so it has no mark.
fn exec_turn_mark(event: &Value) -> Option<TurnMark> {
    let id = EXEC_TURN.to_owned();
    match event_type(event) {
        "thread.started" => None,
        "turn.started" => Some(TurnMark::Started(id)),
        "turn.completed" | "turn.failed" | "turn.aborted" => Some(TurnMark::Terminal(id)),
        _ => Some(TurnMark::Other(id)),
    }
}

/// Parse `tiller exec --json` output, one JSON object per line, and check
/// that its turn has exactly one terminal event with nothing after it (I2).
pub fn parse_exec_json(stdout: &str) -> Vec<Value> {
    let events = parse_json_lines(stdout);
    let marks: Vec<TurnMark> = events.iter().filter_map(exec_turn_mark).collect();
    assert_marks_one_terminal_per_turn(&marks);
    events
}

/// Parse the `--json` output of a `tiller exec` killed with SIGKILL: it may
/// stop anywhere, so the turn may lack its terminal event, but what was
/// printed must be the start of a valid run (I2 on a prefix: at most one
/// terminal event, nothing before `turn.started` or after the terminal event).
/// Every line must be whole: a line shorter than stdout's buffer goes out in
/// one write, so a kill cannot cut it; keep the runs this is used for terse.
pub fn parse_killed_exec_json(stdout: &str) -> Vec<Value> {
    let events = parse_json_lines(stdout);
    let mut marks: Vec<TurnMark> = events.iter().filter_map(exec_turn_mark).collect();
    let started = marks.iter().any(|m| matches!(m, TurnMark::Started(_)));
    let ended = marks.iter().any(|m| matches!(m, TurnMark::Terminal(_)));
    if started && !ended {
        // What the run would have printed next, had it lived.
        marks.push(TurnMark::Terminal(EXEC_TURN.to_owned()));
    }
    assert_marks_one_terminal_per_turn(&marks);
    events
}

fn parse_json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\nstdout:\n{stdout}"))
        })
        .collect()
}

/// The `type` of an exec JSON event.
pub fn event_type(event: &Value) -> &str {
    event["type"].as_str().unwrap_or_default()
}

/// The index and item of every `item.completed` event whose item is of `kind`.
pub fn completed_items<'a>(events: &'a [Value], kind: &str) -> Vec<(usize, &'a Value)> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| event_type(e) == "item.completed" && e["item"]["type"] == kind)
        .map(|(i, e)| (i, &e["item"]))
        .collect()
}

/// The one event of type `kind`, with its index.
pub fn only_event<'a>(events: &'a [Value], kind: &str) -> (usize, &'a Value) {
    let found: Vec<(usize, &Value)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| event_type(e) == kind)
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} event in {events:#?}");
    found[0]
}

/// Panic unless every one of `pids` is dead now (zombies count as dead).
pub fn assert_dead(pids: &[i32]) {
    let alive: Vec<i32> = pids.iter().copied().filter(|p| pid_alive(*p)).collect();
    assert!(alive.is_empty(), "processes still alive: {alive:?}");
}

/// Wait until no process of `pids` is alive and the process group `pgid` is
/// empty, within [`DEADLINE`]: for a hard exit, which kills without waiting.
pub async fn wait_gone(pids: &[i32], pgid: i32) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut alive: Vec<i32> = pids.iter().copied().filter(|p| pid_alive(*p)).collect();
        alive.extend(group_members(pgid));
        if alive.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes still alive after {DEADLINE:?}: {alive:?}"
        );
        // Nothing to wait on for processes that are not our children: poll /proc.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Live (non-zombie) processes whose process group is `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // After the parenthesised name: state, ppid, pgrp, ...
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid)
                && !matches!(fields.first(), Some(&("Z" | "X")))
        })
        .collect()
}

/// Wait, within [`DEADLINE`], until `path` exists. Polls often: the test that
/// uses it must act within a window of about 100 ms after the file appears.
pub async fn wait_for_file(path: &Path) {
    wait_for_file_within(path, DEADLINE).await;
}

/// [`wait_for_file`] with a deadline of its own, for a tool that does a lot.
pub async fn wait_for_file_within(path: &Path, within: Duration) {
    let deadline = Instant::now() + within;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {within:?}",
            path.display()
        );
        // A file a tool writes: there is no event to wait on.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A `tiller app-server` listening on a socket.
pub struct Listening {
    child: tokio::process::Child,
    /// What it printed after `listening on `.
    pub url: String,
}

impl Listening {
    /// Start the server with `args` after `app-server`; wait for its address.
    pub async fn start(scratch: &Scratch, args: &[&str]) -> Listening {
        let mut all = vec!["app-server"];
        all.extend_from_slice(args);
        let mut command = scratch.tiller(&all);
        command.stdin(Stdio::null());
        let mut child = command.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(DEADLINE, async {
            while let Some(line) = stderr.next_line().await.unwrap() {
                if let Some(url) = line.split("listening on ").nth(1) {
                    return url.trim().to_string();
                }
            }
            panic!("the server exited without listening");
        })
        .await
        .expect("the server says where it listens");
        // Keep draining stderr so the server never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        Listening { child, url }
    }

    /// SIGTERM, and the exit status within the deadline.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id().unwrap()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("the server stops on SIGTERM")
            .unwrap()
    }
}

/// Run `python3 script` (a test written against a client library that is
/// not ours) with `TILLER_BIN` set to the binary under test and `env`,
/// within `deadline`; panics with everything it printed unless it exits 0.
pub async fn run_python_test(script: &str, env: &[(&str, &Path)], deadline: Duration) {
    let mut command = Command::new("python3");
    command
        .arg(script)
        .env("TILLER_BIN", TILLER)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let read_all = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
        tokio::spawn(async move {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text).await;
            text
        })
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    let status = match tokio::time::timeout(deadline, child.wait()).await {
        Ok(status) => status.unwrap(),
        Err(_) => {
            child.kill().await.unwrap();
            panic!("{script} did not finish within {deadline:?}");
        }
    };
    let (out, err) = (out.await.unwrap(), err.await.unwrap());
    assert!(
        status.success(),
        "{script} failed ({status})\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    eprintln!("{err}");
}
