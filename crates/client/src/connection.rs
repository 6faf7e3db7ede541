//! One server connection: its pending requests, the turns it is running, and
//! the one place that notices it went away. How its lines travel (a child's
//! pipes, a socket, in-process streams) is [`crate::transport`]'s business.
//!
//! Everything about a connection is owned by one actor task, so there is no
//! lock and no race between an answer, a disconnect and a new request: the
//! actor either answers a request, or fails it with `Disconnected` when it ends,
//! and it ends exactly once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::ExitStatus;
use std::time::Duration;

use serde_json::Value;
use tiller_app_server_protocol::{
    ErrorCode, Incoming, JsonRpcError, OutgoingMessage, RequestId, ServerNotification,
    ThreadStatus, ThreadStatusChangedNotification, Turn, TurnCompletedNotification, TurnError,
    TurnStatus, parse_line,
};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::ClientError;
use crate::event::{ClientEvent, DISCONNECTED_TURN_MESSAGE, parse_notification};
use crate::options::ClientOptions;

/// The answer to one request.
type Reply = oneshot::Sender<Result<Value, ClientError>>;

/// What a [`ConnectionHandle`] asks of the actor.
#[derive(Debug)]
enum ActorCommand {
    Request {
        id: i64,
        method: String,
        params: Value,
        reply: Reply,
    },
    Notify {
        method: String,
        params: Value,
    },
    /// Answer a request of the server's.
    Respond {
        id: RequestId,
        result: Result<Value, JsonRpcError>,
    },
    /// Close the server's stdin (it exits on EOF), kill it if it has not
    /// exited within the grace period, and answer with how it ended.
    Shutdown(oneshot::Sender<Option<ExitStatus>>),
}

/// A cheap handle on a connection's actor.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionHandle {
    tx: mpsc::UnboundedSender<ActorCommand>,
    pid: Option<u32>,
    generation: u64,
}

impl ConnectionHandle {
    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the server is still there (as far as the client knows).
    pub(crate) fn is_connected(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Send a request and wait for its answer, at most `limit`.
    pub(crate) async fn request(
        &self,
        id: i64,
        method: &str,
        params: Value,
        limit: Duration,
    ) -> Result<Value, ClientError> {
        let (reply, answer) = oneshot::channel();
        // Sent before the first await: requests go out in the order they are made.
        self.tx
            .send(ActorCommand::Request {
                id,
                method: method.to_owned(),
                params,
                reply,
            })
            .map_err(|_| ClientError::Disconnected)?;
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(result)) => result,
            // The actor always answers before it drops a reply; this is only
            // reached if it panicked.
            Ok(Err(_)) => Err(ClientError::Disconnected),
            Err(_) => Err(ClientError::Timeout {
                method: method.to_owned(),
            }),
        }
    }

    pub(crate) fn notify(&self, method: &str, params: Value) -> Result<(), ClientError> {
        self.tx
            .send(ActorCommand::Notify {
                method: method.to_owned(),
                params,
            })
            .map_err(|_| ClientError::Disconnected)
    }

    pub(crate) fn respond(
        &self,
        id: RequestId,
        result: Result<Value, JsonRpcError>,
    ) -> Result<(), ClientError> {
        self.tx
            .send(ActorCommand::Respond { id, result })
            .map_err(|_| ClientError::Disconnected)
    }

    /// Stop the server and reap it; how it ended, or `None` when that is not
    /// known (it was already gone, or could not be waited for).
    pub(crate) async fn shutdown(&self) -> Option<ExitStatus> {
        let (done, ended) = oneshot::channel();
        self.tx.send(ActorCommand::Shutdown(done)).ok()?;
        ended.await.ok().flatten()
    }
}

/// Start the actor of a connection whose lines go out through `writer` and
/// come in on `incoming` (`child`: the server process, when the client
/// started it).
pub(crate) fn start_actor(
    child: Option<Child>,
    writer: mpsc::UnboundedSender<String>,
    incoming: mpsc::UnboundedReceiver<String>,
    options: &ClientOptions,
    generation: u64,
    events: mpsc::UnboundedSender<ClientEvent>,
) -> ConnectionHandle {
    let pid = child.as_ref().and_then(Child::id);
    let (tx, commands) = mpsc::unbounded_channel();
    let actor = Actor {
        generation,
        commands,
        writer: Some(writer),
        child,
        incoming,
        events,
        pending: HashMap::new(),
        running: BTreeMap::new(),
        finished: HashSet::new(),
        shutdown_waiters: Vec::new(),
        requested: false,
        grace: options.shutdown_grace,
        server_requests: options.server_requests,
    };
    tokio::spawn(actor.run());
    ConnectionHandle {
        tx,
        pid,
        generation,
    }
}

