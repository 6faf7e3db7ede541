//! The tiller engine.
//!
//! A [`Session`] is an actor task: front ends hold a [`SessionHandle`], submit
//! [`Op`](tiller_protocol::Op)s and read [`Event`](tiller_protocol::Event)s. The
//! turn lifecycle (start, interrupt, replace, steer, approval) lives in one
//! module as one enum; the model client, the tools and the history are
//! separate modules the turn drives.
#![deny(missing_docs)]

pub mod config;
pub mod process_tree;
pub mod tools;

mod approval;
pub mod client;
pub mod error;
mod events;
pub mod history;
pub mod orphan_guard;
pub mod rollout;
pub mod secrets;
mod session;
mod turn;

pub use error::{CoreError, ModelError, Result};
pub use events::{EventSender, EventStream, MAX_QUEUED_OUTPUT_BYTES, event_channel};
pub use session::{
    DEFAULT_TOOL_TIMEOUT, INTERRUPTED_MARKER, REPLACED_MARKER, SessionHandle, SessionOptions,
    SessionSource, spawn_session,
};
