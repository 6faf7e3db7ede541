//! Codex's `exec --json` event stream, one JSON object per line on stdout, so
//! programs written against `codex exec` (and the Codex TypeScript SDK) can drive
//! tiller unchanged. The format is documented in `docs/exec-json.md`.

use std::collections::HashMap;
use std::io::Write;

use serde_json::{Value, json};
use tiller_protocol::{Event, EventMsg, ExecEndStatus, TurnAbortReason};

use crate::run::Printer;
use tiller_core::tools::shell::display_command;

pub(crate) struct JsonPrinter {
    next_item: u64,
    /// Item ids of commands in flight, by call id.
    commands: HashMap<String, String>,
}

impl JsonPrinter {
    pub(crate) fn new() -> Self {
        JsonPrinter {
            next_item: 0,
            commands: HashMap::new(),
        }
    }

    fn item_id(&mut self) -> String {
        let id = format!("item_{}", self.next_item);
        self.next_item += 1;
        id
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
            EventMsg::TurnStarted => self.line(json!({"type": "turn.started"}))?,
            EventMsg::ExecCommandBegin {
                call_id, command, ..
            } => {
                let id = self.item_id();
                self.commands.insert(call_id.clone(), id.clone());
                self.line(json!({"type": "item.started", "item": {
                    "id": id,
                    "type": "command_execution",
                    "command": display_command(command),
                    "aggregated_output": "",
                    "exit_code": null,
                    "status": "in_progress",
                }}))?;
            }
            EventMsg::ExecCommandEnd {
                call_id,
                command,
                exit_code,
                aggregated_output,
                status,
                ..
            } => {
                let id = match self.commands.remove(call_id) {
                    Some(id) => id,
                    None => self.item_id(),
                };
                let status = match status {
                    ExecEndStatus::Completed => "completed",
                    ExecEndStatus::Denied => "declined",
                    ExecEndStatus::Failed | ExecEndStatus::TimedOut | ExecEndStatus::Aborted => {
                        "failed"
                    }
                };
                self.line(json!({"type": "item.completed", "item": {
                    "id": id,
                    "type": "command_execution",
                    "command": display_command(command),
                    "aggregated_output": aggregated_output,
                    "exit_code": exit_code,
                    "status": status,
                }}))?;
            }
            EventMsg::AgentMessage { text } => {
                let id = self.item_id();
                self.line(json!({"type": "item.completed", "item": {"id": id, "type": "agent_message", "text": text}}))?;
            }
            EventMsg::Reasoning { text } => {
                let id = self.item_id();
                self.line(json!({"type": "item.completed", "item": {"id": id, "type": "reasoning", "text": text}}))?;
            }
            EventMsg::StreamRetry {
                attempt,
                max,
                delay_ms,
                reason,
            } => {
                let id = self.item_id();
                let message = format!("Reconnecting... {attempt}/{max} in {delay_ms} ms: {reason}");
                self.line(json!({"type": "item.completed", "item": {"id": id, "type": "error", "message": message}}))?;
            }
            EventMsg::TurnCompleted { usage, .. } => {
                self.line(json!({"type": "turn.completed", "usage": {
                    "input_tokens": usage.input_tokens,
                    "cached_input_tokens": usage.cached_input_tokens,
                    "cache_write_input_tokens": 0,
                    "output_tokens": usage.output_tokens,
                    "reasoning_output_tokens": usage.reasoning_output_tokens,
                }}))?;
            }
            EventMsg::TurnFailed { error, .. } => {
                let _ = writeln!(std::io::stderr().lock(), "error: {}", error.message);
                self.line(json!({"type": "turn.failed", "error": {"message": error.message}}))?;
            }
            EventMsg::TurnAborted { reason, .. } => {
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
            | EventMsg::BackgroundEvent { .. }
            | EventMsg::SteerDelivered { .. }
            | EventMsg::ShutdownComplete => {}
        }
        Ok(())
    }
}
