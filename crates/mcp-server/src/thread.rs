//! One thread: an engine session, and what its calls ask of it.
//!
//! A call that starts a turn holds the engine's `TurnHandle` (the turn's own
//! events and its end); which turn runs, and how to wait for it, the engine
//! says (`SessionHandle::running_turn`). So nothing here routes or tracks.

use std::sync::Arc;

use tiller_core::config::ApprovalPolicy;
use tiller_core::{SessionHandle, TurnWatch};

/// A thread: its session.
#[derive(Debug)]
pub(crate) struct McpThread {
    id: String,
    session: SessionHandle,
    approval_policy: ApprovalPolicy,
}

impl McpThread {
    /// Wrap a session (its session-wide event stream is not read: each call
    /// reads its own turn's).
    pub(crate) fn new(session: SessionHandle, approval_policy: ApprovalPolicy) -> Arc<McpThread> {
        Arc::new(McpThread {
            id: session.session_id().to_string(),
            session,
            approval_policy,
        })
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn session(&self) -> &SessionHandle {
        &self.session
    }

    pub(crate) fn approval_policy(&self) -> ApprovalPolicy {
        self.approval_policy
    }

    /// The running turn and a way to wait for its end, if a turn is running.
    pub(crate) fn running_turn(&self) -> Option<TurnWatch> {
        self.session.running_turn()
    }

    /// Whether `turn_id` is the running turn.
    pub(crate) fn is_running(&self, turn_id: &str) -> bool {
        self.running_turn().is_some_and(|watch| watch.id == turn_id)
    }
}
