//! Taking turns back: `Op::Revert` (the history, and with `restore_files` the
//! workspace, back to before a turn) and `Op::Unrevert` (the last revert
//! taken back).
//!
//! Each writes its line (synced) and then reads the history back from the
//! file, as a resume would read it, so what the model is sent next is what a
//! resumed session would send. Files are restored before the line is written:
//! a crash in between leaves the files restored and the history not, and the
//! same revert, run again, finds nothing left to restore and writes the line.

use std::path::{Path, PathBuf};

use tiller_protocol::{
    CheckpointLine, FilesRestored, OpError, Reply, RevertLine, RolloutItem, TurnItemKind,
    UnrevertLine,
};
use tiller_rollout::{LoadedRollout, LoadedTurn};

use super::{Lifecycle, SessionActor};
use crate::checkpoint::Workspace;
use crate::history::History;

impl SessionActor {
    pub(super) async fn revert(
        &mut self,
        before_turn_id: String,
        restore_files: bool,
    ) -> Result<Reply, OpError> {
        let loaded = self.saved("reverting").await?;
        let Some(at) = loaded.turns.iter().position(|t| t.id == before_turn_id) else {
            return Err(refused(format!("no turn {before_turn_id} in this session")));
        };
        let mut files = None;
        // Only a turn that ran a tool changed files; the first of them has
        // the snapshot of the workspace before any of the turns touched it.
        let first_tool_turn = loaded.turns[at..].iter().find(|t| may_have_changed(t));
        if restore_files && let Some(first) = first_tool_turn {
            let Some(before) = first.checkpoint_before.clone() else {
                return Err(refused(format!(
                    "turn {} has no checkpoint (checkpoints were off, or git was missing, when it ran): its files cannot be restored",
                    first.id
                )));
            };
            let expected = left_by(&loaded.turns[at..], &before);
            let home = self.conversation.config.tiller_home.clone();
            let (root, target) = (PathBuf::from(&before.root), before.tree.clone());
            let report = blocking(move || {
                let workspace = Workspace::open(&home, &root)?;
                let expected = match expected {
                    Some(tree) => tree,
                    None => workspace.snapshot()?,
                };
                workspace.restore(&expected, &target)
            })
            .await?;
            files = Some((before, report));
        }
        self.write_and_reload(RolloutItem::Revert(RevertLine {
            before_turn_id: before_turn_id.clone(),
            files: files.as_ref().map(|(before, report)| FilesRestored {
                root: before.root.clone(),
                from: report.checkpoint.clone(),
                to: before.tree.clone(),
            }),
        }))
        .await?;
        Ok(Reply::Reverted {
            before_turn_id,
            files: files.map(|(_, report)| report),
        })
    }

    pub(super) async fn unrevert(&mut self) -> Result<Reply, OpError> {
        let loaded = self.saved("taking a revert back").await?;
        let Some(revert) = loaded.last_revert else {
            return Err(refused(
                "there is no revert to take back (none since the last turn)".to_string(),
            ));
        };
        let mut files = None;
        if let Some(restored) = revert.files {
            let home = self.conversation.config.tiller_home.clone();
            let root = PathBuf::from(&restored.root);
            files = Some(
                blocking(move || {
                    Workspace::open(&home, &root)?.restore(&restored.to, &restored.from)
                })
                .await?,
            );
        }
        self.write_and_reload(RolloutItem::Unrevert(UnrevertLine {
            before_turn_id: revert.before_turn_id.clone(),
        }))
        .await?;
        Ok(Reply::Reverted {
            before_turn_id: revert.before_turn_id,
            files,
        })
    }

    /// The session as saved, once no turn runs and everything recorded (the
    /// last turn's checkpoint too) is in the file.
    async fn saved(&mut self, doing: &str) -> Result<LoadedRollout, OpError> {
        if let Lifecycle::Running(turn) = &self.lifecycle {
            return Err(refused(format!(
                "turn {} is running; interrupt it before {doing}",
                turn.id
            )));
        }
        let Some(path) = self.conversation.rollout().map(|r| r.path().to_path_buf()) else {
            return Err(refused(
                "an ephemeral session keeps no turns to revert".to_string(),
            ));
        };
        self.checkpoints.settle().await;
        self.conversation
            .commit(Vec::new(), false)
            .await
            .map_err(|message| OpError::NotSaved { message })?;
        load(&path).await
    }

    /// Write `line` (synced), then take the history from the file.
    async fn write_and_reload(&mut self, line: RolloutItem) -> Result<(), OpError> {
        self.conversation
            .commit(vec![line], true)
            .await
            .map_err(|message| OpError::NotSaved { message })?;
        let path = self
            .conversation
            .rollout()
            .map(|r| r.path().to_path_buf())
            .unwrap_or_default();
        let loaded = load(&path).await?;
        *self.conversation.history() = History::from_items(loaded.items);
        Ok(())
    }
}

/// How `turns` left the workspace: the snapshot after the last of them that
/// ran a tool (the one `before` each of them had, if none did), or `None`
/// when a turn that ran tools has no snapshot after it (tiller died first):
/// then only the workspace as it is now can stand for it.
fn left_by(turns: &[LoadedTurn], before: &CheckpointLine) -> Option<String> {
    let mut left = Some(before.tree.clone());
    for turn in turns {
        if may_have_changed(turn) {
            left = turn
                .checkpoint_after
                .as_ref()
                .filter(|after| after.root == before.root)
                .map(|after| after.tree.clone());
        }
    }
    left
}

/// Whether `turn` ran a tool (and so may have changed files). Its snapshot
/// before is the surest sign: it is in the file before the first tool runs,
/// while the tool's own item may not be when tiller was killed at once. A
/// tool's item is the sign when checkpoints were off.
fn may_have_changed(turn: &LoadedTurn) -> bool {
    turn.checkpoint_before.is_some()
        || turn.items.iter().any(|item| {
            matches!(
                item.kind,
                TurnItemKind::CommandExecution { .. } | TurnItemKind::FileChange { .. }
            )
        })
}

fn refused(message: String) -> OpError {
    OpError::Refused { message }
}

async fn load(path: &Path) -> Result<LoadedRollout, OpError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || tiller_rollout::load(&path))
        .await
        .map_err(|e| e.to_string())
        .and_then(|loaded| loaded.map_err(|e| e.to_string()))
        .map_err(|message| OpError::NotSaved { message })
}

/// Run a checkpoint operation off the actor's thread; its error refuses the op.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::checkpoint::CheckpointError> + Send + 'static,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())
        .and_then(|done| done.map_err(|e| format!("the files were not restored: {e}")))
        .map_err(refused)
}
