//! The session actor and the turn lifecycle.
//!
//! Ops arrive on a channel and are handled one at a time; a running turn is a
//! task the actor owns. [`Lifecycle`] is the one state enum: every transition is
//! a `match` on it here, and every terminal event is emitted here, once, by
//! [`SessionActor::end_turn`] (invariant I2).
//!
//! A caller that starts a turn with [`SessionHandle::start_turn`] holds a
//! [`TurnHandle`]: the turn's id, its own stream of events (through its terminal
//! event) and its end. [`SessionHandle::running_turn`] says which turn runs and
//! how to wait for its end, so no front end needs to track it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tiller_config::{ApprovalPolicy, Config};
use tiller_model::ModelClient;
use tiller_protocol::{
    ErrorInfo, EventMsg, ItemPhase, LifecycleEvent, Op, OpError, RecordedItem, Reply, ResponseItem,
    ReviewDecision, RolloutItem, SessionMeta, TokenUsage, TurnAbortReason, TurnContextLine,
    TurnItem, TurnItemKind, UserInput, UserMessage,
};
use tiller_rollout::timestamp::UtcTime;
use tiller_rollout::{LoadedRollout, OpenRollout, RolloutRecorder};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::conversation::{Conversation, TurnSettings};
use crate::error::CoreError;
use crate::events::{EventSink, EventStream, TurnEmitter, event_channel};
use crate::history::{ABORTED_BEFORE_OUTPUT, History};
use crate::inbox::TurnInbox;
use crate::items::TurnItems;
use crate::mcp::McpConnections;
use crate::tools::ToolRegistry;
use crate::turn::{TurnOutcome, TurnRuntime, run_turn};

mod checkpoints;
mod revert;

pub(crate) use checkpoints::CheckpointGate;
use checkpoints::TurnCheckpoints;

/// The timeout of a shell call that names none (stated once, in the shell tool).
pub const DEFAULT_TOOL_TIMEOUT: Duration = crate::tools::shell::DEFAULT_SHELL_TIMEOUT;

/// What the model reads after a turn the user interrupted.
pub const INTERRUPTED_MARKER: &str = "<turn_aborted>\nThe user interrupted the previous turn. Any command it was running was stopped; its output above shows how far it got.\n</turn_aborted>";

/// What the model reads after a turn that a new request replaced.
pub const REPLACED_MARKER: &str = "<turn_aborted>\nThe user sent a new request before the previous turn finished, so it was stopped. Any command it was running was stopped; its output above shows how far it got.\n</turn_aborted>";

/// How a session is set up.
#[derive(Debug)]
pub struct SessionOptions {
    /// Loaded configuration.
    pub config: Config,
    /// The provider's API key, if it needs one.
    pub api_key: Option<String>,
    /// Where the conversation comes from and whether it is saved.
    pub source: SessionSource,
}

/// Where a session's conversation comes from.
#[derive(Debug)]
pub enum SessionSource {
    /// A conversation that is not saved, starting from `history` (tests, benchmarks).
    Ephemeral {
        /// The items the conversation starts with.
        history: Vec<ResponseItem>,
    },
    /// A new conversation, saved under `$TILLER_HOME/sessions`.
    New,
    /// A saved conversation, continued in the same file, which the session
    /// holds locked while it runs (see [`tiller_rollout::open`]).
    Resume(Box<OpenRollout>),
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEnd {
    /// The model finished.
    Completed {
        /// The last assistant message.
        last_agent_message: Option<String>,
    },
    /// Ended early.
    Aborted {
        /// Why.
        reason: TurnAbortReason,
    },
    /// Failed, in the server's words (or because its end could not be saved).
    Failed {
        /// The message.
        message: String,
    },
}

impl TurnEnd {
    /// The end a terminal event reports, if `msg` is one.
    pub fn of_event(msg: &EventMsg) -> Option<TurnEnd> {
        match msg {
            EventMsg::TurnCompleted {
                last_agent_message, ..
            } => Some(TurnEnd::Completed {
                last_agent_message: last_agent_message.clone(),
            }),
            EventMsg::TurnAborted { reason, .. } => Some(TurnEnd::Aborted { reason: *reason }),
            EventMsg::TurnFailed { error, .. } => Some(TurnEnd::Failed {
                message: error.message.clone(),
            }),
            EventMsg::SessionConfigured { .. }
            | EventMsg::TurnStarted { .. }
            | EventMsg::ItemStarted { .. }
            | EventMsg::ItemCompleted { .. }
            | EventMsg::AgentMessageDelta { .. }
            | EventMsg::ReasoningDelta { .. }
            | EventMsg::ExecCommandOutputDelta { .. }
            | EventMsg::ExecApprovalRequest { .. }
            | EventMsg::PatchApprovalRequest { .. }
            | EventMsg::McpToolCallProgress { .. }
            | EventMsg::McpServerStatus { .. }
            | EventMsg::ElicitationRequest { .. }
            | EventMsg::StreamRetry { .. }
            | EventMsg::SteerDelivered { .. }
            | EventMsg::BackgroundEvent { .. }
            | EventMsg::TurnDiff { .. }
            | EventMsg::PlanUpdated { .. }
            | EventMsg::ShutdownComplete => None,
        }
    }
}

/// A turn and how it ends, for anyone who wants to wait for it.
#[derive(Debug, Clone)]
pub struct TurnWatch {
    /// The turn's id.
    pub id: String,
    end: watch::Receiver<Option<TurnEnd>>,
}

impl TurnWatch {
    /// How it ended, if it has.
    pub fn ended(&self) -> Option<TurnEnd> {
        self.end.borrow().clone()
    }

