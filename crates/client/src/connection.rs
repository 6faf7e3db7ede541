//! One server process: its pipes, its pending requests, the turns it is
//! running, and the one place that notices it went away.
//!
//! Everything about a connection is owned by one actor task, so there is no
//! lock and no race between an answer, a disconnect and a new request: the
//! actor either answers a request, or fails it with `Disconnected` when it ends,
//! and it ends exactly once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tiller_app_server_protocol::{
    ErrorCode, Incoming, JsonRpcError, OutgoingMessage, RequestId, ServerNotification,
    ThreadStatus, ThreadStatusChangedNotification, Turn, TurnCompletedNotification, TurnError,
    TurnStatus, parse_line,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command as ProcessCommand};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::ClientError;
use crate::event::{ClientEvent, DISCONNECTED_TURN_MESSAGE, parse_notification};
use crate::options::{ClientOptions, Endpoint};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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

    /// Stop the server and reap it; how it ended, or `None` when that is not
    /// known (it was already gone, or could not be waited for).
    pub(crate) async fn shutdown(&self) -> Option<ExitStatus> {
        let (done, ended) = oneshot::channel();
        self.tx.send(ActorCommand::Shutdown(done)).ok()?;
        ended.await.ok().flatten()
    }
}

/// Start the server and the actor that owns it.
pub(crate) fn spawn(
    options: &ClientOptions,
    generation: u64,
    events: mpsc::UnboundedSender<ClientEvent>,
) -> Result<ConnectionHandle, ClientError> {
    let mut command = ProcessCommand::new(&options.program);
    command
        .args(&options.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(if options.inherit_stderr {
            Stdio::inherit()
        } else {
            Stdio::piped()
        })
        // Backstop only: the actor reaps the server itself.
        .kill_on_drop(true);
    for key in &options.env_remove {
        command.env_remove(key);
    }
    for (key, value) in &options.env {
        command.env(key, value);
    }
    if let Some(cwd) = &options.cwd {
        command.current_dir(cwd);
    }
    let mut child = command.spawn()?;
    let pid = child.id();
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(ClientError::Io(std::io::Error::other(
            "the server's stdin or stdout is not a pipe",
        )));
    };

    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(log_stderr(stderr, pid));
    }
    let (writer, lines) = mpsc::unbounded_channel();
    tokio::spawn(write_lines(stdin, lines));
    let (lines_tx, incoming) = mpsc::unbounded_channel();
    tokio::spawn(read_lines(stdout, lines_tx));
    Ok(start_actor(
        Some(child),
        writer,
        incoming,
        options,
        generation,
        events,
    ))
}

/// Start the actor of a connection whose lines go out through `writer` and
/// come in on `incoming` (`child`: the server process, when the client
/// started it).
fn start_actor(
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
    };
    tokio::spawn(actor.run());
    ConnectionHandle {
        tx,
        pid,
        generation,
    }
}

/// Connect to a server listening on `endpoint` (WebSocket over a unix socket
/// or TCP) and start the actor that owns the connection.
pub(crate) async fn connect(
    endpoint: &Endpoint,
    options: &ClientOptions,
    generation: u64,
    events: mpsc::UnboundedSender<ClientEvent>,
) -> Result<ConnectionHandle, ClientError> {
    let refused = |e: tokio_tungstenite::tungstenite::Error| {
        ClientError::Io(std::io::Error::other(format!(
            "the WebSocket handshake failed: {e}"
        )))
    };
    let (writer, lines) = mpsc::unbounded_channel();
    let (lines_tx, incoming) = mpsc::unbounded_channel();
    match endpoint {
        Endpoint::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path).await?;
            let (websocket, _) = tokio_tungstenite::client_async("ws://localhost/", stream)
                .await
                .map_err(refused)?;
            let (sink, stream) = websocket.split();
            tokio::spawn(write_frames(sink, lines));
            tokio::spawn(read_frames(stream, lines_tx));
        }
        Endpoint::WebSocket { url, token } => {
            let address = url
                .strip_prefix("ws://")
                .map(|rest| rest.split('/').next().unwrap_or(rest))
                .ok_or_else(|| ClientError::Protocol(format!("not a ws:// URL: {url}")))?;
            let stream = tokio::net::TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            let mut request = url.as_str().into_client_request().map_err(refused)?;
            if let Some(token) = token {
                let value = format!("Bearer {token}")
                    .parse()
                    .map_err(|_| ClientError::Protocol("the token is not a header value".into()))?;
                request.headers_mut().insert("Authorization", value);
            }
            let (websocket, _) = tokio_tungstenite::client_async(request, stream)
                .await
                .map_err(refused)?;
            let (sink, stream) = websocket.split();
            tokio::spawn(write_frames(sink, lines));
            tokio::spawn(read_frames(stream, lines_tx));
        }
    }
    Ok(start_actor(
        None, writer, incoming, options, generation, events,
    ))
}

