//! The Chat Completions client: `POST {base_url}/chat/completions` with
//! `stream: true`, the API local servers (Ollama, llama.cpp's llama-server,
//! vLLM, LM Studio) and most gateways speak.
//!
//! The turn sees the same [`ResponseEvent`]s as from the Responses client, so
//! every lifecycle guarantee (cut on interrupt, steer and replace; an output
//! for every call; retries, `Retry-After`, the idle timeout, 4xx with the
//! server's words) holds word for word. What differs is kept here:
//!
//! - **The history** is sent as messages ([`messages`]): the instructions as
//!   the system message, calls as an assistant message's `tool_calls`, each
//!   output as a `tool` message right after the assistant message that made
//!   the call (the API refuses anything in between, where Responses only
//!   needs the output somewhere after). Reasoning is not sent back: servers
//!   that stream `reasoning_content` refuse it in a request.
//! - **Tool calls** arrive as fragments of `delta.tool_calls[i]`, several calls
//!   in one answer, possibly interleaved; they are put together by index and
//!   given to the turn only when the answer finishes, so a call cut off in the
//!   middle of its arguments is never run nor recorded.
//! - **`finish_reason`**: `length` is an error that says the answer was cut at
//!   the output limit, not a silently short answer; `content_filter` too.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tiller_config::ProviderConfig;
use tiller_protocol::{ContentItem, ResponseItem, TokenUsage};

use crate::error::{ClientBuildError, ModelError};
use crate::http::{Endpoint, EventSource, malformed, server_words};
use crate::responses::{ModelRequest, OutputItem, ResponseEvent};

/// The most tool calls one answer may make; an index past it is malformed.
const MAX_TOOL_CALLS: usize = 128;

/// A Chat Completions client for one provider.
#[derive(Debug, Clone)]
pub struct ChatClient {
    endpoint: Endpoint,
}

impl ChatClient {
    /// A client for `provider`, authenticating with `api_key` if given.
    pub fn new(
        provider: &ProviderConfig,
        api_key: Option<String>,
    ) -> Result<Self, ClientBuildError> {
        Ok(ChatClient {
            endpoint: Endpoint::new(provider, api_key)?,
        })
    }

    /// Send `request`; the stream once the server has answered 2xx.
    pub async fn stream(&self, request: &ModelRequest) -> Result<ChatStream, ModelError> {
        let events = self
            .endpoint
            .post_events("chat/completions", &body(request))
            .await?;
        Ok(ChatStream {
            events,
            answer: Answer::default(),
            ready: VecDeque::new(),
            done: false,
        })
    }
}

impl crate::ModelClient for ChatClient {
    fn stream<'a>(&'a self, request: &'a ModelRequest) -> crate::StreamFuture<'a> {
        Box::pin(async move {
            let stream = ChatClient::stream(self, request).await?;
            Ok(stream.into_stream())
        })
    }
}

