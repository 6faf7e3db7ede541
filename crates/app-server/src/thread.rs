//! One thread: its engine session, its requests, its notifications, its queue.

use std::collections::HashMap;

use serde_json::Value;
use tiller_app_server_protocol::{
    ClientRequest, ErrorCode, JsonRpcError, QueueAddResponse, QueueChangedNotification,
    QueueDeleteResponse, QueueListResponse, QueuedSubmission, RequestId, ServerNotification,
    Thread, ThreadInterruptResponse, ThreadStartResponse, ThreadStatus, Turn,
    TurnInterruptResponse, TurnStartResponse, TurnStatus, TurnSteerResponse,
    UserInput as WireInput,
};
use tiller_core::{EventStream, SessionHandle};
use tiller_protocol::{
    Event, EventMsg, Op, OpError, QueueSnapshot, QueuedInput, Reply, ReviewDecision, UserInput,
    UserMessage,
};
use tokio::sync::{mpsc, oneshot};

use crate::convert::{engine_input, now_secs};
use crate::outgoing::Outgoing;
use crate::translate::{TurnClock, notifications};

/// At most this many ready events are handled in one go, so a request is never
/// starved by a fast stream.
const MAX_EVENTS_PER_PUMP: usize = 100_000;

/// How a turn started from the queue names, as its `client_message_id`, the
/// entries it took. The engine records that id with the turn's start, before
/// the emptied queue can be saved: a restart in between must not queue again
/// what the turn already carries (see [`entries_started_by`]).
const QUEUED_TURN_PREFIX: &str = "tiller-queued:";

/// The `client_message_id` of a turn started with `entries`.
fn queued_turn_id(entries: &[QueuedSubmission]) -> String {
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    format!("{QUEUED_TURN_PREFIX}{}", ids.join(","))
}

/// The ids of the queue entries a turn with `client_message_id` took, if it was
/// started from the queue.
pub(crate) fn entries_started_by(client_message_id: &str) -> Option<impl Iterator<Item = &str>> {
    let ids = client_message_id.strip_prefix(QUEUED_TURN_PREFIX)?;
    Some(ids.split(',').filter(|id| !id.is_empty()))
}

/// The methods a `clientUserMessageId` makes idempotent. An id is
/// idempotent per method: a `turn/steer` never gets a `turn/start`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Idempotent {
    /// `turn/start`.
    TurnStart,
    /// `turn/steer`.
    TurnSteer,
    /// `thread/queue/add`.
    QueueAdd,
}

/// Answers already given, by method and `clientUserMessageId`.
pub(crate) type Replies = HashMap<(Idempotent, String), Value>;

/// What the main loop asks of a thread.
pub(crate) enum ThreadCommand {
    /// A request for this thread (turn/*, thread/interrupt, thread/queue/*).
    Request {
        id: RequestId,
        request: Box<ClientRequest>,
    },
    /// The thread's description, for `thread/resume` of a loaded thread.
    Describe(oneshot::Sender<ThreadStartResponse>),
    /// Interrupt any running turn, flush, and stop.
    Shutdown(oneshot::Sender<()>),
}

/// The main loop's handle on a thread.
#[derive(Debug, Clone)]
pub(crate) struct ThreadHandle {
    tx: mpsc::UnboundedSender<ThreadCommand>,
}

impl ThreadHandle {
    pub(crate) fn send(&self, command: ThreadCommand) -> bool {
        self.tx.send(command).is_ok()
    }
}

/// Fixed facts about a thread.
#[derive(Debug, Clone)]
pub(crate) struct ThreadInfo {
    pub(crate) id: String,
    pub(crate) model: String,
    pub(crate) provider: String,
    pub(crate) cwd: String,
    pub(crate) approval_policy: String,
    pub(crate) preview: String,
    pub(crate) created_at: i64,
    /// Turns read from the rollout (resumed threads).
    pub(crate) turns: Vec<Turn>,
}

