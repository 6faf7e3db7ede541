//! One schedule, run: the client's actions against the current server, a kill
//! and `thread/resume` in a new one, and the end, which leaves nothing running,
//! nothing queued and the model's script used up, then checks everything.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tiller_mock_model::{MockModel, Script};

use super::checks::{Start, check_server};
use super::ledger::Ledger;
use super::model::{Feeder, PID_FILE, STEPS_AHEAD, wait_no_tool_left};
use super::plan::Action;
use super::server::{Ended, Sent, Server, excerpt};
use crate::suite::support::Scratch;

/// How long after the last interrupt (or a kill) no tool process may be
/// alive: a deadline for a leak, not a latency (a kill takes milliseconds,
/// `scripts/bench` measures it; after a SIGKILL of the server the orphan
/// watchdog scans `/proc`, which a loaded machine makes slow).
const PROCESS_GRACE: Duration = Duration::from_secs(5);
/// The text of the final turn, which must complete.
const FINAL_INPUT: &str = "drain-final";

pub struct Schedule {
    rng: fastrand::Rng,
    scratch: Scratch,
    tag: String,
    mock: Arc<MockModel>,
    feeder: Feeder,
    server: Option<Server>,
    /// Which server runs (0 is the first).
    server_no: usize,
    start: Start,
    thread: String,
    ledger: Ledger,
    /// Requests sent with a client id, for repeats.
    idempotent: Vec<Sent>,
    /// What the schedule did and saw, for the summary.
    pub tally: BTreeMap<String, usize>,
    last_interrupt: Instant,
}

impl Schedule {
    pub async fn new(seed: u64) -> Schedule {
        let scratch = Scratch::new();
        let mock = Arc::new(MockModel::start(Script::new(Vec::new())).await.unwrap());
        let feeder = Feeder::start(&mock, seed);
        // One retry of each kind: 503s and drops are retried, then fail the turn.
        scratch.mock_config(
            &mock.base_url(),
            "request_max_retries = 1\nstream_max_retries = 1\n",
        );
        let tag = format!("{seed}-{}", std::process::id());
        let mut server = Server::spawn(&scratch, &tag);
        server.initialize().await;
        let id = server
            .send(
                "thread/start",
                json!({"cwd": scratch.work(), "approvalPolicy": "never"}),
            )
            .await;
        let started = server.result(id).await;
        let thread = started["thread"]["id"].as_str().unwrap().to_owned();
        Schedule {
            rng: fastrand::Rng::with_seed(seed ^ 0xac71_0225),
            scratch,
            tag,
            mock,
            feeder,
            server: Some(server),
            server_no: 0,
            start: Start::default(),
            thread,
            ledger: Ledger::default(),
            idempotent: Vec::new(),
            tally: BTreeMap::new(),
            last_interrupt: Instant::now(),
        }
    }

    fn server(&mut self) -> &mut Server {
        self.server.as_mut().expect("a server runs")
    }

    fn pid_file(&self) -> PathBuf {
        self.scratch.work_file(PID_FILE)
    }

    fn count(&mut self, what: impl Into<String>) {
        *self.tally.entry(what.into()).or_default() += 1;
    }

    /// Action number `n`.
    pub async fn act(&mut self, n: usize, action: Action) {
        self.count(format!("action {}", action.name()));
        self.server().pump();
        let wait_for_answer = self.rng.bool();
        let thread = self.thread.clone();
        let id = match action {
            Action::Pause(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                return;
            }
            Action::Kill => return self.kill_and_resume().await,
            Action::Start => self.start_turn(&format!("start-{n}")).await,
            Action::StartThenSteer | Action::StartThenInterrupt => {
                let id = self.start_turn(&format!("start-{n}")).await;
                let result = self.server().result(id).await;
                let turn = result["turn"]["id"].clone();
                let (method, params) = match action {
                    Action::StartThenSteer => ("turn/steer", steer_params(&thread, &turn, n)),
                    _ => (
                        "turn/interrupt",
                        json!({"threadId": thread, "turnId": turn}),
                    ),
                };
                let sent = Sent {
                    method: method.to_owned(),
                    params,
                    stale: false,
                    just_returned: true,
                };
                self.send_idempotent(sent).await
            }
            Action::SteerCurrent | Action::SteerStale => {
                let (turn, stale) = self.turn_id(matches!(action, Action::SteerStale));
                let sent = Sent {
                    method: "turn/steer".to_owned(),
                    params: steer_params(&thread, &json!(turn), n),
                    stale,
                    just_returned: false,
                };
                self.send_idempotent(sent).await
            }
            Action::InterruptCurrent | Action::InterruptStale => {
                let (turn, _) = self.turn_id(matches!(action, Action::InterruptStale));
                let params = json!({"threadId": thread, "turnId": turn});
                self.server().send("turn/interrupt", params).await
            }
            Action::InterruptThread => {
                let params = json!({"threadId": thread});
                self.server().send("thread/interrupt", params).await
            }
            Action::QueueAdd => {
                let text = format!("queue-{n}");
                let params = json!({"threadId": thread, "clientUserMessageId": text,
                                    "input": [{"type": "text", "text": text}]});
                self.server()
                    .send_as(plain("thread/queue/add", params))
                    .await
            }
            Action::QueueList => {
                let params = json!({"threadId": thread});
                self.server().send("thread/queue/list", params).await
            }
            Action::QueueDelete => {
                let entry = self.an_entry_id();
                let params = json!({"threadId": thread, "queuedSubmissionId": entry});
                self.server().send("thread/queue/delete", params).await
            }
            Action::Repeat => {
                if self.idempotent.is_empty() {
                    return;
                }
                let at = self.rng.usize(..self.idempotent.len());
                let mut sent = self.idempotent[at].clone();
                sent.just_returned = false;
                self.server().send_as(sent).await
            }
        };
        if wait_for_answer {
            self.server().response(id).await;
        }
    }

