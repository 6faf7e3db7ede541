//! The running server: accepting connections and answering each request from
//! the script.
//!
//! One task accepts connections and owns a task per connection; the response
//! bodies are polled inside the connection task. Ending the accept task
//! therefore ends everything, which is how shutdown (and `Drop`) leaves nothing
//! behind, hanging responses included.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::body::{KillSwitch, KillableIo, MockBody};
use crate::contract::{self, ContractViolation, error_body};
use crate::plan::{Plan, ResponseMeta};
use crate::recording::{RecordedRequest, WaitTimeout};
use crate::script::Script;
use crate::step::{HttpErrorStep, Step};
use crate::wire::Wire;
use crate::{chat, responses, tokens};

/// A scripted Responses and Chat Completions server running on loopback.
///
/// Dropping it shuts the server down: the listener closes and every open
/// connection, hanging ones included, is aborted.
#[derive(Debug)]
pub struct MockModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// State shared by the handle and every connection.
#[derive(Debug)]
struct Shared {
    started: Instant,
    /// The entries `GET …/models` lists; empty: that path is unknown, as on
    /// a server without a model list.
    models: Mutex<Vec<Value>>,
    /// The context window requests are checked against, if any.
    context_window: Mutex<Option<u64>>,
    state: Mutex<State>,
    /// How many requests have been recorded; bumped while `state` is locked,
    /// after the request was pushed, so a woken waiter always finds it.
    received: watch::Sender<usize>,
}

#[derive(Debug)]
struct State {
    steps: Vec<Step>,
    next_step: usize,
    requests: Vec<RecordedRequest>,
}

/// What to do with a request that has been read and recorded.
enum Admission {
    /// Answer with this step (its index in the script).
    Play(usize, Step),
    /// Valid, but the script has no step for it: the 1-based request number.
    Exhausted(usize),
    /// Refused before the script was consulted.
    Refused(Response<MockBody>),
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated in a
        // way that matters to a test double; keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Record a request and, if it was not refused, give it the next step.
    fn admit(
        &self,
        mut request: RecordedRequest,
        refusal: Option<(String, Response<MockBody>)>,
    ) -> Admission {
        let mut state = self.state();
        let admission = match refusal {
            Some((reason, response)) => {
                request.rejected = Some(reason);
                Admission::Refused(response)
            }
            None => match state.steps.get(state.next_step).cloned() {
                Some(step) => {
                    let index = state.next_step;
                    state.next_step += 1;
                    request.step_index = Some(index);
                    Admission::Play(index, step)
                }
                None => Admission::Exhausted(state.next_step + 1),
            },
        };
        state.requests.push(request);
        let count = state.requests.len();
        self.received.send_replace(count);
        admission
    }
}

impl MockModel {
    /// Start a server on `127.0.0.1` with a free port.
    ///
    /// Fails with [`std::io::ErrorKind::InvalidInput`] when a step cannot be
    /// played as written (see [`Script::validate`]).
    pub async fn start(script: Script) -> std::io::Result<MockModel> {
        MockModel::bind(SocketAddr::from(([127, 0, 0, 1], 0)), script).await
    }

