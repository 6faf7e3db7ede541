//! Engine wire types for tiller.
//!
//! A front end talks to the engine by submitting [`Op`]s and reading [`Event`]s.
//! Every event names the turn it belongs to ([`Event::turn_id`]), so a client can
//! drop anything that arrives for a turn it no longer shows.
//!
//! [`ResponseItem`] is the conversation history in the shape the OpenAI Responses
//! API takes as `input`; the engine sends it as is.
//!
//! [`TurnItem`]s are what a turn shows a person (messages, reasoning,
//! commands), emitted and recorded with stable ids.
//!
//! This crate holds types only: serde and nothing heavier, no logic beyond
//! constructors, small accessors, [`display_command`] (how every front end
//! shows an argv) and [`plan_lines`] (how every front end shows a plan).
#![deny(missing_docs)]

mod event;
mod items;
mod op;
mod plan;
mod rollout;
mod turn_item;

pub use event::{
    ElicitationAction, ErrorInfo, Event, EventMsg, ExecEndStatus, ExecOutputStream, McpServerState,
    TokenUsage, TurnAbortReason, mcp_server_line,
};
pub use items::{CallKind, ContentItem, ReasoningSummary, ResponseItem, UserInput};
pub use op::{FilesReport, Op, OpError, Reply, ReviewDecision, SettingsUpdate, UserMessage};
pub use plan::{PlanStep, StepStatus, plan_lines};
pub use rollout::{
    CheckpointLine, CheckpointStage, CompactedLine, FilesRestored, ItemPhase, LifecycleEvent,
    QueueSnapshot, QueuedInput, RecordedItem, RevertLine, RolloutItem, RolloutLine, SessionMeta,
    TurnContextLine, UnrevertLine,
};
pub use turn_item::{
    CompactedTokens, CompactionStatus, CompactionTrigger, FileChange, FileChangeKind, Json,
    McpToolCallResult, McpToolCallStatus, PatchStatus, TurnItem, TurnItemKind, compaction_line,
    display_command, hidden, mcp_call_line,
};
