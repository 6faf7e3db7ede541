//! The requests the server sends a client and waits on: approvals, and MCP
//! servers' elicitations. One table of their method names and params types,
//! as [`ServerNotification`](crate::ServerNotification) is for notifications.

use serde_json::Value;

use crate::mcp::McpServerElicitationRequestParams;
use crate::types::{CommandApprovalParams, FileChangeApprovalParams};

/// Every request the server sends, with its method name.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerRequest {
    /// `item/commandExecution/requestApproval`: answered with `{decision}`.
    CommandApproval(CommandApprovalParams),
    /// `item/fileChange/requestApproval`: answered with `{decision}`.
    FileChangeApproval(FileChangeApprovalParams),
    /// `mcpServer/elicitation/request`: answered with
    /// [`McpServerElicitationResponse`](crate::McpServerElicitationResponse).
    McpServerElicitation(McpServerElicitationRequestParams),
}

impl ServerRequest {
    /// The method name.
    pub fn method(&self) -> &'static str {
        match self {
            ServerRequest::CommandApproval(_) => "item/commandExecution/requestApproval",
            ServerRequest::FileChangeApproval(_) => "item/fileChange/requestApproval",
            ServerRequest::McpServerElicitation(_) => "mcpServer/elicitation/request",
        }
    }

    /// The params as JSON.
    pub fn params(&self) -> Value {
        let value = match self {
            ServerRequest::CommandApproval(p) => serde_json::to_value(p),
            ServerRequest::FileChangeApproval(p) => serde_json::to_value(p),
            ServerRequest::McpServerElicitation(p) => serde_json::to_value(p),
        };
        // Plain structs of strings, numbers and JSON values always serialize.
        value.unwrap_or(Value::Null)
    }

    /// The thread it is about.
    pub fn thread_id(&self) -> &str {
        match self {
            ServerRequest::CommandApproval(p) => &p.thread_id,
            ServerRequest::FileChangeApproval(p) => &p.thread_id,
            ServerRequest::McpServerElicitation(p) => &p.thread_id,
        }
    }
}
