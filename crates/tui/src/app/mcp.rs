//! A thread's MCP servers as the UI shows them: each one's start as one line
//! per change of state (`mcpServer/startupStatus/updated`), the running
//! call's progress in the status line, the servers' questions as a form
//! over the screen, and `/mcp`.

use std::collections::VecDeque;

use crossterm::event::KeyEvent;
use serde_json::Value;
use tiller_client::protocol::{
    McpServerElicitationAction, McpServerStartupState, McpServerStatusUpdatedNotification,
    RequestId, ServerRequest,
};

use super::elicitation::{Elicitation, FormKey};
use super::{App, Overlay, WaitingRequest};
use crate::cell::{CellKind, Tone};
use crate::effect::Effect;

/// How many reports about other threads' servers are kept.
const ELSEWHERE_KEPT: usize = 64;

/// One of the thread's MCP servers, as last reported.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServer {
    /// Its name (`[mcp_servers.<name>]`).
    pub name: String,
    /// Where its start is.
    pub status: McpServerStartupState,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// The running MCP call's last progress message.
#[derive(Debug, Clone, PartialEq)]
pub struct McpProgress {
    /// The call's item.
    pub item_id: String,
    /// `server.tool`.
    pub call: String,
    /// The server's words.
    pub message: String,
}

impl App {
    /// A server's start changed. A report about another thread is kept for
    /// when that thread opens: the server reports right after answering
    /// `thread/start`, and the UI may read the report before the answer.
    pub(super) fn mcp_server_status(&mut self, update: McpServerStatusUpdatedNotification) {
        let ours = match (update.thread_id.as_deref(), self.thread_id()) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(theirs), Some(open)) => theirs == open,
        };
        if !ours {
            if self.mcp_elsewhere.len() >= ELSEWHERE_KEPT {
                self.mcp_elsewhere.pop_front();
            }
            self.mcp_elsewhere.push_back(update);
            return;
        }

        let server = McpServer {
            name: update.name,
            status: update.status,
            error: update.error,
        };
        match self.mcp_servers.iter_mut().find(|s| s.name == server.name) {
            Some(known) if *known == server => return,
            Some(known) => *known = server.clone(),
            None => self.mcp_servers.push(server.clone()),
        }
        let name = &server.name;
        match (server.status, &server.error) {
            // The status line says so while it lasts.
            (McpServerStartupState::Starting, _) => {}
            (McpServerStartupState::Ready, _) => {
                self.notice(format!("MCP server {name} ready"), Tone::Quiet);
            }
            (McpServerStartupState::Failed, Some(error)) => {
                self.notice(
                    format!("MCP server {name} could not start: {error}"),
                    Tone::Warning,
                );
            }
            (McpServerStartupState::Failed, None) => {
                self.notice(format!("MCP server {name} could not start"), Tone::Warning);
            }
            (McpServerStartupState::Cancelled, _) => {
                self.notice(
                    format!("MCP server {name}: its start was called off"),
                    Tone::Quiet,
                );
            }
        }
    }

    /// A thread opened (`previous` was open before): its servers are those
    /// reported for it from now on, and those it reported before its answer
    /// came.
    pub(super) fn mcp_thread_opened(&mut self, previous: Option<String>) {
        let Some(id) = self.thread_id().map(str::to_owned) else {
            return;
        };

        if previous.as_deref() != Some(id.as_str()) {
            self.mcp_servers.clear();
        }
        let (early, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.mcp_elsewhere)
            .into_iter()
            .partition(|u| u.thread_id.as_deref() == Some(id.as_str()));
        self.mcp_elsewhere = rest;
        for update in early {
            self.mcp_server_status(update);
        }
    }

    /// The names of the servers still starting.
    pub fn mcp_starting(&self) -> Vec<&str> {
        self.mcp_servers
            .iter()
            .filter(|s| s.status == McpServerStartupState::Starting)
            .map(|s| s.name.as_str())
            .collect()
    }

    /// A running call's progress, for the status line.
    pub(super) fn mcp_call_progress(&mut self, item_id: String, message: String) {
        let Some(CellKind::McpCall(call)) = self.transcript.item_mut(&item_id) else {
            return;
        };

        let call = call.name();
        self.mcp_progress = Some(McpProgress {
            item_id,
            call,
            message: crate::clean::clean(&message).replace('\n', " "),
        });
    }

    /// `mcpServer/elicitation/request`: the form, once it parses; `None` for
    /// a request of another method.
    pub(super) fn elicitation(
        &self,
        id: &RequestId,
        method: &str,
        params: &Value,
    ) -> Option<WaitingRequest> {
        match tiller_client::parse_server_request(method, params.clone())?.ok()? {
            ServerRequest::McpServerElicitation(params) => Some(WaitingRequest::Elicitation(
                Elicitation::new(id.clone(), params),
            )),
            // Read as approvals before this is asked.
            ServerRequest::CommandApproval(_) | ServerRequest::FileChangeApproval(_) => None,
        }
    }

    /// Show `request`, or queue it behind the one shown. A request goes
    /// before a pager or a list: it holds the turn up.
    pub(super) fn ask(&mut self, request: WaitingRequest) {
        if self.overlay.as_ref().and_then(Overlay::request).is_some() {
            self.requests.push_back(request);
        } else {
            self.overlay = Some(request.into_overlay());
        }
    }

    /// A key on an MCP server's question.
    pub(super) fn elicitation_key(&mut self, mut form: Elicitation, key: KeyEvent) {
        let (action, content) = match form.key(key) {
            FormKey::Stay => {
                self.overlay = Some(Overlay::Elicitation(form));
                return;
            }
            FormKey::Accept(content) => (McpServerElicitationAction::Accept, Some(content)),
            FormKey::Decline => (McpServerElicitationAction::Decline, None),
            FormKey::Cancel => (McpServerElicitationAction::Cancel, None),
        };
        self.effect(Effect::AnswerElicitation {
            request_id: form.request_id,
            action,
            content,
        });
        self.next_request();
    }

    /// `/mcp`: the thread's servers as last reported.
    pub(super) fn mcp_report(&self) -> String {
        if self.mcp_servers.is_empty() {
            return "no MCP servers configured ([mcp_servers.<name>] in config.toml)".to_owned();
        }
        let width = self
            .mcp_servers
            .iter()
            .map(|s| crate::wrap::text_width(&s.name))
            .max()
            .unwrap_or(0);
        let mut lines = vec!["MCP servers".to_owned()];
        for server in &self.mcp_servers {
            let status = match server.status {
                McpServerStartupState::Starting => "starting",
                McpServerStartupState::Ready => "ready",
                McpServerStartupState::Failed => "failed",
                McpServerStartupState::Cancelled => "cancelled",
            };
            let error = server
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            let pad = " ".repeat(width - crate::wrap::text_width(&server.name));
            lines.push(format!("  {}{pad}  {status}{error}", server.name));
        }
        lines.join("\n")
    }
}