    /// Wait until it ends. A session that shuts down ends it as failed.
    pub async fn end(&mut self) -> TurnEnd {
        loop {
            if let Some(end) = self.end.borrow_and_update().clone() {
                return end;
            }
            if self.end.changed().await.is_err() {
                return self.end.borrow().clone().unwrap_or(TurnEnd::Failed {
                    message: "the session has shut down".to_string(),
                });
            }
        }
    }
}

/// A turn the caller started.
#[derive(Debug)]
pub struct TurnHandle {
    /// The turn's id and its end.
    pub watch: TurnWatch,
    /// The turn's own events, from `TurnStarted` through its terminal event;
    /// the stream ends there. For a repeated `client_message_id` (the turn had
    /// already been started) the stream is empty: its events went to the
    /// first caller.
    pub events: EventStream,
}

impl TurnHandle {
    /// The turn's id.
    pub fn id(&self) -> &str {
        &self.watch.id
    }
}

/// A session's settings as they stand ([`SessionHandle::settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentSettings {
    /// The model.
    pub model: String,
    /// The folder tools run in.
    pub cwd: std::path::PathBuf,
    /// When the person is asked.
    pub approval_policy: ApprovalPolicy,
    /// What the model's commands may touch.
    pub sandbox: tiller_config::SandboxPolicy,
}

/// A client's handle on a session. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    ops: mpsc::UnboundedSender<Submission>,
    session_id: Arc<str>,
    running: Arc<Mutex<Option<TurnWatch>>>,
    conversation: Arc<Conversation>,
}

impl SessionHandle {
    /// Submit `op` and wait for the answer.
    pub async fn submit(&self, op: Op) -> Result<Reply, OpError> {
        self.send(op, None).await
    }

    async fn send(&self, op: Op, shown: Option<Shown>) -> Result<Reply, OpError> {
        let (reply, rx) = oneshot::channel();
        self.ops
            .send(Submission { op, reply, shown })
            .map_err(|_| OpError::SessionClosed)?;
        rx.await.map_err(|_| OpError::SessionClosed)?
    }

    /// The context window of the model the session uses now, when known
    /// (`model_context_window`, or the provider's model list).
    pub fn context_window(&self) -> Option<u64> {
        let model = self.conversation.settings().model;
        self.conversation.context.window(&model)
    }

    /// The usage the model's last response reported (a turn's usage, in its
    /// `TurnCompleted`, is the sum of all its responses).
    pub fn last_response_usage(&self) -> Option<TokenUsage> {
        self.conversation.context.last_usage()
    }

    /// Add `items` to the running turn `expected_turn_id` (see `Op::Steer`).
    /// The answer names the user message item that shows the steer, which
    /// the engine emitted before answering.
    pub async fn steer(
        &self,
        items: Vec<UserInput>,
        expected_turn_id: String,
        client_message_id: Option<String>,
    ) -> Result<Steered, OpError> {
        let (tx, rx) = oneshot::channel();
        let reply = self
            .send(
                Op::Steer {
                    items,
                    expected_turn_id,
                    client_message_id,
                },
                Some(Shown::Steer(tx)),
            )
            .await?;
        let Reply::Steered { turn_id } = reply else {
            return Err(OpError::SessionClosed);
        };
        Ok(Steered {
            turn_id,
            // A repeat of an earlier steer shows nothing new.
            item_id: rx.await.ok(),
        })
    }

    /// Start a turn with `input` (replacing a running one), and hold it.
    pub async fn start_turn(
        &self,
        input: Vec<UserMessage>,
        client_message_id: Option<String>,
    ) -> Result<TurnHandle, OpError> {
        let (tx, rx) = oneshot::channel();
        let reply = self
            .send(
                Op::StartTurn {
                    input,
                    client_message_id,
                },
                Some(Shown::Turn(tx)),
            )
            .await?;
        let Reply::TurnStarted { turn_id } = reply else {
            return Err(OpError::SessionClosed);
        };
        match rx.await {
            Ok(handle) => Ok(handle),
            // A repeat of an earlier request: nothing new started.
            Err(_) => Ok(TurnHandle {
                watch: TurnWatch {
                    id: turn_id,
                    end: watch::channel(None).1,
                },
                events: event_channel().1,
            }),
        }
    }

    /// What the running turn (or, when idle, the next) runs with: the
    /// model, the folder and the approval policy.
    pub fn settings(&self) -> CurrentSettings {
        let settings = self.conversation.settings();
        CurrentSettings {
            model: settings.model,
            cwd: settings.cwd,
            approval_policy: settings.approval_policy,
            sandbox: settings.sandbox,
        }
    }

