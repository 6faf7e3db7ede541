//! An MCP tool call as a cell: `server.tool(arguments)` on one line, then
//! what it returned (the first lines of its text, what its other blocks
//! are, or its structured content), or why it failed. The pager shows the
//! arguments and the result whole.

use std::time::Duration;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use serde_json::Value;

use super::{DIM, duration_words};
use crate::clean::clean;
use crate::wrap::truncate;

/// How many columns of the arguments show on the main screen: the header
/// stays one line on an 80-column terminal.
pub const ARGUMENT_COLUMNS: usize = 40;
/// How many lines of a result show on the main screen.
pub const RESULT_LINES: usize = 4;
/// How many columns of one result line show on the main screen.
pub const RESULT_LINE_COLUMNS: usize = 200;

/// An MCP tool call, as its item has it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct McpCall {
    /// The server's name.
    pub server: String,
    /// The tool's name on the server.
    pub tool: String,
    /// The arguments the model gave.
    pub arguments: Value,
    /// `inProgress`, `completed` or `failed`.
    pub status: String,
    /// What the server returned (`content`, `structuredContent`), once it did.
    pub result: Option<Value>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// How long it took, once it ended.
    pub duration_ms: Option<i64>,
}

impl McpCall {
    /// `server.tool`, as the status line and the header name it.
    pub fn name(&self) -> String {
        clean(&format!("{}.{}", self.server, self.tool))
    }

    /// Its lines, unwrapped; `full` for the pager.
    pub fn lines(&self, full: bool) -> Vec<Line<'static>> {
        let (mark, mark_style, verb) = match self.status.as_str() {
            "inProgress" => ("•", Style::new().fg(Color::Cyan), "Calling"),
            "completed" => ("✓", Style::new().fg(Color::Green), "Called"),
            _ => ("✗", Style::new().fg(Color::Red), "Called"),
        };
        let arguments = self.arguments_text();
        let arguments = if full {
            arguments
        } else {
            truncate(&arguments, ARGUMENT_COLUMNS)
        };
        let mut header = vec![
            Span::styled(format!("{mark} "), mark_style),
            Span::styled(
                format!("{verb} "),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::raw(self.name()),
            Span::styled(format!("({arguments})"), DIM),
        ];
        let mut facts = Vec::new();
        if self.status == "failed" {
            facts.push("failed".to_owned());
        }
        if let Some(ms) = self.duration_ms {
            facts.push(duration_words(Duration::from_millis(
                u64::try_from(ms).unwrap_or(0),
            )));
        }
        if !facts.is_empty() {
            header.push(Span::styled(format!("  {}", facts.join(" · ")), DIM));
        }
        let mut lines = vec![Line::from(header)];

        let (body, style) = match (&self.error, &self.result) {
            (Some(error), _) => (clean(error), Style::new().fg(Color::Red)),
            // A result the tool itself calls an error fails the call.
            (None, Some(result)) if self.status == "failed" => {
                (result_text(result, full), Style::new().fg(Color::Red))
            }
            (None, Some(result)) => (result_text(result, full), Style::new()),
            (None, None) => return lines,
        };
        let all: Vec<&str> = body.trim_end_matches('\n').split('\n').collect();
        if all == [""] {
            return lines;
        }
        let shown = if full {
            &all[..]
        } else {
            &all[..all.len().min(RESULT_LINES)]
        };
        lines.extend(shown.iter().map(|line| {
            let line = if full {
                (*line).to_owned()
            } else {
                truncate(line, RESULT_LINE_COLUMNS)
            };
            Line::from(vec![Span::styled("  │ ", DIM), Span::styled(line, style)])
        }));
        if shown.len() < all.len() {
            lines.push(Line::styled(
                format!(
                    "  │ … {} more lines (ctrl+t shows all)",
                    all.len() - shown.len()
                ),
                DIM,
            ));
        }
        lines
    }

    /// The arguments as one line of JSON, spaced to read; nothing for none.
    fn arguments_text(&self) -> String {
        match &self.arguments {
            Value::Null => String::new(),
            Value::Object(map) if map.is_empty() => String::new(),
            other => clean(&one_line(other)),
        }
    }
}

/// `value` as JSON on one line, with a space after each `:` and `,`.
fn one_line(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(one_line).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{}: {}", Value::from(key.as_str()), one_line(value)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        // A string's newlines are escaped (`\n`), as every control character.
        scalar => scalar.to_string(),
    }
}

