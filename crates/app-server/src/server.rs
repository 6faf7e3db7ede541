//! The main loop: lines in, requests routed, shutdown on EOF or SIGTERM.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use tiller_app_server_protocol::{
    ClientRequest, ErrorCode, Incoming, InitializeResponse, JsonRpcError, QueueAddResponse,
    QueuedSubmission, RequestId, ServerNotification, ThreadResumeParams, ThreadStartParams,
    ThreadStartResponse, ThreadStartedNotification, Turn, TurnError, TurnStartResponse, TurnStatus,
    WarningNotification, parse_line,
};
use tiller_core::config::{ApprovalPolicy, ConfigOverrides};
use tiller_core::rollout::LastTurn;
use tiller_core::rollout::store::{SessionQuery, find_session, session_id_of};
use tiller_core::{CoreError, OpenedSession, Resume, Resumed, SessionBuilder};
use tiller_jsonl::{Frame, LineFramer};
use tiller_protocol::QueuedInput;
use tokio::io::AsyncReadExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

use crate::convert::{created_secs, thread_item, wire_input};
use crate::outgoing::Outgoing;
use crate::thread::{
    Idempotent, Replies, ThreadCommand, ThreadHandle, ThreadInfo, entries_started_by, spawn_driver,
};

/// The longest line the server reads; a longer one is answered with an error
/// and skipped, never buffered whole.
pub const MAX_LINE_BYTES: usize = 10 * 1024 * 1024;

/// How much is read from stdin at a time.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// How long shutdown waits for running turns to be interrupted.
const SHUTDOWN_DEADLINE: Duration = Duration::from_millis(900);

/// Settings of one server process.
#[derive(Debug, Clone)]
pub struct AppServerOptions {
    /// `$TILLER_HOME`: config and sessions.
    pub tiller_home: PathBuf,
}

/// Serve `input` → `output` until EOF or SIGTERM; returns the exit code.
pub async fn run_app_server<R, W>(input: R, output: W, options: AppServerOptions) -> i32
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, writer) = Outgoing::new(output);
    let writer = tokio::spawn(writer);
    let mut server = Server {
        out,
        options,
        initialized: false,
        threads: HashMap::new(),
    };
    let mut sigterm = signal(SignalKind::terminate()).ok();
    let mut input = input;
    let mut framer = LineFramer::new(MAX_LINE_BYTES);
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    'serve: loop {
        while let Some(frame) = framer.next_frame() {
            server.frame(frame).await;
        }
        // A client that does not read what it is sent is not read from.
        tokio::select! {
            () = server.out.room() => {}
            () = terminated(&mut sigterm) => break 'serve,
        }
        let read = tokio::select! {
            read = input.read(&mut buf) => read,
            () = terminated(&mut sigterm) => break 'serve,
        };
        match read {
            Ok(0) | Err(_) => {
                if let Some(frame) = framer.finish() {
                    server.frame(frame).await;
                }
                break;
            }
            Ok(n) => framer.push(&buf[..n]),
        }
    }
    server.shutdown().await;
    drop(server);
    // What is queued goes out, unless the client stopped reading: then the
    // server does not wait for it.
    if tokio::time::timeout(SHUTDOWN_DEADLINE, writer)
        .await
        .is_err()
    {
        tracing::warn!("the client is not reading; exiting with lines unsent");
    }
    0
}

