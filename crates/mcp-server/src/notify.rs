//! Engine events as MCP notifications.
//!
//! Every event of a call's turn goes out as a `tiller/event` notification:
//! `{"_meta": {"requestId", "threadId"}, "threadId", "turnId", "msg": <engine
//! event>}` (the `msg` is the engine's `EventMsg` as serialized in rollouts).
//! When the call carried a `progressToken`, each event also goes out as a
//! `notifications/progress` with a one-line message.

use rmcp::model::{
    CustomNotification, GetMeta, ProgressNotificationParam, ProgressToken, RequestId,
    ServerNotification,
};
use rmcp::{Peer, RoleServer};
use serde_json::{Value, json};
use tiller_protocol::{
    Event, EventMsg, TurnAbortReason, TurnItem, TurnItemKind, display_command, plan_lines,
};

/// The method of the event notifications.
pub const EVENT_METHOD: &str = "tiller/event";

/// Sends one call's events to the client.
pub(crate) struct EventNotifier {
    peer: Peer<RoleServer>,
    request_id: RequestId,
    thread_id: String,
    progress_token: Option<ProgressToken>,
    progress: u64,
}

impl EventNotifier {
    pub(crate) fn new(
        peer: Peer<RoleServer>,
        request_id: RequestId,
        thread_id: String,
        progress_token: Option<ProgressToken>,
    ) -> EventNotifier {
        EventNotifier {
            peer,
            request_id,
            thread_id,
            progress_token,
            progress: 0,
        }
    }

    /// Send `event`. A client that cannot be written to any more is not an
    /// error here: the call's answer will not reach it either.
    pub(crate) async fn send(&mut self, event: &Event) {
        let Some(msg) = wire_msg(&event.msg) else {
            return;
        };
        let params = json!({
            "threadId": self.thread_id,
            "turnId": event.turn_id,
            "msg": msg,
        });
        let mut notification = CustomNotification::new(EVENT_METHOD, Some(params));
        // rmcp writes `_meta` from the notification's extensions, not from the params.
        let meta = &mut notification.get_meta_mut().0.0;
        meta.insert("requestId".into(), request_id_value(&self.request_id));
        meta.insert("threadId".into(), Value::String(self.thread_id.clone()));
        let notification = ServerNotification::CustomNotification(notification);
        if let Err(e) = self.peer.send_notification(notification).await {
            tracing::debug!("could not send an event notification: {e}");
        }
        let Some(token) = &self.progress_token else {
            return;
        };

        self.progress += 1;
        let param = ProgressNotificationParam::new(token.clone(), self.progress as f64)
            .with_message(describe(&event.msg));
        if let Err(e) = self.peer.notify_progress(param).await {
            tracing::debug!("could not send a progress notification: {e}");
        }
    }
}

fn request_id_value(id: &RequestId) -> Value {
    serde_json::to_value(id).unwrap_or(Value::Null)
}

