//! What can go wrong talking to the app-server.

use tiller_app_server_protocol::{ErrorCode, UserInput};

/// An error of a request to the app-server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server is gone (it exited, was killed, or closed its output) or was
    /// shut down. Every request pending when that happened fails with this,
    /// once; a request sent afterwards fails with it at once.
    #[error("the app-server is not connected")]
    Disconnected,
    /// The server did not answer in time. The request may still take effect:
    /// requests carrying a `clientUserMessageId` can be sent again safely.
    #[error("the app-server did not answer `{method}` in time")]
    Timeout {
        /// The method of the request.
        method: String,
    },
    /// The server answered with an error.
    #[error("the app-server refused the request ({code}): {message}")]
    Server {
        /// The JSON-RPC error code (-32600 invalid request, -32602 invalid
        /// params, …).
        code: i64,
        /// The server's message.
        message: String,
    },
    /// The server could not be started or written to.
    #[error("could not talk to the app-server: {0}")]
    Io(#[from] std::io::Error),
    /// The server's answer did not have the shape the protocol gives it.
    #[error("the app-server broke the protocol: {0}")]
    Protocol(String),
}

impl ClientError {
    /// Whether the server refused the request as invalid (-32600): no active
    /// turn, turn id mismatch, unknown thread.
    pub fn is_invalid_request(&self) -> bool {
        matches!(self, ClientError::Server { code, .. } if *code == ErrorCode::InvalidRequest.code())
    }
}

/// A `turn/steer` that was not accepted, with its input handed back so that
/// the caller can put it back in the composer, queue it, or start a turn with
/// it. The client never sends it again by itself.
#[derive(Debug, thiserror::Error)]
#[error("the steer was not accepted: {error}")]
pub struct SteerRejected {
    /// Why: [`ClientError::Server`] with -32600 when there is no active turn or
    /// the expected turn id is not the running turn's;
    /// [`ClientError::Disconnected`] or [`ClientError::Timeout`] when the
    /// answer was lost (then the steer may or may not have been delivered).
    #[source]
    pub error: ClientError,
    /// The input, unchanged.
    pub input: Vec<UserInput>,
    /// The `clientUserMessageId` the request carried.
    pub client_user_message_id: Option<String>,
}
