//! The UI's state and what a key does to it. Everything shown is derived
//! from protocol items and notifications ([`server`]); what a key asks of the
//! server leaves as an [`Effect`]. No method here awaits.

mod elicitation;
mod keys;
mod mcp;
mod overlay;
mod server;
#[cfg(test)]
mod tests;

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use tiller_client::protocol::{
    McpServerStatusUpdatedNotification, QueuedSubmission, SandboxPolicy, ThreadTokenUsage,
};

use crate::cell::{Cell, CellKind, Tone};
use crate::composer::Composer;
use crate::effect::Effect;
use crate::transcript::Transcript;

pub use elicitation::{Elicitation, Input, TextKind};
pub use mcp::{McpProgress, McpServer};
pub use overlay::{
    Approval, ApprovalKind, Choice, ChoiceKind, Overlay, Pager, Picker, WaitingRequest,
};
pub use server::input_text;

/// What the thread is doing, as far as this UI knows.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnState {
    /// Nothing runs.
    Idle,
    /// `turn/start` was sent; its id is not known yet.
    Starting {
        /// When Enter was pressed.
        since: Instant,
    },
    /// A turn runs.
    Running {
        /// Its id.
        id: String,
        /// When it started (as seen here).
        since: Instant,
    },
}

/// A steer sent (or about to be) that the model has not seen yet.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingSteer {
    /// The message.
    pub text: String,
    /// Its `clientUserMessageId`.
    pub client_id: String,
    /// Whether `turn/steer` went out (it waits for the turn's id otherwise).
    pub sent: bool,
    /// The user message item the server showed when it accepted the steer:
    /// held back from the transcript until the model has it (a model item
    /// starts after it), or dropped when the text comes back unsent.
    pub item: Option<(String, CellKind)>,
}

/// The thread's settings, as the server reported them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThreadInfo {
    /// Its id.
    pub id: String,
    /// The model.
    pub model: String,
    /// The folder.
    pub cwd: String,
    /// `never`, `on-request`, `on-failure` or `untrusted`.
    pub approval_policy: String,
    /// The sandbox commands run in, as [`sandbox_label`] says it.
    pub sandbox: String,
}

/// A sandbox policy in a few words, by the names `--sandbox` takes:
/// `workspace-write`, `workspace-write + network`, `read-only`,
/// `danger-full-access` (or `external`: the server runs in one of its own).
pub fn sandbox_label(policy: &SandboxPolicy) -> String {
    match policy {
        SandboxPolicy::DangerFullAccess => "danger-full-access".to_owned(),
        SandboxPolicy::ExternalSandbox { .. } => "external".to_owned(),
        SandboxPolicy::ReadOnly {
            network_access: false,
        } => "read-only".to_owned(),
        SandboxPolicy::ReadOnly {
            network_access: true,
        } => "read-only + network".to_owned(),
        SandboxPolicy::WorkspaceWrite { network_access, .. } => {
            if *network_access {
                "workspace-write + network".to_owned()
            } else {
                "workspace-write".to_owned()
            }
        }
    }
}

/// The whole UI state.
#[derive(Debug)]
pub struct App {
    /// The thread shown, once opened.
    pub thread: Option<ThreadInfo>,
    /// The conversation.
    pub transcript: Transcript,
    /// What runs.
    pub turn: TurnState,
    /// Why this UI interrupted the running turn, for its end line.
    interrupting: Option<String>,
    /// Esc was pressed before the turn's id was known.
    interrupt_when_started: bool,
    /// Steers the model has not seen yet.
    pub pending_steers: Vec<PendingSteer>,
    /// The server's queue for the thread.
    pub queue: Vec<QueuedSubmission>,
    /// What is being typed.
    pub composer: Composer,
    /// The highlighted entry of the `/` menu.
    pub menu_index: usize,
    /// The window over the screen, if one is open.
    pub overlay: Option<Overlay>,
    /// Approvals and MCP servers' questions waiting behind the one shown.
    pub requests: VecDeque<WaitingRequest>,
    /// The thread's MCP servers, as last reported, in the order first seen.
    pub mcp_servers: Vec<McpServer>,
    /// Reports about other threads' servers (the one being opened may
    /// report before its answer is in), the newest few.
    mcp_elsewhere: VecDeque<McpServerStatusUpdatedNotification>,
    /// The running MCP call's last progress message.
    pub mcp_progress: Option<McpProgress>,
    /// Ctrl+C was pressed once on an idle, empty composer.
    pub quit_armed: bool,
    /// The thread's token counts.
    pub tokens: Option<ThreadTokenUsage>,
    /// The last turn's diff (`turn/diff/updated`).
    pub last_diff: Option<String>,
    /// The turns shown, oldest first (for `/undo`).
    pub turn_ids: Vec<String>,
    /// Turns that ended: their late events are dropped.
    finished: HashSet<String>,
    /// A short message in the status line.
    pub flash: Option<String>,
    /// A message from the command line, sent once the first session opens.
    pub first_prompt: Option<String>,
    /// This UI's reverts whose `thread/reverted` has not come yet: their
    /// own answer shows the thread again, so the notification need not.
    own_reverts: usize,
    /// The transcript view's height at the last frame (for paging).
    pub view_height: usize,
    /// The transcript view's width at the last frame.
    pub view_width: u16,
    effects: Vec<Effect>,
    /// Set when the UI should end, with the exit code.
    pub exit: Option<i32>,
    next_id: u64,
    /// What this UI's messages are named after (unique per run).
    id_prefix: String,
}

