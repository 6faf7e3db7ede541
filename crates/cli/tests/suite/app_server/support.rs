//! Driving the real `tiller app-server` from a test: a scratch home whose
//! `config.toml` points at an in-process [`MockModel`], the server's stdout read
//! line by line with a deadline, every line checked against the Codex schemas
//! ([`check_line`]) as it is read, and the protocol invariants checked on the
//! whole log when the server ends.

use std::collections::{BTreeSet, HashMap};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tiller_mock_model::{MockModel, RecordedRequest, Script, Step};
use tiller_test_support::LineChild;
use tokio::io::AsyncWriteExt;

use super::schema::{Kind, check_line};
use crate::suite::support::{DEADLINE, Scratch};

/// How long a server may take to exit after stdin EOF or SIGTERM.
pub const EXIT_LIMIT: Duration = Duration::from_secs(1);

/// A scratch home wired to an in-process mock model.
pub struct Fixture {
    pub scratch: Scratch,
    pub mock: MockModel,
}

impl Fixture {
    /// A mock answering from `steps`, and a `config.toml` that points at it.
    /// Failed requests and broken streams are retried once, quickly, so a
    /// test that does not ask for retries fails fast when one happens.
    pub async fn new(steps: Vec<Step>) -> Fixture {
        let mock = MockModel::start(Script::new(steps)).await.unwrap();
        let scratch = Scratch::new();
        scratch.mock_config(
            &mock.base_url(),
            "request_max_retries = 0\nstream_max_retries = 1\n",
        );
        Fixture { scratch, mock }
    }

    /// `tiller app-server` in this scratch home, not yet initialized.
    pub fn spawn(&self) -> AppServer {
        self.spawn_with(&[])
    }

    /// `tiller app-server ARGS` in this scratch home, not yet initialized.
    pub fn spawn_with(&self, args: &[&str]) -> AppServer {
        let mut all = vec!["app-server"];
        all.extend_from_slice(args);
        let mut command = self.scratch.tiller(&all);
        command.stdin(Stdio::piped());
        AppServer::spawn(command)
    }

    /// `tiller app-server` with `home/sessions` on a tmpfs of `kib` KiB in a
    /// mount namespace of its own (see [`Scratch::tiller_on_small_disk`]).
    pub fn spawn_on_small_disk(&self, kib: u32, full: bool) -> AppServer {
        let mut command = self
            .scratch
            .tiller_on_small_disk(&["app-server"], kib, full);
        command.stdin(Stdio::piped());
        AppServer::spawn(command)
    }

    /// A server, initialized, with one thread started in `work/`.
    pub async fn started(&self) -> (AppServer, String) {
        let mut server = self.spawn();
        server.initialize().await;
        let thread = server.start_thread(&self.scratch).await;
        (server, thread)
    }

    /// Every request the model received.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.mock.requests()
    }

    /// The end of every test: the model never refused a request for breaking
    /// the API contract, and no process the server started is left.
    pub async fn finish(&self) {
        for request in self.mock.requests() {
            if let Some(rejected) = &request.rejected {
                panic!("the mock refused a request for breaking the API contract: {rejected}");
            }
        }
        self.scratch.wait_no_process_left().await;
    }
}

/// The text of every message the model saw in `request`, in order.
pub fn texts_seen(request: &RecordedRequest) -> Vec<String> {
    request
        .input()
        .iter()
        .filter(|item| item["type"] == "message")
        .map(|item| {
            item["content"]
                .as_array()
                .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect())
                .unwrap_or_default()
        })
        .collect()
}

/// How many times `text` appears in the user messages of `request`.
pub fn times_seen(request: &RecordedRequest, text: &str) -> usize {
    texts_seen(request)
        .iter()
        .filter(|t| t.contains(text))
        .count()
}

/// A running `tiller app-server`.
pub struct AppServer {
    io: LineChild,
    next_id: i64,
    /// Methods of the requests sent, by id.
    sent: HashMap<i64, String>,
    /// Every line read, in order.
    pub log: Vec<Value>,
    /// Where [`AppServer::wait_for`] goes on looking.
    scan: usize,
    /// What the lines were checked against.
    pub kinds: BTreeSet<Kind>,
    eof: bool,
}

