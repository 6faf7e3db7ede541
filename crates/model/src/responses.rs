//! The Responses API client: `POST {base_url}/responses` with `stream: true`.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tiller_protocol::{ResponseItem, TokenUsage};

use super::sse::{SseDecoder, SseEvent};
use crate::error::{ClientBuildError, ModelError};
use tiller_config::ProviderConfig;

/// What one model request sends.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    /// The model name.
    pub model: String,
    /// The system instructions.
    pub instructions: String,
    /// The conversation so far.
    pub input: Vec<ResponseItem>,
    /// Tool definitions.
    pub tools: Vec<Value>,
    /// How hard the model reasons, and how it summarizes its reasoning
    /// (`reasoning` in the body; absent: the provider's default).
    pub reasoning: Option<Reasoning>,
}

/// The Responses API's `reasoning` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reasoning {
    /// `low`, `medium`, `high`, … as the model accepts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// `auto`, `concise`, `detailed` or `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

impl ModelRequest {
    fn body(&self) -> Value {
        let mut body = json!({
            "model": self.model,
            "instructions": self.instructions,
            "input": self.input,
            "tools": self.tools,
            "tool_choice": "auto",
            "parallel_tool_calls": false,
            "store": false,
            "stream": true,
        });
        if let Some(reasoning) = &self.reasoning {
            body["reasoning"] = json!(reasoning);
        }
        body
    }
}

/// One thing the model said, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseEvent {
    /// A piece of assistant text.
    OutputTextDelta(String),
    /// A piece of the reasoning summary.
    ReasoningDelta(String),
    /// An output item is complete.
    OutputItemDone(OutputItem),
    /// The response is complete.
    Completed {
        /// Token usage of this response.
        usage: TokenUsage,
    },
}

/// A complete output item.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputItem {
    /// An assistant message.
    Message {
        /// Its text.
        text: String,
    },
    /// A tool call.
    FunctionCall {
        /// The tool.
        name: String,
        /// The arguments (JSON text).
        arguments: String,
        /// The call id.
        call_id: String,
    },
    /// A call of a custom (freeform) tool.
    CustomToolCall {
        /// The tool.
        name: String,
        /// The input, as the model wrote it.
        input: String,
        /// The call id.
        call_id: String,
    },
    /// A reasoning summary.
    Reasoning {
        /// Its text.
        text: String,
    },
}

/// A Responses API client for one provider.
#[derive(Debug, Clone)]
pub struct ResponsesClient {
    http: reqwest::Client,
    url: String,
    api_key: Option<String>,
    idle_timeout: Duration,
}

impl ResponsesClient {
    /// A client for `provider`, authenticating with `api_key` if given.
    pub fn new(
        provider: &ProviderConfig,
        api_key: Option<String>,
    ) -> Result<Self, ClientBuildError> {
        let http = shared_http_client()?;
        // A password in the URL (`https://user:pass@gateway/v1`) would show in
        // every connection error that names the URL.
        if let Ok(url) = reqwest::Url::parse(&provider.base_url)
            && let Some(password) = url.password()
        {
            tiller_secrets::register(password);
        }
        Ok(ResponsesClient {
            http,
            url: format!("{}/responses", provider.base_url.trim_end_matches('/')),
            api_key,
            idle_timeout: provider.stream_idle_timeout,
        })
    }

