//! Randomized lifecycle schedules against the real `tiller app-server`.
//!
//! A seeded PRNG interleaves `turn/start`, `turn/steer` and `turn/interrupt`
//! (with the current turn's id and with stale ones), `thread/interrupt` and
//! short pauses, while an in-process mock model answers each request with a
//! random step: streamed text, a quick `echo`, a long `sleep`, a call that
//! leaves a background grandchild, a 503, or a stream that drops. After each
//! schedule the protocol invariants are checked on everything the server
//! printed: one `turn/completed` per `turn/started` and nothing of a turn after
//! it, every `item/started` completed, one response per request, no request of
//! the mock refused for breaking the API contract, no tool process alive 2 s
//! after the last interrupt, a final turn that completes, exit 0 on EOF.
//!
//! A seed replays the same actions and the same model steps; the timing (and so
//! which action meets which state) is the machine's. On failure the seed and the
//! command that replays it are printed. `TILLER_SCHEDULES=<n>` sets how many
//! schedules run; `TILLER_SCHEDULE_SEED=<seed>` runs that one only.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tiller_mock_model::{Item, MockModel, Script, Step};
use tiller_test_support::pid_alive;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::support::{Scratch, describe_processes};

/// Replays one schedule.
const SEED_ENV: &str = "TILLER_SCHEDULE_SEED";
/// How many schedules to run.
const COUNT_ENV: &str = "TILLER_SCHEDULES";
/// Tags the server and, through inheritance, every tool it runs.
const TAG_ENV: &str = "TILLER_SCHEDULE";
/// The engine's marker on every tool process (not on the orphan watchdog).
const TOOL_MARKER_ENV: &str = "TILLER_TOOL_MARKER";
/// About 0.4 s each in a debug build on 2 cores: about 15 s in all.
const DEFAULT_SCHEDULES: u64 = 40;
/// How long after the last interrupt no tool process may be alive.
const PROCESS_GRACE: Duration = Duration::from_secs(2);
/// How many unused steps the feeder keeps queued at the mock, so a request that
/// follows another within microseconds (a steer cuts the stream) still finds one.
const STEPS_AHEAD: usize = 3;
/// The deadline for anything the schedule waits on that should be prompt.
const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_lifecycle_schedules_keep_the_protocol_invariants() {
    let seeds: Vec<u64> = match std::env::var(SEED_ENV) {
        Ok(seed) => vec![
            seed.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{SEED_ENV}={seed}: {e}")),
        ],
        Err(_) => {
            let count = std::env::var(COUNT_ENV)
                .ok()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(DEFAULT_SCHEDULES);
            let base = fastrand::u64(..u64::MAX / 2);
            (base..base + count).collect()
        }
    };
    let started = Instant::now();
    let mut exercised: std::collections::BTreeMap<String, usize> = Default::default();
    for seed in &seeds {
        let seed = *seed;
        // A task of its own, so a failed assertion is caught here and the seed
        // printed with it.
        match tokio::spawn(run_schedule(seed)).await {
            Ok(seen) => {
                for what in seen {
                    *exercised.entry(what).or_default() += 1;
                }
            }
            Err(error) => panic!(
                "schedule {seed} failed: {error}\nreplay it with:\n  \
                 {SEED_ENV}={seed} cargo test -p tiller-cli app_server_schedules -- --nocapture"
            ),
        }
    }
    println!(
        "{} schedules passed in {:.1?} (seeds {}..={})",
        seeds.len(),
        started.elapsed(),
        seeds.first().copied().unwrap_or_default(),
        seeds.last().copied().unwrap_or_default()
    );
    println!("exercised: {exercised:?}");
}

/// What a model step does, as far as the end of a schedule must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepKind {
    Text,
    QuickShell,
    LongShell,
    Grandchild,
    Unavailable,
    Dropped,
}

/// Keeps [`STEPS_AHEAD`] random steps queued at the mock as requests arrive;
/// once told the schedule is over, plain text only.
struct Feeder {
    state: Arc<Mutex<FeedState>>,
    task: JoinHandle<()>,
}

