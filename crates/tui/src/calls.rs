//! Effects carried out on the server. Messages (a turn's start, steers,
//! queue changes) go out one after another on one lane, in the order they
//! were typed; everything else (an interrupt above all) goes at once, so a
//! slow call never holds up Esc.

use serde_json::{Value, json};
use tiller_client::protocol::{
    ErrorCode, JsonRpcError, ThreadListResponse, ThreadStartParams, ThreadTurnsListResponse,
    TurnStatus, UserInput,
};
use tiller_client::{Client, ClientError};
use tokio::sync::mpsc;

use crate::cell::Tone;
use crate::effect::{Effect, Outcome, SessionRow};

/// How many sessions the picker lists.
const PICKER_SESSIONS: u32 = 100;

/// Carries out effects; outcomes go back on `outcomes`.
#[derive(Clone)]
pub struct Calls {
    client: Client,
    /// The settings a new thread starts with.
    start: ThreadStartParams,
    outcomes: mpsc::UnboundedSender<Outcome>,
    /// The message lane.
    messages: mpsc::UnboundedSender<(Effect, Option<String>)>,
}

impl Calls {
    /// Calls on `client`; starts the message lane.
    pub fn new(
        client: Client,
        start: ThreadStartParams,
        outcomes: mpsc::UnboundedSender<Outcome>,
    ) -> Calls {
        let (messages, mut lane) = mpsc::unbounded_channel::<(Effect, Option<String>)>();
        let calls = Calls {
            client,
            start,
            outcomes,
            messages,
        };
        let worker = calls.clone();
        tokio::spawn(async move {
            while let Some((effect, thread)) = lane.recv().await {
                worker.call(effect, thread).await;
            }
        });
        calls
    }

    /// Carry out `effect` on thread `thread` (the one open, if any).
    pub fn run(&self, effect: Effect, thread: Option<String>) {
        let message = matches!(
            effect,
            Effect::StartTurn { .. }
                | Effect::Steer { .. }
                | Effect::QueueAdd { .. }
                | Effect::QueueTake { .. }
                | Effect::QueueStart
                // In order, so the last answer shown is the newest queue.
                | Effect::QueueRefresh
        );
        if message {
            // The lane lives as long as the client; a send fails only at exit.
            let _ = self.messages.send((effect, thread));
        } else {
            let calls = self.clone();
            tokio::spawn(async move { calls.call(effect, thread).await });
        }
    }

    fn out(&self, outcome: Outcome) {
        let _ = self.outcomes.send(outcome);
    }

    fn failed(&self, what: &str, error: &ClientError) {
        self.out(Outcome::Notice(
            format!("{what}: {}", words(error)),
            Tone::Error,
        ));
    }

