//! Output for a person: the answer on stdout, everything else on stderr.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tiller_core::tools::shell::display_command;
use tiller_protocol::{Event, EventMsg, ExecEndStatus, TurnAbortReason};

use crate::run::Printer;

const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// How many lines of a command's output are shown.
const OUTPUT_LINES_SHOWN: usize = 6;

pub(crate) struct HumanPrinter {
    color: bool,
    /// The answer is mid-line on stdout.
    in_message: bool,
    spinner: Option<Spinner>,
}

impl HumanPrinter {
    pub(crate) fn new() -> Self {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        HumanPrinter {
            color,
            in_message: false,
            spinner: None,
        }
    }

    fn style(&self, style: &str, text: &str) -> String {
        if self.color {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    fn end_message_line(&mut self) {
        if self.in_message {
            println!();
            self.in_message = false;
        }
    }

    fn stop_spinner(&mut self) {
        if let Some(spinner) = self.spinner.take() {
            spinner.stop();
        }
    }
}

impl Printer for HumanPrinter {
    fn session_started(&mut self, _session_id: &str) {}

    fn note(&mut self, text: &str) {
        self.stop_spinner();
        self.end_message_line();
        eprintln!("{}", self.style(DIM, text));
    }

    fn event(&mut self, event: &Event) {
        if !matches!(event.msg, EventMsg::TurnStarted) {
            self.stop_spinner();
        }
        match &event.msg {
            EventMsg::TurnStarted => {
                if std::io::stderr().is_terminal() {
                    self.spinner = Some(Spinner::start());
                }
            }
            EventMsg::AgentMessageDelta { delta } => {
                print!("{delta}");
                let _ = std::io::stdout().flush();
                self.in_message = true;
            }
            EventMsg::AgentMessage { text } => {
                if !self.in_message {
                    print!("{text}");
                }
                self.in_message = true;
                self.end_message_line();
            }
            EventMsg::ExecCommandBegin { command, .. } => {
                self.end_message_line();
                eprintln!(
                    "{}",
                    self.style(DIM, &format!("$ {}", display_command(command)))
                );
            }
            EventMsg::ExecCommandEnd {
                exit_code,
                duration_ms,
                aggregated_output,
                status,
                ..
            } => {
                let lines: Vec<&str> = aggregated_output.lines().collect();
                let skipped = lines.len().saturating_sub(OUTPUT_LINES_SHOWN);
                if skipped > 0 {
                    eprintln!("{}", self.style(DIM, &format!("  … {skipped} lines")));
                }
                for line in &lines[skipped..] {
                    eprintln!("{}", self.style(DIM, &format!("  {line}")));
                }
                let secs = *duration_ms as f64 / 1000.0;
                let summary = match (status, exit_code) {
                    (ExecEndStatus::Denied, _) => "  denied".to_string(),
                    (ExecEndStatus::Aborted, _) => format!("  aborted after {secs:.2}s"),
                    (ExecEndStatus::TimedOut, _) => format!("  timed out after {secs:.2}s"),
                    (_, Some(code)) => format!("  exit {code} in {secs:.2}s"),
                    (_, None) => format!("  killed by a signal after {secs:.2}s"),
                };
                let style = if *status == ExecEndStatus::Completed {
                    DIM
                } else {
                    RED
                };
                eprintln!("{}", self.style(style, &summary));
            }
            EventMsg::StreamRetry {
                attempt,
                max,
                delay_ms,
                reason,
            } => {
                self.end_message_line();
                let text = format!(
                    "retrying in {:.1}s (attempt {attempt}/{max}): {reason}",
                    *delay_ms as f64 / 1000.0
                );
                eprintln!("{}", self.style(DIM, &text));
            }
            EventMsg::BackgroundEvent { message } => {
                self.end_message_line();
                eprintln!("{}", self.style(DIM, message));
            }
            EventMsg::TurnAborted {
                reason,
                unsent_input,
            } => {
                self.end_message_line();
                let text = match reason {
                    TurnAbortReason::Interrupted => "turn interrupted",
                    TurnAbortReason::Replaced => "turn replaced by a new turn",
                };
                eprintln!("{}", self.style(DIM, text));
                for input in unsent_input {
                    eprintln!(
                        "{}",
                        self.style(DIM, &format!("not sent: {}", input.as_text()))
                    );
                }
            }
            EventMsg::TurnFailed { error, .. } => {
                self.end_message_line();
                eprintln!("{}", self.style(RED, &format!("error: {}", error.message)));
            }
            EventMsg::TurnCompleted { .. } => self.end_message_line(),
            EventMsg::SessionConfigured { .. }
            | EventMsg::ReasoningDelta { .. }
            | EventMsg::Reasoning { .. }
            | EventMsg::ExecCommandOutputDelta { .. }
            | EventMsg::ExecApprovalRequest { .. }
            | EventMsg::SteerDelivered { .. }
            | EventMsg::ShutdownComplete => {}
        }
    }
}

/// A spinner on stderr while the model has not said anything yet.
struct Spinner {
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    fn start() -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&running);
        let thread = std::thread::spawn(move || {
            const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
            let mut frame = 0;
            while flag.load(Ordering::Acquire) {
                eprint!("\r{DIM}{} thinking{RESET}", FRAMES[frame % FRAMES.len()]);
                frame += 1;
                std::thread::park_timeout(Duration::from_millis(80));
            }
            eprint!("\r\x1b[2K");
        });
        Spinner {
            running,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.running.store(false, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
