//! Output for a person: the answer on stdout, everything else on stderr.
//!
//! - The answer streams as it comes when stdout is a terminal; a stream that
//!   breaks off and is retried is erased from the screen, so what stays is the
//!   answer. When stdout is a pipe or a file, only complete messages are
//!   written, so it holds exactly the answer and nothing a retry threw away.
//! - While tiller waits (for the model, for a command) a status line with a
//!   spinner and the elapsed time sits at the bottom of a terminal's stderr;
//!   a running command's last output lines are shown live above it. On a
//!   stderr that is not a terminal, a command's output lines are written as
//!   they arrive (up to [`MAX_STREAMED_LINES`], then its last lines at the end).
//! - A write to a closed stdout (`tiller exec … | head -1`) is an error the
//!   event loop acts on (it stops the turn and exits quietly); stderr write
//!   errors are ignored.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IsTerminal, Write};

use tiller_protocol::{
    Event, EventMsg, ExecEndStatus, McpToolCallStatus, PatchStatus, TurnAbortReason, TurnItem,
    TurnItemKind, compaction_line, display_command, mcp_call_line, plan_lines,
};

use crate::printer::Printer;
use crate::terminal::{StatusArea, columns, rows, stderr_colour};

const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// How many lines of a command's output are shown when it ends.
const OUTPUT_LINES_SHOWN: usize = 6;

/// How many of a command's output lines are shown live on a terminal.
const LIVE_LINES: usize = 5;

/// How many of a command's output lines are written as they come when stderr
/// is not a terminal; the rest are summed up when the command ends.
pub(crate) const MAX_STREAMED_LINES: usize = 200;

/// The longest unfinished output line held; a longer one keeps its end.
const MAX_PENDING_LINE: usize = 16 * 1024;

/// `text` for a terminal: control characters other than newline and tab
/// (escape sequences that move the cursor, set the title, write the
/// clipboard) are shown as `�` instead of acted on. What a model or a command
/// prints is not the terminal's to obey.
pub(crate) fn for_terminal(text: &str) -> std::borrow::Cow<'_, str> {
    let acted_on = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(acted_on) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| if acted_on(c) { '\u{fffd}' } else { c })
            .collect(),
    )
}

/// A running command's output as shown so far.
#[derive(Default)]
struct CommandView {
    /// An output line without its newline yet.
    pending: String,
    /// The last complete lines (terminal).
    tail: VecDeque<String>,
    /// Lines written as they came (not a terminal).
    streamed: usize,
    /// Lines that came after [`MAX_STREAMED_LINES`].
    skipped: usize,
    /// Output bytes seen.
    bytes: usize,
}

pub(crate) struct HumanPrinter {
    colour: bool,
    stdout_tty: bool,
    stderr_tty: bool,
    area: Option<StatusArea>,
    /// The answer is mid-line on stdout.
    in_message: bool,
    /// What was streamed of the message in progress (terminal stdout).
    partial: String,
    commands: HashMap<String, CommandView>,
    /// Edits started, not yet completed and not asked about, by item id.
    edits: HashMap<String, Vec<tiller_protocol::FileChange>>,
}

impl HumanPrinter {
    pub(crate) fn new() -> Self {
        let colour = stderr_colour();
        HumanPrinter {
            colour,
            stdout_tty: io::stdout().is_terminal(),
            stderr_tty: io::stderr().is_terminal(),
            area: StatusArea::start(colour),
            in_message: false,
            partial: String::new(),
            commands: HashMap::new(),
            edits: HashMap::new(),
        }
    }

    /// `text` for stderr, in `style` when colour is on. Everything on stderr
    /// comes through here: on a terminal, what a command or a server said is
    /// shown, not obeyed (control characters made visible).
    fn style(&self, style: &str, text: &str) -> String {
        let text = if self.stderr_tty {
            for_terminal(text)
        } else {
            std::borrow::Cow::Borrowed(text)
        };
        if self.colour {
            format!("{style}{text}{RESET}")
        } else {
            text.into_owned()
        }
    }

    /// Lines on stderr (above the status area on a terminal).
    fn err(&self, text: &str) {
        let mut text = text.to_string();
        text.push('\n');
        match &self.area {
            Some(area) => area.print(&text),
            None => {
                let _ = io::stderr().lock().write_all(text.as_bytes());
            }
        }
    }

