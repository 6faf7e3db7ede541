//! The method table: every client request, its params and its result.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jsonrpc::{ErrorCode, JsonRpcError};
use crate::sandbox::SandboxPolicy;
use crate::types::{Metadata, QueuedSubmission, Thread, Turn, UserInput};

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
    /// `thread/queue/add` → [`QueueAddResponse`].
    QueueAdd(QueueAddParams),
    /// `thread/queue/list` → [`QueueListResponse`].
    QueueList(QueueListParams),
    /// `thread/queue/update` → [`QueueAddResponse`].
    QueueUpdate(QueueUpdateParams),
    /// `thread/queue/delete` → [`QueueDeleteResponse`].
    QueueDelete(QueueDeleteParams),
    /// `thread/queue/reorder` → [`EmptyResponse`].
    QueueReorder(QueueReorderParams),
    /// `thread/queue/start` → [`TurnStartResponse`].
    QueueStart(QueueStartParams),
    /// `thread/unsubscribe` → [`ThreadUnsubscribeResponse`].
    ThreadUnsubscribe(ThreadUnsubscribeParams),
    /// `thread/loaded/list` → [`ThreadLoadedListResponse`].
    ThreadLoadedList(ThreadLoadedListParams),
    /// `thread/read` → [`ThreadReadResponse`].
    ThreadRead(ThreadReadParams),
    /// `thread/turns/list` → [`ThreadTurnsListResponse`].
    ThreadTurnsList(ThreadTurnsListParams),
    /// `thread/list` → [`ThreadListResponse`].
    ThreadList(ThreadListParams),
    /// `thread/settings/update` → [`EmptyResponse`].
    ThreadSettingsUpdate(ThreadSettingsUpdateParams),
    /// `thread/fork` → [`ThreadForkResponse`].
    ThreadFork(ThreadForkParams),
    /// `thread/metadata/update` → `{thread}`.
    ThreadMetadataUpdate(ThreadMetadataUpdateParams),
    /// `thread/archive` → [`EmptyResponse`].
    ThreadArchive(ThreadIdParams),
    /// `thread/unarchive` → `{thread}`.
    ThreadUnarchive(ThreadIdParams),
    /// `thread/delete` → [`EmptyResponse`].
    ThreadDelete(ThreadIdParams),
    /// `thread/items/list` → [`ThreadItemsListResponse`].
    ThreadItemsList(ThreadItemsListParams),
    /// `thread/name/set` → [`EmptyResponse`].
    ThreadSetName(ThreadSetNameParams),
    /// `model/list` → `{data: [Model], nextCursor}`.
    ModelList(ModelListParams),
    /// `thread/revert` → `{thread, turnsBackwardsCursor, itemsBackwardsCursor}`.
    ThreadRevert(ThreadRevertParams),
    /// `thread/compact/start` → [`EmptyResponse`].
    ThreadCompactStart(ThreadIdParams),
    /// tiller: `thread/unrevert` → as `thread/revert`: the last revert taken back.
    ThreadUnrevert(ThreadIdParams),
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
        "thread/queue/update",
        "thread/queue/delete",
        "thread/queue/reorder",
        "thread/queue/start",
        "thread/unsubscribe",
        "thread/loaded/list",
        "thread/read",
        "thread/turns/list",
        "thread/list",
        "thread/settings/update",
        "thread/fork",
        "thread/metadata/update",
        "thread/archive",
        "thread/unarchive",
        "thread/delete",
        "thread/items/list",
        "thread/name/set",
        "model/list",
        "thread/revert",
        "thread/compact/start",
        "thread/unrevert",
    ];

    /// The thread a request is about, for those a thread's driver answers.
    pub fn thread_id(&self) -> Option<&str> {
        match self {
            ClientRequest::TurnStart(p) => Some(&p.thread_id),
            ClientRequest::TurnSteer(p) => Some(&p.thread_id),
            ClientRequest::TurnInterrupt(p) => Some(&p.thread_id),
            ClientRequest::ThreadInterrupt(p) => Some(&p.thread_id),
            ClientRequest::QueueAdd(p) => Some(&p.thread_id),
            ClientRequest::QueueList(p) => Some(&p.thread_id),
            ClientRequest::QueueUpdate(p) => Some(&p.thread_id),
            ClientRequest::QueueDelete(p) => Some(&p.thread_id),
            ClientRequest::QueueReorder(p) => Some(&p.thread_id),
            ClientRequest::QueueStart(p) => Some(&p.thread_id),
            ClientRequest::ThreadSettingsUpdate(p) => Some(&p.thread_id),
            ClientRequest::ThreadRevert(p) => Some(&p.thread_id),
            ClientRequest::ThreadCompactStart(p) | ClientRequest::ThreadUnrevert(p) => {
                Some(&p.thread_id)
            }
            ClientRequest::Initialize(_)
            | ClientRequest::ThreadStart(_)
            | ClientRequest::ThreadResume(_)
            | ClientRequest::ThreadUnsubscribe(_)
            | ClientRequest::ThreadLoadedList(_)
            | ClientRequest::ThreadRead(_)
            | ClientRequest::ThreadTurnsList(_)
            | ClientRequest::ThreadList(_)
            | ClientRequest::ThreadFork(_)
            | ClientRequest::ThreadMetadataUpdate(_)
            | ClientRequest::ThreadArchive(_)
            | ClientRequest::ThreadUnarchive(_)
            | ClientRequest::ThreadDelete(_)
            | ClientRequest::ThreadItemsList(_)
            | ClientRequest::ThreadSetName(_)
            | ClientRequest::ModelList(_) => None,
        }
    }

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
            "thread/queue/update" => ClientRequest::QueueUpdate(typed(method, params)?),
            "thread/queue/delete" => ClientRequest::QueueDelete(typed(method, params)?),
            "thread/queue/reorder" => ClientRequest::QueueReorder(typed(method, params)?),
            "thread/queue/start" => ClientRequest::QueueStart(typed(method, params)?),
            "thread/unsubscribe" => ClientRequest::ThreadUnsubscribe(typed(method, params)?),
            "thread/loaded/list" => ClientRequest::ThreadLoadedList(typed(method, params)?),
            "thread/read" => ClientRequest::ThreadRead(typed(method, params)?),
            "thread/turns/list" => ClientRequest::ThreadTurnsList(typed(method, params)?),
            "thread/list" => ClientRequest::ThreadList(typed(method, params)?),
            "thread/settings/update" => ClientRequest::ThreadSettingsUpdate(typed(method, params)?),
            "thread/fork" => ClientRequest::ThreadFork(typed(method, params)?),
            "thread/metadata/update" => ClientRequest::ThreadMetadataUpdate(typed(method, params)?),
            "thread/archive" => ClientRequest::ThreadArchive(typed(method, params)?),
            "thread/unarchive" => ClientRequest::ThreadUnarchive(typed(method, params)?),
            "thread/delete" => ClientRequest::ThreadDelete(typed(method, params)?),
            "thread/items/list" => ClientRequest::ThreadItemsList(typed(method, params)?),
            "thread/name/set" => ClientRequest::ThreadSetName(typed(method, params)?),
            "model/list" => ClientRequest::ModelList(typed(method, params)?),
            "thread/revert" => ClientRequest::ThreadRevert(typed(method, params)?),
            "thread/unrevert" => ClientRequest::ThreadUnrevert(typed(method, params)?),
            "thread/compact/start" => ClientRequest::ThreadCompactStart(typed(method, params)?),
            other => {
                return Err(JsonRpcError::new(
                    ErrorCode::MethodNotFound,
                    format!("method not found: {other}"),
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
    /// Codex's `AskForApproval`: `never`, `on-request`, `untrusted` (and
    /// tiller's `on-failure`), or `{granular}`, which is taken as `untrusted`.
    #[serde(default)]
    pub approval_policy: Option<Value>,
    /// Codex's `SandboxMode`: `read-only`, `workspace-write` or
    /// `danger-full-access`.
    #[serde(default)]
    pub sandbox: Option<Value>,
    /// A named permissions profile: refused when set (tiller has none).
    #[serde(default)]
    pub permissions: Option<Value>,
    /// Replaces tiller's system instructions.
    #[serde(default)]
    pub base_instructions: Option<String>,
    /// Added to tiller's system instructions.
    #[serde(default)]
    pub developer_instructions: Option<String>,
    /// Config overrides, as `-c key=value` would give them (`{"model":
    /// "gpt-5", "model_providers.local.base_url": "http://..."}`).
    #[serde(default)]
    pub config: Option<serde_json::Map<String, Value>>,
}

impl ThreadStartParams {
    /// `config` as `-c` pairs: the key, and the value as TOML.
    pub fn config_overrides(&self) -> Vec<(String, String)> {
        self.config
            .iter()
            .flatten()
            .map(|(key, value)| (key.clone(), toml_value(value)))
            .collect()
    }
}

/// A JSON value written as TOML: strings quoted, arrays and tables inline.
fn toml_value(value: &Value) -> String {
    match value {
        Value::Null => "\"\"".to_string(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        // A JSON string literal is a TOML basic string.
        Value::String(_) => value.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{} = {}", Value::String(k.clone()), toml_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
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
    /// `never`, `on-request` or `untrusted` (tiller's `on-failure`, which
    /// Codex's `AskForApproval` does not have, is written `on-request`).
    pub approval_policy: String,
    /// Always `user`.
    pub approvals_reviewer: String,
    /// The sandbox the thread's commands run in.
    pub sandbox: SandboxPolicy,
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
    /// Settings for this turn and the next ones.
    #[serde(flatten)]
    pub settings: SettingsParams,
}

/// The settings `turn/start` and `thread/settings/update` may change: those
/// tiller applies, and every other field ([`SettingsParams::other`]), which
/// the server refuses by name when it is one tiller cannot apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsParams {
    /// The model.
    #[serde(default)]
    pub model: Option<String>,
    /// The folder tools run in (absolute, existing).
    #[serde(default)]
    pub cwd: Option<String>,
    /// `never`, `on-failure`, `on-request`, `untrusted` or `{granular}`
    /// (taken as `untrusted`).
    #[serde(default)]
    pub approval_policy: Option<Value>,
    /// Codex's `SandboxPolicy`, replacing the whole policy.
    #[serde(default)]
    pub sandbox_policy: Option<Value>,
    /// The reasoning effort sent to the model.
    #[serde(default)]
    pub effort: Option<String>,
    /// The reasoning summary asked of the model.
    #[serde(default)]
    pub summary: Option<String>,
    /// Every other field, by name.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// `thread/settings/update` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadSettingsUpdateParams {
    /// The thread.
    pub thread_id: String,
    /// What changes for the next turns.
    #[serde(flatten)]
    pub settings: SettingsParams,
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

/// `thread/queue/add` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueAddParams {
    /// The thread.
    pub thread_id: String,
    /// The input.
    pub input: Vec<UserInput>,
    /// The client's id for the message. While an entry with this id is
    /// queued, adding it again answers with that entry. Codex requires it;
    /// tiller gives an entry without one its own id.
    #[serde(default)]
    pub client_user_message_id: Option<String>,
    /// Kept with the entry, across restarts.
    #[serde(default)]
    pub responsesapi_client_metadata: Option<Metadata>,
}

/// `thread/queue/add` and `thread/queue/update` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueAddResponse {
    /// The entry.
    pub queued_submission: QueuedSubmission,
}

/// `thread/queue/list` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueListParams {
    /// The thread.
    pub thread_id: String,
    /// Where the previous page ended.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size; the whole queue if absent.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `thread/queue/list` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueListResponse {
    /// The queue (or this page of it), in order.
    pub data: Vec<QueuedSubmission>,
    /// The cursor of the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// `thread/queue/update` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueUpdateParams {
    /// The thread.
    pub thread_id: String,
    /// The entry.
    pub queued_submission_id: String,
    /// Its new input.
    pub input: Vec<UserInput>,
    /// Replaces the entry's metadata if not empty.
    #[serde(default)]
    pub responsesapi_client_metadata: Option<Metadata>,
}

/// `thread/queue/delete` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueDeleteParams {
    /// The thread.
    pub thread_id: String,
    /// The entry.
    pub queued_submission_id: String,
}

