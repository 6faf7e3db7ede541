//! Approvals: ask the MCP client through elicitation, or deny and tell the
//! model how the caller can allow it.

use std::sync::Arc;

use rmcp::model::{ElicitRequestParams, ElicitationAction, ElicitationSchema};
use rmcp::service::ElicitationMode;
use rmcp::{Peer, RoleServer};
use tiller_protocol::{Op, OpError, ReviewDecision, UserInput};

use crate::thread::McpThread;

/// The property of the elicitation form that approves for the whole session.
const FOR_SESSION: &str = "approveForSession";

/// A command or an edit waiting for a decision.
#[derive(Debug, Clone)]
pub(crate) struct ApprovalRequest {
    pub(crate) turn_id: String,
    pub(crate) call_id: String,
    /// What tiller wants to do, for a person: "run `ls` in /w", "edit a.txt".
    pub(crate) action: String,
}

impl ApprovalRequest {
    /// The request an engine event asks for, if it asks.
    pub(crate) fn of_event(turn_id: &str, msg: &tiller_protocol::EventMsg) -> Option<Self> {
        use tiller_protocol::EventMsg;
        let (call_id, action) = match msg {
            EventMsg::ExecApprovalRequest {
                call_id,
                command,
                cwd,
                reason,
                ..
            } => {
                let action = format!("run `{}` in {cwd}", command.join(" "));
                match reason {
                    Some(reason) => (call_id, format!("{action} ({reason})")),
                    None => (call_id, action),
                }
            }
            EventMsg::PatchApprovalRequest {
                call_id,
                paths,
                reason,
                ..
            } => (call_id, format!("edit {} ({reason})", paths.join(", "))),
            _ => return None,
        };
        Some(ApprovalRequest {
            turn_id: turn_id.to_string(),
            call_id: call_id.clone(),
            action,
        })
    }
}

/// Decide `request` and answer the engine. Runs as its own task, so the call
/// keeps streaming (and can be cancelled) while the client decides.
pub(crate) async fn resolve(
    peer: Peer<RoleServer>,
    thread: Arc<McpThread>,
    request: ApprovalRequest,
) {
    let decision = if peer
        .supported_elicitation_modes()
        .contains(&ElicitationMode::Form)
    {
        elicit(&peer, &thread, &request).await
    } else {
        deny_with_hint(&thread, &request).await;
        ReviewDecision::Denied
    };
    let answer = thread
        .session()
        .submit(Op::Approval {
            call_id: request.call_id.clone(),
            decision,
        })
        .await;
    match answer {
        // The turn ended (interrupted, cancelled) before the decision came.
        Ok(_) | Err(OpError::UnknownApproval { .. } | OpError::SessionClosed) => {}
        Err(e) => tracing::warn!(call_id = %request.call_id, "approval not taken: {e}"),
    }
}

async fn elicit(
    peer: &Peer<RoleServer>,
    thread: &McpThread,
    request: &ApprovalRequest,
) -> ReviewDecision {
    let schema = ElicitationSchema::builder()
        .optional_bool(FOR_SESSION, false)
        .build_unchecked();
    let params = ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: format!(
            "tiller (thread {}) wants to {}. Accept to allow it (tick {FOR_SESSION} \
             to allow it for the rest of the session), decline to deny it, cancel to \
             stop the turn.",
            thread.id(),
            request.action,
        ),
        requested_schema: schema,
    };
    match peer.create_elicitation(params).await {
        Ok(result) => match result.action {
            ElicitationAction::Accept => {
                let for_session = result
                    .content
                    .as_ref()
                    .and_then(|c| c.get(FOR_SESSION))
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false);
                if for_session {
                    ReviewDecision::ApprovedForSession
                } else {
                    ReviewDecision::Approved
                }
            }
            ElicitationAction::Decline => ReviewDecision::Denied,
            ElicitationAction::Cancel => ReviewDecision::Abort,
            // A future action this server does not know: the safe answer.
            _ => ReviewDecision::Denied,
        },
        Err(e) => {
            tracing::warn!("elicitation failed, denying the command: {e}");
            ReviewDecision::Denied
        }
    }
}

/// The engine tells the model only that the user denied the command; this
/// adds, as input to the same turn, why and how the caller can allow it.
async fn deny_with_hint(thread: &McpThread, request: &ApprovalRequest) {
    let hint = format!(
        "tiller did not {}: this session's approval policy is `{}`, which needs a \
         person's approval for it, and the MCP client that started the session cannot be \
         asked (it does not support elicitation). The caller can allow commands and edits by \
         starting the session with the `approval-policy` argument set to \"never\".",
        request.action,
        thread.approval_policy()
    );
    let steer = thread
        .session()
        .submit(Op::Steer {
            items: vec![UserInput::text(hint)],
            expected_turn_id: request.turn_id.clone(),
            client_message_id: None,
        })
        .await;
    if let Err(e) = steer {
        tracing::debug!("could not add the denial hint: {e}");
    }
}