    /// Every turn of the session as its rollout holds it, up to now: the items
    /// each showed (the same a resumed session reads back), how it ended, and
    /// for the running turn (`LastTurn::CutOff`, last) what it showed so far.
    /// Everything recorded is written first, so nothing shown is missing. An
    /// ephemeral session has none.
    pub async fn saved_turns(&self) -> Result<Vec<tiller_rollout::LoadedTurn>, String> {
        let Some(path) = self.conversation.rollout().map(|r| r.path().to_path_buf()) else {
            return Ok(Vec::new());
        };
        self.conversation.commit(Vec::new(), false).await?;
        tokio::task::spawn_blocking(move || tiller_rollout::load(&path))
            .await
            .map_err(|e| e.to_string())?
            .map(|loaded| loaded.turns)
            .map_err(|e| e.to_string())
    }

    /// The running turn, if one runs.
    pub fn running_turn(&self) -> Option<TurnWatch> {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The session's id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Answer an MCP server's elicitation
    /// ([`EventMsg::ElicitationRequest`]); `content` is the person's input,
    /// sent with [`ElicitationAction::Accept`] only. False when no elicitation
    /// `request_id` waits (answered already, or cancelled with its call).
    pub fn resolve_elicitation(
        &self,
        request_id: &str,
        action: tiller_protocol::ElicitationAction,
        content: Option<serde_json::Value>,
    ) -> bool {
        self.conversation
            .tools
            .mcp()
            .is_some_and(|mcp| mcp.resolve_elicitation(request_id, action, content))
    }
}

/// An accepted steer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steered {
    /// The turn it went to.
    pub turn_id: String,
    /// The user message item that shows it; `None` for a repeated
    /// `client_message_id` (the first steer was shown).
    pub item_id: Option<String>,
}

struct Submission {
    op: Op,
    reply: oneshot::Sender<Result<Reply, OpError>>,
    /// Where what the op shows goes, if the caller holds it.
    shown: Option<Shown>,
}

/// What an op shows its caller beyond the reply.
enum Shown {
    /// The handle of the turn a `StartTurn` starts.
    Turn(oneshot::Sender<TurnHandle>),
    /// The id of the user message item of an accepted `Steer`.
    Steer(oneshot::Sender<String>),
}

/// Start a session actor on the current tokio runtime, with the standard
/// tools and the provider's model client.
pub fn spawn_session(
    options: SessionOptions,
) -> crate::error::Result<(SessionHandle, EventStream)> {
    let client = tiller_model::client_for(&options.config.provider, options.api_key.clone())?;
    let tools = ToolRegistry::for_config(&options.config);
    spawn_session_with(options, client, tools)
}

/// [`spawn_session`] with a given model client and tools.
pub fn spawn_session_with(
    options: SessionOptions,
    client: Arc<dyn ModelClient>,
    tools: ToolRegistry,
) -> crate::error::Result<(SessionHandle, EventStream)> {
    let SessionOptions {
        config,
        source,
        api_key,
    } = options;
    let mut replies = HashMap::new();
    let (session_id, history, rollout, cut_off_turn): (Arc<str>, _, _, _) = match source {
        SessionSource::Ephemeral { history } => {
            (uuid::Uuid::now_v7().to_string().into(), history, None, None)
        }
        SessionSource::New => {
            let id = uuid::Uuid::now_v7().to_string();
            let meta = SessionMeta {
                id: id.clone(),
                created: UtcTime::now().rfc3339(),
                cwd: config.cwd.display().to_string(),
                model: config.model.clone(),
                provider: config.provider.id.clone(),
                tiller_version: env!("CARGO_PKG_VERSION").to_string(),
            };
            let recorder =
                RolloutRecorder::create(&config.tiller_home, meta).map_err(CoreError::Rollout)?;
            (id.into(), Vec::new(), Some(recorder), None)
        }
        SessionSource::Resume(open) => {
            let (loaded, file) = open.into_parts();
            let LoadedRollout {
                path,
                meta,
                mut items,
                open_turn,
                turns,
                ..
            } = loaded;
            // `client_message_id` stays idempotent across a restart.
            let mut open_items = Vec::new();
            for turn in turns {
                if let Some(id) = turn.client_message_id {
                    replies.insert(
                        (MessageKind::StartTurn, id),
                        Reply::TurnStarted {
                            turn_id: turn.id.clone(),
                        },
                    );
                }
                if open_turn.as_deref() == Some(turn.id.as_str()) {
                    open_items = turn.open_items;
                }
            }
            // A turn cut off by a crash is closed exactly as a live interrupt
            // would close it, and that is on disk before the session is usable.
            let closing = open_turn
                .as_deref()
                .map(|turn_id| close_cut_off_turn(&mut items, turn_id, open_items))
                .unwrap_or_default();
            let recorder =
                RolloutRecorder::resume(file, &path, closing).map_err(CoreError::Rollout)?;
            (meta.id.into(), items, Some(recorder), open_turn)
        }
    };
    let (ops_tx, ops_rx) = mpsc::unbounded_channel();
    let (events, stream) = EventSink::channel();
    let mut tools = tools;
    // MCP servers start in the background: the first request never waits for them.
    if let Some(mcp) = McpConnections::start(
        config.mcp_servers.values().cloned(),
        config.cwd.clone(),
        crate::tools::secret_env(&config),
        &config.sandbox,
        &events,
    ) {
        tools.attach_mcp(mcp);
    }
    let conversation = Arc::new(Conversation::new(config, client, tools, history, rollout));
    events.emit(
        None,
        EventMsg::SessionConfigured {
            session_id: session_id.to_string(),
            model: conversation.config.model.clone(),
            provider: conversation.config.provider.id.clone(),
            cwd: conversation.config.cwd.display().to_string(),
            rollout_path: conversation
                .rollout()
                .map(|r| r.path().display().to_string()),
            interrupted_turn_id: cut_off_turn,
        },
    );
    if !conversation.context.is_configured() {
        // The model list may say how long a model's context is. It is read in
        // the background: the first request does not wait for it.
        tokio::spawn(crate::compaction::read_listed_windows(
            Arc::downgrade(&conversation),
            api_key,
            events.clone(),
        ));
    }
    let running = Arc::new(Mutex::new(None));
    let handle_conversation = Arc::clone(&conversation);
    // A session that keeps no rollout has no turns to take back.
    let checkpoints =
        TurnCheckpoints::new(conversation.config.checkpoints && conversation.rollout().is_some());
    let actor = SessionActor {
        checkpoints,
        conversation,
        ops: ops_rx,
        events,
        lifecycle: Lifecycle::Idle,
        replies,
        running: Arc::clone(&running),
        next_settings: None,
    };
    tokio::spawn(actor.run());
    Ok((
        SessionHandle {
            ops: ops_tx,
            session_id,
            running,
            conversation: handle_conversation,
        },
        stream,
    ))
}