/// `thread/queue/delete` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueDeleteResponse {
    /// Whether the entry was there.
    pub deleted: bool,
}

/// `thread/queue/reorder` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueReorderParams {
    /// The thread.
    pub thread_id: String,
    /// Every queued entry's id, in the new order.
    pub queued_submission_ids: Vec<String>,
}

/// `thread/queue/start` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStartParams {
    /// The thread.
    pub thread_id: String,
    /// The entry to start now; the first one if absent.
    #[serde(default)]
    pub queued_submission_id: Option<String>,
}

/// `thread/unsubscribe` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadUnsubscribeParams {
    /// The thread.
    pub thread_id: String,
}

/// `thread/unsubscribe` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadUnsubscribeResponse {
    /// `notLoaded`, `notSubscribed` or `unsubscribed`.
    pub status: String,
}

/// `thread/loaded/list` params.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadLoadedListParams {
    /// Where the previous page ended.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size; all if absent.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `thread/loaded/list` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadLoadedListResponse {
    /// The ids of the threads loaded in this process.
    pub data: Vec<String>,
    /// The cursor of the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// A `{}` result (`thread/queue/reorder`, `thread/archive`, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmptyResponse {}

/// `thread/read` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadReadParams {
    /// The thread.
    pub thread_id: String,
    /// Whether `thread.turns` is filled.
    #[serde(default)]
    pub include_turns: bool,
}

