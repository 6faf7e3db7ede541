//! The client: typed calls on the current server, and reconnect + resume.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tiller_app_server_protocol::{
    InitializeParams, InitializeResponse, JsonRpcError, McpServerElicitationAction,
    McpServerElicitationResponse, QueueAddParams, QueueAddResponse, QueueDeleteParams,
    QueueDeleteResponse, QueueListParams, QueueListResponse, QueuedSubmission, RequestId,
    ThreadInterruptParams, ThreadInterruptResponse, ThreadResumeParams, ThreadStartParams,
    ThreadStartResponse, TurnInterruptParams, TurnInterruptResponse, TurnStartParams,
    TurnStartResponse, TurnSteerParams, TurnSteerResponse, UserInput,
};
use tokio::sync::mpsc;

use crate::connection::ConnectionHandle;
use crate::error::{ClientError, SteerRejected};
use crate::event::ClientEvent;
use crate::options::ClientOptions;
use crate::transport;

/// The receiving end of a client's event stream: notifications in the order
/// the server sent them, synthetic terminal notifications, and one
/// [`ClientEvent::Disconnected`] per server. Unbounded, so a slow consumer
/// never stalls the connection and nothing is dropped.
pub type EventReceiver = mpsc::UnboundedReceiver<ClientEvent>;

/// A client of one app-server at a time. Cheap to clone; every clone talks to
/// the same server.
///
/// Ordering: requests go out in the order the calls are made (a request is
/// written before its call first waits). Every notification the server sent
/// before answering a request is on the event stream by the time the call
/// returns.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: ClientOptions,
    events: mpsc::UnboundedSender<ClientEvent>,
    /// The current server; `None` after [`Client::shutdown`].
    connection: Mutex<Option<ConnectionHandle>>,
    initialize: Mutex<Option<InitializeResponse>>,
    /// Threads started or resumed through this client, in that order, with
    /// the overrides they were started with: resumed on reconnect.
    threads: Mutex<Vec<(String, ThreadStartParams)>>,
    next_id: AtomicI64,
    generations: AtomicU64,
    /// One reconnect at a time.
    reconnecting: tokio::sync::Mutex<()>,
}

