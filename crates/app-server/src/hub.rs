//! What every connection of one server shares: the loaded threads.
//!
//! A thread is loaded once per process, whichever connection starts or
//! resumes it, and stays loaded when connections come and go: its turn runs
//! on without any connection, and a later `thread/resume` (on any connection)
//! subscribes that connection to its notifications. Opening is serialized
//! ([`Hub::opening`]), so two connections resuming the same thread at once
//! load it once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tiller_app_server_protocol::{
    ClientRequest, ErrorCode, JsonRpcError, RequestId, ServerNotification, ThreadForkParams,
    ThreadForkResponse, ThreadItemsListParams, ThreadListParams, ThreadMetadataUpdateParams,
    ThreadNameUpdatedNotification, ThreadReadParams, ThreadReadResponse, ThreadResumeParams,
    ThreadSetNameParams, ThreadStartParams, ThreadStartedNotification, ThreadStatus,
    ThreadTurnsListParams, Turn, TurnStatus, WarningNotification,
};
use tiller_core::config::ConfigOverrides;
use tiller_core::rollout::store::{SessionQuery, find_session, session_id_of};
use tiller_core::rollout::{ForkEnd, fork};
use tiller_core::{CoreError, OpenedSession, Resume, SessionBuilder};
use tokio::sync::oneshot;

use crate::convert::{created_secs, to_value};
use crate::names::{MAX_NAME_BYTES, Names};
use crate::outgoing::{ConnectionId, Outgoing};
use crate::policy;
use crate::restore::{restored_queue, restored_replies, saved_turns};
use crate::saved;

mod archive;
use crate::thread::{
    Replies, ThreadCommand, ThreadDriver, ThreadHandle, ThreadInfo, new_driver, thread_of_request,
};

/// How long shutdown waits for running turns to be interrupted.
const SHUTDOWN_DEADLINE: Duration = Duration::from_millis(900);

/// Settings of one server process.
#[derive(Debug, Clone)]
pub struct AppServerOptions {
    /// `$TILLER_HOME`: config and sessions.
    pub tiller_home: PathBuf,
    /// `-c key=value` overrides, applied to every thread.
    pub cli_overrides: Vec<(String, String)>,
}

impl AppServerOptions {
    /// Options for `tiller_home` with no overrides.
    pub fn new(tiller_home: PathBuf) -> AppServerOptions {
        AppServerOptions {
            tiller_home,
            cli_overrides: Vec::new(),
        }
    }
}

/// The loaded threads of one server process.
pub(crate) struct Hub {
    options: AppServerOptions,
    names: Names,
    threads: Mutex<HashMap<String, ThreadHandle>>,
    /// Held while a thread is looked up and loaded.
    opening: tokio::sync::Mutex<()>,
}