impl ThreadInfo {
    pub(crate) fn response(&self, idle: bool) -> ThreadStartResponse {
        ThreadStartResponse {
            thread: Thread {
                id: self.id.clone(),
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
                status: if idle {
                    ThreadStatus::Idle
                } else {
                    ThreadStatus::Active {
                        active_flags: Vec::new(),
                    }
                },
                turns: self.turns.clone(),
            },
            model: self.model.clone(),
            model_provider: self.provider.clone(),
            cwd: self.cwd.clone(),
            approval_policy: self.approval_policy.clone(),
            approvals_reviewer: "user".to_string(),
            sandbox: serde_json::json!({"type": "dangerFullAccess"}),
        }
    }
}

/// Start a driver task for a session.
pub(crate) fn spawn_driver(
    info: ThreadInfo,
    session: SessionHandle,
    events: EventStream,
    out: Outgoing,
    queue: Vec<QueuedSubmission>,
    replies: Replies,
) -> ThreadHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let driver = ThreadDriver {
        info,
        session,
        events,
        out,
        rx,
        clock: None,
        queue,
        replies,
    };
    tokio::spawn(driver.run());
    ThreadHandle { tx }
}

/// What an event asks the driver to do next.
enum FollowUp {
    Nothing,
    StartQueued,
    Deny(String),
}

/// Drives one thread: its requests, and its engine events as notifications.
/// The engine knows which turn runs (`SessionHandle::running_turn`) and which
/// items are open; the driver keeps only the queue (a front-end feature) and
/// the running turn's start time.
pub(crate) struct ThreadDriver {
    info: ThreadInfo,
    session: SessionHandle,
    events: EventStream,
    out: Outgoing,
    rx: mpsc::UnboundedReceiver<ThreadCommand>,
    /// The running turn's id and start time (for `turn/completed`'s times).
    clock: Option<(String, TurnClock)>,
    queue: Vec<QueuedSubmission>,
    /// Results already given, by method and `clientUserMessageId` (idempotency).
    replies: Replies,
}

