//! One `tiller app-server` process of a schedule: requests out, lines in.
//! Every line is checked against the Codex schemas as it is read, and when the
//! process ends (EOF or SIGKILL) the protocol invariants are checked on all it
//! printed.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tiller_test_support::LineChild;
use tokio::io::AsyncWriteExt;

use super::{TAG_ENV, WAIT};
use crate::suite::app_server::schema::check_line;
use crate::suite::app_server::support::{check_protocol, turn_of};
use crate::suite::support::Scratch;

/// A request as sent, and what the client knew when it sent it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: String,
    pub params: Value,
    /// The client knew the turn it names had ended or never existed.
    pub stale: bool,
    /// A steer or interrupt sent right after `turn/start` answered, naming
    /// that turn, with nothing sent in between.
    pub just_returned: bool,
}

impl Sent {
    pub fn client_id(&self) -> Option<&str> {
        self.params["clientUserMessageId"].as_str()
    }
}

/// Everything a server printed and was sent, once it has ended.
pub struct Ended {
    pub log: Vec<Value>,
    pub sent: HashMap<i64, Sent>,
    pub killed: bool,
}

/// A running `tiller app-server`.
pub struct Server {
    io: LineChild,
    next_id: i64,
    pub sent: HashMap<i64, Sent>,
    /// Every line printed, parsed, in order.
    pub log: Vec<Value>,
    responses: HashMap<i64, usize>,
    started: HashSet<String>,
    completed: HashSet<String>,
    /// The turn last started and not completed, as far as the client knows.
    current: Option<String>,
}

impl Server {
    pub fn spawn(scratch: &Scratch, tag: &str) -> Server {
        let mut command = scratch.tiller(&["app-server"]);
        command.env(TAG_ENV, tag).stdin(Stdio::piped());
        let io = LineChild::spawn(&mut command);
        Server {
            io,
            next_id: 0,
            sent: HashMap::new(),
            log: Vec::new(),
            responses: HashMap::new(),
            started: HashSet::new(),
            completed: HashSet::new(),
            current: None,
        }
    }

    /// `initialize` and `initialized`.
    pub async fn initialize(&mut self) {
        let id = self
            .send(
                "initialize",
                json!({"clientInfo": {"name": "schedules", "title": "Schedules", "version": "1"}}),
            )
            .await;
        self.result(id).await;
        self.write(&json!({"method": "initialized"})).await;
    }

    /// Send a request without waiting for its answer; returns its id.
    pub async fn send(&mut self, method: &str, params: Value) -> i64 {
        self.send_as(Sent {
            method: method.to_owned(),
            params,
            stale: false,
            just_returned: false,
        })
        .await
    }

    pub async fn send_as(&mut self, sent: Sent) -> i64 {
        self.next_id += 1;
        let id = self.next_id;
        let line = json!({"id": id, "method": sent.method, "params": sent.params});
        self.sent.insert(id, sent);
        self.write(&line).await;
        id
    }

    async fn write(&mut self, line: &Value) {
        let mut bytes = serde_json::to_vec(line).unwrap();
        bytes.push(b'\n');
        let stdin = self.io.stdin.as_mut().unwrap();
        stdin.write_all(&bytes).await.unwrap();
    }

    /// Read whatever the server has printed already.
    pub fn pump(&mut self) {
        while let Ok(line) = self.io.lines.try_recv() {
            self.record(&line);
        }
    }

    fn record(&mut self, line: &str) {
        let message: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        let id = message["id"].as_i64();
        let method = id
            .and_then(|id| self.sent.get(&id))
            .map(|s| s.method.as_str());
        check_line(&message, method);
        match message["method"].as_str() {
            None => {
                let Some(id) = id else {
                    panic!("a response without a request id: {message}");
                };
                // A repeat after a restart names a turn of an earlier
                // server, which is over.
                let turn = &message["result"]["turn"];
                if method == Some("turn/start")
                    && turn["status"] == "inProgress"
                    && let Some(turn) = turn["id"].as_str()
                    && !self.completed.contains(turn)
                {
                    self.current = Some(turn.to_owned());
                }
                self.responses.insert(id, self.log.len());
            }
            Some("turn/started") => {
                let turn = turn_of(&message).unwrap_or_default().to_owned();
                self.started.insert(turn.clone());
                self.current = Some(turn);
            }
            Some("turn/completed") => {
                let turn = turn_of(&message).unwrap_or_default().to_owned();
                if self.current.as_ref() == Some(&turn) {
                    self.current = None;
                }
                self.completed.insert(turn);
            }
            Some(_) => {}
        }
        self.log.push(message);
    }

    /// The next line, within `deadline`; `false` when it passed.
    async fn next_line(&mut self, deadline: tokio::time::Instant) -> bool {
        match tokio::time::timeout_at(deadline, self.io.lines.recv()).await {
            Ok(Some(line)) => {
                self.record(&line);
                true
            }
            Ok(None) => panic!("the server closed stdout{}", self.dump()),
            Err(_) => false,
        }
    }

