//! The ordering guarantees, checked by walking one server's log in order.
//!
//! A thread's driver is the only writer of its lines, so the log's order is the
//! order in which the server did things: at any line, the turn "running" is the
//! one whose `turn/started` came and whose `turn/completed` has not. The walk
//! replays the queue from the responses it reads and checks each response and
//! each turn against it:
//! - every turn is started by something: a fresh `turn/start` (its input, its
//!   client id), a `thread/queue/add` while idle with an empty queue, or the
//!   queue after a turn that *completed* (all queued messages, joined, in order);
//! - every interrupted turn was interrupted or replaced by a request answered
//!   while it ran; a `{}` to an interrupt comes before `thread/status/changed
//!   idle` and the turn's `turn/completed`;
//! - a `turn/interrupt` naming another turn than the running one is refused, one
//!   naming the running turn or with none running is not; `thread/interrupt`
//!   never is;
//! - a steer is accepted only for the running turn, then shown as a user
//!   message of it; refused for the running turn only if that turn was ending
//!   by itself; a steer or interrupt naming the turn `turn/start` just returned
//!   is accepted unless that turn ended by itself;
//! - `thread/queue/list` is the replayed queue; `thread/queue/delete` finds
//!   exactly the entries that are queued;
//! - a repeated `clientUserMessageId` gets the original answer and changes
//!   nothing (across a restart: the same turn). A repeated `thread/queue/add`
//!   gets its entry while the entry is queued; once the entry has started or
//!   was deleted its id is free again (Codex's rule), so the schedules repeat
//!   only `turn/start` and `turn/steer`, and the regression tests pin the
//!   queue's rule.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::ledger::{Answer, Ledger, TurnRecord, input_texts};
use super::server::{Ended, Sent, excerpt};
use crate::suite::app_server::support::turn_of;

/// What a server started with (empty for the first one).
#[derive(Debug, Default, Clone)]
pub struct Start {
    /// The queue `thread/queue/list` showed right after `thread/resume`.
    pub queue: Vec<Value>,
    /// The turns `thread/resume` returned.
    pub resumed_turns: Vec<String>,
}

/// What a killed server may have left in the queue, for the next one to show.
#[derive(Debug, Default)]
pub struct QueueAtKill {
    /// Entries that must still be queued, in order.
    pub sure: Vec<Value>,
    /// Entries queued, but a delete of them was sent and not answered: they
    /// may or may not be.
    pub deleting: Vec<Value>,
    /// Entries (by client id) that may be: an add was sent, not answered.
    pub maybe_client_ids: HashSet<String>,
}

/// Walk `ended`'s log (server number `server`), checking it and adding what
/// it shows to `ledger`.
pub fn check_server(
    ended: &Ended,
    server: usize,
    start: &Start,
    ledger: &mut Ledger,
) -> QueueAtKill {
    let mut walk = Walk {
        log: &ended.log,
        sent: &ended.sent,
        server,
        start,
        ledger,
        running: None,
        queue: start.queue.clone(),
        idle_start: None,
        fresh: HashMap::new(),
        last_end: None,
        caused: HashSet::new(),
        interrupted_at: HashMap::new(),
        must_end_by_itself: Vec::new(),
    };
    for at in 0..ended.log.len() {
        walk.line(at);
    }
    walk.finish()
}

struct Walk<'a> {
    log: &'a [Value],
    sent: &'a HashMap<i64, Sent>,
    server: usize,
    start: &'a Start,
    ledger: &'a mut Ledger,
    running: Option<String>,
    /// The queue as replayed.
    queue: Vec<Value>,
    /// A `thread/queue/add` answered while idle with an empty queue: the next
    /// turn is its.
    idle_start: Option<(String, Value)>,
    /// Turns a fresh `turn/start` answered, not started yet: their request.
    fresh: HashMap<String, Sent>,
    /// How the last turn ended, while no turn has started since.
    last_end: Option<String>,
    /// Running turns that a request answered since their start interrupted or replaced.
    caused: HashSet<String>,
    /// Where an interrupt of a running turn was answered.
    interrupted_at: HashMap<String, usize>,
    /// Turns that must have ended by themselves (completed or failed), why,
    /// and where that was seen.
    must_end_by_itself: Vec<(String, &'static str, usize)>,
}

