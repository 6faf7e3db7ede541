//! The session's side of workspace checkpoints (`crate::checkpoint`): a
//! snapshot before each turn's first tool call and one after the turn ends,
//! each recorded in the rollout as a `checkpoint` line.
//!
//! The snapshot before a turn is taken while the model is asked, so it adds
//! no wait unless a tool call comes back before it is done; the tool then
//! waits for it (an interrupt does not). The snapshot after a turn is taken
//! once the turn's end has gone out; a revert or the session's end waits for
//! it, so it is in the file before anyone reads it there.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tiller_protocol::{CheckpointLine, CheckpointStage, EventMsg, RolloutItem};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::checkpoint::{Workspace, workspace_root};
use crate::conversation::Conversation;
use crate::events::TurnEmitter;

/// A session's checkpoints.
pub(crate) struct TurnCheckpoints {
    enabled: bool,
    /// Whether the person was told that checkpoints are off (once a session).
    told: Arc<AtomicBool>,
    /// The snapshot after the last turn, while it is being taken.
    pending: Option<JoinHandle<()>>,
}

/// A turn's tool calls wait on this until the snapshot before the turn is
/// taken (or could not be).
#[derive(Clone, Debug)]
pub(crate) struct CheckpointGate(Option<watch::Receiver<bool>>);

impl CheckpointGate {
    /// A gate that is open (no checkpoint is taken).
    pub(crate) fn open() -> CheckpointGate {
        CheckpointGate(None)
    }

    /// Returns once the snapshot is done.
    pub(crate) async fn passed(&self) {
        if let Some(rx) = &self.0 {
            let mut rx = rx.clone();
            let _ = rx.wait_for(|done| *done).await;
        }
    }
}

impl TurnCheckpoints {
    pub(crate) fn new(enabled: bool) -> TurnCheckpoints {
        TurnCheckpoints {
            enabled,
            told: Arc::new(AtomicBool::new(false)),
            pending: None,
        }
    }

    /// Start the snapshot before turn `turn_id`.
    pub(crate) fn before(
        &mut self,
        conversation: &Arc<Conversation>,
        emitter: &TurnEmitter,
        turn_id: &str,
    ) -> CheckpointGate {
        if !self.enabled {
            return CheckpointGate::open();
        }
        let (done, gate) = watch::channel(false);
        let task = self.take(
            conversation,
            Some(emitter),
            turn_id,
            CheckpointStage::Before,
        );
        tokio::spawn(async move {
            task.await;
            done.send_replace(true);
        });
        CheckpointGate(Some(gate))
    }

    /// Start the snapshot after turn `turn_id`.
    pub(crate) fn after(&mut self, conversation: &Arc<Conversation>, turn_id: &str) {
        if !self.enabled {
            return;
        }
        let task = self.take(conversation, None, turn_id, CheckpointStage::After);
        self.pending = Some(tokio::spawn(task));
    }

    /// Wait for the snapshot after the last turn, if one is being taken.
    pub(crate) async fn settle(&mut self) {
        if let Some(pending) = self.pending.take() {
            let _ = pending.await;
        }
    }

    fn take(
        &self,
        conversation: &Arc<Conversation>,
        emitter: Option<&TurnEmitter>,
        turn_id: &str,
        stage: CheckpointStage,
    ) -> impl Future<Output = ()> + Send + 'static {
        let conversation = Arc::clone(conversation);
        let emitter = emitter.cloned();
        let told = Arc::clone(&self.told);
        let turn_id = turn_id.to_string();
        let home = conversation.config.tiller_home.clone();
        let cwd = conversation.settings().cwd;
        async move {
            let taken = tokio::task::spawn_blocking(move || snapshot(home, cwd)).await;
            match taken {
                Ok(Ok((root, tree))) => {
                    let line = RolloutItem::Checkpoint(CheckpointLine {
                        turn_id,
                        stage,
                        root,
                        tree,
                    });
                    let _ = conversation.commit(vec![line], false).await;
                }
                Ok(Err(message)) => {
                    tracing::warn!("{message}");
                    if let Some(emitter) = emitter
                        && !told.swap(true, Ordering::Relaxed)
                    {
                        emitter.emit(EventMsg::BackgroundEvent {
                            message: format!("this turn cannot be undone: {message}"),
                        });
                    }
                }
                Err(panic) => tracing::error!(%panic, "bug: a checkpoint panicked"),
            }
        }
    }
}

/// Snapshot the workspace of a session in `cwd`: its root and the tree.
fn snapshot(home: PathBuf, cwd: PathBuf) -> Result<(String, String), String> {
    let workspace = Workspace::open(&home, &workspace_root(&cwd)).map_err(|e| e.to_string())?;
    let tree = workspace.snapshot().map_err(|e| e.to_string())?;
    Ok((workspace.root().display().to_string(), tree))
}
