//! The session's side of workspace checkpoints (`crate::checkpoint`): a
//! snapshot before a turn's first tool call and one after a turn that ran a
//! tool ends, each recorded in the rollout as a `checkpoint` line.
//!
//! Only a tool changes the workspace, so nothing is taken for a turn that runs
//! none: its first tool call takes the snapshot and waits for it (about 25 ms
//! on a 10,000-file workspace when nothing changed; an interrupt does not
//! wait), and later calls find it taken. Taking it at the turn's start instead
//! would hide that wait behind the model's answer, but would run git beside
//! every turn, tools or not, and slow what the person is waiting on then.
//! The snapshot after a turn is taken [`AFTER_DELAY`] after the turn's end
//! has gone out, so that git does not compete with the delivery of the end
//! (the moment a person pressed Esc and waits). Whatever needs it sooner takes
//! it at once and waits for it: the next turn's first tool call (before it
//! changes anything), a revert and the session's end (so it is in the file
//! before anyone reads it there).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tiller_protocol::{CheckpointLine, CheckpointStage, EventMsg, RolloutItem};
use tokio::sync::{Notify, OnceCell};

use crate::checkpoint::{Workspace, workspace_root};
use crate::conversation::Conversation;
use crate::events::TurnEmitter;

/// How long after a turn's end its snapshot is taken, unless something
/// needs it sooner.
const AFTER_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// A session's checkpoints.
pub(crate) struct TurnCheckpoints {
    enabled: bool,
    /// Whether the person was told that checkpoints are off (once a session).
    told: Arc<AtomicBool>,
    /// The snapshot after the last turn, while it is waiting or being taken.
    pending: Option<Pending>,
}

/// A snapshot after a turn that is waiting for its moment or being taken.
#[derive(Clone)]
struct Pending {
    done: Shared<BoxFuture<'static, ()>>,
    now: Arc<Notify>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl Pending {
    /// Take it now (if it is still waiting) and wait until it is taken.
    async fn finish(self) {
        self.now.notify_one();
        self.done.await;
    }
}

/// A turn's tool calls pass through it: the first one takes the snapshot
/// before the turn's changes, the others find it taken.
#[derive(Clone, Debug)]
pub(crate) struct CheckpointGate(Option<Arc<Before>>);

/// What the snapshot before a turn needs, and whether it is taken.
#[derive(Debug)]
struct Before {
    conversation: Arc<Conversation>,
    emitter: TurnEmitter,
    turn_id: String,
    told: Arc<AtomicBool>,
    /// The snapshot after the turn before, which must be taken before this
    /// turn changes anything.
    previous: Option<Pending>,
    taken: OnceCell<()>,
}

impl CheckpointGate {
    /// A gate that takes nothing (checkpoints are off, or a compaction turn).
    pub(crate) fn open() -> CheckpointGate {
        CheckpointGate(None)
    }

    /// Whether a tool call went through (and so may have changed files).
    pub(crate) fn was_passed(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|before| before.taken.initialized())
    }

    /// Returns once the snapshot before the turn is taken (or could not be).
    pub(crate) async fn passed(&self) {
        if let Some(before) = &self.0 {
            before
                .taken
                .get_or_init(|| async {
                    if let Some(previous) = before.previous.clone() {
                        previous.finish().await;
                    }
                    take(
                        Arc::clone(&before.conversation),
                        Some(before.emitter.clone()),
                        Arc::clone(&before.told),
                        before.turn_id.clone(),
                        CheckpointStage::Before,
                    )
                    .await;
                })
                .await;
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

    /// The gate of turn `turn_id`'s tool calls.
    pub(crate) fn before(
        &self,
        conversation: &Arc<Conversation>,
        emitter: &TurnEmitter,
        turn_id: &str,
    ) -> CheckpointGate {
        if !self.enabled {
            return CheckpointGate::open();
        }
        CheckpointGate(Some(Arc::new(Before {
            conversation: Arc::clone(conversation),
            emitter: emitter.clone(),
            turn_id: turn_id.to_string(),
            told: Arc::clone(&self.told),
            previous: self.pending.clone(),
            taken: OnceCell::new(),
        })))
    }

    /// Start the snapshot after turn `turn_id`.
    pub(crate) fn after(&mut self, conversation: &Arc<Conversation>, turn_id: &str) {
        if !self.enabled {
            return;
        }
        let task = take(
            Arc::clone(conversation),
            None,
            Arc::clone(&self.told),
            turn_id.to_string(),
            CheckpointStage::After,
        );
        let now = Arc::new(Notify::new());
        let start = Arc::clone(&now);
        let handle = tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(AFTER_DELAY) => {}
                () = start.notified() => {}
            }
            task.await;
        });
        let done = async move {
            let _ = handle.await;
        }
        .boxed()
        .shared();
        self.pending = Some(Pending { done, now });
    }

    /// Take the snapshot after the last turn now, if it is not taken yet,
    /// and wait for it.
    pub(crate) async fn settle(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.finish().await;
        }
    }
}

/// Snapshot the session's workspace and record it as `stage` of `turn_id`;
/// if it cannot be, say so once (to the turn, when there is one).
async fn take(
    conversation: Arc<Conversation>,
    emitter: Option<TurnEmitter>,
    told: Arc<AtomicBool>,
    turn_id: String,
    stage: CheckpointStage,
) {
    let home = conversation.config.tiller_home.clone();
    let cwd = conversation.settings().cwd;
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

/// Snapshot the workspace of a session in `cwd`: its root and the tree.
fn snapshot(home: PathBuf, cwd: PathBuf) -> Result<(String, String), String> {
    let workspace = Workspace::open(&home, &workspace_root(&cwd)).map_err(|e| e.to_string())?;
    let tree = workspace.snapshot().map_err(|e| e.to_string())?;
    Ok((workspace.root().display().to_string(), tree))
}