/// The request body.
fn body(request: &ModelRequest) -> Value {
    let mut body = json!({
        "model": request.model,
        "messages": messages(&request.instructions, &request.input),
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let tools: Vec<Value> = request.tools.iter().filter_map(function_tool).collect();
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
        body["tool_choice"] = json!("auto");
    }
    if let Some(effort) = request.reasoning.as_ref().and_then(|r| r.effort.as_ref()) {
        body["reasoning_effort"] = json!(effort);
    }
    body
}

/// A Responses tool definition as a Chat Completions function. A freeform
/// (custom) tool, which this API lacks, becomes a function taking its input
/// as one string, `input`.
fn function_tool(tool: &Value) -> Option<Value> {
    let name = tool.get("name")?.as_str()?;
    let description = tool.get("description").cloned().unwrap_or(json!(""));
    let parameters = match tool.get("type").and_then(Value::as_str) {
        Some("function") => tool
            .get("parameters")
            .cloned()
            .unwrap_or(json!({"type": "object", "properties": {}})),
        Some("custom") => json!({
            "type": "object",
            "properties": {"input": {"type": "string", "description": "The tool's input, in its format."}},
            "required": ["input"],
        }),
        _ => return None,
    };
    Some(json!({
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }))
}

/// The conversation as Chat Completions messages: the instructions first,
/// each assistant message with the calls that follow it, and each call's
/// output right after its assistant message.
pub fn messages(instructions: &str, input: &[ResponseItem]) -> Vec<Value> {
    let outputs: std::collections::HashMap<&str, &str> = input
        .iter()
        .filter_map(|item| match item {
            ResponseItem::FunctionCallOutput { call_id, output }
            | ResponseItem::CustomToolCallOutput { call_id, output } => {
                Some((call_id.as_str(), output.as_str()))
            }
            _ => None,
        })
        .collect();
    let mut messages = vec![json!({"role": "system", "content": instructions})];
    let mut assistant: Option<(Option<String>, Vec<Value>)> = None;
    let flush = |messages: &mut Vec<Value>,
                 assistant: &mut Option<(Option<String>, Vec<Value>)>| {
        let Some((content, calls)) = assistant.take() else {
            return;
        };
        let ids: Vec<String> = calls
            .iter()
            .filter_map(|call| call["id"].as_str().map(str::to_owned))
            .collect();
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        message.insert("content".into(), content.map_or(Value::Null, Value::String));
        if !calls.is_empty() {
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        messages.push(Value::Object(message));
        for id in ids {
            // I1 gives every call an output; one without would be refused
            // by the server, as it should be.
            if let Some(output) = outputs.get(id.as_str()) {
                messages.push(json!({"role": "tool", "tool_call_id": id, "content": output}));
            }
        }
    };
    for item in input {
        match item {
            ResponseItem::Message { role, content } if role == "assistant" => {
                flush(&mut messages, &mut assistant);
                assistant = Some((Some(text_of(content)), Vec::new()));
            }
            ResponseItem::Message { role, content } => {
                flush(&mut messages, &mut assistant);
                // Local servers know `system`, not `developer`.
                let role = if role == "developer" { "system" } else { role };
                messages.push(json!({"role": role, "content": text_of(content)}));
            }
            ResponseItem::FunctionCall {
                name,
                arguments,
                call_id,
            } => {
                let calls = &mut assistant.get_or_insert_with(|| (None, Vec::new())).1;
                calls.push(tool_call(call_id, name, arguments.clone()));
            }
            ResponseItem::CustomToolCall {
                name,
                input,
                call_id,
            } => {
                let calls = &mut assistant.get_or_insert_with(|| (None, Vec::new())).1;
                calls.push(tool_call(
                    call_id,
                    name,
                    json!({"input": input}).to_string(),
                ));
            }
            // Servers that stream reasoning refuse it in a request.
            ResponseItem::Reasoning { .. } => {}
            // Sent with their call (above); one with no call is dropped, as
            // the history's repair would drop it.
            ResponseItem::FunctionCallOutput { .. } | ResponseItem::CustomToolCallOutput { .. } => {
                flush(&mut messages, &mut assistant);
            }
        }
    }
    flush(&mut messages, &mut assistant);
    messages
}

fn tool_call(call_id: &str, name: &str, arguments: String) -> Value {
    json!({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
}

fn text_of(content: &[ContentItem]) -> String {
    match content {
        [one] => one.text().to_owned(),
        parts => parts.iter().map(ContentItem::text).collect(),
    }
}

/// The events of one answer.
pub struct ChatStream {
    events: EventSource,
    answer: Answer,
    /// Events decoded but not yet given out (a finished answer gives several).
    ready: VecDeque<ResponseEvent>,
    done: bool,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream").finish_non_exhaustive()
    }
}

/// What an answer has said so far.
#[derive(Debug, Default)]
struct Answer {
    text: String,
    reasoning: String,
    /// Tool calls by index, put together from their fragments.
    calls: Vec<CallParts>,
    finish_reason: Option<String>,
    usage: TokenUsage,
}

#[derive(Debug, Default, Clone)]
struct CallParts {
    id: Option<String>,
    name: String,
    arguments: String,
}

impl ChatStream {
    /// As a [`crate::ModelStream`].
    pub fn into_stream(self) -> crate::ModelStream {
        Box::pin(futures::stream::unfold(
            Box::new(self),
            |mut stream| async move { stream.next().await.map(|event| (event, stream)) },
        ))
    }

    /// The next event; `None` after `Completed` or an error.
    pub async fn next(&mut self) -> Option<Result<ResponseEvent, ModelError>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            let result = match self.events.next_event().await {
                Ok(Some(event)) if event.data.trim() == "[DONE]" => self.finish(),
                Ok(Some(event)) => self.take(&event.data),
                // Servers that send no `[DONE]` end the stream after the
                // finishing chunk (and its usage).
                Ok(None) if self.answer.finish_reason.is_some() => self.finish(),
                Ok(None) => Err(ModelError::RetryableStream {
                    reason: "the stream closed before the answer finished".to_string(),
                }),
                Err(error) => Err(error),
            };
            if let Err(error) = result {
                self.done = true;
                return Some(Err(error));
            }
        }
    }

    /// One chunk: its deltas become events at once; its finish and usage are kept.
    fn take(&mut self, data: &str) -> Result<(), ModelError> {
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| malformed(&e))?;
        if let Some(error) = chunk.error {
            return Err(stream_error(&error));
        }
        if let Some(usage) = chunk.usage {
            self.answer.usage = usage.into();
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return Ok(());
        };
        if let Some(delta) = choice.delta {
            if let Some(reasoning) = delta.reasoning_content.or(delta.reasoning.and_then(text))
                && !reasoning.is_empty()
            {
                self.answer.reasoning.push_str(&reasoning);
                self.ready
                    .push_back(ResponseEvent::ReasoningDelta(reasoning));
            }
            if let Some(content) = delta.content
                && !content.is_empty()
            {
                self.answer.text.push_str(&content);
                self.ready
                    .push_back(ResponseEvent::OutputTextDelta(content));
            }
            for fragment in delta.tool_calls.unwrap_or_default() {
                self.answer.add_fragment(fragment)?;
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.answer.finish_reason = Some(reason);
        }
        Ok(())
    }

    /// The answer is over: its items, then `Completed`, or why it is not an answer.
    fn finish(&mut self) -> Result<(), ModelError> {
        self.done = true;
        let answer = std::mem::take(&mut self.answer);
        match answer.finish_reason.as_deref() {
            Some("length") => {
                return Err(ModelError::Fatal {
                    message: "the model's answer was cut off at its output token limit (finish_reason \"length\"); the partial answer was dropped".to_string(),
                    status: None,
                });
            }
            Some("content_filter") => {
                return Err(ModelError::Fatal {
                    message: "the provider's content filter stopped the model's answer (finish_reason \"content_filter\")".to_string(),
                    status: None,
                });
            }
            None => {
                return Err(ModelError::RetryableStream {
                    reason: "the stream ended ([DONE]) before the answer finished".to_string(),
                });
            }
            Some(_) => {}
        }
        if !answer.reasoning.is_empty() {
            self.ready
                .push_back(ResponseEvent::OutputItemDone(OutputItem::Reasoning {
                    text: answer.reasoning,
                    encrypted_content: None,
                }));
        }
        if !answer.text.is_empty() {
            self.ready
                .push_back(ResponseEvent::OutputItemDone(OutputItem::Message {
                    text: answer.text,
                }));
        }
        for (index, call) in answer.calls.into_iter().enumerate() {
            if call.name.is_empty() {
                return Err(ModelError::RetryableStream {
                    reason: format!(
                        "malformed answer from the server: tool call {index} has no name"
                    ),
                });
            }
            let arguments = if call.arguments.trim().is_empty() {
                "{}".to_string()
            } else {
                call.arguments
            };
            self.ready
                .push_back(ResponseEvent::OutputItemDone(OutputItem::FunctionCall {
                    name: call.name,
                    arguments,
                    call_id: call.id.unwrap_or_else(new_call_id),
                }));
        }
        self.ready.push_back(ResponseEvent::Completed {
            usage: answer.usage,
        });
        Ok(())
    }
}

impl Answer {
    fn add_fragment(&mut self, fragment: ToolCallDelta) -> Result<(), ModelError> {
        // A server that numbers nothing sends one call at a time.
        let index = fragment
            .index
            .unwrap_or_else(|| self.calls.len().saturating_sub(1));
        if index >= MAX_TOOL_CALLS {
            return Err(ModelError::RetryableStream {
                reason: format!(
                    "malformed answer from the server: tool call index {index} (at most {MAX_TOOL_CALLS} calls are read)"
                ),
            });
        }
        if self.calls.len() <= index {
            self.calls.resize(index + 1, CallParts::default());
        }
        let call = &mut self.calls[index];
        if let Some(id) = fragment.id.filter(|id| !id.is_empty()) {
            call.id = Some(id);
        }
        if let Some(function) = fragment.function {
            if let Some(name) = function.name {
                call.name.push_str(&name);
            }
            if let Some(arguments) = function.arguments {
                call.arguments.push_str(&arguments);
            }
        }
        Ok(())
    }
}

/// A call id for a server that sent none (some local servers do not).
fn new_call_id() -> String {
    format!("call_{:016x}", fastrand::u64(..))
}

/// `reasoning` as some servers send it: a string; anything else is not text.
fn text(value: Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text),
        _ => None,
    }
}

