//! Reading a rollout back.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::file::{LockWait, LockedFile, OpenError, open_locked, open_regular, read_all};
use tiller_protocol::{
    CheckpointLine, CheckpointStage, ErrorInfo, ItemPhase, LifecycleEvent, QueueSnapshot,
    QueuedInput, ResponseItem, RevertLine, RolloutItem, RolloutLine, SessionMeta, TurnAbortReason,
    TurnItem,
};

/// How the last turn in a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastTurn {
    /// Completed.
    Completed,
    /// Interrupted (also: closed as interrupted on resume).
    Interrupted,
    /// Replaced by a new turn.
    Replaced,
    /// Failed.
    Failed,
    /// Started and never ended: tiller was killed during it.
    CutOff,
}

impl LastTurn {
    /// A word for listings.
    pub fn as_str(self) -> &'static str {
        match self {
            LastTurn::Completed => "completed",
            LastTurn::Interrupted => "interrupted",
            LastTurn::Replaced => "replaced",
            LastTurn::Failed => "failed",
            LastTurn::CutOff => "cut off",
        }
    }
}

/// A rollout as read from disk.
#[derive(Debug, Clone)]
pub struct LoadedRollout {
    /// The file.
    pub path: PathBuf,
    /// Its first line.
    pub meta: SessionMeta,
    /// The history, in order.
    pub items: Vec<ResponseItem>,
    /// A turn that started and has no terminal line.
    pub open_turn: Option<String>,
    /// How the last turn ended, if there was one.
    pub last_turn: Option<LastTurn>,
    /// The first user message's text.
    pub first_prompt: Option<String>,
    /// Every turn, in order, with the items recorded during it.
    pub turns: Vec<LoadedTurn>,
    /// The queue of messages waiting for the next turn (the last snapshot).
    pub queue: QueueSnapshot,
    /// Every entry any saved queue held, in the order first saved: also those
    /// that have run or were deleted since, so a front end can answer a
    /// repeated request for one of them as it did the first time.
    pub queued_ever: Vec<QueuedInput>,
    /// The revert that `Op::Unrevert` would take back: the last one, when
    /// no turn has started since.
    pub last_revert: Option<RevertLine>,
    /// Lines that were skipped, each naming the file and line.
    pub warnings: Vec<String>,
}

/// One turn as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedTurn {
    /// The turn's id.
    pub id: String,
    /// How it ended; `CutOff` if it has no terminal line.
    pub status: LastTurn,
    /// The history items recorded between its start and its end.
    pub history: Vec<ResponseItem>,
    /// What the turn showed, in order, each as it last was (completed, or as
    /// it started when it never completed). A rollout written before items were
    /// recorded gets them derived from its history.
    pub items: Vec<TurnItem>,
    /// The items that started and never completed (a turn cut off by a crash).
    pub open_items: Vec<TurnItem>,
    /// The error of a failed turn.
    pub error: Option<ErrorInfo>,
    /// The client's id for the request that started it.
    pub client_message_id: Option<String>,
    /// The workspace as it was before the turn ran anything, if a
    /// checkpoint was taken.
    pub checkpoint_before: Option<CheckpointLine>,
    /// The workspace as the turn left it, if a checkpoint was taken.
    pub checkpoint_after: Option<CheckpointLine>,
}

/// What a revert took out of the conversation, kept while the file is read
/// in case an `unrevert` line brings it back.
struct Reverted {
    line: RevertLine,
    items: Vec<ResponseItem>,
    turns: Vec<LoadedTurn>,
    shown: Vec<ShownItems>,
    history_starts: Vec<usize>,
    open_turn: Option<String>,
    last_turn: Option<LastTurn>,
}

/// A turn's recorded items while the file is read.
#[derive(Debug, Default)]
struct ShownItems {
    order: Vec<TurnItem>,
    at: std::collections::HashMap<String, usize>,
    completed: HashSet<String>,
}

impl ShownItems {
    fn record(&mut self, phase: ItemPhase, item: TurnItem) {
        if phase == ItemPhase::Completed {
            self.completed.insert(item.id.clone());
        }
        match self.at.get(&item.id) {
            Some(&at) => self.order[at] = item,
            None => {
                self.at.insert(item.id.clone(), self.order.len());
                self.order.push(item);
            }
        }
    }