impl Walk<'_> {
    fn context(&self, at: usize) -> String {
        let lines = excerpt(
            self.log,
            at.saturating_sub(25)..(at + 4).min(self.log.len()),
        );
        format!(" (server {}, line {at}):\n{lines}", self.server)
    }

    fn line(&mut self, at: usize) {
        let line = &self.log[at];
        match line["method"].as_str() {
            None => {
                let id = line["id"].as_i64().unwrap_or_default();
                let sent = self
                    .sent
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| panic!("a response to no request{}", self.context(at)));
                self.response(at, &sent, line.get("result"));
            }
            Some("turn/started") => self.turn_started(at),
            Some("turn/completed") => self.turn_completed(at),
            Some(_) => {}
        }
    }

    fn turn_started(&mut self, at: usize) {
        let turn = turn_of(&self.log[at]).unwrap_or_default().to_owned();
        assert!(
            self.running.is_none(),
            "turn {turn} started while {:?} runs{}",
            self.running,
            self.context(at)
        );
        let inputs = self.initial_messages(at, &turn);
        if let Some(sent) = self.fresh.remove(&turn) {
            let expected = vec![(
                sent.client_id().map(str::to_owned),
                sent.params["input"].clone(),
            )];
            assert_eq!(
                inputs,
                expected,
                "turn/start's turn shows other input{}",
                self.context(at)
            );
        } else if let Some((client_id, entry)) = self.idle_start.take() {
            let expected = vec![(Some(client_id), entry["input"].clone())];
            assert_eq!(
                inputs,
                expected,
                "an idle queue/add started other input{}",
                self.context(at)
            );
        } else {
            assert!(
                !self.queue.is_empty(),
                "turn {turn} was started by nothing{}",
                self.context(at)
            );
            let queued: Vec<(Option<String>, Value)> = self
                .queue
                .iter()
                .map(|e| {
                    (
                        e["clientUserMessageId"].as_str().map(str::to_owned),
                        e["input"].clone(),
                    )
                })
                .collect();
            assert_eq!(
                inputs,
                queued,
                "a queued turn is not the whole queue, in order{}",
                self.context(at)
            );
            assert_eq!(
                self.last_end.as_deref(),
                Some("completed"),
                "queued messages started, but not right after a completed turn{}",
                self.context(at)
            );
            self.queue.clear();
        }
        assert!(
            self.idle_start.is_none(),
            "an idle queue/add did not start its turn first{}",
            self.context(at)
        );
        self.running = Some(turn.clone());
        self.last_end = None;
        for (client_id, _) in &inputs {
            if let Some(client_id) = client_id {
                self.ledger.user_item(client_id);
            }
        }
        self.ledger.turn_started(TurnRecord {
            id: turn,
            server: self.server,
            inputs: inputs
                .iter()
                .flat_map(|(_, input)| input_texts(input))
                .collect(),
            ..TurnRecord::default()
        });
    }

    /// The user message items that follow `turn/started` at `at`: client id and content.
    fn initial_messages(&self, at: usize, turn: &str) -> Vec<(Option<String>, Value)> {
        self.log[at + 1..]
            .iter()
            .take_while(|l| {
                (l["method"] == "item/started" || l["method"] == "item/completed")
                    && turn_of(l) == Some(turn)
                    && l["params"]["item"]["type"] == "userMessage"
            })
            .filter(|l| l["method"] == "item/completed")
            .map(|l| {
                let item = &l["params"]["item"];
                (
                    item["clientId"].as_str().map(str::to_owned),
                    item["content"].clone(),
                )
            })
            .collect()
    }

    fn turn_completed(&mut self, at: usize) {
        let turn = turn_of(&self.log[at]).unwrap_or_default().to_owned();
        assert_eq!(
            self.running.as_deref(),
            Some(turn.as_str()),
            "turn/completed of a turn not running{}",
            self.context(at)
        );
        let params = &self.log[at]["params"];
        let status = params["turn"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if status == "interrupted" {
            assert!(
                self.caused.contains(&turn),
                "turn {turn} was interrupted, but no request answered while it ran interrupted or replaced it{}",
                self.context(at)
            );
        }
        if let Some(answered) = self.interrupted_at.remove(&turn)
            && status == "interrupted"
        {
            let idle = self.log[answered..at].iter().any(|l| {
                l["method"] == "thread/status/changed" && l["params"]["status"]["type"] == "idle"
            });
            assert!(
                idle,
                "no thread/status/changed idle between the interrupt's {{}} and turn/completed{}",
                self.context(at)
            );
        }
        let unsent = params["unsentInput"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        self.ledger
            .turn_ended(&turn, &status, input_texts(&Value::Array(unsent)));
        self.running = None;
        self.caused.remove(&turn);
        self.last_end = Some(status);
    }

    fn response(&mut self, at: usize, sent: &Sent, result: Option<&Value>) {
        match sent.method.as_str() {
            "turn/start" => self.turn_start(at, sent, result),
            "turn/steer" => self.turn_steer(at, sent, result),
            "turn/interrupt" => self.turn_interrupt(at, sent, result),
            "thread/interrupt" => {
                assert!(
                    result.is_some(),
                    "thread/interrupt refused{}",
                    self.context(at)
                );
                if let Some(running) = self.running.clone() {
                    self.caused.insert(running.clone());
                    self.interrupted_at.insert(running, at);
                }
            }
            "thread/queue/add" => self.queue_add(at, sent, result),
            "thread/queue/list" => {
                let listed = result.map(|r| r["data"].clone());
                assert_eq!(
                    listed,
                    Some(Value::Array(self.queue.clone())),
                    "thread/queue/list is not the queue{}",
                    self.context(at)
                );
            }
            "thread/queue/delete" => {
                let id = sent.params["queuedSubmissionId"]
                    .as_str()
                    .unwrap_or_default();
                let deleted = result.and_then(|r| r["deleted"].as_bool());
                let position = self.queue.iter().position(|e| e["id"] == id);
                assert_eq!(
                    deleted,
                    Some(position.is_some()),
                    "queue/delete of {id}{}",
                    self.context(at)
                );
                if let Some(position) = position {
                    self.queue.remove(position);
                    self.ledger.deleted.insert(id.to_owned());
                }
            }
            _ => {}
        }
    }

    /// The answer given before to `sent`'s client id, if any.
    fn original(&self, sent: &Sent) -> Option<Answer> {
        sent.client_id()
            .and_then(|c| self.ledger.answers.get(c))
            .cloned()
    }

    fn remember(&mut self, sent: &Sent, result: &Value) {
        if let Some(client_id) = sent.client_id() {
            self.ledger
                .answers
                .entry(client_id.to_owned())
                .or_insert(Answer {
                    result: result.clone(),
                    server: self.server,
                });
        }
    }

    fn turn_start(&mut self, at: usize, sent: &Sent, result: Option<&Value>) {
        let result = result.unwrap_or_else(|| panic!("turn/start refused{}", self.context(at)));
        let turn = result["turn"]["id"].as_str().unwrap_or_default().to_owned();
        let known = self.ledger.knows_turn(&turn) || self.fresh.contains_key(&turn);
        if let Some(original) = self.original(sent) {
            let original_turn = original.result["turn"]["id"].as_str().unwrap_or_default();
            if original.server == self.server {
                assert_eq!(
                    result,
                    &original.result,
                    "a repeated turn/start got another answer{}",
                    self.context(at)
                );
            } else if self.start.resumed_turns.iter().any(|t| t == original_turn) {
                assert_eq!(
                    turn,
                    original_turn,
                    "after a restart, a repeated turn/start got another turn{}",
                    self.context(at)
                );
            }
        }
        if !known {
            self.fresh.insert(turn, sent.clone());
            if let Some(running) = self.running.clone() {
                self.caused.insert(running);
            }
        }
        self.remember(sent, result);
    }

    fn turn_steer(&mut self, at: usize, sent: &Sent, result: Option<&Value>) {
        let turn = sent.params["expectedTurnId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(original) = self.original(sent) {
            if original.server == self.server {
                assert_eq!(
                    result,
                    Some(&original.result),
                    "a repeated turn/steer got another answer{}",
                    self.context(at)
                );
            } else {
                assert!(
                    result.is_none() || result == Some(&original.result),
                    "after a restart, a repeated turn/steer got another answer{}",
                    self.context(at)
                );
            }
            return;
        }
        let Some(result) = result else {
            if self.running.as_ref() == Some(&turn) {
                self.must_end_by_itself
                    .push((turn, "a steer of it was refused while it ran", at));
            } else if sent.just_returned {
                self.must_end_by_itself.push((
                    turn,
                    "a steer with the id turn/start just returned was refused",
                    at,
                ));
            }
            return;
        };
        assert!(
            !sent.stale,
            "a steer naming a stale turn was accepted{}",
            self.context(at)
        );
        assert_eq!(result, &json!({"turnId": turn}), "{}", self.context(at));
        assert_eq!(
            self.running.as_ref(),
            Some(&turn),
            "a steer accepted for a turn not running{}",
            self.context(at)
        );
        let shown: Vec<&Value> = self.log[at + 1..(at + 3).min(self.log.len())]
            .iter()
            .filter(|l| {
                turn_of(l) == Some(turn.as_str()) && l["params"]["item"]["type"] == "userMessage"
            })
            .map(|l| &l["params"]["item"])
            .collect();
        if self.log.len() > at + 2 {
            assert_eq!(
                shown.len(),
                2,
                "an accepted steer is not shown right after its answer{}",
                self.context(at)
            );
            assert_eq!(
                shown[1]["clientId"].as_str(),
                sent.client_id(),
                "{}",
                self.context(at)
            );
            assert_eq!(
                shown[1]["content"],
                sent.params["input"],
                "{}",
                self.context(at)
            );
        }
        if let Some(client_id) = sent.client_id() {
            self.ledger.user_item(client_id);
        }
        self.ledger
            .steered(&turn, input_texts(&sent.params["input"]));
        self.remember(sent, result);
    }

    fn turn_interrupt(&mut self, at: usize, sent: &Sent, result: Option<&Value>) {
        let turn = sent.params["turnId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some(_) = result else {
            assert!(
                self.running.as_ref().is_some_and(|r| *r != turn),
                "turn/interrupt of {turn} refused while {:?} runs{}",
                self.running,
                self.context(at)
            );
            if sent.just_returned {
                self.must_end_by_itself.push((
                    turn,
                    "an interrupt with the id turn/start just returned was refused",
                    at,
                ));
            }
            return;
        };
        match self.running.clone() {
            Some(running) if running == turn => {
                self.caused.insert(running.clone());
                self.interrupted_at.insert(running, at);
            }
            Some(running) => panic!(
                "turn/interrupt of {turn} answered {{}} while {running} runs{}",
                self.context(at)
            ),
            None if sent.just_returned => {
                self.must_end_by_itself.push((
                    turn,
                    "an interrupt with the id turn/start just returned found it ended",
                    at,
                ));
            }
            None => {}
        }
    }

    fn queue_add(&mut self, at: usize, sent: &Sent, result: Option<&Value>) {
        let result =
            result.unwrap_or_else(|| panic!("thread/queue/add refused{}", self.context(at)));
        let entry = result["queuedSubmission"].clone();
        if let Some(original) = self.original(sent) {
            assert_eq!(
                result,
                &original.result,
                "a repeated thread/queue/add got another answer (server {} gave the first){}",
                original.server,
                self.context(at)
            );
            return;
        }
        let id = entry["id"].as_str().unwrap_or_default().to_owned();
        self.remember(sent, result);
        if self.ledger.entries.contains_key(&id) {
            // The answer to an add sent before a kill and never answered:
            // that entry was saved and is in the queue the resume showed.
            return;
        }
        assert_eq!(
            entry["clientUserMessageId"].as_str(),
            sent.client_id(),
            "{}",
            self.context(at)
        );
        assert_eq!(entry["input"], sent.params["input"], "{}", self.context(at));
        self.ledger.entries.insert(id, entry.clone());
        match (&self.running, self.queue.is_empty()) {
            (None, true) => {
                let client_id = sent.client_id().unwrap_or_default().to_owned();
                self.idle_start = Some((client_id, entry));
            }
            _ => self.queue.push(entry),
        }
    }

    fn finish(self) -> QueueAtKill {
        for (turn, why, at) in &self.must_end_by_itself {
            if let Some(status) = self.ledger.status_of(turn) {
                assert!(
                    status == "completed" || status == "failed",
                    "turn {turn} ended {status}, but {why}{}",
                    self.context(*at)
                );
            }
        }
        let mut at_kill = QueueAtKill::default();
        let mut deleting = HashSet::new();
        let answered: HashSet<i64> = self.log.iter().filter_map(|l| l["id"].as_i64()).collect();
        for (id, sent) in self.sent {
            if answered.contains(id) {
                continue;
            }
            match sent.method.as_str() {
                "thread/queue/add" => {
                    at_kill
                        .maybe_client_ids
                        .extend(sent.client_id().map(str::to_owned));
                }
                "thread/queue/delete" => {
                    deleting.extend(sent.params["queuedSubmissionId"].as_str());
                }
                _ => {}
            }
        }
        (at_kill.deleting, at_kill.sure) = self
            .queue
            .into_iter()
            .partition(|e| deleting.contains(e["id"].as_str().unwrap_or_default()));
        at_kill
    }
}
