//! Conversation items: what the user typed and what went to or came from the model.

use serde::{Deserialize, Serialize};

/// One piece of input from a person or a program, as they gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UserInput {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// A file or symbol the person pointed at.
    Mention {
        /// What they called it.
        name: String,
        /// Where it is.
        path: String,
    },
    /// An image by URL (kept in the transcript; not sent to the model yet).
    Image {
        /// The URL.
        url: String,
    },
    /// An image on disk (kept in the transcript; not sent to the model yet).
    LocalImage {
        /// The file.
        path: String,
    },
}

impl UserInput {
    /// Text input.
    pub fn text(text: impl Into<String>) -> Self {
        UserInput::Text { text: text.into() }
    }

    /// What the model reads of this input: the text; a mention as
    /// `@name (path)`; nothing for an image.
    pub fn model_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            UserInput::Text { text } => std::borrow::Cow::Borrowed(text),
            UserInput::Mention { name, path } => {
                std::borrow::Cow::Owned(format!("@{name} ({path})"))
            }
            UserInput::Image { .. } | UserInput::LocalImage { .. } => {
                std::borrow::Cow::Borrowed("")
            }
        }
    }
}

/// One item of conversation history, serialized exactly as the Responses API
/// takes it in a request's `input` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseItem {
    /// A message from the user, the assistant, the system or the developer.
    Message {
        /// `user`, `assistant`, `system` or `developer`.
        role: String,
        /// The parts of the message.
        content: Vec<ContentItem>,
    },
    /// A tool call the model made.
    FunctionCall {
        /// The tool's name.
        name: String,
        /// The arguments as the model wrote them (a JSON document as a string).
        arguments: String,
        /// The id that pairs this call with its output.
        call_id: String,
    },
    /// The output of a tool call.
    FunctionCallOutput {
        /// The id of the call this answers.
        call_id: String,
        /// What the model reads as the tool's result.
        output: String,
    },
    /// A call of a freeform (custom) tool: its input is text in the tool's
    /// grammar, not JSON.
    CustomToolCall {
        /// The tool's name.
        name: String,
        /// The input as the model wrote it.
        input: String,
        /// The id that pairs this call with its output.
        call_id: String,
    },
    /// The output of a custom tool call.
    CustomToolCallOutput {
        /// The id of the call this answers.
        call_id: String,
        /// What the model reads as the tool's result.
        output: String,
    },
    /// The model's reasoning: its summary, and the reasoning itself
    /// encrypted when the provider returns it, sent back in later requests
    /// so the model keeps its train of thought across tool calls (Chat
    /// Completions has no way to take it back; there it is not sent).
    Reasoning {
        /// The summary parts.
        #[serde(default)]
        summary: Vec<ReasoningSummary>,
        /// The reasoning, encrypted by the provider.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
    },
}

/// One part of a reasoning summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReasoningSummary {
    /// Summary text.
    SummaryText {
        /// The text.
        text: String,
    },
}

/// Which kind of tool a call is of: its output must be of the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    /// A function tool: JSON arguments, a `function_call_output`.
    #[default]
    Function,
    /// A custom (freeform) tool: text input, a `custom_tool_call_output`.
    Custom,
}

impl ResponseItem {
    /// A user message with one text part.
    pub fn user_text(text: impl Into<String>) -> Self {
        ResponseItem::Message {
            role: "user".to_string(),
            content: vec![ContentItem::InputText { text: text.into() }],
        }
    }

    /// An assistant message with one text part.
    pub fn assistant_text(text: impl Into<String>) -> Self {
        ResponseItem::Message {
            role: "assistant".to_string(),
            content: vec![ContentItem::OutputText { text: text.into() }],
        }
    }

    /// A function tool call's output.
    pub fn call_output(call_id: impl Into<String>, output: impl Into<String>) -> Self {
        ResponseItem::FunctionCallOutput {
            call_id: call_id.into(),
            output: output.into(),
        }
    }

    /// The output of a call of `kind`.
    pub fn output_of(
        kind: CallKind,
        call_id: impl Into<String>,
        output: impl Into<String>,
    ) -> Self {
        let (call_id, output) = (call_id.into(), output.into());
        match kind {
            CallKind::Function => ResponseItem::FunctionCallOutput { call_id, output },
            CallKind::Custom => ResponseItem::CustomToolCallOutput { call_id, output },
        }
    }

    /// The id and kind of a tool call; `None` for anything else.
    pub fn as_call(&self) -> Option<(&str, CallKind)> {
        match self {
            ResponseItem::FunctionCall { call_id, .. } => Some((call_id, CallKind::Function)),
            ResponseItem::CustomToolCall { call_id, .. } => Some((call_id, CallKind::Custom)),
            ResponseItem::Message { .. }
            | ResponseItem::FunctionCallOutput { .. }
            | ResponseItem::CustomToolCallOutput { .. }
            | ResponseItem::Reasoning { .. } => None,
        }
    }

    /// The call id a tool call's output answers; `None` for anything else.
    pub fn as_output(&self) -> Option<&str> {
        match self {
            ResponseItem::FunctionCallOutput { call_id, .. }
            | ResponseItem::CustomToolCallOutput { call_id, .. } => Some(call_id),
            ResponseItem::Message { .. }
            | ResponseItem::FunctionCall { .. }
            | ResponseItem::CustomToolCall { .. }
            | ResponseItem::Reasoning { .. } => None,
        }
    }
}

/// One part of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentItem {
    /// Text sent to the model.
    InputText {
        /// The text.
        text: String,
    },
    /// Text the model wrote.
    OutputText {
        /// The text.
        text: String,
    },
}

impl ContentItem {
    /// The text of this part.
    pub fn text(&self) -> &str {
        match self {
            ContentItem::InputText { text } | ContentItem::OutputText { text } => text,
        }
    }
}