/// A resumed rollout whose last turn never ended (tiller was killed): close it
/// in `history` exactly as a live interrupt would, complete its items that were
/// still open (a command as aborted, a message as nothing: what it streamed was
/// not saved), and return the lines that record all that.
fn close_cut_off_turn(
    history: &mut Vec<ResponseItem>,
    turn_id: &str,
    open_items: Vec<TurnItem>,
) -> Vec<RolloutItem> {
    let mut closed = History::from_items(std::mem::take(history));
    let mut closing: Vec<ResponseItem> = closed
        .unanswered_calls()
        .into_iter()
        .map(|(call_id, kind)| ResponseItem::output_of(kind, call_id, ABORTED_BEFORE_OUTPUT))
        .collect();
    closing.push(ResponseItem::user_text(INTERRUPTED_MARKER));
    for item in &closing {
        closed.push(item.clone());
    }
    *history = closed.items().to_vec();
    let mut lines: Vec<RolloutItem> = closing.into_iter().map(RolloutItem::ResponseItem).collect();
    for item in open_items {
        lines.push(RolloutItem::Item(RecordedItem {
            turn_id: turn_id.to_string(),
            phase: ItemPhase::Completed,
            item: cut_off(item),
        }));
    }
    lines.push(RolloutItem::Event(LifecycleEvent::TurnAborted {
        turn_id: turn_id.to_string(),
        reason: TurnAbortReason::Interrupted,
        unsent_input: Vec::new(),
    }));
    lines
}

/// An item left open by a crash, completed.
pub(crate) fn cut_off(item: TurnItem) -> TurnItem {
    let kind = match item.kind {
        TurnItemKind::CommandExecution {
            call_id,
            command,
            cwd,
            ..
        } => TurnItemKind::CommandExecution {
            call_id,
            command,
            cwd,
            status: Some(tiller_protocol::ExecEndStatus::Aborted),
            exit_code: None,
            duration_ms: None,
            aggregated_output: Some(String::new()),
        },
        TurnItemKind::AgentMessage { .. } => TurnItemKind::AgentMessage {
            text: String::new(),
        },
        // Cut off while its files were written: each file is old or new
        // (atomic), but which is not known.
        TurnItemKind::FileChange {
            call_id, changes, ..
        } => TurnItemKind::FileChange {
            call_id,
            changes,
            status: Some(tiller_protocol::PatchStatus::Failed),
        },
        TurnItemKind::Reasoning { .. } => TurnItemKind::Reasoning {
            text: String::new(),
        },
        user @ TurnItemKind::UserMessage { .. } => user,
        // Cut off while the server worked on it: whether it finished is not known.
        TurnItemKind::McpToolCall {
            call_id,
            server,
            tool,
            arguments,
            ..
        } => TurnItemKind::McpToolCall {
            call_id,
            server,
            tool,
            arguments,
            status: Some(tiller_protocol::McpToolCallStatus::Aborted),
            result: None,
            error: None,
            duration_ms: None,
        },
        // Cut off before the summary replaced anything.
        TurnItemKind::ContextCompaction { trigger, .. } => TurnItemKind::ContextCompaction {
            trigger,
            status: Some(tiller_protocol::CompactionStatus::Failed),
            tokens: None,
        },
    };
    TurnItem::new(item.id, kind)
}

/// The turn lifecycle.
enum Lifecycle {
    /// No turn is running.
    Idle,
    /// A turn is running.
    Running(Box<RunningTurn>),
}

