//! A scripted OpenAI **Responses API** server on loopback, for tests, benchmarks
//! and offline demos of tiller.
//!
//! [`MockModel::start`] binds `127.0.0.1` on a free port and serves real
//! HTTP/1.1: clients post to `{base_url}/responses` exactly as they would to the
//! real service and get real server-sent events back. Each valid request
//! consumes the next [`Step`] of a [`Script`]:
//!
//! - [`Step::Response`] streams `response.created`, then each [`Item`] (text,
//!   function call, reasoning) with its deltas, then `response.completed`,
//!   with the event names, fields and ordering of the real API;
//! - faults can be injected into a response after any number of deltas: a
//!   dropped connection, a stall, a malformed line, a stream that goes
//!   silent for good, or one that sends only `: keep-alive` comments forever
//!   (`keep_alive_after_deltas: {"after_deltas": N, "every_ms": MS}`);
//! - [`Step::HttpError`], [`Step::Failed`] and [`Step::Hang`] cover error
//!   statuses (with headers such as `Retry-After`), `response.failed`, and a
//!   request that is never answered.
//!
//! # The contract is enforced
//!
//! Before a step is consumed, every request is checked the way the real service
//! checks it (see [`contract`]): a `function_call` without a matching
//! `function_call_output` after it, or an output without an earlier call, gets
//! the same `400 invalid_request_error` with the same message. A client bug that
//! would break a conversation in production therefore breaks the test too. A
//! refused request is recorded with the reason and does not use up a step.
//!
//! # Observing the client
//!
//! Every request is recorded ([`RecordedRequest`]) with its body, headers,
//! arrival time and the step that answered it. [`MockModel::wait_for_requests`]
//! wakes as soon as the wanted number of requests has arrived, so tests wait on
//! events with a deadline rather than sleeping.
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
//! shuts down ends its responses with it, hanging ones included.

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