    /// The ids of the models the provider lists (`GET {base_url}/models`,
    /// OpenAI's shape: `{"data": [{"id": …}, …]}`), within the idle timeout
    /// and at most [`MAX_MODELS_BODY_BYTES`] of body.
    pub async fn list_models(&self) -> Result<Vec<String>, ModelError> {
        let url = format!("{}/models", self.url.trim_end_matches("/responses"));
        let mut builder = self.http.get(&url);
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key);
        }
        let answered = tokio::time::timeout(self.idle_timeout, async {
            let response = builder.send().await.map_err(|e| classify_send_error(&e))?;
            let status = response.status();
            if !status.is_success() {
                let body = read_error_body(response, self.idle_timeout).await;
                return Err(classify_status(status.as_u16(), &body, None));
            }
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
                let chunk = chunk.map_err(|e| classify_send_error(&e))?;
                if body.len() + chunk.len() > MAX_MODELS_BODY_BYTES {
                    return Err(ModelError::Fatal {
                        message: format!(
                            "the model list is longer than {MAX_MODELS_BODY_BYTES} bytes"
                        ),
                        status: None,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        })
        .await
        .map_err(|_| ModelError::Fatal {
            message: format!(
                "no model list from the server in {}",
                human_duration(self.idle_timeout)
            ),
            status: None,
        })??;
        let list: serde_json::Value =
            serde_json::from_slice(&answered).map_err(|e| ModelError::Fatal {
                message: format!("the model list is not JSON: {e}"),
                status: None,
            })?;
        let ids = list["data"]
            .as_array()
            .ok_or_else(|| ModelError::Fatal {
                message: "the model list has no `data` array".to_string(),
                status: None,
            })?
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_string))
            .collect();
        Ok(ids)
    }

    /// Send `request` and return the response stream once the server has answered 200.
    pub async fn stream(&self, request: &ModelRequest) -> Result<ResponseStream, ModelError> {
        let mut builder = self
            .http
            .post(&self.url)
            .header("accept", "text/event-stream")
            .json(&request.body());
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key);
        }
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
        Ok(ResponseStream {
            body: Box::pin(response.bytes_stream()),
            decoder: SseDecoder::new(),
            idle_timeout: self.idle_timeout,
            deadline: tokio::time::Instant::now() + self.idle_timeout,
            done: false,
        })
    }
}

/// The most of a model list read (`GET /models`).
pub const MAX_MODELS_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How much of an error body is read; the rest is never downloaded.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// How much of a server's words goes into an error message (and so into
/// events, the terminal and the rollout).
const MAX_SERVER_WORDS: usize = 2000;

/// The start of an error body: at most [`MAX_ERROR_BODY_BYTES`], within
/// `limit` (a server that stalls in the middle of its error body does not
/// hang the turn). What could not be read is said.
async fn read_error_body(response: reqwest::Response, limit: Duration) -> String {
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

impl crate::ModelClient for ResponsesClient {
    fn stream<'a>(&'a self, request: &'a ModelRequest) -> crate::StreamFuture<'a> {
        Box::pin(async move {
            let stream = ResponsesClient::stream(self, request).await?;
            Ok(stream.into_stream())
        })
    }
}

/// The events of one response, with the idle timeout applied to every read.
pub struct ResponseStream {
    body: Pin<Box<dyn Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send>>,
    decoder: SseDecoder,
    idle_timeout: Duration,
    /// When the stream counts as idle: `idle_timeout` after the last event.
    /// Comments and bytes that complete no event (`: keep-alive`) do not move
    /// it: a server that only keeps the connection alive is still idle.
    deadline: tokio::time::Instant,
    done: bool,
}

impl std::fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseStream").finish_non_exhaustive()
    }
}

impl ResponseStream {
    /// As a [`crate::ModelStream`]: two allocations for the whole response,
    /// none per event (the state moved from event to event is a box, not the
    /// decoder and its buffers).
    pub fn into_stream(self) -> crate::ModelStream {
        Box::pin(futures::stream::unfold(
            Box::new(self),
            |mut stream| async move { stream.next().await.map(|event| (event, stream)) },
        ))
    }

    /// The next event; `None` after `Completed` or an error.
    pub async fn next(&mut self) -> Option<Result<ResponseEvent, ModelError>> {
        while !self.done {
            let event = match self.decoder.next_event() {
                Ok(Some(event)) => {
                    self.deadline = tokio::time::Instant::now() + self.idle_timeout;
                    match parse_event(&event) {
                        Ok(None) => continue,
                        Ok(Some(event)) => Ok(event),
                        Err(e) => Err(e),
                    }
                }
                Err(too_large) => Err(ModelError::Fatal {
                    message: too_large.to_string(),
                    status: None,
                }),
                Ok(None) => match tokio::time::timeout_at(self.deadline, self.body.next()).await {
                    Err(_) => Err(ModelError::RetryableStream {
                        reason: format!(
                            "the stream was idle for {} (no event)",
                            human_duration(self.idle_timeout)
                        ),
                    }),
                    Ok(None) => Err(ModelError::RetryableStream {
                        reason: "the stream closed before response.completed".to_string(),
                    }),
                    Ok(Some(Err(e))) => Err(ModelError::RetryableStream {
                        reason: server_words(&format!("stream disconnected: {}", error_chain(&e))),
                    }),
                    Ok(Some(Ok(chunk))) => {
                        self.decoder.push(&chunk);
                        continue;
                    }
                },
            };
            self.done =
                !matches!(event, Ok(ref e) if !matches!(e, ResponseEvent::Completed { .. }));
            return Some(event);
        }
        None
    }
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    delta: Option<String>,
    #[serde(default)]
    item: Option<Value>,
    #[serde(default)]
    response: Option<Value>,
}

