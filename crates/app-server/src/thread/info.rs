//! What the hub holds of a thread ([`ThreadHandle`]), and the facts the
//! wire shows of it ([`ThreadInfo`]: a `Thread`, a `thread/start` answer).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tiller_app_server_protocol::{
    ErrorCode, JsonRpcError, Thread, ThreadStartResponse, ThreadStatus, Turn,
};
use tiller_core::SessionHandle;
use tiller_core::config::{ApprovalPolicy, SandboxPolicy};
use tokio::sync::mpsc;

use super::ThreadCommand;
use crate::convert::now_secs;
use crate::policy::{wire_approval, wire_sandbox};
use crate::restore::saved_turns;

/// The hub's handle on a thread: its driver's commands, and the session
/// itself for what needs no driver (reading the thread).
#[derive(Debug, Clone)]
pub(crate) struct ThreadHandle {
    pub(super) tx: mpsc::UnboundedSender<ThreadCommand>,
    pub(super) session: SessionHandle,
    pub(super) info: Arc<ThreadInfo>,
}

impl ThreadHandle {
    pub(crate) fn send(&self, command: ThreadCommand) -> bool {
        self.tx.send(command).is_ok()
    }

    /// The thread, with its turns as the rollout holds them (the running
    /// one as it stands) if `turns`.
    pub(crate) async fn read(&self, turns: bool) -> Result<Thread, JsonRpcError> {
        let running = self.session.running_turn().map(|watch| watch.id);
        let saved = if turns {
            self.turns().await?
        } else {
            Vec::new()
        };
        Ok(self
            .info
            .current(&self.session)
            .thread(running.is_none(), saved))
    }

    /// Every turn so far, oldest first.
    pub(crate) async fn turns(&self) -> Result<Vec<Turn>, JsonRpcError> {
        let running = self.session.running_turn().map(|watch| watch.id);
        let saved = self.session.saved_turns().await.map_err(|message| {
            JsonRpcError::new(
                ErrorCode::InternalError,
                format!("could not read the thread: {message}"),
            )
        })?;
        Ok(saved_turns(&saved, running.as_deref()))
    }

    /// Idle, active or in error, as `thread/list` shows a loaded thread.
    pub(crate) fn status(&self) -> ThreadStatus {
        let idle = self.session.running_turn().is_none();
        if idle && self.info.failed.load(Ordering::Acquire) {
            ThreadStatus::SystemError
        } else {
            thread_status(idle)
        }
    }
}

fn thread_status(idle: bool) -> ThreadStatus {
    if idle {
        ThreadStatus::Idle
    } else {
        ThreadStatus::Active {
            active_flags: Vec::new(),
        }
    }
}

/// Fixed facts about a thread.
#[derive(Debug, Clone)]
pub(crate) struct ThreadInfo {
    pub(crate) id: String,
    pub(crate) model: String,
    pub(crate) provider: String,
    pub(crate) cwd: String,
    pub(crate) approval_policy: ApprovalPolicy,
    /// What its commands may touch.
    pub(crate) sandbox: SandboxPolicy,
    pub(crate) preview: String,
    /// Its name (`thread/name/set`), if any.
    pub(crate) name: Option<String>,
    /// Whether its last turn failed (a model or disk failure): the thread
    /// then shows `systemError` until its next turn starts. Shared by every
    /// copy of the info (the driver's and the hub's).
    pub(crate) failed: Arc<AtomicBool>,
    pub(crate) created_at: i64,
    /// Turns read from the rollout (resumed threads).
    pub(crate) turns: Vec<Turn>,
}

impl ThreadInfo {
    /// These facts with the settings the session runs with now (a client
    /// may have changed its model, folder, approval policy or sandbox).
    pub(super) fn current(&self, session: &SessionHandle) -> ThreadInfo {
        let settings = session.settings();
        ThreadInfo {
            model: settings.model,
            cwd: settings.cwd.display().to_string(),
            approval_policy: settings.approval_policy,
            sandbox: settings.sandbox,
            ..self.clone()
        }
    }

    pub(crate) fn thread(&self, idle: bool, turns: Vec<Turn>) -> Thread {
        Thread {
            id: self.id.clone(),
            name: self.name.clone(),
            session_id: self.id.clone(),
            preview: self.preview.clone(),
            cli_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: self.created_at,
            updated_at: now_secs(),
            cwd: self.cwd.clone(),
            ephemeral: false,
            model: Some(self.model.clone()),
            model_provider: self.provider.clone(),
            project_id: None,
            source: "appServer".to_string(),
            status: if idle && self.failed.load(Ordering::Acquire) {
                ThreadStatus::SystemError
            } else {
                thread_status(idle)
            },
            turns,
        }
    }

    pub(crate) fn response(&self, idle: bool, turns: Vec<Turn>) -> ThreadStartResponse {
        ThreadStartResponse {
            thread: self.thread(idle, turns),
            model: self.model.clone(),
            model_provider: self.provider.clone(),
            cwd: self.cwd.clone(),
            approval_policy: wire_approval(self.approval_policy).to_string(),
            approvals_reviewer: "user".to_string(),
            sandbox: wire_sandbox(&self.sandbox),
        }
    }
}
