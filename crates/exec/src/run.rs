//! The event loop of `tiller exec`.

use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, Instant};

use tiller_core::config::{
    ApprovalPolicy, ConfigOverrides, ProviderConfig, SandboxMode, default_tiller_home,
    parse_cli_override,
};
use tiller_core::{Resume, SessionBuilder, SessionHandle};
use tiller_protocol::{
    ElicitationAction, EventMsg, McpServerState, Op, ReviewDecision, TurnAbortReason, UserInput,
    UserMessage, display_command, mcp_server_line,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

use crate::args::{ExecCommand, ExecFlags, ResumeArgs};
use crate::human::HumanPrinter;
use crate::jsonl::JsonPrinter;
use crate::printer::Printer;
use crate::{ExecArgs, ExecError};

/// Exit code after a completed turn.
const EXIT_OK: i32 = 0;
/// Exit code after a failed turn.
const EXIT_FAILED: i32 = 1;
/// Exit code after Ctrl+C.
const EXIT_INTERRUPTED: i32 = 130;
/// Exit code after SIGTERM.
const EXIT_TERMINATED: i32 = 143;

/// The longest prompt read from standard input.
const MAX_PROMPT_BYTES: usize = 10 * 1024 * 1024;

/// Exit code when stdout was closed by its reader (128 + SIGPIPE).
const EXIT_BROKEN_PIPE: i32 = 141;

/// How long the turn may take to end after stdout was closed.
const DRAIN_AFTER_PIPE: Duration = Duration::from_secs(5);

/// A second Ctrl+C within this long exits at once.
const DOUBLE_INTERRUPT_WINDOW: Duration = Duration::from_secs(2);

/// What the binary gives `tiller exec` besides its arguments.
#[derive(Debug, Clone, Default)]
pub struct ExecSetup {
    /// The provider to use whatever the config says (the mock model of
    /// `--script`, which the binary starts).
    pub provider_override: Option<ProviderConfig>,
}

/// Run `tiller exec` and return the process exit code.
pub async fn run_exec(args: ExecArgs, setup: ExecSetup) -> Result<i32, ExecError> {
    let ExecArgs {
        flags,
        command,
        prompt,
    } = args;
    match command {
        None => run(flags, setup, None, prompt.as_deref()).await,
        Some(ExecCommand::Resume(resume)) => run_resume(flags, resume, setup).await,
    }
}

/// Run `tiller exec resume` / `tiller resume` and return the process exit code.
pub async fn run_resume(
    flags: ExecFlags,
    resume: ResumeArgs,
    setup: ExecSetup,
) -> Result<i32, ExecError> {
    let resume = resume.normalized();
    let query = match (resume.last, resume.session_id) {
        (true, _) => Resume::Last,
        (false, Some(id)) => Resume::Id(id),
        (false, None) => return Err(ExecError::NoSession),
    };
    run(
        flags,
        setup,
        Some((query, resume.wait)),
        resume.prompt.as_deref(),
    )
    .await
}

async fn run(
    args: ExecFlags,
    setup: ExecSetup,
    resume: Option<(Resume, bool)>,
    prompt: Option<&str>,
) -> Result<i32, ExecError> {
    let prompt = read_prompt(prompt)?;
    let mut printer: Box<dyn Printer> = if args.json {
        Box::new(JsonPrinter::new())
    } else {
        Box::new(HumanPrinter::new())
    };
    if !args.image.is_empty() {
        printer.note("warning: --image is accepted but tiller does not send images yet");
    }
    if args.output_schema.is_some() {
        printer.note("warning: --output-schema is accepted but not used yet");
    }

    let (approval_policy, sandbox_mode) = if args.full_auto {
        (
            Some(ApprovalPolicy::OnFailure),
            Some(SandboxMode::WorkspaceWrite),
        )
    } else if args.dangerously_bypass_approvals_and_sandbox {
        (
            Some(ApprovalPolicy::Never),
            Some(SandboxMode::DangerFullAccess),
        )
    } else {
        (
            args.approval.as_deref().map(str::parse).transpose()?,
            args.sandbox.as_deref().map(str::parse).transpose()?,
        )
    };
    let overrides = ConfigOverrides {
        model: args.model.clone(),
        provider: args.provider.clone(),
        approval_policy,
        sandbox_mode,
        writable_roots: args.add_dir.clone(),
        cwd: args.cd.clone(),
        cli_overrides: args
            .config
            .iter()
            .map(|kv| parse_cli_override(kv))
            .collect::<Result<_, _>>()?,
        provider_override: setup.provider_override,
    };
    let mut builder = SessionBuilder::new(default_tiller_home()?).overrides(overrides);
    if let Some((query, wait)) = resume {
        builder = builder.resume(query).wait_for_lock(wait);
    }
    let opened = builder.spawn().await?;
    for warning in &opened.warnings {
        printer.note(&format!("warning: {warning}"));
    }
    if args.verbose {
        printer.note(&format!(
            "sandbox: {}; approval policy: {}",
            opened.config.sandbox.summary(),
            opened.config.approval_policy
        ));
        if opened.project_docs.is_empty() {
            printer.note("project instructions: no AGENTS.md applies here");
        }
        for file in &opened.project_docs {
            printer.note(&format!("project instructions: {}", file.display()));
        }
    }
    if let Some(cut_off) = &opened.interrupted_turn_id {
        printer.note(&format!(
            "the session's last turn ({cut_off}) was cut off when tiller stopped; it has been closed as interrupted"
        ));
    }
    let approval_policy = opened.config.approval_policy;
    // Session-level events (MCP servers starting, an elicitation) come on
    // the session's stream, not the turn's.
    let mut session_events = opened.events;
    let session = opened.handle;
    let session_id = session.session_id().to_string();
    if let Err(e) = printer.session_started(&session_id) {
        return Ok(reader_gone(&session, None, &e).await);
    }
    let turn = session
        .start_turn(vec![UserMessage::new(vec![UserInput::text(prompt)])], None)
        .await?;
    // Only this turn's events: exec runs one turn.
    let mut events = turn.events;

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut last_interrupt: Option<Instant> = None;
    let mut interrupt_exit = EXIT_INTERRUPTED;
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    // The person's answer to the approval being asked, if one is. The
    // terminal is read on a thread of its own, so Ctrl+C and events are
    // handled while the question waits.
    let mut asking: Option<(String, oneshot::Receiver<ReviewDecision>)> = None;
    let mut eliciting: Option<(String, oneshot::Receiver<Elicited>)> = None;
    let stdout_gone = stdout_closed();
    tokio::pin!(stdout_gone);
    let code = loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = &mut stdout_gone => {
                let gone = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
                return Ok(reader_gone(&session, Some(&mut events), &gone).await);
            }
            _ = sigint.recv() => {
                if last_interrupt.is_some_and(|at| at.elapsed() < DOUBLE_INTERRUPT_WINDOW) {
                    printer.note("interrupted twice: exiting now");
                    tiller_core::process_tree::kill_all_now();
                    return Ok(EXIT_INTERRUPTED);
                }
                if asking.take().is_some() {
                    // Ctrl+C at the question aborts the turn, as anywhere else.
                    printer.note("");
                }
                last_interrupt = Some(Instant::now());
                interrupt_exit = EXIT_INTERRUPTED;
                interrupt(&session);
                continue;
            }
            _ = sigterm.recv() => {
                asking = None;
                interrupt_exit = EXIT_TERMINATED;
                interrupt(&session);
                continue;
            }
            Some(event) = session_events.recv() => {
                if event.turn_id.is_none() {
                    session_event(&mut *printer, &event.msg, interactive, &mut eliciting, &session);
                }
                continue;
            }
            (action, content) = elicited(&mut eliciting) => {
                if let Some((request_id, _)) = eliciting.take() {
                    session.resolve_elicitation(&request_id, action, content);
                }
                continue;
            }
            decision = answer(&mut asking) => {
                if let Some((call_id, _)) = asking.take() {
                    let session = session.clone();
                    tokio::spawn(async move {
                        let _ = session.submit(Op::Approval { call_id, decision }).await;
                    });
                }
                continue;
            }
        };
        let Some(event) = event else {
            printer.note("error: the session ended without finishing the turn");
            return Ok(EXIT_FAILED);
        };
        if let Err(e) = printer.event(&event) {
            return Ok(reader_gone(&session, Some(&mut events), &e).await);
        }
        if let Some((call_id, action, allow)) = question(&event.msg) {
            if interactive {
                printer.ask(&format!(
                    "allow {action}? [y]es / [n]o / [a]lways this session / a[b]ort turn: "
                ));
                asking = Some((call_id, ask_on_terminal()));
            } else {
                printer.note(&format!(
                    "denied: {action} needs approval under approval_policy={approval_policy} and there is no terminal to ask on; {allow}"
                ));
                let session = session.clone();
                tokio::spawn(async move {
                    let _ = session
                        .submit(Op::Approval {
                            call_id,
                            decision: ReviewDecision::Denied,
                        })
                        .await;
                });
            }
        }
        match &event.msg {
            EventMsg::TurnCompleted { .. } => break EXIT_OK,
            EventMsg::TurnFailed { .. } => break EXIT_FAILED,
            EventMsg::TurnAborted { reason, .. } => {
                break match reason {
                    TurnAbortReason::Interrupted => interrupt_exit,
                    TurnAbortReason::Replaced => EXIT_INTERRUPTED,
                };
            }
            _ => {}
        }
    };
    // The session's end: the checkpoint after the turn is in the file.
    let _ = session.submit(Op::Shutdown).await;
    printer.finished(&session_id);
    Ok(code)
}

