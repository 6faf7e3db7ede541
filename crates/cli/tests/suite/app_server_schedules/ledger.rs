//! What the client knows across servers: the answers given per
//! `clientUserMessageId`, the queue entries, every turn and how it ended.
//! Checked against it: what `thread/resume` shows after a kill, and what the
//! model was sent (each text at most once per request; in the end, every turn
//! input, delivered steer and queued message exactly once, nothing deleted).

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use tiller_mock_model::RecordedRequest;

use super::checks::QueueAtKill;

/// A successful answer to a request with a `clientUserMessageId`.
#[derive(Debug, Clone)]
pub struct Answer {
    pub result: Value,
    /// Which server gave it (0 is the first).
    pub server: usize,
}

/// One turn, as the client saw it.
#[derive(Debug, Clone, Default)]
pub struct TurnRecord {
    pub id: String,
    pub server: usize,
    /// The texts it started with.
    pub inputs: Vec<String>,
    /// The texts of the steers it accepted.
    pub steers: Vec<String>,
    /// How it ended: from its `turn/completed`, or from `thread/resume`.
    pub status: Option<String>,
    /// Whether its `turn/completed` was seen (the rollout was flushed before).
    pub seen_end: bool,
    /// The texts of its `unsentInput`.
    pub unsent: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Ledger {
    /// The first successful answer, by client id.
    pub answers: HashMap<String, Answer>,
    /// Every queue entry the client has seen, by id.
    pub entries: HashMap<String, Value>,
    /// Entries `thread/queue/delete` removed.
    pub deleted: HashSet<String>,
    /// Every turn, in start order.
    turns: Vec<TurnRecord>,
    /// How many user message items each client id has had, over all servers.
    user_items: HashMap<String, usize>,
}

impl Ledger {
    pub fn knows_turn(&self, id: &str) -> bool {
        self.turns.iter().any(|t| t.id == id)
    }

    pub fn status_of(&self, id: &str) -> Option<&str> {
        self.turn(id)?.status.as_deref()
    }

    fn turn(&self, id: &str) -> Option<&TurnRecord> {
        self.turns.iter().find(|t| t.id == id)
    }

    fn turn_mut(&mut self, id: &str) -> Option<&mut TurnRecord> {
        self.turns.iter_mut().find(|t| t.id == id)
    }

    pub fn turn_started(&mut self, record: TurnRecord) {
        assert!(
            !self.knows_turn(&record.id),
            "turn {} started again in server {}",
            record.id,
            record.server
        );
        self.turns.push(record);
    }

    pub fn turn_ended(&mut self, id: &str, status: &str, unsent: Vec<String>) {
        if let Some(turn) = self.turn_mut(id) {
            turn.status = Some(status.to_owned());
            turn.seen_end = true;
            turn.unsent = unsent;
        }
    }

    pub fn steered(&mut self, id: &str, texts: Vec<String>) {
        if let Some(turn) = self.turn_mut(id) {
            turn.steers.extend(texts);
        }
    }

    /// A user message item with `client_id` was shown: never twice, on any server.
    pub fn user_item(&mut self, client_id: &str) {
        let count = self.user_items.entry(client_id.to_owned()).or_default();
        *count += 1;
        assert_eq!(
            *count, 1,
            "client id {client_id} was shown in {count} user messages"
        );
    }

    /// `thread/resume`'s turns after a kill: every turn seen so far, in order,
    /// then perhaps some whose start the dead server never printed; a turn
    /// that ended keeps its status; none is still in progress. Returns how
    /// many turns the kill cut off (now `interrupted`), and the input of the
    /// turns never printed.
    pub fn check_resumed_turns(
        &mut self,
        resumed: &[Value],
        server: usize,
        killed: &str,
    ) -> (usize, Vec<String>) {
        let ids: Vec<&str> = resumed.iter().filter_map(|t| t["id"].as_str()).collect();
        let known: Vec<&str> = self.turns.iter().map(|t| t.id.as_str()).collect();
        assert!(
            ids.len() >= known.len() && ids[..known.len()] == known[..],
            "thread/resume lost or reordered turns:\nknown:   {known:?}\nresumed: {ids:?}{killed}"
        );
        let mut cut_off = 0;
        let mut unseen_input = Vec::new();
        for turn in resumed {
            let id = turn["id"].as_str().unwrap_or_default();
            let status = turn["status"].as_str().unwrap_or_default().to_owned();
            assert_ne!(
                status, "inProgress",
                "a resumed turn is in progress: {turn}"
            );
            match self.turn_mut(id) {
                Some(record) if record.status.is_some() => {
                    assert_eq!(
                        record.status.as_deref(),
                        Some(status.as_str()),
                        "turn {id} ended one way and resumes another: {turn}{killed}"
                    );
                }
                Some(record) => {
                    cut_off += usize::from(status == "interrupted");
                    record.status = Some(status);
                }
                None => {
                    let inputs = resumed_input(turn);
                    unseen_input.extend(inputs.iter().cloned());
                    self.turns.push(TurnRecord {
                        id: id.to_owned(),
                        server,
                        inputs,
                        status: Some(status),
                        ..TurnRecord::default()
                    });
                }
            }
        }
        (cut_off, unseen_input)
    }