    fn status(&self, label: Option<&str>) {
        if let Some(area) = &self.area {
            area.set_status(label);
        }
    }

    fn out(&mut self, text: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }

    fn end_message_line(&mut self) -> io::Result<()> {
        if self.in_message {
            self.out("\n")?;
            self.in_message = false;
            self.partial.clear();
            if let Some(area) = &self.area {
                area.show();
            }
        }
        Ok(())
    }

    /// Take the streamed text of a broken stream off the terminal.
    fn erase_partial(&mut self) -> io::Result<()> {
        if self.in_message && self.stdout_tty && !self.partial.is_empty() {
            let cols = columns(1).unwrap_or(80);
            let up = rows(&self.partial, cols) - 1;
            let mut text = String::from("\r");
            if up > 0 {
                text.push_str(&format!("\x1b[{up}A"));
            }
            text.push_str("\x1b[J");
            self.out(&text)?;
        }
        self.in_message = false;
        self.partial.clear();
        if let Some(area) = &self.area {
            area.show();
        }
        Ok(())
    }

    fn command_output(&mut self, call_id: &str, chunk: &str) {
        let Some(view) = self.commands.get_mut(call_id) else {
            return;
        };
        view.pending.push_str(chunk);
        view.bytes += chunk.len();
        // A line that never ends is shown by its end: keep the last part.
        if view.pending.len() > MAX_PENDING_LINE && !view.pending.contains('\n') {
            let mut cut = view.pending.len() - MAX_PENDING_LINE / 2;
            while !view.pending.is_char_boundary(cut) {
                cut += 1;
            }
            view.pending.drain(..cut);
        }
        let mut lines = Vec::new();
        while let Some(at) = view.pending.find('\n') {
            lines.push(view.pending[..at].trim_end_matches('\r').to_string());
            view.pending.drain(..=at);
        }
        match &self.area {
            Some(area) => {
                for line in lines {
                    view.tail.push_back(line);
                    if view.tail.len() > LIVE_LINES {
                        view.tail.pop_front();
                    }
                }
                area.set_live(view.tail.iter().cloned().collect());
            }
            None => {
                let mut shown = String::new();
                for line in lines {
                    if view.streamed < MAX_STREAMED_LINES {
                        view.streamed += 1;
                        shown.push_str(&format!("  {line}\n"));
                    } else {
                        view.skipped += 1;
                    }
                }
                if !shown.is_empty() {
                    let _ = io::stderr()
                        .lock()
                        .write_all(self.style(DIM, &shown).as_bytes());
                }
            }
        }
    }

    fn command_end(
        &mut self,
        call_id: &str,
        exit_code: Option<i32>,
        duration_ms: u64,
        aggregated_output: &str,
        status: ExecEndStatus,
    ) {
        let view = self.commands.remove(call_id).unwrap_or_default();
        // Written line by line as it came (not a terminal, nothing skipped,
        // nothing the engine held back): only the unfinished last line is left.
        let streamed_all = self.area.is_none()
            && view.skipped == 0
            && view.bytes > 0
            && view.bytes >= aggregated_output.len();
        if let Some(area) = &self.area {
            area.set_live(Vec::new());
        }
        if streamed_all {
            if !view.pending.is_empty() {
                self.err(&self.style(DIM, &format!("  {}", view.pending)));
            }
        } else {
            let lines: Vec<&str> = aggregated_output.lines().collect();
            let skipped = lines.len().saturating_sub(OUTPUT_LINES_SHOWN);
            if skipped > 0 {
                self.err(&self.style(DIM, &format!("  … {skipped} lines")));
            }
            for line in &lines[skipped..] {
                self.err(&self.style(DIM, &format!("  {line}")));
            }
        }
        let secs = duration_ms as f64 / 1000.0;
        let summary = match (status, exit_code) {
            (ExecEndStatus::Denied, _) => "  denied".to_string(),
            (ExecEndStatus::Aborted, _) => format!("  aborted after {secs:.2}s"),
            (ExecEndStatus::TimedOut, _) => format!("  timed out after {secs:.2}s"),
            (_, Some(code)) => format!("  exit {code} in {secs:.2}s"),
            (_, None) => format!("  killed by a signal after {secs:.2}s"),
        };
        let style = if status == ExecEndStatus::Completed {
            DIM
        } else {
            RED
        };
        self.err(&self.style(style, &summary));
    }
}