/// One SSE event to a [`ResponseEvent`]; `Ok(None)` for events tiller does not use.
fn parse_event(event: &SseEvent) -> Result<Option<ResponseEvent>, ModelError> {
    let raw: RawEvent =
        serde_json::from_str(&event.data).map_err(|e| ModelError::RetryableStream {
            reason: server_words(&format!("malformed event from the server ({e})")),
        })?;
    let parsed = match raw.kind.as_str() {
        "response.output_text.delta" => raw.delta.map(ResponseEvent::OutputTextDelta),
        "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
            raw.delta.map(ResponseEvent::ReasoningDelta)
        }
        "response.output_item.done" => raw
            .item
            .as_ref()
            .and_then(output_item)
            .map(ResponseEvent::OutputItemDone),
        "response.completed" => Some(ResponseEvent::Completed {
            usage: raw.response.as_ref().map(usage).unwrap_or_default(),
        }),
        "response.failed" => return Err(failed(raw.response.as_ref())),
        "response.incomplete" => {
            let reason = raw
                .response
                .as_ref()
                .and_then(|r| r.pointer("/incomplete_details/reason"))
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            return Err(ModelError::Fatal {
                message: server_words(&format!("the model's response was incomplete: {reason}")),
                status: None,
            });
        }
        _ => None,
    };
    Ok(parsed)
}

fn output_item(item: &Value) -> Option<OutputItem> {
    let text_of = |parts: Option<&Value>, kind: &str| -> String {
        parts
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .filter(|p| p.get("type").and_then(Value::as_str) == Some(kind))
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default()
    };
    match item.get("type")?.as_str()? {
        "message" => Some(OutputItem::Message {
            text: text_of(item.get("content"), "output_text"),
        }),
        "function_call" => Some(OutputItem::FunctionCall {
            name: item.get("name")?.as_str()?.to_string(),
            arguments: item
                .get("arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}")
                .to_string(),
            call_id: item.get("call_id")?.as_str()?.to_string(),
        }),
        "custom_tool_call" => Some(OutputItem::CustomToolCall {
            name: item.get("name")?.as_str()?.to_string(),
            input: item
                .get("input")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            call_id: item.get("call_id")?.as_str()?.to_string(),
        }),
        "reasoning" => Some(OutputItem::Reasoning {
            text: text_of(item.get("summary"), "summary_text"),
        }),
        _ => None,
    }
}

fn usage(response: &Value) -> TokenUsage {
    let n = |path: &str| response.pointer(path).and_then(Value::as_u64).unwrap_or(0);
    TokenUsage {
        input_tokens: n("/usage/input_tokens"),
        cached_input_tokens: n("/usage/input_tokens_details/cached_tokens"),
        output_tokens: n("/usage/output_tokens"),
        reasoning_output_tokens: n("/usage/output_tokens_details/reasoning_tokens"),
    }
}

/// `response.failed`: overload and server errors are worth a retry, the rest are not.
fn failed(response: Option<&Value>) -> ModelError {
    let error = response.and_then(|r| r.get("error"));
    let code = error
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let message = server_words(
        error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("the model's response failed"),
    );
    match code {
        "server_error" | "server_is_overloaded" | "rate_limit_exceeded" | "slow_down" => {
            ModelError::RetryableStream {
                reason: format!("response.failed: {message}"),
            }
        }
        _ => ModelError::Fatal {
            message,
            status: None,
        },
    }
}

fn classify_send_error(e: &reqwest::Error) -> ModelError {
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

fn error_chain(e: &dyn std::error::Error) -> String {
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
fn classify_status(status: u16, body: &str, retry_after: Option<Duration>) -> ModelError {
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
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
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

fn human_duration(d: Duration) -> String {
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
fn shared_http_client() -> Result<reqwest::Client, ClientBuildError> {
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
    }
}