    async fn start_turn(&mut self, text: &str) -> i64 {
        let params = json!({"threadId": self.thread, "clientUserMessageId": text,
                            "input": [{"type": "text", "text": text}]});
        self.send_idempotent(plain("turn/start", params)).await
    }

    async fn send_idempotent(&mut self, sent: Sent) -> i64 {
        self.idempotent.push(sent.clone());
        self.server().send_as(sent).await
    }

    /// The running turn's id, or a stale one (a finished turn's, one of an
    /// earlier server, or one never issued); and whether it is known stale.
    fn turn_id(&mut self, stale: bool) -> (String, bool) {
        let server = self.server();
        if !stale && let Some(current) = server.current() {
            return (current.to_owned(), false);
        }
        let finished = server
            .a_finished_turn()
            .map(str::to_owned)
            .or_else(|| self.start.resumed_turns.last().cloned());
        (
            finished.unwrap_or_else(|| "turn-never-issued".to_owned()),
            true,
        )
    }

    /// An entry id seen in an answer, or (one time in five) one never issued.
    fn an_entry_id(&mut self) -> String {
        let mut known: Vec<String> = self.ledger.entries.keys().cloned().collect();
        for line in &self.server().log {
            if let Some(id) = line["result"]["queuedSubmission"]["id"].as_str() {
                known.push(id.to_owned());
            }
        }
        known.sort();
        if known.is_empty() || self.rng.u32(0..5) == 0 {
            return "entry-never-issued".to_owned();
        }
        known.swap_remove(self.rng.usize(..known.len()))
    }

