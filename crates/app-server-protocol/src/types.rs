//! Objects on the wire: threads, turns, items, input, notifications.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One piece of input, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum UserInput {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image by URL (accepted; not sent to the model yet).
    Image {
        /// The URL.
        #[serde(default)]
        url: Option<String>,
    },
    /// A local image (accepted; not sent to the model yet).
    LocalImage {
        /// The path.
        path: String,
    },
    /// A mention of a file or skill (sent as text).
    Mention {
        /// The name.
        name: String,
        /// The path.
        path: String,
    },
}

/// A thread: one engine session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thread {
    /// The session id.
    pub id: String,
    /// The name a client gave it (`thread/name/set`), if any.
    pub name: Option<String>,
    /// The same as `id` (tiller has no session trees).
    pub session_id: String,
    /// The first user message, or "".
    pub preview: String,
    /// tiller's version.
    pub cli_version: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// The folder.
    pub cwd: String,
    /// Always false: threads are saved.
    pub ephemeral: bool,
    /// The model.
    pub model: Option<String>,
    /// The provider.
    pub model_provider: String,
    /// Always null.
    pub project_id: Option<String>,
    /// Always `appServer`.
    pub source: String,
    /// Idle or active.
    pub status: ThreadStatus,
    /// Filled on `thread/resume`.
    pub turns: Vec<Turn>,
}

/// A thread's runtime status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ThreadStatus {
    /// Saved, not loaded in this process.
    NotLoaded,
    /// No turn running.
    Idle,
    /// No turn running, and the last one failed (the model or the disk).
    SystemError,
    /// A turn is running.
    Active {
        /// Always empty for now.
        #[serde(rename = "activeFlags")]
        active_flags: Vec<String>,
    },
}

/// A turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Turn {
    /// Its id.
    pub id: String,
    /// Its items (filled on `thread/resume`; empty in notifications).
    pub items: Vec<ThreadItem>,
    /// Its status.
    pub status: TurnStatus,
    /// Set on failed turns.
    pub error: Option<TurnError>,
    /// Unix seconds.
    pub started_at: Option<i64>,
    /// Unix seconds.
    pub completed_at: Option<i64>,
    /// Wall time.
    pub duration_ms: Option<i64>,
}

/// A turn's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TurnStatus {
    /// Running.
    InProgress,
    /// Ended normally.
    Completed,
    /// Interrupted (or replaced).
    Interrupted,
    /// Failed.
    Failed,
}

/// Why a turn failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnError {
    /// The message, in the server's words.
    pub message: String,
    /// More detail, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_details: Option<String>,
}

/// An item of a turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ThreadItem {
    /// What the user sent (turn input, or a steer).
    #[serde(rename_all = "camelCase")]
    UserMessage {
        /// Item id.
        id: String,
        /// The input.
        content: Vec<UserInput>,
        /// The request's `clientUserMessageId`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// What the model said.
    AgentMessage {
        /// Item id.
        id: String,
        /// The text.
        text: String,
    },
    /// The model's reasoning summary.
    Reasoning {
        /// Item id.
        id: String,
        /// Summary parts.
        summary: Vec<String>,
        /// Raw content parts (tiller sends none).
        content: Vec<String>,
    },
    /// A shell command.
    #[serde(rename_all = "camelCase")]
    CommandExecution {
        /// Item id.
        id: String,
        /// argv joined as a shell reads it.
        command: String,
        /// The folder.
        cwd: String,
        /// `inProgress`, `completed`, `failed`, `declined`.
        status: String,
        /// Always empty.
        command_actions: Vec<Value>,
        /// Its exit code.
        #[serde(default)]
        exit_code: Option<i32>,
        /// stdout and stderr.
        #[serde(default)]
        aggregated_output: Option<String>,
        /// Wall time.
        #[serde(default)]
        duration_ms: Option<i64>,
    },
    /// Files the model changed.
    FileChange {
        /// Item id.
        id: String,
        /// Each file: `{path, kind: {type: add|delete|update, move_path}, diff}`.
        changes: Vec<Value>,
        /// `inProgress`, `completed`, `failed`, `declined`.
        status: String,
    },
    /// The conversation was compacted (started: compacting; completed: done).
    ContextCompaction {
        /// Item id.
        id: String,
        /// tiller: `inProgress`, `completed` (the summary replaced the
        /// history), or `failed` (stopped or failed: the history is as it
        /// was). Codex sends none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
    },
    /// A call of an MCP server's tool.
    #[serde(rename_all = "camelCase")]
    McpToolCall {
        /// Item id.
        id: String,
        /// The server's name.
        server: String,
        /// Codex's registration scope; tiller has none (null).
        environment_id: Option<String>,
        /// The tool's name on the server.
        tool: String,
        /// `inProgress`, `completed` or `failed` (an aborted call is failed).
        status: String,
        /// The arguments the model gave.
        arguments: Value,
        /// Codex's app context; null.
        app_context: Option<Value>,
        /// Codex's app UI; null.
        mcp_app_ui: Option<Value>,
        /// Codex's plugin; null.
        plugin_id: Option<String>,
        /// Codex's read-only hint; null.
        read_only_hint: Option<bool>,
        /// What the server returned (`content`, `structuredContent`, `_meta`), once it did.
        result: Option<Value>,
        /// Why it failed (`{message}`), when it did.
        error: Option<Value>,
        /// Wall time, once it ended.
        duration_ms: Option<i64>,
    },
}