/// Lock a mutex for one statement; a panic elsewhere does not poison the client.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Client {
    /// Start the server, send `initialize` and `initialized`, and return the
    /// client with its event stream.
    pub async fn spawn(options: ClientOptions) -> Result<(Client, EventReceiver), ClientError> {
        let (events, receiver) = mpsc::unbounded_channel();
        let client = Client {
            inner: Arc::new(Inner {
                options,
                events,
                connection: Mutex::new(None),
                initialize: Mutex::new(None),
                threads: Mutex::new(Vec::new()),
                next_id: AtomicI64::new(1),
                generations: AtomicU64::new(0),
                reconnecting: tokio::sync::Mutex::new(()),
            }),
        };
        let connection = client.connect().await?;
        *lock(&client.inner.connection) = Some(connection);
        Ok((client, receiver))
    }

    /// The server's process id, while there is a server.
    pub fn pid(&self) -> Option<u32> {
        lock(&self.inner.connection)
            .as_ref()
            .and_then(ConnectionHandle::pid)
    }

    /// Which server this is: 1 for the first, one more per reconnect.
    pub fn generation(&self) -> u64 {
        lock(&self.inner.connection)
            .as_ref()
            .map_or(0, ConnectionHandle::generation)
    }

    /// Whether the current server is still there as far as the client knows
    /// (false from the moment it noticed the server went away).
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.connection)
            .as_ref()
            .is_some_and(ConnectionHandle::is_connected)
    }

    /// What the current server answered to `initialize`.
    pub fn server_info(&self) -> Option<InitializeResponse> {
        lock(&self.inner.initialize).clone()
    }

    /// The ids of the threads this client started or resumed: the ones
    /// [`Client::reconnect`] resumes.
    pub fn threads(&self) -> Vec<String> {
        lock(&self.inner.threads)
            .iter()
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Any request, with the method's timeout: for methods without a typed
    /// call here.
    pub async fn request<P, R>(&self, method: &str, params: &P) -> Result<R, ClientError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let connection = lock(&self.inner.connection)
            .clone()
            .ok_or(ClientError::Disconnected)?;
        self.request_on(&connection, method, params).await
    }

    /// Answer the server's request `id` (a
    /// [`ClientEvent::ServerRequest`]): `Ok` is sent as its `result` (for an
    /// approval, `{"decision": "accept"}` or `{"decision": "decline"}`),
    /// `Err` as its `error`. The answer goes to the current server; a request
    /// of a server that has since gone away cannot be answered, and one the
    /// server stopped waiting for is ignored by it.
    pub fn respond(
        &self,
        id: RequestId,
        result: Result<Value, JsonRpcError>,
    ) -> Result<(), ClientError> {
        lock(&self.inner.connection)
            .as_ref()
            .ok_or(ClientError::Disconnected)?
            .respond(id, result)
    }

    /// Answer an `mcpServer/elicitation/request`
    /// ([`ServerRequest::McpServerElicitation`](tiller_app_server_protocol::ServerRequest::McpServerElicitation))
    /// `id`: `accept` with `content` (an object that fits its requested
    /// schema), `decline`, or `cancel`. As [`Client::respond`], the answer
    /// goes to the current server.
    pub fn respond_elicitation(
        &self,
        id: RequestId,
        action: McpServerElicitationAction,
        content: Option<Value>,
    ) -> Result<(), ClientError> {
        let response = McpServerElicitationResponse {
            action,
            content,
            meta: None,
        };
        let result = serde_json::to_value(&response).map_err(|e| {
            ClientError::Protocol(format!("could not encode the elicitation's answer: {e}"))
        })?;
        self.respond(id, Ok(result))
    }

    /// `thread/start`; the thread is resumed by [`Client::reconnect`].
    pub async fn thread_start(
        &self,
        params: ThreadStartParams,
    ) -> Result<ThreadStartResponse, ClientError> {
        let started: ThreadStartResponse = self.request("thread/start", &params).await?;
        self.remember(&started.thread.id, params);
        Ok(started)
    }

    /// `thread/resume` of a saved thread (or a loaded one); the thread is
    /// resumed again by [`Client::reconnect`].
    pub async fn thread_resume(&self, thread_id: &str) -> Result<ThreadStartResponse, ClientError> {
        let params = ThreadResumeParams {
            thread_id: thread_id.to_owned(),
            overrides: self.overrides_of(thread_id),
        };
        let resumed: ThreadStartResponse = self.request("thread/resume", &params).await?;
        self.remember(thread_id, params.overrides);
        Ok(resumed)
    }

    /// `turn/start`. With a `client_user_message_id`, sending the same call
    /// again (after a timeout or a reconnect) starts nothing new.
    pub async fn turn_start(
        &self,
        thread_id: &str,
        input: Vec<UserInput>,
        client_user_message_id: Option<String>,
    ) -> Result<TurnStartResponse, ClientError> {
        let params = TurnStartParams {
            thread_id: thread_id.to_owned(),
            input,
            client_user_message_id,
            settings: Default::default(),
        };
        self.request("turn/start", &params).await
    }

    /// `turn/steer`: add input to the running turn `expected_turn_id`. When it
    /// is not accepted the input comes back in [`SteerRejected`]; it is never
    /// sent again by the client.
    pub async fn turn_steer(
        &self,
        thread_id: &str,
        expected_turn_id: &str,
        input: Vec<UserInput>,
        client_user_message_id: Option<String>,
    ) -> Result<TurnSteerResponse, SteerRejected> {
        let params = TurnSteerParams {
            thread_id: thread_id.to_owned(),
            expected_turn_id: expected_turn_id.to_owned(),
            input,
            client_user_message_id,
        };
        match self.request("turn/steer", &params).await {
            Ok(steered) => Ok(steered),
            Err(error) => Err(SteerRejected {
                error,
                input: params.input,
                client_user_message_id: params.client_user_message_id,
            }),
        }
    }

    /// `turn/interrupt`: interrupt the running turn `turn_id`.
    pub async fn turn_interrupt(
        &self,
        thread_id: &str,
        turn_id: &str,
    ) -> Result<TurnInterruptResponse, ClientError> {
        let params = TurnInterruptParams {
            thread_id: thread_id.to_owned(),
            turn_id: turn_id.to_owned(),
        };
        self.request("turn/interrupt", &params).await
    }

    /// tiller's `thread/interrupt`: interrupt whatever turn is running; a
    /// no-op when none is.
    pub async fn thread_interrupt(
        &self,
        thread_id: &str,
    ) -> Result<ThreadInterruptResponse, ClientError> {
        let params = ThreadInterruptParams {
            thread_id: thread_id.to_owned(),
        };
        self.request("thread/interrupt", &params).await
    }

    /// `thread/queue/add`. Returns once the server has accepted (and
    /// persisted) the entry, never before; when the thread is idle the entry
    /// starts a turn at once instead of waiting in the queue.
    pub async fn queue_add(
        &self,
        thread_id: &str,
        input: Vec<UserInput>,
        client_user_message_id: Option<String>,
    ) -> Result<QueuedSubmission, ClientError> {
        let params = QueueAddParams {
            thread_id: thread_id.to_owned(),
            client_user_message_id,
            input,
            responsesapi_client_metadata: None,
        };
        let added: QueueAddResponse = self.request("thread/queue/add", &params).await?;
        Ok(added.queued_submission)
    }

    /// `thread/queue/list`: the whole queue, page after page.
    pub async fn queue_list(&self, thread_id: &str) -> Result<Vec<QueuedSubmission>, ClientError> {
        let mut entries = Vec::new();
        let mut cursor = None;
        loop {
            let params = QueueListParams {
                thread_id: thread_id.to_owned(),
                cursor: cursor.take(),
                limit: None,
            };
            let listed: QueueListResponse = self.request("thread/queue/list", &params).await?;
            entries.extend(listed.data);
            match listed.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(entries),
            }
        }
    }

    /// `thread/queue/delete`; whether the entry was there.
    pub async fn queue_delete(&self, thread_id: &str, id: &str) -> Result<bool, ClientError> {
        let params = QueueDeleteParams {
            thread_id: thread_id.to_owned(),
            queued_submission_id: id.to_owned(),
        };
        let deleted: QueueDeleteResponse = self.request("thread/queue/delete", &params).await?;
        Ok(deleted.deleted)
    }

    /// Start a new server and resume every thread this client started or
    /// resumed, in that order; their queues come back from the rollouts.
    ///
    /// A server that is still running is stopped first (its running turns are
    /// interrupted), so two servers never write the same thread. Resumes that
    /// fail are not retried; the first error is returned after every thread
    /// was tried, and the new server stays connected.
    pub async fn reconnect(&self) -> Result<Vec<ThreadStartResponse>, ClientError> {
        let _one_at_a_time = self.inner.reconnecting.lock().await;
        let old = lock(&self.inner.connection).take();
        if let Some(old) = old {
            old.shutdown().await;
        }
        let connection = self.connect().await?;
        *lock(&self.inner.connection) = Some(connection.clone());
        let threads = lock(&self.inner.threads).clone();
        let mut resumed = Vec::with_capacity(threads.len());
        let mut first_error = None;
        for (thread_id, overrides) in threads {
            let params = ThreadResumeParams {
                thread_id,
                overrides,
            };
            match self
                .request_on::<_, ThreadStartResponse>(&connection, "thread/resume", &params)
                .await
            {
                Ok(thread) => resumed.push(thread),
                Err(e) => {
                    tracing::warn!(thread = params.thread_id, "could not resume: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(resumed),
            Some(e) => Err(e),
        }
    }

    /// Stop the server (its stdin is closed, so it interrupts running turns
    /// and exits; it is killed if it takes longer than
    /// [`ClientOptions::shutdown_grace`]) and reap it. Returns how it ended,
    /// when known. Over a socket or in process, the connection is closed
    /// instead (the server sees EOF) and there is no process to report on.
    /// Requests fail with `Disconnected` afterwards, until
    /// [`Client::reconnect`].
    pub async fn shutdown(&self) -> Option<std::process::ExitStatus> {
        let connection = lock(&self.inner.connection).take()?;
        connection.shutdown().await
    }

    /// Start a server and do the handshake; the server is stopped again if
    /// the handshake fails.
    async fn connect(&self) -> Result<ConnectionHandle, ClientError> {
        let generation = self.inner.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let options = &self.inner.options;
        let connection = match &options.endpoint {
            Some(endpoint) => {
                transport::connect(endpoint, options, generation, self.inner.events.clone()).await?
            }
            None => transport::spawn(options, generation, self.inner.events.clone())?,
        };
        let params = InitializeParams {
            client_info: Some(serde_json::json!({
                "name": self.inner.options.client_name,
                "title": self.inner.options.client_name,
                "version": env!("CARGO_PKG_VERSION"),
            })),
            capabilities: None,
        };
        let handshake = async {
            let initialized: InitializeResponse =
                self.request_on(&connection, "initialize", &params).await?;
            connection.notify("initialized", Value::Null)?;
            Ok::<_, ClientError>(initialized)
        };
        match handshake.await {
            Ok(initialized) => {
                *lock(&self.inner.initialize) = Some(initialized);
                Ok(connection)
            }
            Err(e) => {
                connection.shutdown().await;
                Err(e)
            }
        }
    }

    async fn request_on<P, R>(
        &self,
        connection: &ConnectionHandle,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let params = serde_json::to_value(params)
            .map_err(|e| ClientError::Protocol(format!("could not encode {method} params: {e}")))?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let limit = self.inner.options.timeouts.get(method);
        let result = connection.request(id, method, params, limit).await?;
        serde_json::from_value(result)
            .map_err(|e| ClientError::Protocol(format!("unexpected {method} result: {e}")))
    }

    fn remember(&self, thread_id: &str, overrides: ThreadStartParams) {
        let mut threads = lock(&self.inner.threads);
        match threads.iter_mut().find(|(id, _)| id == thread_id) {
            Some(known) => known.1 = overrides,
            None => threads.push((thread_id.to_owned(), overrides)),
        }
    }

    fn overrides_of(&self, thread_id: &str) -> ThreadStartParams {
        lock(&self.inner.threads)
            .iter()
            .find(|(id, _)| id == thread_id)
            .map(|(_, overrides)| overrides.clone())
            .unwrap_or_default()
    }
}
