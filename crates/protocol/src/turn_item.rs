//! What a turn shows a person: the items of a transcript.
//!
//! The engine emits every item with a stable id when it starts
//! ([`EventMsg::ItemStarted`](crate::EventMsg::ItemStarted)) and when it is
//! complete ([`EventMsg::ItemCompleted`](crate::EventMsg::ItemCompleted)), with
//! deltas naming the item in between, and records both in the rollout, so a
//! live turn and the same turn read back from disk show the same items, ids and
//! text. Every started item is completed, also when its turn is aborted. What
//! the model reads but a person never typed (the marker after an interrupted
//! turn) is history, not an item.

use serde::{Deserialize, Serialize};

use crate::{ExecEndStatus, UserInput};

/// One item of a turn's transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnItem {
    /// Stable for the life of the session, on disk and on every wire.
    pub id: String,
    /// What the item is.
    #[serde(flatten)]
    pub kind: TurnItemKind,
}

/// The kinds of items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TurnItemKind {
    /// What a person sent: a turn's input, a steer, a queued message.
    UserMessage {
        /// The input as it was given.
        content: Vec<UserInput>,
        /// The client's id for the message, if it gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_message_id: Option<String>,
    },
    /// The model's answer (as far as it got, when cut short).
    AgentMessage {
        /// The text.
        text: String,
    },
    /// The model's reasoning summary.
    Reasoning {
        /// The text.
        text: String,
    },
    /// A command the model ran (or asked to run).
    CommandExecution {
        /// The tool call it answers.
        call_id: String,
        /// The argv.
        command: Vec<String>,
        /// The folder it runs in.
        cwd: String,
        /// How it ended; `None` while it runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<ExecEndStatus>,
        /// Its exit code, when it exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// Wall time, once it ended.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u64>,
        /// Stdout and stderr interleaved, head and tail kept, once it ended.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        aggregated_output: Option<String>,
    },
    /// Files the model changed (`apply_patch`), each with a unified diff.
    FileChange {
        /// The tool call it answers.
        call_id: String,
        /// The files, in the patch's order.
        changes: Vec<FileChange>,
        /// How it ended; `None` while it is being applied.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<PatchStatus>,
    },
    /// The conversation was compacted: the model summarised it and the
    /// summary replaced it (one line in a transcript).
    ContextCompaction {
        /// Why: asked for (`/compact`), `auto` (the next request would have
        /// passed the limit), or `overflow` (the server said the context
        /// was too long).
        trigger: CompactionTrigger,
        /// How it ended; `None` while it runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<CompactionStatus>,
        /// The estimated tokens of the conversation before and after, once
        /// it has replaced the history.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens: Option<CompactedTokens>,
    },
    /// A call of a tool of an MCP server.
    McpToolCall {
        /// The tool call it answers.
        call_id: String,
        /// The server's name (`[mcp_servers.<server>]`).
        server: String,
        /// The tool's name on the server.
        tool: String,
        /// The arguments the model gave.
        arguments: Json,
        /// How it ended; `None` while it runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<McpToolCallStatus>,
        /// What the server returned, once it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<McpToolCallResult>,
        /// Why it failed (no result), when it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Wall time, once it ended.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u64>,
    },
}

/// A JSON value inside an item (arguments, a tool's result). JSON has no NaN,
/// so equality is an equivalence.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Json(pub serde_json::Value);

impl Eq for Json {}

/// How an MCP tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum McpToolCallStatus {
    /// The server answered (its answer may say the tool failed: `is_error`).
    Completed,
    /// No answer: the server failed, crashed or timed out, or the call was refused.
    Failed,
    /// The turn was aborted while it ran; the server was told to cancel it.
    Aborted,
}

/// What an MCP server returned for a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpToolCallResult {
    /// The content blocks, as MCP defines them (text, image, resource, …).
    pub content: Vec<Json>,
    /// The structured result, when the tool gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Json>,
    /// Whether the tool says it failed.
    #[serde(default)]
    pub is_error: bool,
}

/// Why a conversation was compacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompactionTrigger {
    /// A person or client asked for it.
    Manual,
    /// The next request would have passed the auto-compaction limit.
    Auto,
    /// The server refused a request as longer than the model's context.
    Overflow,
}

impl CompactionTrigger {
    /// The trigger's name in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CompactionTrigger::Manual => "manual",
            CompactionTrigger::Auto => "auto",
            CompactionTrigger::Overflow => "overflow",
        }
    }
}

