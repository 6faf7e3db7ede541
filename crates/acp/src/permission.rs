//! An engine approval as `session/request_permission`: allow once, allow
//! always (for the session), reject. The client's `cancelled` is the
//! approval's Abort: the turn ends `cancelled`. When the turn ends first
//! (a `session/cancel`), the question is dropped.

use agent_client_protocol::Client;
use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::v1::schema as acp;
use tiller_core::SessionHandle;
use tiller_protocol::{EventMsg, Op, ReviewDecision};
use tokio_util::sync::CancellationToken;

use crate::translate::{Translator, asked_call};

const ALLOW_ONCE: &str = "allow_once";
const ALLOW_ALWAYS: &str = "allow_always";
const REJECT_ONCE: &str = "reject_once";

/// A question the engine waits on.
pub(crate) struct Question {
    call_id: String,
    tool_call: acp::ToolCallUpdate,
}

impl Question {
    /// The question `msg` asks, if it asks one.
    pub(crate) fn of(msg: &EventMsg, translator: &Translator) -> Option<Question> {
        let (call_id, item_id, fields) = match msg {
            EventMsg::ExecApprovalRequest {
                call_id,
                item_id,
                command,
                reason,
                ..
            } => {
                let (title, kind) = asked_call(command);
                let mut fields = acp::ToolCallUpdateFields::new().title(title).kind(kind);
                if let Some(reason) = reason {
                    fields = fields.content(vec![reason.clone().into()]);
                }
                (call_id, item_id, fields)
            }
            EventMsg::PatchApprovalRequest {
                call_id,
                item_id,
                paths,
                reason,
                ..
            } => (
                call_id,
                item_id,
                acp::ToolCallUpdateFields::new()
                    .title(format!("Edit {}", paths.join(", ")))
                    .kind(acp::ToolKind::Edit)
                    .locations(
                        paths
                            .iter()
                            .map(|path| acp::ToolCallLocation::new(translator.cwd().join(path)))
                            .collect::<Vec<_>>(),
                    )
                    .content(vec![reason.clone().into()]),
            ),
            _ => return None,
        };
        Some(Question {
            call_id: call_id.clone(),
            tool_call: acp::ToolCallUpdate::new(acp::ToolCallId::new(item_id.clone()), fields),
        })
    }
}

fn options() -> Vec<acp::PermissionOption> {
    vec![
        acp::PermissionOption::new(ALLOW_ONCE, "Allow", acp::PermissionOptionKind::AllowOnce),
        acp::PermissionOption::new(
            ALLOW_ALWAYS,
            "Always allow in this session",
            acp::PermissionOptionKind::AllowAlways,
        ),
        acp::PermissionOption::new(REJECT_ONCE, "Reject", acp::PermissionOptionKind::RejectOnce),
    ]
}

/// Ask the client `question` and give the engine the answer, unless
/// `dropped` fires first (the turn ended).
pub(crate) async fn ask(
    cx: ConnectionTo<Client>,
    session_id: acp::SessionId,
    session: SessionHandle,
    question: Question,
    dropped: CancellationToken,
) {
    let request = acp::RequestPermissionRequest::new(session_id, question.tool_call, options());
    // The answer comes through a channel, so a question dropped when the
    // turn ends sends the client nothing more (the spec has the client
    // answer it `cancelled` after `session/cancel`).
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sent = cx
        .prepare_request(request)
        .on_receiving_result(async move |answer| {
            let _ = tx.send(answer);
            Ok(())
        });
    if sent.is_err() {
        return;
    }
    let answer = tokio::select! {
        answer = rx => match answer {
            Ok(answer) => answer,
            Err(_) => return,
        },
        () = dropped.cancelled() => return,
    };
    let decision = match answer.map(|response| response.outcome) {
        Ok(acp::RequestPermissionOutcome::Selected(selected)) => match &*selected.option_id.0 {
            ALLOW_ONCE => ReviewDecision::Approved,
            ALLOW_ALWAYS => ReviewDecision::ApprovedForSession,
            _ => ReviewDecision::Denied,
        },
        // The client cancelled the prompt: the turn stops.
        Ok(acp::RequestPermissionOutcome::Cancelled) => ReviewDecision::Abort,
        Ok(_) | Err(_) => ReviewDecision::Denied,
    };
    let _ = session
        .submit(Op::Approval {
            call_id: question.call_id,
            decision,
        })
        .await;
}
