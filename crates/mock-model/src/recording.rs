//! What the mock received: every request, in arrival order, with what it did
//! about it.

use std::time::{Duration, Instant};

use serde_json::Value;

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
    /// The request path, e.g. `/v1/responses`.
    pub path: String,
    /// When the full request body had arrived.
    pub arrived: Instant,
    /// [`arrived`](Self::arrived) relative to the server's start.
    pub since_start: Duration,
    /// Why the mock refused the request without consuming a step: the contract
    /// message of a `400` (broken tool-call pairing, body not JSON, missing
    /// `model`, `input` not an array), or the reason for a `404`/`405` on a path
    /// or method the mock does not serve. `None` for requests a step answered
    /// and for requests that found the script exhausted.
    pub rejected: Option<String>,
    /// Which script step (0-based) answered the request; `None` when it was
    /// rejected or the script had no step left.
    pub step_index: Option<usize>,
}

impl RecordedRequest {
    /// The `input` array of the body, or an empty slice.
    pub fn input(&self) -> &[Value] {
        self.body
            .get("input")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The value of a header (name matched case-insensitively), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
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
