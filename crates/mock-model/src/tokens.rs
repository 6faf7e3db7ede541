//! Token estimates: what a request costs, for the usage the mock reports and
//! for the context window it enforces.
//!
//! One estimate serves both on purpose: a client that trusts the reported
//! usage (to decide when to compact, say) sees exactly the number its next
//! request is checked against, so a test can drive it to the window's edge
//! deterministically. The estimate is about four bytes per token:
//!
//! - input: `ceil(n / 4)` where `n` is the byte length of the compact JSON
//!   serialization of the request's `instructions`, `input` and `tools`
//!   (Responses) or `messages` and `tools` (Chat Completions), fields that are
//!   absent counting zero;
//! - output: `ceil(n / 4)`, at least 1, where `n` is the byte length of the
//!   step's texts, reasoning texts, call arguments and custom tool inputs.

use serde_json::Value;

use crate::contract::ContractViolation;
use crate::item::Item;
use crate::step::{ResponseStep, Usage};
use crate::wire::Wire;

/// The request fields the input estimate counts, per wire API.
fn counted_fields(wire: Wire) -> &'static [&'static str] {
    match wire {
        Wire::Responses => &["instructions", "input", "tools"],
        Wire::Chat => &["messages", "tools"],
    }
}

/// The estimated input tokens of a request body (0 for a body that is not a
/// JSON object).
pub(crate) fn input_tokens(wire: Wire, body: &Value) -> u64 {
    let bytes: usize = counted_fields(wire)
        .iter()
        .filter_map(|field| body.get(field))
        .map(|value| value.to_string().len())
        .sum();
    bytes.div_ceil(4) as u64
}

/// The estimated output tokens of a response streaming `items`.
pub(crate) fn output_tokens(items: &[Item]) -> u64 {
    let bytes: usize = items
        .iter()
        .map(|item| match item {
            Item::Text(text) | Item::Reasoning(text) => text.full_text().len(),
            Item::FunctionCall(call) => call.arguments_string().len(),
            Item::CustomToolCall(call) => call.input.len(),
        })
        .sum();
    (bytes.div_ceil(4) as u64).max(1)
}

/// The usage a response reports: the step's own, or the estimate.
pub(crate) fn usage(step: &ResponseStep, input_tokens: u64) -> Usage {
    step.usage.unwrap_or_else(|| Usage {
        input_tokens,
        output_tokens: output_tokens(&step.items),
        ..Usage::default()
    })
}

/// The refusal of a request of `tokens` input tokens by a model whose context
/// window is `window`, worded as each API words it; `None` when it fits.
pub(crate) fn window_violation(wire: Wire, window: u64, tokens: u64) -> Option<ContractViolation> {
    if tokens <= window {
        return None;
    }

    let (message, param) = match wire {
        Wire::Responses => (
            "Your input exceeds the context window of this model. Please adjust your input and try again."
                .to_owned(),
            "input",
        ),
        Wire::Chat => (
            format!(
                "This model's maximum context length is {window} tokens. However, your messages resulted in {tokens} tokens. Please reduce the length of the messages."
            ),
            "messages",
        ),
    };
    Some(ContractViolation::with_code(
        message,
        Some(param),
        "context_length_exceeded",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn input_counts_only_the_fields_of_its_wire() {
        let body = json!({"model": "a long model name", "instructions": "ab", "input": [], "messages": ["xxxxxxxx"]});
        // `"ab"` and `[]`: 6 bytes.
        assert_eq!(input_tokens(Wire::Responses, &body), 2);
        // `["xxxxxxxx"]`: 12 bytes.
        assert_eq!(input_tokens(Wire::Chat, &body), 3);
        assert_eq!(input_tokens(Wire::Chat, &Value::Null), 0);
    }

    #[test]
    fn a_request_at_the_window_fits_and_one_token_more_does_not() {
        assert_eq!(window_violation(Wire::Chat, 10, 10), None);
        let violation = window_violation(Wire::Chat, 10, 11).unwrap();
        assert_eq!(
            violation.error_body(),
            r#"{"error":{"message":"This model's maximum context length is 10 tokens. However, your messages resulted in 11 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#
        );
    }
}
