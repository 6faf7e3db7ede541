//! Steps: what the mock answers to one request.
//!
//! Every valid request consumes the next [`Step`] of the script. A step is a
//! streamed response (with optional faults), a plain HTTP error, a
//! `response.failed` stream, or a request that is never answered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::item::Item;

/// The answer to one request, tagged by `"type"` in JSON.
///
/// A step answers whichever API the request spoke: the same script serves
/// Responses and Chat Completions requests, in arrival order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Step {
    /// `200 text/event-stream`: `response.created`, the items with their
    /// deltas, `response.completed` (Chat Completions: a role chunk, delta
    /// chunks, a `finish_reason` chunk, `[DONE]`); faults may cut it short.
    Response(ResponseStep),
    /// A plain HTTP error response, e.g. a 429 with `Retry-After`.
    HttpError(HttpErrorStep),
    /// `200 text/event-stream` with `response.created` then `response.failed`
    /// (Chat Completions: a role chunk, then one
    /// `data: {"error":{"message":..,"type":"server_error","code":..}}` event
    /// and the end of the body, without `[DONE]`).
    Failed(FailedStep),
    /// Read the request, never send the response head, keep the connection
    /// open until the client goes away or the server shuts down.
    Hang,
}

impl Step {
    /// A response with one text item, cut into deltas after each word.
    pub fn text(text: impl Into<String>) -> Step {
        Step::response(vec![Item::text(text)])
    }

    /// A response with one function call.
    pub fn function_call(
        call_id: impl Into<String>,
        name: impl Into<String>,
        arguments: Value,
    ) -> Step {
        Step::response(vec![Item::function_call(call_id, name, arguments)])
    }

    /// A response with one custom (freeform) tool call.
    pub fn custom_tool_call(
        call_id: impl Into<String>,
        name: impl Into<String>,
        input: impl Into<String>,
    ) -> Step {
        Step::response(vec![Item::custom_tool_call(call_id, name, input)])
    }

    /// A response streaming these items in order.
    pub fn response(items: Vec<Item>) -> Step {
        Step::Response(ResponseStep {
            items,
            ..ResponseStep::default()
        })
    }

    /// An HTTP error with this body: a JSON string is sent as-is, any other
    /// JSON value is serialized.
    pub fn http_error(status: u16, body: impl Into<Value>) -> Step {
        Step::HttpError(HttpErrorStep {
            status,
            body: Some(body.into()),
            headers: BTreeMap::new(),
        })
    }

    /// An HTTP error with an OpenAI-style error body for the status.
    pub fn http_status(status: u16) -> Step {
        Step::HttpError(HttpErrorStep {
            status,
            body: None,
            headers: BTreeMap::new(),
        })
    }

    /// A stream that fails with `response.failed`, code `server_error`.
    pub fn failed(message: impl Into<String>) -> Step {
        Step::Failed(FailedStep {
            message: Some(message.into()),
            code: None,
        })
    }

    /// A request that is never answered.
    pub fn hang() -> Step {
        Step::Hang
    }