impl ThreadItem {
    /// The item's id.
    pub fn id(&self) -> &str {
        match self {
            ThreadItem::UserMessage { id, .. }
            | ThreadItem::AgentMessage { id, .. }
            | ThreadItem::Reasoning { id, .. }
            | ThreadItem::CommandExecution { id, .. }
            | ThreadItem::FileChange { id, .. }
            | ThreadItem::ContextCompaction { id, .. }
            | ThreadItem::McpToolCall { id, .. } => id,
        }
    }
}

/// tiller: a queued message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedSubmission {
    /// The entry's id.
    pub id: String,
    /// The input.
    pub input: Vec<UserInput>,
    /// The client's id for it (the entry's own id if the client gave none).
    pub client_user_message_id: String,
    /// What the client sent with it.
    pub responsesapi_client_metadata: Option<Metadata>,
}

/// `responsesapiClientMetadata`: string values by key.
pub type Metadata = std::collections::BTreeMap<String, String>;

/// `thread/started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadStartedNotification {
    /// The thread.
    pub thread: Thread,
}

/// `thread/status/changed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadStatusChangedNotification {
    /// The thread.
    pub thread_id: String,
    /// Its status.
    pub status: ThreadStatus,
}

/// `turn/started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStartedNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn: Turn,
}

/// `turn/completed`: exactly one per started turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnCompletedNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn, with its final status.
    pub turn: Turn,
    /// tiller: steer input that never reached the model (interrupted turns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsent_input: Vec<UserInput>,
}

/// `item/started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemStartedNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The item.
    pub item: ThreadItem,
    /// Unix milliseconds.
    pub started_at_ms: i64,
}

/// `item/completed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemCompletedNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The item, final.
    pub item: ThreadItem,
    /// Unix milliseconds.
    pub completed_at_ms: i64,
}

/// `item/agentMessage/delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentMessageDeltaNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The agent message item.
    pub item_id: String,
    /// The new text.
    pub delta: String,
}

/// `item/commandExecution/outputDelta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecutionOutputDeltaNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The command item.
    pub item_id: String,
    /// The new output.
    pub delta: String,
}

/// `item/mcpToolCall/progress`: what a running MCP tool call's server says of its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpToolCallProgressNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The MCP tool call item.
    pub item_id: String,
    /// The server's message.
    pub message: String,
}

/// `error`: `willRetry` true means the turn goes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// What went wrong.
    pub error: TurnError,
    /// Whether a retry is under way.
    pub will_retry: bool,
}

/// `warning`: something a person should know, e.g. that a resumed thread's
/// folder is gone and it runs in another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarningNotification {
    /// The thread it is about, if one.
    pub thread_id: Option<String>,
    /// The warning.
    pub message: String,
}

/// tiller: `thread/queue/changed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueChangedNotification {
    /// The thread.
    pub thread_id: String,
}

/// `thread/tokenUsage/updated`: after each completed turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsageUpdatedNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn that used them.
    pub turn_id: String,
    /// The counts.
    pub token_usage: ThreadTokenUsage,
}

/// A thread's token counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadTokenUsage {
    /// Since the thread was loaded in this process.
    pub total: TokenUsageBreakdown,
    /// The last turn's.
    pub last: TokenUsageBreakdown,
    /// Not known: `null`.
    pub model_context_window: Option<u64>,
}

