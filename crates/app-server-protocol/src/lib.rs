//! Message types of tiller's app-server.
//!
//! The wire format is the turn-lifecycle subset of the Codex app-server v2
//! protocol (the Codex 0.171 JSON Schema is vendored in `schema/codex-0.171/`): one JSON object per line, requests
//! `{id, method, params}`, responses `{id, result}` / `{id, error}`, notifications
//! `{method, params}`, no `"jsonrpc"` field. [`ClientRequest`] is the one method
//! table: each method name maps to its params type here, and the server answers
//! with the matching result type; [`ServerNotification`] and [`ServerRequest`]
//! are the tables of what the server sends. tiller's extensions (idempotent
//! `clientUserMessageId`, `thread/interrupt`, `thread/queue/*`, `unsentInput` on
//! an interrupted turn) are marked where they are defined.
//!
//! serde only: no I/O, no logic beyond (de)serialization.
#![deny(missing_docs)]

mod jsonrpc;
mod mcp;
mod requests;
mod sandbox;
mod server_requests;
mod types;

pub use jsonrpc::{ErrorCode, Incoming, JsonRpcError, OutgoingMessage, RequestId, parse_line};
pub use mcp::{
    McpServerElicitationAction, McpServerElicitationRequestParams, McpServerElicitationResponse,
    McpServerStartupState, McpServerStatusUpdatedNotification,
};
pub use requests::{
    ClientRequest, DEFAULT_PAGE, EmptyResponse, InitializeParams, InitializeResponse,
    ModelListParams, QueueAddParams, QueueAddResponse, QueueDeleteParams, QueueDeleteResponse,
    QueueListParams, QueueListResponse, QueueReorderParams, QueueStartParams, QueueUpdateParams,
    SettingsParams, SortDirection, ThreadForkParams, ThreadForkResponse, ThreadIdParams,
    ThreadInterruptParams, ThreadInterruptResponse, ThreadItemEntry, ThreadItemsListParams,
    ThreadItemsListResponse, ThreadListParams, ThreadListResponse, ThreadLoadedListParams,
    ThreadLoadedListResponse, ThreadMetadataUpdateParams, ThreadReadParams, ThreadReadResponse,
    ThreadResumeParams, ThreadSetNameParams, ThreadSettingsUpdateParams, ThreadStartParams,
    ThreadStartResponse, ThreadTurnsListParams, ThreadTurnsListResponse, ThreadUnsubscribeParams,
    ThreadUnsubscribeResponse, TurnInterruptParams, TurnInterruptResponse, TurnStartParams,
    TurnStartResponse, TurnSteerParams, TurnSteerResponse,
};
pub use sandbox::{NetworkAccess, SandboxPolicy};
pub use server_requests::ServerRequest;
pub use types::{
    AgentMessageDeltaNotification, CommandApprovalParams, CommandExecutionOutputDeltaNotification,
    ErrorNotification, FileChangeApprovalParams, ItemCompletedNotification,
    ItemStartedNotification, McpToolCallProgressNotification, Metadata, QueueChangedNotification,
    QueuedSubmission, ServerNotification, ServerRequestResolvedNotification, Thread,
    ThreadIdNotification, ThreadItem, ThreadNameUpdatedNotification, ThreadStartedNotification,
    ThreadStatus, ThreadStatusChangedNotification, ThreadTokenUsage, TokenUsageBreakdown,
    TokenUsageUpdatedNotification, Turn, TurnCompletedNotification, TurnDiffUpdatedNotification,
    TurnError, TurnPlanStep, TurnPlanStepStatus, TurnPlanUpdatedNotification,
    TurnStartedNotification, TurnStatus, UserInput, WarningNotification,
};