impl AppServer {
    fn spawn(mut command: tokio::process::Command) -> AppServer {
        let io = LineChild::spawn(&mut command);
        AppServer {
            io,
            next_id: 1,
            sent: HashMap::new(),
            log: Vec::new(),
            scan: 0,
            kinds: BTreeSet::new(),
            eof: false,
        }
    }

    /// The server's pid.
    pub fn pid(&self) -> i32 {
        self.io.pid
    }

    /// Write `bytes` to the server's stdin as they are.
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.try_write_raw(bytes).await.unwrap_or_else(|e| {
            panic!(
                "cannot write to the server ({e}); read so far:\n{}",
                self.dump()
            )
        });
    }

    /// Write `bytes` to the server's stdin; an error if it stopped reading.
    pub async fn try_write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let stdin = self.io.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(bytes).await?;
        stdin.flush().await
    }

    /// A request line (with its newline) for `method`, registered as sent:
    /// for a test that writes several requests in one write.
    pub fn request_line(&mut self, method: &str, params: Value) -> (i64, String) {
        let id = self.next_id;
        self.next_id += 1;
        self.sent.insert(id, method.to_string());
        let line = json!({"id": id, "method": method, "params": params});
        (id, format!("{line}\n"))
    }

    /// Send a request; returns its id.
    pub async fn send(&mut self, method: &str, params: Value) -> i64 {
        let (id, line) = self.request_line(method, params);
        self.write_raw(line.as_bytes()).await;
        id
    }

    /// Read one more line within `deadline`, check it, and log it; `false` at EOF.
    async fn read_line(&mut self, deadline: tokio::time::Instant, what: &str) -> bool {
        if self.eof {
            return false;
        }
        let line = match tokio::time::timeout_at(deadline, self.io.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => {
                self.eof = true;
                return false;
            }
            Err(_) => panic!(
                "waited {DEADLINE:?} for {what}; read so far:\n{}",
                self.dump()
            ),
        };
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the server printed a line that is not JSON ({e}): {line}"));
        let sent = value["id"]
            .as_i64()
            .and_then(|id| self.sent.get(&id))
            .map(String::as_str);
        let kind = check_line(&value, sent);
        self.kinds.insert(kind);
        self.log.push(value);
        true
    }

    /// The index in the log of the response to request `id`, reading until it comes.
    pub async fn response_at(&mut self, id: i64) -> usize {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut from = 0;
        loop {
            if let Some(at) = self.log[from..].iter().position(|l| is_response_to(l, id)) {
                return from + at;
            }
            from = self.log.len();
            let what = format!("the response to request {id}");
            assert!(
                self.read_line(deadline, &what).await,
                "the server closed stdout before {what}:\n{}",
                self.dump()
            );
        }
    }

    /// The outcome of request `id`: `Ok(result)` or `Err(error)`.
    pub async fn response(&mut self, id: i64) -> Result<Value, Value> {
        let at = self.response_at(id).await;
        let line = &self.log[at];
        match line.get("result") {
            Some(result) => Ok(result.clone()),
            None => Err(line["error"].clone()),
        }
    }

    /// Send a request that must succeed; returns its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params.clone()).await;
        self.response(id).await.unwrap_or_else(|error| {
            panic!(
                "{method} {params} failed: {error}\nread so far:\n{}",
                self.dump()
            )
        })
    }

    /// Send a request that must fail; returns its error.
    pub async fn call_err(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params.clone()).await;
        match self.response(id).await {
            Ok(result) => panic!("{method} {params} succeeded with {result}, expected an error"),
            Err(error) => error,
        }
    }

    /// `initialize` (checked) and the `initialized` notification.
    pub async fn initialize(&mut self) -> Value {
        let result = self
            .call(
                "initialize",
                json!({"clientInfo": {"name": "tests", "title": "Tests", "version": "1"}}),
            )
            .await;
        self.write_raw(b"{\"method\":\"initialized\"}\n").await;
        result
    }

    /// `thread/start` in the scratch's `work/`; returns the thread id after
    /// its `thread/started`.
    pub async fn start_thread(&mut self, scratch: &Scratch) -> String {
        let work = scratch.work();
        let result = self
            .call(
                "thread/start",
                json!({"cwd": work.to_str().unwrap(), "approvalPolicy": "never"}),
            )
            .await;
        let thread = result["thread"]["id"].as_str().unwrap().to_string();
        let id = thread.clone();
        self.wait_for("thread/started", move |l| {
            l["method"] == "thread/started" && l["params"]["thread"]["id"] == id.as_str()
        })
        .await;
        thread
    }

    /// `turn/start` with `text` (and a client id, if given); returns the turn id.
    pub async fn start_turn(
        &mut self,
        thread: &str,
        text: &str,
        client_id: Option<&str>,
    ) -> String {
        let mut params = json!({"threadId": thread, "input": [text_input(text)]});
        if let Some(client_id) = client_id {
            params["clientUserMessageId"] = json!(client_id);
        }
        let result = self.call("turn/start", params).await;
        result["turn"]["id"].as_str().unwrap().to_string()
    }

    /// Read until a line not yet looked at by `wait_for` satisfies `pred`;
    /// returns its index in the log.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> usize {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(at) = self.log[self.scan..].iter().position(&pred) {
                let at = self.scan + at;
                self.scan = at + 1;
                return at;
            }
            self.scan = self.log.len();
            assert!(
                self.read_line(deadline, what).await,
                "the server closed stdout before {what}:\n{}",
                self.dump()
            );
        }
    }

    /// Run a turn for each of `prompts`, one after the other, each to its
    /// end; their ids.
    pub async fn run_turns(&mut self, thread: &str, prompts: &[&str]) -> Vec<String> {
        let mut turns = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            let turn = self.start_turn(thread, prompt, None).await;
            self.wait_completed(&turn).await;
            turns.push(turn);
        }
        turns
    }

    /// Wait until `turn` has started an item of `kind` (its model request
    /// was answered: a command is running, a message streams).
    pub async fn wait_item_started(&mut self, turn: &str, kind: &str) -> usize {
        let (turn, kind) = (turn.to_string(), kind.to_string());
        self.wait_for(&format!("an item/started {kind}"), move |l| {
            l["method"] == "item/started"
                && l["params"]["turnId"] == turn.as_str()
                && l["params"]["item"]["type"] == kind.as_str()
        })
        .await
    }

    /// Wait for notification `method` about turn `turn`; returns its index.
    pub async fn wait_turn_event(&mut self, method: &str, turn: &str) -> usize {
        let what = format!("{method} of turn {turn}");
        let (method, turn) = (method.to_string(), turn.to_string());
        self.wait_for(&what, move |l| {
            l["method"] == method.as_str() && turn_of(l) == Some(turn.as_str())
        })
        .await
    }

    /// Read until `n` notifications `method` have come.
    pub async fn wait_count(&mut self, method: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let what = format!("{n} {method}");
        while self.notifications(method).len() < n {
            assert!(
                self.read_line(deadline, &what).await,
                "the server closed stdout before {what}:\n{}",
                self.dump()
            );
        }
    }

    /// Wait for `turn/completed` of `turn`; returns its params.
    pub async fn wait_completed(&mut self, turn: &str) -> Value {
        let at = self.wait_turn_event("turn/completed", turn).await;
        self.log[at]["params"].clone()
    }

    /// A round trip that must succeed: every line the server printed before
    /// its answer is in the log afterwards.
    pub async fn barrier(&mut self, thread: &str) {
        self.call("thread/queue/list", json!({"threadId": thread}))
            .await;
    }

    /// The lines of the log that are notifications `method`.
    pub fn notifications(&self, method: &str) -> Vec<&Value> {
        self.log.iter().filter(|l| l["method"] == method).collect()
    }

    /// The log, one line each, for failure messages.
    pub fn dump(&self) -> String {
        self.log
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut text = l.to_string();
                if text.len() > 400 {
                    let mut cut = 400;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                    text.push('…');
                }
                format!("{i:4} {text}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Send `signal` to the server (only to it).
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.io.pid), signal).unwrap();
    }

    /// Close stdin and let the server end; see [`AppServer::wait_exit`].
    pub async fn close(self) -> Ended {
        self.close_within(DEADLINE).await
    }

    /// Close stdin and wait, within `limit`, for the server to exit.
    pub async fn close_within(mut self, limit: Duration) -> Ended {
        self.io.stdin = None;
        self.wait_exit(limit).await
    }

    /// SIGKILL the server and reap it. What it printed must be a valid prefix
    /// of a run (a turn may lack its `turn/completed`).
    pub async fn kill(mut self) -> Vec<Value> {
        self.signal(Signal::SIGKILL);
        let status = tokio::time::timeout(DEADLINE, self.io.child.wait())
            .await
            .expect("a SIGKILLed server did not die")
            .unwrap();
        assert_eq!(status.code(), None, "{status:?}");
        self.drain().await;
        check_protocol(&self.log, &self.sent, false);
        self.log
    }

    /// Wait, within `limit`, for the server to exit; read the rest of its
    /// output and check the protocol invariants on everything it printed.
    pub async fn wait_exit(mut self, limit: Duration) -> Ended {
        let started = Instant::now();
        let status = match tokio::time::timeout(limit, self.io.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => {
                let _ = self.io.child.kill().await;
                panic!(
                    "the server did not exit within {limit:?}; read so far:\n{}",
                    self.dump()
                );
            }
        };
        let took = started.elapsed();
        self.drain().await;
        let stderr = tokio::time::timeout(DEADLINE, &mut self.io.stderr)
            .await
            .expect("stderr still open after the server exited")
            .unwrap();
        check_protocol(&self.log, &self.sent, true);
        Ended {
            status,
            took,
            log: self.log,
            kinds: self.kinds,
            stderr,
        }
    }

    async fn drain(&mut self) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while self.read_line(deadline, "the end of stdout").await {}
    }
}