/// Token counts by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsageBreakdown {
    /// Input plus output.
    pub total_tokens: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Input tokens served from cache.
    pub cached_input_tokens: u64,
    /// Input tokens written to the cache (0: not reported).
    pub cache_write_input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Output tokens spent reasoning.
    pub reasoning_output_tokens: u64,
}

/// `serverRequest/resolved`: a request of the server's is answered or no
/// longer needs an answer (its turn ended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerRequestResolvedNotification {
    /// The thread.
    pub thread_id: String,
    /// The server request's id.
    pub request_id: crate::RequestId,
}

/// `item/commandExecution/requestApproval` params: a server request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandApprovalParams {
    /// Always `command`.
    pub kind: String,
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The command execution item the command will be.
    pub item_id: String,
    /// When the request was made (Unix milliseconds).
    pub started_at_ms: i64,
    /// Always `null`.
    pub approval_id: Option<String>,
    /// Always `null`.
    pub environment_id: Option<String>,
    /// Why the server asks.
    pub reason: Option<String>,
    /// The command, as a shell would read it.
    pub command: Option<String>,
    /// The folder it would run in.
    pub cwd: Option<String>,
    /// What the client may answer.
    pub available_decisions: Vec<String>,
}

/// `item/fileChange/requestApproval` params: a server request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChangeApprovalParams {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The file change item (started, with its diffs).
    pub item_id: String,
    /// When the request was made (Unix milliseconds).
    pub started_at_ms: i64,
    /// Why the server asks.
    pub reason: Option<String>,
    /// The folder outside the workspace the edit writes to, if it does.
    pub grant_root: Option<String>,
}

/// `thread/archived`, `thread/unarchived`, `thread/deleted`, `thread/closed`:
/// what happened to a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadIdNotification {
    /// The thread.
    pub thread_id: String,
}

/// `thread/name/updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadNameUpdatedNotification {
    /// The thread.
    pub thread_id: String,
    /// Its name; absent once cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_name: Option<String>,
}

/// Every notification the server sends, with its method name.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerNotification {
    /// `thread/started`.
    ThreadStarted(ThreadStartedNotification),
    /// `thread/status/changed`.
    ThreadStatusChanged(ThreadStatusChangedNotification),
    /// `turn/started`.
    TurnStarted(TurnStartedNotification),
    /// `turn/completed`.
    TurnCompleted(TurnCompletedNotification),
    /// `item/started`.
    ItemStarted(ItemStartedNotification),
    /// `item/completed`.
    ItemCompleted(ItemCompletedNotification),
    /// `item/agentMessage/delta`.
    AgentMessageDelta(AgentMessageDeltaNotification),
    /// `item/commandExecution/outputDelta`.
    CommandExecutionOutputDelta(CommandExecutionOutputDeltaNotification),
    /// `item/mcpToolCall/progress`.
    McpToolCallProgress(McpToolCallProgressNotification),
    /// `mcpServer/startupStatus/updated`.
    McpServerStatusUpdated(crate::McpServerStatusUpdatedNotification),
    /// `error`.
    Error(ErrorNotification),
    /// `warning`.
    Warning(WarningNotification),
    /// `thread/queue/changed`.
    QueueChanged(QueueChangedNotification),
    /// `thread/tokenUsage/updated`.
    TokenUsageUpdated(TokenUsageUpdatedNotification),
    /// `serverRequest/resolved`.
    ServerRequestResolved(ServerRequestResolvedNotification),
    /// `thread/archived`.
    ThreadArchived(ThreadIdNotification),
    /// `thread/unarchived`.
    ThreadUnarchived(ThreadIdNotification),
    /// `thread/deleted`.
    ThreadDeleted(ThreadIdNotification),
    /// `thread/closed`: the thread is no longer loaded in this process.
    ThreadClosed(ThreadIdNotification),
    /// `thread/name/updated`.
    ThreadNameUpdated(ThreadNameUpdatedNotification),
    /// `thread/reverted`.
    ThreadReverted(ThreadIdNotification),
    /// `turn/diff/updated`.
    TurnDiffUpdated(TurnDiffUpdatedNotification),
    /// `turn/plan/updated`.
    TurnPlanUpdated(TurnPlanUpdatedNotification),
}

/// `turn/plan/updated`: the model's plan for the turn, whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnPlanUpdatedNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// Why the plan is what it is (`null` when the model did not say).
    pub explanation: Option<String>,
    /// The steps, in order.
    pub plan: Vec<TurnPlanStep>,
}

