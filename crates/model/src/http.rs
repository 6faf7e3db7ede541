//! What every model API client shares: one HTTP client for the process, a
//! provider's endpoint (base URL, key, extra headers and query parameters),
//! the idle-timed event source a streamed answer is read from, and how a
//! failed request is classified and worded.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tiller_config::ProviderConfig;

use crate::error::{ClientBuildError, ModelError};
use crate::sse::{SseDecoder, SseEvent};

/// Where and how one provider is called: everything a request needs but its
/// path and body.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    http: reqwest::Client,
    base_url: String,
    headers: HeaderMap,
    query: Vec<(String, String)>,
    api_key: Option<String>,
    pub(crate) idle_timeout: Duration,
}

impl Endpoint {
    /// The endpoint of `provider`, authenticating with `api_key` if given.
    ///
    /// `http_headers` are sent as given, `env_http_headers` with the value
    /// of their variable (unset or empty: not sent); both are checked here,
    /// so a header that cannot be sent is an error naming it.
    pub(crate) fn new(
        provider: &ProviderConfig,
        api_key: Option<String>,
    ) -> Result<Endpoint, ClientBuildError> {
        Endpoint::with_env(provider, api_key, &|var| std::env::var(var).ok())
    }

    /// [`Endpoint::new`] with the environment given as a lookup function.
    pub(crate) fn with_env(
        provider: &ProviderConfig,
        api_key: Option<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Endpoint, ClientBuildError> {
        let http = shared_http_client()?;
        // A password in the URL (`https://user:pass@gateway/v1`) would show in
        // every connection error that names the URL.
        if let Ok(url) = reqwest::Url::parse(&provider.base_url)
            && let Some(password) = url.password()
        {
            tiller_secrets::register(password);
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &provider.http_headers {
            if is_credential(name) {
                tiller_secrets::register(value);
            }
            insert_header(&mut headers, name, value, &provider.id)?;
        }
        for (name, var) in &provider.env_http_headers {
            let Some(value) = env(var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            // A value from the environment is treated as a credential: it is
            // the way a provider's key reaches a header other than
            // `Authorization` (Azure's `api-key`).
            tiller_secrets::register(value.trim());
            insert_header(&mut headers, name, value.trim(), &provider.id)?;
        }
        Ok(Endpoint {
            http,
            base_url: provider.base_url.trim_end_matches('/').to_owned(),
            headers,
            query: provider
                .query_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            api_key,
            idle_timeout: provider.stream_idle_timeout,
        })
    }

    /// The URL of `path` under the base URL (without the query).
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url)
    }

    /// A request to `path` with the provider's query, headers and key.
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = self.url(path);
        let mut builder = match reqwest::Url::parse(&url) {
            Ok(mut url) if !self.query.is_empty() => {
                url.query_pairs_mut().extend_pairs(&self.query);
                self.http.request(method, url)
            }
            // An unparsable URL fails when sent, with the builder's words.
            Ok(_) | Err(_) => self.http.request(method, url),
        };
        builder = builder.headers(self.headers.clone());
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key);
        }
        builder
    }

    /// Post `body` to `path` asking for an event stream; the events once the
    /// server answered 2xx, or the failure classified.
    pub(crate) async fn post_events(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<EventSource, ModelError> {
        let builder = self
            .request(reqwest::Method::POST, path)
            .header("accept", "text/event-stream")
            .json(body);
        let response = match tokio::time::timeout(self.idle_timeout, builder.send()).await {
            Err(_) => {
                return Err(ModelError::RetryableRequest {
                    reason: format!(
                        "no answer from the server in {}",
                        human_duration(self.idle_timeout)
                    ),
                    retry_after: None,
                });
            }
            Ok(Err(e)) => return Err(classify_send_error(&e)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            let body = read_error_body(response, self.idle_timeout).await;
            return Err(classify_status(status.as_u16(), &body, retry_after));
        }
        Ok(EventSource {
            body: Box::pin(response.bytes_stream()),
            decoder: SseDecoder::new(),
            idle_timeout: self.idle_timeout,
            deadline: tokio::time::Instant::now() + self.idle_timeout,
        })
    }
}

/// Whether a header carries a credential (its value is then a secret).
fn is_credential(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization" || name.contains("key") || name.contains("token")
}

fn insert_header(
    headers: &mut HeaderMap,
    name: &str,
    value: &str,
    provider: &str,
) -> Result<(), ClientBuildError> {
    let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        ClientBuildError(format!(
            "model_providers.{provider}: '{name}' is not a valid HTTP header name"
        ))
    })?;
    let value = HeaderValue::from_str(value).map_err(|_| {
        ClientBuildError(format!(
            "model_providers.{provider}: the value of header '{name}' is not a valid HTTP header value"
        ))
    })?;
    headers.insert(header, value);
    Ok(())
}

/// The events of a streamed answer, with the idle timeout applied to every read.
pub(crate) struct EventSource {
    body: Pin<Box<dyn Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send>>,
    decoder: SseDecoder,
    idle_timeout: Duration,
    /// When the stream counts as idle: `idle_timeout` after the last event.
    /// Comments and bytes that complete no event (`: keep-alive`) do not move
    /// it: a server that only keeps the connection alive is still idle.
    deadline: tokio::time::Instant,
}