struct FeedState {
    rng: fastrand::Rng,
    random_only: bool,
    /// Every step pushed, in order (the mock's step indexes).
    pushed: Vec<StepKind>,
    next_call: u64,
}

impl Feeder {
    fn start(mock: &Arc<MockModel>, seed: u64) -> Feeder {
        let state = Arc::new(Mutex::new(FeedState {
            rng: fastrand::Rng::with_seed(seed ^ 0x5eed_f00d),
            random_only: true,
            pushed: Vec::new(),
            next_call: 0,
        }));
        top_up(mock, &state);
        let task = tokio::spawn({
            let mock = Arc::clone(mock);
            let state = Arc::clone(&state);
            async move {
                let mut seen = 0;
                while let Ok(requests) = mock
                    .wait_for_requests(seen + 1, Duration::from_secs(3600))
                    .await
                {
                    seen = requests.len();
                    top_up(&mock, &state);
                }
            }
        });
        Feeder { state, task }
    }

    /// From now on the mock answers with text; returns how many random steps
    /// were pushed before (the ones a drain must use up).
    fn text_from_now(&self) -> usize {
        let mut state = self.state.lock().unwrap();
        state.random_only = false;
        state.pushed.len()
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn top_up(mock: &MockModel, state: &Mutex<FeedState>) {
    let mut state = state.lock().unwrap();
    while mock.remaining_steps() < STEPS_AHEAD {
        let (kind, step) = if state.random_only {
            random_step(&mut state)
        } else {
            (StepKind::Text, Step::text("done"))
        };
        state.pushed.push(kind);
        mock.push_step(step);
    }
}

fn random_step(state: &mut FeedState) -> (StepKind, Step) {
    state.next_call += 1;
    let call_id = format!("call_{}", state.next_call);
    let rng = &mut state.rng;
    let shell = |script: &str| {
        Step::function_call(
            call_id.clone(),
            "shell",
            json!({"command": ["bash", "-lc", script]}),
        )
    };
    match rng.u32(0..100) {
        0..30 => {
            let deltas: Vec<String> = (0..rng.usize(1..8))
                .map(|i| format!("w{i}{} ", rng.alphanumeric()))
                .collect();
            let mut step =
                Step::response(vec![Item::text_deltas(deltas)]).with_delta_delay(rng.u64(0..15));
            if rng.bool() {
                step = step.with_stall(rng.usize(0..4), rng.u64(1..30));
            }
            (StepKind::Text, step)
        }
        30..50 => (StepKind::QuickShell, shell("echo hi")),
        50..65 => (StepKind::LongShell, shell("sleep 30")),
        65..75 => (StepKind::Grandchild, shell("sh -c 'sleep 62 & sleep 63'")),
        75..85 => (StepKind::Unavailable, Step::http_status(503)),
        _ => {
            let deltas: Vec<String> = (0..6).map(|i| format!("d{i} ")).collect();
            let step = Step::response(vec![Item::text_deltas(deltas)])
                .with_delta_delay(rng.u64(0..10))
                .with_drop_after(rng.usize(0..5));
            (StepKind::Dropped, step)
        }
    }
}

/// One client action of a schedule.
#[derive(Debug, Clone, Copy)]
enum Action {
    Start,
    SteerCurrent,
    SteerStale,
    InterruptCurrent,
    InterruptStale,
    InterruptThread,
    Pause(u64),
}

fn random_action(rng: &mut fastrand::Rng) -> Action {
    match rng.u32(0..100) {
        0..25 => Action::Start,
        25..40 => Action::SteerCurrent,
        40..47 => Action::SteerStale,
        47..60 => Action::InterruptCurrent,
        60..67 => Action::InterruptStale,
        67..75 => Action::InterruptThread,
        _ => Action::Pause(rng.u64(0..=30)),
    }
}

async fn run_schedule(seed: u64) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let scratch = Scratch::new();
    let mock = Arc::new(MockModel::start(Script::new(Vec::new())).await.unwrap());
    let feeder = Feeder::start(&mock, seed);
    // One retry of each kind: 503s and drops are retried, then fail the turn.
    scratch.config(&format!(
        "model_provider = \"mock\"\n\n[model_providers.mock]\nbase_url = \"{}\"\n\
         request_max_retries = 1\nstream_max_retries = 1\n",
        mock.base_url()
    ));
    let tag = format!("{seed}-{}", std::process::id());
    let mut server = AppServer::spawn(&scratch, &tag);
    let thread = server.open_thread(&scratch).await;

    let actions: Vec<Action> = (0..rng.usize(6..24))
        .map(|_| random_action(&mut rng))
        .collect();
    for (n, action) in actions.iter().enumerate() {
        server.pump();
        let wait_for_answer = rng.bool();
        let id = match *action {
            Action::Pause(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                continue;
            }
            Action::Start => server.send(
                "turn/start",
                json!({"threadId": thread, "input": [{"type": "text", "text": format!("go {n}")}],
                       "clientUserMessageId": format!("start-{n}")}),
            ).await,
            Action::SteerCurrent | Action::SteerStale => {
                let (turn, stale) = server.turn_id(matches!(action, Action::SteerStale));
                let id = server.send(
                    "turn/steer",
                    json!({"threadId": thread, "expectedTurnId": turn,
                           "input": [{"type": "text", "text": format!("steer {n}")}],
                           "clientUserMessageId": format!("steer-{n}")}),
                ).await;
                if stale {
                    server.must_fail.insert(id);
                }
                id
            }
            Action::InterruptCurrent | Action::InterruptStale => {
                let (turn, _) = server.turn_id(matches!(action, Action::InterruptStale));
                server.send(
                    "turn/interrupt",
                    json!({"threadId": thread, "turnId": turn}),
                ).await
            }
            Action::InterruptThread => {
                server.send("thread/interrupt", json!({"threadId": thread})).await
            }
        };
        if wait_for_answer {
            server.response(id).await;
        }
    }

    // The end: every request answered, the thread interrupted, every turn over.
    server.all_answered().await;
    let mut last_interrupt = Instant::now();
    let id = server
        .send("thread/interrupt", json!({"threadId": thread}))
        .await;
    server.response(id).await;
    server
        .wait_until("every started turn to complete", AppServer::no_turn_running)
        .await;
    wait_no_tool_left(
        &tag,
        last_interrupt + PROCESS_GRACE,
        "after the last interrupt",
    )
    .await;

    // Use up the random steps still queued at the mock, interrupting what runs
    // long, so that the final turn meets text only.
    let random_steps = feeder.text_from_now();
    let mut drains = 0;
    while used_steps(&mock) < random_steps {
        drains += 1;
        assert!(
            drains <= 3 * STEPS_AHEAD,
            "the drain does not use up the steps"
        );
        let turn = server.start_turn(&thread, &format!("drain {drains}")).await;
        if !server.completes_unless_long(&turn).await {
            last_interrupt = Instant::now();
            let id = server
                .send(
                    "turn/interrupt",
                    json!({"threadId": thread, "turnId": turn}),
                )
                .await;
            server.response(id).await;
            server.wait_completed(&turn, WAIT).await.unwrap_or_else(|| {
                panic!(
                    "turn {turn} did not complete after its interrupt{}",
                    server.dump()
                )
            });
        }
    }
    wait_no_tool_left(&tag, last_interrupt + PROCESS_GRACE, "after the drain").await;

    let turn = server.start_turn(&thread, "final").await;
    let completed = server
        .wait_completed(&turn, WAIT)
        .await
        .unwrap_or_else(|| panic!("the final turn did not complete{}", server.dump()));
    assert_eq!(
        completed["params"]["turn"]["status"],
        "completed",
        "the final turn: {completed}{}",
        server.dump()
    );

    let (log, sent) = server.close().await;
    check_log(&log);
    let requests = mock.requests();
    for (n, request) in requests.iter().enumerate() {
        assert!(
            request.rejected.is_none(),
            "model request {} was refused: {:?}\nbody: {}",
            n + 1,
            request.rejected,
            request.raw_body
        );
        assert!(
            request.step_index.is_some(),
            "model request {} found no step (the feeder fell behind)",
            n + 1
        );
    }
    wait_no_tool_left(&tag, Instant::now() + PROCESS_GRACE, "after exit").await;
    drop(feeder);
    tally(&log, &sent)
}

/// What a schedule exercised, one word per event of interest.
fn tally(log: &[Value], sent: &[(u64, String)]) -> Vec<String> {
    let mut seen = Vec::new();
    for message in log {
        match message["method"].as_str() {
            Some("turn/completed") => seen.push(format!(
                "turn {}",
                message["params"]["turn"]["status"].as_str().unwrap_or("?")
            )),
            Some("item/started") if message["params"]["item"]["type"] == "commandExecution" => {
                seen.push("command".to_owned());
            }
            Some("error") => seen.push("retry".to_owned()),
            Some(_) => {}
            None => {
                let method = message["id"]
                    .as_u64()
                    .and_then(|id| sent.iter().find(|(s, _)| *s == id))
                    .map_or("?", |(_, m)| m.as_str());
                let outcome = if message.get("error").is_some() {
                    "refused"
                } else {
                    "ok"
                };
                seen.push(format!("{method} {outcome}"));
            }
        }
    }
    seen
}

/// How many steps of the script the mock has played.
fn used_steps(mock: &MockModel) -> usize {
    mock.requests()
        .iter()
        .filter_map(|r| r.step_index)
        .max()
        .map_or(0, |i| i + 1)
}

/// Live tool processes (and their descendants) of the schedule tagged `tag`.
fn tools_left(tag: &str) -> Vec<i32> {
    let entry = format!("{TAG_ENV}={tag}");
    let marker = format!("{TOOL_MARKER_ENV}=");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
                return false;
            };
            let mut vars = environ.split(|b| *b == 0);
            let tagged = vars.clone().any(|e| e == entry.as_bytes());
            tagged && vars.any(|e| e.starts_with(marker.as_bytes())) && pid_alive(*pid)
        })
        .collect()
}

