//! The session actor and the turn lifecycle.
//!
//! Ops arrive on a channel and are handled one at a time; a running turn is a
//! task the actor owns. [`Lifecycle`] is the one state enum: every transition is
//! a `match` on it here, and every terminal event is emitted here, once, by
//! [`SessionActor::end_turn`] (invariant I2).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tiller_protocol::{
    ErrorInfo, EventMsg, LifecycleEvent, Op, OpError, Reply, ResponseItem, ReviewDecision,
    RolloutItem, SessionMeta, TurnAbortReason, TurnContextLine, UserInput,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::CoreError;
use crate::events::{EventSink, EventStream, TurnEmitter};
use crate::history::{ABORTED_BEFORE_OUTPUT, History};
use crate::tools::shell::shell_tool_spec;
use crate::turn::{TurnContext, TurnOutcome, TurnShared, run_turn, user_message};
use tiller_config::Config;
use tiller_model::{ModelRequest, ResponsesClient};
use tiller_rollout::timestamp::UtcTime;
use tiller_rollout::{LoadedRollout, OpenRollout, RolloutRecorder};

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

/// A client's handle on a session. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    ops: mpsc::UnboundedSender<Submission>,
    session_id: Arc<str>,
}

impl SessionHandle {
    /// Submit `op` and wait for the answer.
    pub async fn submit(&self, op: Op) -> Result<Reply, OpError> {
        let (reply, rx) = oneshot::channel();
        self.ops
            .send(Submission { op, reply })
            .map_err(|_| OpError::SessionClosed)?;
        rx.await.map_err(|_| OpError::SessionClosed)?
    }

    /// The session's id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }
}

struct Submission {
    op: Op,
    reply: oneshot::Sender<Result<Reply, OpError>>,
}

/// Start a session actor on the current tokio runtime.
pub fn spawn_session(
    options: SessionOptions,
) -> crate::error::Result<(SessionHandle, EventStream)> {
    let SessionOptions {
        config,
        api_key,
        source,
    } = options;
    let client = ResponsesClient::new(&config.provider, api_key)?;
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
            for turn in turns {
                if let Some(id) = turn.client_message_id {
                    replies.insert(
                        (MessageKind::StartTurn, id),
                        Reply::TurnStarted { turn_id: turn.id },
                    );
                }
            }
            // A turn cut off by a crash is closed exactly as a live interrupt
            // would close it, and that is on disk before the session is usable.
            let closing = open_turn
                .as_deref()
                .map(|turn_id| close_cut_off_turn(&mut items, turn_id))
                .unwrap_or_default();
            let recorder =
                RolloutRecorder::resume(file, &path, closing).map_err(CoreError::Rollout)?;
            (meta.id.into(), items, Some(recorder), open_turn)
        }
    };
    let (ops_tx, ops_rx) = mpsc::unbounded_channel();
    let (events, stream) = EventSink::channel();
    let shared = Arc::new(SessionShared {
        config,
        client,
        history: Mutex::new(History::from_items(history)),
        rollout,
        approved_for_session: Mutex::new(HashSet::new()),
        default_tool_timeout: DEFAULT_TOOL_TIMEOUT,
    });
    events.emit(
        None,
        EventMsg::SessionConfigured {
            session_id: session_id.to_string(),
            model: shared.config.model.clone(),
            provider: shared.config.provider.id.clone(),
            cwd: shared.config.cwd.display().to_string(),
            rollout_path: shared
                .rollout
                .as_ref()
                .map(|r| r.path().display().to_string()),
            interrupted_turn_id: cut_off_turn,
        },
    );
    let actor = SessionActor {
        shared,
        ops: ops_rx,
        events,
        lifecycle: Lifecycle::Idle,
        replies,
    };
    tokio::spawn(actor.run());
    Ok((
        SessionHandle {
            ops: ops_tx,
            session_id,
        },
        stream,
    ))
}