/// Resolves when stdout is a pipe (or socket) whose reader has gone away, as
/// `head -1` does after its line: a turn that prints nothing for a while (a
/// long command) is stopped then, not at its next write. Never resolves for a
/// terminal or a file.
async fn stdout_closed() {
    use std::os::fd::AsFd;
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    let stdout = std::io::stdout();
    let is_pipe = nix::sys::stat::fstat(stdout.as_fd()).is_ok_and(|stat| {
        let kind = stat.st_mode & nix::libc::S_IFMT;
        kind == nix::libc::S_IFIFO || kind == nix::libc::S_IFSOCK
    });
    // Only watched, never read or written through: its flags stay as they are.
    let watched = is_pipe
        .then(|| stdout.as_fd().try_clone_to_owned().ok())
        .flatten()
        .and_then(|fd| {
            // SAFETY: an `OwnedFd` is a valid, open descriptor that stays the
            // same for as long as the `AsyncFd` owns it.
            #[allow(unsafe_code)]
            unsafe { AsyncFd::register_with_interest(fd, Interest::ERROR) }.ok()
        });
    match watched {
        Some(fd) => {
            let _ = fd.ready(Interest::ERROR).await;
        }
        None => std::future::pending().await,
    }
}

/// An MCP server's answer from the person: the action and the content.
type Elicited = (ElicitationAction, Option<serde_json::Value>);

