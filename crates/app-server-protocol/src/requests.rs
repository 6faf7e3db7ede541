//! The method table: every client request, its params and its result.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jsonrpc::{ErrorCode, JsonRpcError};
use crate::types::{QueuedSubmission, Thread, Turn, UserInput};

/// Every request a client can send, by method name.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientRequest {
    /// `initialize` → [`InitializeResponse`].
    Initialize(InitializeParams),
    /// `thread/start` → [`ThreadStartResponse`].
    ThreadStart(ThreadStartParams),
    /// `thread/resume` → [`ThreadStartResponse`] with `thread.turns` filled.
    ThreadResume(ThreadResumeParams),
    /// `turn/start` → [`TurnStartResponse`].
    TurnStart(TurnStartParams),
    /// `turn/steer` → [`TurnSteerResponse`].
    TurnSteer(TurnSteerParams),
    /// `turn/interrupt` → [`TurnInterruptResponse`].
    TurnInterrupt(TurnInterruptParams),
    /// tiller: `thread/interrupt` → [`ThreadInterruptResponse`].
    ThreadInterrupt(ThreadInterruptParams),
    /// tiller: `thread/queue/add` → [`QueueAddResponse`].
    QueueAdd(QueueAddParams),
    /// tiller: `thread/queue/list` → [`QueueListResponse`].
    QueueList(QueueListParams),
    /// tiller: `thread/queue/delete` → [`QueueDeleteResponse`].
    QueueDelete(QueueDeleteParams),
}

impl ClientRequest {
    /// Every method name the server knows.
    pub const METHODS: &'static [&'static str] = &[
        "initialize",
        "thread/start",
        "thread/resume",
        "turn/start",
        "turn/steer",
        "turn/interrupt",
        "thread/interrupt",
        "thread/queue/add",
        "thread/queue/list",
        "thread/queue/delete",
    ];

    /// Read `params` for `method`: -32601 for an unknown method, -32602 for
    /// params of the wrong shape.
    pub fn parse(method: &str, params: Value) -> Result<ClientRequest, JsonRpcError> {
        fn typed<T: serde::de::DeserializeOwned>(
            method: &str,
            params: Value,
        ) -> Result<T, JsonRpcError> {
            let params = if params.is_null() {
                Value::Object(Default::default())
            } else {
                params
            };
            serde_json::from_value(params).map_err(|e| {
                JsonRpcError::new(
                    ErrorCode::InvalidParams,
                    format!("invalid params for {method}: {e}"),
                )
            })
        }
        Ok(match method {
            "initialize" => ClientRequest::Initialize(typed(method, params)?),
            "thread/start" => ClientRequest::ThreadStart(typed(method, params)?),
            "thread/resume" => ClientRequest::ThreadResume(typed(method, params)?),
            "turn/start" => ClientRequest::TurnStart(typed(method, params)?),
            "turn/steer" => ClientRequest::TurnSteer(typed(method, params)?),
            "turn/interrupt" => ClientRequest::TurnInterrupt(typed(method, params)?),
            "thread/interrupt" => ClientRequest::ThreadInterrupt(typed(method, params)?),
            "thread/queue/add" => ClientRequest::QueueAdd(typed(method, params)?),
            "thread/queue/list" => ClientRequest::QueueList(typed(method, params)?),
            "thread/queue/delete" => ClientRequest::QueueDelete(typed(method, params)?),
            other => {
                return Err(JsonRpcError::new(
                    ErrorCode::MethodNotFound,
                    format!("unknown method '{other}'"),
                ));
            }
        })
    }
}

/// `initialize` params.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    /// Who the client is.
    #[serde(default)]
    pub client_info: Option<Value>,
    /// What it supports.
    #[serde(default)]
    pub capabilities: Option<Value>,
}

/// `initialize` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResponse {
    /// `tiller/<version>`.
    pub user_agent: String,
    /// `unix`.
    pub platform_family: String,
    /// `linux`, `macos`, …
    pub platform_os: String,
    /// `$TILLER_HOME`.
    pub codex_home: String,
}