async fn terminated(sigterm: &mut Option<tokio::signal::unix::Signal>) {
    match sigterm {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

struct Server {
    out: Outgoing,
    options: AppServerOptions,
    initialized: bool,
    threads: HashMap<String, ThreadHandle>,
}

impl Server {
    /// One framed line: answered with a protocol error if it is too long or
    /// not UTF-8 (the server reads on), else handled.
    async fn frame(&mut self, frame: Frame) {
        match frame {
            Frame::TooLong { .. } => self.out.error(
                None,
                JsonRpcError::new(
                    ErrorCode::InvalidRequest,
                    format!("line longer than {MAX_LINE_BYTES} bytes; skipped"),
                ),
            ),
            Frame::Line(bytes) => match std::str::from_utf8(&bytes) {
                Ok(line) if line.trim().is_empty() => {}
                Ok(line) => self.line(line).await,
                Err(e) => self.out.error(
                    None,
                    JsonRpcError::new(
                        ErrorCode::ParseError,
                        format!("not a JSON line: invalid UTF-8 at byte {}", e.valid_up_to()),
                    ),
                ),
            },
        }
    }

    async fn line(&mut self, line: &str) {
        let (id, method, params) = match parse_line(line) {
            Err((id, error)) => return self.out.error(id, error),
            Ok(Incoming::Notification { method, .. }) => {
                if method != "initialized" {
                    tracing::debug!(method, "ignoring a client notification");
                }
                return;
            }
            Ok(Incoming::Response { id, .. }) => {
                tracing::warn!(
                    ?id,
                    "ignoring a response to a request the server never sent"
                );
                return;
            }
            Ok(Incoming::Request { id, method, params }) => (id, method, params),
        };
        if !self.initialized && method != "initialize" {
            return self.out.error(
                Some(id),
                JsonRpcError::new(
                    ErrorCode::InvalidRequest,
                    "not initialized: send `initialize` first",
                ),
            );
        }
        let request = match ClientRequest::parse(&method, params) {
            Ok(request) => request,
            Err(error) => return self.out.error(Some(id), error),
        };
        match request {
            ClientRequest::Initialize(_) => self.initialize(id),
            ClientRequest::ThreadStart(params) => self.thread_start(id, params).await,
            ClientRequest::ThreadResume(params) => self.thread_resume(id, params).await,
            ClientRequest::TurnStart(ref p) => self.route(id, p.thread_id.clone(), request),
            ClientRequest::TurnSteer(ref p) => self.route(id, p.thread_id.clone(), request),
            ClientRequest::TurnInterrupt(ref p) => self.route(id, p.thread_id.clone(), request),
            ClientRequest::ThreadInterrupt(ref p) => self.route(id, p.thread_id.clone(), request),
            ClientRequest::QueueAdd(ref p) => self.route(id, p.thread_id.clone(), request),
            ClientRequest::QueueList(ref p) => self.route(id, p.thread_id.clone(), request),
            ClientRequest::QueueDelete(ref p) => self.route(id, p.thread_id.clone(), request),
        }
    }

    fn initialize(&mut self, id: RequestId) {
        if self.initialized {
            return self.out.error(
                Some(id),
                JsonRpcError::new(ErrorCode::InvalidRequest, "already initialized"),
            );
        }
        self.initialized = true;
        self.out.respond_with(
            id,
            &InitializeResponse {
                user_agent: format!("tiller/{}", env!("CARGO_PKG_VERSION")),
                platform_family: "unix".to_string(),
                platform_os: std::env::consts::OS.to_string(),
                codex_home: self.options.tiller_home.display().to_string(),
            },
        );
    }

    fn route(&mut self, id: RequestId, thread_id: String, request: ClientRequest) {
        let thread_id = canonical_id(&thread_id);
        let Some(thread) = self.threads.get(&thread_id) else {
            return self.out.error(
                Some(id),
                JsonRpcError::new(
                    ErrorCode::InvalidRequest,
                    format!("unknown thread {thread_id}"),
                ),
            );
        };
        if !thread.send(ThreadCommand::Request {
            id: id.clone(),
            request: Box::new(request),
        }) {
            self.threads.remove(&thread_id);
            self.out.error(
                Some(id),
                JsonRpcError::new(
                    ErrorCode::InvalidRequest,
                    format!("thread {thread_id} has shut down"),
                ),
            );
        }
    }

    /// A session builder with the overrides of `params`.
    fn builder(&self, params: &ThreadStartParams) -> SessionBuilder {
        let approval_policy = params
            .approval_policy
            .as_ref()
            .map(|value| match value.as_str() {
                Some("never") => ApprovalPolicy::Never,
                // `untrusted`, `on-request`, `on-failure`, granular: ask, which over the
                // app-server means deny what is off the read-only allowlist.
                _ => ApprovalPolicy::Untrusted,
            });
        let overrides = ConfigOverrides {
            model: params.model.clone(),
            provider: params.model_provider.clone(),
            approval_policy,
            cwd: params.cwd.clone().map(PathBuf::from),
            ..ConfigOverrides::default()
        };
        SessionBuilder::new(&self.options.tiller_home)
            .overrides(overrides)
            .base_instructions(params.base_instructions.clone())
            .developer_instructions(params.developer_instructions.clone())
    }

    async fn thread_start(&mut self, id: RequestId, params: ThreadStartParams) {
        match self.builder(&params).spawn().await {
            Ok(mut opened) => {
                let warnings = std::mem::take(&mut opened.warnings);
                let (handle, info) = self.spawn_thread(opened);
                let response = info.response(true);
                let thread = response.thread.clone();
                self.threads.insert(info.id.clone(), handle);
                self.out.respond_with(id, &response);
                self.out.notify(&ServerNotification::ThreadStarted(
                    ThreadStartedNotification { thread },
                ));
                self.warn(&info.id, warnings);
            }
            Err(error) => self.out.error(Some(id), core_error(&error)),
        }
    }

    /// The thread `thread_id` names (an id in any case, or a prefix of one):
    /// the loaded thread if it is loaded, so a second spelling never loads a
    /// second session on the same file.
    async fn loaded_thread(&self, thread_id: &str) -> Option<ThreadStartResponse> {
        let thread = self.threads.get(thread_id)?;
        let (tx, rx) = oneshot::channel();
        if !thread.send(ThreadCommand::Describe(tx)) {
            return None;
        }
        rx.await.ok()
    }

    async fn thread_resume(&mut self, id: RequestId, params: ThreadResumeParams) {
        let asked = canonical_id(&params.thread_id);
        if let Some(response) = self.loaded_thread(&asked).await {
            return self.out.respond_with(id, &response);
        }
        // Finding the file is blocking work: off the event loop.
        let home = self.options.tiller_home.clone();
        let found = tokio::task::spawn_blocking(move || {
            find_session(&home, &SessionQuery::Id(asked)).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let path = match found {
            Ok(path) => path,
            Err(message) => {
                return self.out.error(
                    Some(id),
                    JsonRpcError::new(ErrorCode::InvalidRequest, message),
                );
            }
        };
        if let Some(response) = match session_id_of(&path) {
            Some(canonical) => self.loaded_thread(canonical).await,
            None => None,
        } {
            return self.out.respond_with(id, &response);
        }
        let opened = self
            .builder(&params.overrides)
            .resume(Resume::Path(path))
            .spawn()
            .await;
        match opened {
            Ok(mut opened) => {
                let warnings = std::mem::take(&mut opened.warnings);
                let (handle, info) = self.spawn_thread(opened);
                self.out.respond_with(id, &info.response(true));
                self.threads.insert(info.id.clone(), handle);
                self.warn(&info.id, warnings);
            }
            Err(error) => self.out.error(Some(id), core_error(&error)),
        }
    }

    /// What opening a thread warned about (its config, a folder that is
    /// gone), as `warning` notifications after the response, and in the log.
    fn warn(&self, thread_id: &str, warnings: Vec<String>) {
        for message in warnings {
            tracing::warn!("{message}");
            self.out
                .notify(&ServerNotification::Warning(WarningNotification {
                    thread_id: Some(thread_id.to_string()),
                    message,
                }));
        }
    }

    /// A driver for an opened session: its saved turns, queue and answers
    /// restored.
    fn spawn_thread(&self, opened: OpenedSession) -> (ThreadHandle, ThreadInfo) {
        let config = &opened.config;
        let id = opened.handle.session_id().to_string();
        let (preview, turns, queue, replies) = match &opened.resumed {
            Some(resumed) => {
                let turns = recorded_turns(resumed);
                let replies = restored_replies(resumed, &turns);
                (
                    resumed.first_prompt.clone().unwrap_or_default(),
                    turns,
                    restored_queue(resumed),
                    replies,
                )
            }
            None => (String::new(), Vec::new(), Vec::new(), Replies::new()),
        };
        let info = ThreadInfo {
            created_at: created_secs(&id),
            id,
            model: config.model.clone(),
            provider: config.provider.id.clone(),
            cwd: config.cwd.display().to_string(),
            approval_policy: config.approval_policy.to_string(),
            preview,
            turns,
        };
        let handle = spawn_driver(
            info.clone(),
            opened.handle,
            opened.events,
            self.out.clone(),
            queue,
            replies,
        );
        (handle, info)
    }

    /// Interrupt every running turn (processes killed, rollouts flushed), within a deadline.
    async fn shutdown(&mut self) {
        let mut waits = Vec::new();
        for (_, thread) in self.threads.drain() {
            let (tx, rx) = oneshot::channel();
            if thread.send(ThreadCommand::Shutdown(tx)) {
                waits.push(rx);
            }
        }
        let all = async {
            for wait in waits {
                let _ = wait.await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_DEADLINE, all).await.is_err() {
            tracing::warn!("some threads did not shut down in time");
        }
    }
}

/// A thread id as the server keys its threads: session ids are lowercase
/// UUIDs, and a client may send one in upper case.
fn canonical_id(thread_id: &str) -> String {
    thread_id.trim().to_ascii_lowercase()
}

/// A saved queue entry as the wire shows it: the input as the client gave it.
fn queued_submission(q: &QueuedInput) -> QueuedSubmission {
    QueuedSubmission {
        id: q.id.clone(),
        client_user_message_id: q.client_message_id.clone(),
        input: q
            .original
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_else(|| wire_input(&q.items)),
    }
}

/// The queue a resumed thread starts with: the last one saved, without the
/// entries that a turn started after it already carries (the process died
/// between starting that turn and saving the emptied queue). A turn whose
/// input never reached the rollout carries nothing: its entries stay queued.
fn restored_queue(loaded: &Resumed) -> Vec<QueuedSubmission> {
    let started: HashSet<&str> = loaded
        .turns
        .iter()
        .filter(|turn| !turn.history.is_empty())
        .filter_map(|turn| turn.client_message_id.as_deref())
        .filter_map(entries_started_by)
        .flatten()
        .collect();
    loaded
        .queue
        .items
        .iter()
        .filter(|q| !started.contains(q.id.as_str()))
        .map(queued_submission)
        .collect()
}

/// Results already given before a restart, by `clientUserMessageId`, so a
/// client that resends after reconnecting gets the original answer: the turns
/// that were started with one, and every message ever queued (also those that
/// have run or were deleted since: a repeat must not queue them again).
fn restored_replies(loaded: &Resumed, turns: &[Turn]) -> Replies {
    let mut replies = Replies::new();
    for (recorded, turn) in loaded.turns.iter().zip(turns) {
        if let Some(id) = &recorded.client_message_id
            && entries_started_by(id).is_none()
            && let Ok(result) = serde_json::to_value(TurnStartResponse {
                turn: Turn {
                    items: Vec::new(),
                    ..turn.clone()
                },
            })
        {
            replies.insert((Idempotent::TurnStart, id.clone()), result);
        }
    }
    for entry in loaded.queued_ever.iter().map(queued_submission) {
        if let Some(id) = &entry.client_user_message_id
            && let Ok(result) = serde_json::to_value(QueueAddResponse {
                queued_submission: entry.clone(),
            })
        {
            replies.insert((Idempotent::QueueAdd, id.clone()), result);
        }
    }
    replies
}

/// The turns of a rollout as `thread/resume` shows them: the items the
/// engine recorded, mapped as live notifications map them.
fn recorded_turns(resumed: &Resumed) -> Vec<Turn> {
    resumed
        .turns
        .iter()
        .map(|turn| Turn {
            id: turn.id.clone(),
            items: turn.items.iter().map(thread_item).collect(),
            status: match turn.status {
                LastTurn::Completed => TurnStatus::Completed,
                LastTurn::Failed => TurnStatus::Failed,
                LastTurn::Interrupted | LastTurn::Replaced | LastTurn::CutOff => {
                    TurnStatus::Interrupted
                }
            },
            error: turn.error.as_ref().map(|e| TurnError {
                message: e.message.clone(),
                additional_details: None,
            }),
            started_at: None,
            completed_at: None,
            duration_ms: None,
        })
        .collect()
}

/// A core error as the client reads it: a session that cannot be saved is
/// the server's failure; the rest (config, key, lock, lookup) is what the
/// request asked for.
fn core_error(error: &CoreError) -> JsonRpcError {
    let code = match error {
        CoreError::Rollout(_) => ErrorCode::InternalError,
        CoreError::Config(_) => ErrorCode::InvalidParams,
        CoreError::RolloutRead(_) | CoreError::Lookup(_) | CoreError::ModelClient(_) => {
            ErrorCode::InvalidRequest
        }
    };
    JsonRpcError::new(code, error.to_string())
}
