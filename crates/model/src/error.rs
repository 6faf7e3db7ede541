//! What can go wrong talking to a model.

use std::time::Duration;

/// The HTTP client could not be built (no TLS roots, a bad proxy setting).
#[derive(Debug, Clone, thiserror::Error)]
#[error("could not build the HTTP client: {0}")]
pub struct ClientBuildError(pub String);

/// Why a model request did not produce a whole response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The request never got a good answer (connect error, 408, 429, 5xx); worth retrying.
    #[error("{reason}")]
    RetryableRequest {
        /// What went wrong, for the retry event.
        reason: String,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The response stream broke off (disconnect, idle, malformed); worth retrying.
    #[error("{reason}")]
    RetryableStream {
        /// What went wrong, for the retry event.
        reason: String,
    },
    /// The server refused the request; retrying would not help.
    #[error("{message}")]
    Fatal {
        /// The server's words.
        message: String,
        /// The HTTP status, if any.
        status: Option<u16>,
    },
}

impl ModelError {
    /// The call id named by a 400 that says a call has no output, if this
    /// is one: the Responses API's `No tool output found for function call
    /// X.`, or Chat Completions' `… The following tool_call_ids did not have
    /// response messages: X, Y` (the first id).
    pub fn missing_tool_output_call_id(&self) -> Option<&str> {
        let ModelError::Fatal {
            message,
            status: Some(400),
        } = self
        else {
            return None;
        };
        if let Some(rest) = message.strip_prefix("No tool output found for function call ") {
            return Some(rest.trim_end().trim_end_matches('.'));
        }
        let (_, ids) = message.split_once("did not have response messages: ")?;
        ids.split(',')
            .next()
            .map(|id| id.trim().trim_end_matches('.'))
    }
}