/// A resumed rollout whose last turn never ended (tiller was killed): close it
/// in `history` exactly as a live interrupt would, and return the lines that
/// record that.
fn close_cut_off_turn(history: &mut Vec<ResponseItem>, turn_id: &str) -> Vec<RolloutItem> {
    let mut closed = History::from_items(std::mem::take(history));
    let mut closing: Vec<ResponseItem> = closed
        .unanswered_calls()
        .into_iter()
        .map(|call_id| ResponseItem::call_output(call_id, ABORTED_BEFORE_OUTPUT))
        .collect();
    closing.push(ResponseItem::user_text(INTERRUPTED_MARKER));
    for item in &closing {
        closed.push(item.clone());
    }
    *history = closed.items().to_vec();
    let mut lines: Vec<RolloutItem> = closing.into_iter().map(RolloutItem::ResponseItem).collect();
    lines.push(RolloutItem::Event(LifecycleEvent::TurnAborted {
        turn_id: turn_id.to_string(),
        reason: TurnAbortReason::Interrupted,
        unsent_input: Vec::new(),
    }));
    lines
}

/// What the session and its turns share.
#[derive(Debug)]
pub(crate) struct SessionShared {
    pub(crate) config: Config,
    pub(crate) client: ResponsesClient,
    history: Mutex<History>,
    rollout: Option<RolloutRecorder>,
    approved_for_session: Mutex<HashSet<Vec<String>>>,
    pub(crate) default_tool_timeout: Duration,
}

impl SessionShared {
    pub(crate) fn history(&self) -> MutexGuard<'_, History> {
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Append `item` to the history and the rollout, in the same order in both.
    /// (Repairs are not recorded: `History::repair` is positional, so a resumed
    /// history repairs to the same items.)
    pub(crate) fn record_item(&self, item: ResponseItem) {
        let mut history = self.history();
        if let Some(rollout) = &self.rollout {
            rollout.record(RolloutItem::ResponseItem(item.clone()));
        }
        history.push(item);
    }

    fn record_line(&self, item: RolloutItem) {
        if let Some(rollout) = &self.rollout {
            rollout.record(item);
        }
    }

    /// Write `lines` after everything recorded so far (and fsync if `sync`),
    /// or write none of them and say why, in words.
    async fn commit(&self, lines: Vec<RolloutItem>, sync: bool) -> Result<(), String> {
        let Some(rollout) = &self.rollout else {
            return Ok(());
        };
        rollout.commit(lines, sync).await.map_err(|e| {
            tracing::error!(path = %rollout.path().display(), "could not save the session: {e}");
            format!(
                "could not save the session to {}: {e}",
                rollout.path().display()
            )
        })
    }

    pub(crate) fn is_approved(&self, command: &[String]) -> bool {
        self.approved_for_session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(command)
    }

    pub(crate) fn approve_for_session(&self, command: Vec<String>) {
        self.approved_for_session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(command);
    }

    /// The next request, built from a history checked for I1 first. A gap here
    /// is a bug in tiller (aborts close the history as they happen), so it is
    /// logged as one, repaired, and reported.
    pub(crate) fn prepare_request(&self, emitter: &TurnEmitter) -> ModelRequest {
        let (repair, input) = {
            let mut history = self.history();
            let repair = history.repair();
            (repair, history.items().to_vec())
        };
        if !repair.is_empty() {
            tracing::error!(
                ?repair,
                "bug: the history broke invariant I1 and was repaired"
            );
            emitter.emit(EventMsg::BackgroundEvent {
                message: format!("repaired the conversation history before sending it: {repair:?}"),
            });
        }
        ModelRequest {
            model: self.config.model.clone(),
            instructions: instructions(&self.config),
            input,
            tools: vec![shell_tool_spec()],
        }
    }
}

fn instructions(config: &Config) -> String {
    let base = config.base_instructions.clone().unwrap_or_else(|| {
        format!(
            "You are tiller, a coding agent working in the user's workspace at {}. \
             Use the `shell` tool to inspect files and run commands; pass the command as an argv array, \
             for example [\"bash\", \"-lc\", \"ls -la\"]. Keep answers short and say what you did.",
            config.cwd.display()
        )
    });
    match &config.developer_instructions {
        Some(extra) => format!("{base}\n\n{extra}"),
        None => base,
    }
}

/// The turn lifecycle.
enum Lifecycle {
    /// No turn is running.
    Idle,
    /// A turn is running.
    Running(RunningTurn),
}