    pub async fn wait_until(&mut self, what: &str, done: impl Fn(&Server) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        self.pump();
        while !done(self) {
            assert!(
                self.next_line(deadline).await,
                "waited {WAIT:?} for {what}{}",
                self.dump()
            );
        }
    }

    /// The response (result or error) to request `id`, waiting for it.
    pub async fn response(&mut self, id: i64) -> Value {
        self.wait_until(&format!("the response to request {id}"), |s| {
            s.responses.contains_key(&id)
        })
        .await;
        self.log[self.responses[&id]].clone()
    }

    /// The result of request `id`, which must succeed.
    pub async fn result(&mut self, id: i64) -> Value {
        let response = self.response(id).await;
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("request {id} failed: {response}{}", self.dump()),
        }
    }

    pub async fn all_answered(&mut self) {
        self.wait_until("a response to every request", |s| {
            s.sent.keys().all(|id| s.responses.contains_key(id))
        })
        .await;
    }

    /// Whether any turn started is not completed.
    pub fn turn_running(&self) -> bool {
        self.started.iter().any(|t| !self.completed.contains(t))
    }

    pub fn is_completed(&self, turn: &str) -> bool {
        self.completed.contains(turn)
    }

    /// The running turn's id, if the client knows one.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// A finished turn's id, if any.
    pub fn a_finished_turn(&self) -> Option<&str> {
        self.completed.iter().max().map(String::as_str)
    }

    /// Wait until `turn` completes, or one of its commands runs `sleep` (which
    /// would take half a minute): `false` then, for the caller to interrupt it.
    pub async fn completes_unless_long(&mut self, turn: &str) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = 0;
        loop {
            let long = self.log[seen..].iter().any(|message| {
                message["method"] == "item/started"
                    && turn_of(message) == Some(turn)
                    && message["params"]["item"]["command"]
                        .as_str()
                        .is_some_and(|c| c.contains("sleep"))
            });
            if long {
                return false;
            }
            seen = self.log.len();
            if self.completed.contains(turn) {
                return true;
            }
            assert!(
                self.next_line(deadline).await,
                "turn {turn} neither completed nor ran a command within {WAIT:?}{}",
                self.dump()
            );
        }
    }

    /// SIGKILL the server (only it, by its pid) and reap it; what it printed
    /// must be a valid prefix of a run.
    pub async fn kill(mut self) -> Ended {
        kill(Pid::from_raw(self.io.pid), Signal::SIGKILL).unwrap();
        let status = tokio::time::timeout(WAIT, self.io.child.wait())
            .await
            .expect("a SIGKILLed server did not die")
            .unwrap();
        assert_eq!(status.code(), None, "{status:?}");
        self.drain().await;
        self.ended(true)
    }

    /// Close stdin; the server must exit 0 promptly, every request answered.
    pub async fn close(mut self) -> Ended {
        drop(self.io.stdin.take());
        let status = tokio::time::timeout(WAIT, self.io.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the server did not exit on EOF{}", self.dump()))
            .unwrap();
        self.drain().await;
        let stderr = tokio::time::timeout(WAIT, &mut self.io.stderr)
            .await
            .map(Result::unwrap_or_default)
            .unwrap_or_default();
        assert_eq!(
            status.code(),
            Some(0),
            "the server exited with {status} on EOF\nstderr:\n{stderr}"
        );
        self.ended(false)
    }

    /// Read stdout to its end (the pipe keeps what a dead server printed).
    async fn drain(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.io.lines.recv()).await {
                Ok(Some(line)) => self.record(&line),
                Ok(None) => return,
                Err(_) => panic!("stdout still open after the server died"),
            }
        }
    }

    fn ended(&mut self, killed: bool) -> Ended {
        let methods = self
            .sent
            .iter()
            .map(|(id, sent)| (*id, sent.method.clone()))
            .collect();
        check_protocol(&self.log, &methods, !killed);
        Ended {
            log: std::mem::take(&mut self.log),
            sent: std::mem::take(&mut self.sent),
            killed,
        }
    }

    /// The last lines printed, for failure messages.
    pub fn dump(&self) -> String {
        let from = self.log.len().saturating_sub(40);
        format!(
            "\nlast lines printed:\n{}",
            excerpt(&self.log, from..self.log.len())
        )
    }
}

/// Lines `range` of `log`, numbered, each cut to 300 characters.
pub fn excerpt(log: &[Value], range: std::ops::Range<usize>) -> String {
    let from = range.start;
    log[range]
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let text = line.to_string();
            let cut = text
                .char_indices()
                .nth(300)
                .map_or(text.len(), |(at, _)| at);
            format!("{:4} {}", from + i, &text[..cut])
        })
        .collect::<Vec<_>>()
        .join("\n")
}
