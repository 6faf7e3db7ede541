//! The windows that open over the conversation: an approval, an MCP
//! server's question, the pager, the session picker, and a list to choose
//! from.

use ratatui::text::Line;
use serde_json::Value;
use tiller_client::protocol::RequestId;

use super::elicitation::Elicitation;
use crate::effect::SessionRow;

/// A window over the screen.
#[derive(Debug)]
pub enum Overlay {
    /// A command or an edit waiting for a yes.
    Approval(Approval),
    /// An MCP server's question, as a form.
    Elicitation(Elicitation),
    /// The whole transcript, or a diff.
    Pager(Pager),
    /// The saved sessions.
    Picker(Picker),
    /// A short list (`/model`, `/approvals`).
    Choice(Choice),
}

/// What an approval is about.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalKind {
    /// A command.
    Command {
        /// Exactly as it will run.
        command: String,
        /// Where.
        cwd: String,
    },
    /// An edit (its diff is in the file change item).
    Edit {
        /// The file change item.
        item_id: String,
        /// The folder outside the workspace it writes to.
        grant_root: Option<String>,
    },
}

/// A server request waiting for the person.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    /// The request.
    pub request_id: RequestId,
    /// The turn it belongs to.
    pub turn_id: String,
    /// What it is about.
    pub kind: ApprovalKind,
    /// Why the server asks.
    pub reason: Option<String>,
    /// After `n`: the note to the model being typed.
    pub note: Option<String>,
}

impl Approval {
    /// Read an approval request, if `method` is one.
    pub fn from_request(request_id: RequestId, method: &str, params: &Value) -> Option<Approval> {
        let text = |key: &str| params.get(key).and_then(Value::as_str).map(str::to_owned);
        let kind = match method {
            "item/commandExecution/requestApproval" => ApprovalKind::Command {
                command: text("command").unwrap_or_default(),
                cwd: text("cwd").unwrap_or_default(),
            },
            "item/fileChange/requestApproval" => ApprovalKind::Edit {
                item_id: text("itemId").unwrap_or_default(),
                grant_root: text("grantRoot"),
            },
            _ => return None,
        };
        Some(Approval {
            request_id,
            turn_id: text("turnId").unwrap_or_default(),
            kind,
            reason: text("reason"),
            note: None,
        })
    }
}

/// A server request waiting for the person: one shows at a time, the
/// others wait behind it in the order they came.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitingRequest {
    /// A command or an edit to approve.
    Approval(Approval),
    /// An MCP server's question.
    Elicitation(Elicitation),
}

impl WaitingRequest {
    /// The request's id.
    pub fn request_id(&self) -> &RequestId {
        match self {
            WaitingRequest::Approval(a) => &a.request_id,
            WaitingRequest::Elicitation(e) => &e.request_id,
        }
    }

    /// The turn it belongs to, if any: its end voids it.
    pub fn turn_id(&self) -> Option<&str> {
        match self {
            WaitingRequest::Approval(a) => Some(&a.turn_id),
            WaitingRequest::Elicitation(e) => e.turn_id.as_deref(),
        }
    }

    /// As the window that shows it.
    pub fn into_overlay(self) -> Overlay {
        match self {
            WaitingRequest::Approval(a) => Overlay::Approval(a),
            WaitingRequest::Elicitation(e) => Overlay::Elicitation(e),
        }
    }
}

impl Overlay {
    /// The server request it shows, if it shows one.
    pub fn request(&self) -> Option<(&RequestId, Option<&str>)> {
        match self {
            Overlay::Approval(a) => Some((&a.request_id, Some(&a.turn_id))),
            Overlay::Elicitation(e) => Some((&e.request_id, e.turn_id.as_deref())),
            Overlay::Pager(_) | Overlay::Picker(_) | Overlay::Choice(_) => None,
        }
    }
}

/// Lines to scroll through.
#[derive(Debug)]
pub struct Pager {
    /// The title.
    pub title: String,
    /// The lines, unwrapped.
    pub lines: Vec<Line<'static>>,
    /// The first line shown (of the wrapped lines).
    pub top: usize,
    /// Start at the end on the first frame.
    pub at_end: bool,
    /// The lines wrapped at the last width drawn (a frame wraps them once).
    pub wrapped: Option<(u16, Vec<Line<'static>>)>,
}

impl Pager {
    /// A pager over `lines`, at the start or (`at_end`) at the end.
    pub fn new(title: impl Into<String>, lines: Vec<Line<'static>>, at_end: bool) -> Pager {
        Pager {
            title: title.into(),
            lines,
            top: 0,
            at_end,
            wrapped: None,
        }
    }
}

/// The session picker.
#[derive(Debug, Default)]
pub struct Picker {
    /// The sessions, newest first; `None` while they load.
    pub rows: Option<Vec<SessionRow>>,
    /// The highlighted row.
    pub selected: usize,
    /// Typed to narrow the list (prompt or folder).
    pub filter: String,
}

impl Picker {
    /// The rows the filter lets through.
    pub fn shown(&self) -> Vec<&SessionRow> {
        let filter = self.filter.to_lowercase();
        self.rows
            .iter()
            .flatten()
            .filter(|row| {
                filter.is_empty()
                    || row.preview.to_lowercase().contains(&filter)
                    || row.cwd.to_lowercase().contains(&filter)
            })
            .collect()
    }
}

/// What a choice list sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceKind {
    /// The model.
    Model,
    /// The approval policy.
    Approvals,
}

/// A short list to pick one from.
#[derive(Debug)]
pub struct Choice {
    /// What it sets.
    pub kind: ChoiceKind,
    /// `(value, description)`; empty while loading.
    pub options: Vec<(String, String)>,
    /// The highlighted one.
    pub selected: usize,
}