    /// SIGKILL the server, check what it printed, check that its tools die,
    /// and resume the thread in a new server.
    async fn kill_and_resume(&mut self) {
        let ended = self.server.take().expect("a server runs").kill().await;
        let at_kill = check_server(&ended, self.server_no, &self.start, &mut self.ledger);
        self.tally_server(&ended);
        let deadline = Instant::now() + PROCESS_GRACE;
        wait_no_tool_left(&self.tag, &self.pid_file(), deadline, "5 s after the kill").await;

        let mut server = Server::spawn(&self.scratch, &self.tag);
        self.server_no += 1;
        server.initialize().await;
        let params = json!({"threadId": self.thread, "cwd": self.scratch.work(),
                            "approvalPolicy": "never"});
        let id = server.send("thread/resume", params).await;
        let resumed = server.result(id).await;
        assert_eq!(resumed["thread"]["id"], self.thread.as_str(), "{resumed}");
        assert_eq!(resumed["thread"]["status"]["type"], "idle", "{resumed}");
        let turns = resumed["thread"]["turns"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let killed = tail(&ended.log);
        let (cut_off, unseen_input) =
            self.ledger
                .check_resumed_turns(&turns, self.server_no, &killed);
        *self
            .tally
            .entry("turn cut off by the kill".to_owned())
            .or_default() += cut_off;
        let id = server
            .send("thread/queue/list", json!({"threadId": self.thread}))
            .await;
        let listed = server.result(id).await["data"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        self.ledger
            .check_resumed_queue(&listed, &at_kill, &unseen_input, &killed);
        *self
            .tally
            .entry("entry queued across a kill".to_owned())
            .or_default() += listed.len();
        self.start = Start {
            queue: listed,
            resumed_turns: turns
                .iter()
                .filter_map(|t| t["id"].as_str().map(str::to_owned))
                .collect(),
        };
        self.server = Some(server);
    }

    /// The end: every request answered, everything interrupted and no tool
    /// left; then the random steps used up and the queue run, interrupting
    /// what runs long; then a final turn that must complete; EOF, exit 0; and
    /// the checks on everything.
    pub async fn finish(mut self) -> BTreeMap<String, usize> {
        let thread = self.thread.clone();
        self.server().all_answered().await;
        let id = self
            .server()
            .send("thread/interrupt", json!({"threadId": thread}))
            .await;
        self.server().result(id).await;
        self.last_interrupt = Instant::now();
        // A turn that completed just before the interrupt may have started the
        // queue's turn after it.
        self.settle().await;
        let deadline = self.last_interrupt + PROCESS_GRACE;
        wait_no_tool_left(
            &self.tag,
            &self.pid_file(),
            deadline,
            "5 s after the last interrupt",
        )
        .await;

        let random_steps = self.feeder.text_from_now();
        for drain in 1.. {
            self.settle().await;
            let id = self
                .server()
                .send("thread/queue/list", json!({"threadId": thread}))
                .await;
            let queued = self.server().result(id).await["data"].clone();
            let idle = !self.server().turn_running();
            if idle && queued == json!([]) && self.mock.used_steps() >= random_steps {
                break;
            }
            assert!(drain <= 3 * STEPS_AHEAD + 8, "the drain does not end");
            if idle {
                self.start_turn(&format!("drain-{drain}")).await;
            }
        }
        let deadline = self.last_interrupt + PROCESS_GRACE;
        wait_no_tool_left(&self.tag, &self.pid_file(), deadline, "5 s after the drain").await;

        let id = self.start_turn(FINAL_INPUT).await;
        let turn = self.server().result(id).await["turn"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.server()
            .wait_until("the final turn to complete", |s| s.is_completed(&turn))
            .await;
        let id = self
            .server()
            .send("thread/queue/list", json!({"threadId": thread}))
            .await;
        assert_eq!(self.server().result(id).await["data"], json!([]));

        let ended = self.server.take().expect("a server runs").close().await;
        check_server(&ended, self.server_no, &self.start, &mut self.ledger);
        self.tally_server(&ended);
        let requests = self.mock.requests();
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
        self.ledger.check_model_input(&requests, FINAL_INPUT);
        let final_status = self.ledger.statuses().last().cloned();
        assert_eq!(final_status.as_deref(), Some("completed"), "the final turn");
        let deadline = Instant::now() + PROCESS_GRACE;
        wait_no_tool_left(&self.tag, &self.pid_file(), deadline, "5 s after exit").await;
        // Nor any orphan watchdog of a killed server.
        self.scratch.wait_no_process_left().await;
        self.tally
    }

    /// Wait until no turn runs, interrupting any that starts a `sleep`.
    async fn settle(&mut self) {
        loop {
            let server = self.server();
            server.pump();
            let Some(turn) = server.current().map(str::to_owned) else {
                assert!(!server.turn_running(), "a turn runs the client lost");
                return;
            };
            if server.completes_unless_long(&turn).await {
                continue;
            }
            let params = json!({"threadId": self.thread, "turnId": turn});
            let id = self.server().send("turn/interrupt", params).await;
            self.server().response(id).await;
            self.last_interrupt = Instant::now();
            self.server()
                .wait_until("an interrupted turn to complete", |s| s.is_completed(&turn))
                .await;
        }
    }

    /// Count what a server's log shows.
    fn tally_server(&mut self, ended: &Ended) {
        self.count(if ended.killed {
            "server killed"
        } else {
            "server closed"
        });
        for line in &ended.log {
            let what = match line["method"].as_str() {
                Some("turn/completed") => {
                    format!(
                        "turn {}",
                        line["params"]["turn"]["status"].as_str().unwrap_or("?")
                    )
                }
                Some("turn/started") => "turn started".to_owned(),
                Some("item/completed") => match line["params"]["item"]["type"].as_str() {
                    Some("commandExecution") => "command".to_owned(),
                    Some("userMessage") => {
                        let client = line["params"]["item"]["clientId"].as_str().unwrap_or("");
                        format!("user message {}", client.split('-').next().unwrap_or(""))
                    }
                    _ => continue,
                },
                Some("error") => "retry".to_owned(),
                Some(_) => continue,
                None => {
                    let id = line["id"].as_i64().unwrap_or_default();
                    let method = ended.sent.get(&id).map_or("?", |s| s.method.as_str());
                    let outcome = if line.get("error").is_some() {
                        "refused"
                    } else {
                        "ok"
                    };
                    format!("{method} {outcome}")
                }
            };
            self.count(what);
        }
    }
}

/// The last lines a killed server printed, for failure messages.
fn tail(log: &[Value]) -> String {
    let from = log.len().saturating_sub(30);
    format!(
        "\nthe killed server printed last:\n{}",
        excerpt(log, from..log.len())
    )
}

fn plain(method: &str, params: Value) -> Sent {
    Sent {
        method: method.to_owned(),
        params,
        stale: false,
        just_returned: false,
    }
}

fn steer_params(thread: &str, turn: &Value, n: usize) -> Value {
    let text = format!("steer-{n}");
    json!({"threadId": thread, "expectedTurnId": turn, "clientUserMessageId": text,
           "input": [{"type": "text", "text": text}]})
}
