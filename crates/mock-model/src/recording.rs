//! What the mock received: every request, in arrival order, with what it did
//! about it.
//!
//! A request is recorded the same way whichever wire API it spoke: a chat
//! request's `messages` are also kept as the Responses `input` items they
//! amount to (see [`crate::chat_input`]), so a test asserts once on
//! [`RecordedRequest::input`] and runs against both APIs.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::chat_input;
use crate::tokens;
use crate::wire::Wire;

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The body as JSON, or `Value::Null` if it was not JSON.
    pub body: Value,
    /// The body as text (lossy UTF-8).
    pub raw_body: String,
    /// The request headers, names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// The request path, e.g. `/v1/responses` or `/v1/chat/completions`.
    pub path: String,
    /// When the full request body had arrived.
    pub arrived: Instant,
    /// [`arrived`](Self::arrived) relative to the server's start.
    pub since_start: Duration,
    /// Why the mock refused the request without consuming a step: the contract
    /// message of a `400` (broken tool-call pairing, body not JSON, missing
    /// `model`, `input` not an array, ...), `context_length_exceeded: <message>`
    /// when the request did not fit the context window
    /// ([`MockModel::set_context_window`](crate::MockModel::set_context_window)),
    /// or the reason for a `404`/`405` on a path or method the mock does not
    /// serve. `None` for requests a step answered and for requests that found
    /// the script exhausted.
    pub rejected: Option<String>,
    /// Which script step (0-based) answered the request; `None` when it was
    /// rejected or the script had no step left.
    pub step_index: Option<usize>,
    /// The request's input tokens as the mock estimates them (see the crate
    /// docs): the number the context window is checked against, and the
    /// `input_tokens` / `prompt_tokens` the response reports unless its step
    /// sets a usage. 0 for a body that is not JSON.
    pub input_tokens: u64,
    /// The conversation as Responses input items, whichever API carried it.
    input_items: Vec<Value>,
    /// The instructions, whichever API carried them.
    instructions: Option<String>,
}

impl RecordedRequest {
    /// Record a request whose body parsed to `body` (`Value::Null` if it did
    /// not); the outcome fields are filled in by the server.
    pub(crate) fn new(
        parts: &hyper::http::request::Parts,
        raw: &[u8],
        body: Value,
        arrived: Instant,
        since_start: Duration,
    ) -> RecordedRequest {
        let path = parts.uri.path().to_owned();
        let wire = wire_of(&path);
        let (instructions, input_items) = match wire {
            Wire::Responses => (
                body.get("instructions")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                body.get("input")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            ),
            Wire::Chat => {
                let messages = body
                    .get("messages")
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice);
                let view = chat_input::translate(messages);
                (view.instructions, view.input)
            }
        };
        RecordedRequest {
            input_tokens: tokens::input_tokens(wire, &body),
            body,
            raw_body: String::from_utf8_lossy(raw).into_owned(),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            method: parts.method.to_string(),
            path,
            arrived,
            since_start,
            rejected: None,
            step_index: None,
            input_items,
            instructions,
        }
    }

    /// The conversation the request carried, as Responses input items: the
    /// body's `input` array for a Responses request; for a Chat Completions
    /// request, its `messages` after the leading system/developer ones,
    /// translated (user and assistant messages, `function_call` and
    /// `function_call_output` items; see the crate docs). Empty when the body
    /// has neither.
    pub fn input(&self) -> &[Value] {
        &self.input_items
    }

    /// Which wire API the request spoke: `"chat"` for a path ending in
    /// `/chat/completions`, else `"responses"`.
    pub fn wire(&self) -> &'static str {
        wire_of(&self.path).name()
    }

    /// The instructions: the Responses `instructions` string, or the text of a
    /// chat request's leading system/developer messages (several joined by a
    /// blank line).
    pub fn instructions(&self) -> Option<String> {
        self.instructions.clone()
    }

    /// The names of the tools offered: `tools[].name` on Responses (tools
    /// without a name, such as built-in ones, are left out),
    /// `tools[].function.name` on Chat Completions.
    pub fn tool_names(&self) -> Vec<String> {
        let tools = self.body.get("tools").and_then(Value::as_array);
        let wire = wire_of(&self.path);
        tools
            .into_iter()
            .flatten()
            .filter_map(|tool| match wire {
                Wire::Responses => tool.get("name"),
                Wire::Chat => tool.get("function").and_then(|f| f.get("name")),
            })
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    }

    /// The value of a header (name matched case-insensitively), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// The API a path speaks; an unknown path is recorded as Responses.
fn wire_of(path: &str) -> Wire {
    Wire::from_path(path).unwrap_or(Wire::Responses)
}

/// [`MockModel::wait_for_requests`](crate::MockModel::wait_for_requests) gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "waited {timeout:?} for {wanted} request(s) to the mock model, but only {received} arrived"
)]
pub struct WaitTimeout {
    /// How many requests were waited for.
    pub wanted: usize,
    /// How many had arrived at the deadline.
    pub received: usize,
    /// How long was waited.
    pub timeout: Duration,
}
