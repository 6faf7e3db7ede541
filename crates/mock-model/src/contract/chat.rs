//! The Chat Completions contract: a non-empty `messages` array in which every
//! assistant message with `tool_calls` is answered at once, and well-formed
//! `tools` and `stream_options`.
//!
//! Chat Completions is stricter than Responses about where outputs go: the
//! `tool` messages answering an assistant message's `tool_calls` must come
//! right after it, one per call id, with nothing between them. A user message
//! slipped in before the last answer, or an answer to a call of an older
//! assistant message, is a `400` from OpenAI (and from vLLM and most gateways,
//! which copy its check), with the wording reproduced here.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{ContractViolation, check_object_and_model, parse_body, type_name};

/// The roles a message may have.
const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// Parse and check a raw request body; on success, the parsed JSON.
pub fn check_request_body(raw: &[u8]) -> Result<Value, ContractViolation> {
    let body = parse_body(raw)?;
    check_request(&body)?;
    Ok(body)
}

/// Check a parsed request body: an object with a string `model`, well-formed
/// `messages`, `tools` and `stream_options`, and tool calls answered right
/// after the message that made them.
pub fn check_request(body: &Value) -> Result<(), ContractViolation> {
    let object = check_object_and_model(body)?;
    let messages = match object.get("messages") {
        None | Some(Value::Null) => {
            return Err(ContractViolation::new(
                "Missing required parameter: 'messages'.",
                Some("messages"),
            ));
        }
        Some(Value::Array(messages)) => messages,
        Some(other) => {
            return Err(ContractViolation::new(
                format!(
                    "Invalid type for 'messages': expected an array of objects, but got {}.",
                    type_name(other)
                ),
                Some("messages"),
            ));
        }
    };
    if messages.is_empty() {
        return Err(empty_array("messages"));
    }

    for (index, message) in messages.iter().enumerate() {
        check_message(index, message)?;
    }
    check_tools(object)?;
    check_stream_options(object)?;
    check_messages(messages)
}

/// Check that every assistant message with `tool_calls` is followed at once by
/// a `tool` message for each of its call ids, and that every `tool` message
/// answers a call of the assistant message before its run of tool messages.
/// The first offence in message order is reported. Messages are assumed
/// well-formed (as [`check_request`] checks them first).
pub fn check_messages(messages: &[Value]) -> Result<(), ContractViolation> {
    // The calls of the assistant message the current run of tool messages
    // answers, and which of them have been answered so far.
    let mut open: Option<(Vec<&str>, HashSet<&str>)> = None;
    for (index, message) in messages.iter().enumerate() {
        if role(message) == Some("tool") {
            let id = string_field(message, "tool_call_id").unwrap_or_default();
            match &mut open {
                Some((ids, answered)) if ids.contains(&id) => {
                    answered.insert(id);
                }
                Some(_) | None => {
                    return Err(ContractViolation::new(
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                        Some(&format!("messages.[{index}].role")),
                    ));
                }
            }
            continue;
        }

        close_run(open.take(), index)?;
        if role(message) == Some("assistant") {
            let ids: Vec<&str> = tool_calls(message)
                .iter()
                .filter_map(|call| string_field(call, "id"))
                .collect();
            if !ids.is_empty() {
                open = Some((ids, HashSet::new()));
            }
        }
    }
    close_run(open, messages.len())
}

/// End a run of tool messages at `next` (the index of the first message after
/// it): every call must have had its answer.
fn close_run(
    open: Option<(Vec<&str>, HashSet<&str>)>,
    next: usize,
) -> Result<(), ContractViolation> {
    let Some((ids, answered)) = open else {
        return Ok(());
    };

    let missing: Vec<&str> = ids
        .into_iter()
        .filter(|id| !answered.contains(id))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }

    Err(ContractViolation::new(
        format!(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
            missing.join(", ")
        ),
        Some(&format!("messages.[{next}].role")),
    ))
}

