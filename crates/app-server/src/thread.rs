//! One thread: its engine session, its requests, its notifications, its queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;
use tiller_app_server_protocol::{
    ClientRequest, EmptyResponse, ErrorCode, JsonRpcError, QueuedSubmission, RequestId,
    ServerNotification, SettingsParams, ThreadIdNotification, ThreadInterruptResponse,
    ThreadNameUpdatedNotification, Turn, TurnInterruptResponse, TurnStartResponse, TurnStatus,
    TurnSteerResponse, UserInput as WireInput, WarningNotification,
};
use tiller_core::{EventStream, SessionHandle};
use tiller_protocol::{Event, EventMsg, Op, OpError, Reply, UserInput, UserMessage};
use tokio::sync::{mpsc, oneshot};

use crate::convert::{engine_input, now_secs, to_value};
use crate::outgoing::{ConnectionId, Outgoing, Prepared};
use crate::restore::saved_turns;
use crate::settings;
use crate::translate::{TurnClock, notifications};

mod approvals;
mod info;
mod mcp;
mod queue;
mod server_requests;
mod usage;

pub(crate) use info::{ThreadHandle, ThreadInfo};
pub(crate) use server_requests::thread_of_request;
use usage::{Context, Usage};

use approvals::Asked;
use mcp::{Elicitation, McpStatuses};
use server_requests::ServerRequests;

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
}

/// Answers already given, by method and `clientUserMessageId`.
pub(crate) type Replies = HashMap<(Idempotent, String), Value>;

/// What a connection asks of a thread.
pub(crate) enum ThreadCommand {
    /// A request for this thread (turn/*, thread/interrupt, thread/queue/*),
    /// answered to `from`.
    Request {
        id: RequestId,
        request: Box<ClientRequest>,
        from: Outgoing,
    },
    /// `thread/resume` of this (loaded) thread: answer `from` with the turns
    /// so far, and send it the thread's notifications from then on.
    Resume { id: RequestId, from: Outgoing },
    /// A client's answer to a server request (an approval, an elicitation)
    /// of this thread.
    Answer {
        id: RequestId,
        result: Result<Value, Value>,
        from: ConnectionId,
    },
    /// Stop sending this connection anything; `done` learns whether it was
    /// subscribed.
    Unsubscribe {
        connection: ConnectionId,
        done: Option<oneshot::Sender<bool>>,
    },
    /// Interrupt any running turn, flush, and stop.
    Shutdown(oneshot::Sender<()>),
    /// The thread was renamed: its answers show the name, and its
    /// subscribers get `thread/name/updated`.
    Renamed(Option<String>),
    /// Unload an idle thread: stop its session (its file closed and
    /// unlocked), tell the subscribers `thread/closed`, and stop. `done`
    /// learns whether it was closed (no turn was running).
    Close(oneshot::Sender<bool>),
}

/// A driver for a session, and the handle its commands go through. The
/// driver runs once [`ThreadDriver::spawn`]ed: the commands sent before wait
/// for it, and so do the session's events, so that the answer that opened
/// the thread is written before anything the thread says.
pub(crate) fn new_driver(
    info: ThreadInfo,
    session: SessionHandle,
    events: EventStream,
    first: Outgoing,
    queue: Vec<QueuedSubmission>,
    replies: Replies,
) -> (ThreadHandle, ThreadDriver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = ThreadHandle {
        tx,
        session: session.clone(),
        info: Arc::new(info.clone()),
    };
    let driver = ThreadDriver {
        info,
        session,
        events,
        subscribers: vec![first],
        rx,
        clock: None,
        queue,
        replies,
        usage: Usage::default(),
        requests: ServerRequests::default(),
        mcp: McpStatuses::default(),
        notify_after: Vec::new(),
    };
    (handle, driver)
}

/// What an event asks the driver to do next.
enum FollowUp {
    Nothing,
    StartQueued,
}

