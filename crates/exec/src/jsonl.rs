//! Codex's `exec --json` event stream, one JSON object per line on stdout, so
//! programs written against `codex exec` (and the Codex TypeScript SDK) can drive
//! tiller unchanged. The format is documented in `docs/exec-json.md`.

use std::io::Write;

use serde_json::{Value, json};
use tiller_protocol::{
    CompactionStatus, Event, EventMsg, ExecEndStatus, FileChangeKind, McpToolCallStatus,
    PatchStatus, PlanStep, StepStatus, TurnAbortReason, TurnItem, TurnItemKind, display_command,
};

use crate::printer::Printer;

/// Engine items out as Codex's `exec --json` events, one line each. Kept
/// between events: a counter for the ids of what is no engine item (retry
/// notices, the plan), and the turn's plan as Codex's `todo_list` item,
/// started at the first `update_plan`, updated at each next one and
/// completed when the turn ends.
pub(crate) struct JsonPrinter {
    made: u64,
    plan: Option<Value>,
}

impl JsonPrinter {
    pub(crate) fn new() -> Self {
        JsonPrinter {
            made: 0,
            plan: None,
        }
    }

    fn item_id(&mut self, kind: &str) -> String {
        self.made += 1;
        format!("{kind}_{}", self.made)
    }

    fn plan_updated(&mut self, plan: &[PlanStep]) -> std::io::Result<()> {
        let items: Vec<Value> = plan
            .iter()
            .map(|s| json!({"text": s.step, "completed": s.status == StepStatus::Completed}))
            .collect();
        let (kind, id) = match &self.plan {
            Some(open) => ("item.updated", open["id"].clone()),
            None => ("item.started", Value::from(self.item_id("plan"))),
        };
        let item = json!({"id": id, "type": "todo_list", "items": items});
        self.plan = Some(item.clone());
        self.line(json!({"type": kind, "item": item}))
    }

    /// The turn ends: its plan, if it had one, is complete as it stands.
    fn plan_ends(&mut self) -> std::io::Result<()> {
        match self.plan.take() {
            Some(item) => self.line(json!({"type": "item.completed", "item": item})),
            None => Ok(()),
        }
    }

    fn line(&self, value: Value) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{value}")?;
        out.flush()
    }
}

impl Printer for JsonPrinter {
    fn session_started(&mut self, session_id: &str) -> std::io::Result<()> {
        self.line(json!({"type": "thread.started", "thread_id": session_id}))
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    fn ask(&mut self, question: &str) {
        let _ = write!(std::io::stderr().lock(), "{question}");
    }

    fn finished(&mut self, _session_id: &str) {}

    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        match &event.msg {
            EventMsg::TurnStarted { .. } => self.line(json!({"type": "turn.started"}))?,
            EventMsg::ItemStarted { item } => {
                if let TurnItemKind::CommandExecution { .. } | TurnItemKind::McpToolCall { .. } =
                    &item.kind
                {
                    self.line(json!({"type": "item.started", "item": codex_item(item)}))?;
                }
            }
            EventMsg::ItemCompleted { item } => {
                let shown = match &item.kind {
                    TurnItemKind::CommandExecution { .. }
                    | TurnItemKind::FileChange { .. }
                    | TurnItemKind::ContextCompaction { .. }
                    | TurnItemKind::McpToolCall { .. } => true,
                    // An empty text is one a broken stream withdrew.
                    TurnItemKind::AgentMessage { text } | TurnItemKind::Reasoning { text } => {
                        !text.is_empty()
                    }
                    TurnItemKind::UserMessage { .. } => false,
                };
                if shown {
                    self.line(json!({"type": "item.completed", "item": codex_item(item)}))?;
                }
            }
            EventMsg::StreamRetry {
                attempt,
                max,
                delay_ms,
                reason,
            } => {
                let id = self.item_id("retry");
                let message = format!("Reconnecting... {attempt}/{max} in {delay_ms} ms: {reason}");
                self.line(json!({"type": "item.completed", "item": {"id": id, "type": "error", "message": message}}))?;
            }
            EventMsg::PlanUpdated { plan, .. } => self.plan_updated(plan)?,
            EventMsg::TurnCompleted { usage, .. } => {
                self.plan_ends()?;
                self.line(json!({"type": "turn.completed", "usage": {
                    "input_tokens": usage.input_tokens,
                    "cached_input_tokens": usage.cached_input_tokens,
                    "cache_write_input_tokens": 0,
                    "output_tokens": usage.output_tokens,
                    "reasoning_output_tokens": usage.reasoning_output_tokens,
                }}))?;
            }
            EventMsg::TurnFailed { error, .. } => {
                self.plan_ends()?;
                let _ = writeln!(std::io::stderr().lock(), "error: {}", error.message);
                self.line(json!({"type": "turn.failed", "error": {"message": error.message}}))?;
            }
            EventMsg::TurnAborted { reason, .. } => {
                self.plan_ends()?;
                let reason = match reason {
                    TurnAbortReason::Interrupted => "interrupted",
                    TurnAbortReason::Replaced => "replaced",
                };
                self.line(json!({"type": "turn.aborted", "reason": reason}))?;
            }
            EventMsg::SessionConfigured { .. }
            | EventMsg::AgentMessageDelta { .. }
            | EventMsg::ReasoningDelta { .. }
            | EventMsg::ExecCommandOutputDelta { .. }
            | EventMsg::ExecApprovalRequest { .. }
            | EventMsg::PatchApprovalRequest { .. }
            | EventMsg::BackgroundEvent { .. }
            | EventMsg::TurnDiff { .. }
            | EventMsg::SteerDelivered { .. }
            | EventMsg::McpToolCallProgress { .. }
            | EventMsg::McpServerStatus { .. }
            | EventMsg::ElicitationRequest { .. }
            | EventMsg::ShutdownComplete => {}
        }
        Ok(())
    }
}