/// How a server ended and everything it printed.
pub struct Ended {
    pub status: ExitStatus,
    /// From the close of stdin (or the call of `wait_exit`) to the exit.
    pub took: Duration,
    pub log: Vec<Value>,
    pub kinds: BTreeSet<Kind>,
    pub stderr: String,
}

impl Ended {
    /// Panic unless the server exited 0.
    pub fn assert_success(&self) {
        assert_eq!(
            self.status.code(),
            Some(0),
            "the server exited with {:?}; stderr:\n{}",
            self.status,
            self.stderr
        );
    }
}

/// A `shell` call running `script` with `bash -lc`.
pub fn shell(call_id: &str, script: &str) -> Step {
    Step::function_call(
        call_id,
        "shell",
        json!({"command": ["bash", "-lc", script]}),
    )
}

/// A text input item.
pub fn text_input(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// Whether `line` is the response (result or error) to request `id`.
pub fn is_response_to(line: &Value, id: i64) -> bool {
    line.get("method").is_none() && line["id"].as_i64() == Some(id)
}

/// The turn a notification is about: `params.turnId` or `params.turn.id`.
pub fn turn_of(line: &Value) -> Option<&str> {
    let params = &line["params"];
    params["turnId"]
        .as_str()
        .or_else(|| params["turn"]["id"].as_str())
}

/// Indexes of the lines of `log` that are notification `method` of `turn`.
pub fn positions(log: &[Value], method: &str, turn: &str) -> Vec<usize> {
    log.iter()
        .enumerate()
        .filter(|(_, l)| l["method"] == method && turn_of(l) == Some(turn))
        .map(|(i, _)| i)
        .collect()
}

/// The `item` of every `item/completed` of `turn` whose item is of `kind`.
pub fn completed_items<'a>(log: &'a [Value], turn: &str, kind: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|l| {
            l["method"] == "item/completed"
                && turn_of(l) == Some(turn)
                && l["params"]["item"]["type"] == kind
        })
        .map(|l| &l["params"]["item"])
        .collect()
}

