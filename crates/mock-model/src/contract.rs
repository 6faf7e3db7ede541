//! The request contracts of both wire APIs, checked like the real service
//! checks them.
//!
//! The check runs on every request before a script step is consumed, so a client
//! that sends a broken history gets the same `400` it would get in production,
//! with the same message. The most important rule is the pairing of tool calls
//! and their outputs (invariant I1 of the architecture), which each API words
//! its own way: see [`responses`] and [`chat`]. What both share (the error
//! type, the body envelope, the checks of the body and its `model`) lives here.

pub mod chat;
pub mod responses;

pub use responses::{check_input, check_request, check_request_body};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::wire::Wire;

/// A request the real API would refuse with `400 invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ContractViolation {
    /// The error message, as the real API words it where known.
    pub message: String,
    /// The `param` the error points at (`"input"`, `"model"`), if any.
    pub param: Option<String>,
    /// The error `code` (`"empty_array"`, `"context_length_exceeded"`), if the
    /// real API sends one; most contract errors have none.
    pub code: Option<String>,
}

impl ContractViolation {
    pub(crate) fn new(message: impl Into<String>, param: Option<&str>) -> ContractViolation {
        ContractViolation {
            message: message.into(),
            param: param.map(str::to_owned),
            code: None,
        }
    }

    pub(crate) fn with_code(
        message: impl Into<String>,
        param: Option<&str>,
        code: &str,
    ) -> ContractViolation {
        ContractViolation {
            code: Some(code.to_owned()),
            ..ContractViolation::new(message, param)
        }
    }

    /// The JSON body of the `400` response:
    /// `{"error":{"message":..,"type":"invalid_request_error","param":..,"code":..}}`.
    pub fn error_body(&self) -> String {
        error_body(
            &self.message,
            "invalid_request_error",
            self.param.as_deref(),
            self.code.as_deref(),
        )
    }
}

/// An OpenAI-style error body, with its keys in the order the real API uses.
pub(crate) fn error_body(
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> String {
    #[derive(Serialize)]
    struct Envelope<'a> {
        error: ErrorObject<'a>,
    }
    #[derive(Serialize)]
    struct ErrorObject<'a> {
        message: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        param: Option<&'a str>,
        code: Option<&'a str>,
    }
    let envelope = Envelope {
        error: ErrorObject {
            message,
            kind,
            param,
            code,
        },
    };
    // Serializing borrowed strings and options into a String cannot fail.
    serde_json::to_string(&envelope).unwrap_or_default()
}

/// Parse and check a raw request body for its wire API.
pub(crate) fn check_body(wire: Wire, raw: &[u8]) -> Result<Value, ContractViolation> {
    match wire {
        Wire::Responses => responses::check_request_body(raw),
        Wire::Chat => chat::check_request_body(raw),
    }
}

/// Parse a raw body as JSON, with the real API's complaint when it is not.
fn parse_body(raw: &[u8]) -> Result<Value, ContractViolation> {
    serde_json::from_slice(raw).map_err(|error| {
        ContractViolation::new(
            format!("We could not parse the JSON body of your request. ({error})"),
            None,
        )
    })
}

/// The checks both APIs start with: the body is an object and its `model` a
/// string.
fn check_object_and_model(body: &Value) -> Result<&Map<String, Value>, ContractViolation> {
    let Some(object) = body.as_object() else {
        return Err(ContractViolation::new(
            format!(
                "Invalid type for request body: expected an object, but got {}.",
                type_name(body)
            ),
            None,
        ));
    };

    match object.get("model") {
        None | Some(Value::Null) => Err(ContractViolation::new(
            "Missing required parameter: 'model'.",
            Some("model"),
        )),
        Some(Value::String(_)) => Ok(object),
        Some(other) => Err(ContractViolation::new(
            format!(
                "Invalid type for 'model': expected a string, but got {}.",
                type_name(other)
            ),
            Some("model"),
        )),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_sent_when_there_is_one() {
        let violation = ContractViolation::with_code("m", Some("messages"), "empty_array");
        assert_eq!(
            violation.error_body(),
            r#"{"error":{"message":"m","type":"invalid_request_error","param":"messages","code":"empty_array"}}"#
        );
        assert_eq!(
            ContractViolation::new("m", None).error_body(),
            r#"{"error":{"message":"m","type":"invalid_request_error","param":null,"code":null}}"#
        );
    }
}
