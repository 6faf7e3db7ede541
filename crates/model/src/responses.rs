//! The Responses API client: `POST {base_url}/responses` with `stream: true`.

use serde::Deserialize;
use serde_json::{Value, json};
use tiller_config::ProviderConfig;
use tiller_protocol::{ResponseItem, TokenUsage};

use crate::error::{ClientBuildError, ModelError};
use crate::http::{Endpoint, EventSource, malformed, server_words};
use crate::sse::SseEvent;

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
        if self.reasoning.is_some() || is_reasoning_model(&self.model) {
            // With `store: false` the server keeps nothing: the reasoning
            // comes back encrypted so the next request can carry it.
            body["include"] = json!(["reasoning.encrypted_content"]);
        }
        body
    }
}

/// Whether `model` is one of OpenAI's reasoning models, which return their
/// reasoning encrypted when asked (other models refuse the `include`).
fn is_reasoning_model(model: &str) -> bool {
    ["gpt-5", "o1", "o3", "o4", "codex"]
        .iter()
        .any(|prefix| model.starts_with(prefix))
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
    /// Reasoning: its summary, and the reasoning encrypted if the provider
    /// returned it.
    Reasoning {
        /// The summary's text.
        text: String,
        /// The encrypted reasoning (Responses with
        /// `include: ["reasoning.encrypted_content"]`).
        encrypted_content: Option<String>,
    },
}

/// A Responses API client for one provider.
#[derive(Debug, Clone)]
pub struct ResponsesClient {
    endpoint: Endpoint,
}

impl ResponsesClient {
    /// A client for `provider`, authenticating with `api_key` if given.
    pub fn new(
        provider: &ProviderConfig,
        api_key: Option<String>,
    ) -> Result<Self, ClientBuildError> {
        Ok(ResponsesClient {
            endpoint: Endpoint::new(provider, api_key)?,
        })
    }

    /// Send `request` and return the response stream once the server has answered 200.
    pub async fn stream(&self, request: &ModelRequest) -> Result<ResponseStream, ModelError> {
        let events = self
            .endpoint
            .post_events("responses", &request.body())
            .await?;
        Ok(ResponseStream {
            events,
            done: false,
        })
    }
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
    events: EventSource,
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
            let event = match self.events.next_event().await {
                Ok(Some(event)) => match parse_event(&event) {
                    Ok(None) => continue,
                    Ok(Some(event)) => Ok(event),
                    Err(e) => Err(e),
                },
                Ok(None) => Err(ModelError::RetryableStream {
                    reason: "the stream closed before response.completed".to_string(),
                }),
                Err(e) => Err(e),
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
    let raw: RawEvent = serde_json::from_str(&event.data).map_err(|e| malformed(&e))?;
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
            let message = if reason == "max_output_tokens" {
                "the model's answer was cut off at its output token limit (max_output_tokens); the partial answer was dropped".to_string()
            } else {
                server_words(&format!("the model's response was incomplete: {reason}"))
            };
            return Err(ModelError::Fatal {
                message,
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
            encrypted_content: item
                .get("encrypted_content")
                .and_then(Value::as_str)
                .map(str::to_string),
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