/// A request waiting for its answer.
struct Pending {
    method: String,
    thread_id: Option<String>,
    reply: Reply,
}

struct Actor {
    generation: u64,
    commands: mpsc::UnboundedReceiver<ActorCommand>,
    /// `None` once stdin (or the socket, or the in-process stream) was closed
    /// on purpose.
    writer: Option<mpsc::UnboundedSender<String>>,
    /// The server process, when the client started it (not over a socket,
    /// nor in process).
    child: Option<Child>,
    /// The server's lines (stdout or in-process lines, or WebSocket text
    /// frames); ends when it closes them.
    incoming: mpsc::UnboundedReceiver<String>,
    events: mpsc::UnboundedSender<ClientEvent>,
    pending: HashMap<i64, Pending>,
    /// Turns in progress: turn id → thread id.
    running: BTreeMap<String, String>,
    /// Turns that got their `turn/completed`, so that a replayed `turn/start`
    /// answer (idempotent `clientUserMessageId`) does not mark one running again.
    finished: HashSet<String>,
    shutdown_waiters: Vec<oneshot::Sender<Option<ExitStatus>>>,
    requested: bool,
    grace: Duration,
    /// Hand the server's requests to the caller instead of refusing them.
    server_requests: bool,
}

impl Actor {
    async fn run(mut self) {
        let mut exit_status: Option<ExitStatus> = None;
        let mut exited = false;
        // After the process exited, stdout may still be held open by a process
        // it left behind: read what is buffered, but only until this deadline.
        let mut drain_until: Option<Instant> = None;
        // After stdin was closed on purpose: kill the server at this deadline.
        let mut kill_at: Option<Instant> = None;
        loop {
            tokio::select! {
                command = self.commands.recv(), if kill_at.is_none() => match command {
                    Some(command) => {
                        if self.command(command) {
                            kill_at = Some(Instant::now() + self.grace);
                        }
                    }
                    // Every handle is gone: nobody can use this server any more.
                    None => {
                        self.close_stdin();
                        kill_at = Some(Instant::now() + self.grace);
                    }
                },
                line = self.incoming.recv() => match line {
                    Some(line) => self.line(&line),
                    None => break,
                },
                status = wait(&mut self.child), if !exited => {
                    exited = true;
                    exit_status = status.ok();
                    drain_until = Some(Instant::now() + self.grace);
                }
                () = until(drain_until) => break,
                () = until(kill_at), if !exited && self.child.is_some() => {
                    if let Some(child) = &mut self.child {
                        tracing::warn!(pid = child.id(), "the app-server did not exit when asked; killing it");
                        let _ = child.start_kill();
                    }
                    kill_at = None;
                }
                // A socket (or in-process stream) the server did not close
                // when asked: the client is done with it.
                () = until(kill_at), if self.child.is_none() => break,
            }
        }
        if !exited {
            exit_status = self.reap().await;
        }
        self.disconnect(exit_status);
    }

    /// Handle a command; true when it asked the server to stop.
    fn command(&mut self, command: ActorCommand) -> bool {
        match command {
            ActorCommand::Request {
                id,
                method,
                params,
                reply,
            } => {
                let thread_id = params
                    .get("threadId")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let message = serde_json::json!({"id": id, "method": method, "params": params});
                if !self.write(&message) {
                    let _ = reply.send(Err(ClientError::Disconnected));
                    return false;
                }
                // Requests that timed out leave their entries behind; drop them here.
                self.pending.retain(|_, p| !p.reply.is_closed());
                self.pending.insert(
                    id,
                    Pending {
                        method,
                        thread_id,
                        reply,
                    },
                );
                false
            }
            ActorCommand::Notify { method, params } => {
                let message = if params.is_null() {
                    serde_json::json!({"method": method})
                } else {
                    serde_json::json!({"method": method, "params": params})
                };
                self.write(&message);
                false
            }
            ActorCommand::Respond { id, result } => {
                let answer = match result {
                    Ok(result) => OutgoingMessage::Response { id, result },
                    Err(error) => OutgoingMessage::Error {
                        id: Some(id),
                        error,
                    },
                };
                self.send(&answer);
                false
            }
            ActorCommand::Shutdown(done) => {
                self.shutdown_waiters.push(done);
                self.close_stdin();
                true
            }
        }
    }

