//! Between wire types and engine types.

use std::time::{SystemTime, UNIX_EPOCH};

use tiller_app_server_protocol::{ThreadItem, UserInput as WireInput};
use tiller_core::tools::shell::display_command;
use tiller_protocol::{ResponseItem, UserInput};

/// Wire input to engine input. Text and mentions become text; images are not
/// sent to the model yet and are left out.
pub(crate) fn engine_input(input: &[WireInput]) -> Vec<UserInput> {
    input
        .iter()
        .filter_map(|item| match item {
            WireInput::Text { text } => Some(UserInput::text(text.clone())),
            WireInput::Mention { name, path } => Some(UserInput::text(format!("@{name} ({path})"))),
            WireInput::Image { .. } | WireInput::LocalImage { .. } => None,
        })
        .collect()
}

/// Engine input back to wire input (for `unsentInput`).
pub(crate) fn wire_input(input: &[UserInput]) -> Vec<WireInput> {
    input
        .iter()
        .map(|item| WireInput::Text {
            text: item.as_text().to_string(),
        })
        .collect()
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Unix seconds now.
pub(crate) fn now_secs() -> i64 {
    now_ms() / 1000
}

/// The creation time of a session from its UUIDv7 id (its first 48 bits are
/// Unix milliseconds), in Unix seconds.
pub(crate) fn created_secs(session_id: &str) -> i64 {
    let hex: String = session_id.chars().filter(|c| *c != '-').take(12).collect();
    i64::from_str_radix(&hex, 16).map_or_else(|_| now_secs(), |ms| ms / 1000)
}

/// History items of a recorded turn as thread items (messages and commands).
pub(crate) fn thread_items(items: &[ResponseItem], turn_id: &str, cwd: &str) -> Vec<ThreadItem> {
    let mut out = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let id = format!("{turn_id}-{n}");
        match item {
            ResponseItem::Message { role, content } => {
                let text: String = content.iter().map(|c| c.text()).collect();
                match role.as_str() {
                    "user" => out.push(ThreadItem::UserMessage {
                        id,
                        content: vec![WireInput::Text { text }],
                        client_id: None,
                    }),
                    "assistant" => out.push(ThreadItem::AgentMessage { id, text }),
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
                    .map_or_else(|| arguments.clone(), |argv| display_command(&argv));
                let output = items.iter().find_map(|other| match other {
                    ResponseItem::FunctionCallOutput { call_id: c, output } if c == call_id => {
                        Some(output.clone())
                    }
                    ResponseItem::Message { .. }
                    | ResponseItem::FunctionCall { .. }
                    | ResponseItem::FunctionCallOutput { .. } => None,
                });
                out.push(ThreadItem::CommandExecution {
                    id,
                    command,
                    cwd: cwd.to_string(),
                    status: "completed".to_string(),
                    command_actions: Vec::new(),
                    exit_code: None,
                    aggregated_output: output,
                    duration_ms: None,
                });
            }
            ResponseItem::FunctionCallOutput { .. } => {}
        }
    }
    out
}