/// `thread/start` params (all optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadStartParams {
    /// The folder tools run in.
    #[serde(default)]
    pub cwd: Option<String>,
    /// The model.
    #[serde(default)]
    pub model: Option<String>,
    /// The provider (a `[model_providers.NAME]` table).
    #[serde(default)]
    pub model_provider: Option<String>,
    /// `never` or `untrusted` (`on-request` is taken as `untrusted`).
    #[serde(default)]
    pub approval_policy: Option<Value>,
    /// Accepted; tiller has no sandbox yet.
    #[serde(default)]
    pub sandbox: Option<Value>,
    /// Replaces tiller's system instructions.
    #[serde(default)]
    pub base_instructions: Option<String>,
    /// Added to tiller's system instructions.
    #[serde(default)]
    pub developer_instructions: Option<String>,
}

/// `thread/resume` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadResumeParams {
    /// The thread (session) id.
    pub thread_id: String,
    /// The same overrides as `thread/start`.
    #[serde(flatten)]
    pub overrides: ThreadStartParams,
}

/// `thread/start` and `thread/resume` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadStartResponse {
    /// The thread.
    pub thread: Thread,
    /// The model.
    pub model: String,
    /// The provider.
    pub model_provider: String,
    /// The folder.
    pub cwd: String,
    /// `never` or `untrusted`.
    pub approval_policy: String,
    /// Always `user`.
    pub approvals_reviewer: String,
    /// Always `{"type":"dangerFullAccess"}`: tiller has no sandbox yet.
    pub sandbox: Value,
}

/// `turn/start` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStartParams {
    /// The thread.
    pub thread_id: String,
    /// The input.
    pub input: Vec<UserInput>,
    /// tiller: makes the request idempotent on this thread.
    #[serde(default)]
    pub client_user_message_id: Option<String>,
}

/// `turn/start` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnStartResponse {
    /// The new turn, `inProgress`.
    pub turn: Turn,
}

/// `turn/steer` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnSteerParams {
    /// The thread.
    pub thread_id: String,
    /// The turn the client believes is running.
    pub expected_turn_id: String,
    /// The input.
    pub input: Vec<UserInput>,
    /// tiller: makes the request idempotent on this thread.
    #[serde(default)]
    pub client_user_message_id: Option<String>,
}

/// `turn/steer` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnSteerResponse {
    /// The turn the input went to.
    pub turn_id: String,
}

/// `turn/interrupt` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnInterruptParams {
    /// The thread.
    pub thread_id: String,
    /// The turn to interrupt.
    pub turn_id: String,
}

/// `turn/interrupt` result: `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnInterruptResponse {}

/// tiller: `thread/interrupt` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadInterruptParams {
    /// The thread.
    pub thread_id: String,
}

/// tiller: `thread/interrupt` result: `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadInterruptResponse {}

/// tiller: `thread/queue/add` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueAddParams {
    /// The thread.
    pub thread_id: String,
    /// The client's id for the message; a repeat is answered with the original entry.
    #[serde(default)]
    pub client_user_message_id: Option<String>,
    /// The input.
    pub input: Vec<UserInput>,
}

/// tiller: `thread/queue/add` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueAddResponse {
    /// The entry.
    pub queued_submission: QueuedSubmission,
}

/// tiller: `thread/queue/list` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueListParams {
    /// The thread.
    pub thread_id: String,
}

/// tiller: `thread/queue/list` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueListResponse {
    /// The queue, in order.
    pub queued_submissions: Vec<QueuedSubmission>,
}

/// tiller: `thread/queue/delete` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueDeleteParams {
    /// The thread.
    pub thread_id: String,
    /// The entry's id.
    pub id: String,
}

/// tiller: `thread/queue/delete` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueDeleteResponse {
    /// Whether the entry was there.
    pub deleted: bool,
}