/// One message: an object with a known role; a tool message names its call;
/// an assistant's tool calls have ids.
fn check_message(index: usize, message: &Value) -> Result<(), ContractViolation> {
    let at = format!("messages[{index}]");
    let Some(object) = message.as_object() else {
        return Err(ContractViolation::new(
            format!(
                "Invalid type for '{at}': expected an object, but got {}.",
                type_name(message)
            ),
            Some(&at),
        ));
    };

    let role = match object.get("role") {
        None | Some(Value::Null) => return Err(missing(&format!("{at}.role"))),
        Some(Value::String(role)) if ROLES.contains(&role.as_str()) => role.as_str(),
        Some(Value::String(role)) => {
            return Err(ContractViolation::with_code(
                format!(
                    "Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'."
                ),
                Some(&format!("{at}.role")),
                "invalid_value",
            ));
        }
        Some(other) => {
            return Err(ContractViolation::new(
                format!(
                    "Invalid type for '{at}.role': expected a string, but got {}.",
                    type_name(other)
                ),
                Some(&format!("{at}.role")),
            ));
        }
    };

    match role {
        "tool" if string_field(message, "tool_call_id").is_none() => {
            Err(missing(&format!("{at}.tool_call_id")))
        }
        "assistant" => match object.get("tool_calls") {
            Some(Value::Array(calls)) if calls.is_empty() => {
                Err(empty_array(&format!("{at}.tool_calls")))
            }
            Some(Value::Array(calls)) => calls
                .iter()
                .enumerate()
                .find(|(_, call)| string_field(call, "id").is_none())
                .map_or(Ok(()), |(i, _)| {
                    Err(missing(&format!("{at}.tool_calls[{i}].id")))
                }),
            Some(Value::Null) | None => Ok(()),
            Some(other) => Err(ContractViolation::new(
                format!(
                    "Invalid type for '{at}.tool_calls': expected an array, but got {}.",
                    type_name(other)
                ),
                Some(&format!("{at}.tool_calls")),
            )),
        },
        _ => Ok(()),
    }
}

/// `tools`, when given, is a non-empty list of
/// `{"type": "function", "function": {"name": .., ..}}`.
fn check_tools(object: &Map<String, Value>) -> Result<(), ContractViolation> {
    let tools = match object.get("tools") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(tools)) => tools,
        Some(other) => {
            return Err(ContractViolation::new(
                format!(
                    "Invalid type for 'tools': expected an array, but got {}.",
                    type_name(other)
                ),
                Some("tools"),
            ));
        }
    };

    // OpenAI (and vLLM, which copies it) refuse an empty list rather than
    // read it as no tools: a client must leave `tools` out instead.
    if tools.is_empty() {
        return Err(empty_array("tools"));
    }

    for (index, tool) in tools.iter().enumerate() {
        let at = format!("tools[{index}]");
        match tool.get("type") {
            None | Some(Value::Null) => return Err(missing(&format!("{at}.type"))),
            Some(Value::String(kind)) if kind == "function" => {}
            Some(other) => {
                let shown = other
                    .as_str()
                    .map_or_else(|| other.to_string(), str::to_owned);
                return Err(ContractViolation::with_code(
                    format!("Invalid value: '{shown}'. Supported values are: 'function'."),
                    Some(&format!("{at}.type")),
                    "invalid_value",
                ));
            }
        }
        let Some(function) = tool.get("function").filter(|f| !f.is_null()) else {
            return Err(missing(&format!("{at}.function")));
        };
        match function.get("name") {
            None | Some(Value::Null) => return Err(missing(&format!("{at}.function.name"))),
            Some(Value::String(_)) => {}
            Some(other) => {
                return Err(ContractViolation::new(
                    format!(
                        "Invalid type for '{at}.function.name': expected a string, but got {}.",
                        type_name(other)
                    ),
                    Some(&format!("{at}.function.name")),
                ));
            }
        }
    }
    Ok(())
}

/// `stream_options` only with `stream: true`.
fn check_stream_options(object: &Map<String, Value>) -> Result<(), ContractViolation> {
    let has_options = object.get("stream_options").is_some_and(|o| !o.is_null());
    let streams = object.get("stream").and_then(Value::as_bool) == Some(true);
    if has_options && !streams {
        return Err(ContractViolation::new(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            Some("stream_options"),
        ));
    }

    Ok(())
}

fn missing(param: &str) -> ContractViolation {
    ContractViolation::new(
        format!("Missing required parameter: '{param}'."),
        Some(param),
    )
}

fn empty_array(param: &str) -> ContractViolation {
    ContractViolation::with_code(
        format!(
            "Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty array instead."
        ),
        Some(param),
        "empty_array",
    )
}