    /// Start a server on a chosen address (e.g. a fixed port for `tiller
    /// mock-model`). Tests should use [`MockModel::start`].
    ///
    /// Fails with [`std::io::ErrorKind::InvalidInput`] when a step cannot be
    /// played as written (see [`Script::validate`]).
    pub async fn bind(addr: SocketAddr, script: Script) -> std::io::Result<MockModel> {
        script
            .validate()
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            started: Instant::now(),
            models: Mutex::new(Vec::new()),
            context_window: Mutex::new(None),
            state: Mutex::new(State {
                steps: script.steps,
                next_step: 0,
                requests: Vec::new(),
            }),
            received: watch::Sender::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stopped));
        tracing::debug!(%addr, "mock model listening");
        Ok(MockModel {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// List `models` at `GET {base_url}/models` from now on (until then,
    /// that path is a 404), each as `{"id":..,"object":"model","created":0,
    /// "owned_by":"tiller-mock-model"}`. A request for the list is not
    /// recorded as a model request.
    pub fn serve_models(&self, models: Vec<String>) {
        let entries = models
            .into_iter()
            .map(|id| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "tiller-mock-model"}))
            .collect();
        self.serve_model_entries(entries);
    }

    /// List these entries, sent as given, at `GET {base_url}/models` from now
    /// on: `{"object":"list","data":[entries..]}`. Lets a test play a server
    /// that describes its models, e.g. `{"id":"m","context_length":8192}`.
    /// An empty list makes that path a 404 again.
    pub fn serve_model_entries(&self, entries: Vec<Value>) {
        *self
            .shared
            .models
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = entries;
    }

    /// Enforce a context window from now on (`None`: no limit, the default).
    ///
    /// A request whose estimated input tokens (see
    /// [`RecordedRequest::input_tokens`] and the crate docs) exceed `window`
    /// is refused with the real API's `400 context_length_exceeded`, recorded
    /// with `rejected` starting `context_length_exceeded:`, and does not use
    /// up a step.
    pub fn set_context_window(&self, window: Option<u64>) {
        *self
            .shared
            .context_window
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = window;
    }

    /// The base URL clients use: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Append a step to the script while the server runs.
    pub fn push_step(&self, step: Step) {
        self.shared.state().steps.push(step);
    }

    /// How many steps have not been used yet.
    pub fn remaining_steps(&self) -> usize {
        let state = self.shared.state();
        state.steps.len() - state.next_step
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// How many steps of the script requests have used (steps are used in
    /// order; a request past the script's end uses none).
    pub fn used_steps(&self) -> usize {
        self.shared
            .state()
            .requests
            .iter()
            .filter_map(|r| r.step_index)
            .max()
            .map_or(0, |i| i + 1)
    }

    /// Wait until at least `n` requests have been recorded, then return all of
    /// them. Wakes as soon as the `n`th request is recorded.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, WaitTimeout> {
        let mut received = self.shared.received.subscribe();
        // The `Ref` from `wait_for` must be gone before `requests()` locks the
        // state, since `admit` holds that lock while it bumps the count.
        let reached = tokio::time::timeout(timeout, async {
            received.wait_for(|count| *count >= n).await.is_ok()
        })
        .await;
        if reached == Ok(true) {
            return Ok(self.requests());
        }

        Err(WaitTimeout {
            wanted: n,
            received: self.shared.state().requests.len(),
            timeout,
        })
    }

    /// Stop accepting, abort every open connection, and wait until all of the
    /// server's tasks have ended.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockModel {
    fn drop(&mut self) {
        // Aborting the accept task drops its `JoinSet`, which aborts every
        // connection task with it.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly
                    // instead of spinning on the same error.
                    tracing::warn!(%error, "mock model cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    // Small events with pauses between them must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let kill = KillSwitch::default();
    let io = KillableIo::new(TokioIo::new(stream), kill.clone());
    let service = service_fn(move |request| handle(Arc::clone(&shared), kill.clone(), request));
    let served = http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service)
        .await;
    if let Err(error) = served {
        // Client went away, or a scripted drop: both are expected.
        tracing::debug!(%error, "mock model connection ended");
    }
}

async fn handle(
    shared: Arc<Shared>,
    kill: KillSwitch,
    request: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let (parts, body) = request.into_parts();
    if parts.method == Method::GET && parts.uri.path().ends_with("/models") {
        let models = shared
            .models
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if models.is_empty() {
            // As a server without a model list answers.
            let message = format!("Invalid URL (GET {})", parts.uri.path());
            let body = error_body(&message, "invalid_request_error", None, None);
            return Ok(json_response(StatusCode::NOT_FOUND, body));
        }
        return Ok(json_response(
            StatusCode::OK,
            serde_json::json!({"object": "list", "data": models}).to_string(),
        ));
    }
    let raw = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            // The client is gone or sent a broken body; nobody will read this.
            tracing::debug!(%error, "mock model could not read a request body");
            return Ok(json_response(
                StatusCode::BAD_REQUEST,
                error_body(
                    "could not read the request body",
                    "invalid_request_error",
                    None,
                    None,
                ),
            ));
        }
    };
    let arrived = Instant::now();
    let path = parts.uri.path();
    let wire = Wire::from_path(path);
    // An unknown path is refused whatever its body, so its violation goes
    // unused; checking it as Responses still parses the body for the record.
    let (body, violation) = match contract::check_body(wire.unwrap_or(Wire::Responses), &raw) {
        Ok(body) => (body, None),
        Err(violation) => (
            serde_json::from_slice(&raw).unwrap_or(Value::Null),
            Some(violation),
        ),
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let include_encrypted_reasoning = body
        .get("include")
        .and_then(Value::as_array)
        .is_some_and(|include| include.iter().any(|i| i == "reasoning.encrypted_content"));
    let record = RecordedRequest::new(
        &parts,
        &raw,
        body,
        arrived,
        arrived.duration_since(shared.started),
    );
    let window = *shared
        .context_window
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let refusal = refusal(
        &parts.method,
        path,
        wire,
        violation.as_ref(),
        window,
        record.input_tokens,
    );
    let input_tokens = record.input_tokens;

    match shared.admit(record, refusal) {
        Admission::Refused(response) => Ok(response),
        Admission::Exhausted(number) => {
            let message = format!("tiller-mock-model: the script has no step for request {number}");
            tracing::warn!("{message}");
            let body = error_body(&message, "invalid_request_error", None, None);
            Ok(json_response(StatusCode::BAD_REQUEST, body))
        }
        Admission::Play(index, step) => {
            let meta = ResponseMeta {
                number: index + 1,
                model,
                input_tokens,
                include_usage,
                include_encrypted_reasoning,
            };
            // Only served paths get this far.
            let wire = wire.unwrap_or(Wire::Responses);
            Ok(play(index, step, wire, &meta, kill).await)
        }
    }
}