impl App {
    /// A UI with nothing open yet.
    pub fn new(id_prefix: impl Into<String>) -> App {
        App {
            thread: None,
            transcript: Transcript::default(),
            turn: TurnState::Idle,
            interrupting: None,
            interrupt_when_started: false,
            pending_steers: Vec::new(),
            queue: Vec::new(),
            composer: Composer::default(),
            menu_index: 0,
            overlay: None,
            requests: VecDeque::new(),
            mcp_servers: Vec::new(),
            mcp_elsewhere: VecDeque::new(),
            mcp_progress: None,
            quit_armed: false,
            tokens: None,
            last_diff: None,
            turn_ids: Vec::new(),
            finished: HashSet::new(),
            flash: None,
            first_prompt: None,
            own_reverts: 0,
            view_height: 20,
            view_width: 80,
            effects: Vec::new(),
            exit: None,
            next_id: 0,
            id_prefix: id_prefix.into(),
        }
    }

    /// The calls to make, in order; taken once.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Ask for a call.
    pub fn effect(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    /// Whether a turn runs or is starting.
    pub fn is_busy(&self) -> bool {
        !matches!(self.turn, TurnState::Idle)
    }

    /// How long the running turn has run.
    pub fn elapsed(&self, now: Instant) -> Option<Duration> {
        match &self.turn {
            TurnState::Idle => None,
            TurnState::Starting { since } | TurnState::Running { since, .. } => {
                Some(now.saturating_duration_since(*since))
            }
        }
    }

    /// The running turn's id.
    pub fn running_turn(&self) -> Option<&str> {
        match &self.turn {
            TurnState::Running { id, .. } => Some(id),
            TurnState::Idle | TurnState::Starting { .. } => None,
        }
    }

    /// A line in the transcript.
    pub fn notice(&mut self, text: impl Into<String>, tone: Tone) {
        self.transcript.push(Cell::new(CellKind::Notice {
            text: text.into(),
            tone,
        }));
    }

    /// A fresh `clientUserMessageId`.
    fn client_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}-{}", self.id_prefix, self.next_id)
    }

    /// Send `text`: a new turn when idle, a steer into the running turn
    /// (held until its id is known while it is starting).
    fn send(&mut self, text: String) {
        let client_id = self.client_id();
        match &self.turn {
            TurnState::Idle => {
                self.turn = TurnState::Starting {
                    since: Instant::now(),
                };
                self.effect(Effect::StartTurn { text, client_id });
            }
            TurnState::Starting { .. } => self.pending_steers.push(PendingSteer {
                text,
                client_id,
                sent: false,
                item: None,
            }),
            TurnState::Running { id, .. } => {
                let turn_id = id.clone();
                self.pending_steers.push(PendingSteer {
                    text: text.clone(),
                    client_id: client_id.clone(),
                    sent: true,
                    item: None,
                });
                self.effect(Effect::Steer {
                    turn_id,
                    text,
                    client_id,
                });
            }
        }
    }

    /// Put `text` in the server's queue for the next turn.
    fn enqueue(&mut self, text: String) {
        let client_id = self.client_id();
        self.effect(Effect::QueueAdd { text, client_id });
    }

    /// Interrupt what runs, saying why in its end line.
    fn interrupt(&mut self, why: &str) {
        match &self.turn {
            TurnState::Idle => {}
            TurnState::Starting { .. } => {
                self.interrupting = Some(why.to_owned());
                self.interrupt_when_started = true;
            }
            TurnState::Running { id, .. } => {
                let turn_id = id.clone();
                self.interrupting = Some(why.to_owned());
                self.effect(Effect::Interrupt { turn_id });
            }
        }
    }

    /// The turn's id is known: mark it running and send what waited for it.
    fn turn_running(&mut self, id: &str) {
        if self.finished.contains(id) {
            return;
        }
        let since = match &self.turn {
            TurnState::Starting { since } => *since,
            TurnState::Running { id: running, .. } if running == id => return,
            TurnState::Idle | TurnState::Running { .. } => Instant::now(),
        };
        self.turn = TurnState::Running {
            id: id.to_owned(),
            since,
        };
        if !self.turn_ids.iter().any(|t| t == id) {
            self.turn_ids.push(id.to_owned());
        }
        if std::mem::take(&mut self.interrupt_when_started) {
            self.effect(Effect::Interrupt {
                turn_id: id.to_owned(),
            });
        }
        let waiting: Vec<PendingSteer> = self
            .pending_steers
            .iter_mut()
            .filter(|p| !p.sent)
            .map(|p| {
                p.sent = true;
                p.clone()
            })
            .collect();
        for steer in waiting {
            self.effect(Effect::Steer {
                turn_id: id.to_owned(),
                text: steer.text,
                client_id: steer.client_id,
            });
        }
    }
}