    /// The queue the new server lists after `thread/resume`: each entry that
    /// was surely queued at the kill is listed, in order, unless a turn the dead
    /// server never printed started it (never both); nothing else is listed but
    /// entries whose add or delete had no answer yet; each entry as it was
    /// answered. An entry whose delete had no answer and is gone was deleted.
    pub fn check_resumed_queue(
        &mut self,
        listed: &[Value],
        at_kill: &QueueAtKill,
        unseen_input: &[String],
        killed: &str,
    ) {
        let ids: Vec<&str> = listed.iter().filter_map(|e| e["id"].as_str()).collect();
        let started_unseen = |entry: &Value| {
            let texts = input_texts(&entry["input"]);
            !texts.is_empty() && texts.iter().all(|t| unseen_input.contains(t))
        };
        let mut sure = Vec::new();
        for entry in &at_kill.sure {
            let id = entry["id"].as_str().unwrap_or_default();
            assert!(
                ids.contains(&id) != started_unseen(entry),
                "an entry queued at the kill is {} after it: {entry}\nlisted: {listed:?}\n\
                 started by turns never printed: {unseen_input:?}{killed}",
                if ids.contains(&id) {
                    "both queued and started"
                } else {
                    "lost"
                }
            );
            if ids.contains(&id) {
                sure.push(id);
            }
        }
        let kept: Vec<&str> = ids.iter().copied().filter(|id| sure.contains(id)).collect();
        assert_eq!(
            kept, sure,
            "the queue was reordered across the kill:\nlisted: {listed:?}{killed}"
        );
        for entry in listed {
            let id = entry["id"].as_str().unwrap_or_default();
            let client_id = entry["clientUserMessageId"].as_str().unwrap_or_default();
            assert!(
                sure.contains(&id)
                    || at_kill.deleting.iter().any(|e| e["id"] == id)
                    || at_kill.maybe_client_ids.contains(client_id),
                "an entry is queued after the kill that was not: {entry}\nsure: {sure:?}{killed}"
            );
            if let Some(known) = self.entries.get(id) {
                assert_eq!(known, entry, "a queued entry changed across the kill");
            }
            self.entries.insert(id.to_owned(), entry.clone());
        }
        for entry in &at_kill.deleting {
            let id = entry["id"].as_str().unwrap_or_default();
            if !ids.contains(&id) && !started_unseen(entry) {
                self.deleted.insert(id.to_owned());
            }
        }
    }

    /// What the model was sent, once the schedule is over and the queue empty;
    /// `final_input` is the text that started the final turn.
    pub fn check_model_input(&self, requests: &[RecordedRequest], final_input: &str) {
        let ours = |text: &str| {
            ["start-", "steer-", "queue-", "drain-"]
                .iter()
                .any(|p| text.starts_with(p))
        };
        for (n, request) in requests.iter().enumerate() {
            let mut seen: HashMap<String, usize> = HashMap::new();
            for line in user_lines(request).into_iter().filter(|l| ours(l)) {
                *seen.entry(line).or_default() += 1;
            }
            let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
            assert!(
                doubled.is_empty(),
                "model request {} has user input twice: {doubled:?}",
                n + 1
            );
        }
        // The final turn's last request carries the whole history. It is found
        // by its input, not as the last to arrive: a request an interrupted
        // turn sent just before its abort can reach the mock after it on a
        // loaded machine (its answer goes nowhere).
        let last = requests
            .iter()
            .rev()
            .map(user_lines)
            .find(|lines| lines.iter().any(|l| l == final_input))
            .unwrap_or_else(|| {
                panic!("no model request holds the final turn's input {final_input:?}")
            });
        let times = |text: &str| last.iter().filter(|l| *l == text).count();
        for turn in self.turns.iter().filter(|t| t.seen_end) {
            for text in &turn.inputs {
                assert_eq!(
                    times(text),
                    1,
                    "turn {}'s input {text:?} is not in the final history once",
                    turn.id
                );
            }
            for text in &turn.steers {
                let unsent = turn.unsent.contains(text);
                assert!(
                    (times(text) == 1) != unsent,
                    "turn {} ({:?}): steer {text:?} is {} in the final history and {}in unsentInput",
                    turn.id,
                    turn.status,
                    times(text),
                    if unsent { "" } else { "not " }
                );
            }
        }
        for (id, entry) in &self.entries {
            for text in input_texts(&entry["input"]) {
                if self.deleted.contains(id) {
                    for request in requests {
                        assert!(
                            !user_lines(request).contains(&text),
                            "deleted queue entry {text:?} reached the model"
                        );
                    }
                } else {
                    let carried: Vec<&TurnRecord> = self
                        .turns
                        .iter()
                        .filter(|t| t.inputs.contains(&text))
                        .collect();
                    assert_eq!(
                        times(&text),
                        1,
                        "queue entry {text:?} is not in the final history once; \
                         turns that started with it: {carried:?}\nall turns: {:?}\n\
                         final history: {last:?}",
                        self.turns
                    );
                }
            }
        }
    }

    /// Turns that ended, by status, for the summary.
    pub fn statuses(&self) -> Vec<String> {
        self.turns.iter().filter_map(|t| t.status.clone()).collect()
    }
}

/// The texts of an `input` array of `{"type": "text", "text"}` items.
pub fn input_texts(input: &Value) -> Vec<String> {
    input
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["text"].as_str().map(str::to_owned))
        .collect()
}

/// The lines of a resumed turn's user messages.
fn resumed_input(turn: &Value) -> Vec<String> {
    turn["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["type"] == "userMessage")
        .flat_map(|item| input_texts(&item["content"]))
        .flat_map(|text| text.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// Every line of every user message in a model request (joined input is one
/// message, a line per item).
fn user_lines(request: &RecordedRequest) -> Vec<String> {
    request
        .input()
        .iter()
        .filter(|item| item["type"] == "message" && item["role"] == "user")
        .flat_map(|item| item["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|part| part["text"].as_str().map(str::to_owned))
        .flat_map(|text| text.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}