/// Show a session-level event: an MCP server's start (a line when it is
/// ready or failed), an elicitation (asked on the terminal, or declined
/// when there is none).
fn session_event(
    printer: &mut dyn Printer,
    msg: &EventMsg,
    interactive: bool,
    eliciting: &mut Option<(String, oneshot::Receiver<Elicited>)>,
    session: &SessionHandle,
) {
    match msg {
        EventMsg::McpServerStatus {
            server,
            status,
            error,
            tools,
        } => match status {
            McpServerState::Starting => {}
            McpServerState::Ready => printer.note(&format!(
                "{} ({} tools)",
                mcp_server_line(server, *status, None),
                tools.len()
            )),
            McpServerState::Failed => printer.note(&format!(
                "warning: {}",
                mcp_server_line(server, *status, error.as_deref())
            )),
        },
        EventMsg::ElicitationRequest {
            server,
            request_id,
            message,
            requested_schema,
        } => {
            if interactive && eliciting.is_none() {
                printer.ask(&format!(
                    "{server} asks: {message}\nanswer? [y]es / [n]o / [c]ancel: "
                ));
                *eliciting = Some((
                    request_id.clone(),
                    elicit_on_terminal(requested_schema.clone()),
                ));
            } else {
                printer.note(&format!(
                    "declined: {server} asks \"{message}\" and there is no terminal to answer on"
                ));
                session.resolve_elicitation(request_id, ElicitationAction::Decline, None);
            }
        }
        _ => {}
    }
}

/// The answer to the elicitation being asked; never, when none is.
async fn elicited(eliciting: &mut Option<(String, oneshot::Receiver<Elicited>)>) -> Elicited {
    match eliciting {
        Some((_, rx)) => rx.await.unwrap_or((ElicitationAction::Cancel, None)),
        None => std::future::pending().await,
    }
}

/// Ask on the terminal, on a thread of its own: yes, no or cancel, then, on
/// yes, each field of `schema` in turn (a number, integer or boolean field
/// is read as one; anything else as text).
fn elicit_on_terminal(schema: serde_json::Value) -> oneshot::Receiver<Elicited> {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let read = || {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .ok()
                .filter(|n| *n > 0)
                .map(|_| line.trim().to_owned())
        };
        let action = match read().as_deref() {
            Some("y" | "Y" | "yes") => ElicitationAction::Accept,
            Some("n" | "N" | "no") => ElicitationAction::Decline,
            _ => ElicitationAction::Cancel,
        };
        if action != ElicitationAction::Accept {
            let _ = tx.send((action, None));
            return;
        }
        let mut content = serde_json::Map::new();
        let fields = schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (name, field) in fields {
            let kind = field["type"].as_str().unwrap_or("string").to_owned();
            let _ = write!(std::io::stderr().lock(), "  {name} ({kind}): ");
            let Some(text) = read() else {
                let _ = tx.send((ElicitationAction::Cancel, None));
                return;
            };
            let value = match kind.as_str() {
                "number" | "integer" | "boolean" => {
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
                }
                _ => serde_json::Value::String(text),
            };
            content.insert(name, value);
        }
        let _ = tx.send((action, Some(serde_json::Value::Object(content))));
    });
    rx
}