/// An engine event as `tiller/event` carries it: the event as the engine
/// serializes it, except items, which go out under the names MCP clients of
/// tiller already read: `agent_message` and `reasoning` (completed, with
/// their text), `exec_command_begin` and `exec_command_end` (a command
/// started, ended), `user_message` (completed). An item that starts with
/// nothing to say yet (a message about to stream) is not sent.
pub(crate) fn wire_msg(msg: &EventMsg) -> Option<Value> {
    let item_msg = |kind: &str, item: &TurnItem, fields: Value| {
        let mut msg = json!({"type": kind, "item_id": item.id});
        if let (Some(msg), Value::Object(fields)) = (msg.as_object_mut(), fields) {
            msg.extend(fields);
        }
        msg
    };
    match msg {
        EventMsg::ItemStarted { item } => match &item.kind {
            TurnItemKind::CommandExecution {
                call_id,
                command,
                cwd,
                ..
            } => Some(item_msg(
                "exec_command_begin",
                item,
                json!({"call_id": call_id, "command": command, "cwd": cwd}),
            )),
            TurnItemKind::FileChange {
                call_id, changes, ..
            } => Some(item_msg(
                "patch_apply_begin",
                item,
                json!({"call_id": call_id, "changes": changes}),
            )),
            TurnItemKind::McpToolCall {
                call_id,
                server,
                tool,
                arguments,
                ..
            } => Some(item_msg(
                "mcp_tool_call_begin",
                item,
                json!({"call_id": call_id,
                       "invocation": {"server": server, "tool": tool, "arguments": arguments}}),
            )),
            TurnItemKind::UserMessage { .. }
            | TurnItemKind::AgentMessage { .. }
            | TurnItemKind::Reasoning { .. }
            | TurnItemKind::ContextCompaction { .. } => None,
        },
        EventMsg::ItemCompleted { item } => Some(match &item.kind {
            TurnItemKind::AgentMessage { text } => {
                item_msg("agent_message", item, json!({"text": text}))
            }
            TurnItemKind::Reasoning { text } => item_msg("reasoning", item, json!({"text": text})),
            TurnItemKind::UserMessage {
                content,
                client_message_id,
            } => item_msg(
                "user_message",
                item,
                json!({"content": content, "client_message_id": client_message_id}),
            ),
            TurnItemKind::CommandExecution {
                call_id,
                command,
                status,
                exit_code,
                duration_ms,
                aggregated_output,
                ..
            } => item_msg(
                "exec_command_end",
                item,
                json!({"call_id": call_id, "command": command, "status": status,
                       "exit_code": exit_code, "duration_ms": duration_ms,
                       "aggregated_output": aggregated_output}),
            ),
            TurnItemKind::FileChange {
                call_id,
                changes,
                status,
            } => item_msg(
                "patch_apply_end",
                item,
                json!({"call_id": call_id, "changes": changes, "status": status,
                       "success": *status == Some(tiller_protocol::PatchStatus::Completed)}),
            ),
            TurnItemKind::ContextCompaction {
                trigger,
                status,
                tokens,
            } => item_msg(
                "context_compacted",
                item,
                json!({"trigger": trigger, "status": status, "tokens": tokens}),
            ),
            TurnItemKind::McpToolCall {
                call_id,
                server,
                tool,
                arguments,
                status,
                result,
                error,
                duration_ms,
            } => item_msg(
                "mcp_tool_call_end",
                item,
                json!({"call_id": call_id,
                       "invocation": {"server": server, "tool": tool, "arguments": arguments},
                       "status": status, "result": result, "error": error,
                       "duration_ms": duration_ms}),
            ),
        }),
        other => serde_json::to_value(other).ok(),
    }
}