async fn wait_no_tool_left(tag: &str, deadline: Instant, when: &str) {
    loop {
        let alive = tools_left(tag);
        if alive.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "tool processes still alive {when} (2 s): {}",
            describe_processes(&alive)
        );
        // Not our children: /proc is all there is to watch.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `tiller app-server` and what it printed so far.
struct AppServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: JoinHandle<String>,
    /// Every line printed, parsed.
    log: Vec<Value>,
    next_id: u64,
    sent: Vec<(u64, String)>,
    responses: HashMap<u64, Value>,
    /// Requests that must be answered with an error (steer of a finished turn).
    must_fail: HashSet<u64>,
    /// The turn last started (from `turn/start`'s result or `turn/started`).
    current: Option<String>,
    completed: HashMap<String, Value>,
    started: HashSet<String>,
}

impl AppServer {
    fn spawn(scratch: &Scratch, tag: &str) -> AppServer {
        let mut command = scratch.tiller(&["app-server"]);
        command.env(TAG_ENV, tag).stdin(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut err, &mut text).await;
            String::from_utf8_lossy(&text).into_owned()
        });
        AppServer {
            child,
            stdin,
            lines,
            stderr,
            log: Vec::new(),
            next_id: 0,
            sent: Vec::new(),
            responses: HashMap::new(),
            must_fail: HashSet::new(),
            current: None,
            completed: HashMap::new(),
            started: HashSet::new(),
        }
    }

    async fn open_thread(&mut self, scratch: &Scratch) -> String {
        let id = self
            .send(
                "initialize",
                json!({"clientInfo": {"name": "schedules", "title": "Schedules", "version": "1"}}),
            )
            .await;
        self.response(id).await;
        self.write(&json!({"method": "initialized"})).await;
        let id = self
            .send(
                "thread/start",
                json!({"cwd": scratch.work(), "approvalPolicy": "never"}),
            )
            .await;
        let started = self.response(id).await;
        started["result"]["thread"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("thread/start: {started}"))
            .to_owned()
    }

    /// Send a request without waiting for its answer; returns its id.
    async fn send(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.sent.push((id, method.to_owned()));
        self.write(&json!({"id": id, "method": method, "params": params}))
            .await;
        id
    }

    async fn write(&mut self, line: &Value) {
        let mut bytes = serde_json::to_vec(line).unwrap();
        bytes.push(b'\n');
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(&bytes).await.unwrap();
    }

    /// Read whatever the server has printed already.
    fn pump(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.record(&line);
        }
    }

    fn record(&mut self, line: &str) {
        let message: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        let method = message["method"].as_str().unwrap_or_default();
        match method {
            "" => {
                let Some(id) = message["id"].as_u64() else {
                    panic!("a response without a request id: {message}");
                };
                if self
                    .sent
                    .iter()
                    .any(|(sent, m)| *sent == id && m == "turn/start")
                    && let Some(turn) = message["result"]["turn"]["id"].as_str()
                    && !self.completed.contains_key(turn)
                {
                    self.current = Some(turn.to_owned());
                }
                if self.responses.insert(id, message.clone()).is_some() {
                    panic!("request {id} answered twice: {message}{}", self.dump());
                }
            }
            "turn/started" => {
                if let Some(turn) = message["params"]["turn"]["id"].as_str() {
                    self.started.insert(turn.to_owned());
                    self.current = Some(turn.to_owned());
                }
            }
            "turn/completed" => {
                if let Some(turn) = message["params"]["turn"]["id"].as_str() {
                    self.completed.insert(turn.to_owned(), message.clone());
                    if self.current.as_deref() == Some(turn) {
                        self.current = None;
                    }
                }
            }
            _ => {}
        }
        self.log.push(message);
    }

    /// The next line, within `deadline`; `None` when it passed.
    async fn next_line(&mut self, deadline: tokio::time::Instant) -> Option<()> {
        match tokio::time::timeout_at(deadline, self.lines.recv()).await {
            Ok(Some(line)) => {
                self.record(&line);
                Some(())
            }
            Ok(None) => panic!("the server closed stdout{}", self.dump()),
            Err(_) => None,
        }
    }

    async fn wait_until(&mut self, what: &str, done: impl Fn(&AppServer) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        self.pump();
        while !done(self) {
            if self.next_line(deadline).await.is_none() {
                panic!("waited {WAIT:?} for {what}{}", self.dump());
            }
        }
    }

    async fn response(&mut self, id: u64) -> Value {
        self.wait_until(&format!("the response to request {id}"), |s| {
            s.responses.contains_key(&id)
        })
        .await;
        self.responses[&id].clone()
    }

    async fn all_answered(&mut self) {
        self.wait_until("a response to every request", |s| {
            s.sent.iter().all(|(id, _)| s.responses.contains_key(id))
        })
        .await;
    }

    fn no_turn_running(&self) -> bool {
        self.started.iter().all(|t| self.completed.contains_key(t))
    }

    /// The running turn's id, or a stale one (a finished turn's, or one never
    /// issued); and whether it is known to be stale.
    fn turn_id(&self, stale: bool) -> (String, bool) {
        if !stale && let Some(current) = &self.current {
            return (current.clone(), false);
        }
        let finished = self.completed.keys().max().cloned();
        (
            finished.unwrap_or_else(|| "turn-never-issued".to_owned()),
            true,
        )
    }

    async fn start_turn(&mut self, thread: &str, text: &str) -> String {
        let id = self
            .send(
                "turn/start",
                json!({"threadId": thread, "input": [{"type": "text", "text": text}]}),
            )
            .await;
        let response = self.response(id).await;
        response["result"]["turn"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("turn/start: {response}{}", self.dump()))
            .to_owned()
    }

    async fn wait_completed(&mut self, turn: &str, limit: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        self.pump();
        while !self.completed.contains_key(turn) {
            self.next_line(deadline).await?;
        }
        self.completed.get(turn).cloned()
    }

    /// Wait for `turn` to complete, unless it starts a `sleep` (which would
    /// take half a minute): `false` then, for the caller to interrupt it.
    async fn completes_unless_long(&mut self, turn: &str) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = 0;
        loop {
            for message in &self.log[seen..] {
                let long = message["method"] == "item/started"
                    && message["params"]["turnId"] == turn
                    && message["params"]["item"]["command"]
                        .as_str()
                        .is_some_and(|c| c.contains("sleep"));
                if long {
                    return false;
                }
            }
            seen = self.log.len();
            if self.completed.contains_key(turn) {
                return true;
            }
            if self.next_line(deadline).await.is_none() {
                return false;
            }
        }
    }

    /// Close stdin; the server must exit 0 promptly. Returns everything it printed.
    async fn close(mut self) -> (Vec<Value>, Vec<(u64, String)>) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the server did not exit on EOF{}", self.dump()))
            .unwrap();
        while let Some(line) = self.lines.recv().await {
            self.record(&line);
        }
        let stderr = tokio::time::timeout(WAIT, &mut self.stderr)
            .await
            .map(Result::unwrap_or_default)
            .unwrap_or_default();
        assert_eq!(
            status.code(),
            Some(0),
            "the server exited with {status} on EOF\nstderr:\n{stderr}"
        );
        for (id, method) in &self.sent {
            assert!(
                self.responses.contains_key(id),
                "{method} (request {id}) was never answered"
            );
        }
        for id in &self.must_fail {
            let response = &self.responses[id];
            assert!(
                response.get("error").is_some(),
                "a steer with a stale turn id was accepted: {response}"
            );
        }
        (
            std::mem::take(&mut self.log),
            std::mem::take(&mut self.sent),
        )
    }

    /// The last lines printed, for failure messages.
    fn dump(&self) -> String {
        let tail: Vec<String> = self
            .log
            .iter()
            .rev()
            .take(40)
            .rev()
            .map(Value::to_string)
            .collect();
        format!(
            "\nsent: {:?}\nlast lines printed:\n{}",
            self.sent,
            tail.join("\n")
        )
    }
}

