//! Approvals over the app-server. Under `untrusted`, a command off the
//! read-only allowlist, or an edit, waits for a person; so does, under every
//! policy but `never`, a command to run outside the sandbox (one the sandbox
//! denied, or one the model asks for under `on-request`), with the reason
//! in the request's `reason`. The driver asks the clients with
//! `item/commandExecution/requestApproval` (or
//! `item/fileChange/requestApproval`), a server request sent, answered and
//! resolved as [`super::server_requests`] says; the answer drives the
//! engine's approval.

use serde_json::Value;
use tiller_app_server_protocol::{CommandApprovalParams, FileChangeApprovalParams, ServerRequest};
use tiller_protocol::{EventMsg, ReviewDecision};

use super::ThreadDriver;
use super::server_requests::Awaiting;
use crate::convert::now_ms;

/// The answers a client may give, as Codex names them.
const DECISIONS: [&str; 4] = ["accept", "acceptForSession", "decline", "cancel"];

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
                reason,
            } => (
                call_id,
                item_id,
                AskedFor::Command {
                    command: command.clone(),
                    cwd: cwd.clone(),
                    reason: reason.clone(),
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
    /// A command to run in a folder, and why the person is asked when
    /// there is more to it than the policy (the sandbox denied it, or the
    /// model asks to run it outside the sandbox).
    Command {
        command: Vec<String>,
        cwd: String,
        reason: Option<String>,
    },
    /// An edit (its file change item shows it), and why it is asked.
    Edit {
        reason: String,
        outside: Option<String>,
    },
}

impl ThreadDriver {
    /// The engine asks whether a command may run: ask the subscribers.
    pub(super) fn ask_approval(&mut self, asked: Asked) {
        let request = match asked.what {
            AskedFor::Command {
                command,
                cwd,
                reason,
            } => ServerRequest::CommandApproval(CommandApprovalParams {
                kind: "command".to_string(),
                thread_id: self.info.id.clone(),
                turn_id: asked.turn_id.clone(),
                item_id: asked.item_id,
                started_at_ms: now_ms(),
                approval_id: None,
                environment_id: None,
                reason: Some(reason.unwrap_or_else(|| {
                    "the approval policy is untrusted and this command may change things"
                        .to_string()
                })),
                command: Some(tiller_protocol::display_command(&command)),
                cwd: Some(cwd),
                available_decisions: DECISIONS.iter().map(|d| d.to_string()).collect(),
            }),
            AskedFor::Edit { reason, outside } => {
                ServerRequest::FileChangeApproval(FileChangeApprovalParams {
                    thread_id: self.info.id.clone(),
                    turn_id: asked.turn_id.clone(),
                    item_id: asked.item_id,
                    started_at_ms: now_ms(),
                    reason: Some(reason),
                    grant_root: outside,
                })
            }
        };
        self.ask(
            request,
            Some(asked.turn_id),
            Awaiting::Approval {
                call_id: asked.call_id,
            },
        );
    }
}

/// Codex's decision as the engine's. An error, or an answer that is not
/// one of the decisions, declines: nothing runs that nobody approved.
pub(super) fn decision(result: &Result<Value, Value>) -> ReviewDecision {
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