/// Drives one thread: its requests, and its engine events as notifications.
/// The engine knows which turn runs (`SessionHandle::running_turn`) and which
/// items are open; the driver keeps only the queue (a front-end feature) and
/// the running turn's start time.
pub(crate) struct ThreadDriver {
    info: ThreadInfo,
    session: SessionHandle,
    events: EventStream,
    /// The connections that get this thread's notifications.
    subscribers: Vec<Outgoing>,
    rx: mpsc::UnboundedReceiver<ThreadCommand>,
    /// The running turn's id and start time (for `turn/completed`'s times),
    /// from its `TurnStarted` to its terminal event.
    clock: Option<(String, TurnClock)>,
    queue: Vec<QueuedSubmission>,
    /// Results already given, by method and `clientUserMessageId` (idempotency).
    replies: Replies,
    /// Token counts since the thread was loaded.
    usage: Usage,
    /// Approvals and elicitations waiting for a client's answer.
    requests: ServerRequests,
    /// Where each MCP server of the session stands.
    mcp: McpStatuses,
    /// What the current request causes (warnings, `thread/reverted`), sent
    /// after its answer.
    notify_after: Vec<ServerNotification>,
}

impl ThreadDriver {
    /// Run the driver, on a task of its own.
    pub(crate) fn spawn(self) {
        tokio::spawn(self.run());
    }