/// The server's stdout, line by line, to the actor.
async fn read_lines(stdout: ChildStdout, lines: mpsc::UnboundedSender<String>) {
    let mut reader = BufReader::new(stdout).lines();
    loop {
        match reader.next_line().await {
            Ok(Some(line)) => {
                if lines.send(line).is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("reading the app-server's output failed: {e}");
                return;
            }
        }
    }
}

/// The only writer of a WebSocket connection: one text frame per message;
/// when every sender is gone, a close frame.
async fn write_frames<S>(mut sink: S, mut lines: mpsc::UnboundedReceiver<String>)
where
    S: futures::Sink<Message> + Unpin,
{
    while let Some(line) = lines.recv().await {
        let text = line.trim_end_matches('\n').to_owned();
        if sink.send(Message::text(text)).await.is_err() {
            tracing::debug!("could not write to the app-server's socket");
            return;
        }
    }
    let _ = sink.close().await;
}

/// A WebSocket connection's text frames, to the actor, until it closes.
async fn read_frames<S>(mut stream: S, lines: mpsc::UnboundedSender<String>)
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(message) = stream.next().await {
        let line = match message {
            Ok(Message::Text(text)) => text.as_str().to_owned(),
            Ok(Message::Binary(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(Message::Close(frame)) => {
                if let Some(frame) = frame {
                    tracing::warn!(reason = %frame.reason, "the app-server closed the connection");
                }
                return;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!("the app-server's socket failed: {e}");
                return;
            }
        };
        if lines.send(line).is_err() {
            return;
        }
    }
}

/// The only writer of the server's stdin. Dropping every sender closes it,
/// which is how the server is asked to exit.
async fn write_lines(mut stdin: ChildStdin, mut lines: mpsc::UnboundedReceiver<String>) {
    while let Some(line) = lines.recv().await {
        if let Err(e) = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await
        }
        .await
        {
            // The server is going away; the actor notices on stdout.
            tracing::debug!("could not write to the app-server: {e}");
            return;
        }
    }
}

async fn log_stderr(stderr: ChildStderr, pid: Option<u32>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "tiller_client::server", pid, "{line}");
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
    /// `None` once stdin (or the socket) was closed on purpose.
    writer: Option<mpsc::UnboundedSender<String>>,
    /// The server process, when the client started it (not over a socket).
    child: Option<Child>,
    /// The server's lines (stdout lines, or WebSocket text frames); ends when
    /// it closes them.
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
                // A socket the server did not close when asked: the client
                // is done with it.
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

    fn line(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }

        match parse_line(line) {
            Ok(Incoming::Response { id, result }) => self.response(id, result),
            Ok(Incoming::Notification { method, params }) => self.notification(method, params),
            Ok(Incoming::Request { id, method, .. }) => {
                // tiller sends no requests; answer so a compatible server that
                // does is not left waiting.
                tracing::warn!(method, "the app-server sent a request; refusing it");
                let error = JsonRpcError::new(
                    ErrorCode::MethodNotFound,
                    format!("this client does not handle '{method}'"),
                );
                if let Ok(message) = serde_json::to_value(OutgoingMessage::Error {
                    id: Some(id),
                    error,
                }) {
                    self.write(&message);
                }
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
            | ServerNotification::TurnDiffUpdated(_) => {}
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
                ActorCommand::Notify { .. } => {}
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

/// The server process's exit, or never for a socket.
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