struct RunningTurn {
    id: String,
    /// A compaction turn: not steerable; its summary replaces the history.
    compact: bool,
    /// Its tool calls' checkpoint: passed once a tool was about to run.
    checkpoint: CheckpointGate,
    cancel: CancellationToken,
    task: JoinHandle<TurnOutcome>,
    inbox: Arc<TurnInbox>,
    emitter: TurnEmitter,
    items: TurnItems,
    end: watch::Sender<Option<TurnEnd>>,
}

enum Next {
    Op(Submission),
    TurnEnded(Result<TurnOutcome, tokio::task::JoinError>),
    AllHandlesDropped,
}

/// Which op a `client_message_id` was given with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MessageKind {
    StartTurn,
    Steer,
}

struct SessionActor {
    conversation: Arc<Conversation>,
    ops: mpsc::UnboundedReceiver<Submission>,
    events: EventSink,
    lifecycle: Lifecycle,
    /// Answers already given, by op and `client_message_id`: an id is
    /// idempotent per op (a steer never gets a start's answer).
    replies: HashMap<(MessageKind, String), Reply>,
    /// The running turn, for [`SessionHandle::running_turn`].
    running: Arc<Mutex<Option<TurnWatch>>>,
    /// Settings changed while a turn ran: for the next turn.
    next_settings: Option<TurnSettings>,
    checkpoints: TurnCheckpoints,
}

impl SessionActor {
    async fn run(mut self) {
        loop {
            let next = match &mut self.lifecycle {
                Lifecycle::Idle => self
                    .ops
                    .recv()
                    .await
                    .map_or(Next::AllHandlesDropped, Next::Op),
                Lifecycle::Running(turn) => tokio::select! {
                    op = self.ops.recv() => op.map_or(Next::AllHandlesDropped, Next::Op),
                    joined = &mut turn.task => Next::TurnEnded(joined),
                },
            };
            match next {
                Next::Op(Submission { op, reply, shown }) => {
                    let shutdown = matches!(op, Op::Shutdown);
                    let answer = self.handle(op, shown).await;
                    let _ = reply.send(answer);
                    if shutdown {
                        break;
                    }
                }
                Next::TurnEnded(joined) => {
                    if let Lifecycle::Running(turn) =
                        std::mem::replace(&mut self.lifecycle, Lifecycle::Idle)
                    {
                        self.end_turn(&turn, joined, TurnAbortReason::Interrupted)
                            .await;
                    }
                }
                Next::AllHandlesDropped => {
                    self.abort(TurnAbortReason::Interrupted).await;
                    break;
                }
            }
        }
    }

    async fn handle(&mut self, op: Op, shown: Option<Shown>) -> Result<Reply, OpError> {
        match op {
            Op::StartTurn {
                input,
                client_message_id,
            } => {
                let kind = MessageKind::StartTurn;
                if let Some(reply) = self.repeated(kind, client_message_id.as_deref()) {
                    return Ok(reply);
                }
                let input = non_empty_messages(input)?;
                self.abort(TurnAbortReason::Replaced).await;
                let turn_id = self
                    .start_turn(
                        input,
                        client_message_id.clone(),
                        match shown {
                            Some(Shown::Turn(tx)) => Some(tx),
                            _ => None,
                        },
                        false,
                    )
                    .await?;
                Ok(self.remember(kind, client_message_id, Reply::TurnStarted { turn_id }))
            }
            Op::Steer {
                items,
                expected_turn_id,
                client_message_id,
            } => {
                let kind = MessageKind::Steer;
                if let Some(reply) = self.repeated(kind, client_message_id.as_deref()) {
                    return Ok(reply);
                }
                let Lifecycle::Running(turn) = &self.lifecycle else {
                    return Err(OpError::NoActiveTurn);
                };
                if turn.id != expected_turn_id {
                    return Err(OpError::TurnMismatch {
                        expected: expected_turn_id,
                        actual: turn.id.clone(),
                    });
                }
                if turn.compact {
                    return Err(OpError::NotSteerable {
                        turn_id: turn.id.clone(),
                        kind: "compact".to_string(),
                    });
                }
                let items = non_empty(items)?;
                let message = UserMessage {
                    items,
                    client_message_id: client_message_id.clone(),
                };
                let item_id = turn
                    .inbox
                    .push_steer(message, &turn.items)
                    .map_err(|_| OpError::NoActiveTurn)?;
                if let Some(Shown::Steer(tx)) = shown {
                    let _ = tx.send(item_id);
                }
                let turn_id = turn.id.clone();
                Ok(self.remember(kind, client_message_id, Reply::Steered { turn_id }))
            }
            Op::Interrupt => {
                self.abort(TurnAbortReason::Interrupted).await;
                Ok(Reply::Done)
            }
            Op::Approval { call_id, decision } => {
                let Lifecycle::Running(turn) = &self.lifecycle else {
                    return Err(OpError::UnknownApproval { call_id });
                };
                let Some(waiting) = turn.inbox.take_approval(&call_id) else {
                    return Err(OpError::UnknownApproval { call_id });
                };
                match decision {
                    ReviewDecision::Abort => {
                        drop(waiting);
                        self.abort(TurnAbortReason::Interrupted).await;
                    }
                    ReviewDecision::Approved
                    | ReviewDecision::ApprovedForSession
                    | ReviewDecision::Denied => {
                        // The turn may have ended in the meantime; then nobody is waiting.
                        let _ = waiting.send(decision);
                    }
                }
                Ok(Reply::Done)
            }
            Op::SaveQueue { queue } => {
                self.conversation
                    .commit(vec![RolloutItem::Queue(queue)], true)
                    .await
                    .map_err(|message| OpError::NotSaved { message })?;
                Ok(Reply::Done)
            }
            Op::UpdateSettings { settings } => {
                let current = self
                    .next_settings
                    .clone()
                    .unwrap_or_else(|| self.conversation.settings());
                let updated = updated_settings(current, settings)?;
                match self.lifecycle {
                    Lifecycle::Idle => self.conversation.set_settings(updated),
                    Lifecycle::Running(_) => self.next_settings = Some(updated),
                }
                Ok(Reply::Done)
            }
            Op::Revert {
                before_turn_id,
                restore_files,
            } => self.revert(before_turn_id, restore_files).await,
            Op::Unrevert => self.unrevert().await,
            Op::Compact => {
                if let Lifecycle::Running(turn) = &self.lifecycle {
                    return Err(OpError::Refused {
                        message: format!("turn {} is running; compact when it has ended", turn.id),
                    });
                }
                let turn_id = self.start_turn(Vec::new(), None, None, true).await?;
                Ok(Reply::TurnStarted { turn_id })
            }
            Op::Shutdown => {
                self.abort(TurnAbortReason::Interrupted).await;
                self.checkpoints.settle().await;
                // The file is closed (and its lock released) before the
                // answer: the session can be opened again at once.
                if let Some(rollout) = self.conversation.rollout()
                    && let Err(e) = rollout.close().await
                {
                    tracing::error!(path = %rollout.path().display(), "could not save the session: {e}");
                }
                self.events.emit(None, EventMsg::ShutdownComplete);
                Ok(Reply::Done)
            }
        }
    }

