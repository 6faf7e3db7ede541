//! The tiller engine.
//!
//! A [`Session`] is an actor task: front ends hold a [`SessionHandle`], submit
//! [`Op`](tiller_protocol::Op)s and read [`Event`](tiller_protocol::Event)s. The
//! turn lifecycle (start, interrupt, replace, steer, approval) lives in one
//! module as one enum; the model client, the tools and the history are
//! separate modules the turn drives.
#![deny(missing_docs)]

pub mod tools;

mod approval;
mod builder;
pub mod checkpoint;
mod compaction;
mod conversation;
pub mod error;
mod events;
pub mod history;
mod inbox;
mod items;
pub mod mcp;
pub mod patch;
pub mod project_docs;
mod sandbox;
mod session;
mod turn;
mod turn_diff;

pub use builder::{OpenedSession, Resume, Resumed, SessionBuilder};
pub use error::{CoreError, Result};
pub use events::{EventSender, EventStream, MAX_QUEUED_OUTPUT_BYTES, event_channel};
pub use sandbox::{check_support as check_sandbox_support, process_sandbox as sandbox_for};
pub use session::{
    CurrentSettings, DEFAULT_TOOL_TIMEOUT, INTERRUPTED_MARKER, REPLACED_MARKER, SessionHandle,
    SessionOptions, SessionSource, Steered, TurnEnd, TurnHandle, TurnWatch, spawn_session,
    spawn_session_with,
};
pub use tiller_config as config;
pub use tiller_model as client;
pub use tiller_model::ModelError;
pub use tiller_process as process_tree;
pub use tiller_process::orphan_guard;
pub use tiller_rollout as rollout;
pub use tiller_secrets as secrets;
