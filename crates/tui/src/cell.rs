//! One entry of the transcript, and how it is drawn: compact on the main
//! screen (a command's last output lines, a diff's first lines, an MCP
//! call's first result lines), whole in the pager (Ctrl+T).

mod mcp_call;

use std::time::Duration;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use serde_json::Value;
use tiller_client::protocol::TurnPlanStepStatus;

use crate::clean::clean;
use crate::markdown;

pub use mcp_call::McpCall;

/// How many output lines a command shows on the main screen.
pub const OUTPUT_TAIL_LINES: usize = 5;
/// How many columns of one output line show on the main screen.
pub const OUTPUT_LINE_COLUMNS: usize = 500;
/// How many diff lines per file show on the main screen.
pub const DIFF_HEAD_LINES: usize = 20;
/// The most output kept per command: its end, as a terminal would keep.
pub const OUTPUT_KEPT_BYTES: usize = 256 * 1024;

/// What an entry says.
#[derive(Debug, Clone, PartialEq)]
pub enum CellKind {
    /// The person's message (a turn's input, a steer, a queued message).
    User {
        /// The text.
        text: String,
    },
    /// The model's answer, markdown.
    Agent {
        /// The text so far.
        text: String,
    },
    /// The model's reasoning summary, collapsed to its first line.
    Reasoning {
        /// The summary parts.
        summary: Vec<String>,
    },
    /// A shell command.
    Command(Command),
    /// A tool of an MCP server.
    McpCall(McpCall),
    /// Files the model changed.
    FileChange {
        /// Each file: `{path, kind: {type}, diff}`.
        changes: Vec<Value>,
        /// `inProgress`, `completed`, `failed`, `declined`.
        status: String,
    },
    /// A line about what happened: a retry, a warning, an error, a report.
    Notice {
        /// The words.
        text: String,
        /// How it looks.
        tone: Tone,
    },
    /// The model's plan, as an `update_plan` call left it.
    Plan {
        /// Why, when the model said.
        explanation: Option<String>,
        /// Each step and its status: `pending`, `inProgress`, `completed`.
        steps: Vec<(String, TurnPlanStepStatus)>,
    },
    /// The one line that ends a turn.
    TurnEnd(TurnOutcome),
}

/// A command cell's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Command {
    /// The command as a shell reads it.
    pub command: String,
    /// `inProgress`, `completed`, `failed`, `declined`.
    pub status: String,
    /// stdout and stderr, the last [`OUTPUT_KEPT_BYTES`].
    pub output: String,
    /// Its exit code, once it ended.
    pub exit_code: Option<i32>,
    /// How long it ran, once it ended.
    pub duration_ms: Option<i64>,
}

impl Command {
    /// Add output as it streams, keeping the end.
    pub fn push_output(&mut self, delta: &str) {
        self.output.push_str(&clean(delta));
        if self.output.len() > OUTPUT_KEPT_BYTES {
            let mut cut = self.output.len() - OUTPUT_KEPT_BYTES;
            while !self.output.is_char_boundary(cut) {
                cut += 1;
            }
            self.output.drain(..cut);
        }
    }
}

/// How a notice looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Plain information (`/status`, a report).
    Info,
    /// A model request being retried: dim.
    Retry,
    /// Something that went as expected (an MCP server ready): dim.
    Quiet,
    /// Something to know.
    Warning,
    /// Something that failed.
    Error,
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutcome {
    /// Normally, after this long.
    Completed(Option<Duration>),
    /// Interrupted, and why.
    Interrupted(String),
    /// Failed, in the server's words.
    Failed(String),
}

/// One entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The protocol item it shows, if it is one.
    pub item_id: Option<String>,
    /// What it says.
    pub kind: CellKind,
}

const DIM: Style = Style::new().fg(Color::DarkGray);

impl Cell {
    /// A cell that is no protocol item.
    pub fn new(kind: CellKind) -> Cell {
        Cell {
            item_id: None,
            kind,
        }
    }

