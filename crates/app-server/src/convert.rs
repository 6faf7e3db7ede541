//! Between wire types and engine types.

use std::time::{SystemTime, UNIX_EPOCH};

use tiller_app_server_protocol::{ErrorCode, JsonRpcError, ThreadItem, UserInput as WireInput};
use tiller_protocol::{
    CompactionStatus, ExecEndStatus, FileChangeKind, McpToolCallStatus, PatchStatus, TurnItem,
    TurnItemKind, UserInput, display_command,
};

/// Wire input to engine input, as the person gave it (the engine decides what
/// the model reads of it: text and mentions; images are not sent yet).
pub(crate) fn engine_input(input: &[WireInput]) -> Vec<UserInput> {
    input
        .iter()
        .map(|item| match item {
            WireInput::Text { text } => UserInput::text(text.clone()),
            WireInput::Mention { name, path } => UserInput::Mention {
                name: name.clone(),
                path: path.clone(),
            },
            WireInput::Image { url } => UserInput::Image {
                url: url.clone().unwrap_or_default(),
            },
            WireInput::LocalImage { path } => UserInput::LocalImage { path: path.clone() },
        })
        .collect()
}

/// Engine input back to wire input.
pub(crate) fn wire_input(input: &[UserInput]) -> Vec<WireInput> {
    input
        .iter()
        .map(|item| match item {
            UserInput::Text { text } => WireInput::Text { text: text.clone() },
            UserInput::Mention { name, path } => WireInput::Mention {
                name: name.clone(),
                path: path.clone(),
            },
            UserInput::Image { url } => WireInput::Image {
                url: Some(url.clone()),
            },
            UserInput::LocalImage { path } => WireInput::LocalImage { path: path.clone() },
        })
        .collect()
}

/// An engine item as a thread item: the one mapping, for live notifications
/// and for the turns `thread/resume` returns alike.
pub(crate) fn thread_item(item: &TurnItem) -> ThreadItem {
    let id = item.id.clone();
    match &item.kind {
        TurnItemKind::UserMessage {
            content,
            client_message_id,
        } => ThreadItem::UserMessage {
            id,
            content: wire_input(content),
            client_id: client_message_id.clone(),
        },
        TurnItemKind::AgentMessage { text } => ThreadItem::AgentMessage {
            id,
            text: text.clone(),
        },
        TurnItemKind::Reasoning { text } => ThreadItem::Reasoning {
            id,
            summary: if text.is_empty() {
                Vec::new()
            } else {
                vec![text.clone()]
            },
            content: Vec::new(),
        },
        TurnItemKind::CommandExecution {
            command,
            cwd,
            status,
            exit_code,
            duration_ms,
            aggregated_output,
            ..
        } => ThreadItem::CommandExecution {
            id,
            command: display_command(command),
            cwd: cwd.clone(),
            status: match status {
                None => "inProgress",
                Some(ExecEndStatus::Completed) => "completed",
                Some(ExecEndStatus::Denied) => "declined",
                Some(ExecEndStatus::Failed | ExecEndStatus::TimedOut | ExecEndStatus::Aborted) => {
                    "failed"
                }
            }
            .to_string(),
            command_actions: Vec::new(),
            exit_code: *exit_code,
            aggregated_output: aggregated_output.clone(),
            duration_ms: duration_ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)),
        },
        TurnItemKind::FileChange {
            changes, status, ..
        } => ThreadItem::FileChange {
            id,
            changes: changes
                .iter()
                .map(|c| {
                    let kind = match &c.kind {
                        FileChangeKind::Add => serde_json::json!({"type": "add"}),
                        FileChangeKind::Delete => serde_json::json!({"type": "delete"}),
                        FileChangeKind::Update { move_path } => {
                            serde_json::json!({"type": "update", "move_path": move_path})
                        }
                    };
                    serde_json::json!({"path": c.path, "kind": kind, "diff": c.diff})
                })
                .collect(),
            status: match status {
                None => "inProgress",
                Some(PatchStatus::Completed) => "completed",
                Some(PatchStatus::Failed) => "failed",
                Some(PatchStatus::Declined) => "declined",
            }
            .to_string(),
        },
        TurnItemKind::ContextCompaction { status, .. } => ThreadItem::ContextCompaction {
            id,
            status: Some(
                match status {
                    None => "inProgress",
                    Some(CompactionStatus::Completed) => "completed",
                    Some(CompactionStatus::Failed) => "failed",
                }
                .to_string(),
            ),
        },
        TurnItemKind::McpToolCall {
            server,
            tool,
            arguments,
            status,
            result,
            error,
            duration_ms,
            ..
        } => ThreadItem::McpToolCall {
            id,
            server: server.clone(),
            environment_id: None,
            tool: tool.clone(),
            // As Codex: a result the tool itself calls an error is a failed call.
            status: match status {
                None => "inProgress",
                Some(McpToolCallStatus::Completed)
                    if result.as_ref().is_some_and(|r| r.is_error) =>
                {
                    "failed"
                }
                Some(McpToolCallStatus::Completed) => "completed",
                Some(McpToolCallStatus::Failed | McpToolCallStatus::Aborted) => "failed",
            }
            .to_string(),
            arguments: arguments.0.clone(),
            app_context: None,
            mcp_app_ui: None,
            plugin_id: None,
            read_only_hint: None,
            result: result.as_ref().map(|r| {
                serde_json::json!({
                    "content": r.content,
                    "structuredContent": r.structured_content,
                    "_meta": null,
                })
            }),
            error: match (status, error) {
                (_, Some(message)) => Some(serde_json::json!({ "message": message })),
                // A failed item says why, and this one has no answer to show.
                (Some(McpToolCallStatus::Aborted), None) => {
                    Some(serde_json::json!({ "message": MCP_CALL_ABORTED }))
                }
                (_, None) => None,
            },
            duration_ms: duration_ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)),
        },
    }
}