    async fn call(&self, effect: Effect, thread: Option<String>) {
        let client = &self.client;
        let thread_id = thread.unwrap_or_default();
        match effect {
            Effect::StartThread => match client.thread_start(self.start.clone()).await {
                Ok(mut opened) => {
                    // Codex's protocol has no `on-failure`: the server writes
                    // it `on-request`, and the thread runs what was asked.
                    let asked = self.start.approval_policy.as_ref();
                    if opened.approval_policy == "on-request"
                        && asked.and_then(Value::as_str) == Some("on-failure")
                    {
                        opened.approval_policy = "on-failure".to_owned();
                    }
                    self.out(Outcome::ThreadOpened(Box::new(opened)));
                }
                Err(e) => self.out(Outcome::OpenFailed(format!(
                    "could not start a session: {}",
                    words(&e)
                ))),
            },
            Effect::ResumeThread(id) => self.resume(&id).await,
            Effect::StartTurn { text, client_id } => {
                match client
                    .turn_start(&thread_id, text_input(&text), Some(client_id))
                    .await
                {
                    Ok(started) => self.out(Outcome::TurnStarted {
                        turn_id: started.turn.id,
                    }),
                    Err(e) => self.out(Outcome::TurnNotStarted {
                        text,
                        error: words(&e),
                    }),
                }
            }
            Effect::Steer {
                turn_id,
                text,
                client_id,
            } => {
                // An accepted steer shows as its item; only a refusal needs an answer.
                let steered = client
                    .turn_steer(
                        &thread_id,
                        &turn_id,
                        text_input(&text),
                        Some(client_id.clone()),
                    )
                    .await;
                if steered.is_err() {
                    self.out(Outcome::SteerRejected { text, client_id });
                }
            }
            Effect::QueueAdd { text, client_id } => {
                if let Err(e) = client
                    .queue_add(&thread_id, text_input(&text), Some(client_id))
                    .await
                {
                    self.out(Outcome::QueueAddFailed {
                        text,
                        error: words(&e),
                    });
                }
            }
            Effect::QueueTake { id, text } => match client.queue_delete(&thread_id, &id).await {
                Ok(deleted) => self.out(Outcome::QueueTaken { text, deleted }),
                Err(e) => self.failed("could not take the message out of the queue", &e),
            },
            Effect::QueueStart => {
                let started: Result<Value, _> = client
                    .request("thread/queue/start", &json!({"threadId": thread_id}))
                    .await;
                if let Err(e) = started {
                    self.failed("could not start the queue", &e);
                }
            }
            Effect::QueueRefresh => {
                if let Ok(queue) = client.queue_list(&thread_id).await {
                    self.out(Outcome::Queue(queue));
                }
            }
            Effect::Interrupt { turn_id } => {
                // A turn that ended meanwhile needs no interrupt.
                let _ = client.turn_interrupt(&thread_id, &turn_id).await;
            }
            Effect::Answer {
                request_id,
                decision,
            } => {
                let _ = client.respond(request_id, Ok(json!({ "decision": decision })));
            }
            Effect::AnswerElicitation {
                request_id,
                action,
                content,
            } => {
                // A question resolved meanwhile needs no answer.
                let _ = client.respond_elicitation(request_id, action, content);
            }
            Effect::Refuse { request_id } => {
                let error = JsonRpcError::new(
                    ErrorCode::MethodNotFound,
                    "the terminal UI does not handle this request".to_owned(),
                );
                let _ = client.respond(request_id, Err(error));
            }
            Effect::ListThreads => self.list_sessions().await,
            Effect::ListModels => {
                let listed: Result<Value, _> = client.request("model/list", &json!({})).await;
                match listed {
                    Ok(listed) => {
                        let models = listed
                            .get("data")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(|m| m.get("id").and_then(Value::as_str))
                            .map(str::to_owned)
                            .collect();
                        self.out(Outcome::Models(models));
                    }
                    Err(e) => self.failed("could not list the models", &e),
                }
            }
            Effect::Settings {
                model,
                approval_policy,
            } => {
                let mut params = json!({"threadId": thread_id});
                if let Some(model) = &model {
                    params["model"] = json!(model);
                }
                if let Some(policy) = &approval_policy {
                    params["approvalPolicy"] = json!(policy);
                }
                let changed: Result<Value, _> =
                    client.request("thread/settings/update", &params).await;
                match changed {
                    Ok(_) => {
                        let what = match (&model, &approval_policy) {
                            (Some(model), _) => format!("model: {model} from the next turn"),
                            (None, Some(policy)) => {
                                format!("approvals: {policy} from the next turn")
                            }
                            (None, None) => "settings unchanged".to_owned(),
                        };
                        self.out(Outcome::SettingsChanged {
                            model,
                            approval_policy,
                        });
                        self.out(Outcome::Notice(what, Tone::Info));
                    }
                    Err(e) => self.failed("not changed", &e),
                }
            }
            Effect::Compact => {
                let started: Result<Value, _> = client
                    .request("thread/compact/start", &json!({"threadId": thread_id}))
                    .await;
                match started {
                    Ok(_) => self.out(Outcome::Notice(
                        "compacting: the model summarises the conversation, and the summary replaces it".into(),
                        Tone::Info,
                    )),
                    Err(e) => self.failed("could not compact", &e),
                }
            }
            Effect::Revert { before_turn_id } => {
                let params = json!({"threadId": thread_id, "beforeTurnId": before_turn_id, "restoreFiles": true});
                let reverted: Result<Value, _> = client.request("thread/revert", &params).await;
                let report = reverted.map(|a| {
                    format!(
                        "undone: the last turn{}  (/redo takes it back)",
                        files_report(&a)
                    )
                });
                self.reverted(
                    &thread_id,
                    report.map_err(|e| format!("could not undo: {}", words(&e))),
                )
                .await;
            }
            Effect::Unrevert => {
                let params = json!({"threadId": thread_id});
                let unreverted: Result<Value, _> = client.request("thread/unrevert", &params).await;
                let report = unreverted.map(|a| format!("redone{}", files_report(&a)));
                self.reverted(
                    &thread_id,
                    report.map_err(|e| format!("could not redo: {}", words(&e))),
                )
                .await;
            }
            Effect::Reload => {
                if let Some(thread) = self.read(&thread_id).await {
                    self.out(Outcome::Reloaded(Box::new(thread)));
                }
            }
        }
    }

    /// The thread read again after this UI's revert, with the report.
    async fn reverted(&self, thread_id: &str, report: Result<String, String>) {
        let outcome = match report {
            Ok(report) => Outcome::Reverted {
                thread: self.read(thread_id).await.map(Box::new),
                report,
                ok: true,
            },
            Err(report) => Outcome::Reverted {
                thread: None,
                report,
                ok: false,
            },
        };
        self.out(outcome);
    }

    /// `thread/read` with the turns.
    async fn read(&self, thread_id: &str) -> Option<tiller_client::protocol::Thread> {
        let params = json!({"threadId": thread_id, "includeTurns": true});
        let read: Value = self.client.request("thread/read", &params).await.ok()?;
        serde_json::from_value(read.get("thread")?.clone()).ok()
    }