    /// Its lines, unwrapped; `full` for the pager.
    pub fn lines(&self, full: bool) -> Vec<Line<'static>> {
        match &self.kind {
            CellKind::User { text } => prefixed(
                text,
                Span::styled(
                    "› ",
                    Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
                ),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            CellKind::Agent { text } => markdown::render(&clean(text)),
            CellKind::Reasoning { summary } => reasoning_lines(summary, full),
            CellKind::Command(command) => command_lines(command, full),
            CellKind::McpCall(call) => call.lines(full),
            CellKind::FileChange { changes, status } => file_change_lines(changes, status, full),
            CellKind::Notice { text, tone } => {
                let style = match tone {
                    Tone::Info => Style::new(),
                    Tone::Retry | Tone::Quiet => DIM,
                    Tone::Warning => Style::new().fg(Color::Yellow),
                    Tone::Error => Style::new().fg(Color::Red),
                };
                let mark = match tone {
                    Tone::Info | Tone::Quiet => "• ",
                    Tone::Retry => "↻ ",
                    Tone::Warning => "⚠ ",
                    Tone::Error => "✗ ",
                };
                prefixed(text, Span::styled(mark, style), style)
            }
            CellKind::Plan { explanation, steps } => plan_lines(explanation.as_deref(), steps),
            CellKind::TurnEnd(outcome) => vec![turn_end_line(outcome)],
        }
    }
}

/// "Updated plan", the explanation, then a line a step: done ones ticked and
/// dim, the one in progress marked, pending ones boxed.
fn plan_lines(
    explanation: Option<&str>,
    steps: &[(String, TurnPlanStepStatus)],
) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(vec![
        Span::styled("• ", Style::new().fg(Color::Cyan)),
        Span::styled("Updated plan", Style::new().add_modifier(Modifier::BOLD)),
    ])];
    if let Some(why) = explanation {
        let style = DIM.add_modifier(Modifier::ITALIC);
        lines.extend(prefixed(why, Span::raw("  "), style));
    }
    for (n, (step, status)) in steps.iter().enumerate() {
        let (mark, style) = match status {
            TurnPlanStepStatus::Completed => (
                Span::styled("✓ ", Style::new().fg(Color::Green)),
                DIM.add_modifier(Modifier::CROSSED_OUT),
            ),
            TurnPlanStepStatus::InProgress => (
                Span::styled("▸ ", Style::new().fg(Color::Cyan)),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            TurnPlanStepStatus::Pending => (Span::styled("□ ", DIM), Style::new()),
        };
        for (i, line) in prefixed(step, mark, style).into_iter().enumerate() {
            let lead = if n == 0 && i == 0 { "  └ " } else { "    " };
            let mut spans = vec![Span::raw(lead)];
            spans.extend(line.spans);
            lines.push(Line::from(spans));
        }
    }
    lines
}

/// `text`'s lines, the first after `mark`, the rest indented under it.
fn prefixed(text: &str, mark: Span<'static>, style: Style) -> Vec<Line<'static>> {
    let indent = " ".repeat(crate::wrap::text_width(&mark.content));
    clean(text)
        .split('\n')
        .enumerate()
        .map(|(i, line)| {
            let lead = if i == 0 {
                mark.clone()
            } else {
                Span::raw(indent.clone())
            };
            Line::from(vec![lead, Span::styled(line.to_owned(), style)])
        })
        .collect()
}

fn reasoning_lines(summary: &[String], full: bool) -> Vec<Line<'static>> {
    let style = DIM.add_modifier(Modifier::ITALIC);
    let text = clean(&summary.join("\n"));
    let text = text.trim();
    if full {
        return prefixed(text, Span::styled("• thinking: ", style), style);
    }
    let first = text.lines().next().unwrap_or("");
    let more = if text.lines().nth(1).is_some() {
        " …"
    } else {
        ""
    };
    vec![Line::styled(format!("• thinking: {first}{more}"), style)]
}

