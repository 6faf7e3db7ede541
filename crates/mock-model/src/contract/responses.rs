//! The Responses API contract: an `input` array whose tool calls and outputs
//! pair up.
//!
//! Every `function_call` needs a `function_call_output` with its `call_id`
//! somewhere after it (and a `custom_tool_call` a `custom_tool_call_output`),
//! and every output needs an earlier call of its kind. Unlike Chat
//! Completions, other items may sit between a call and its output.

use std::collections::HashSet;

use serde_json::Value;

use super::{ContractViolation, check_object_and_model, parse_body, type_name};

/// Parse and check a raw request body; on success, the parsed JSON.
pub fn check_request_body(raw: &[u8]) -> Result<Value, ContractViolation> {
    let body = parse_body(raw)?;
    check_request(&body)?;
    Ok(body)
}

/// Check a parsed request body: an object with a string `model` and an `input`
/// array whose tool calls and outputs pair up.
pub fn check_request(body: &Value) -> Result<(), ContractViolation> {
    let object = check_object_and_model(body)?;
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

#[cfg(test)]
mod tests {
    use super::*;
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
}