/// Why a request is refused before the script is consulted, with the response
/// to send: an unknown path, a method other than POST, a broken contract, or
/// more input than the context window holds.
fn refusal(
    method: &Method,
    path: &str,
    wire: Option<Wire>,
    violation: Option<&ContractViolation>,
    window: Option<u64>,
    input_tokens: u64,
) -> Option<(String, Response<MockBody>)> {
    let Some(wire) = wire else {
        let message = format!("Invalid URL ({method} {path})");
        let body = error_body(&message, "invalid_request_error", None, None);
        return Some((message, json_response(StatusCode::NOT_FOUND, body)));
    };
    if method != Method::POST {
        let message = format!("Method not allowed: {method} {path}");
        let body = error_body(&message, "invalid_request_error", None, None);
        return Some((message, json_response(StatusCode::METHOD_NOT_ALLOWED, body)));
    }
    if let Some(violation) = violation {
        let response = json_response(StatusCode::BAD_REQUEST, violation.error_body());
        return Some((violation.message.clone(), response));
    }

    let violation = tokens::window_violation(wire, window?, input_tokens)?;
    let response = json_response(StatusCode::BAD_REQUEST, violation.error_body());
    Some((
        format!("context_length_exceeded: {}", violation.message),
        response,
    ))
}

/// Answer a request with its step.
async fn play(
    index: usize,
    step: Step,
    wire: Wire,
    meta: &ResponseMeta,
    kill: KillSwitch,
) -> Response<MockBody> {
    match step {
        Step::Response(response) => {
            let plan = match wire {
                Wire::Responses => responses::response_plan(&response, meta),
                Wire::Chat => chat::response_plan(&response, meta),
            };
            event_stream(plan, meta, kill)
        }
        Step::Failed(failed) => {
            let plan = match wire {
                Wire::Responses => responses::failed_plan(&failed, meta),
                Wire::Chat => chat::failed_plan(&failed, meta),
            };
            event_stream(plan, meta, kill)
        }
        Step::HttpError(error) => http_error(index, &error),
        Step::Hang => {
            // Never answer; the connection task ends when the client goes away
            // or the server shuts down.
            let never: Infallible = std::future::pending().await;
            match never {}
        }
    }
}

fn event_stream(plan: Plan, meta: &ResponseMeta, kill: KillSwitch) -> Response<MockBody> {
    let mut response = Response::new(MockBody::plan(plan, kill));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    if let Ok(id) = HeaderValue::from_str(&format!("req_mock_{}", meta.number)) {
        headers.insert("x-request-id", id);
    }
    response
}

fn http_error(index: usize, step: &HttpErrorStep) -> Response<MockBody> {
    let Ok(status) = StatusCode::from_u16(step.status) else {
        return unplayable(index, &format!("{} is not an HTTP status", step.status));
    };

    let (body, content_type) = match &step.body {
        None => (default_error_body(status), "application/json"),
        Some(Value::String(text)) => {
            let is_json = serde_json::from_str::<Value>(text).is_ok();
            (
                text.clone(),
                if is_json {
                    "application/json"
                } else {
                    "text/plain; charset=utf-8"
                },
            )
        }
        Some(value) => (value.to_string(), "application/json"),
    };
    let mut builder = Response::builder().status(status);
    if !step
        .headers
        .keys()
        .any(|name| name.eq_ignore_ascii_case("content-type"))
    {
        builder = builder.header(CONTENT_TYPE, content_type);
    }
    for (name, value) in &step.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(MockBody::full(body))
        .unwrap_or_else(|error| unplayable(index, &error.to_string()))
}

/// A Rust-built step that cannot be sent as written (JSON scripts are checked
/// when loaded): answer 500 and say why.
fn unplayable(index: usize, reason: &str) -> Response<MockBody> {
    let message = format!("tiller-mock-model: step {index} cannot be played: {reason}");
    tracing::warn!("{message}");
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        error_body(&message, "server_error", None, None),
    )
}

/// An OpenAI-style error body for a status, worded like the real API.
fn default_error_body(status: StatusCode) -> String {
    let (message, kind, code) = match status.as_u16() {
        400 => ("Bad request.", "invalid_request_error", None),
        401 => (
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => (
            "You are not allowed to access this resource.",
            "invalid_request_error",
            None,
        ),
        404 => (
            "The model does not exist or you do not have access to it.",
            "invalid_request_error",
            Some("model_not_found"),
        ),
        408 => ("Request timed out.", "timeout", None),
        429 => (
            "Rate limit reached for requests. Please try again later.",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        500 => (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        502 => ("Bad gateway.", "server_error", None),
        503 => (
            "The engine is currently overloaded, please try again later.",
            "server_error",
            None,
        ),
        504 => ("Gateway timeout.", "server_error", None),
        _ if status.is_server_error() => (
            "The server had an error while processing your request.",
            "server_error",
            None,
        ),
        _ => (
            "The request could not be processed.",
            "invalid_request_error",
            None,
        ),
    };
    error_body(message, kind, None, code)
}

fn json_response(status: StatusCode, body: String) -> Response<MockBody> {
    let mut response = Response::new(MockBody::full(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