/// One line for a progress notification.
pub(crate) fn describe(msg: &EventMsg) -> String {
    match msg {
        EventMsg::SessionConfigured { session_id, .. } => format!("session {session_id} ready"),
        EventMsg::TurnStarted { .. } => "turn started".to_string(),
        EventMsg::AgentMessageDelta { delta, .. } | EventMsg::ReasoningDelta { delta, .. } => {
            delta.clone()
        }
        EventMsg::ItemStarted { item } => match &item.kind {
            TurnItemKind::CommandExecution { command, .. } => {
                format!("running: {}", display_command(command))
            }
            TurnItemKind::FileChange { changes, .. } => format!(
                "editing: {}",
                changes
                    .iter()
                    .map(|c| c.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            TurnItemKind::ContextCompaction { .. } => "compacting the conversation".to_string(),
            TurnItemKind::McpToolCall { server, tool, .. } => format!("calling {server}.{tool}"),
            TurnItemKind::UserMessage { .. }
            | TurnItemKind::AgentMessage { .. }
            | TurnItemKind::Reasoning { .. } => String::new(),
        },
        EventMsg::ItemCompleted { item } => match &item.kind {
            TurnItemKind::AgentMessage { text } => format!("agent: {text}"),
            TurnItemKind::Reasoning { text } => format!("reasoning: {text}"),
            TurnItemKind::UserMessage { .. } => "input received".to_string(),
            TurnItemKind::CommandExecution {
                command,
                exit_code,
                status,
                ..
            } => match exit_code {
                Some(code) => format!("{} exited with {code}", display_command(command)),
                None => format!("{} ended: {status:?}", display_command(command)),
            },
            TurnItemKind::FileChange {
                changes, status, ..
            } => {
                format!("{} file(s) edited: {status:?}", changes.len())
            }
            TurnItemKind::ContextCompaction {
                trigger, tokens, ..
            } => tiller_protocol::compaction_line(*trigger, *tokens),
            TurnItemKind::McpToolCall {
                server,
                tool,
                status,
                error,
                ..
            } => tiller_protocol::mcp_call_line(server, tool, *status, error.as_deref()),
        },
        EventMsg::McpToolCallProgress { message, .. } => message.clone(),
        EventMsg::McpServerStatus {
            server,
            status,
            error,
            ..
        } => tiller_protocol::mcp_server_line(server, *status, error.as_deref()),
        EventMsg::ElicitationRequest {
            server, message, ..
        } => format!("{server} asks: {message}"),
        EventMsg::ExecCommandOutputDelta { chunk, .. } => chunk.clone(),
        EventMsg::ExecApprovalRequest { command, .. } => {
            format!("approval needed: {}", display_command(command))
        }
        EventMsg::PatchApprovalRequest { paths, .. } => {
            format!("approval needed: edit {}", paths.join(", "))
        }
        EventMsg::StreamRetry {
            attempt,
            max,
            reason,
            ..
        } => format!("retrying the model request ({attempt}/{max}): {reason}"),
        EventMsg::BackgroundEvent { message } => message.clone(),
        EventMsg::TurnDiff { diff } => format!("the turn's diff:\n{diff}"),
        EventMsg::PlanUpdated { explanation, plan } => {
            plan_lines(explanation.as_deref(), plan).join("\n")
        }
        EventMsg::SteerDelivered { .. } => "input delivered to the model".to_string(),
        EventMsg::TurnCompleted { .. } => "turn completed".to_string(),
        EventMsg::TurnAborted { reason, .. } => match reason {
            TurnAbortReason::Interrupted => "turn interrupted".to_string(),
            TurnAbortReason::Replaced => "turn replaced by a new one".to_string(),
        },
        EventMsg::TurnFailed { error, .. } => format!("turn failed: {}", error.message),
        EventMsg::ShutdownComplete => "session shut down".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiller_protocol::{ExecEndStatus, UserInput};

    fn command(status: Option<ExecEndStatus>) -> TurnItem {
        TurnItem::new(
            "t-item-2",
            TurnItemKind::CommandExecution {
                call_id: "c1".into(),
                command: vec!["bash".into(), "-lc".into(), "echo hi".into()],
                cwd: "/w".into(),
                status,
                exit_code: status.map(|_| 0),
                duration_ms: status.map(|_| 5),
                aggregated_output: status.map(|_| "hi\n".into()),
            },
        )
    }

    #[test]
    fn engine_items_map_to_the_event_names_mcp_clients_read() {
        let begin = wire_msg(&EventMsg::ItemStarted {
            item: command(None),
        });
        assert_eq!(
            begin,
            Some(
                json!({"type": "exec_command_begin", "item_id": "t-item-2", "call_id": "c1",
                        "command": ["bash", "-lc", "echo hi"], "cwd": "/w"})
            )
        );
        let end = wire_msg(&EventMsg::ItemCompleted {
            item: command(Some(ExecEndStatus::Completed)),
        });
        assert_eq!(
            end,
            Some(
                json!({"type": "exec_command_end", "item_id": "t-item-2", "call_id": "c1",
                        "command": ["bash", "-lc", "echo hi"], "status": "completed",
                        "exit_code": 0, "duration_ms": 5, "aggregated_output": "hi\n"})
            )
        );
        let answer = TurnItem::new(
            "t-item-3",
            TurnItemKind::AgentMessage {
                text: "done".into(),
            },
        );
        // A message is sent once, whole, when it completes.
        assert_eq!(
            wire_msg(&EventMsg::ItemStarted {
                item: answer.clone()
            }),
            None
        );
        assert_eq!(
            wire_msg(&EventMsg::ItemCompleted { item: answer }),
            Some(json!({"type": "agent_message", "item_id": "t-item-3", "text": "done"}))
        );
        let user = TurnItem::new(
            "t-item-1",
            TurnItemKind::UserMessage {
                content: vec![UserInput::text("hi")],
                client_message_id: Some("m1".into()),
            },
        );
        assert_eq!(
            wire_msg(&EventMsg::ItemCompleted { item: user }),
            Some(json!({"type": "user_message", "item_id": "t-item-1",
                        "content": [{"type": "text", "text": "hi"}], "client_message_id": "m1"}))
        );
        // Other events go out as the engine serializes them.
        assert_eq!(
            wire_msg(&EventMsg::TurnStarted {
                client_message_id: None
            }),
            Some(json!({"type": "turn_started"}))
        );
        // The plan as Codex's `plan_update`.
        let plan = EventMsg::PlanUpdated {
            explanation: None,
            plan: vec![tiller_protocol::PlanStep {
                step: "read".into(),
                status: tiller_protocol::StepStatus::InProgress,
            }],
        };
        assert_eq!(
            wire_msg(&plan),
            Some(json!({"type": "plan_update",
                        "plan": [{"step": "read", "status": "in_progress"}]}))
        );
        assert_eq!(describe(&plan), "plan\n  [>] read");
    }
}
