//! What a session tells its clients.

use serde::{Deserialize, Serialize};

use crate::{TurnItem, UserInput};

/// One event from a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The turn this event belongs to; `None` only for session-level events.
    pub turn_id: Option<std::sync::Arc<str>>,
    /// What happened.
    pub msg: EventMsg,
}

impl Event {
    /// Whether this event ends its turn (`TurnCompleted`, `TurnAborted`, `TurnFailed`).
    pub fn is_terminal(&self) -> bool {
        self.msg.is_terminal()
    }
}

/// How a person answered an MCP server's elicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElicitationAction {
    /// They gave what was asked (the answer's content).
    Accept,
    /// They said no.
    Decline,
    /// They dismissed it without choosing.
    Cancel,
}

/// Where an MCP server's start is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum McpServerState {
    /// Starting: its tools join when it is ready.
    Starting,
    /// Its tools are offered.
    Ready,
    /// It could not start (or list its tools); the session goes on without it.
    Failed,
}

/// An MCP server's start as one line: "MCP server docs: ready (3 tools)".
pub fn mcp_server_line(server: &str, status: McpServerState, error: Option<&str>) -> String {
    match (status, error) {
        (McpServerState::Failed, Some(error)) => format!("MCP server {server} failed: {error}"),
        (status, _) => format!("MCP server {server}: {}", status.as_str()),
    }
}

impl McpServerState {
    /// Its name in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            McpServerState::Starting => "starting",
            McpServerState::Ready => "ready",
            McpServerState::Failed => "failed",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventMsg {
    /// The session is ready.
    SessionConfigured {
        /// The session's id.
        session_id: String,
        /// The model it talks to.
        model: String,
        /// The provider's name.
        provider: String,
        /// The folder tools run in.
        cwd: String,
        /// The rollout file, when the session is saved.
        rollout_path: Option<String>,
        /// On resume: a turn that tiller was killed during, now closed as interrupted.
        interrupted_turn_id: Option<String>,
    },
    /// A turn started. Its input follows as user message items.
    TurnStarted {
        /// The client's id for the request that started it, if it gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_message_id: Option<String>,
    },
    /// An item of the turn started (see [`TurnItem`]).
    ItemStarted {
        /// The item as it starts.
        item: TurnItem,
    },
    /// An item of the turn is complete. Every started item completes, also
    /// when the turn is aborted.
    ItemCompleted {
        /// The item as it ended.
        item: TurnItem,
    },
    /// A piece of the assistant's answer.
    AgentMessageDelta {
        /// The agent message item it belongs to.
        item_id: std::sync::Arc<str>,
        /// The new text.
        delta: String,
    },
    /// A piece of the model's reasoning summary.
    ReasoningDelta {
        /// The reasoning item it belongs to.
        item_id: std::sync::Arc<str>,
        /// The new text.
        delta: String,
    },
    /// Output from a running command.
    ExecCommandOutputDelta {
        /// The command execution item it belongs to.
        item_id: String,
        /// The tool call.
        call_id: String,
        /// Which stream it came from.
        stream: ExecOutputStream,
        /// The bytes, lossily decoded.
        chunk: String,
    },
    /// Progress of a running MCP tool call, as its server reports it.
    McpToolCallProgress {
        /// The MCP tool call item.
        item_id: String,
        /// The tool call.
        call_id: String,
        /// What the server said (its message, or "N of M").
        message: String,
    },
    /// An MCP server started, became ready, or failed (session-level).
    McpServerStatus {
        /// The server's name.
        server: String,
        /// Where its start is.
        status: McpServerState,
        /// Why it failed, when it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The tools it offers the model (qualified names), once ready.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tools: Vec<String>,
    },
    /// An MCP server asks the person for input (an elicitation); answer with
    /// `SessionHandle::resolve_elicitation`. Unanswered, it is cancelled when
    /// the call that caused it ends.
    ElicitationRequest {
        /// The server's name.
        server: String,
        /// The request's id, unique in the session.
        request_id: String,
        /// What the server asks.
        message: String,
        /// The JSON schema of the answer it wants (an object of primitive fields).
        requested_schema: serde_json::Value,
    },
    /// The engine waits for a person to allow a command.
    ExecApprovalRequest {
        /// The tool call; answer with `Op::Approval` for it.
        call_id: String,
        /// The command execution item the command will be.
        item_id: String,
        /// The argv.
        command: Vec<String>,
        /// The folder it would run in.
        cwd: String,
        /// Why the person is asked, when there is more to say than that the
        /// policy asks: the sandbox denied the command and it would run
        /// again outside it, or the model's reason for running it there.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The engine waits for a person to allow an edit (a patch).
    PatchApprovalRequest {
        /// The tool call; answer with `Op::Approval` for it.
        call_id: String,
        /// The file change item the edit is (already started).
        item_id: String,
        /// The files it would change, as the item shows them.
        paths: Vec<String>,
        /// Why the person is asked.
        reason: String,
        /// The folder outside the workspace the edit writes to, if it does.
        outside: Option<String>,
    },
    /// A model request failed and will be tried again.
    StreamRetry {
        /// Which retry this is (1-based).
        attempt: u32,
        /// The retry budget.
        max: u32,
        /// How long the engine waits first.
        delay_ms: u64,
        /// What went wrong.
        reason: String,
    },
    /// Something the user may want to know that changes nothing.
    BackgroundEvent {
        /// The message.
        message: String,
    },
    /// Steer input reached the model in the running turn. Its user message
    /// item was shown when the steer was accepted.
    SteerDelivered {
        /// The user message item that shows it.
        item_id: String,
        /// The input.
        items: Vec<UserInput>,
    },
    /// The model set out or updated its plan for the turn (the `update_plan`
    /// tool): the whole plan, replacing any earlier one. Named `plan_update`
    /// in JSON, as Codex's event is.
    #[serde(rename = "plan_update")]
    PlanUpdated {
        /// Why the plan is what it is, when the model says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        explanation: Option<String>,
        /// The steps, in order.
        plan: Vec<crate::PlanStep>,
    },
    /// The turn's whole diff changed (a patch was applied): every file its
    /// patches changed, from before the turn to now, as one unified diff.
    TurnDiff {
        /// The diff.
        diff: String,
    },
    /// The turn ended normally.
    TurnCompleted {
        /// The last assistant message, if any.
        last_agent_message: Option<String>,
        /// Token usage summed over the turn's requests.
        usage: TokenUsage,
    },
    /// The turn was ended early.
    TurnAborted {
        /// Why.
        reason: TurnAbortReason,
        /// Steer input that never reached the model.
        unsent_input: Vec<UserInput>,
    },
    /// The turn failed.
    TurnFailed {
        /// Why.
        error: ErrorInfo,
        /// Steer input that never reached the model.
        unsent_input: Vec<UserInput>,
    },
    /// The session has shut down; no more events follow.
    ShutdownComplete,
}

impl EventMsg {
    /// Whether this event ends its turn.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            EventMsg::TurnCompleted { .. }
                | EventMsg::TurnAborted { .. }
                | EventMsg::TurnFailed { .. }
        )
    }