/// The protocol invariants on everything a server printed:
/// - every request sent got exactly one response, and no response answers a
///   request that was not sent;
/// - a turn's `turn/start` response (if it was started by `turn/start`) comes
///   before any notification of that turn;
/// - each `turn/started` has one `turn/completed` (`complete`: the server
///   ended normally; otherwise at most one), and nothing of a turn follows it;
/// - every `item/started` has one `item/completed`, between its start and
///   its turn's `turn/completed`.
pub fn check_protocol(log: &[Value], sent: &HashMap<i64, String>, complete: bool) {
    let dump = || {
        log.iter()
            .enumerate()
            .map(|(i, l)| format!("{i:4} {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut answered: HashMap<i64, usize> = HashMap::new();
    for line in log.iter().filter(|l| l.get("method").is_none()) {
        let Some(id) = line["id"].as_i64() else {
            assert!(
                line["id"].is_null(),
                "a response with an id never sent: {line}"
            );
            continue;
        };
        assert!(
            sent.contains_key(&id),
            "a response to id {id}, never sent: {line}"
        );
        *answered.entry(id).or_default() += 1;
    }
    for (id, count) in &answered {
        assert_eq!(
            *count,
            1,
            "request {id} was answered {count} times:\n{}",
            dump()
        );
    }
    if complete {
        let mut missing: Vec<_> = sent
            .keys()
            .filter(|id| !answered.contains_key(id))
            .collect();
        missing.sort();
        assert!(
            missing.is_empty(),
            "requests never answered: {missing:?}:\n{}",
            dump()
        );
    }

    let turns: Vec<&str> = log
        .iter()
        .filter(|l| l["method"] == "turn/started")
        .filter_map(turn_of)
        .collect();
    for turn in &turns {
        let started = positions(log, "turn/started", turn);
        assert_eq!(
            started.len(),
            1,
            "turn {turn} started {} times:\n{}",
            started.len(),
            dump()
        );
        let completed = positions(log, "turn/completed", turn);
        if complete {
            assert_eq!(
                completed.len(),
                1,
                "turn {turn} has {} turn/completed:\n{}",
                completed.len(),
                dump()
            );
        } else {
            assert!(
                completed.len() <= 1,
                "turn {turn} completed twice:\n{}",
                dump()
            );
        }
        let first = log
            .iter()
            .position(|l| l.get("method").is_some() && turn_of(l) == Some(turn))
            .unwrap();
        // The response of the `turn/start` that created this turn, if any.
        if let Some(response) = log.iter().position(|l| {
            l.get("method").is_none()
                && l["result"]["turn"]["id"] == *turn
                && l["id"]
                    .as_i64()
                    .and_then(|id| sent.get(&id))
                    .is_some_and(|m| m == "turn/start")
        }) {
            assert!(
                response < first,
                "a notification of turn {turn} (line {first}) came before turn/start's \
                 response (line {response}):\n{}",
                dump()
            );
        }
        let end = completed.first().copied().unwrap_or(log.len());
        let after_end = (end + 1).min(log.len());
        if let Some(after) = log[after_end..]
            .iter()
            .position(|l| l.get("method").is_some() && turn_of(l) == Some(turn))
        {
            panic!(
                "line {} is about turn {turn} after its turn/completed (line {end}):\n{}",
                after_end + after,
                dump()
            );
        }
        let mut open: HashMap<&str, usize> = HashMap::new();
        for (i, line) in log.iter().enumerate().take(end) {
            if turn_of(line) != Some(turn) {
                continue;
            }
            let item = line["params"]["item"]["id"].as_str().unwrap_or_default();
            match line["method"].as_str() {
                Some("item/started") => {
                    assert!(
                        open.insert(item, i).is_none(),
                        "item {item} started twice:\n{}",
                        dump()
                    );
                }
                Some("item/completed") => {
                    assert!(
                        open.remove(item).is_some(),
                        "item {item} completed at line {i} but not open:\n{}",
                        dump()
                    );
                }
                _ => {}
            }
        }
        if !completed.is_empty() {
            assert!(
                open.is_empty(),
                "items of turn {turn} never completed: {open:?}:\n{}",
                dump()
            );
        }
    }
    // Notifications of a turn that never started.
    for line in log.iter().filter(|l| l.get("method").is_some()) {
        if let Some(turn) = turn_of(line) {
            assert!(
                turns.contains(&turn),
                "a notification of a turn never started: {line}"
            );
        }
    }
}