    /// Every item, and those never completed.
    fn finish(self) -> (Vec<TurnItem>, Vec<TurnItem>) {
        let open = self
            .order
            .iter()
            .filter(|item| !self.completed.contains(&item.id))
            .cloned()
            .collect();
        (self.order, open)
    }
}

/// Why a rollout could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The file could not be read (or is not a regular file).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("{}: the session file is empty (tiller was stopped before it wrote anything)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file has no `session_meta` line.
    #[error("{}: not a tiller session: it has no session_meta line", path.display())]
    NoMeta {
        /// The file.
        path: PathBuf,
    },
    /// Another session has the file open.
    #[error("session {id} is in use by {}; wait until it ends or stop it", holder(*pid))]
    InUse {
        /// The session's id.
        id: String,
        /// The file.
        path: PathBuf,
        /// The process that has it open, if known.
        pid: Option<u32>,
    },
}

fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(pid) if pid == std::process::id() => format!("this tiller process (pid {pid})"),
        Some(pid) => format!("another tiller process (pid {pid})"),
        None => "another tiller process".to_string(),
    }
}

/// A rollout read for a session to continue it: its content, and the file,
/// locked for that session (see [`open`]).
#[derive(Debug)]
pub struct OpenRollout {
    /// What the file holds.
    pub loaded: LoadedRollout,
    file: LockedFile,
}

impl OpenRollout {
    /// The content, and the locked file for the session that continues it.
    pub fn into_parts(self) -> (LoadedRollout, LockedFile) {
        (self.loaded, self.file)
    }
}

/// Read `path` (for listing and inspection; see [`open`] to continue a
/// session). Only a regular file is read, and never with a blocking open. A
/// truncated last line (a crash mid-write) is skipped with a warning; so is an
/// unreadable line elsewhere (bad JSON or bad UTF-8), with its line number.
pub fn load(path: &Path) -> Result<LoadedRollout, RolloutError> {
    let io = |source| RolloutError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = open_regular(path, false).map_err(io)?;
    let bytes = read_all(&file).map_err(io)?;
    parse(path, &bytes)
}

/// Open `path` to continue its session: take the file's exclusive lock (or
/// fail with [`RolloutError::InUse`], or wait, per `wait`), then read it. The
/// lock is held by the session the [`OpenRollout`] is given to.
pub fn open(path: &Path, wait: LockWait) -> Result<OpenRollout, RolloutError> {
    let io = |source| RolloutError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match open_locked(path, wait) {
        Ok(file) => file,
        Err(OpenError::Io(source)) => return Err(io(source)),
        Err(OpenError::InUse { pid }) => {
            return Err(RolloutError::InUse {
                id: crate::store::session_id_of(path).unwrap_or("?").to_string(),
                path: path.to_path_buf(),
                pid,
            });
        }
    };
    let bytes = read_all(file.file()).map_err(io)?;
    let loaded = parse(path, &bytes)?;
    Ok(OpenRollout { loaded, file })
}

/// A line's envelope, with its payload left unparsed.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    payload: &'a serde_json::value::RawValue,
}

/// What one line records. The lines a session writes most (`response_item`
/// and `item`) are read straight into their payload's type; any other line,
/// or one that does not read that way, goes through `RolloutLine` (and its
/// error is the one reported).
fn parse_line(line: &[u8]) -> Result<RolloutItem, serde_json::Error> {
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(line) {
        let payload = envelope.payload.get();
        let fast = match envelope.kind {
            "response_item" => serde_json::from_str(payload)
                .map(RolloutItem::ResponseItem)
                .ok(),
            "item" => serde_json::from_str(payload).map(RolloutItem::Item).ok(),
            _ => None,
        };
        if let Some(item) = fast {
            return Ok(item);
        }
    }
    serde_json::from_slice::<RolloutLine>(line).map(|line| line.item)
}

