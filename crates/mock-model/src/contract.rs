//! The request contract of the Responses API, checked like the real service does.
//!
//! The check runs on every request before a script step is consumed, so a client
//! that sends a broken history gets the same `400` it would get in production,
//! with the same message. The most important rule is the pairing of tool calls
//! and their outputs (invariant I1 of the architecture): every `function_call`
//! needs a `function_call_output` with its `call_id` somewhere after it (and a
//! `custom_tool_call` a `custom_tool_call_output`), and every output needs an
//! earlier call of its kind.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;

/// A request the real API would refuse with `400 invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ContractViolation {
    /// The error message, as the real API words it where known.
    pub message: String,
    /// The `param` the error points at (`"input"`, `"model"`), if any.
    pub param: Option<String>,
}

impl ContractViolation {
    fn new(message: impl Into<String>, param: Option<&str>) -> ContractViolation {
        ContractViolation {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    /// The JSON body of the `400` response:
    /// `{"error":{"message":..,"type":"invalid_request_error","param":..,"code":null}}`.
    pub fn error_body(&self) -> String {
        error_body(
            &self.message,
            "invalid_request_error",
            self.param.as_deref(),
            None,
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

/// Parse and check a raw request body; on success, the parsed JSON.
pub fn check_request_body(raw: &[u8]) -> Result<Value, ContractViolation> {
    let body: Value = serde_json::from_slice(raw).map_err(|error| {
        ContractViolation::new(
            format!("We could not parse the JSON body of your request. ({error})"),
            None,
        )
    })?;
    check_request(&body)?;
    Ok(body)
}

/// Check a parsed request body: an object with a string `model` and an `input`
/// array whose tool calls and outputs pair up.
pub fn check_request(body: &Value) -> Result<(), ContractViolation> {
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
        None | Some(Value::Null) => {
            return Err(ContractViolation::new(
                "Missing required parameter: 'model'.",
                Some("model"),
            ));
        }
        Some(Value::String(_)) => {}
        Some(other) => {
            return Err(ContractViolation::new(
                format!(
                    "Invalid type for 'model': expected a string, but got {}.",
                    type_name(other)
                ),
                Some("model"),
            ));
        }
    }

    match object.get("input") {
        None | Some(Value::Null) => Err(ContractViolation::new(
            "Missing required parameter: 'input'.",
            Some("input"),
        )),
        Some(Value::Array(items)) => check_input(items),
        Some(other) => Err(ContractViolation::new(
            format!(
                "Invalid type for 'input': expected an array of input items, but got {}.",
                type_name(other)
            ),
            Some("input"),
        )),
    }
}

/// A kind of tool call: its item type, its output's, and how the real API
/// words a call with no output and an output with no call.
struct CallPairing {
    call: &'static str,
    output: &'static str,
    no_output: &'static str,
    no_call: &'static str,
}

/// Function calls and custom (freeform) tool calls: each pairs only with an
/// output of its own kind.
const PAIRINGS: [CallPairing; 2] = [
    CallPairing {
        call: "function_call",
        output: "function_call_output",
        no_output: "No tool output found for function call",
        no_call: "No tool call found for function call output with call_id",
    },
    CallPairing {
        call: "custom_tool_call",
        output: "custom_tool_call_output",
        no_output: "No tool output found for custom tool call",
        no_call: "No tool call found for custom tool call output with call_id",
    },
];

/// Check that the tool calls and outputs of an `input` array pair up. The first
/// offending item, in input order, is reported.
pub fn check_input(items: &[Value]) -> Result<(), ContractViolation> {
    // Walk backwards once to know, for every position, which outputs follow it.
    let mut outputs_after: HashSet<(&str, &str)> = HashSet::new();
    let mut has_output_after = vec![false; items.len()];
    for (index, item) in items.iter().enumerate().rev() {
        let (Some(kind), Some(id)) = (item_type(item), call_id(item)) else {
            continue;
        };
        for pairing in &PAIRINGS {
            if kind == pairing.call {
                has_output_after[index] = outputs_after.contains(&(pairing.output, id));
            } else if kind == pairing.output {
                outputs_after.insert((pairing.output, id));
            }
        }
    }

    let mut calls_before: HashSet<(&str, &str)> = HashSet::new();
    for (index, item) in items.iter().enumerate() {
        let Some(kind) = item_type(item) else {
            continue;
        };
        let Some(pairing) = PAIRINGS.iter().find(|p| p.call == kind || p.output == kind) else {
            continue;
        };
        let Some(id) = call_id(item) else {
            let param = format!("input[{index}].call_id");
            return Err(ContractViolation::new(
                format!("Missing required parameter: '{param}'."),
                Some(&param),
            ));
        };
        if kind == pairing.call {
            if !has_output_after[index] {
                return Err(ContractViolation::new(
                    format!("{} {id}.", pairing.no_output),
                    Some("input"),
                ));
            }
            calls_before.insert((pairing.call, id));
        } else if !calls_before.contains(&(pairing.call, id)) {
            return Err(ContractViolation::new(
                format!("{} {id}.", pairing.no_call),
                Some("input"),
            ));
        }
    }
    Ok(())
}

fn item_type(item: &Value) -> Option<&str> {
    item.get("type").and_then(Value::as_str)
}

fn call_id(item: &Value) -> Option<&str> {
    item.get("call_id").and_then(Value::as_str)
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
    fn a_custom_tool_call_pairs_only_with_a_custom_output() {
        let call = json!({"type": "custom_tool_call", "name": "apply_patch", "input": "x", "call_id": "c1"});
        let custom_output =
            json!({"type": "custom_tool_call_output", "call_id": "c1", "output": "ok"});
        let function_output =
            json!({"type": "function_call_output", "call_id": "c1", "output": "ok"});
        assert_eq!(check_input(&[call.clone(), custom_output]), Ok(()));
        assert_eq!(
            check_input(&[call, function_output]).unwrap_err().message,
            "No tool output found for custom tool call c1."
        );
    }
    use serde_json::json;

    fn call(id: &str) -> Value {
        json!({"type": "function_call", "name": "shell", "arguments": "{}", "call_id": id})
    }

    fn output(id: &str) -> Value {
        json!({"type": "function_call_output", "call_id": id, "output": "ok"})
    }

    fn user(text: &str) -> Value {
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
    }

    #[test]
    fn paired_calls_pass_even_with_messages_between() {
        let items = [
            user("hi"),
            call("a"),
            call("b"),
            user("steer"),
            output("b"),
            output("a"),
        ];
        assert_eq!(check_input(&items), Ok(()));
    }

    #[test]
    fn a_call_without_output_gives_the_exact_api_body() {
        let items = [user("hi"), call("a"), output("a"), call("call_7")];
        let violation = check_input(&items).unwrap_err();
        assert_eq!(
            violation.error_body(),
            r#"{"error":{"message":"No tool output found for function call call_7.","type":"invalid_request_error","param":"input","code":null}}"#
        );
    }

    #[test]
    fn an_output_before_its_call_is_an_orphan() {
        let items = [output("a"), call("a")];
        let violation = check_input(&items).unwrap_err();
        assert_eq!(
            violation.message,
            "No tool call found for function call output with call_id a."
        );
    }

    #[test]
    fn the_first_offending_item_is_reported() {
        let items = [call("x"), output("y")];
        assert_eq!(
            check_input(&items).unwrap_err().message,
            "No tool output found for function call x."
        );
    }

    #[test]
    fn body_shape_is_checked() {
        assert!(check_request_body(b"not json").is_err());
        let missing_model = check_request(&json!({"input": []})).unwrap_err();
        assert_eq!(missing_model.param.as_deref(), Some("model"));
        let string_input = check_request(&json!({"model": "m", "input": "hi"})).unwrap_err();
        assert_eq!(string_input.param.as_deref(), Some("input"));
        let missing_id =
            check_request(&json!({"model": "m", "input": [{"type": "function_call"}]}))
                .unwrap_err();
        assert_eq!(missing_id.param.as_deref(), Some("input[0].call_id"));
        assert_eq!(check_request(&json!({"model": "m", "input": []})), Ok(()));
    }
}