/// A step of `turn/plan/updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnPlanStep {
    /// What the step does.
    pub step: String,
    /// `pending`, `inProgress` or `completed`.
    pub status: TurnPlanStepStatus,
}

/// Where a step of `turn/plan/updated` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TurnPlanStepStatus {
    /// Not begun.
    Pending,
    /// Being worked on.
    InProgress,
    /// Done.
    Completed,
}

/// `turn/diff/updated`: the turn's whole diff, as it now stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnDiffUpdatedNotification {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// Every file the turn's patches changed, as one unified diff.
    pub diff: String,
}

impl ServerNotification {
    /// The method name.
    pub fn method(&self) -> &'static str {
        match self {
            ServerNotification::ThreadStarted(_) => "thread/started",
            ServerNotification::ThreadStatusChanged(_) => "thread/status/changed",
            ServerNotification::TurnStarted(_) => "turn/started",
            ServerNotification::TurnCompleted(_) => "turn/completed",
            ServerNotification::ItemStarted(_) => "item/started",
            ServerNotification::ItemCompleted(_) => "item/completed",
            ServerNotification::AgentMessageDelta(_) => "item/agentMessage/delta",
            ServerNotification::CommandExecutionOutputDelta(_) => {
                "item/commandExecution/outputDelta"
            }
            ServerNotification::McpToolCallProgress(_) => "item/mcpToolCall/progress",
            ServerNotification::McpServerStatusUpdated(_) => "mcpServer/startupStatus/updated",
            ServerNotification::Error(_) => "error",
            ServerNotification::Warning(_) => "warning",
            ServerNotification::QueueChanged(_) => "thread/queue/changed",
            ServerNotification::TokenUsageUpdated(_) => "thread/tokenUsage/updated",
            ServerNotification::ServerRequestResolved(_) => "serverRequest/resolved",
            ServerNotification::ThreadArchived(_) => "thread/archived",
            ServerNotification::ThreadUnarchived(_) => "thread/unarchived",
            ServerNotification::ThreadDeleted(_) => "thread/deleted",
            ServerNotification::ThreadClosed(_) => "thread/closed",
            ServerNotification::ThreadNameUpdated(_) => "thread/name/updated",
            ServerNotification::ThreadReverted(_) => "thread/reverted",
            ServerNotification::TurnDiffUpdated(_) => "turn/diff/updated",
            ServerNotification::TurnPlanUpdated(_) => "turn/plan/updated",
        }
    }

    /// The params as JSON.
    pub fn params(&self) -> Value {
        let value = match self {
            ServerNotification::ThreadStarted(p) => serde_json::to_value(p),
            ServerNotification::ThreadStatusChanged(p) => serde_json::to_value(p),
            ServerNotification::TurnStarted(p) => serde_json::to_value(p),
            ServerNotification::TurnCompleted(p) => serde_json::to_value(p),
            ServerNotification::ItemStarted(p) => serde_json::to_value(p),
            ServerNotification::ItemCompleted(p) => serde_json::to_value(p),
            ServerNotification::AgentMessageDelta(p) => serde_json::to_value(p),
            ServerNotification::CommandExecutionOutputDelta(p) => serde_json::to_value(p),
            ServerNotification::McpToolCallProgress(p) => serde_json::to_value(p),
            ServerNotification::McpServerStatusUpdated(p) => serde_json::to_value(p),
            ServerNotification::Error(p) => serde_json::to_value(p),
            ServerNotification::Warning(p) => serde_json::to_value(p),
            ServerNotification::QueueChanged(p) => serde_json::to_value(p),
            ServerNotification::TokenUsageUpdated(p) => serde_json::to_value(p),
            ServerNotification::ServerRequestResolved(p) => serde_json::to_value(p),
            ServerNotification::ThreadArchived(p)
            | ServerNotification::ThreadUnarchived(p)
            | ServerNotification::ThreadDeleted(p)
            | ServerNotification::ThreadClosed(p)
            | ServerNotification::ThreadReverted(p) => serde_json::to_value(p),
            ServerNotification::ThreadNameUpdated(p) => serde_json::to_value(p),
            ServerNotification::TurnDiffUpdated(p) => serde_json::to_value(p),
            ServerNotification::TurnPlanUpdated(p) => serde_json::to_value(p),
        };
        // Plain structs of strings and numbers always serialize.
        value.unwrap_or(Value::Null)
    }
}
