//! Output items a scripted response streams: text, function calls, reasoning.
//!
//! An item says *what* the model answers; how it is cut into delta events is
//! decided here too, so the splitting rules live next to the fields that control
//! them and tests can ask for the exact deltas an item will produce.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How many characters of function-call arguments go into one delta event.
const ARGUMENT_CHUNK_CHARS: usize = 16;

/// One output item of a scripted response, tagged by `"type"` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    /// An assistant message with one `output_text` part, streamed as
    /// `response.output_text.delta` events (Chat Completions: `content`
    /// deltas).
    Text(StreamedText),
    /// A function (tool) call, its arguments streamed as
    /// `response.function_call_arguments.delta` events (Chat Completions:
    /// `tool_calls` fragments).
    FunctionCall(FunctionCallItem),
    /// A reasoning item with one summary part, streamed as
    /// `response.reasoning_summary_text.delta` events (Chat Completions:
    /// `reasoning_content` deltas).
    Reasoning(StreamedText),
    /// A call of a custom (freeform) tool, its input streamed as
    /// `response.custom_tool_call_input.delta` events (Chat Completions, which
    /// has no freeform tools: a function call with arguments
    /// `{"input": <input>}`).
    CustomToolCall(CustomToolCallItem),
}

impl Item {
    /// A text item cut into deltas after each whitespace-delimited word.
    pub fn text(text: impl Into<String>) -> Item {
        Item::Text(StreamedText::new(text))
    }

    /// A text item streamed as exactly these deltas; its text is their concatenation.
    pub fn text_deltas<S: Into<String>>(deltas: impl IntoIterator<Item = S>) -> Item {
        Item::Text(StreamedText::from_deltas(deltas))
    }

    /// A function call. `arguments` may be a JSON string (sent as-is) or any
    /// other JSON value (serialized to a string).
    pub fn function_call(
        call_id: impl Into<String>,
        name: impl Into<String>,
        arguments: Value,
    ) -> Item {
        Item::FunctionCall(FunctionCallItem {
            name: name.into(),
            arguments,
            call_id: Some(call_id.into()),
        })
    }

    /// A call of custom tool `name` with raw `input`.
    pub fn custom_tool_call(
        call_id: impl Into<String>,
        name: impl Into<String>,
        input: impl Into<String>,
    ) -> Item {
        Item::CustomToolCall(CustomToolCallItem {
            name: name.into(),
            input: input.into(),
            call_id: Some(call_id.into()),
        })
    }

    /// A reasoning item whose summary is `text`, cut after each word.
    pub fn reasoning(text: impl Into<String>) -> Item {
        Item::Reasoning(StreamedText::new(text))
    }

    /// Cut the text of a text or reasoning item into `n` roughly equal deltas.
    /// Has no effect on a function call.
    #[must_use]
    pub fn with_chunks(mut self, n: usize) -> Item {
        match &mut self {
            Item::Text(text) | Item::Reasoning(text) => {
                text.chunks = Some(n);
                text.deltas = None;
            }
            Item::FunctionCall(_) | Item::CustomToolCall(_) => {}
        }
        self
    }
}

/// Text streamed in deltas: the body of a [`Item::Text`] or [`Item::Reasoning`].
///
/// The deltas are, in order of precedence: `deltas` as given; `text` cut into
/// `chunks` roughly equal pieces on character boundaries; or `text` cut after
/// each whitespace-delimited word, keeping the whitespace so that the deltas
/// always concatenate to the text.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamedText {
    /// The full text. May be omitted in JSON when `deltas` is given.
    #[serde(default)]
    pub text: String,
    /// The exact deltas to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deltas: Option<Vec<String>>,
    /// Cut `text` into this many roughly equal deltas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<usize>,
}

impl StreamedText {
    /// Text cut after each word.
    pub fn new(text: impl Into<String>) -> StreamedText {
        StreamedText {
            text: text.into(),
            deltas: None,
            chunks: None,
        }
    }

    /// Text streamed as exactly these deltas.
    pub fn from_deltas<S: Into<String>>(deltas: impl IntoIterator<Item = S>) -> StreamedText {
        let deltas: Vec<String> = deltas.into_iter().map(Into::into).collect();
        StreamedText {
            text: deltas.concat(),
            deltas: Some(deltas),
            chunks: None,
        }
    }

    /// The text the finished item carries: `text`, or the concatenated deltas
    /// when `text` was left empty.
    pub fn full_text(&self) -> String {
        match &self.deltas {
            Some(deltas) if self.text.is_empty() => deltas.concat(),
            Some(_) | None => self.text.clone(),
        }
    }

    /// The delta strings this text is streamed as, in order.
    pub fn delta_pieces(&self) -> Vec<String> {
        if let Some(deltas) = &self.deltas {
            return deltas.clone();
        }

        match self.chunks {
            Some(n) => split_into_chunks(&self.text, n),
            None => split_after_words(&self.text),
        }
    }

