//! MCP servers over the app-server: a thread's servers starting
//! (`mcpServer/startupStatus/updated`), and a server asking the person for
//! input mid-call (the `mcpServer/elicitation/request` server request and its
//! answer). Codex's shapes; the fields tiller has nothing for (a server's
//! registration scope, `_meta`, a failure reason) are `null`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where an MCP server's start is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum McpServerStartupState {
    /// It is starting: its tools join the model's requests once it is ready.
    Starting,
    /// Its tools are offered.
    Ready,
    /// It could not start (`error` says why); the thread goes on without it.
    Failed,
    /// Its start was called off (Codex's; tiller does not send it).
    Cancelled,
}

/// `mcpServer/startupStatus/updated`: one of a thread's MCP servers started,
/// became ready, or failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServerStatusUpdatedNotification {
    /// The thread whose server it is (tiller always names it).
    pub thread_id: Option<String>,
    /// The server's name (`[mcp_servers.<name>]`).
    pub name: String,
    /// Codex's registration scope; `null`.
    pub environment_id: Option<String>,
    /// Where its start is.
    pub status: McpServerStartupState,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// Codex's `reauthenticationRequired`; `null`.
    pub failure_reason: Option<String>,
}

/// `mcpServer/elicitation/request` params (form mode): an MCP server asks
/// the person for input while one of its tools runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServerElicitationRequestParams {
    /// The thread.
    pub thread_id: String,
    /// The turn that was running when the server asked, if one was.
    pub turn_id: Option<String>,
    /// The server's name.
    pub server_name: String,
    /// Codex's registration scope; `null`.
    pub environment_id: Option<String>,
    /// Always `form`: the answer is an object that fits `requested_schema`.
    pub mode: String,
    /// MCP's `_meta`; `null`.
    #[serde(rename = "_meta", default)]
    pub meta: Option<Value>,
    /// What the server asks.
    pub message: String,
    /// The JSON Schema of the answer: an object of primitive fields
    /// (`type`, `properties`, `required`).
    pub requested_schema: Value,
}

/// How a person answered an elicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum McpServerElicitationAction {
    /// They gave what was asked (`content`).
    Accept,
    /// They said no.
    Decline,
    /// They dismissed it without choosing.
    Cancel,
}

/// The answer to `mcpServer/elicitation/request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpServerElicitationResponse {
    /// How they answered.
    pub action: McpServerElicitationAction,
    /// What they gave, an object that fits the requested schema (with
    /// `accept` only).
    #[serde(default)]
    pub content: Option<Value>,
    /// The client's metadata; not passed on.
    #[serde(rename = "_meta", default)]
    pub meta: Option<Value>,
}