/// `thread/read` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadReadResponse {
    /// The thread.
    pub thread: Thread,
    /// Always `null`: tiller keeps no read receipts.
    pub read_state: Option<Value>,
}

/// `thread/turns/list` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadTurnsListParams {
    /// The thread.
    pub thread_id: String,
    /// Where the previous page ended.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size (default [`DEFAULT_PAGE`]).
    #[serde(default)]
    pub limit: Option<u32>,
    /// `desc` (newest first, the default) or `asc`.
    #[serde(default)]
    pub sort_direction: Option<SortDirection>,
}

/// A page's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SortDirection {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// The page size when a request gives none.
pub const DEFAULT_PAGE: u32 = 50;

/// `thread/turns/list` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadTurnsListResponse {
    /// The turns of this page.
    pub data: Vec<Turn>,
    /// The cursor of the next page; `null` at the end.
    pub next_cursor: Option<String>,
    /// The cursor that lists back from this page's first turn, included.
    pub backwards_cursor: Option<String>,
}

/// `thread/list` params (the filters tiller applies; others are accepted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadListParams {
    /// Where the previous page ended.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size (default [`DEFAULT_PAGE`]).
    #[serde(default)]
    pub limit: Option<u32>,
    /// `desc` (newest first, the default) or `asc`, by creation.
    #[serde(default)]
    pub sort_direction: Option<SortDirection>,
    /// Archived threads only when true.
    #[serde(default)]
    pub archived: Option<bool>,
    /// Only threads whose folder is this one (or one of these).
    #[serde(default)]
    pub cwd: Option<Value>,
    /// Only threads whose first prompt contains this.
    #[serde(default)]
    pub search_term: Option<String>,
    /// Only threads of these providers (all if empty).
    #[serde(default)]
    pub model_providers: Option<Vec<String>>,
}