fn role(message: &Value) -> Option<&str> {
    string_field(message, "role")
}

fn string_field<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

fn tool_calls(message: &Value) -> &[Value] {
    message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    fn calls(ids: &[&str]) -> Value {
        let calls: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "type": "function", "function": {"name": "shell", "arguments": "{}"}}))
            .collect();
        json!({"role": "assistant", "content": null, "tool_calls": calls})
    }

    fn answer(id: &str) -> Value {
        json!({"role": "tool", "tool_call_id": id, "content": "ok"})
    }

    fn request(messages: Vec<Value>) -> Value {
        json!({"model": "m", "messages": messages, "stream": true})
    }

    #[test]
    fn answers_right_after_their_calls_pass_in_any_order() {
        let messages = [
            user("hi"),
            calls(&["a", "b"]),
            answer("b"),
            answer("a"),
            user("more"),
        ];
        assert_eq!(check_messages(&messages), Ok(()));
        assert_eq!(check_request(&request(messages.to_vec())), Ok(()));
    }

    #[test]
    fn unanswered_calls_are_listed_and_the_message_after_the_run_is_blamed() {
        let messages = [
            user("hi"),
            calls(&["call_a", "call_b", "call_c"]),
            answer("call_b"),
            user("steer"),
            answer("call_a"),
        ];
        let violation = check_messages(&messages).unwrap_err();
        assert_eq!(
            violation.error_body(),
            r#"{"error":{"message":"An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: call_a, call_c","type":"invalid_request_error","param":"messages.[3].role","code":null}}"#
        );
    }

    #[test]
    fn calls_at_the_end_point_past_the_last_message() {
        let violation = check_messages(&[user("hi"), calls(&["a"])]).unwrap_err();
        assert_eq!(violation.param.as_deref(), Some("messages.[2].role"));
    }

    #[test]
    fn an_answer_to_an_older_message_is_an_orphan() {
        let messages = [
            user("hi"),
            calls(&["a"]),
            answer("a"),
            user("again"),
            answer("a"),
        ];
        let violation = check_messages(&messages).unwrap_err();
        assert_eq!(
            violation.message,
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
        );
        assert_eq!(violation.param.as_deref(), Some("messages.[4].role"));
        let stray = check_messages(&[user("hi"), calls(&["a"]), answer("b")]).unwrap_err();
        assert_eq!(stray.param.as_deref(), Some("messages.[2].role"));
    }

    #[test]
    fn shapes_are_checked_with_the_api_params() {
        let param = |body: Value| check_request(&body).unwrap_err().param;
        assert_eq!(param(json!({"model": "m"})).as_deref(), Some("messages"));
        let empty = check_request(&json!({"model": "m", "messages": []})).unwrap_err();
        assert_eq!(empty.code.as_deref(), Some("empty_array"));
        let no_tools = check_request(&json!({"model": "m", "messages": [user("x")], "tools": []}))
            .unwrap_err();
        assert_eq!(
            (no_tools.param.as_deref(), no_tools.code.as_deref()),
            (Some("tools"), Some("empty_array"))
        );
        assert_eq!(
            param(json!({"model": "m", "messages": [{"content": "x"}]})).as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            param(json!({"model": "m", "messages": [{"role": "bot"}]})).as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            param(json!({"model": "m", "messages": [user("x"), {"role": "tool", "content": "x"}]}))
                .as_deref(),
            Some("messages[1].tool_call_id")
        );
        assert_eq!(
            param(json!({"model": "m", "messages": [user("x")], "stream_options": {"include_usage": true}}))
                .as_deref(),
            Some("stream_options")
        );
        let no_name = check_request(&json!({"model": "m", "messages": [user("x")], "tools": [{"type": "function", "function": {"parameters": {}}}]})).unwrap_err();
        assert_eq!(
            no_name.message,
            "Missing required parameter: 'tools[0].function.name'."
        );
        assert_eq!(
            param(json!({"model": "m", "messages": [user("x")], "tools": [{"type": "custom", "custom": {"name": "x"}}]}))
                .as_deref(),
            Some("tools[0].type")
        );
        assert_eq!(
            check_request(&json!({"model": 3, "messages": [user("x")]}))
                .unwrap_err()
                .param
                .as_deref(),
            Some("model")
        );
    }
}