fn command_lines(command: &Command, full: bool) -> Vec<Line<'static>> {
    let text = clean(&command.command);
    let (mark, mark_style, verb) = match command.status.as_str() {
        "inProgress" => ("•", Style::new().fg(Color::Cyan), "Running"),
        "declined" => ("✗", Style::new().fg(Color::Yellow), "Declined"),
        _ if command.exit_code == Some(0) => ("✓", Style::new().fg(Color::Green), "Ran"),
        _ => ("✗", Style::new().fg(Color::Red), "Ran"),
    };
    let mut header = vec![
        Span::styled(format!("{mark} "), mark_style),
        Span::styled(
            format!("{verb} "),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(text.lines().next().unwrap_or("").to_owned()),
    ];
    if text.lines().nth(1).is_some() {
        header.push(Span::styled(" …", DIM));
    }
    let mut facts = Vec::new();
    if let Some(code) = command.exit_code {
        facts.push(format!("exit {code}"));
    }
    if let Some(ms) = command.duration_ms {
        facts.push(duration_words(Duration::from_millis(
            u64::try_from(ms).unwrap_or(0),
        )));
    }
    if !facts.is_empty() {
        header.push(Span::styled(format!("  {}", facts.join(" · ")), DIM));
    }
    let mut lines = vec![Line::from(header)];

    let output = command.output.trim_end_matches('\n');
    if output.is_empty() {
        return lines;
    }
    let all: Vec<&str> = output.split('\n').collect();
    let shown = if full {
        &all[..]
    } else {
        &all[all.len().saturating_sub(OUTPUT_TAIL_LINES)..]
    };
    if shown.len() < all.len() {
        lines.push(Line::styled(
            format!(
                "  │ … {} earlier lines (ctrl+t shows all)",
                all.len() - shown.len()
            ),
            DIM,
        ));
    }
    lines.extend(shown.iter().map(|line| {
        // A line of megabytes would wrap into thousands of rows: the main
        // screen shows its start; the pager shows it whole.
        let line = if full {
            (*line).to_owned()
        } else {
            crate::wrap::truncate(line, OUTPUT_LINE_COLUMNS)
        };
        Line::from(vec![Span::styled("  │ ", DIM), Span::raw(line)])
    }));
    lines
}

fn file_change_lines(changes: &[Value], status: &str, full: bool) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for change in changes {
        let path = clean(change.get("path").and_then(Value::as_str).unwrap_or("?"));
        let kind = change
            .pointer("/kind/type")
            .and_then(Value::as_str)
            .unwrap_or("update");
        let diff = clean(change.get("diff").and_then(Value::as_str).unwrap_or(""));
        let added = diff
            .lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .count();
        let removed = diff
            .lines()
            .filter(|l| l.starts_with('-') && !l.starts_with("---"))
            .count();
        let verb = match (status, kind) {
            ("declined", _) => "Declined edit of",
            ("failed", _) => "Failed to edit",
            ("inProgress", _) => "Editing",
            (_, "add") => "Added",
            (_, "delete") => "Deleted",
            _ => "Edited",
        };
        lines.push(Line::from(vec![
            Span::styled("✎ ", Style::new().fg(Color::Magenta)),
            Span::styled(
                format!("{verb} "),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::raw(path),
            Span::styled(format!("  +{added} −{removed}"), DIM),
        ]));
        let diff_lines: Vec<&str> = diff
            .lines()
            .filter(|l| !l.starts_with("+++") && !l.starts_with("---"))
            .collect();
        let shown = if full {
            &diff_lines[..]
        } else {
            &diff_lines[..diff_lines.len().min(DIFF_HEAD_LINES)]
        };
        for line in shown {
            lines.push(Line::from(vec![
                Span::styled("  ", DIM),
                Span::styled((*line).to_owned(), diff_style(line)),
            ]));
        }
        if shown.len() < diff_lines.len() {
            lines.push(Line::styled(
                format!(
                    "  … {} more lines (ctrl+t shows all)",
                    diff_lines.len() - shown.len()
                ),
                DIM,
            ));
        }
    }
    lines
}