/// The turn a notification belongs to, if any.
fn turn_of(message: &Value) -> Option<&str> {
    let params = &message["params"];
    params["turnId"]
        .as_str()
        .or_else(|| params["turn"]["id"].as_str())
}

/// The protocol invariants on everything the server printed, in order.
fn check_log(log: &[Value]) {
    let mut started: HashSet<&str> = HashSet::new();
    let mut completed: HashSet<&str> = HashSet::new();
    let mut open_items: HashMap<&str, HashSet<&str>> = HashMap::new();
    let context = |at: usize| {
        let from = at.saturating_sub(15);
        log[from..(at + 3).min(log.len())]
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (at, message) in log.iter().enumerate() {
        let Some(method) = message["method"].as_str() else {
            continue;
        };
        let Some(turn) = turn_of(message) else {
            continue;
        };
        assert!(
            !completed.contains(turn),
            "{method} of turn {turn} after its turn/completed (line {at}):\n{}",
            context(at)
        );
        match method {
            "turn/started" => {
                assert!(
                    started.insert(turn),
                    "turn {turn} started twice:\n{}",
                    context(at)
                );
            }
            "turn/completed" => {
                assert!(
                    started.contains(turn),
                    "turn/completed of {turn} without turn/started:\n{}",
                    context(at)
                );
                let open = open_items.remove(turn).unwrap_or_default();
                assert!(
                    open.is_empty(),
                    "turn {turn} completed with items never completed {open:?}:\n{}",
                    context(at)
                );
                completed.insert(turn);
            }
            other => {
                assert!(
                    started.contains(turn),
                    "{other} of turn {turn} before its turn/started:\n{}",
                    context(at)
                );
                let item = message["params"]["item"]["id"].as_str();
                match (other, item) {
                    ("item/started", Some(item)) => {
                        assert!(
                            open_items.entry(turn).or_default().insert(item),
                            "item {item} started twice:\n{}",
                            context(at)
                        );
                    }
                    ("item/completed", Some(item)) => {
                        assert!(
                            open_items.entry(turn).or_default().remove(item),
                            "item/completed of {item} without item/started:\n{}",
                            context(at)
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    let unfinished: Vec<&&str> = started.difference(&completed).collect();
    assert!(
        unfinished.is_empty(),
        "turns without turn/completed: {unfinished:?}"
    );
}
