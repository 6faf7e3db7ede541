//! A Chat Completions history read as Responses input items.
//!
//! Tests assert on what a client sent (the user's words, each call and its
//! output) without caring which wire API carried it, so the recording shows a
//! chat request's `messages` as the `instructions` and `input` items the same
//! conversation would have had on Responses:
//!
//! - the `system`/`developer` messages before the first other message are the
//!   instructions (joined by a blank line), not input;
//! - `user` → `{"type":"message","role":"user","content":[{"type":"input_text","text":..}]}`;
//! - `assistant` → its text as `{"type":"message","role":"assistant",
//!   "content":[{"type":"output_text","text":..}]}` (when not empty), then
//!   each tool call as `{"type":"function_call","name":..,"arguments":..,"call_id":..}`;
//! - `tool` → `{"type":"function_call_output","call_id":..,"output":..}`;
//! - a later `system`/`developer` message → a message with that role and
//!   `input_text`.
//!
//! Content given as an array of parts reads as the concatenation of its text
//! parts; other parts (images) are left out.

use serde_json::{Value, json};

/// The instructions and input items of a chat request's `messages`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ChatView {
    /// The text of the leading system/developer messages, if any.
    pub instructions: Option<String>,
    /// The rest of the conversation, as Responses input items.
    pub input: Vec<Value>,
}

/// Read `messages` as Responses instructions and input.
pub(crate) fn translate(messages: &[Value]) -> ChatView {
    let leading = messages
        .iter()
        .take_while(|m| is_instruction(role(m)))
        .count();
    let instructions = (leading > 0).then(|| {
        messages[..leading]
            .iter()
            .map(|m| content_text(m.get("content")))
            .collect::<Vec<_>>()
            .join("\n\n")
    });
    let input = messages[leading..].iter().flat_map(input_items).collect();
    ChatView {
        instructions,
        input,
    }
}

fn input_items(message: &Value) -> Vec<Value> {
    let text = content_text(message.get("content"));
    match role(message) {
        "assistant" => {
            let mut items = Vec::new();
            if !text.is_empty() {
                items.push(json!({
                    "type": "message", "role": "assistant",
                    "content": [{"type": "output_text", "text": text}],
                }));
            }
            let calls = message.get("tool_calls").and_then(Value::as_array);
            items.extend(calls.into_iter().flatten().map(|call| {
                let function = call.get("function").unwrap_or(&Value::Null);
                json!({
                    "type": "function_call",
                    "name": function.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": function.get("arguments").cloned().unwrap_or(Value::Null),
                    "call_id": call.get("id").cloned().unwrap_or(Value::Null),
                })
            }));
            items
        }
        "tool" => vec![json!({
            "type": "function_call_output",
            "call_id": message.get("tool_call_id").cloned().unwrap_or(Value::Null),
            "output": text,
        })],
        role => vec![json!({
            "type": "message", "role": role,
            "content": [{"type": "input_text", "text": text}],
        })],
    }
}

fn role(message: &Value) -> &str {
    message
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn is_instruction(role: &str) -> bool {
    matches!(role, "system" | "developer")
}

/// A string content as is; an array of parts as its text parts joined.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        Some(_) | None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_system_messages_are_instructions_and_later_ones_are_input() {
        let view = translate(&[
            json!({"role": "system", "content": "be brief"}),
            json!({"role": "developer", "content": [{"type": "text", "text": "use tools"}]}),
            json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
            json!({"role": "system", "content": "late"}),
        ]);
        assert_eq!(view.instructions.as_deref(), Some("be brief\n\nuse tools"));
        assert_eq!(
            view.input,
            [
                json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ab"}]}),
                json!({"type": "message", "role": "system", "content": [{"type": "input_text", "text": "late"}]}),
            ]
        );
    }

    #[test]
    fn an_assistant_without_text_gives_only_its_calls() {
        let view = translate(&[
            json!({"role": "user", "content": "go"}),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "shell", "arguments": "{}"}}]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "ok"}),
        ]);
        assert_eq!(view.instructions, None);
        assert_eq!(
            view.input[1..],
            [
                json!({"type": "function_call", "name": "shell", "arguments": "{}", "call_id": "c1"}),
                json!({"type": "function_call_output", "call_id": "c1", "output": "ok"}),
            ]
        );
    }
}