/// If `msg` asks for an approval: its call, what a person is asked to allow,
/// and how to allow it without being asked.
fn question(msg: &EventMsg) -> Option<(String, String, &'static str)> {
    match msg {
        EventMsg::PatchApprovalRequest { call_id, paths, .. } => Some((
            call_id.clone(),
            format!("edit {}", paths.join(", ")),
            "to allow edits, run with --approval never (or -c approval_policy=never)",
        )),
        EventMsg::ExecApprovalRequest {
            call_id,
            command,
            reason: None,
            ..
        } => Some((
            call_id.clone(),
            format!("`{}`", display_command(command)),
            "to allow commands, run with --approval never (or -c approval_policy=never)",
        )),
        // Asked to run outside the sandbox.
        EventMsg::ExecApprovalRequest {
            call_id,
            command,
            reason: Some(reason),
            ..
        } => Some((
            call_id.clone(),
            format!("`{}` ({reason})", display_command(command)),
            "to run commands without a sandbox, run with --sandbox danger-full-access",
        )),
        _ => None,
    }
}

/// The answer to the question being asked; never, when none is.
async fn answer(
    asking: &mut Option<(String, oneshot::Receiver<ReviewDecision>)>,
) -> ReviewDecision {
    match asking {
        Some((_, rx)) => rx.await.unwrap_or(ReviewDecision::Denied),
        None => std::future::pending().await,
    }
}

/// Whoever read stdout is gone (`tiller exec … | head -1`): stop the turn the
/// way Ctrl+C does, so the session is saved with its turn closed, not cut
/// off, and exit quietly, as a program killed by that SIGPIPE would.
async fn reader_gone(
    session: &SessionHandle,
    events: Option<&mut tiller_core::EventStream>,
    error: &std::io::Error,
) -> i32 {
    if error.kind() != std::io::ErrorKind::BrokenPipe {
        tracing::error!("could not write the output: {error}");
    }
    let _ = session.submit(Op::Interrupt).await;
    if let Some(events) = events {
        while let Ok(Some(event)) = tokio::time::timeout(DRAIN_AFTER_PIPE, events.recv()).await {
            if event.msg.is_terminal() {
                break;
            }
        }
    }
    let _ = session.submit(Op::Shutdown).await;
    EXIT_BROKEN_PIPE
}

/// Submit `Interrupt` without blocking the event loop: the reply comes only once
/// the abort has finished, and the loop must keep printing meanwhile.
fn interrupt(session: &SessionHandle) {
    let session = session.clone();
    tokio::spawn(async move {
        let _ = session.submit(Op::Interrupt).await;
    });
}

fn read_prompt(arg: Option<&str>) -> Result<String, ExecError> {
    let prompt = match arg {
        Some(text) if text != "-" => text.to_string(),
        _ => {
            if arg.is_none() && std::io::stdin().is_terminal() {
                return Err(ExecError::NoPrompt);
            }
            let mut bytes = Vec::new();
            std::io::stdin()
                .take(MAX_PROMPT_BYTES as u64 + 1)
                .read_to_end(&mut bytes)?;
            if bytes.len() > MAX_PROMPT_BYTES {
                return Err(ExecError::Prompt(format!(
                    "the prompt on standard input is longer than {} MiB",
                    MAX_PROMPT_BYTES / (1024 * 1024)
                )));
            }
            String::from_utf8(bytes).map_err(|e| {
                ExecError::Prompt(format!(
                    "the prompt on standard input is not UTF-8 (at byte {})",
                    e.utf8_error().valid_up_to()
                ))
            })?
        }
    };
    if prompt.trim().is_empty() {
        return Err(ExecError::NoPrompt);
    }
    Ok(prompt)
}

/// Read the answer to an approval question from the terminal, on a thread
/// of its own (a read of stdin cannot be cancelled; if the turn ends first,
/// the read is left behind and the process exits without waiting for it).
fn ask_on_terminal() -> oneshot::Receiver<ReviewDecision> {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let answered = std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0);
        let decision = match answered.then(|| line.trim().to_string()).as_deref() {
            Some("y" | "Y" | "yes") => ReviewDecision::Approved,
            Some("a" | "A" | "always") => ReviewDecision::ApprovedForSession,
            Some("b" | "B" | "abort") => ReviewDecision::Abort,
            _ => ReviewDecision::Denied,
        };
        let _ = tx.send(decision);
    });
    rx
}