/// Why an MCP tool call that its turn's end cut off failed.
const MCP_CALL_ABORTED: &str =
    "its turn ended while the call ran; the server was told to cancel it";

/// A result as JSON; a type that does not serialize is the server's failure.
pub(crate) fn to_value<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, JsonRpcError> {
    serde_json::to_value(value)
        .map_err(|e| JsonRpcError::new(ErrorCode::InternalError, e.to_string()))
}

/// Blocking work (files) off the event loop; a task that panicked is the
/// server's failure.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, JsonRpcError> + Send + 'static,
) -> Result<T, JsonRpcError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(JsonRpcError::new(ErrorCode::InternalError, e.to_string())))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_item_kind_maps_to_its_thread_item() {
        let user = TurnItem::new(
            "t-item-1",
            TurnItemKind::UserMessage {
                content: vec![
                    UserInput::text("look"),
                    UserInput::Mention {
                        name: "lib".into(),
                        path: "src/lib.rs".into(),
                    },
                ],
                client_message_id: Some("c-1".into()),
            },
        );
        assert_eq!(
            serde_json::to_value(thread_item(&user)).unwrap(),
            serde_json::json!({"type": "userMessage", "id": "t-item-1", "clientId": "c-1",
                "content": [{"type": "text", "text": "look"},
                            {"type": "mention", "name": "lib", "path": "src/lib.rs"}]})
        );
        let command = TurnItem::new(
            "t-item-2",
            TurnItemKind::CommandExecution {
                call_id: "c".into(),
                command: vec!["bash".into(), "-lc".into(), "echo hi".into()],
                cwd: "/w".into(),
                status: Some(ExecEndStatus::Aborted),
                exit_code: None,
                duration_ms: Some(12),
                aggregated_output: Some("hi\n".into()),
            },
        );
        assert_eq!(
            serde_json::to_value(thread_item(&command)).unwrap(),
            serde_json::json!({"type": "commandExecution", "id": "t-item-2",
                "command": "bash -lc 'echo hi'", "cwd": "/w", "status": "failed",
                "commandActions": [], "exitCode": null, "aggregatedOutput": "hi\n",
                "durationMs": 12})
        );
        let reasoning = TurnItem::new("t-item-3", TurnItemKind::Reasoning { text: "so".into() });
        assert_eq!(
            serde_json::to_value(thread_item(&reasoning)).unwrap(),
            serde_json::json!({"type": "reasoning", "id": "t-item-3", "summary": ["so"], "content": []})
        );
        // A compaction says how it ended (tiller's `status`): a stopped one
        // left the history as it was.
        for (status, shown) in [
            (None, "inProgress"),
            (Some(CompactionStatus::Completed), "completed"),
            (Some(CompactionStatus::Failed), "failed"),
        ] {
            let compaction = TurnItem::new(
                "t-item-4",
                TurnItemKind::ContextCompaction {
                    trigger: tiller_protocol::CompactionTrigger::Auto,
                    status,
                    tokens: None,
                },
            );
            assert_eq!(
                serde_json::to_value(thread_item(&compaction)).unwrap(),
                serde_json::json!({"type": "contextCompaction", "id": "t-item-4", "status": shown})
            );
        }
        // Wire input survives the round trip through the engine.
        let wire = vec![
            WireInput::Text { text: "a".into() },
            WireInput::Image {
                url: Some("http://x/i.png".into()),
            },
            WireInput::LocalImage {
                path: "/i.png".into(),
            },
        ];
        assert_eq!(wire_input(&engine_input(&wire)), wire);
    }

    #[test]
    fn an_mcp_call_fails_when_its_tool_says_so_and_a_cut_off_one_says_why() {
        let call = |status, result, error: Option<&str>| {
            let item = TurnItem::new(
                "t-item-5",
                TurnItemKind::McpToolCall {
                    call_id: "c".into(),
                    server: "docs".into(),
                    tool: "find".into(),
                    arguments: tiller_protocol::Json(serde_json::json!({"q": "x"})),
                    status,
                    result,
                    error: error.map(str::to_owned),
                    duration_ms: Some(7),
                },
            );
            serde_json::to_value(thread_item(&item)).unwrap()
        };
        let answer = |is_error| tiller_protocol::McpToolCallResult {
            content: vec![tiller_protocol::Json(
                serde_json::json!({"type": "text", "text": "5"}),
            )],
            structured_content: Some(tiller_protocol::Json(serde_json::json!({"result": 5}))),
            is_error,
        };
        let done = call(
            Some(McpToolCallStatus::Completed),
            Some(answer(false)),
            None,
        );
        assert_eq!(
            done,
            serde_json::json!({"type": "mcpToolCall", "id": "t-item-5", "server": "docs",
                "environmentId": null, "tool": "find", "status": "completed",
                "arguments": {"q": "x"}, "appContext": null, "mcpAppUi": null,
                "pluginId": null, "readOnlyHint": null,
                "result": {"content": [{"type": "text", "text": "5"}],
                           "structuredContent": {"result": 5}, "_meta": null},
                "error": null, "durationMs": 7})
        );
        let refused = call(Some(McpToolCallStatus::Completed), Some(answer(true)), None);
        assert_eq!(refused["status"], "failed");
        assert_eq!(
            refused["result"]["structuredContent"],
            serde_json::json!({"result": 5})
        );
        let running = call(None, None, None);
        assert_eq!(running["status"], "inProgress");
        assert_eq!(running["error"], serde_json::Value::Null);
        let cut_off = call(Some(McpToolCallStatus::Aborted), None, None);
        assert_eq!(cut_off["status"], "failed");
        assert_eq!(cut_off["error"]["message"], MCP_CALL_ABORTED);
        let failed = call(Some(McpToolCallStatus::Failed), None, Some("it crashed"));
        assert_eq!(
            failed["error"],
            serde_json::json!({"message": "it crashed"})
        );
    }
}
