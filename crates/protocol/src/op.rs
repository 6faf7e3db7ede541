//! What a client can ask of a session, and what it gets back.

use serde::{Deserialize, Serialize};

use crate::{QueueSnapshot, UserInput};

/// A request to a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// Start a turn. If a turn is running, it ends with
    /// `TurnAborted { reason: Replaced }` first.
    StartTurn {
        /// The input that starts the turn: one message, or several (a queue
        /// drained into one turn), each a user message item of its own.
        input: Vec<UserMessage>,
        /// Makes the request idempotent: the same id again is answered with the
        /// same turn id and starts nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_message_id: Option<String>,
    },
    /// Add input to the running turn.
    Steer {
        /// The input to add.
        items: Vec<UserInput>,
        /// The turn the client believes is running.
        expected_turn_id: String,
        /// Makes the request idempotent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_message_id: Option<String>,
    },
    /// End the running turn now. With no running turn it does nothing.
    Interrupt,
    /// Answer an approval request.
    Approval {
        /// The tool call the request was about.
        call_id: String,
        /// The answer.
        decision: ReviewDecision,
    },
    /// Record the queue of messages waiting for the next turn in the rollout
    /// (durably, before the reply). The engine keeps no queue itself.
    SaveQueue {
        /// The whole queue as it stands now.
        queue: QueueSnapshot,
    },
    /// Change what the next turns use. A running turn keeps what it
    /// started with; the change applies from the next turn on.
    UpdateSettings {
        /// What changes; an absent field stays as it is.
        settings: SettingsUpdate,
    },
    /// Compact the conversation (no turn may run): a turn in which the model
    /// summarises the history, which then replaces it (a `compacted` line).
    /// The turn cannot be steered. Answered with [`Reply::TurnStarted`].
    Compact,
    /// Take the conversation back to before a turn (no turn may run): that
    /// turn and every later one leave the history the model is sent, durably
    /// (a `revert` line). With `restore_files`, the files those turns changed
    /// are put back as they were before the turn (from its checkpoint); a
    /// file changed since by someone else is left alone and reported.
    Revert {
        /// The first turn taken back.
        before_turn_id: String,
        /// Also put the workspace back.
        #[serde(default)]
        restore_files: bool,
    },
    /// Take back the last revert, when no turn has started since: its turns
    /// are in the conversation again, and the files it restored are as they
    /// were before it.
    Unrevert,
    /// End the session: abort any running turn, then stop.
    Shutdown,
}

/// A change of a session's settings for its next turns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsUpdate {
    /// The model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The folder tools run in (an existing folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// `never`, `on-failure`, `on-request` or `untrusted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_policy: Option<String>,
    /// A whole new sandbox policy: `read-only`, `workspace-write` or
    /// `danger-full-access`, with the next four fields for
    /// `workspace-write` (what is not given is off or empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_mode: Option<String>,
    /// Folders writable besides the session's (absolute paths).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable_roots: Option<Vec<String>>,
    /// Whether commands may use the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_access: Option<bool>,
    /// `$TMPDIR` is not writable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_tmpdir_env_var: Option<bool>,
    /// `/tmp` is not writable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_slash_tmp: Option<bool>,
    /// The reasoning effort sent to the model (`low`, `medium`, `high`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// The reasoning summary asked of the model: `auto`, `concise`,
    /// `detailed` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

impl Op {
    /// `StartTurn` with one message of `items`, no client ids.
    pub fn start_turn(items: Vec<UserInput>) -> Op {
        Op::StartTurn {
            input: vec![UserMessage::new(items)],
            client_message_id: None,
        }
    }

    /// `StartTurn` with one message of `items`, the request and the message
    /// both under the client's id `client_message_id`.
    pub fn start_turn_with_id(items: Vec<UserInput>, client_message_id: String) -> Op {
        Op::StartTurn {
            input: vec![UserMessage {
                items,
                client_message_id: Some(client_message_id.clone()),
            }],
            client_message_id: Some(client_message_id),
        }
    }
}