impl EventSource {
    /// The next event; `Ok(None)` when the server closed the stream.
    pub(crate) async fn next_event(&mut self) -> Result<Option<SseEvent>, ModelError> {
        loop {
            match self.decoder.next_event() {
                Ok(Some(event)) => {
                    self.deadline = tokio::time::Instant::now() + self.idle_timeout;
                    return Ok(Some(event));
                }
                Err(too_large) => {
                    return Err(ModelError::Fatal {
                        message: too_large.to_string(),
                        status: None,
                    });
                }
                Ok(None) => {}
            }
            match tokio::time::timeout_at(self.deadline, self.body.next()).await {
                Err(_) => {
                    return Err(ModelError::RetryableStream {
                        reason: format!(
                            "the stream was idle for {} (no event)",
                            human_duration(self.idle_timeout)
                        ),
                    });
                }
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    return Err(ModelError::RetryableStream {
                        reason: server_words(&format!("stream disconnected: {}", error_chain(&e))),
                    });
                }
                Ok(Some(Ok(chunk))) => self.decoder.push(&chunk),
            }
        }
    }
}

/// A malformed event: worth a retry (the next answer may be whole).
pub(crate) fn malformed(error: &serde_json::Error) -> ModelError {
    ModelError::RetryableStream {
        reason: server_words(&format!("malformed event from the server ({error})")),
    }
}

/// How much of an error body is read; the rest is never downloaded.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// How much of a server's words goes into an error message (and so into
/// events, the terminal and the rollout).
const MAX_SERVER_WORDS: usize = 2000;

/// The start of an error body: at most [`MAX_ERROR_BODY_BYTES`], within
/// `limit` (a server that stalls in the middle of its error body does not
/// hang the turn). What could not be read is said.
pub(crate) async fn read_error_body(response: reqwest::Response, limit: Duration) -> String {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    let read = async {
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            let room = MAX_ERROR_BODY_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_ERROR_BODY_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(limit, read).await;
    String::from_utf8_lossy(&body).into_owned()
}

/// A server's words as tiller repeats them: keys it may have echoed are
/// redacted, and the text is cut to [`MAX_SERVER_WORDS`] bytes.
pub(crate) fn server_words(text: &str) -> String {
    let text = tiller_secrets::redact(text);
    if text.len() <= MAX_SERVER_WORDS {
        return text.into_owned();
    }
    let mut cut = MAX_SERVER_WORDS;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}… ({} more bytes not shown)",
        &text[..cut],
        text.len() - cut
    )
}

pub(crate) fn classify_send_error(e: &reqwest::Error) -> ModelError {
    if e.is_builder() {
        return ModelError::Fatal {
            message: format!("bad request URL or body: {e}"),
            status: None,
        };
    }
    let reason = if e.is_connect() {
        format!("could not connect: {}", error_chain(e))
    } else {
        format!("request failed: {}", error_chain(e))
    };
    let reason = server_words(&reason);
    ModelError::RetryableRequest {
        reason,
        retry_after: None,
    }
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// A non-2xx answer: 408, 429 and 5xx are retried; every other status fails at once.
pub(crate) fn classify_status(
    status: u16,
    body: &str,
    retry_after: Option<Duration>,
) -> ModelError {
    let message = server_words(&server_message(body).unwrap_or_else(|| {
        let body = body.trim();
        if body.is_empty() {
            format!("HTTP {status}")
        } else {
            body.to_string()
        }
    }));
    if status == 408 || status == 429 || status >= 500 {
        ModelError::RetryableRequest {
            reason: format!("HTTP {status}: {message}"),
            retry_after,
        }
    } else {
        ModelError::Fatal {
            message,
            status: Some(status),
        }
    }
}

/// `{"error":{"message":…}}`, the shape OpenAI-compatible servers answer errors in.
fn server_message(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let error = value.get("error")?;
    error
        .get("message")
        .or(Some(error))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `Retry-After` in seconds (also `retry-after-ms`); HTTP dates are not honoured.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    header("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|secs| Duration::from_secs_f64(secs.max(0.0)))
}

pub(crate) fn human_duration(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// One HTTP client for the process: building one loads and parses the system's
/// root certificates (about 3 ms), and sessions (app-server threads) share its
/// connection pool. Idle timeouts are applied per read by [`ResponseStream`],
/// so nothing in the client is per provider.
pub fn shared_http_client() -> Result<reqwest::Client, ClientBuildError> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    install_crypto_provider();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ClientBuildError(e.to_string()))?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

/// rustls needs one process-wide crypto provider; tiller uses ring.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification_retries_only_transient_statuses() {
        for status in [408, 429, 500, 502, 503] {
            assert!(matches!(
                classify_status(status, "", None),
                ModelError::RetryableRequest { .. }
            ));
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(matches!(
                classify_status(status, "", None),
                ModelError::Fatal { .. }
            ));
        }
    }

    #[test]
    fn fatal_error_carries_the_servers_message() {
        let body = r#"{"error":{"message":"Invalid model 'x'.","type":"invalid_request_error"}}"#;
        assert_eq!(
            classify_status(400, body, None),
            ModelError::Fatal {
                message: "Invalid model 'x'.".to_string(),
                status: Some(400)
            }
        );
    }

    #[test]
    fn missing_tool_output_400_names_its_call() {
        let error = classify_status(
            400,
            r#"{"error":{"message":"No tool output found for function call call_7.","type":"invalid_request_error"}}"#,
            None,
        );
        assert_eq!(error.missing_tool_output_call_id(), Some("call_7"));
        let chat = classify_status(
            400,
            r#"{"error":{"message":"An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: call_8, call_9","type":"invalid_request_error"}}"#,
            None,
        );
        assert_eq!(chat.missing_tool_output_call_id(), Some("call_8"));
    }
}