/// How many characters of an MCP call's arguments are shown.
const ARGS_SHOWN: usize = 120;

impl HumanPrinter {
    fn item_completed(&mut self, item: &TurnItem) -> io::Result<()> {
        match &item.kind {
            TurnItemKind::AgentMessage { text } if text.is_empty() => {
                // Withdrawn: a response that broke off streamed it.
                self.erase_partial()?;
            }
            TurnItemKind::AgentMessage { text } => {
                if !self.in_message {
                    if let Some(area) = &self.area {
                        area.hide();
                    }
                    let text = if self.stdout_tty {
                        for_terminal(text)
                    } else {
                        std::borrow::Cow::Borrowed(text.as_str())
                    };
                    self.out(&text)?;
                }
                self.in_message = true;
                self.end_message_line()?;
                self.status(Some("thinking"));
            }
            TurnItemKind::CommandExecution {
                command,
                status: Some(status),
                exit_code,
                duration_ms,
                aggregated_output,
                ..
            } => {
                if !self.commands.contains_key(&item.id) {
                    // Never started (denied): show what it was.
                    self.err(&self.style(DIM, &format!("$ {}", display_command(command))));
                }
                self.command_end(
                    &item.id,
                    *exit_code,
                    duration_ms.unwrap_or(0),
                    aggregated_output.as_deref().unwrap_or(""),
                    *status,
                );
                self.status(Some("thinking"));
            }
            TurnItemKind::FileChange {
                changes,
                status: Some(status),
                ..
            } => {
                // An edit asked about showed its diff with the question.
                let shown = self.edits.remove(&item.id).is_none();
                for change in changes {
                    let verb = match status {
                        PatchStatus::Completed => "edited",
                        PatchStatus::Failed => "not edited",
                        PatchStatus::Declined => "declined",
                    };
                    self.err(&self.style(DIM, &format!("{verb} {}", change.path)));
                    if *status == PatchStatus::Completed && !shown {
                        self.err(&self.style(DIM, &for_terminal(change.diff.trim_end())));
                    }
                }
                self.status(Some("thinking"));
            }
            TurnItemKind::ContextCompaction {
                trigger, tokens, ..
            } => {
                self.err(&self.style(DIM, &compaction_line(*trigger, *tokens)));
            }
            TurnItemKind::McpToolCall {
                server,
                tool,
                status,
                error,
                ..
            } => {
                let line = mcp_call_line(server, tool, *status, error.as_deref());
                let style = if *status == Some(McpToolCallStatus::Completed) {
                    DIM
                } else {
                    RED
                };
                self.err(&self.style(style, &for_terminal(&line)));
                self.status(Some("thinking"));
            }
            TurnItemKind::CommandExecution { status: None, .. }
            | TurnItemKind::FileChange { status: None, .. }
            | TurnItemKind::UserMessage { .. }
            | TurnItemKind::Reasoning { .. } => {}
        }
        Ok(())
    }
}

impl Printer for HumanPrinter {
    fn session_started(&mut self, _session_id: &str) -> io::Result<()> {
        Ok(())
    }

    fn note(&mut self, text: &str) {
        let _ = self.end_message_line();
        self.err(&self.style(DIM, text));
    }

    fn ask(&mut self, question: &str) {
        let _ = self.end_message_line();
        self.status(None);
        match &self.area {
            Some(area) => area.print(question),
            None => {
                let _ = io::stderr().lock().write_all(question.as_bytes());
            }
        }
    }

    fn finished(&mut self, session_id: &str) {
        self.status(None);
        self.err(&self.style(
            DIM,
            &format!("session {session_id} · continue it with: tiller resume {session_id}"),
        ));
    }