    /// The kind of step as written in JSON (`"response"`, `"http_error"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Response(_) => "response",
            Step::HttpError(_) => "http_error",
            Step::Failed(_) => "failed",
            Step::Hang => "hang",
        }
    }

    /// Pause this long between consecutive delta events. Response steps only;
    /// the `with_*` fault and response builders have no effect on other steps.
    #[must_use]
    pub fn with_delta_delay(self, ms: u64) -> Step {
        self.map_response(|r| r.delta_delay_ms = ms)
    }

    /// Abort the connection after `n` deltas (no `response.completed`).
    #[must_use]
    pub fn with_drop_after(self, n: usize) -> Step {
        self.map_response(|r| r.drop_after_deltas = Some(n))
    }

    /// After `after_deltas` deltas send nothing for `ms` milliseconds, then go on.
    #[must_use]
    pub fn with_stall(self, after_deltas: usize, ms: u64) -> Step {
        self.map_response(|r| r.stall = Some(Stall { after_deltas, ms }))
    }

    /// After `n` deltas send one `data: {this is not json` line, then go on.
    #[must_use]
    pub fn with_malformed_after(self, n: usize) -> Step {
        self.map_response(|r| r.malformed_after_deltas = Some(n))
    }

    /// After `n` deltas send nothing ever again, keeping the connection open.
    #[must_use]
    pub fn with_hang_after(self, n: usize) -> Step {
        self.map_response(|r| r.hang_after_deltas = Some(n))
    }

    /// After `n` deltas send only SSE comments (`: keep-alive`), one every
    /// `every_ms`, forever: the connection stays busy with no event.
    #[must_use]
    pub fn with_keep_alive_after(self, n: usize, every_ms: u64) -> Step {
        self.map_response(|r| {
            r.keep_alive_after_deltas = Some(KeepAlive {
                after_deltas: n,
                every_ms,
            });
        })
    }

    /// Report this usage in `response.completed` (Chat Completions: in the
    /// usage chunk).
    #[must_use]
    pub fn with_usage(self, input_tokens: u64, output_tokens: u64) -> Step {
        self.map_response(|r| {
            r.usage = Some(Usage {
                input_tokens,
                output_tokens,
                ..Usage::default()
            });
        })
    }

    /// Use this response id instead of `resp_mock_<n>`.
    #[must_use]
    pub fn with_response_id(self, id: impl Into<String>) -> Step {
        let id = id.into();
        self.map_response(|r| r.response_id = Some(id))
    }

    /// End the response with this finish reason instead of the natural one
    /// (`"tool_calls"` when it has a tool call, else `"stop"`); see
    /// [`ResponseStep::finish_reason`].
    #[must_use]
    pub fn with_finish_reason(self, reason: impl Into<String>) -> Step {
        let reason = reason.into();
        self.map_response(|r| r.finish_reason = Some(reason))
    }

    /// Stream reasoning on Chat Completions in `delta.<field>` instead of
    /// `delta.reasoning_content` (e.g. `"reasoning"`, as OpenRouter and
    /// Ollama send it).
    #[must_use]
    pub fn with_reasoning_field(self, field: impl Into<String>) -> Step {
        let field = field.into();
        self.map_response(|r| r.reasoning_field = Some(field))
    }

    /// On Chat Completions, send the fragments of consecutive tool calls
    /// round-robin instead of one call after the other.
    #[must_use]
    pub fn with_interleaved_tool_calls(self) -> Step {
        self.map_response(|r| r.interleave_tool_calls = true)
    }

    /// Append an item to a response step.
    #[must_use]
    pub fn with_item(self, item: Item) -> Step {
        self.map_response(|r| r.items.push(item))
    }

    /// Add a response header to an HTTP error step (e.g. `Retry-After`).
    /// Has no effect on other steps.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Step {
        match &mut self {
            Step::HttpError(error) => {
                error.headers.insert(name.into(), value.into());
            }
            Step::Response(_) | Step::Failed(_) | Step::Hang => {}
        }
        self
    }

    fn map_response(mut self, change: impl FnOnce(&mut ResponseStep)) -> Step {
        match &mut self {
            Step::Response(response) => change(response),
            Step::HttpError(_) | Step::Failed(_) | Step::Hang => {}
        }
        self
    }
}

/// A streamed response and the faults to inject into it.
///
/// The same step is rendered as Responses events or as Chat Completions
/// chunks, depending on the path of the request it answers. Faults count
/// deltas of every kind across the whole response (text, reasoning, argument
/// or input pieces), and both renderings have the same deltas. `N = 0` means
/// right after `response.created` (Chat Completions: the first chunk, with
/// the role); `N` larger than the number of deltas means right after the last
/// delta. Several faults at the same point happen in the order stall,
/// malformed line, then drop or hang.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseStep {
    /// The output items, streamed in order.
    #[serde(default)]
    pub items: Vec<Item>,
    /// Milliseconds between consecutive delta events; 0 sends as fast as possible.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delta_delay_ms: u64,
    /// Usage reported in `response.completed` (Chat Completions: the usage
    /// chunk); estimated from the sizes of the request and the output when
    /// absent (see the crate docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Abort the connection mid-body after this many deltas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_after_deltas: Option<usize>,
    /// Go silent for a while after some deltas, then carry on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall: Option<Stall>,
    /// Send one line of broken JSON after this many deltas, then carry on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed_after_deltas: Option<usize>,
    /// Go silent forever after this many deltas, keeping the connection open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang_after_deltas: Option<usize>,
    /// Send only SSE comments after this many deltas, forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_after_deltas: Option<KeepAlive>,
    /// The response id; `resp_mock_<n>` (Chat Completions: `chatcmpl-mock-<n>`)
    /// by default, `n` being the step number counted from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// How the response ends, as a Chat Completions `finish_reason`; by default
    /// `"tool_calls"` when it has a tool call, else `"stop"`. Chat Completions
    /// sends it as given. On Responses, `"length"` ends the stream with
    /// `response.incomplete` and `incomplete_details.reason:
    /// "max_output_tokens"` (`"content_filter"` likewise, with reason
    /// `"content_filter"`), the last item marked `incomplete`; any other value
    /// ends it with `response.completed` as usual.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Chat Completions only: the `delta` field reasoning is streamed in;
    /// `reasoning_content` (DeepSeek, vLLM, llama-server) by default,
    /// `reasoning` for OpenRouter and Ollama.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_field: Option<String>,
    /// Chat Completions only: send the fragments of each run of consecutive
    /// tool calls round-robin (the first fragment of every call, then the
    /// second of every call, ...), as some servers do, instead of one call
    /// after the other.
    #[serde(default, skip_serializing_if = "is_false")]
    pub interleave_tool_calls: bool,
}

