//! Model clients.
//!
//! [`ResponsesClient`] speaks the OpenAI Responses API over SSE. It makes one
//! attempt per call and classifies what went wrong ([`ModelError`]); the retry
//! policy (budgets, backoff, `Retry-After`) lives in [`retry`] so that the turn
//! can make every wait cancellable and every retry visible as an event.

pub mod responses;
pub mod retry;
pub mod sse;

pub use responses::{ModelRequest, OutputItem, ResponseEvent, ResponseStream, ResponsesClient};
