//! Approvals over the app-server. Under `untrusted`, a command off the
//! read-only allowlist, or an edit, waits for a person: the driver sends
//! `item/commandExecution/requestApproval` (or `item/fileChange/requestApproval`)
//! as a server request to every connection subscribed to the thread (and to
//! one that subscribes while it waits). The first answer from a connection it was sent to drives the
//! engine's approval; later answers are ignored. An answer, or the end of the
//! turn (an interrupt), resolves it: `serverRequest/resolved` to the
//! subscribers, and the thread's status leaves `waitingOnApproval`.

use serde_json::Value;
use tiller_app_server_protocol::{
    CommandApprovalParams, FileChangeApprovalParams, RequestId, ServerNotification,
    ServerRequestResolvedNotification, ThreadStatus, ThreadStatusChangedNotification,
};
use tiller_protocol::{EventMsg, Op, ReviewDecision};

use super::ThreadDriver;
use crate::convert::now_ms;
use crate::outgoing::{ConnectionId, Outgoing};

/// The server request's method for a command.
const COMMAND_METHOD: &str = "item/commandExecution/requestApproval";

/// The server request's method for an edit.
const EDIT_METHOD: &str = "item/fileChange/requestApproval";

/// How an approval's request id starts: `approval:<thread id>:<n>`, so an
/// answer finds its thread ([`thread_of_request`]).
const ID_PREFIX: &str = "approval:";

/// The thread a server request's id names, if it is an approval's.
pub(crate) fn thread_of_request(id: &RequestId) -> Option<&str> {
    match id {
        RequestId::String(id) => id
            .strip_prefix(ID_PREFIX)
            .and_then(|rest| rest.rsplit_once(':'))
            .map(|(thread, _)| thread),
        RequestId::Integer(_) => None,
    }
}

/// The answers a client may give, as Codex names them.
const DECISIONS: [&str; 4] = ["accept", "acceptForSession", "decline", "cancel"];

/// One approval waiting for an answer.
#[derive(Debug)]
pub(super) struct Pending {
    id: RequestId,
    method: &'static str,
    call_id: String,
    turn_id: String,
    params: Value,
    /// The connections it was sent to: only they may answer.
    sent_to: Vec<ConnectionId>,
}

/// A thread's approvals waiting for an answer, and the count for their ids.
#[derive(Debug, Default)]
pub(super) struct Approvals {
    asked: u64,
    pending: Vec<Pending>,
}

/// What the engine asked.
pub(super) struct Asked {
    pub(super) turn_id: String,
    pub(super) call_id: String,
    pub(super) item_id: String,
    pub(super) what: AskedFor,
}

impl Asked {
    /// The approval an engine event of turn `turn_id` asks for, if it asks.
    pub(super) fn of_event(turn_id: &str, msg: &EventMsg) -> Option<Asked> {
        let (call_id, item_id, what) = match msg {
            EventMsg::ExecApprovalRequest {
                call_id,
                item_id,
                command,
                cwd,
            } => (
                call_id,
                item_id,
                AskedFor::Command {
                    command: command.clone(),
                    cwd: cwd.clone(),
                },
            ),
            EventMsg::PatchApprovalRequest {
                call_id,
                item_id,
                reason,
                outside,
                ..
            } => (
                call_id,
                item_id,
                AskedFor::Edit {
                    reason: reason.clone(),
                    outside: outside.clone(),
                },
            ),
            _ => return None,
        };
        Some(Asked {
            turn_id: turn_id.to_string(),
            call_id: call_id.clone(),
            item_id: item_id.clone(),
            what,
        })
    }
}

/// What an approval is for.
pub(super) enum AskedFor {
    /// A command to run in a folder.
    Command { command: Vec<String>, cwd: String },
    /// An edit (its file change item shows it), and why it is asked.
    Edit {
        reason: String,
        outside: Option<String>,
    },
}

impl ThreadDriver {
    /// The engine asks whether a command may run: ask the subscribers.
    pub(super) fn ask_approval(&mut self, asked: Asked) {
        self.approvals.asked += 1;
        let id = RequestId::String(format!(
            "{ID_PREFIX}{}:{}",
            self.info.id, self.approvals.asked
        ));
        let (method, params) = match asked.what {
            AskedFor::Command { command, cwd } => (
                COMMAND_METHOD,
                serde_json::to_value(CommandApprovalParams {
                    kind: "command".to_string(),
                    thread_id: self.info.id.clone(),
                    turn_id: asked.turn_id.clone(),
                    item_id: asked.item_id,
                    started_at_ms: now_ms(),
                    approval_id: None,
                    environment_id: None,
                    reason: Some(
                        "the approval policy is untrusted and this command may change things"
                            .to_string(),
                    ),
                    command: Some(tiller_protocol::display_command(&command)),
                    cwd: Some(cwd),
                    available_decisions: DECISIONS.iter().map(|d| d.to_string()).collect(),
                }),
            ),
            AskedFor::Edit { reason, outside } => (
                EDIT_METHOD,
                serde_json::to_value(FileChangeApprovalParams {
                    thread_id: self.info.id.clone(),
                    turn_id: asked.turn_id.clone(),
                    item_id: asked.item_id,
                    started_at_ms: now_ms(),
                    reason: Some(reason),
                    grant_root: outside,
                }),
            ),
        };
        let params = params.unwrap_or(Value::Null);
        let mut pending = Pending {
            id,
            method,
            call_id: asked.call_id,
            turn_id: asked.turn_id,
            params,
            sent_to: Vec::new(),
        };
        self.subscribers.retain(|s| !s.is_closed());
        for subscriber in &self.subscribers {
            send(&mut pending, subscriber);
        }
        self.approvals.pending.push(pending);
        self.status_changed();
    }