    fn close_stdin(&mut self) {
        self.requested = true;
        self.writer = None;
    }

    /// Queue one line for the server; false when it can no longer be written.
    fn write(&self, message: &Value) -> bool {
        let Some(writer) = &self.writer else {
            return false;
        };
        let mut line = message.to_string();
        line.push('\n');
        writer.send(line).is_ok()
    }

    /// Queue one answer for the server.
    fn send(&self, message: &OutgoingMessage) {
        match serde_json::to_value(message) {
            Ok(message) => {
                self.write(&message);
            }
            Err(e) => tracing::warn!("could not encode an answer to the app-server: {e}"),
        }
    }

    fn line(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }

        match parse_line(line) {
            Ok(Incoming::Response { id, result }) => self.response(id, result),
            Ok(Incoming::Notification { method, params }) => self.notification(method, params),
            Ok(Incoming::Request { id, method, params }) => {
                if self.server_requests {
                    self.emit(ClientEvent::ServerRequest { id, method, params });
                    return;
                }

                // Answer at once, so the server is not left waiting on a
                // caller that never asked for its requests.
                tracing::warn!(method, "the app-server sent a request; refusing it");
                let error = JsonRpcError::new(
                    ErrorCode::MethodNotFound,
                    format!("this client does not handle '{method}'"),
                );
                self.send(&OutgoingMessage::Error {
                    id: Some(id),
                    error,
                });
            }
            Err((_, error)) => {
                tracing::warn!(
                    "unreadable line from the app-server ({}): {line}",
                    error.message
                );
            }
        }
    }

    fn response(&mut self, id: RequestId, result: Result<Value, Value>) {
        let pending = match &id {
            RequestId::Integer(n) => self.pending.remove(n),
            RequestId::String(_) => None,
        };
        let Some(pending) = pending else {
            tracing::debug!(?id, "an answer to no pending request (timed out?)");
            return;
        };

        let answer = match result {
            Ok(value) => {
                if pending.method == "turn/start" {
                    self.turn_start_answered(pending.thread_id, &value);
                }
                Ok(value)
            }
            Err(error) => Err(match serde_json::from_value::<JsonRpcError>(error) {
                Ok(error) => ClientError::Server {
                    code: error.code,
                    message: error.message,
                },
                Err(e) => ClientError::Protocol(format!("an error response without code: {e}")),
            }),
        };
        let _ = pending.reply.send(answer);
    }

    /// A turn counts as running from the answer to its `turn/start`: if the
    /// server dies before `turn/started` arrives, it is still reported failed.
    fn turn_start_answered(&mut self, thread_id: Option<String>, result: &Value) {
        let turn_id = result
            .pointer("/turn/id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let (Some(thread_id), Some(turn_id)) = (thread_id, turn_id)
            && !self.finished.contains(&turn_id)
        {
            self.running.insert(turn_id, thread_id);
        }
    }

    fn notification(&mut self, method: String, params: Value) {
        let event = match parse_notification(&method, params.clone()) {
            Some(Ok(notification)) => {
                self.track(&notification);
                ClientEvent::Notification(notification)
            }
            Some(Err(e)) => {
                tracing::warn!(method, "a notification with unexpected params: {e}");
                ClientEvent::Other { method, params }
            }
            None => ClientEvent::Other { method, params },
        };
        self.emit(event);
    }

    fn track(&mut self, notification: &ServerNotification) {
        match notification {
            ServerNotification::TurnStarted(n) => {
                if !self.finished.contains(&n.turn.id) {
                    self.running.insert(n.turn.id.clone(), n.thread_id.clone());
                }
            }
            ServerNotification::TurnCompleted(n) => {
                self.running.remove(&n.turn.id);
                self.finished.insert(n.turn.id.clone());
            }
            ServerNotification::ThreadStarted(_)
            | ServerNotification::ThreadStatusChanged(_)
            | ServerNotification::ItemStarted(_)
            | ServerNotification::ItemCompleted(_)
            | ServerNotification::AgentMessageDelta(_)
            | ServerNotification::CommandExecutionOutputDelta(_)
            | ServerNotification::McpToolCallProgress(_)
            | ServerNotification::McpServerStatusUpdated(_)
            | ServerNotification::Error(_)
            | ServerNotification::Warning(_)
            | ServerNotification::QueueChanged(_)
            | ServerNotification::TokenUsageUpdated(_)
            | ServerNotification::ServerRequestResolved(_)
            | ServerNotification::ThreadArchived(_)
            | ServerNotification::ThreadUnarchived(_)
            | ServerNotification::ThreadDeleted(_)
            | ServerNotification::ThreadClosed(_)
            | ServerNotification::ThreadNameUpdated(_)
            | ServerNotification::ThreadReverted(_)
            | ServerNotification::TurnDiffUpdated(_)
            | ServerNotification::TurnPlanUpdated(_) => {}
        }
    }

    fn emit(&self, event: ClientEvent) {
        // A client that dropped its receiver does not want events.
        let _ = self.events.send(event);
    }

    /// The server closed its output: give it the grace period to exit, then
    /// kill it, and reap it either way.
    async fn reap(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        if let Ok(status) = tokio::time::timeout(self.grace, child.wait()).await {
            return status.ok();
        }

        tracing::warn!(
            pid = child.id(),
            "the app-server closed its output but did not exit; killing it"
        );
        let _ = child.start_kill();
        child.wait().await.ok()
    }

    /// The one end of this connection: every request still waiting fails with
    /// `Disconnected`, every running turn gets a failed `turn/completed`, then
    /// one `Disconnected` event.
    fn disconnect(mut self, exit_status: Option<ExitStatus>) {
        self.commands.close();
        self.writer = None;
        let mut waiters = std::mem::take(&mut self.shutdown_waiters);
        // Commands sent before the channel closed: nobody will answer them.
        while let Ok(command) = self.commands.try_recv() {
            match command {
                ActorCommand::Request { reply, .. } => {
                    let _ = reply.send(Err(ClientError::Disconnected));
                }
                ActorCommand::Notify { .. } | ActorCommand::Respond { .. } => {}
                ActorCommand::Shutdown(done) => waiters.push(done),
            }
        }
        for (_, pending) in self.pending.drain() {
            let _ = pending.reply.send(Err(ClientError::Disconnected));
        }
        let details = match exit_status {
            Some(status) => format!("the app-server process ended: {status}"),
            None => "the app-server closed its output".to_owned(),
        };
        for (turn_id, thread_id) in std::mem::take(&mut self.running) {
            self.emit(ClientEvent::Notification(
                ServerNotification::ThreadStatusChanged(ThreadStatusChangedNotification {
                    thread_id: thread_id.clone(),
                    status: ThreadStatus::Idle,
                }),
            ));
            self.emit(ClientEvent::Notification(
                ServerNotification::TurnCompleted(TurnCompletedNotification {
                    thread_id,
                    turn: Turn {
                        id: turn_id,
                        items: Vec::new(),
                        status: TurnStatus::Failed,
                        error: Some(TurnError {
                            message: DISCONNECTED_TURN_MESSAGE.to_owned(),
                            additional_details: Some(details.clone()),
                        }),
                        started_at: None,
                        completed_at: None,
                        duration_ms: None,
                    },
                    unsent_input: Vec::new(),
                }),
            ));
        }
        self.emit(ClientEvent::Disconnected {
            generation: self.generation,
            requested: self.requested,
            exit_status,
        });
        for done in waiters {
            let _ = done.send(exit_status);
        }
    }
}

/// The server process's exit, or never without one (a socket, in process).
async fn wait(child: &mut Option<Child>) -> std::io::Result<ExitStatus> {
    match child {
        Some(child) => child.wait().await,
        None => std::future::pending().await,
    }
}

/// Wait until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