    fn event(&mut self, event: &Event) -> io::Result<()> {
        match &event.msg {
            EventMsg::TurnStarted { .. } => self.status(Some("thinking")),
            EventMsg::AgentMessageDelta { delta, .. } => {
                if self.stdout_tty {
                    if !self.in_message
                        && let Some(area) = &self.area
                    {
                        area.hide();
                    }
                    let delta = for_terminal(delta);
                    self.out(&delta)?;
                    self.partial.push_str(&delta);
                    self.in_message = true;
                }
            }
            EventMsg::ItemCompleted { item } => self.item_completed(item)?,
            EventMsg::ItemStarted { item } => {
                if let TurnItemKind::FileChange { changes, .. } = &item.kind {
                    self.edits.insert(item.id.clone(), changes.clone());
                }
                if let TurnItemKind::McpToolCall {
                    server,
                    tool,
                    arguments,
                    ..
                } = &item.kind
                {
                    self.end_message_line()?;
                    // The arguments on one line, cut: the call's result says the rest.
                    let args: String = arguments.0.to_string().chars().take(ARGS_SHOWN).collect();
                    let line = format!("→ {server}.{tool} {args}");
                    self.err(&self.style(DIM, &for_terminal(&line)));
                    self.status(Some(&format!("calling {server}.{tool}")));
                }
                if let TurnItemKind::CommandExecution { command, .. } = &item.kind {
                    self.end_message_line()?;
                    let shown = display_command(command);
                    self.err(&self.style(DIM, &format!("$ {shown}")));
                    self.commands
                        .insert(item.id.clone(), CommandView::default());
                    let short: String = shown.chars().take(40).collect();
                    self.status(Some(&format!("running {short}")));
                }
            }
            EventMsg::McpToolCallProgress { message, .. } => {
                let short: String = message.chars().take(60).collect();
                self.status(Some(&for_terminal(&short)));
            }
            EventMsg::ExecCommandOutputDelta { item_id, chunk, .. } => {
                self.command_output(item_id, chunk);
            }
            EventMsg::StreamRetry {
                attempt,
                max,
                delay_ms,
                reason,
            } => {
                // What streamed of a broken response is not the answer.
                self.erase_partial()?;
                let text = format!(
                    "retrying in {:.1}s (attempt {attempt}/{max}): {reason}",
                    *delay_ms as f64 / 1000.0
                );
                self.err(&self.style(DIM, &text));
                self.status(Some("waiting to retry"));
            }
            EventMsg::BackgroundEvent { message } => {
                self.end_message_line()?;
                self.err(&self.style(DIM, message));
            }
            EventMsg::PlanUpdated { explanation, plan } => {
                self.end_message_line()?;
                for line in plan_lines(explanation.as_deref(), plan) {
                    self.err(&self.style(DIM, &for_terminal(&line)));
                }
            }
            EventMsg::TurnAborted {
                reason,
                unsent_input,
            } => {
                self.end_message_line()?;
                self.status(None);
                let text = match reason {
                    TurnAbortReason::Interrupted => "turn interrupted",
                    TurnAbortReason::Replaced => "turn replaced by a new turn",
                };
                self.err(&self.style(DIM, text));
                for input in unsent_input {
                    self.err(&self.style(DIM, &format!("not sent: {}", input.model_text())));
                }
            }
            EventMsg::TurnFailed { error, .. } => {
                self.end_message_line()?;
                self.status(None);
                self.err(&self.style(RED, &format!("error: {}", error.message)));
            }
            EventMsg::TurnCompleted { .. } => {
                self.end_message_line()?;
                self.status(None);
            }
            EventMsg::ExecApprovalRequest { .. } => self.status(None),
            EventMsg::PatchApprovalRequest {
                item_id, reason, ..
            } => {
                // What is asked about, before the question.
                self.end_message_line()?;
                for change in self.edits.remove(item_id).unwrap_or_default() {
                    self.err(&self.style(DIM, &format!("edit {}", change.path)));
                    self.err(&self.style(DIM, &for_terminal(change.diff.trim_end())));
                }
                self.err(&self.style(DIM, &format!("asked because {reason}")));
                self.status(None);
            }
            EventMsg::SessionConfigured { .. }
            | EventMsg::ReasoningDelta { .. }
            | EventMsg::SteerDelivered { .. }
            // Session-level: `run` shows them.
            | EventMsg::McpServerStatus { .. }
            | EventMsg::ElicitationRequest { .. }
            // Each edit showed its own diff as it was made.
            | EventMsg::TurnDiff { .. }
            | EventMsg::ShutdownComplete => {}
        }
        Ok(())
    }
}