    /// A connection that subscribes while approvals wait is asked too.
    pub(super) fn ask_again(&mut self, to: &Outgoing) {
        for pending in &mut self.approvals.pending {
            send(pending, to);
        }
    }

    /// A client's answer to a server request of this thread.
    pub(super) async fn approval_answer(
        &mut self,
        id: &RequestId,
        result: Result<Value, Value>,
        from: ConnectionId,
    ) {
        let Some(at) = self
            .approvals
            .pending
            .iter()
            .position(|p| &p.id == id && p.sent_to.contains(&from))
        else {
            // Answered already, resolved by the turn's end, or never sent
            // to this connection.
            tracing::debug!(?id, "ignoring an answer to no pending request");
            return;
        };
        let pending = self.approvals.pending.remove(at);
        let decision = decision(&result);
        if let Err(e) = self
            .session
            .submit(Op::Approval {
                call_id: pending.call_id.clone(),
                decision,
            })
            .await
        {
            // The turn ended meanwhile; its end resolves nothing more.
            tracing::debug!("the approval came after its turn: {e}");
        }
        self.resolved(pending.id);
        self.status_changed();
    }

    /// A turn ended: whatever it waited on needs no answer any more.
    pub(super) fn turn_ended(&mut self, turn_id: &str) {
        let (ended, waiting): (Vec<Pending>, Vec<Pending>) =
            std::mem::take(&mut self.approvals.pending)
                .into_iter()
                .partition(|p| p.turn_id == turn_id);
        self.approvals.pending = waiting;
        for pending in ended {
            self.resolved(pending.id);
        }
    }

    /// Whether an approval waits (the thread's status says so).
    pub(super) fn waiting_on_approval(&self) -> bool {
        !self.approvals.pending.is_empty()
    }

    fn resolved(&mut self, request_id: RequestId) {
        let notification =
            ServerNotification::ServerRequestResolved(ServerRequestResolvedNotification {
                thread_id: self.info.id.clone(),
                request_id,
            });
        self.broadcast(&notification);
    }

    /// `thread/status/changed`: active, waiting on approval or not.
    fn status_changed(&mut self) {
        if self.session.running_turn().is_none() {
            return;
        }
        let flags = if self.waiting_on_approval() {
            vec!["waitingOnApproval".to_string()]
        } else {
            Vec::new()
        };
        let notification =
            ServerNotification::ThreadStatusChanged(ThreadStatusChangedNotification {
                thread_id: self.info.id.clone(),
                status: ThreadStatus::Active {
                    active_flags: flags,
                },
            });
        self.broadcast(&notification);
    }
}

fn send(pending: &mut Pending, to: &Outgoing) {
    if !pending.sent_to.contains(&to.id()) {
        to.request(pending.id.clone(), pending.method, pending.params.clone());
        pending.sent_to.push(to.id());
    }
}

/// Codex's decision as the engine's. An error, or an answer that is not
/// one of the decisions, declines: nothing runs that nobody approved.
fn decision(result: &Result<Value, Value>) -> ReviewDecision {
    let Ok(result) = result else {
        return ReviewDecision::Denied;
    };
    match &result["decision"] {
        Value::String(d) if d == "accept" => ReviewDecision::Approved,
        Value::String(d) if d == "acceptForSession" => ReviewDecision::ApprovedForSession,
        Value::String(d) if d == "cancel" => ReviewDecision::Abort,
        // An amendment accepts this command; tiller keeps no exec policy.
        Value::Object(o) if o.contains_key("acceptWithExecpolicyAmendment") => {
            ReviewDecision::Approved
        }
        _ => ReviewDecision::Denied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_approvals_id_names_its_thread_and_no_other_id_does() {
        let id = RequestId::String(format!("{ID_PREFIX}01a2-thread:7"));
        assert_eq!(thread_of_request(&id), Some("01a2-thread"));
        assert_eq!(thread_of_request(&RequestId::Integer(7)), None);
        assert_eq!(
            thread_of_request(&RequestId::String("other:1".into())),
            None
        );
    }

    #[test]
    fn codex_decisions_map_to_the_engines_and_anything_else_declines() {
        let of = |v: Value| decision(&Ok(v));
        assert_eq!(of(json!({"decision": "accept"})), ReviewDecision::Approved);
        assert_eq!(
            of(json!({"decision": "acceptForSession"})),
            ReviewDecision::ApprovedForSession
        );
        assert_eq!(of(json!({"decision": "decline"})), ReviewDecision::Denied);
        assert_eq!(of(json!({"decision": "cancel"})), ReviewDecision::Abort);
        assert_eq!(
            of(json!({"decision": "yes please"})),
            ReviewDecision::Denied
        );
        assert_eq!(of(json!({})), ReviewDecision::Denied);
        assert_eq!(
            decision(&Err(json!({"code": -1, "message": "no"}))),
            ReviewDecision::Denied
        );
    }
}
