//! Model clients: how tiller talks to a model API, behind one trait.
//!
//! [`ModelClient`] is the seam: a turn builds a [`ModelRequest`] and gets back a
//! stream of [`ResponseEvent`]s, whatever the API underneath. A client makes one
//! attempt per call and classifies what went wrong ([`ModelError`]: worth a
//! retry or not); the retry policy (budgets, backoff, `Retry-After`) lives in
//! [`retry`] so that the turn can make every wait cancellable and every retry
//! visible as an event.
//!
//! [`ResponsesClient`] speaks the OpenAI Responses API over server-sent events,
//! framed by [`sse`], tiller's own one-pass decoder. What a server says is cut
//! to a readable length and has every registered secret redacted before it
//! becomes an error.
//!
//! To add a client (Chat Completions, say): implement [`ModelClient`] for it,
//! map its wire events to [`ResponseEvent`]s, classify its failures into
//! [`ModelError`], and choose it in [`client_for`] by the provider's `wire_api`.
#![deny(missing_docs)]

pub mod chat;
mod error;
mod http;
pub mod models;
pub mod responses;
pub mod retry;
pub mod sse;

use std::future::Future;
use std::pin::Pin;

use futures::stream::BoxStream;
use tiller_config::{ProviderConfig, WireApi};

pub use chat::ChatClient;
pub use error::{ClientBuildError, ModelError};
pub use http::shared_http_client;
pub use responses::{
    ModelRequest, OutputItem, Reasoning, ResponseEvent, ResponseStream, ResponsesClient,
};

/// The events of one model response, in order; it ends after
/// [`ResponseEvent::Completed`] or an error.
pub type ModelStream = BoxStream<'static, Result<ResponseEvent, ModelError>>;

/// What a model request's answer is awaited as: the stream once the server
/// has accepted the request, or why not.
pub type StreamFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ModelStream, ModelError>> + Send + 'a>>;

/// A model API. One call, one attempt: retries are the caller's.
pub trait ModelClient: Send + Sync + std::fmt::Debug {
    /// Send `request`; the stream of the response once the server answered.
    fn stream<'a>(&'a self, request: &'a ModelRequest) -> StreamFuture<'a>;
}

/// The client for `provider`'s API, authenticating with `api_key` if given.
pub fn client_for(
    provider: &ProviderConfig,
    api_key: Option<String>,
) -> Result<std::sync::Arc<dyn ModelClient>, ClientBuildError> {
    match provider.wire_api {
        WireApi::Responses => Ok(std::sync::Arc::new(ResponsesClient::new(
            provider, api_key,
        )?)),
        WireApi::Chat => Ok(std::sync::Arc::new(ChatClient::new(provider, api_key)?)),
    }
}