/// A pause in the middle of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stall {
    /// How many deltas to send before the pause.
    pub after_deltas: usize,
    /// How long the pause lasts, in milliseconds.
    pub ms: u64,
}

/// Comments instead of events, forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepAlive {
    /// How many deltas to send first.
    pub after_deltas: usize,
    /// Milliseconds between two comments.
    pub every_ms: u64,
}

/// Token usage reported in `response.completed` (Chat Completions: the usage
/// chunk, under the names in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// `usage.input_tokens` (`prompt_tokens`).
    pub input_tokens: u64,
    /// `usage.output_tokens` (`completion_tokens`).
    pub output_tokens: u64,
    /// `usage.input_tokens_details.cached_tokens`
    /// (`prompt_tokens_details.cached_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_tokens: u64,
    /// `usage.output_tokens_details.reasoning_tokens`
    /// (`completion_tokens_details.reasoning_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reasoning_tokens: u64,
}

/// A plain HTTP error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpErrorStep {
    /// The HTTP status, e.g. 429.
    pub status: u16,
    /// The body: a JSON string is sent as-is, any other JSON value serialized.
    /// When absent, an OpenAI-style error object for the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Extra response headers, e.g. `{"Retry-After": "1"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// A stream that reports `response.failed`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedStep {
    /// `response.error.message` (Chat Completions: `error.message`); a generic
    /// server error message by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `response.error.code` (Chat Completions: `error.code`); `server_error`
    /// by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl FailedStep {
    /// The error message sent.
    pub fn message(&self) -> &str {
        self.message
            .as_deref()
            .unwrap_or("The model failed to generate a response.")
    }

    /// The error code sent.
    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("server_error")
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builders_set_response_faults() {
        let step = Step::text("hi")
            .with_delta_delay(5)
            .with_drop_after(2)
            .with_stall(1, 30)
            .with_malformed_after(0)
            .with_hang_after(9)
            .with_usage(3, 4)
            .with_response_id("resp_x")
            .with_finish_reason("length")
            .with_reasoning_field("reasoning")
            .with_interleaved_tool_calls();
        let Step::Response(response) = step else {
            panic!("not a response");
        };
        assert_eq!(response.delta_delay_ms, 5);
        assert_eq!(response.drop_after_deltas, Some(2));
        assert_eq!(
            response.stall,
            Some(Stall {
                after_deltas: 1,
                ms: 30
            })
        );
        assert_eq!(response.malformed_after_deltas, Some(0));
        assert_eq!(response.hang_after_deltas, Some(9));
        assert_eq!(response.usage.map(|u| u.output_tokens), Some(4));
        assert_eq!(response.response_id.as_deref(), Some("resp_x"));
        assert_eq!(response.finish_reason.as_deref(), Some("length"));
        assert_eq!(response.reasoning_field.as_deref(), Some("reasoning"));
        assert!(response.interleave_tool_calls);
    }

    #[test]
    fn steps_round_trip_through_json() {
        let steps = vec![
            Step::text("hello world").with_drop_after(1),
            Step::text("cut").with_finish_reason("length"),
            Step::function_call("call_2", "shell", json!({}))
                .with_interleaved_tool_calls()
                .with_reasoning_field("reasoning"),
            Step::function_call("call_1", "shell", json!({"command": "ls"})),
            Step::http_status(429).with_header("Retry-After", "1"),
            Step::failed("boom"),
            Step::hang(),
        ];
        let text = serde_json::to_string(&steps).unwrap();
        let back: Vec<Step> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, steps);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let error = serde_json::from_str::<Step>(r#"{"type":"response","itemz":[]}"#).unwrap_err();
        assert!(error.to_string().contains("itemz"), "{error}");
    }
}