    fn repeated(&self, kind: MessageKind, client_message_id: Option<&str>) -> Option<Reply> {
        let id = client_message_id?;
        self.replies.get(&(kind, id.to_string())).cloned()
    }

    fn remember(
        &mut self,
        kind: MessageKind,
        client_message_id: Option<String>,
        reply: Reply,
    ) -> Reply {
        if let Some(id) = client_message_id {
            self.replies.insert((kind, id), reply.clone());
        }
        reply
    }

    /// Record the turn's start and input, hand them to the OS, then announce
    /// the turn and run it: a turn anyone has heard of (its `TurnStarted`, the
    /// reply) survives a crash of the process with its input, which the client
    /// may have nowhere else to resend from. If they cannot be written, the turn
    /// does not start and the caller is told why.
    async fn start_turn(
        &mut self,
        input: Vec<UserMessage>,
        client_message_id: Option<String>,
        turn_handle: Option<oneshot::Sender<TurnHandle>>,
        compact: bool,
    ) -> Result<String, OpError> {
        let turn_id = uuid::Uuid::now_v7().to_string();
        let settings = self
            .next_settings
            .clone()
            .unwrap_or_else(|| self.conversation.settings());
        if settings.cwd != self.conversation.instructions_folder() {
            // A new folder has its own AGENTS.md files.
            let config = &self.conversation.config;
            let (home, cwd, max) = (
                config.tiller_home.clone(),
                settings.cwd.clone(),
                config.project_doc_max_bytes,
            );
            let docs =
                tokio::task::spawn_blocking(move || crate::project_docs::load(&home, &cwd, max))
                    .await
                    .unwrap_or_default();
            for warning in &docs.warnings {
                tracing::warn!("{warning}");
            }
            self.conversation
                .set_user_instructions(settings.cwd.clone(), docs.message);
        }
        let mut lines = vec![
            RolloutItem::TurnContext(TurnContextLine {
                turn_id: turn_id.clone(),
                cwd: settings.cwd.display().to_string(),
                model: settings.model.clone(),
                approval_policy: settings.approval_policy.to_string(),
                sandbox: Some(settings.sandbox.summary()),
            }),
            RolloutItem::Event(LifecycleEvent::TurnStarted {
                turn_id: turn_id.clone(),
                client_message_id: client_message_id.clone(),
            }),
        ];
        let mut history = Vec::new();
        let mut shown = Vec::new();
        for message in &input {
            let response_item = ResponseItem::user_text(message.model_text());
            lines.push(RolloutItem::ResponseItem(response_item.clone()));
            history.push(response_item);
            let item = TurnItem::new(
                self.conversation.item_ids.next(&turn_id),
                TurnItemKind::UserMessage {
                    content: message.items.clone(),
                    client_message_id: message.client_message_id.clone(),
                },
            );
            // Complete at once: one line says both.
            lines.push(RolloutItem::Item(RecordedItem {
                turn_id: turn_id.clone(),
                phase: ItemPhase::Completed,
                item: item.clone(),
            }));
            shown.push(item);
        }
        self.conversation
            .commit(lines, false)
            .await
            .map_err(|message| OpError::NotSaved {
                message: format!("{message}; the turn was not started"),
            })?;
        // No turn runs now: the new turn's settings take effect.
        self.conversation.set_settings(settings);
        self.next_settings = None;
        // Idle: nothing else records, so the history's order is the file's.
        for item in history {
            self.conversation.history().push(item);
        }
        let cancel = CancellationToken::new();
        let inbox = Arc::new(TurnInbox::new());
        let (end_tx, end_rx) = watch::channel(None);
        let watch = TurnWatch {
            id: turn_id.clone(),
            end: end_rx,
        };
        let turn_events = turn_handle.map(|tx| {
            let (sender, events) = event_channel();
            let _ = tx.send(TurnHandle {
                watch: watch.clone(),
                events,
            });
            sender
        });
        let emitter = self.events.for_turn(&turn_id, turn_events);
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) = Some(watch);
        emitter.emit(EventMsg::TurnStarted { client_message_id });
        for item in shown {
            emitter.emit(EventMsg::ItemStarted { item: item.clone() });
            emitter.emit(EventMsg::ItemCompleted { item });
        }
        let items = TurnItems::new(&turn_id, Arc::clone(&self.conversation), emitter.clone());
        let checkpoint = if compact {
            CheckpointGate::open()
        } else {
            self.checkpoints
                .before(&self.conversation, &emitter, &turn_id)
        };
        let task = tokio::spawn(run_turn(TurnRuntime {
            checkpoint: checkpoint.clone(),
            conversation: Arc::clone(&self.conversation),
            inbox: Arc::clone(&inbox),
            cancel: cancel.clone(),
            emitter: emitter.clone(),
            items: items.clone(),
            compact,
        }));
        self.lifecycle = Lifecycle::Running(Box::new(RunningTurn {
            id: turn_id.clone(),
            compact,
            checkpoint,
            cancel,
            task,
            inbox,
            emitter,
            items,
            end: end_tx,
        }));
        Ok(turn_id)
    }

    /// The abort sequence: cancel (stops the stream, backoff sleeps and tools),
    /// wait for the turn task, which kills and reaps its processes and closes the
    /// history, then end the turn. A no-op when idle.
    async fn abort(&mut self, reason: TurnAbortReason) {
        let Lifecycle::Running(mut turn) = std::mem::replace(&mut self.lifecycle, Lifecycle::Idle)
        else {
            return;
        };
        turn.cancel.cancel();
        let joined = (&mut turn.task).await;
        self.end_turn(&turn, joined, reason).await;
    }

    /// Emit the one terminal event of `turn`. If the turn finished on its own
    /// before an abort reached it, its own outcome is what happened.
    async fn end_turn(
        &mut self,
        turn: &RunningTurn,
        joined: Result<TurnOutcome, tokio::task::JoinError>,
        reason: TurnAbortReason,
    ) {
        let unsent_input = turn.inbox.close();
        // Handed back as well if the turn's end cannot be saved.
        let unsent_if_not_saved = unsent_input.clone();
        let turn_id = turn.id.clone();
        let outcome = joined.unwrap_or_else(|panic| {
            tracing::error!(%panic, "bug: a turn task panicked");
            TurnOutcome::Failed(ErrorInfo {
                message: format!("internal error: {panic}"),
                http_status: None,
            })
        });
        let (line, msg) = match outcome {
            TurnOutcome::Completed {
                last_agent_message,
                usage,
            } => (
                LifecycleEvent::TurnCompleted {
                    turn_id,
                    last_agent_message: last_agent_message.clone(),
                    usage,
                },
                EventMsg::TurnCompleted {
                    last_agent_message,
                    usage,
                },
            ),
            TurnOutcome::Failed(error) => {
                self.close_history(None);
                (
                    LifecycleEvent::TurnFailed {
                        turn_id,
                        error: error.clone(),
                    },
                    EventMsg::TurnFailed {
                        error,
                        unsent_input,
                    },
                )
            }
            TurnOutcome::Cancelled => {
                let marker = match reason {
                    TurnAbortReason::Interrupted => INTERRUPTED_MARKER,
                    TurnAbortReason::Replaced => REPLACED_MARKER,
                };
                // An interrupted compaction leaves the history as it was.
                self.close_history((!turn.compact).then_some(marker));
                (
                    LifecycleEvent::TurnAborted {
                        turn_id,
                        reason,
                        unsent_input: unsent_input.clone(),
                    },
                    EventMsg::TurnAborted {
                        reason,
                        unsent_input,
                    },
                )
            }
        };
        // I5: the rollout is on disk before anyone hears that the turn is over.
        // If it cannot be, the turn did not end as it would have: it failed,
        // and the file says so once the disk takes lines again.
        let msg = match self
            .conversation
            .commit(vec![RolloutItem::Event(line)], true)
            .await
        {
            Ok(()) => msg,
            Err(message) => {
                let error = ErrorInfo {
                    message: format!("{message}; the turn's end was not saved"),
                    http_status: None,
                };
                self.conversation
                    .record_line(RolloutItem::Event(LifecycleEvent::TurnFailed {
                        turn_id: turn.id.clone(),
                        error: error.clone(),
                    }));
                EventMsg::TurnFailed {
                    error,
                    unsent_input: unsent_if_not_saved,
                }
            }
        };
        let end = TurnEnd::of_event(&msg);
        {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if running.as_ref().is_some_and(|watch| watch.id == turn.id) {
                *running = None;
            }
        }
        turn.emitter.finish(msg);
        turn.end.send_replace(end);
        // A turn that ran no tool left the workspace as its checkpoint has it.
        if turn.checkpoint.was_passed() {
            self.checkpoints.after(&self.conversation, &turn.id);
        }
    }

    /// Defence in depth for I1 after a turn that did not complete, then the marker.
    fn close_history(&self, marker: Option<&str>) {
        let repair = self.conversation.history().repair();
        if !repair.is_empty() {
            tracing::error!(?repair, "bug: a turn ended with an invalid history");
        }
        if let Some(marker) = marker {
            self.conversation
                .record_item(ResponseItem::user_text(marker));
        }
    }
}

