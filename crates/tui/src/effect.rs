//! What the UI asks of the server, and what comes back. The app's state
//! changes only in its own methods; everything that needs the server is an
//! [`Effect`] the runner carries out, whose [`Outcome`] comes back as an
//! event. That keeps the state machine testable without a server, and the
//! runner the only place that awaits.

use serde_json::Value;
use tiller_client::protocol::{
    McpServerElicitationAction, QueuedSubmission, RequestId, Thread, ThreadStartResponse,
};

use crate::cell::Tone;

/// A call to make.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// `thread/start` with the options' settings.
    StartThread,
    /// `thread/resume`.
    ResumeThread(String),
    /// `turn/start`.
    StartTurn {
        /// The message.
        text: String,
        /// Its `clientUserMessageId`.
        client_id: String,
    },
    /// `turn/steer`.
    Steer {
        /// The running turn.
        turn_id: String,
        /// The message.
        text: String,
        /// Its `clientUserMessageId`.
        client_id: String,
    },
    /// `thread/queue/add`.
    QueueAdd {
        /// The message.
        text: String,
        /// Its `clientUserMessageId`.
        client_id: String,
    },
    /// `thread/queue/delete` of an entry taken back into the composer.
    QueueTake {
        /// The entry.
        id: String,
        /// Its text.
        text: String,
    },
    /// `thread/queue/start`: run the queue now (the thread is idle).
    QueueStart,
    /// `thread/queue/list`.
    QueueRefresh,
    /// `turn/interrupt`.
    Interrupt {
        /// The turn.
        turn_id: String,
    },
    /// The answer to a server request.
    Answer {
        /// The request.
        request_id: RequestId,
        /// `accept`, `acceptForSession`, `decline` or `cancel`.
        decision: &'static str,
    },
    /// The answer to an MCP server's question.
    AnswerElicitation {
        /// The request.
        request_id: RequestId,
        /// `accept`, `decline` or `cancel`.
        action: McpServerElicitationAction,
        /// With `accept`: the fields, typed as its schema says.
        content: Option<Value>,
    },
    /// A JSON-RPC error for a server request this UI does not handle.
    Refuse {
        /// The request.
        request_id: RequestId,
    },
    /// `thread/list`, then each thread's last turn, for the picker.
    ListThreads,
    /// `model/list`.
    ListModels,
    /// `thread/settings/update`.
    Settings {
        /// A new model.
        model: Option<String>,
        /// A new approval policy.
        approval_policy: Option<String>,
    },
    /// `thread/compact/start`.
    Compact,
    /// `thread/revert` with the files.
    Revert {
        /// The first turn taken back.
        before_turn_id: String,
    },
    /// tiller's `thread/unrevert`.
    Unrevert,
    /// `thread/read` with the turns, after the thread changed under the UI.
    Reload,
}

/// A row of the session picker.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// The thread.
    pub id: String,
    /// Unix seconds of its last change.
    pub updated_at: i64,
    /// Its first prompt.
    pub preview: String,
    /// Its folder.
    pub cwd: String,
    /// How its last turn ended, once known.
    pub ended: Option<String>,
}

/// What came back.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A thread was started or resumed.
    ThreadOpened(Box<ThreadStartResponse>),
    /// A session could not be started or opened: the server's words.
    OpenFailed(String),
    /// The thread as it now stands (after another client's revert).
    Reloaded(Box<Thread>),
    /// This UI's `/undo` or `/redo` answered: the thread as it now stands
    /// (when it worked), and what happened, in words.
    Reverted {
        /// The thread, read again.
        thread: Option<Box<Thread>>,
        /// The report.
        report: String,
        /// Whether it worked.
        ok: bool,
    },
    /// `turn/start` answered with this turn.
    TurnStarted {
        /// The turn.
        turn_id: String,
    },
    /// `turn/start` failed: the message goes back to the composer.
    TurnNotStarted {
        /// The message.
        text: String,
        /// The server's words.
        error: String,
    },
    /// A steer came too late (or was refused): it goes to the queue.
    SteerRejected {
        /// The message.
        text: String,
        /// Its id.
        client_id: String,
    },
    /// A queue add failed: the message goes back to the composer.
    QueueAddFailed {
        /// The message.
        text: String,
        /// The server's words.
        error: String,
    },
    /// A queued entry was taken out for editing (`deleted`: it was still
    /// queued; otherwise it had started already).
    QueueTaken {
        /// Its text.
        text: String,
        /// Whether it was still there.
        deleted: bool,
    },
    /// The queue as it now is.
    Queue(Vec<QueuedSubmission>),
    /// The sessions for the picker, newest first.
    Sessions(Vec<SessionRow>),
    /// How a session's last turn ended.
    SessionEnded {
        /// The thread.
        id: String,
        /// In words.
        ended: String,
    },
    /// The models the provider lists.
    Models(Vec<String>),
    /// The settings changed.
    SettingsChanged {
        /// The new model, if it changed.
        model: Option<String>,
        /// The new approval policy, if it changed.
        approval_policy: Option<String>,
    },
    /// Something to show as a line.
    Notice(String, Tone),
}
