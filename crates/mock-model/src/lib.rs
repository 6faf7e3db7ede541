//! A scripted OpenAI **Responses** and **Chat Completions** server on loopback,
//! for tests, benchmarks and offline demos of tiller.
//!
//! [`MockModel::start`] binds `127.0.0.1` on a free port and serves real
//! HTTP/1.1: clients post to `{base_url}/responses` or
//! `{base_url}/chat/completions` exactly as they would to the real service (or
//! to Ollama, vLLM, LM Studio, llama-server, OpenRouter) and get real
//! server-sent events back. Each valid request consumes the next [`Step`] of
//! one [`Script`], whatever its path, and the step is rendered in the wire
//! format of that path, so a lifecycle test runs unchanged against both APIs:
//!
//! - [`Step::Response`] streams each [`Item`] (text, function call, reasoning,
//!   custom tool call) with its deltas. On Responses: `response.created`, the
//!   items' events, `response.completed`, with the event names, fields and
//!   ordering of the real API. On Chat Completions: `data:` chunks (a role
//!   chunk, `content` / `reasoning_content` / `tool_calls` deltas, a
//!   `finish_reason` chunk, a usage chunk when
//!   `stream_options.include_usage` asks for it, `data: [DONE]`);
//! - faults can be injected into a response after any number of deltas: a
//!   dropped connection, a stall, a malformed line, a stream that goes
//!   silent for good, or one that sends only `: keep-alive` comments forever
//!   (`keep_alive_after_deltas: {"after_deltas": N, "every_ms": MS}`). Both
//!   renderings cut an item into the very same deltas, so a fault lands at the
//!   same point on both;
//! - `finish_reason` (e.g. `"length"`) ends a response as truncated:
//!   `response.incomplete` on Responses, that `finish_reason` on Chat
//!   Completions;
//! - [`Step::HttpError`], [`Step::Failed`] and [`Step::Hang`] cover error
//!   statuses (with headers such as `Retry-After`), a failure mid-stream
//!   (`response.failed`, or a chat `data: {"error": ..}` event), and a request
//!   that is never answered.
//!
//! # The contract is enforced
//!
//! Before a step is consumed, every request is checked the way the real service
//! checks it (see [`contract`]): on Responses, a `function_call` without a
//! matching `function_call_output` after it, or an output without an earlier
//! call; on Chat Completions, an assistant message whose `tool_calls` are not
//! all answered by the `tool` messages right after it, or a `tool` message
//! answering nothing. Either gets the same `400 invalid_request_error` with the
//! same message as in production, so a client bug that would break a
//! conversation there breaks the test too. A refused request is recorded with
//! the reason and does not use up a step.
//!
//! # Token estimates and the context window
//!
//! The mock estimates a request's input tokens as `ceil(n / 4)`, `n` being the
//! byte length of the compact JSON of its `instructions`, `input` and `tools`
//! (Responses) or `messages` and `tools` (Chat Completions). That one number is
//! the `input_tokens` / `prompt_tokens` a response reports (unless its step sets
//! a [`Usage`]), [`RecordedRequest::input_tokens`], and what
//! [`MockModel::set_context_window`] checks: a request over the window gets the
//! real `400 context_length_exceeded`. A client that trusts the reported usage
//! thus sees exactly what its next request is checked against.
//!
//! # Observing the client
//!
//! Every request is recorded ([`RecordedRequest`]) with its body, headers,
//! arrival time and the step that answered it. [`RecordedRequest::input`]
//! shows the conversation as Responses input items for both APIs (a chat
//! history is translated: user and assistant messages, `function_call` and
//! `function_call_output` items), so assertions need not care which API
//! carried it. [`MockModel::wait_for_requests`] wakes as soon as the wanted
//! number of requests has arrived, so tests wait on events with a deadline
//! rather than sleeping.
//!
//! # Scripts in JSON
//!
//! A [`Script`] can be built in Rust (`Step::text("hello")`,
//! `Step::function_call("call_1", "shell", json!({..})).with_drop_after(3)`) or
//! read from JSON, either `{"steps": [...]}` or a bare array:
//!
//! ```json
//! [
//!   {"type": "response", "items": [
//!     {"type": "function_call", "name": "shell", "call_id": "call_1",
//!      "arguments": {"command": ["ls"]}}]},
//!   {"type": "response", "delta_delay_ms": 20, "items": [
//!     {"type": "reasoning", "text": "The listing is short."},
//!     {"type": "text", "text": "There are two files.", "chunks": 4}]},
//!   {"type": "http_error", "status": 429, "headers": {"Retry-After": "1"}},
//!   {"type": "response", "drop_after_deltas": 2, "items": [{"type": "text", "text": "a b c"}]},
//!   {"type": "response", "finish_reason": "length", "reasoning_field": "reasoning",
//!    "interleave_tool_calls": true, "items": [{"type": "text", "text": "cut"}]},
//!   {"type": "failed", "message": "overloaded", "code": "server_error"},
//!   {"type": "hang"}
//! ]
//! ```
//!
//! # Design
//!
//! A step is rendered up front into the exact bytes of its events, with pauses
//! and faults between them (rendering is pure), and that plan is played back by
//! the response body, which hyper polls inside the connection's task. Nothing
//! runs outside a connection task, so a client that goes away or a server that
//! shuts down ends its responses with it, hanging ones included. The two wire
//! formats are two renderers over one plan writer, which owns delta counting
//! and fault placement; everything else (script, recording, contract pairing
//! rules) is shared or kept side by side, one module per concern.

#![deny(missing_docs)]

mod body;
mod chat;
mod chat_input;
pub mod contract;
mod item;
mod plan;
mod recording;
mod responses;
mod script;
mod server;
mod step;
mod tokens;
mod wire;

pub use contract::ContractViolation;
pub use item::{CustomToolCallItem, FunctionCallItem, Item, StreamedText};
pub use recording::{RecordedRequest, WaitTimeout};
pub use script::{Script, ScriptError};
pub use server::MockModel;
pub use step::{FailedStep, HttpErrorStep, KeepAlive, ResponseStep, Stall, Step, Usage};