impl Hub {
    pub(crate) fn new(options: AppServerOptions) -> Hub {
        Hub {
            names: Names::new(&options.tiller_home),
            options,
            threads: Mutex::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn options(&self) -> &AppServerOptions {
        &self.options
    }

    fn threads(&self) -> MutexGuard<'_, HashMap<String, ThreadHandle>> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn thread(&self, thread_id: &str) -> Option<ThreadHandle> {
        self.threads().get(thread_id).cloned()
    }

    /// The ids of the loaded threads.
    pub(crate) fn loaded(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.threads().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Send `request` to its thread's driver, which answers `from`.
    pub(crate) fn route(
        &self,
        id: RequestId,
        thread_id: &str,
        request: ClientRequest,
        from: &Outgoing,
    ) {
        let thread_id = canonical_id(thread_id);
        let Some(thread) = self.thread(&thread_id) else {
            return from.error(Some(id), unknown_thread(&thread_id));
        };
        if !thread.send(ThreadCommand::Request {
            id: id.clone(),
            request: Box::new(request),
            from: from.clone(),
        }) {
            self.threads().remove(&thread_id);
            from.error(
                Some(id),
                JsonRpcError::new(
                    ErrorCode::InvalidRequest,
                    format!("thread {thread_id} has shut down"),
                ),
            );
        }
    }

    /// A session builder with the server's overrides and those of
    /// `params` (of `method`), and what opening with them should warn
    /// about; -32602 for a policy tiller cannot run.
    fn builder(
        &self,
        method: &str,
        params: &ThreadStartParams,
    ) -> Result<(SessionBuilder, Vec<String>), JsonRpcError> {
        policy::no_permissions(method, params.permissions.as_ref(), "sandbox")?;
        let mut warnings = Vec::new();
        let approval_policy =
            policy::given_approval(method, params.approval_policy.as_ref(), &mut warnings)?;
        let sandbox_mode = match &params.sandbox {
            None | Some(Value::Null) => None,
            Some(value) => Some(policy::sandbox_mode(method, value)?),
        };
        let mut cli_overrides = self.options.cli_overrides.clone();
        cli_overrides.extend(params.config_overrides());
        let overrides = ConfigOverrides {
            model: params.model.clone(),
            provider: params.model_provider.clone(),
            approval_policy,
            sandbox_mode,
            cwd: params.cwd.clone().map(PathBuf::from),
            cli_overrides,
            ..ConfigOverrides::default()
        };
        let builder = SessionBuilder::new(&self.options.tiller_home)
            .overrides(overrides)
            .base_instructions(params.base_instructions.clone())
            .developer_instructions(params.developer_instructions.clone());
        Ok((builder, warnings))
    }

    /// `thread/start`: a new session, its driver, `from` subscribed.
    pub(crate) async fn thread_start(
        &self,
        id: RequestId,
        params: ThreadStartParams,
        from: &Outgoing,
    ) {
        let (builder, warnings) = match self.builder("thread/start", &params) {
            Ok(built) => built,
            Err(error) => return from.error(Some(id), error),
        };
        let opened = with_warnings(builder.spawn().await, warnings);
        self.open_thread(opened, id, from, true, |info| {
            info.response(true, info.turns.clone())
        });
    }

    /// Load an opened session as a thread with `from` subscribed, answer
    /// `id` with `answer(info)`, then (if `started`) `thread/started`, then
    /// what opening it warned about. An error opening it is the answer.
    fn open_thread<T: serde::Serialize>(
        &self,
        opened: Result<OpenedSession, CoreError>,
        id: RequestId,
        from: &Outgoing,
        started: bool,
        answer: impl FnOnce(&ThreadInfo) -> T,
    ) {
        match opened {
            Ok(mut opened) => {
                let warnings = std::mem::take(&mut opened.warnings);
                let (handle, driver, info) = self.load_thread(opened, from);
                let response = answer(&info);
                self.threads().insert(info.id.clone(), handle);
                from.respond_with(id, &response);
                if started {
                    from.notify(&ServerNotification::ThreadStarted(
                        ThreadStartedNotification {
                            thread: info.thread(true, Vec::new()),
                        },
                    ));
                }
                warn(from, &info.id, warnings);
                // What the thread says (its MCP servers starting, say) comes
                // after all that.
                driver.spawn();
            }
            Err(error) => from.error(Some(id), core_error(&error)),
        }
    }

    /// `thread/resume`: the loaded thread if it is loaded (any spelling of
    /// its id), else the saved one loaded; `from` is subscribed either way.
    pub(crate) async fn thread_resume(
        &self,
        id: RequestId,
        params: ThreadResumeParams,
        from: &Outgoing,
    ) {
        let (builder, warnings) = match self.builder("thread/resume", &params.overrides) {
            Ok(built) => built,
            Err(error) => return from.error(Some(id), error),
        };
        let _opening = self.opening.lock().await;
        let asked = canonical_id(&params.thread_id);
        if let Some(thread) = self.thread(&asked) {
            return self.rejoin(id, &asked, thread, from);
        }
        // Finding the file is blocking work: off the event loop.
        let home = self.options.tiller_home.clone();
        let query = asked.clone();
        let found = tokio::task::spawn_blocking(move || {
            find_session(&home, &SessionQuery::Id(query)).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let path = match found {
            Ok(path) => path,
            Err(message) => {
                return from.error(
                    Some(id),
                    JsonRpcError::new(ErrorCode::InvalidRequest, message),
                );
            }
        };
        if let Some(canonical) = session_id_of(&path)
            && let Some(thread) = self.thread(canonical)
        {
            return self.rejoin(id, canonical, thread, from);
        }
        let opened = builder.resume(Resume::Path(path)).spawn().await;
        let opened = with_warnings(opened, warnings);
        self.open_thread(opened, id, from, false, |info| {
            info.response(true, info.turns.clone())
        });
    }

    /// `thread/fork`: a new thread with the history of another (up to a
    /// turn), loaded, and `from` subscribed; then `thread/started`.
    pub(crate) async fn thread_fork(
        &self,
        id: RequestId,
        params: ThreadForkParams,
        from: &Outgoing,
    ) {
        let (builder, warnings) = match self.builder("thread/fork", &params.overrides) {
            Ok(built) => built,
            Err(error) => return from.error(Some(id), error),
        };
        let forked = match self.fork_file(&params).await {
            Ok(path) => path,
            Err(error) => return from.error(Some(id), error),
        };
        let opened = builder.resume(Resume::Path(forked)).spawn().await;
        let opened = with_warnings(opened, warnings);
        self.open_thread(opened, id, from, true, |info| {
            let turns = if params.exclude_turns {
                Vec::new()
            } else {
                info.turns.clone()
            };
            ThreadForkResponse {
                started: info.response(true, turns),
                service_tier: None,
                disabled_plugin_ids: Vec::new(),
                runtime_workspace_roots: Vec::new(),
                instruction_sources: Vec::new(),
                active_permission_profile: None,
                reasoning_effort: None,
                multi_agent_mode: "explicitRequestOnly".to_string(),
            }
        });
    }

    /// The fork's rollout: the source's lines up to the turn the params
    /// name (a running turn is never carried: it has not ended).
    async fn fork_file(&self, params: &ThreadForkParams) -> Result<PathBuf, JsonRpcError> {
        let invalid = |message: String| JsonRpcError::new(ErrorCode::InvalidParams, message);
        if params.path.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(invalid(
                "thread/fork by path is not supported; fork by threadId".to_string(),
            ));
        }
        if params.ephemeral {
            return Err(invalid(
                "tiller has no ephemeral threads: every thread is saved".to_string(),
            ));
        }
        if params.last_turn_id.is_some() && params.before_turn_id.is_some() {
            return Err(invalid(
                "lastTurnId and beforeTurnId cannot be combined".to_string(),
            ));
        }
        let rollout = saved::load(&self.options.tiller_home, &params.thread_id).await?;
        // A loaded thread is flushed first, and may be running a turn.
        let (turns, running) = match self.thread(&rollout.meta.id) {
            Some(loaded) => {
                let turns = loaded.turns().await?;
                let running = turns
                    .iter()
                    .find(|t| t.status == TurnStatus::InProgress)
                    .map(|t| t.id.clone());
                (turns.into_iter().map(|t| t.id).collect::<Vec<_>>(), running)
            }
            None => (rollout.turns.iter().map(|t| t.id.clone()).collect(), None),
        };
        let position = |turn: &str| {
            turns.iter().position(|t| t == turn).ok_or_else(|| {
                JsonRpcError::new(
                    ErrorCode::InvalidRequest,
                    format!("no turn {turn} in thread {}", rollout.meta.id),
                )
            })
        };
        let end = match (&params.last_turn_id, &params.before_turn_id) {
            (Some(last), _) => {
                if running.as_deref() == Some(last.as_str()) {
                    return Err(JsonRpcError::new(
                        ErrorCode::InvalidRequest,
                        format!("turn {last} is in progress; fork before it or wait for its end"),
                    ));
                }
                match turns.get(position(last)? + 1) {
                    Some(next) => ForkEnd::Before(next.clone()),
                    None => ForkEnd::All,
                }
            }
            (None, Some(before)) => {
                position(before)?;
                ForkEnd::Before(before.to_string())
            }
            (None, None) => running.map_or(ForkEnd::All, ForkEnd::Before),
        };
        let home = self.options.tiller_home.clone();
        let source = rollout.path.clone();
        let new_id = uuid::Uuid::now_v7().to_string();
        tokio::task::spawn_blocking(move || fork(&home, &source, &new_id, &end))
            .await
            .map_err(|e| JsonRpcError::new(ErrorCode::InternalError, e.to_string()))?
            .map_err(|e| {
                JsonRpcError::new(ErrorCode::InternalError, format!("could not fork: {e}"))
            })
    }

    /// `thread/resume` of a loaded thread: its driver answers with the turns
    /// so far and subscribes `from`.
    fn rejoin(&self, id: RequestId, thread_id: &str, thread: ThreadHandle, from: &Outgoing) {
        if !thread.send(ThreadCommand::Resume {
            id: id.clone(),
            from: from.clone(),
        }) {
            self.threads().remove(thread_id);
            from.error(Some(id), unknown_thread(thread_id));
        }
    }

    /// A driver for an opened session, with `from` subscribed: its saved
    /// turns, queue and answers restored. It runs once spawned.
    fn load_thread(
        &self,
        opened: OpenedSession,
        from: &Outgoing,
    ) -> (ThreadHandle, ThreadDriver, ThreadInfo) {
        let config = &opened.config;
        let id = opened.handle.session_id().to_string();
        let (preview, turns, queue, replies) = match &opened.resumed {
            Some(resumed) => {
                let turns = saved_turns(&resumed.turns, None);
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
            name: self.names.get(&id),
            failed: Arc::new(AtomicBool::new(false)),
            id,
            model: config.model.clone(),
            provider: config.provider.id.clone(),
            cwd: config.cwd.display().to_string(),
            approval_policy: config.approval_policy,
            sandbox: config.sandbox.clone(),
            preview,
            turns,
        };
        let (handle, driver) = new_driver(
            info.clone(),
            opened.handle,
            opened.events,
            from.clone(),
            queue,
            replies,
        );
        (handle, driver, info)
    }

    /// `thread/unsubscribe`: `from` gets no more of `thread_id`'s
    /// notifications. The thread stays loaded (its turn runs on, another
    /// connection may be subscribed, and `thread/resume` subscribes again).
    pub(crate) async fn unsubscribe(&self, thread_id: &str, from: &Outgoing) -> &'static str {
        let Some(thread) = self.thread(&canonical_id(thread_id)) else {
            return "notLoaded";
        };
        let (tx, rx) = oneshot::channel();
        let sent = thread.send(ThreadCommand::Unsubscribe {
            connection: from.id(),
            done: Some(tx),
        });
        match (sent, rx.await) {
            (true, Ok(true)) => "unsubscribed",
            (true, Ok(false)) => "notSubscribed",
            _ => "notLoaded",
        }
    }

    /// `thread/read`: a loaded thread as it stands, else the saved one.
    pub(crate) async fn thread_read(
        &self,
        params: ThreadReadParams,
    ) -> Result<Value, JsonRpcError> {
        let thread = match self.thread(&canonical_id(&params.thread_id)) {
            Some(loaded) => loaded.read(params.include_turns).await?,
            None => {
                let rollout = saved::load(&self.options.tiller_home, &params.thread_id).await?;
                match self.thread(&rollout.meta.id) {
                    Some(loaded) => loaded.read(params.include_turns).await?,
                    None => {
                        saved::thread_of(&rollout, ThreadStatus::NotLoaded, params.include_turns)
                    }
                }
            }
        };
        let mut thread = thread;
        thread.name = self.names.get(&thread.id);
        to_value(&ThreadReadResponse {
            thread,
            read_state: None,
        })
    }

    /// `thread/metadata/update`: tiller keeps no project or git metadata, so
    /// a request that would set some is refused by name (clearing is a
    /// no-op); the answer is the thread.
    pub(crate) async fn metadata_update(
        &self,
        params: ThreadMetadataUpdateParams,
    ) -> Result<Value, JsonRpcError> {
        for (key, value) in &params.fields {
            let clears = value.is_null() || value.as_str() == Some("");
            if !clears {
                return Err(JsonRpcError::new(
                    ErrorCode::InvalidParams,
                    format!("thread/metadata/update: tiller keeps no `{key}` for a thread yet"),
                ));
            }
        }
        let read = self
            .thread_read(ThreadReadParams {
                thread_id: params.thread_id,
                include_turns: false,
            })
            .await?;
        Ok(serde_json::json!({ "thread": read["thread"] }))
    }

    /// Every turn of a thread so far, oldest first: a loaded thread's as it
    /// stands, else the saved one's.
    async fn all_turns(&self, thread_id: &str) -> Result<Vec<Turn>, JsonRpcError> {
        Ok(match self.thread(&canonical_id(thread_id)) {
            Some(loaded) => loaded.turns().await?,
            None => {
                let rollout = saved::load(&self.options.tiller_home, thread_id).await?;
                match self.thread(&rollout.meta.id) {
                    Some(loaded) => loaded.turns().await?,
                    None => saved_turns(&rollout.turns, None),
                }
            }
        })
    }

    /// `thread/items/list`: a page of a thread's items, newest first by default.
    pub(crate) async fn items_list(
        &self,
        params: ThreadItemsListParams,
    ) -> Result<Value, JsonRpcError> {
        let turns = self.all_turns(&params.thread_id).await?;
        to_value(&saved::items_page(turns, &params)?)
    }

    /// `thread/turns/list`: a page of a thread's turns, newest first by default.
    pub(crate) async fn turns_list(
        &self,
        params: ThreadTurnsListParams,
    ) -> Result<Value, JsonRpcError> {
        let turns = self.all_turns(&params.thread_id).await?;
        to_value(&saved::turns_page(
            turns,
            params.cursor.as_deref(),
            params.limit,
            params.sort_direction,
        )?)
    }

    /// `thread/list`: the saved threads; a loaded one shows its status.
    pub(crate) async fn thread_list(
        &self,
        params: ThreadListParams,
    ) -> Result<Value, JsonRpcError> {
        let loaded: HashMap<String, ThreadStatus> = self
            .threads()
            .iter()
            .map(|(id, thread)| (id.clone(), thread.status()))
            .collect();
        let mut listed = saved::list(&self.options.tiller_home, params, |id| {
            loaded.get(id).cloned().unwrap_or(ThreadStatus::NotLoaded)
        })
        .await?;
        for thread in &mut listed.data {
            thread.name = self.names.get(&thread.id);
        }
        to_value(&listed)
    }

    /// A client's answer to a server request: to the thread that asked (its
    /// id says which). An answer to nothing the server asked is ignored.
    pub(crate) fn answer(&self, id: RequestId, result: Result<Value, Value>, from: &Outgoing) {
        match thread_of_request(&id).and_then(|t| self.thread(t)) {
            Some(thread) => {
                thread.send(ThreadCommand::Answer {
                    id,
                    result,
                    from: from.id(),
                });
            }
            None => tracing::warn!(
                ?id,
                "ignoring a response to a request the server never sent"
            ),
        }
    }

    /// `thread/name/set`: kept (durably) and shown from now on; `{}`, then
    /// `thread/name/updated` to the thread's subscribers (or to `from`, when
    /// the thread is not loaded).
    pub(crate) async fn set_name(
        &self,
        params: ThreadSetNameParams,
    ) -> Result<(Value, Option<ServerNotification>), JsonRpcError> {
        let name = params.name.trim().to_string();
        if name.len() > MAX_NAME_BYTES {
            return Err(JsonRpcError::new(
                ErrorCode::InvalidParams,
                format!("a thread name is at most {MAX_NAME_BYTES} bytes"),
            ));
        }
        let id = canonical_id(&params.thread_id);
        let id = match self.thread(&id) {
            Some(_) => id,
            None => {
                match tiller_core::rollout::archive::find_archived(&self.options.tiller_home, &id) {
                    Some(_) => id,
                    None => saved::load(&self.options.tiller_home, &id).await?.meta.id,
                }
            }
        };
        self.names.set(&id, &name).map_err(|e| {
            JsonRpcError::new(
                ErrorCode::InternalError,
                format!("could not save the name: {e}"),
            )
        })?;
        let name = (!name.is_empty()).then_some(name);
        match self.thread(&id) {
            Some(loaded) => {
                loaded.send(ThreadCommand::Renamed(name));
                Ok((serde_json::json!({}), None))
            }
            None => Ok((
                serde_json::json!({}),
                Some(ServerNotification::ThreadNameUpdated(
                    ThreadNameUpdatedNotification {
                        thread_id: id,
                        thread_name: name,
                    },
                )),
            )),
        }
    }

    /// A connection is gone: no thread sends it anything more (they run on).
    pub(crate) fn connection_closed(&self, connection: ConnectionId) {
        for thread in self.threads().values() {
            thread.send(ThreadCommand::Unsubscribe {
                connection,
                done: None,
            });
        }
    }

    /// Interrupt every running turn (processes killed, rollouts flushed), within a deadline.
    pub(crate) async fn shutdown(&self) {
        let threads: Vec<ThreadHandle> = self.threads().drain().map(|(_, t)| t).collect();
        let mut waits = Vec::new();
        for thread in threads {
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

/// `opened`, with `warnings` about how its params were read after what
/// opening it warned about.
fn with_warnings(
    opened: Result<OpenedSession, CoreError>,
    warnings: Vec<String>,
) -> Result<OpenedSession, CoreError> {
    opened.map(|mut opened| {
        opened.warnings.extend(warnings);
        opened
    })
}

/// What opening a thread warned about (its config, a folder that is gone),
/// as `warning` notifications after the response, and in the log.
fn warn(to: &Outgoing, thread_id: &str, warnings: Vec<String>) {
    for message in warnings {
        tracing::warn!("{message}");
        to.notify(&ServerNotification::Warning(WarningNotification {
            thread_id: Some(thread_id.to_string()),
            message,
        }));
    }
}

/// A thread id as the server keys its threads: session ids are lowercase
/// UUIDs, and a client may send one in upper case.
pub(crate) fn canonical_id(thread_id: &str) -> String {
    thread_id.trim().to_ascii_lowercase()
}

pub(crate) fn unknown_thread(thread_id: &str) -> JsonRpcError {
    JsonRpcError::new(
        ErrorCode::InvalidRequest,
        format!("unknown thread {thread_id}"),
    )
}

/// A core error as the client reads it: a config that does not load or a
/// session that cannot be saved is the server's failure (-32603, naming the
/// file, line and key); a session that is not there, is in use or cannot
/// be read is what the request asked for (-32600).
pub(crate) fn core_error(error: &CoreError) -> JsonRpcError {
    let code = match error {
        CoreError::Rollout(_) | CoreError::Config(_) | CoreError::ModelClient(_) => {
            ErrorCode::InternalError
        }
        CoreError::RolloutRead(_) | CoreError::Lookup(_) => ErrorCode::InvalidRequest,
    };
    JsonRpcError::new(code, error.to_string())
}
