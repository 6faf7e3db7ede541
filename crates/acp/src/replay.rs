//! `session/load`: a saved session's turns as the `session/update`s a
//! client would have seen (the person's messages, the answers, the
//! reasoning, each tool call with how it ended), sent before the answer.

use std::path::Path;

use agent_client_protocol::v1::schema as acp;
use tiller_core::rollout::LoadedTurn;
use tiller_protocol::{TurnItemKind, UserInput};

use crate::translate::{ended, tool_call};

/// The updates that replay `turns`.
pub(crate) fn updates(turns: &[LoadedTurn], cwd: &Path) -> Vec<acp::SessionUpdate> {
    turns
        .iter()
        .flat_map(|turn| turn.items.iter())
        .flat_map(|item| match &item.kind {
            TurnItemKind::UserMessage { content, .. } => content
                .iter()
                .map(|input| {
                    acp::SessionUpdate::UserMessageChunk(acp::ContentChunk::new(
                        input_text(input).into(),
                    ))
                })
                .collect(),
            TurnItemKind::AgentMessage { text } => vec![acp::SessionUpdate::AgentMessageChunk(
                acp::ContentChunk::new(text.clone().into()),
            )],
            TurnItemKind::Reasoning { text } => vec![acp::SessionUpdate::AgentThoughtChunk(
                acp::ContentChunk::new(text.clone().into()),
            )],
            _ => match tool_call(item, cwd) {
                Some(call) => vec![
                    acp::SessionUpdate::ToolCall(call),
                    acp::SessionUpdate::ToolCallUpdate(acp::ToolCallUpdate::new(
                        acp::ToolCallId::new(item.id.clone()),
                        ended(item),
                    )),
                ],
                None => Vec::new(),
            },
        })
        .collect()
}

fn input_text(input: &UserInput) -> String {
    match input {
        UserInput::Text { text } => text.clone(),
        UserInput::Mention { name, path } => format!("[{name}]({path})"),
        UserInput::Image { url } => format!("[image: {url}]"),
        UserInput::LocalImage { path } => format!("[image: {path}]"),
    }
}