/// A whole sandbox policy from a settings update's fields.
fn sandbox_policy(
    mode: &str,
    writable_roots: Vec<String>,
    network_access: bool,
    exclude_tmpdir_env_var: bool,
    exclude_slash_tmp: bool,
) -> Result<tiller_config::SandboxPolicy, String> {
    let mode = mode
        .parse::<tiller_config::SandboxMode>()
        .map_err(|e| format!("sandbox: {e}"))?;
    let writable_roots = tiller_config::absolute_roots(writable_roots)
        .map_err(|e| format!("sandbox: writable root {e}"))?;
    Ok(tiller_config::SandboxPolicy {
        mode,
        writable_roots,
        network_access,
        exclude_tmpdir_env_var,
        exclude_slash_tmp,
    })
}

fn non_empty(items: Vec<UserInput>) -> Result<Vec<UserInput>, OpError> {
    if items.iter().all(|item| item.model_text().trim().is_empty()) {
        return Err(OpError::EmptyInput);
    }
    Ok(items)
}

/// `current` with `update` applied, or why it cannot apply.
fn updated_settings(
    mut current: TurnSettings,
    update: tiller_protocol::SettingsUpdate,
) -> Result<TurnSettings, OpError> {
    let invalid = |message: String| OpError::InvalidSettings { message };
    if let Some(model) = update.model {
        if model.trim().is_empty() {
            return Err(invalid("the model name is empty".to_string()));
        }
        current.model = model;
    }
    if let Some(cwd) = update.cwd {
        let path = std::path::PathBuf::from(&cwd);
        if !path.is_absolute() {
            return Err(invalid(format!("cwd {cwd} is not an absolute path")));
        }
        if !path.is_dir() {
            return Err(invalid(format!("cwd {cwd} is not a folder")));
        }
        current.cwd = path;
    }
    if let Some(policy) = update.approval_policy {
        current.approval_policy = policy
            .parse::<ApprovalPolicy>()
            .map_err(|e| invalid(format!("approval policy: {e}")))?;
    }
    if let Some(mode) = update.sandbox_mode {
        current.sandbox = sandbox_policy(
            &mode,
            update.writable_roots.unwrap_or_default(),
            update.network_access.unwrap_or(false),
            update.exclude_tmpdir_env_var.unwrap_or(false),
            update.exclude_slash_tmp.unwrap_or(false),
        )
        .map_err(invalid)?;
    } else if update.writable_roots.is_some() || update.network_access.is_some() {
        return Err(invalid(
            "writable roots and network access are part of a sandbox policy: give the sandbox mode too"
                .to_string(),
        ));
    }
    if update.effort.is_some() || update.summary.is_some() {
        let mut reasoning = current.reasoning.take().unwrap_or_default();
        if let Some(effort) = update.effort {
            if effort.trim().is_empty() {
                return Err(invalid("the reasoning effort is empty".to_string()));
            }
            reasoning.effort = Some(effort);
        }
        if let Some(summary) = update.summary {
            if !["auto", "concise", "detailed", "none"].contains(&summary.as_str()) {
                return Err(invalid(format!(
                    "reasoning summary {summary:?} is not one of auto, concise, detailed, none"
                )));
            }
            reasoning.summary = Some(summary);
        }
        current.reasoning = Some(reasoning);
    }
    Ok(current)
}

fn non_empty_messages(input: Vec<UserMessage>) -> Result<Vec<UserMessage>, OpError> {
    if input
        .iter()
        .all(|message| message.model_text().trim().is_empty())
    {
        return Err(OpError::EmptyInput);
    }
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_events_map_to_ends() {
        let aborted = EventMsg::TurnAborted {
            reason: TurnAbortReason::Interrupted,
            unsent_input: Vec::new(),
        };
        assert_eq!(
            TurnEnd::of_event(&aborted),
            Some(TurnEnd::Aborted {
                reason: TurnAbortReason::Interrupted
            })
        );
        assert_eq!(
            TurnEnd::of_event(&EventMsg::TurnStarted {
                client_message_id: None
            }),
            None
        );
    }
}