    /// The item this event completes, if it completes one.
    pub fn completed_item(&self) -> Option<&TurnItem> {
        match self {
            EventMsg::ItemCompleted { item } => Some(item),
            _ => None,
        }
    }
}

/// Why a turn was aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnAbortReason {
    /// `Interrupt`, `Approval(Abort)` or shutdown.
    Interrupted,
    /// A new `StartTurn` replaced it.
    Replaced,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecEndStatus {
    /// Exited with status 0.
    Completed,
    /// Exited with another status, was killed by a signal, or could not start.
    Failed,
    /// Killed because it ran past its timeout.
    TimedOut,
    /// Killed because the turn was aborted.
    Aborted,
    /// Not run: the person said no.
    Denied,
}

/// Which stream output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecOutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Token counts reported by the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Input tokens.
    pub input_tokens: u64,
    /// Input tokens served from cache.
    pub cached_input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Output tokens spent reasoning.
    pub reasoning_output_tokens: u64,
}

impl TokenUsage {
    /// Add another request's usage to this one.
    pub fn add(&mut self, other: &TokenUsage) {
        self.input_tokens += other.input_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_output_tokens += other.reasoning_output_tokens;
    }
}

/// A failure a person can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The message, in the server's words where the server gave one.
    pub message: String,
    /// The HTTP status, when the failure was an HTTP answer.
    pub http_status: Option<u16>,
}