/// An `{"error": …}` chunk: a failure in the middle of the stream.
fn stream_error(error: &Value) -> ModelError {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| error.as_str())
        .unwrap_or("the model's answer failed");
    let message = server_words(message);
    let code = error
        .get("code")
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    let kind = error.get("type").and_then(Value::as_str).unwrap_or("");
    let transient = matches!(
        code.as_str(),
        "server_error" | "server_is_overloaded" | "rate_limit_exceeded" | "slow_down" | "429"
    ) || code.starts_with('5')
        || kind == "server_error";
    if transient {
        ModelError::RetryableStream {
            reason: format!("the server failed the answer: {message}"),
        }
    } else {
        ModelError::Fatal {
            message,
            status: None,
        }
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<Value>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    /// A piece of the arguments' JSON text; some servers send the
    /// arguments whole, as a JSON object, which is taken as its text.
    #[serde(default, deserialize_with = "arguments_text")]
    arguments: Option<String>,
}

fn arguments_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text),
        Some(other) => Some(other.to_string()),
    })
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize, Default)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<Usage> for TokenUsage {
    fn from(usage: Usage) -> TokenUsage {
        TokenUsage {
            input_tokens: usage.prompt_tokens,
            cached_input_tokens: usage
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            output_tokens: usage.completion_tokens,
            reasoning_output_tokens: usage
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(messages: &[Value]) -> Vec<String> {
        messages
            .iter()
            .map(|m| {
                let role = m["role"].as_str().unwrap_or("?");
                match (m.get("tool_calls"), m.get("tool_call_id")) {
                    (Some(calls), _) => format!(
                        "{role}[{}]",
                        calls
                            .as_array()
                            .map(|c| c
                                .iter()
                                .filter_map(|c| c["id"].as_str())
                                .collect::<Vec<_>>()
                                .join(","))
                            .unwrap_or_default()
                    ),
                    (None, Some(id)) => format!("{role}:{}", id.as_str().unwrap_or("?")),
                    (None, None) => role.to_owned(),
                }
            })
            .collect()
    }

    #[test]
    fn outputs_follow_their_assistant_message_wherever_the_history_has_them() {
        let input = vec![
            ResponseItem::user_text("do it"),
            ResponseItem::assistant_text("on it"),
            ResponseItem::FunctionCall {
                name: "shell".into(),
                arguments: "{}".into(),
                call_id: "a".into(),
            },
            ResponseItem::FunctionCall {
                name: "shell".into(),
                arguments: "{}".into(),
                call_id: "b".into(),
            },
            // A steer recorded before the outputs must come after them.
            ResponseItem::user_text("also this"),
            ResponseItem::call_output("b", "B"),
            ResponseItem::call_output("a", "A"),
            ResponseItem::Message {
                role: "developer".into(),
                content: vec![ContentItem::InputText { text: "d".into() }],
            },
        ];
        let messages = messages("be good", &input);
        assert_eq!(
            roles(&messages),
            [
                "system",
                "user",
                "assistant[a,b]",
                "tool:a",
                "tool:b",
                "user",
                "system"
            ]
        );
        assert_eq!(messages[2]["content"], "on it");
        assert_eq!(messages[3]["content"], "A");
    }

    #[test]
    fn a_call_without_text_has_null_content() {
        let input = vec![
            ResponseItem::FunctionCall {
                name: "shell".into(),
                arguments: "{\"x\":1}".into(),
                call_id: "a".into(),
            },
            ResponseItem::call_output("a", "ok"),
        ];
        let messages = messages("i", &input);
        assert_eq!(messages[1]["content"], Value::Null);
        assert_eq!(
            messages[1]["tool_calls"][0]["function"]["arguments"],
            "{\"x\":1}"
        );
    }

    #[test]
    fn fragments_are_assembled_by_index_even_interleaved() {
        let mut answer = Answer::default();
        let fragment = |index, id: Option<&str>, name: Option<&str>, args: &str| ToolCallDelta {
            index: Some(index),
            id: id.map(str::to_owned),
            function: Some(FunctionDelta {
                name: name.map(str::to_owned),
                arguments: Some(args.to_owned()),
            }),
        };
        for f in [
            fragment(0, Some("a"), Some("shell"), ""),
            fragment(1, Some("b"), Some("shell"), "{\"com"),
            fragment(0, None, None, "{\"x\""),
            fragment(1, None, None, "mand\":1}"),
            fragment(0, None, None, ":2}"),
        ] {
            answer.add_fragment(f).unwrap();
        }
        assert_eq!(answer.calls[0].arguments, "{\"x\":2}");
        assert_eq!(answer.calls[1].arguments, "{\"command\":1}");
        assert_eq!(answer.calls[1].id.as_deref(), Some("b"));
        assert!(
            answer
                .add_fragment(fragment(MAX_TOOL_CALLS, None, None, ""))
                .is_err()
        );
    }

    #[test]
    fn arguments_sent_as_an_object_are_taken_as_their_text() {
        let chunk: Chunk = serde_json::from_str(
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"shell","arguments":{"command":["ls"]}}}]}}]}"#,
        )
        .unwrap();
        let delta = chunk.choices.into_iter().next().unwrap().delta.unwrap();
        let call = delta.tool_calls.unwrap().into_iter().next().unwrap();
        assert_eq!(
            call.function.unwrap().arguments.as_deref(),
            Some(r#"{"command":["ls"]}"#)
        );
    }

    #[test]
    fn mid_stream_errors_are_classified() {
        assert!(matches!(
            stream_error(&json!({"message": "overloaded", "code": "server_error"})),
            ModelError::RetryableStream { .. }
        ));
        assert!(matches!(
            stream_error(&json!({"message": "bad tool schema", "code": 400})),
            ModelError::Fatal { .. }
        ));
    }
}