/// An engine item as Codex's `exec --json` shows it.
pub(crate) fn codex_item(item: &TurnItem) -> Value {
    match &item.kind {
        TurnItemKind::CommandExecution {
            command,
            status,
            exit_code,
            aggregated_output,
            ..
        } => {
            let status = match status {
                None => "in_progress",
                Some(ExecEndStatus::Completed) => "completed",
                Some(ExecEndStatus::Denied) => "declined",
                Some(ExecEndStatus::Failed | ExecEndStatus::TimedOut | ExecEndStatus::Aborted) => {
                    "failed"
                }
            };
            json!({
                "id": item.id,
                "type": "command_execution",
                "command": display_command(command),
                "aggregated_output": aggregated_output.as_deref().unwrap_or(""),
                "exit_code": exit_code,
                "status": status,
            })
        }
        TurnItemKind::AgentMessage { text } => {
            json!({"id": item.id, "type": "agent_message", "text": text})
        }
        TurnItemKind::Reasoning { text } => {
            json!({"id": item.id, "type": "reasoning", "text": text})
        }
        TurnItemKind::UserMessage { content, .. } => {
            let text: Vec<String> = content
                .iter()
                .map(|c| c.model_text().into_owned())
                .collect();
            json!({"id": item.id, "type": "user_message", "text": text.join("\n")})
        }
        TurnItemKind::FileChange {
            changes, status, ..
        } => {
            let changes: Vec<Value> = changes
                .iter()
                .map(|c| {
                    let kind = match c.kind {
                        FileChangeKind::Add => "add",
                        FileChangeKind::Delete => "delete",
                        FileChangeKind::Update { .. } => "update",
                    };
                    json!({"path": c.path, "kind": kind})
                })
                .collect();
            let status = match status {
                None => "in_progress",
                Some(PatchStatus::Completed) => "completed",
                Some(PatchStatus::Failed | PatchStatus::Declined) => "failed",
            };
            json!({"id": item.id, "type": "file_change", "changes": changes, "status": status})
        }
        // Codex's exec has no such item; tiller names it as its app-server does.
        TurnItemKind::ContextCompaction {
            trigger,
            status,
            tokens,
        } => json!({
            "id": item.id,
            "type": "context_compaction",
            "trigger": trigger.as_str(),
            "status": match status {
                None => "in_progress",
                Some(CompactionStatus::Completed) => "completed",
                Some(CompactionStatus::Failed) => "failed",
            },
            "tokens_before": tokens.map(|t| t.before),
            "tokens_after": tokens.map(|t| t.after),
        }),
        TurnItemKind::McpToolCall {
            server,
            tool,
            arguments,
            status,
            result,
            error,
            ..
        } => json!({
            "id": item.id,
            "type": "mcp_tool_call",
            "server": server,
            "tool": tool,
            "arguments": arguments,
            "result": result.as_ref().map(|r| json!({
                "content": r.content,
                "structured_content": r.structured_content,
            })),
            "error": error.as_ref().map(|message| json!({"message": message})),
            "status": match status {
                None => "in_progress",
                Some(McpToolCallStatus::Completed) => "completed",
                Some(McpToolCallStatus::Failed | McpToolCallStatus::Aborted) => "failed",
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiller_protocol::UserInput;

    #[test]
    fn engine_items_map_to_codex_exec_items() {
        let command = TurnItem::new(
            "t-item-2",
            TurnItemKind::CommandExecution {
                call_id: "c1".into(),
                command: vec!["bash".into(), "-lc".into(), "echo hi".into()],
                cwd: "/w".into(),
                status: Some(ExecEndStatus::Denied),
                exit_code: None,
                duration_ms: Some(0),
                aggregated_output: Some(String::new()),
            },
        );
        assert_eq!(
            codex_item(&command),
            json!({"id": "t-item-2", "type": "command_execution", "command": "bash -lc 'echo hi'",
                   "aggregated_output": "", "exit_code": null, "status": "declined"})
        );
        let running = TurnItem::new(
            "t-item-3",
            TurnItemKind::CommandExecution {
                call_id: "c2".into(),
                command: vec!["ls".into()],
                cwd: "/w".into(),
                status: None,
                exit_code: None,
                duration_ms: None,
                aggregated_output: None,
            },
        );
        assert_eq!(codex_item(&running)["status"], "in_progress");
        let answer = TurnItem::new(
            "t-item-4",
            TurnItemKind::AgentMessage {
                text: "done".into(),
            },
        );
        assert_eq!(
            codex_item(&answer),
            json!({"id": "t-item-4", "type": "agent_message", "text": "done"})
        );
        let user = TurnItem::new(
            "t-item-1",
            TurnItemKind::UserMessage {
                content: vec![UserInput::text("hi")],
                client_message_id: None,
            },
        );
        assert_eq!(codex_item(&user)["type"], "user_message");
    }
}
