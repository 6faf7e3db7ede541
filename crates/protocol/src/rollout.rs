//! Rollout lines: the JSONL record of a session (`docs/rollout.md`).

use serde::{Deserialize, Serialize};

use crate::{ErrorInfo, ResponseItem, TokenUsage, TurnAbortReason, TurnItem, UserInput};

/// One line of a rollout file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutLine {
    /// When it was written, RFC 3339 in UTC.
    pub timestamp: String,
    /// What it records.
    #[serde(flatten)]
    pub item: RolloutItem,
}

/// What a rollout line records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum RolloutItem {
    /// The first line: who and where.
    SessionMeta(SessionMeta),
    /// The settings a turn ran with.
    TurnContext(TurnContextLine),
    /// An item that went to or came from the model.
    ResponseItem(ResponseItem),
    /// A lifecycle event.
    Event(LifecycleEvent),
    /// The whole queue of messages waiting for the next turn (app-server), as
    /// it stands after a change. The last such line is the queue on resume.
    Queue(QueueSnapshot),
    /// A transcript item as it started or completed.
    Item(RecordedItem),
    /// The history was taken back to before a turn: that turn and every
    /// later one are gone from the conversation (the lines stay, for the
    /// record; the reader drops them).
    Revert(RevertLine),
    /// The history was compacted: from here on it starts with the summary.
    Compacted(CompactedLine),
    /// A snapshot of the workspace taken for a turn, so it can be undone.
    Checkpoint(CheckpointLine),
    /// The last revert was taken back: its turns are in the conversation
    /// again (and its files, if it restored some, are as they were before it).
    Unrevert(UnrevertLine),
}

/// A `checkpoint` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointLine {
    /// The turn it belongs to.
    pub turn_id: String,
    /// Whether it was taken before the turn ran anything or after it ended.
    pub stage: CheckpointStage,
    /// The folder snapshotted (the repository's root, or the session's folder).
    pub root: String,
    /// The snapshot's id: a git tree in the shadow repository under
    /// `$TILLER_HOME/checkpoints`.
    pub tree: String,
}

/// When a checkpoint was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointStage {
    /// Before the turn's first tool call.
    Before,
    /// After the turn ended.
    After,
}

/// The files a revert put back: from `from` (the workspace just before the
/// revert) to `to` (the checkpoint before the first turn taken back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesRestored {
    /// The folder restored.
    pub root: String,
    /// The snapshot of the workspace as it was just before the revert.
    pub from: String,
    /// The snapshot it was restored to.
    pub to: String,
}

/// An `unrevert` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnrevertLine {
    /// The first turn of the revert taken back.
    pub before_turn_id: String,
}

/// A `compacted` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactedLine {
    /// The user message that replaces the history before it (the summary,
    /// with the words that introduce it).
    pub message: String,
}

/// A `revert` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertLine {
    /// The first turn taken back.
    pub before_turn_id: String,
    /// The files it restored, if it restored any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesRestored>,
}

/// A transcript item in the rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedItem {
    /// The turn it belongs to.
    pub turn_id: String,
    /// Started or completed.
    pub phase: ItemPhase,
    /// The item.
    pub item: TurnItem,
}

/// When an item was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemPhase {
    /// It started.
    Started,
    /// It is complete.
    Completed,
}

/// Messages queued for the next turn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSnapshot {
    /// In order.
    pub items: Vec<QueuedInput>,
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedInput {
    /// The queue entry's id.
    pub id: String,
    /// The client's id for the message, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
    /// The input.
    pub items: Vec<UserInput>,
    /// The front end's own form of the input, kept as it was given (the
    /// app-server's wire input), so a restart restores it exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<serde_json::Value>,
    /// What the front end keeps with the entry (the app-server's
    /// `responsesapiClientMetadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// The first line of every rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMeta {
    /// The session id.
    pub id: String,
    /// When the session was created, RFC 3339 in UTC.
    pub created: String,
    /// The folder tools ran in.
    pub cwd: String,
    /// The model.
    pub model: String,
    /// The provider's id.
    pub provider: String,
    /// The tiller version that created the file.
    pub tiller_version: String,
}

/// The settings of one turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnContextLine {
    /// The turn.
    pub turn_id: String,
    /// The folder tools run in.
    pub cwd: String,
    /// The model.
    pub model: String,
    /// The approval policy (`never`, `on-failure`, `on-request`, `untrusted`).
    pub approval_policy: String,
    /// The sandbox, as a person reads it (`workspace-write (network off)`);
    /// absent in rollouts written before tiller had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// A turn lifecycle event as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LifecycleEvent {
    /// A turn started.
    TurnStarted {
        /// The turn.
        turn_id: String,
        /// The client's id for the request that started it (idempotency survives a restart).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_message_id: Option<String>,
    },
    /// A turn completed.
    TurnCompleted {
        /// The turn.
        turn_id: String,
        /// The last assistant message.
        last_agent_message: Option<String>,
        /// Token usage.
        usage: TokenUsage,
    },
    /// A turn was aborted (also: closed as interrupted on resume).
    TurnAborted {
        /// The turn.
        turn_id: String,
        /// Why.
        reason: TurnAbortReason,
        /// Steer input handed back.
        #[serde(default)]
        unsent_input: Vec<UserInput>,
    },
    /// A turn failed.
    TurnFailed {
        /// The turn.
        turn_id: String,
        /// Why.
        error: ErrorInfo,
    },
}

impl LifecycleEvent {
    /// The turn this event is about.
    pub fn turn_id(&self) -> &str {
        match self {
            LifecycleEvent::TurnStarted { turn_id, .. }
            | LifecycleEvent::TurnCompleted { turn_id, .. }
            | LifecycleEvent::TurnAborted { turn_id, .. }
            | LifecycleEvent::TurnFailed { turn_id, .. } => turn_id,
        }
    }
}