    /// Why this text cannot be streamed as written, if it cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        if self.deltas.is_some() && self.chunks.is_some() {
            return Some("give either `deltas` or `chunks`, not both".to_owned());
        }
        if self.chunks == Some(0) {
            return Some("`chunks` must be at least 1".to_owned());
        }
        match &self.deltas {
            Some(deltas) if !self.text.is_empty() && deltas.concat() != self.text => Some(
                "the `deltas` do not concatenate to `text` (omit `text` to use the deltas alone)"
                    .to_owned(),
            ),
            Some(_) | None => None,
        }
    }
}

/// A function call the scripted model makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionCallItem {
    /// The tool name, e.g. `shell`.
    pub name: String,
    /// A JSON string sent as-is, or any other JSON value, serialized to a string.
    /// Defaults to `{}`.
    #[serde(default = "empty_object")]
    pub arguments: Value,
    /// The call id; defaults to `call_mock_<response>_<output index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
}

impl FunctionCallItem {
    /// The arguments as the string the API sends.
    pub fn arguments_string(&self) -> String {
        match &self.arguments {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }

    /// The argument deltas: chunks of about 16 characters, at least one.
    pub fn delta_pieces(&self) -> Vec<String> {
        let arguments = self.arguments_string();
        let chars = arguments.chars().count();
        if chars == 0 {
            return vec![String::new()];
        }

        split_into_chunks(&arguments, chars.div_ceil(ARGUMENT_CHUNK_CHARS))
    }
}

/// A custom (freeform) tool call the scripted model makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomToolCallItem {
    /// The tool name, e.g. `apply_patch`.
    pub name: String,
    /// The input, as the model writes it.
    #[serde(default)]
    pub input: String,
    /// The call id; defaults to `call_mock_<response>_<output index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
}

impl CustomToolCallItem {
    /// The input deltas: chunks of about 16 characters, at least one.
    pub fn delta_pieces(&self) -> Vec<String> {
        let chars = self.input.chars().count();
        if chars == 0 {
            return vec![String::new()];
        }
        split_into_chunks(&self.input, chars.div_ceil(ARGUMENT_CHUNK_CHARS))
    }
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Cut after each whitespace-delimited word: a new piece starts at the first
/// non-whitespace character that follows whitespace, so every piece but the last
/// ends with the whitespace after its word.
fn split_after_words(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut seen_word = false;
    let mut after_space = false;
    for (index, ch) in text.char_indices() {
        if ch.is_whitespace() {
            after_space = seen_word;
        } else {
            if after_space {
                pieces.push(text[start..index].to_owned());
                start = index;
                after_space = false;
            }
            seen_word = true;
        }
    }
    if start < text.len() {
        pieces.push(text[start..].to_owned());
    }
    pieces
}

/// Cut into `n` pieces of nearly equal character counts (never an empty piece;
/// fewer than `n` pieces when the text has fewer than `n` characters).
pub(crate) fn split_into_chunks(text: &str, n: usize) -> Vec<String> {
    let boundaries: Vec<usize> = text
        .char_indices()
        .map(|(index, _)| index)
        .chain(std::iter::once(text.len()))
        .collect();
    let chars = boundaries.len() - 1;
    let n = n.clamp(1, chars.max(1));
    (0..n)
        .map(|i| (boundaries[i * chars / n], boundaries[(i + 1) * chars / n]))
        .filter(|(from, to)| from < to)
        .map(|(from, to)| text[from..to].to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_their_trailing_whitespace() {
        assert_eq!(split_after_words("hello world"), ["hello ", "world"]);
        assert_eq!(split_after_words("  a  b\n"), ["  a  ", "b\n"]);
        assert_eq!(split_after_words(""), Vec::<String>::new());
        assert_eq!(split_after_words("   "), ["   "]);
    }

    #[test]
    fn chunks_are_nearly_equal_and_respect_char_boundaries() {
        let pieces = split_into_chunks("héllo wörld", 3);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.concat(), "héllo wörld");
        assert_eq!(split_into_chunks("ab", 5), ["a", "b"]);
        assert_eq!(split_into_chunks("", 5), Vec::<String>::new());
    }

    #[test]
    fn arguments_are_serialized_and_cut_into_small_chunks() {
        let Item::FunctionCall(call) = Item::function_call(
            "c",
            "shell",
            serde_json::json!({"command": ["ls", "-la", "/tmp"]}),
        ) else {
            panic!("not a call");
        };
        let pieces = call.delta_pieces();
        assert!(pieces.len() > 1);
        assert!(
            pieces
                .iter()
                .all(|p| p.chars().count() <= ARGUMENT_CHUNK_CHARS)
        );
        assert_eq!(pieces.concat(), r#"{"command":["ls","-la","/tmp"]}"#);
    }

    #[test]
    fn empty_arguments_still_send_one_delta() {
        let call = FunctionCallItem {
            name: "noop".into(),
            arguments: Value::String(String::new()),
            call_id: None,
        };
        assert_eq!(call.delta_pieces(), [""]);
    }

    #[test]
    fn deltas_without_text_define_the_text() {
        let text: StreamedText = serde_json::from_str(r#"{"deltas":["a","b"]}"#).unwrap();
        assert_eq!(text.full_text(), "ab");
        assert_eq!(text.problem(), None);
        let bad: StreamedText = serde_json::from_str(r#"{"text":"x","deltas":["a"]}"#).unwrap();
        assert!(bad.problem().is_some());
    }
}