/// `thread/list` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadListResponse {
    /// The threads of this page, without turns.
    pub data: Vec<Thread>,
    /// Always `null`: tiller keeps no read receipts.
    pub read_states: Option<Value>,
    /// The cursor of the next page; `null` at the end.
    pub next_cursor: Option<String>,
    /// The cursor that lists back from this page's first thread, included.
    pub backwards_cursor: Option<String>,
}

/// `thread/fork` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadForkParams {
    /// The thread to fork.
    pub thread_id: String,
    /// Fork through this turn (inclusive).
    #[serde(default)]
    pub last_turn_id: Option<String>,
    /// Fork the turns before this one.
    #[serde(default)]
    pub before_turn_id: Option<String>,
    /// Not supported: tiller forks by thread id.
    #[serde(default)]
    pub path: Option<String>,
    /// Not supported: tiller's threads are saved.
    #[serde(default)]
    pub ephemeral: bool,
    /// Leave `thread.turns` empty in the answer.
    #[serde(default)]
    pub exclude_turns: bool,
    /// The same overrides as `thread/start`, for the new thread.
    #[serde(flatten)]
    pub overrides: ThreadStartParams,
}

/// `thread/fork` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadForkResponse {
    /// What `thread/start` answers for the new thread.
    #[serde(flatten)]
    pub started: ThreadStartResponse,
    /// Always `null`.
    pub service_tier: Option<String>,
    /// Always empty.
    pub disabled_plugin_ids: Vec<String>,
    /// Always empty.
    pub runtime_workspace_roots: Vec<String>,
    /// Always empty.
    pub instruction_sources: Vec<String>,
    /// Always `null`.
    pub active_permission_profile: Option<Value>,
    /// Always `null`.
    pub reasoning_effort: Option<String>,
    /// Always `explicitRequestOnly`.
    pub multi_agent_mode: String,
}