/// A compaction as one line of a transcript: what happened, and the
/// estimated tokens before and after (`None`: it stopped or failed, and the
/// conversation is unchanged).
pub fn compaction_line(trigger: CompactionTrigger, tokens: Option<CompactedTokens>) -> String {
    let why = match trigger {
        CompactionTrigger::Manual => "",
        CompactionTrigger::Auto => " (it was near the context limit)",
        CompactionTrigger::Overflow => " (the server said it was too long)",
    };
    match tokens {
        Some(CompactedTokens { before, after }) => {
            format!("conversation compacted{why}: about {before} → {after} tokens")
        }
        None => format!("compaction stopped{why}; the conversation is unchanged"),
    }
}

/// An MCP tool call as one line of a transcript: `server.tool` and how it
/// ended (`None`: it runs).
pub fn mcp_call_line(
    server: &str,
    tool: &str,
    status: Option<McpToolCallStatus>,
    error: Option<&str>,
) -> String {
    match (status, error) {
        (None, _) => format!("calling {server}.{tool}"),
        (Some(McpToolCallStatus::Completed), _) => format!("called {server}.{tool}"),
        (Some(McpToolCallStatus::Aborted), _) => format!("{server}.{tool} aborted"),
        (Some(McpToolCallStatus::Failed), Some(error)) => {
            format!("{server}.{tool} failed: {error}")
        }
        (Some(McpToolCallStatus::Failed), None) => format!("{server}.{tool} failed"),
    }
}

/// How a compaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompactionStatus {
    /// The summary replaced the history.
    Completed,
    /// Interrupted or failed: the history is as it was.
    Failed,
}

/// The estimated size of a conversation before and after compaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactedTokens {
    /// Before.
    pub before: u64,
    /// After.
    pub after: u64,
}

/// One file of a [`TurnItemKind::FileChange`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// The file.
    pub path: String,
    /// Added, deleted, or updated (and perhaps moved).
    pub kind: FileChangeKind,
    /// A unified diff of the change.
    pub diff: String,
}

/// What happened to a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FileChangeKind {
    /// A new file.
    Add,
    /// A removed file.
    Delete,
    /// A changed file.
    Update {
        /// Where it moved, if it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        move_path: Option<String>,
    },
}

/// How a file change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchStatus {
    /// Every file was written.
    Completed,
    /// Nothing was written (the patch did not apply, or a write failed).
    Failed,
    /// The person said no; nothing was written.
    Declined,
}

impl TurnItem {
    /// An item with `id`.
    pub fn new(id: impl Into<String>, kind: TurnItemKind) -> TurnItem {
        TurnItem {
            id: id.into(),
            kind,
        }
    }

    /// A user message's text as the model reads it; `None` for other items.
    pub fn user_text(&self) -> Option<String> {
        match &self.kind {
            TurnItemKind::UserMessage { content, .. } => {
                Some(crate::UserMessage::new(content.clone()).model_text())
            }
            _ => None,
        }
    }
}

/// argv as a shell would read it back: `bash -lc 'echo hi; exit 3'` (how front
/// ends show a command, and how a person is asked to approve one). Pasted into
/// bash it gives exactly this argv. A word with control characters (a carriage
/// return, an escape sequence) or invisible formatting characters (bidi
/// overrides, zero-width spaces) is written in `$'…'` form with those
/// characters escaped, so what a terminal shows is what runs: nothing in the
/// text can move the cursor, recolour it or reorder it.
pub fn display_command(argv: &[String]) -> String {
    argv.iter()
        .map(|word| quote_word(word))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        return word.to_string();
    }
    if !word.chars().any(hidden) {
        return format!("'{}'", word.replace('\'', r"'\''"));
    }
    let mut out = String::from("$'");
    for c in word.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if hidden(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if hidden(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A character a terminal does not show as itself: a control character, or a
/// formatting one that changes how the text around it looks.
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What bash makes of `display_command(argv)` is `argv`, and the text
    /// holds no character a terminal would act on.
    #[test]
    fn a_displayed_command_is_exactly_what_runs_and_hides_nothing() {
        let argv: Vec<String> = [
            "bash",
            "-lc",
            "rm -rf 'x y'; echo \"$HOME\"",
            "it's",
            "line\nbreak",
            "safe\r\u{1b}[2Krm -rf /",
            "\u{202e}txt.exe",
            "tab\there",
            "back\\slash",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let shown = display_command(&argv);
        assert!(
            !shown.chars().any(hidden),
            "the display holds a control character: {shown:?}"
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("printf '%s\\0' {shown}"))
            .output()
            .unwrap();
        let words: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|w| String::from_utf8(w.to_vec()).unwrap())
            .collect();
        assert_eq!(&words[..argv.len()], &argv[..], "{shown}");
    }
}