/// The rollout in `bytes`, read from `path`.
fn parse(path: &Path, bytes: &[u8]) -> Result<LoadedRollout, RolloutError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(RolloutError::Empty {
            path: path.to_path_buf(),
        });
    }
    let ends_clean = bytes.ends_with(b"\n");
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if ends_clean {
        // `split` yields an empty piece after the final newline.
        lines.pop();
    }
    let mut meta = None;
    let mut items = Vec::new();
    let mut open_turn: Option<String> = None;
    let mut last_turn = None;
    let mut warnings = Vec::new();
    let mut turns: Vec<LoadedTurn> = Vec::new();
    // The items of each turn, by position in `turns`.
    let mut shown: Vec<ShownItems> = Vec::new();
    let mut queue = QueueSnapshot::default();
    let mut queued_ever: Vec<QueuedInput> = Vec::new();
    let mut queued_ids: HashSet<String> = HashSet::new();
    // Where each turn's history begins in `items`, by position in `turns`.
    let mut history_starts: Vec<usize> = Vec::new();
    // The reverts that can still be taken back, the last on top.
    let mut reverted: Vec<Reverted> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = match parse_line(line) {
            Ok(parsed) => parsed,
            Err(e) => {
                let is_last = index + 1 == lines.len();
                warnings.push(if is_last && !ends_clean {
                    format!(
                        "{}:{}: the last line was cut off (tiller stopped mid-write); skipped",
                        path.display(),
                        index + 1
                    )
                } else {
                    format!(
                        "{}:{}: unreadable line skipped ({e})",
                        path.display(),
                        index + 1
                    )
                });
                continue;
            }
        };
        match parsed {
            RolloutItem::SessionMeta(m) => {
                if meta.is_none() {
                    meta = Some(m);
                }
            }
            RolloutItem::TurnContext(_) => {}
            RolloutItem::Compacted(compacted) => {
                items.clear();
                items.push(ResponseItem::user_text(compacted.message));
                // The turns before keep their history for the record; what
                // the model reads starts here.
                history_starts.fill(0);
            }
            RolloutItem::Revert(revert) => {
                if let Some(at) = turns.iter().position(|t| t.id == revert.before_turn_id) {
                    reverted.push(Reverted {
                        line: revert,
                        items: items.split_off(history_starts[at]),
                        turns: turns.split_off(at),
                        shown: shown.split_off(at),
                        history_starts: history_starts.split_off(at),
                        open_turn: open_turn.take(),
                        last_turn,
                    });
                    last_turn = turns.last().map(|t| t.status);
                } else {
                    warnings.push(format!(
                        "{}:{}: a revert to before turn {}, which is not in the file; skipped",
                        path.display(),
                        index + 1,
                        revert.before_turn_id
                    ));
                }
            }
            RolloutItem::Unrevert(unrevert) => match reverted.pop() {
                Some(back) if back.line.before_turn_id == unrevert.before_turn_id => {
                    items.extend(back.items);
                    turns.extend(back.turns);
                    shown.extend(back.shown);
                    history_starts.extend(back.history_starts);
                    open_turn = back.open_turn;
                    last_turn = back.last_turn;
                }
                other => {
                    reverted.extend(other);
                    warnings.push(format!(
                        "{}:{}: an unrevert of turn {}, which is not the last revert; skipped",
                        path.display(),
                        index + 1,
                        unrevert.before_turn_id
                    ));
                }
            },
            RolloutItem::Checkpoint(checkpoint) => {
                if let Some(turn) = turns.iter_mut().rev().find(|t| t.id == checkpoint.turn_id) {
                    match checkpoint.stage {
                        CheckpointStage::Before => turn.checkpoint_before = Some(checkpoint),
                        CheckpointStage::After => turn.checkpoint_after = Some(checkpoint),
                    }
                }
            }
            RolloutItem::Queue(snapshot) => {
                for entry in &snapshot.items {
                    if queued_ids.insert(entry.id.clone()) {
                        queued_ever.push(entry.clone());
                    }
                }
                queue = snapshot;
            }
            RolloutItem::ResponseItem(item) => {
                if open_turn.is_some()
                    && let Some(turn) = turns.last_mut()
                {
                    turn.history.push(item.clone());
                }
                items.push(item);
            }
            RolloutItem::Item(recorded) => {
                if let Some(at) = turns.iter().rposition(|t| t.id == recorded.turn_id) {
                    shown[at].record(recorded.phase, recorded.item);
                }
            }
            RolloutItem::Event(event) => {
                let ended = match &event {
                    LifecycleEvent::TurnStarted {
                        turn_id,
                        client_message_id,
                    } => {
                        open_turn = Some(turn_id.clone());
                        // A new turn: the reverts before it stay.
                        reverted.clear();
                        history_starts.push(items.len());
                        turns.push(LoadedTurn {
                            id: turn_id.clone(),
                            status: LastTurn::CutOff,
                            history: Vec::new(),
                            items: Vec::new(),
                            open_items: Vec::new(),
                            error: None,
                            client_message_id: client_message_id.clone(),
                            checkpoint_before: None,
                            checkpoint_after: None,
                        });
                        shown.push(ShownItems::default());
                        last_turn = Some(LastTurn::CutOff);
                        None
                    }
                    LifecycleEvent::TurnCompleted { .. } => Some(LastTurn::Completed),
                    LifecycleEvent::TurnAborted { reason, .. } => Some(match reason {
                        TurnAbortReason::Interrupted => LastTurn::Interrupted,
                        TurnAbortReason::Replaced => LastTurn::Replaced,
                    }),
                    LifecycleEvent::TurnFailed { .. } => Some(LastTurn::Failed),
                };
                if let Some(ended) = ended
                    && open_turn.as_deref() == Some(event.turn_id())
                {
                    open_turn = None;
                    last_turn = Some(ended);
                    if let Some(turn) = turns.last_mut() {
                        turn.status = ended;
                        if let LifecycleEvent::TurnFailed { error, .. } = &event {
                            turn.error = Some(error.clone());
                        }
                    }
                }
            }
        }
    }
    let meta = meta.ok_or_else(|| RolloutError::NoMeta {
        path: path.to_path_buf(),
    })?;
    for (turn, shown) in turns.iter_mut().zip(shown) {
        if shown.order.is_empty() {
            turn.items = crate::legacy::items_from_history(&turn.id, &turn.history);
        } else {
            (turn.items, turn.open_items) = shown.finish();
        }
    }
    let first_prompt = items.iter().find_map(|item| match item {
        ResponseItem::Message { role, content } if role == "user" => {
            content.first().map(|c| c.text().to_string())
        }
        _ => None,
    });
    Ok(LoadedRollout {
        path: path.to_path_buf(),
        meta,
        items,
        open_turn,
        last_turn,
        first_prompt,
        turns,
        queue,
        queued_ever,
        last_revert: reverted.pop().map(|r| r.line),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = r#"{"timestamp":"t","type":"session_meta","payload":{"id":"s","created":"t","cwd":"/","model":"m","provider":"p","tiller_version":"0"}}"#;
    const USER: &str = r#"{"timestamp":"t","type":"response_item","payload":{"type":"message","role":"user","content":[{"type":"input_text","text":"hello"}]}}"#;
    const STARTED: &str =
        r#"{"timestamp":"t","type":"event","payload":{"type":"turn_started","turn_id":"t1"}}"#;
    const DONE: &str = r#"{"timestamp":"t","type":"event","payload":{"type":"turn_completed","turn_id":"t1","last_agent_message":null,"usage":{"input_tokens":0,"cached_input_tokens":0,"output_tokens":0,"reasoning_output_tokens":0}}}"#;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollout.jsonl");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_revert_drops_the_turns_from_the_one_it_names() {
        let second = |line: &str| line.replace("t1", "t2").replace("hello", "again");
        let revert = r#"{"timestamp":"t","type":"revert","payload":{"before_turn_id":"t2"}}"#;
        let unknown = r#"{"timestamp":"t","type":"revert","payload":{"before_turn_id":"t9"}}"#;
        let (_dir, path) = write(&format!(
            "{META}\n{STARTED}\n{USER}\n{DONE}\n{}\n{}\n{}\n{revert}\n{unknown}\n",
            second(STARTED),
            second(USER),
            second(DONE)
        ));
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.turns.len(), 1);
        assert_eq!(loaded.turns[0].id, "t1");
        assert_eq!(loaded.items.len(), 1, "{:?}", loaded.items);
        assert_eq!(loaded.last_turn, Some(LastTurn::Completed));
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("t9"));
    }

    #[test]
    fn an_unrevert_brings_the_turns_back_until_a_turn_starts() {
        let second = |line: &str| line.replace("t1", "t2").replace("hello", "again");
        let checkpoint = |stage: &str| {
            format!(
                r#"{{"timestamp":"t","type":"checkpoint","payload":{{"turn_id":"t2","stage":"{stage}","root":"/w","tree":"{stage}-tree"}}}}"#
            )
        };
        let revert = r#"{"timestamp":"t","type":"revert","payload":{"before_turn_id":"t2","files":{"root":"/w","from":"now","to":"before-tree"}}}"#;
        let unrevert = r#"{"timestamp":"t","type":"unrevert","payload":{"before_turn_id":"t2"}}"#;
        let two_turns = format!(
            "{META}\n{STARTED}\n{USER}\n{DONE}\n{}\n{}\n{}\n{}\n{}\n",
            second(STARTED),
            checkpoint("before"),
            second(USER),
            second(DONE),
            checkpoint("after"),
        );
        let (_dir, path) = write(&format!("{two_turns}{revert}\n"));
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.turns.len(), 1);
        let last = loaded.last_revert.expect("the revert can be taken back");
        assert_eq!(last.files.unwrap().from, "now");

        let (_dir, path) = write(&format!("{two_turns}{revert}\n{unrevert}\n"));
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.turns.len(), 2);
        assert_eq!(loaded.items.len(), 2);
        assert_eq!(loaded.last_turn, Some(LastTurn::Completed));
        assert!(loaded.last_revert.is_none());
        let turn = &loaded.turns[1];
        assert_eq!(turn.checkpoint_before.as_ref().unwrap().tree, "before-tree");
        assert_eq!(turn.checkpoint_after.as_ref().unwrap().tree, "after-tree");

        // A turn after the revert: it can no longer be taken back.
        let third = |line: &str| line.replace("t1", "t3");
        let (_dir, path) = write(&format!(
            "{two_turns}{revert}\n{}\n{}\n{unrevert}\n",
            third(STARTED),
            third(DONE)
        ));
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.turns.len(), 2, "t1 and t3");
        assert!(
            loaded.warnings[0].contains("not the last revert"),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn a_truncated_last_line_is_skipped_with_a_warning() {
        let (_dir, path) = write(&format!(
            "{META}\n{STARTED}\n{USER}\n{{\"timestamp\":\"t\",\"ty"
        ));
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.items.len(), 1);
        assert_eq!(loaded.open_turn.as_deref(), Some("t1"));
        assert_eq!(loaded.last_turn, Some(LastTurn::CutOff));
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains(":4:") && loaded.warnings[0].contains("cut off"));
    }

    #[test]
    fn a_garbage_line_in_the_middle_is_skipped_naming_file_and_line() {
        let (_dir, path) = write(&format!(
            "{META}\n{STARTED}\nnot json at all\n{USER}\n{DONE}\n"
        ));
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.items.len(), 1);
        assert_eq!(loaded.first_prompt.as_deref(), Some("hello"));
        assert_eq!(loaded.last_turn, Some(LastTurn::Completed));
        assert_eq!(loaded.open_turn, None);
        assert_eq!(loaded.warnings.len(), 1);
        assert!(
            loaded.warnings[0].starts_with(&format!("{}:3:", path.display())),
            "{}",
            loaded.warnings[0]
        );
    }

    #[test]
    fn every_entry_ever_saved_in_a_queue_is_kept_besides_the_last_queue() {
        let queue_line = |ids: &[&str]| {
            let items = ids
                .iter()
                .map(|id| QueuedInput {
                    id: (*id).to_string(),
                    client_message_id: Some(format!("client-{id}")),
                    items: Vec::new(),
                    original: None,
                    metadata: None,
                })
                .collect();
            let line = RolloutLine {
                timestamp: "t".to_string(),
                item: RolloutItem::Queue(QueueSnapshot { items }),
            };
            serde_json::to_string(&line).unwrap()
        };
        // q1 queued, then q2; q1 ran; q3 queued; everything ran or was deleted.
        let (_dir, path) = write(&format!(
            "{META}\n{}\n{}\n{}\n{}\n{}\n",
            queue_line(&["q1"]),
            queue_line(&["q1", "q2"]),
            queue_line(&["q2"]),
            queue_line(&["q2", "q3"]),
            queue_line(&[]),
        ));
        let loaded = load(&path).unwrap();
        assert!(loaded.queue.items.is_empty());
        let ever: Vec<&str> = loaded.queued_ever.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ever, ["q1", "q2", "q3"]);
        assert_eq!(
            loaded.queued_ever[2].client_message_id.as_deref(),
            Some("client-q3")
        );
    }

    #[test]
    fn an_empty_file_is_not_a_session() {
        let (_dir, path) = write("");
        let error = load(&path).unwrap_err();
        assert!(matches!(error, RolloutError::Empty { .. }));
        assert!(error.to_string().contains("empty"), "{error}");
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.jsonl");
        let error = load(&path).unwrap_err();
        assert!(error.to_string().contains("gone.jsonl"), "{error}");
    }
}
