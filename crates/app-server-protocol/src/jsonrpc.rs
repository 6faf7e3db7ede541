//! Framing: what one line is, and the error codes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request id: a string or an integer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// An integer id.
    Integer(i64),
    /// A string id.
    String(String),
}

/// JSON-RPC error codes the server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The line is not JSON.
    ParseError,
    /// Not a valid request; also: no active turn, turn id mismatch, unknown
    /// thread, request before `initialize`.
    InvalidRequest,
    /// Unknown method.
    MethodNotFound,
    /// Params missing or of the wrong type.
    InvalidParams,
    /// The server failed.
    InternalError,
    /// The server cannot take the request now; retry later (Codex's -32001).
    Overloaded,
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::InternalError => -32603,
            ErrorCode::Overloaded => -32001,
        }
    }
}

/// The `error` member of an error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonRpcError {
    /// The code.
    pub code: i64,
    /// What went wrong.
    pub message: String,
    /// More detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl JsonRpcError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        JsonRpcError {
            code: code.code(),
            message: message.into(),
            data: None,
        }
    }
}

/// A line from the client, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `{id, method, params?}`.
    Request {
        /// Its id.
        id: RequestId,
        /// The method.
        method: String,
        /// The params (`Null` when absent).
        params: Value,
    },
    /// `{method, params?}`.
    Notification {
        /// The method.
        method: String,
        /// The params.
        params: Value,
    },
    /// `{id, result}` or `{id, error}`: an answer to a request of the server's.
    Response {
        /// Its id.
        id: RequestId,
        /// The result, or the error.
        result: Result<Value, Value>,
    },
}

/// Classify one line. An error comes with the id to answer it with, if the line
/// had a usable one.
pub fn parse_line(line: &str) -> Result<Incoming, (Option<RequestId>, JsonRpcError)> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        (
            None,
            JsonRpcError::new(ErrorCode::ParseError, format!("not a JSON line: {e}")),
        )
    })?;
    let Value::Object(mut object) = value else {
        return Err((
            None,
            JsonRpcError::new(ErrorCode::InvalidRequest, "a message must be a JSON object"),
        ));
    };
    let id = match object.remove("id") {
        None | Some(Value::Null) => None,
        Some(raw) => Some(serde_json::from_value::<RequestId>(raw).map_err(|_| {
            (
                None,
                JsonRpcError::new(
                    ErrorCode::InvalidRequest,
                    "`id` must be a string or an integer",
                ),
            )
        })?),
    };
    let method = match object.remove("method") {
        None => None,
        Some(Value::String(method)) => Some(method),
        Some(_) => {
            return Err((
                id,
                JsonRpcError::new(ErrorCode::InvalidRequest, "`method` must be a string"),
            ));
        }
    };
    let params = object.remove("params").unwrap_or(Value::Null);
    match (id, method) {
        (Some(id), Some(method)) => Ok(Incoming::Request { id, method, params }),
        (None, Some(method)) => Ok(Incoming::Notification { method, params }),
        (Some(id), None) => {
            if let Some(result) = object.remove("result") {
                Ok(Incoming::Response {
                    id,
                    result: Ok(result),
                })
            } else if let Some(error) = object.remove("error") {
                Ok(Incoming::Response {
                    id,
                    result: Err(error),
                })
            } else {
                Err((
                    Some(id),
                    JsonRpcError::new(ErrorCode::InvalidRequest, "a request needs a `method`"),
                ))
            }
        }
        (None, None) => Err((
            None,
            JsonRpcError::new(
                ErrorCode::InvalidRequest,
                "a message needs a `method` or an `id`",
            ),
        )),
    }
}

/// A line the server writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OutgoingMessage {
    /// `{id, result}`.
    Response {
        /// The request's id.
        id: RequestId,
        /// The result.
        result: Value,
    },
    /// `{id, error}`; `id` is null when the request's id could not be read.
    Error {
        /// The request's id.
        id: Option<RequestId>,
        /// The error.
        error: JsonRpcError,
    },
    /// `{method, params}`.
    Notification {
        /// The method.
        method: String,
        /// The params.
        params: Value,
    },
    /// `{id, method, params}`: a request of the server's (an approval).
    Request {
        /// Its id.
        id: RequestId,
        /// The method.
        method: String,
        /// The params.
        params: Value,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified() {
        assert!(matches!(
            parse_line(r#"{"id":1,"method":"initialize","params":{}}"#),
            Ok(Incoming::Request {
                id: RequestId::Integer(1),
                ..
            })
        ));
        assert!(matches!(
            parse_line(r#"{"jsonrpc":"2.0","method":"initialized"}"#),
            Ok(Incoming::Notification { .. })
        ));
        assert!(matches!(
            parse_line(r#"{"id":"a","result":{}}"#),
            Ok(Incoming::Response { .. })
        ));
    }

    #[test]
    fn bad_lines_get_the_right_codes() {
        let code = |line: &str| parse_line(line).err().map(|(_, e)| e.code);
        assert_eq!(code("not json"), Some(-32700));
        assert_eq!(code("[1,2]"), Some(-32600));
        assert_eq!(code(r#"{"id":1}"#), Some(-32600));
        assert_eq!(code(r#"{"id":{},"method":"x"}"#), Some(-32600));
    }
}