    async fn resume(&self, id: &str) {
        match self.client.thread_resume(id).await {
            Ok(opened) => self.out(Outcome::ThreadOpened(Box::new(opened))),
            Err(e) => self.out(Outcome::OpenFailed(format!(
                "could not open session {id}: {}",
                words(&e)
            ))),
        }
    }

    /// The newest session (`tiller resume --last`), or a new one.
    pub async fn open_last(&self) {
        // `thread/list` pages by creation; the most recently active is the
        // newest update among the latest created.
        let listed: Result<ThreadListResponse, _> = self
            .client
            .request("thread/list", &json!({"limit": PICKER_SESSIONS}))
            .await;
        match listed.map(|l| l.data.into_iter().max_by_key(|t| t.updated_at)) {
            Ok(Some(thread)) => self.resume(&thread.id).await,
            Ok(None) => {
                self.out(Outcome::Notice(
                    "no saved session yet: starting a new one".into(),
                    Tone::Info,
                ));
                self.call(Effect::StartThread, None).await;
            }
            Err(e) => self.failed("could not list the sessions", &e),
        }
    }

    /// Attach to a server another client drives: its most recently updated
    /// loaded thread, or a new one when none is loaded.
    pub async fn attach(&self) {
        let loaded: Result<Value, _> = self.client.request("thread/loaded/list", &json!({})).await;
        let ids: Vec<String> = loaded
            .ok()
            .and_then(|l| l.get("data").cloned())
            .and_then(|d| serde_json::from_value(d).ok())
            .unwrap_or_default();
        let mut newest: Option<(i64, String)> = None;
        for id in ids {
            let read: Result<Value, _> = self
                .client
                .request("thread/read", &json!({"threadId": id}))
                .await;
            let updated = read
                .ok()
                .and_then(|r| r.pointer("/thread/updatedAt").and_then(Value::as_i64))
                .unwrap_or(0);
            if newest.as_ref().is_none_or(|(at, _)| updated >= *at) {
                newest = Some((updated, id));
            }
        }
        match newest {
            Some((_, id)) => self.resume(&id).await,
            None => self.call(Effect::StartThread, None).await,
        }
    }

    async fn list_sessions(&self) {
        let listed: Result<ThreadListResponse, _> = self
            .client
            .request("thread/list", &json!({"limit": PICKER_SESSIONS}))
            .await;
        let threads = match listed {
            Ok(listed) => listed.data,
            Err(e) => {
                self.failed("could not list the sessions", &e);
                self.out(Outcome::Sessions(Vec::new()));
                return;
            }
        };
        let mut threads = threads;
        // Newest first by their last change, as `tiller sessions` lists them.
        threads.sort_by_key(|t| std::cmp::Reverse(t.updated_at));
        let rows = threads
            .iter()
            .map(|t| SessionRow {
                id: t.id.clone(),
                updated_at: t.updated_at,
                preview: t.preview.clone(),
                cwd: t.cwd.clone(),
                ended: None,
            })
            .collect();
        self.out(Outcome::Sessions(rows));
        for thread in threads {
            let params = json!({"threadId": thread.id, "limit": 1, "sortDirection": "desc"});
            let last: Result<ThreadTurnsListResponse, _> =
                self.client.request("thread/turns/list", &params).await;
            let ended = match last.map(|l| l.data.into_iter().next()) {
                Ok(Some(turn)) => match turn.status {
                    TurnStatus::Completed => "completed".to_owned(),
                    TurnStatus::Interrupted => "interrupted".to_owned(),
                    TurnStatus::Failed => "failed".to_owned(),
                    TurnStatus::InProgress => "running".to_owned(),
                },
                Ok(None) => "no turns".to_owned(),
                Err(_) => "unreadable".to_owned(),
            };
            self.out(Outcome::SessionEnded {
                id: thread.id,
                ended,
            });
        }
    }
}

fn text_input(text: &str) -> Vec<UserInput> {
    vec![UserInput::Text {
        text: text.to_owned(),
    }]
}

/// A client error in a person's words.
fn words(error: &ClientError) -> String {
    match error {
        ClientError::Server { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// ": 3 files restored, 1 removed; conflicts (left as they are): a.txt".
fn files_report(answer: &Value) -> String {
    let Some(files) = answer.get("files") else {
        return " (no files to restore: it ran no tool)".to_owned();
    };
    let list = |key: &str| -> Vec<String> {
        files
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let (restored, removed, conflicts) = (list("restored"), list("removed"), list("conflicts"));
    let mut report = format!(
        ": {} file(s) restored, {} removed",
        restored.len(),
        removed.len()
    );
    if !conflicts.is_empty() {
        report.push_str(&format!(
            "; changed since, left as they are: {}",
            conflicts.join(", ")
        ));
    }
    report
}