/// How a line of a unified diff looks: additions green, removals red, hunk
/// headers cyan, file headers bold.
pub fn diff_style(line: &str) -> Style {
    if line.starts_with("+++") || line.starts_with("---") {
        Style::new().add_modifier(Modifier::BOLD)
    } else if line.starts_with('+') {
        Style::new().fg(Color::Green)
    } else if line.starts_with('-') {
        Style::new().fg(Color::Red)
    } else if line.starts_with("@@") {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new()
    }
}

fn turn_end_line(outcome: &TurnOutcome) -> Line<'static> {
    match outcome {
        TurnOutcome::Completed(took) => {
            let took = took
                .map(|d| format!(" in {}", duration_words(d)))
                .unwrap_or_default();
            Line::styled(format!("─ completed{took}"), DIM)
        }
        TurnOutcome::Interrupted(reason) => Line::styled(
            format!("■ interrupted — {}", clean(reason)),
            Style::new().fg(Color::Yellow),
        ),
        TurnOutcome::Failed(message) => Line::styled(
            format!("✗ failed: {}", clean(message)),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
    }
}

/// "850 ms", "3.2s", "2m 05s".
pub fn duration_words(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m {:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(cell: &Cell, full: bool) -> Vec<String> {
        cell.lines(full).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_command_shows_its_last_lines_and_the_pager_all() {
        let mut command = Command {
            command: "seq 8".into(),
            status: "completed".into(),
            exit_code: Some(0),
            duration_ms: Some(12),
            ..Command::default()
        };
        command.push_output("1\n2\n3\n4\n5\n6\n7\n8\n");
        let cell = Cell::new(CellKind::Command(command));
        assert_eq!(
            texts(&cell, false),
            [
                "✓ Ran seq 8  exit 0 · 12 ms",
                "  │ … 3 earlier lines (ctrl+t shows all)",
                "  │ 4",
                "  │ 5",
                "  │ 6",
                "  │ 7",
                "  │ 8"
            ]
        );
        assert_eq!(texts(&cell, true).len(), 9);
    }

    #[test]
    fn a_huge_output_line_is_cut_on_the_main_screen_only() {
        let mut command = Command {
            command: "cat blob".into(),
            status: "completed".into(),
            exit_code: Some(0),
            ..Command::default()
        };
        command.push_output(&"x".repeat(100_000));
        let cell = Cell::new(CellKind::Command(command));
        let compact = texts(&cell, false);
        assert_eq!(
            compact[1].chars().count(),
            "  │ ".chars().count() + OUTPUT_LINE_COLUMNS
        );
        assert!(compact[1].ends_with('…'));
        assert_eq!(
            texts(&cell, true)[1].chars().count(),
            "  │ ".chars().count() + 100_000
        );
    }

    #[test]
    fn output_keeps_its_end_within_the_bound() {
        let mut command = Command::default();
        for _ in 0..100 {
            command.push_output(&"é".repeat(2000));
        }
        assert!(command.output.len() <= OUTPUT_KEPT_BYTES);
    }

    #[test]
    fn a_file_change_counts_and_colours_its_lines() {
        let cell = Cell::new(CellKind::FileChange {
            changes: vec![serde_json::json!({
                "path": "src/a.rs", "kind": {"type": "update"},
                "diff": "--- a/src/a.rs\n+++ b/src/a.rs\n@@ -1 +1 @@\n-old\n+new\n"
            })],
            status: "completed".into(),
        });
        assert_eq!(
            texts(&cell, false),
            [
                "✎ Edited src/a.rs  +1 −1",
                "  @@ -1 +1 @@",
                "  -old",
                "  +new"
            ]
        );
    }
}
