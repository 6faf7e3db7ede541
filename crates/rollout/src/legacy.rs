//! Items for turns recorded before tiller recorded items: derived from the
//! turn's history, once, here, so every front end shows them alike.
//!
//! User messages, assistant messages, and each tool call with its output as a
//! command execution. The marker the model reads after an aborted turn is
//! history, never shown. Ids follow the engine's scheme, `<turn>-item-<n>`.

use tiller_protocol::{ExecEndStatus, ResponseItem, TurnItem, TurnItemKind, UserInput};

/// Where the engine's aborted-turn marker begins.
const MARKER_START: &str = "<turn_aborted>";

/// The items of a turn recorded without them.
pub(crate) fn items_from_history(turn_id: &str, history: &[ResponseItem]) -> Vec<TurnItem> {
    let mut items = Vec::new();
    let mut next = 0;
    let mut id = || {
        next += 1;
        format!("{turn_id}-item-{next}")
    };
    for item in history {
        match item {
            ResponseItem::Message { role, content } => {
                let text: String = content.iter().map(|c| c.text()).collect();
                match role.as_str() {
                    "user" if !text.starts_with(MARKER_START) => items.push(TurnItem::new(
                        id(),
                        TurnItemKind::UserMessage {
                            content: vec![UserInput::text(text)],
                            client_message_id: None,
                        },
                    )),
                    "assistant" => {
                        items.push(TurnItem::new(id(), TurnItemKind::AgentMessage { text }));
                    }
                    _ => {}
                }
            }
            ResponseItem::FunctionCall {
                arguments, call_id, ..
            } => {
                let command = serde_json::from_str::<serde_json::Value>(arguments)
                    .ok()
                    .and_then(|v| v.get("command").cloned())
                    .and_then(|c| serde_json::from_value::<Vec<String>>(c).ok())
                    .unwrap_or_else(|| vec![arguments.clone()]);
                let output = history.iter().find_map(|other| match other {
                    ResponseItem::FunctionCallOutput { call_id: c, output } if c == call_id => {
                        Some(output.clone())
                    }
                    _ => None,
                });
                items.push(TurnItem::new(
                    id(),
                    TurnItemKind::CommandExecution {
                        call_id: call_id.clone(),
                        command,
                        cwd: String::new(),
                        status: Some(ExecEndStatus::Completed),
                        exit_code: None,
                        duration_ms: None,
                        aggregated_output: output,
                    },
                ));
            }
            // Legacy rollouts predate custom tools; their outputs show with their calls.
            ResponseItem::FunctionCallOutput { .. }
            | ResponseItem::CustomToolCall { .. }
            | ResponseItem::CustomToolCallOutput { .. }
            | ResponseItem::Reasoning { .. } => {}
        }
    }
    items
}
