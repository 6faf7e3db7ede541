//! The `/` commands, and completion of a partly typed one.

/// A slash command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlashCommand {
    /// Start a new thread.
    New,
    /// Open the session picker.
    Resume,
    /// Pick or set the model.
    Model,
    /// Pick or set the approval mode.
    Approvals,
    /// Summarise the conversation to free context.
    Compact,
    /// Show the last turn's edits.
    Diff,
    /// Show the thread, model, folder and tokens.
    Status,
    /// List the thread's MCP servers.
    Mcp,
    /// Take the last turn back, files included.
    Undo,
    /// Take the last undo back.
    Redo,
    /// Leave.
    Quit,
}

/// Every command with what it does, in the order the menu shows them.
pub const COMMANDS: &[(SlashCommand, &str, &str)] = &[
    (SlashCommand::New, "new", "start a new conversation"),
    (SlashCommand::Resume, "resume", "open a saved session"),
    (SlashCommand::Model, "model", "choose the model"),
    (
        SlashCommand::Approvals,
        "approvals",
        "choose when commands are asked first",
    ),
    (
        SlashCommand::Compact,
        "compact",
        "summarise the conversation to free context",
    ),
    (
        SlashCommand::Diff,
        "diff",
        "show the edits of the last turn",
    ),
    (
        SlashCommand::Status,
        "status",
        "show the session, model, folder and tokens",
    ),
    (
        SlashCommand::Mcp,
        "mcp",
        "list the MCP servers and how their start went",
    ),
    (
        SlashCommand::Undo,
        "undo",
        "take the last turn back, files included",
    ),
    (SlashCommand::Redo, "redo", "take the last undo back"),
    (SlashCommand::Quit, "quit", "leave tiller"),
];

/// The commands whose name starts with what follows `/` in `text` (a
/// one-line text without spaces yet), for the menu; `None` when the text is
/// not a command being typed.
pub fn completions(text: &str) -> Option<Vec<(SlashCommand, &'static str, &'static str)>> {
    let typed = text.strip_prefix('/')?;
    if typed.contains(char::is_whitespace) {
        return None;
    }
    Some(
        COMMANDS
            .iter()
            .filter(|(_, name, _)| name.starts_with(typed))
            .copied()
            .collect(),
    )
}

/// `text` as a command and its argument (`/model gpt-5`), if it is one.
pub fn parse(text: &str) -> Option<(SlashCommand, &str)> {
    let rest = text.trim().strip_prefix('/')?;
    let (name, argument) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let command = COMMANDS.iter().find(|(_, n, _)| *n == name)?.0;
    Some((command, argument.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_by_prefix() {
        let found = completions("/re").unwrap_or_default();
        let names: Vec<&str> = found.iter().map(|c| c.1).collect();
        assert_eq!(names, ["resume", "redo"]);
        assert!(completions("/model gpt").is_none());
        assert!(completions("hello").is_none());
    }

    #[test]
    fn parses_a_command_and_its_argument() {
        assert_eq!(parse("/model gpt-5"), Some((SlashCommand::Model, "gpt-5")));
        assert_eq!(parse(" /quit "), Some((SlashCommand::Quit, "")));
        assert_eq!(parse("/nope"), None);
        assert_eq!(parse("not a command"), None);
    }
}