struct RunningTurn {
    id: String,
    cancel: CancellationToken,
    task: JoinHandle<TurnOutcome>,
    shared: Arc<TurnShared>,
    emitter: TurnEmitter,
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
    shared: Arc<SessionShared>,
    ops: mpsc::UnboundedReceiver<Submission>,
    events: EventSink,
    lifecycle: Lifecycle,
    /// Answers already given, by op and `client_message_id`: an id is
    /// idempotent per op (a steer never gets a start's answer).
    replies: HashMap<(MessageKind, String), Reply>,
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
                Next::Op(Submission { op, reply }) => {
                    let shutdown = matches!(op, Op::Shutdown);
                    let answer = self.handle(op).await;
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

    async fn handle(&mut self, op: Op) -> Result<Reply, OpError> {
        match op {
            Op::StartTurn {
                items,
                client_message_id,
            } => {
                let kind = MessageKind::StartTurn;
                if let Some(reply) = self.repeated(kind, client_message_id.as_deref()) {
                    return Ok(reply);
                }
                let items = non_empty(items)?;
                self.abort(TurnAbortReason::Replaced).await;
                let turn_id = self.start_turn(items, client_message_id.clone()).await?;
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
                let items = non_empty(items)?;
                turn.shared
                    .push_steer(items)
                    .map_err(|_| OpError::NoActiveTurn)?;
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
                let Some(waiting) = turn.shared.take_approval(&call_id) else {
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
                self.shared
                    .commit(vec![RolloutItem::Queue(queue)], true)
                    .await
                    .map_err(|message| OpError::NotSaved { message })?;
                Ok(Reply::Done)
            }
            Op::Shutdown => {
                self.abort(TurnAbortReason::Interrupted).await;
                // The file is closed (and its lock released) before the
                // answer: the session can be opened again at once.
                if let Some(rollout) = &self.shared.rollout
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
        items: Vec<UserInput>,
        client_message_id: Option<String>,
    ) -> Result<String, OpError> {
        let turn_id = uuid::Uuid::now_v7().to_string();
        let config = &self.shared.config;
        let input = user_message(&items);
        let lines = vec![
            RolloutItem::TurnContext(TurnContextLine {
                turn_id: turn_id.clone(),
                cwd: config.cwd.display().to_string(),
                model: config.model.clone(),
                approval_policy: config.approval_policy.to_string(),
            }),
            RolloutItem::Event(LifecycleEvent::TurnStarted {
                turn_id: turn_id.clone(),
                client_message_id,
            }),
            RolloutItem::ResponseItem(input.clone()),
        ];
        self.shared
            .commit(lines, false)
            .await
            .map_err(|message| OpError::NotSaved {
                message: format!("{message}; the turn was not started"),
            })?;
        // Idle: nothing else records, so the history's order is the file's.
        self.shared.history().push(input);
        let cancel = CancellationToken::new();
        let shared = Arc::new(TurnShared::new());
        let emitter = self.events.for_turn(&turn_id);
        emitter.emit(EventMsg::TurnStarted);
        let task = tokio::spawn(run_turn(TurnContext {
            session: Arc::clone(&self.shared),
            shared: Arc::clone(&shared),
            cancel: cancel.clone(),
            emitter: emitter.clone(),
        }));
        self.lifecycle = Lifecycle::Running(RunningTurn {
            id: turn_id.clone(),
            cancel,
            task,
            shared,
            emitter,
        });
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
        &self,
        turn: &RunningTurn,
        joined: Result<TurnOutcome, tokio::task::JoinError>,
        reason: TurnAbortReason,
    ) {
        let unsent_input = turn.shared.close();
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
                self.close_history(Some(marker));
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
            .shared
            .commit(vec![RolloutItem::Event(line)], true)
            .await
        {
            Ok(()) => msg,
            Err(message) => {
                let error = ErrorInfo {
                    message: format!("{message}; the turn's end was not saved"),
                    http_status: None,
                };
                self.shared
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
        turn.emitter.finish(msg);
    }

    /// Defence in depth for I1 after a turn that did not complete, then the marker.
    fn close_history(&self, marker: Option<&str>) {
        let repair = self.shared.history().repair();
        if !repair.is_empty() {
            tracing::error!(?repair, "bug: a turn ended with an invalid history");
        }
        if let Some(marker) = marker {
            self.shared.record_item(ResponseItem::user_text(marker));
        }
    }
}

fn non_empty(items: Vec<UserInput>) -> Result<Vec<UserInput>, OpError> {
    if items.iter().all(|item| item.as_text().trim().is_empty()) {
        return Err(OpError::EmptyInput);
    }
    Ok(items)
}