    async fn run(mut self) {
        loop {
            tokio::select! {
                command = self.rx.recv() => match command {
                    Some(ThreadCommand::Request { id, request, from }) => {
                        self.request(id, *request, &from).await;
                    }
                    Some(ThreadCommand::Resume { id, from }) => self.resume(id, from).await,
                    Some(ThreadCommand::Answer { id, result, from }) => {
                        self.server_request_answer(&id, result, from).await;
                        self.pump_ready().await;
                    }
                    Some(ThreadCommand::Unsubscribe { connection, done }) => {
                        let before = self.subscribers.len();
                        self.subscribers.retain(|s| s.id() != connection);
                        if let Some(done) = done {
                            let _ = done.send(self.subscribers.len() != before);
                        }
                        self.connection_left(connection);
                    }
                    Some(ThreadCommand::Renamed(name)) => {
                        self.info.name = name.clone();
                        let renamed =
                            ServerNotification::ThreadNameUpdated(ThreadNameUpdatedNotification {
                                thread_id: self.info.id.clone(),
                                thread_name: name,
                            });
                        self.broadcast(&renamed);
                    }
                    Some(ThreadCommand::Close(done)) => {
                        self.pump_ready().await;
                        if self.session.running_turn().is_some() {
                            let _ = done.send(false);
                            continue;
                        }
                        self.shutdown().await;
                        let closed = ServerNotification::ThreadClosed(ThreadIdNotification {
                            thread_id: self.info.id.clone(),
                        });
                        self.broadcast(&closed);
                        let _ = done.send(true);
                        return;
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

    /// Send `notification` to every subscribed connection (dropping those
    /// that have gone).
    fn broadcast(&mut self, notification: &ServerNotification) {
        self.subscribers.retain(|s| !s.is_closed());
        // Output deltas no subscriber would take now are not even serialized.
        if Prepared::is_coalescible(notification)
            && !self.subscribers.iter().any(Outgoing::takes_deltas)
        {
            return;
        }
        let Some(prepared) = Prepared::notification(notification) else {
            return;
        };
        for subscriber in &self.subscribers {
            subscriber.send_prepared(&prepared);
        }
    }

    /// `thread/resume` of this loaded thread from `from`: everything already
    /// emitted goes to the current subscribers first, then `from` gets the
    /// turns as the rollout holds them (a running turn as it stands) and,
    /// from then on, the notifications.
    async fn resume(&mut self, id: RequestId, from: Outgoing) {
        self.pump_ready().await;
        let running = self.session.running_turn().map(|watch| watch.id);
        let turns = match self.session.saved_turns().await {
            Ok(turns) => saved_turns(&turns, running.as_deref()),
            Err(message) => {
                return from.error(
                    Some(id),
                    JsonRpcError::new(
                        ErrorCode::InternalError,
                        format!("could not read the thread: {message}"),
                    ),
                );
            }
        };
        let info = self.info.current(&self.session);
        from.respond_with(id, &info.response(running.is_none(), turns));
        self.tell_mcp_statuses(&from);
        self.ask_again(&from);
        if !self.subscribers.iter().any(|s| s.id() == from.id()) {
            self.subscribers.push(from);
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
        }
    }

    fn event(&mut self, event: Event) -> FollowUp {
        let Some(turn_id) = event.turn_id.as_deref().map(str::to_string) else {
            self.session_event(event.msg);
            return FollowUp::Nothing;
        };
        if let Some(asked) = Asked::of_event(&turn_id, &event.msg) {
            self.ask_approval(asked);
            return FollowUp::Nothing;
        }
        if event.msg.is_terminal() {
            self.turn_ended(&turn_id);
        }
        if matches!(event.msg, EventMsg::TurnStarted { .. }) {
            self.clock = Some((turn_id.clone(), TurnClock::start()));
            self.info.failed.store(false, Ordering::Release);
        }
        if matches!(event.msg, EventMsg::TurnFailed { .. }) {
            self.info.failed.store(true, Ordering::Release);
        }
        if let EventMsg::TurnCompleted { usage, .. } = &event.msg {
            let context = Context {
                window: self.session.context_window(),
                last_response: self.session.last_response_usage(),
            };
            let notification = self
                .usage
                .turn_completed(&self.info.id, &turn_id, usage, context);
            self.broadcast(&notification);
        }
        let clock = match &self.clock {
            Some((id, clock)) if *id == turn_id => clock.clone(),
            // An event of a turn this driver never saw start (it cannot
            // happen: the stream holds every event of the session).
            Some(_) | None => TurnClock::start(),
        };
        let (notifications, ended) = notifications(&self.info.id, &turn_id, &clock, event.msg);
        for notification in &notifications {
            self.broadcast(notification);
        }
        let Some(status) = ended else {
            return FollowUp::Nothing;
        };

        if self.clock.as_ref().is_some_and(|(id, _)| *id == turn_id) {
            self.clock = None;
        }
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

    /// An event of the session, not of a turn: MCP servers starting and
    /// asking the person for input. (A turn's events always carry its id.)
    fn session_event(&mut self, msg: EventMsg) {
        match msg {
            EventMsg::McpServerStatus {
                server,
                status,
                error,
                ..
            } => self.mcp_status(server, status, error),
            EventMsg::ElicitationRequest {
                server,
                request_id,
                message,
                requested_schema,
            } => self.ask_elicitation(Elicitation {
                server,
                request_id,
                message,
                requested_schema,
            }),
            // The thread's answers already say how it is configured, and
            // shutting down is the driver's own doing.
            EventMsg::SessionConfigured { .. }
            | EventMsg::BackgroundEvent { .. }
            | EventMsg::ShutdownComplete
            | EventMsg::TurnStarted { .. }
            | EventMsg::ItemStarted { .. }
            | EventMsg::ItemCompleted { .. }
            | EventMsg::AgentMessageDelta { .. }
            | EventMsg::ReasoningDelta { .. }
            | EventMsg::ExecCommandOutputDelta { .. }
            | EventMsg::McpToolCallProgress { .. }
            | EventMsg::ExecApprovalRequest { .. }
            | EventMsg::PatchApprovalRequest { .. }
            | EventMsg::StreamRetry { .. }
            | EventMsg::SteerDelivered { .. }
            | EventMsg::TurnDiff { .. }
            | EventMsg::PlanUpdated { .. }
            | EventMsg::TurnCompleted { .. }
            | EventMsg::TurnAborted { .. }
            | EventMsg::TurnFailed { .. } => {}
        }
    }

    /// Handle the events the engine emitted before the steer's user message
    /// `item_id` started, and return that item's events, unhandled: its
    /// start and its completion first, then what other tasks of the turn
    /// emitted between the two (the engine emits both before it answers the
    /// steer, so they are ready; the item is shown whole, right after the
    /// answer).
    async fn pump_before_item(&mut self, item_id: &str) -> Vec<Event> {
        let is_item = |event: &Event, started: bool| match &event.msg {
            EventMsg::ItemStarted { item } => started && item.id == item_id,
            EventMsg::ItemCompleted { item } => !started && item.id == item_id,
            _ => false,
        };
        let mut held = Vec::new();
        while let Some(event) = self.events.try_recv() {
            if is_item(&event, true) {
                held.push(event);
                break;
            }
            let follow_up = self.event(event);
            self.follow_up(follow_up).await;
        }
        if held.is_empty() {
            return held;
        }
        let mut between = Vec::new();
        while let Some(event) = self.events.try_recv() {
            if is_item(&event, false) {
                held.push(event);
                break;
            }
            between.push(event);
        }
        held.extend(between);
        held
    }

    async fn request(&mut self, id: RequestId, request: ClientRequest, from: &Outgoing) {
        // An accepted steer is shown right after its response: what the turn
        // did before it is written first.
        let mut shown_item = None;
        let result = match request {
            ClientRequest::TurnStart(params) => {
                self.turn_start(params.input, params.client_user_message_id, params.settings)
                    .await
            }
            ClientRequest::ThreadUnrevert(_) => self.revert(Op::Unrevert).await,
            ClientRequest::ThreadRevert(params) => {
                self.revert(Op::Revert {
                    before_turn_id: params.before_turn_id,
                    restore_files: params.restore_files,
                })
                .await
            }
            ClientRequest::ThreadCompactStart(_) => self
                .session
                .submit(Op::Compact)
                .await
                .map_err(op_error)
                .and_then(|_| to_value(&EmptyResponse {})),
            ClientRequest::ThreadSettingsUpdate(params) => self
                .update_settings("thread/settings/update", params.settings)
                .await
                .and_then(|()| to_value(&EmptyResponse {})),
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
            ClientRequest::QueueAdd(params) => self.queue_add(params).await,
            ClientRequest::QueueList(params) => self.queue_list(&params),
            ClientRequest::QueueUpdate(params) => self.queue_update(params).await,
            ClientRequest::QueueDelete(params) => {
                self.queue_delete(&params.queued_submission_id).await
            }
            ClientRequest::QueueReorder(params) => self.queue_reorder(params).await,
            ClientRequest::QueueStart(params) => {
                self.queue_start(params.queued_submission_id).await
            }
            ClientRequest::Initialize(_)
            | ClientRequest::ThreadStart(_)
            | ClientRequest::ThreadResume(_)
            | ClientRequest::ThreadUnsubscribe(_)
            | ClientRequest::ThreadLoadedList(_)
            | ClientRequest::ThreadRead(_)
            | ClientRequest::ThreadTurnsList(_)
            | ClientRequest::ThreadList(_)
            | ClientRequest::ThreadFork(_)
            | ClientRequest::ThreadMetadataUpdate(_)
            | ClientRequest::ThreadArchive(_)
            | ClientRequest::ThreadUnarchive(_)
            | ClientRequest::ThreadDelete(_)
            | ClientRequest::ThreadItemsList(_)
            | ClientRequest::ThreadSetName(_)
            | ClientRequest::ModelList(_) => Err(JsonRpcError::new(
                ErrorCode::InternalError,
                "this request is handled by the server, not a thread",
            )),
        };
        let held = match shown_item {
            Some(item_id) => self.pump_before_item(&item_id).await,
            None => Vec::new(),
        };
        match result {
            Ok(result) => from.respond(id, result),
            Err(error) => from.error(Some(id), error),
        }
        for notification in std::mem::take(&mut self.notify_after) {
            self.broadcast(&notification);
        }
        for event in held {
            let follow_up = self.event(event);
            self.follow_up(follow_up).await;
        }
        self.pump_ready().await;
    }

    async fn turn_start(
        &mut self,
        input: Vec<WireInput>,
        client_id: Option<String>,
        settings: SettingsParams,
    ) -> Result<Value, JsonRpcError> {
        if let Some(cached) = self.repeated(Idempotent::TurnStart, client_id.as_deref()) {
            return Ok(cached.clone());
        }
        let items = non_empty(engine_input(&input))?;
        // From this turn on, as Codex applies them.
        self.update_settings("turn/start", settings).await?;
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
        let result = to_value(&turn_started(turn_id))?;
        self.remember(Idempotent::TurnStart, client_id, &result);
        Ok(result)
    }

    /// `thread/revert`: the engine takes the history back (and with
    /// `restoreFiles` the workspace); the answer is the thread as it now
    /// stands (and what happened to the files), then `thread/reverted`.
    /// (`thread/unrevert`, tiller's: the last revert taken back, files too,
    /// answered the same way.)
    async fn revert(&mut self, op: Op) -> Result<Value, JsonRpcError> {
        let reply = self.session.submit(op).await.map_err(op_error)?;
        let files = match reply {
            Reply::Reverted {
                files: Some(files), ..
            } => Some(to_value(&files)?),
            _ => None,
        };
        let turns = self.session.saved_turns().await.map_err(|message| {
            JsonRpcError::new(
                ErrorCode::InternalError,
                format!("could not read the thread: {message}"),
            )
        })?;
        let thread = self
            .info
            .current(&self.session)
            .thread(true, saved_turns(&turns, None));
        self.notify_after
            .push(ServerNotification::ThreadReverted(ThreadIdNotification {
                thread_id: self.info.id.clone(),
            }));
        let mut answer = serde_json::json!({
            "thread": thread,
            "turnsBackwardsCursor": null,
            "itemsBackwardsCursor": null,
        });
        if let Some(files) = files {
            answer["files"] = files;
        }
        Ok(answer)
    }

    /// Apply a settings change to the next turn (refused by name if tiller
    /// cannot apply one of them; warned about if it is read as something
    /// near it).
    async fn update_settings(
        &mut self,
        method: &str,
        settings: SettingsParams,
    ) -> Result<(), JsonRpcError> {
        let checked = settings::check(method, settings)?;
        if checked.changes_anything() {
            self.session
                .submit(Op::UpdateSettings {
                    settings: checked.update.clone(),
                })
                .await
                .map_err(op_error)?;
        }
        for message in checked.warnings {
            self.notify_after
                .push(ServerNotification::Warning(WarningNotification {
                    thread_id: Some(self.info.id.clone()),
                    message,
                }));
        }
        Ok(())
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

/// The answer to a request that started a turn.
fn turn_started(turn_id: String) -> TurnStartResponse {
    TurnStartResponse {
        turn: Turn {
            id: turn_id,
            items: Vec::new(),
            status: TurnStatus::InProgress,
            error: None,
            started_at: Some(now_secs()),
            completed_at: None,
            duration_ms: None,
        },
    }
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
    if let OpError::NotSteerable { kind, .. } = &error {
        // Codex's structured error, so a client can tell why.
        let mut refused = JsonRpcError::new(ErrorCode::InvalidRequest, error.to_string());
        refused.data = Some(serde_json::json!({
            "codexErrorInfo": {"activeTurnNotSteerable": {"turnKind": kind}}
        }));
        return refused;
    }
    let code = match error {
        OpError::EmptyInput | OpError::InvalidSettings { .. } => ErrorCode::InvalidParams,
        OpError::NotSaved { .. } => ErrorCode::InternalError,
        OpError::NoActiveTurn
        | OpError::TurnMismatch { .. }
        | OpError::UnknownApproval { .. }
        | OpError::Refused { .. }
        | OpError::NotSteerable { .. }
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
        | OpError::NotSaved { .. }
        | OpError::Refused { .. }
        | OpError::NotSteerable { .. }
        | OpError::InvalidSettings { .. } => error.to_string(),
    };
    JsonRpcError::new(code, message)
}