/// One message of a turn's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMessage {
    /// What it says.
    pub items: Vec<UserInput>,
    /// The client's id for it, shown with its user message item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
}

impl UserMessage {
    /// A message of `items` with no client id.
    pub fn new(items: Vec<UserInput>) -> UserMessage {
        UserMessage {
            items,
            client_message_id: None,
        }
    }

    /// What the model reads of it: its items' text, a line each.
    pub fn model_text(&self) -> String {
        self.items
            .iter()
            .map(|item| item.model_text())
            .filter(|text| !text.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A person's answer to an approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// Run it this once.
    Approved,
    /// Run it, and the same command again without asking for the rest of the session.
    ApprovedForSession,
    /// Do not run it; the model is told it was denied.
    Denied,
    /// Do not run it and interrupt the turn; the model never sees a denial.
    Abort,
}

/// The successful answer to an [`Op`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// A turn was started (or, for a repeated `client_message_id`, had been).
    TurnStarted {
        /// The new turn's id.
        turn_id: String,
    },
    /// Steer input was accepted into the running turn.
    Steered {
        /// The turn the input was added to.
        turn_id: String,
    },
    /// The op was taken; nothing more to say (interrupt, approval, shutdown).
    Done,
    /// The history was reverted (or a revert taken back).
    Reverted {
        /// The first turn taken back (or brought back).
        before_turn_id: String,
        /// What happened to the files, when they were restored.
        files: Option<FilesReport>,
    },
}

/// What a revert did to the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FilesReport {
    /// The folder restored.
    pub root: String,
    /// Files written back (their content as it was), relative to `root`.
    pub restored: Vec<String>,
    /// Files removed (the turns created them), relative to `root`.
    pub removed: Vec<String>,
    /// Files changed since the turns by someone else: left as they are.
    pub conflicts: Vec<String>,
    /// The snapshot of the workspace as it was just before the revert.
    pub checkpoint: String,
}

/// Why an [`Op`] was refused. A refused op changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OpError {
    /// Steer with no running turn.
    NoActiveTurn,
    /// Steer naming a turn that is not the running one.
    TurnMismatch {
        /// The id the client sent.
        expected: String,
        /// The running turn's id.
        actual: String,
    },
    /// No input, or only empty text.
    EmptyInput,
    /// An approval for a call that is not waiting for one.
    UnknownApproval {
        /// The call id the client sent.
        call_id: String,
    },
    /// The session has shut down.
    SessionClosed,
    /// What the op promises could not be saved (the rollout could not be
    /// written: a full disk, an I/O error). Nothing was done.
    NotSaved {
        /// The file and the error, in words.
        message: String,
    },
    /// Steer for a turn that takes none (a compaction).
    NotSteerable {
        /// The running turn.
        turn_id: String,
        /// What kind of turn it is: `compact`.
        kind: String,
    },
    /// What was asked cannot be done in the session's state (a revert
    /// while a turn runs, of a turn that is not there). Nothing changed.
    Refused {
        /// Why, in words.
        message: String,
    },
    /// A settings change that cannot apply (a folder that is not there, an
    /// unknown approval policy). Nothing changed.
    InvalidSettings {
        /// What is wrong, in words.
        message: String,
    },
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::NoActiveTurn => write!(f, "no turn is running"),
            OpError::TurnMismatch { expected, actual } => {
                write!(f, "turn {expected} is not the running turn ({actual})")
            }
            OpError::EmptyInput => write!(f, "the input is empty"),
            OpError::UnknownApproval { call_id } => {
                write!(f, "no approval is pending for call {call_id}")
            }
            OpError::SessionClosed => write!(f, "the session has shut down"),
            OpError::NotSteerable { turn_id, kind } => {
                write!(f, "turn {turn_id} is a {kind} turn and cannot be steered")
            }
            OpError::NotSaved { message }
            | OpError::InvalidSettings { message }
            | OpError::Refused { message } => {
                write!(f, "{message}")
            }
        }
    }
}

impl std::error::Error for OpError {}