/// `thread/metadata/update` params. tiller keeps no project or git
/// metadata: a request that sets any is refused, one that sets none answers
/// with the thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadMetadataUpdateParams {
    /// The thread.
    pub thread_id: String,
    /// Every other field, by name.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, Value>,
}

/// Params of the methods that name only a thread (`thread/archive`,
/// `thread/unarchive`, `thread/delete`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadIdParams {
    /// The thread.
    pub thread_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_in_the_table_is_parsed_and_no_other() {
        for method in ClientRequest::METHODS {
            // Empty params are the wrong shape for most: -32602, never -32601.
            if let Err(error) = ClientRequest::parse(method, Value::Null) {
                assert_ne!(
                    error.code, -32601,
                    "{method} is in the table but not parsed"
                );
            }
        }
        let unknown = ClientRequest::parse("thread/frobnicate", Value::Null)
            .err()
            .unwrap();
        assert_eq!(unknown.code, -32601);
        assert_eq!(unknown.message, "method not found: thread/frobnicate");
    }
}

/// `thread/items/list` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadItemsListParams {
    /// The thread.
    pub thread_id: String,
    /// Only this turn's items.
    #[serde(default)]
    pub turn_id: Option<String>,
    /// Where the previous page ended: a cursor string, or `{type: "item",
    /// itemId}` to start after that item.
    #[serde(default)]
    pub cursor: Option<Value>,
    /// Page size (default [`DEFAULT_PAGE`]).
    #[serde(default)]
    pub limit: Option<u32>,
    /// `desc` (newest first, the default) or `asc`.
    #[serde(default)]
    pub sort_direction: Option<SortDirection>,
}

/// One item of `thread/items/list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadItemEntry {
    /// The turn it belongs to.
    pub turn_id: String,
    /// The item.
    pub item: crate::ThreadItem,
    /// Not recorded: `null`.
    pub started_at_ms: Option<i64>,
    /// Not recorded: `null`.
    pub completed_at_ms: Option<i64>,
}

/// `thread/items/list` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadItemsListResponse {
    /// The items of this page.
    pub data: Vec<ThreadItemEntry>,
    /// The cursor of the next page; `null` at the end.
    pub next_cursor: Option<String>,
    /// The cursor that lists back from this page's first item, included.
    pub backwards_cursor: Option<String>,
}

/// `thread/name/set` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadSetNameParams {
    /// The thread.
    pub thread_id: String,
    /// Its new name; empty clears it.
    pub name: String,
}

/// `model/list` params (the ones tiller reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelListParams {
    /// The provider to list (the configured one if absent).
    #[serde(default)]
    pub model_provider: Option<String>,
    /// Where the previous page ended.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size; all if absent.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `thread/revert` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadRevertParams {
    /// The thread.
    pub thread_id: String,
    /// The first turn taken back.
    pub before_turn_id: String,
    /// tiller's extension: also put the workspace's files back as they were
    /// before that turn (from its checkpoint).
    #[serde(default)]
    pub restore_files: bool,
}