/// What a result says: its text blocks' text; its other blocks named (an
/// image, audio, a resource); its structured content as JSON when there is
/// no text (pretty in the pager).
fn result_text(result: &Value, full: bool) -> String {
    let blocks = result
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let field = |block: &Value, key: &str| {
        block
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let mut parts: Vec<String> = Vec::new();
    let mut has_text = false;
    for block in blocks {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        parts.push(match kind {
            "text" => {
                has_text = true;
                field(block, "text")
            }
            "image" | "audio" => {
                let mime = field(block, "mimeType");
                if mime.is_empty() {
                    kind.to_owned()
                } else {
                    format!("{kind} ({mime})")
                }
            }
            "resource" => {
                let uri = block
                    .pointer("/resource/uri")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                format!("resource {uri}")
            }
            "resource_link" => format!("link {}", field(block, "uri")),
            other => format!("[{other}]"),
        });
    }
    let structured = result
        .get("structuredContent")
        .filter(|value| !value.is_null());
    if let Some(structured) = structured
        && !has_text
    {
        let json = if full {
            serde_json::to_string_pretty(structured).unwrap_or_default()
        } else {
            one_line(structured)
        };
        parts.push(json);
    }
    clean(&parts.join("\n"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn texts(call: &McpCall, full: bool) -> Vec<String> {
        call.lines(full).iter().map(ToString::to_string).collect()
    }

    fn call(status: &str) -> McpCall {
        McpCall {
            server: "docs".into(),
            tool: "search".into(),
            arguments: json!({"query": "ratatui"}),
            status: status.into(),
            ..McpCall::default()
        }
    }

    #[test]
    fn a_running_call_names_its_server_tool_and_arguments() {
        assert_eq!(
            texts(&call("inProgress"), false),
            [r#"• Calling docs.search({"query": "ratatui"})"#]
        );
    }

    #[test]
    fn long_arguments_are_cut_on_the_main_screen_only() {
        let mut long = call("inProgress");
        long.arguments = json!({"text": "x".repeat(300)});
        let compact = texts(&long, false);
        assert!(compact[0].ends_with("…)"), "{compact:?}");
        assert!(compact[0].chars().count() < 80, "{compact:?}");
        assert!(texts(&long, true)[0].contains(&"x".repeat(300)));
    }

    #[test]
    fn a_result_shows_its_first_lines_and_the_pager_all() {
        let mut done = call("completed");
        done.duration_ms = Some(40);
        done.result = Some(json!({"content": [
            {"type": "text", "text": "1\n2\n3\n4\n5\n6"},
        ], "structuredContent": null, "_meta": null}));
        assert_eq!(
            texts(&done, false),
            [
                r#"✓ Called docs.search({"query": "ratatui"})  40 ms"#,
                "  │ 1",
                "  │ 2",
                "  │ 3",
                "  │ 4",
                "  │ … 2 more lines (ctrl+t shows all)"
            ]
        );
        assert_eq!(texts(&done, true).len(), 7);
    }

    #[test]
    fn images_are_named_and_structured_content_shows_without_text() {
        let mut done = call("completed");
        done.result = Some(json!({"content": [
            {"type": "image", "data": "AAAA", "mimeType": "image/png"},
        ], "structuredContent": {"sum": 5}}));
        assert_eq!(
            texts(&done, false)[1..],
            ["  │ image (image/png)", r#"  │ {"sum": 5}"#]
        );
        // With text, the text says it.
        done.result = Some(json!({"content": [{"type": "text", "text": "5"}],
                                  "structuredContent": {"result": 5}}));
        assert_eq!(texts(&done, false)[1..], ["  │ 5"]);
    }

    #[test]
    fn a_failed_call_shows_why() {
        let mut failed = call("failed");
        failed.error = Some("the MCP server docs exited during the call".into());
        failed.duration_ms = Some(1200);
        assert_eq!(
            texts(&failed, false),
            [
                r#"✗ Called docs.search({"query": "ratatui"})  failed · 1.2s"#,
                "  │ the MCP server docs exited during the call"
            ]
        );
        let line = &failed.lines(false)[1];
        assert_eq!(line.spans[1].style.fg, Some(Color::Red));
    }

    #[test]
    fn arguments_read_as_spaced_json_on_one_line() {
        let mut nested = call("inProgress");
        nested.arguments = json!({"a": [1, {"b": "x\ny"}], "c": null});
        assert_eq!(
            texts(&nested, true),
            [r#"• Calling docs.search({"a": [1, {"b": "x\ny"}], "c": null})"#]
        );
    }

    #[test]
    fn escape_sequences_from_the_server_are_not_drawn() {
        let mut done = call("completed");
        done.result = Some(json!({"content": [{"type": "text", "text": "ok\u{1b}[2J done"}]}));
        assert_eq!(texts(&done, false)[1], "  │ ok done");
    }
}