impl ThreadDriver {
    async fn run(mut self) {
        loop {
            tokio::select! {
                command = self.rx.recv() => match command {
                    Some(ThreadCommand::Request { id, request }) => self.request(id, *request).await,
                    Some(ThreadCommand::Describe(reply)) => {
                        let idle = self.session.running_turn().is_none();
                        let _ = reply.send(self.info.response(idle));
                    }
                    Some(ThreadCommand::Shutdown(done)) => {
                        self.shutdown().await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                event = self.events.recv() => match event {
                    Some(event) => {
                        let follow_up = self.event(event);
                        self.follow_up(follow_up).await;
                    }
                    None => return,
                },
            }
        }
    }

    /// Handle every event the engine has already emitted. Called right after
    /// each engine reply has been answered, so the response to a request comes
    /// before the notifications it caused.
    async fn pump_ready(&mut self) {
        for _ in 0..MAX_EVENTS_PER_PUMP {
            let Some(event) = self.events.try_recv() else {
                return;
            };
            let follow_up = self.event(event);
            self.follow_up(follow_up).await;
        }
    }

    async fn follow_up(&mut self, follow_up: FollowUp) {
        match follow_up {
            FollowUp::Nothing => {}
            FollowUp::StartQueued => {
                self.start_queued().await;
                // The queued turn's notifications follow at once, as for
                // `turn/start`.
                Box::pin(self.pump_ready()).await;
            }
            FollowUp::Deny(call_id) => {
                tracing::warn!(thread = %self.info.id, call_id, "approvals are not supported over the app-server yet; denying");
                let _ = self
                    .session
                    .submit(Op::Approval {
                        call_id,
                        decision: ReviewDecision::Denied,
                    })
                    .await;
            }
        }
    }

    fn event(&mut self, event: Event) -> FollowUp {
        let Some(turn_id) = event.turn_id.as_deref().map(str::to_string) else {
            return FollowUp::Nothing;
        };
        if let EventMsg::ExecApprovalRequest { call_id, .. } = &event.msg {
            return FollowUp::Deny(call_id.clone());
        }
        if matches!(event.msg, EventMsg::TurnStarted { .. }) {
            self.clock = Some((turn_id.clone(), TurnClock::start()));
        }
        let clock = match &self.clock {
            Some((id, clock)) if *id == turn_id => clock.clone(),
            // An event of a turn this driver never saw start (it cannot
            // happen: the stream holds every event of the session).
            Some(_) | None => TurnClock::start(),
        };
        let (notifications, ended) = notifications(&self.info.id, &turn_id, &clock, event.msg);
        for notification in &notifications {
            self.out.notify(notification);
        }
        let Some(status) = ended else {
            return FollowUp::Nothing;
        };
        // A turn started after this one ended (a `turn/start` read before
        // this event) is the client's: the queue waits for it.
        let newer_turn = self
            .session
            .running_turn()
            .is_some_and(|running| running.id != turn_id);
        if status == TurnStatus::Completed && !self.queue.is_empty() && !newer_turn {
            FollowUp::StartQueued
        } else {
            FollowUp::Nothing
        }
    }

    /// Handle the events the engine emitted before the item `item_id`
    /// started, and return that event, unhandled.
    async fn pump_before_item(&mut self, item_id: &str) -> Option<Event> {
        while let Some(event) = self.events.try_recv() {
            if matches!(&event.msg, EventMsg::ItemStarted { item } if item.id == item_id) {
                return Some(event);
            }
            let follow_up = self.event(event);
            self.follow_up(follow_up).await;
        }
        None
    }

    async fn request(&mut self, id: RequestId, request: ClientRequest) {
        // An accepted steer is shown right after its response: what the turn
        // did before it is written first.
        let mut shown_item = None;
        let result = match request {
            ClientRequest::TurnStart(params) => {
                self.turn_start(params.input, params.client_user_message_id)
                    .await
            }
            ClientRequest::TurnSteer(params) => self
                .turn_steer(
                    params.expected_turn_id,
                    params.input,
                    params.client_user_message_id,
                )
                .await
                .map(|(result, item_id)| {
                    shown_item = item_id;
                    result
                }),
            ClientRequest::TurnInterrupt(params) => self.interrupt(Some(params.turn_id)).await,
            ClientRequest::ThreadInterrupt(_) => self.interrupt(None).await,
            ClientRequest::QueueAdd(params) => {
                self.queue_add(params.input, params.client_user_message_id)
                    .await
            }
            ClientRequest::QueueList(_) => to_value(&QueueListResponse {
                queued_submissions: self.queue.clone(),
            }),
            ClientRequest::QueueDelete(params) => self.queue_delete(&params.id).await,
            ClientRequest::Initialize(_)
            | ClientRequest::ThreadStart(_)
            | ClientRequest::ThreadResume(_) => Err(JsonRpcError::new(
                ErrorCode::InternalError,
                "this request is handled by the server, not a thread",
            )),
        };
        let held = match shown_item {
            Some(item_id) => self.pump_before_item(&item_id).await,
            None => None,
        };
        match result {
            Ok(result) => self.out.respond(id, result),
            Err(error) => self.out.error(Some(id), error),
        }
        if let Some(event) = held {
            let follow_up = self.event(event);
            self.follow_up(follow_up).await;
        }
        self.pump_ready().await;
    }

    async fn turn_start(
        &mut self,
        input: Vec<WireInput>,
        client_id: Option<String>,
    ) -> Result<Value, JsonRpcError> {
        if let Some(cached) = self.repeated(Idempotent::TurnStart, client_id.as_deref()) {
            return Ok(cached.clone());
        }
        let items = non_empty(engine_input(&input))?;
        let reply = self
            .session
            .submit(Op::StartTurn {
                input: vec![UserMessage {
                    items,
                    client_message_id: client_id.clone(),
                }],
                client_message_id: client_id.clone(),
            })
            .await
            .map_err(op_error)?;
        let Reply::TurnStarted { turn_id } = reply else {
            return Err(op_error(OpError::SessionClosed));
        };
        let result = to_value(&TurnStartResponse {
            turn: Turn {
                id: turn_id,
                items: Vec::new(),
                status: TurnStatus::InProgress,
                error: None,
                started_at: Some(now_secs()),
                completed_at: None,
                duration_ms: None,
            },
        })?;
        self.remember(Idempotent::TurnStart, client_id, &result);
        Ok(result)
    }

    async fn turn_steer(
        &mut self,
        expected_turn_id: String,
        input: Vec<WireInput>,
        client_id: Option<String>,
    ) -> Result<(Value, Option<String>), JsonRpcError> {
        if let Some(cached) = self.repeated(Idempotent::TurnSteer, client_id.as_deref()) {
            return Ok((cached.clone(), None));
        }
        let items = non_empty(engine_input(&input))?;
        let steered = self
            .session
            .steer(items, expected_turn_id, client_id.clone())
            .await
            .map_err(op_error)?;
        let result = to_value(&TurnSteerResponse {
            turn_id: steered.turn_id,
        })?;
        self.remember(Idempotent::TurnSteer, client_id, &result);
        Ok((result, steered.item_id))
    }

    async fn interrupt(&mut self, turn_id: Option<String>) -> Result<Value, JsonRpcError> {
        let running = self.session.running_turn().map(|watch| watch.id);
        if let (Some(asked), Some(running)) = (&turn_id, &running)
            && asked != running
        {
            return Err(JsonRpcError::new(
                ErrorCode::InvalidRequest,
                format!("turn {asked} is not the running turn ({running})"),
            ));
        }
        self.session.submit(Op::Interrupt).await.map_err(op_error)?;
        if turn_id.is_some() {
            to_value(&TurnInterruptResponse {})
        } else {
            to_value(&ThreadInterruptResponse {})
        }
    }

    async fn queue_add(
        &mut self,
        input: Vec<WireInput>,
        client_id: Option<String>,
    ) -> Result<Value, JsonRpcError> {
        if let Some(cached) = self.repeated(Idempotent::QueueAdd, client_id.as_deref()) {
            return Ok(cached.clone());
        }
        non_empty(engine_input(&input))?;
        let entry = QueuedSubmission {
            id: uuid::Uuid::now_v7().to_string(),
            client_user_message_id: client_id.clone(),
            input,
        };
        let result = to_value(&QueueAddResponse {
            queued_submission: entry.clone(),
        })?;
        let idle = self.session.running_turn().is_none() && self.queue.is_empty();
        // Saved as queued even when it starts at once, so that the answer is
        // durable and a repeat after a restart finds this entry (not a turn).
        self.queue.push(entry);
        if let Err(error) = self.save_queue().await {
            // Not saved, not queued: the client is told and can send it again.
            self.queue.pop();
            return Err(error);
        }
        self.notify_queue_changed();
        if idle {
            // Its turn's notifications follow the answer (see `request`).
            self.start_queued().await;
        }
        self.remember(Idempotent::QueueAdd, client_id, &result);
        Ok(result)
    }

    async fn queue_delete(&mut self, id: &str) -> Result<Value, JsonRpcError> {
        let before = self.queue.clone();
        self.queue.retain(|entry| entry.id != id);
        let deleted = self.queue.len() != before.len();
        if deleted {
            if let Err(error) = self.save_queue().await {
                // Not saved, not deleted.
                self.queue = before;
                return Err(error);
            }
            self.notify_queue_changed();
        }
        to_value(&QueueDeleteResponse { deleted })
    }

    /// The turn completed with messages queued: they start the next turn,
    /// each its own user message.
    async fn start_queued(&mut self) {
        let entries = std::mem::take(&mut self.queue);
        let input = entries
            .iter()
            .map(|e| UserMessage {
                items: engine_input(&e.input),
                client_message_id: e.client_user_message_id.clone(),
            })
            .collect();
        let reply = self
            .session
            .submit(Op::StartTurn {
                input,
                client_message_id: Some(queued_turn_id(&entries)),
            })
            .await;
        match reply {
            Ok(_) => {
                if let Err(e) = self.save_queue().await {
                    tracing::error!("could not save the queue: {}", e.message);
                }
                self.notify_queue_changed();
            }
            Err(e) => {
                tracing::error!("could not start the queued turn: {e}");
                self.queue = entries;
            }
        }
    }

    /// Persist the queue before acknowledging a change to it.
    async fn save_queue(&mut self) -> Result<(), JsonRpcError> {
        let snapshot = QueueSnapshot {
            items: self
                .queue
                .iter()
                .map(|e| QueuedInput {
                    id: e.id.clone(),
                    client_message_id: e.client_user_message_id.clone(),
                    items: engine_input(&e.input),
                    original: serde_json::to_value(&e.input).ok(),
                })
                .collect(),
        };
        self.session
            .submit(Op::SaveQueue { queue: snapshot })
            .await
            .map(|_| ())
            .map_err(op_error)
    }

    fn notify_queue_changed(&self) {
        self.out.notify(&ServerNotification::QueueChanged(
            QueueChangedNotification {
                thread_id: self.info.id.clone(),
            },
        ));
    }

    fn repeated(&self, method: Idempotent, client_id: Option<&str>) -> Option<&Value> {
        self.replies.get(&(method, client_id?.to_string()))
    }

    fn remember(&mut self, method: Idempotent, client_id: Option<String>, result: &Value) {
        if let Some(client_id) = client_id {
            self.replies.insert((method, client_id), result.clone());
        }
    }

    /// Interrupt any running turn (its processes die, its rollout is flushed),
    /// send what that produced, and stop the session.
    async fn shutdown(&mut self) {
        let _ = self.session.submit(Op::Shutdown).await;
        while let Some(event) = self.events.try_recv() {
            let done = matches!(event.msg, EventMsg::ShutdownComplete);
            // No new turn may start now: follow-ups are dropped.
            let _ = self.event(event);
            if done {
                break;
            }
        }
    }
}

fn to_value<T: serde::Serialize>(value: &T) -> Result<Value, JsonRpcError> {
    serde_json::to_value(value)
        .map_err(|e| JsonRpcError::new(ErrorCode::InternalError, e.to_string()))
}

fn non_empty(items: Vec<UserInput>) -> Result<Vec<UserInput>, JsonRpcError> {
    if items.iter().all(|i| i.model_text().trim().is_empty()) {
        return Err(JsonRpcError::new(
            ErrorCode::InvalidParams,
            "input has no text",
        ));
    }
    Ok(items)
}

fn op_error(error: OpError) -> JsonRpcError {
    let code = match error {
        OpError::EmptyInput => ErrorCode::InvalidParams,
        OpError::NotSaved { .. } => ErrorCode::InternalError,
        OpError::NoActiveTurn
        | OpError::TurnMismatch { .. }
        | OpError::UnknownApproval { .. }
        | OpError::SessionClosed => ErrorCode::InvalidRequest,
    };
    let message = match &error {
        OpError::NoActiveTurn => "no active turn to steer".to_string(),
        OpError::TurnMismatch { expected, actual } => {
            format!("expected turn {expected} is not the active turn ({actual})")
        }
        OpError::EmptyInput
        | OpError::UnknownApproval { .. }
        | OpError::SessionClosed
        | OpError::NotSaved { .. } => error.to_string(),
    };
    JsonRpcError::new(code, message)
}
