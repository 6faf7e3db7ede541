//! The `shell` tool: runs a command the model asked for, streams its output,
//! and makes sure nothing it started outlives the call.
//!
//! The model sends `{"command": ["bash", "-lc", "…"], "workdir": "…",
//! "timeout_ms": N}` (the argv form models trained on Codex know);
//! [`ShellArgs::parse`] checks it and [`ShellArgs::into_request`] resolves it
//! against the session's folder. [`run_shell`] spawns the command in its own
//! process group with a [`ToolMarker`], streams stdout and stderr through a
//! callback, and ends in one of three ways:
//! - the command exits: whatever it left running in the background is killed
//!   ([`kill_tree`]) and the pipes are drained for a bounded time, since an
//!   escaped grandchild may hold them open;
//! - the timeout passes: the tree is killed, [`ExecEndStatus::TimedOut`];
//! - the call is cancelled: the tree is killed, [`ExecEndStatus::Aborted`],
//!   with the output so far and the exit status if the command had already
//!   exited.
//!
//! In every case every process of the tree is dead and reaped before
//! [`run_shell`] returns.

use std::fmt::Write as _;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};
use tiller_protocol::{ExecEndStatus, ExecOutputStream};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{ChildStderr, ChildStdout, Command};
use tokio_util::sync::CancellationToken;

use tiller_process::{
    Cgroup, PreparedSandbox, ProcessTree, SpawnError, ToolMarker, kill_tree, spawn_tool,
};

/// The name the model calls the tool by.
pub const SHELL_TOOL_NAME: &str = "shell";

/// The timeout of a shell call that names none. Longer than Codex's 10 s: a
/// coding agent's commands are builds and test suites.
pub const DEFAULT_SHELL_TIMEOUT: Duration = Duration::from_secs(120);

/// The longest timeout honoured; longer ones are cut to this.
pub const MAX_SHELL_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Bytes of the start and of the end of the output kept in
/// [`ShellOutcome::aggregated_output`] (what events carry).
pub const EVENT_OUTPUT_HEAD_BYTES: usize = 512 * 1024;
/// See [`EVENT_OUTPUT_HEAD_BYTES`].
pub const EVENT_OUTPUT_TAIL_BYTES: usize = 512 * 1024;

/// Bytes of the start and of the end of the output the model reads.
pub const MODEL_OUTPUT_HEAD_BYTES: usize = 10 * 1024;
/// See [`MODEL_OUTPUT_HEAD_BYTES`].
pub const MODEL_OUTPUT_TAIL_BYTES: usize = 10 * 1024;

/// How long the pipes are drained after the command ended and its tree was
/// killed; only an escaped process still holding a pipe makes it wait.
const DRAIN_WAIT: Duration = Duration::from_millis(150);

/// The same, once the call is cancelled.
const DRAIN_WAIT_CANCELLED: Duration = Duration::from_millis(20);

const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Why the model's arguments for the shell tool cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    /// The arguments are not what the tool expects; the message tells the
    /// model what to send instead.
    #[error("invalid arguments for the shell tool: {0}")]
    InvalidArguments(String),
}

/// The tool definition for the Responses API.
pub fn shell_tool_spec() -> serde_json::Value {
    let description = format!(
        "Runs a command and returns its exit code and output. \
            `command` is an argv array; for shell syntax use [\"bash\", \"-lc\", \"<script>\"]. \
            The output keeps the first and last 10 KiB. A command still running after \
            `timeout_ms` (default {}) is killed. When the call ends (the command exits, \
            times out or is interrupted) every process it started is killed: background \
            jobs too, and processes that left its process group or cleared their \
            environment. Nothing started here outlives the call; to keep a server \
            running, run it and use it within one call.",
        DEFAULT_SHELL_TIMEOUT.as_millis()
    );
    serde_json::json!({
        "type": "function",
        "name": SHELL_TOOL_NAME,
        "description": description,
        "strict": false,
        "parameters": {
            "type": "object",
            "properties": {
                "command": {
                    "type": "array",
                    "items": { "type": "string" },
                    "description": "The program and its arguments, e.g. [\"bash\", \"-lc\", \"ls -la\"]."
                },
                "workdir": {
                    "type": "string",
                    "description": "The folder to run the command in; relative paths are taken from the session's folder, which is the default."
                },
                "timeout_ms": {
                    "type": "number",
                    "description": "How long the command may run, in milliseconds, before it is killed."
                },
                "sandbox_permissions": {
                    "type": "string",
                    "enum": ["use_default", "require_escalated"],
                    "description": "\"require_escalated\" asks the user to run the command outside the sandbox (only when the approval policy is on-request); give `justification`."
                },
                "justification": {
                    "type": "string",
                    "description": "With require_escalated: one sentence telling the user why the command needs to run outside the sandbox."
                }
            },
            "required": ["command"],
            "additionalProperties": false
        }
    })
}

/// The arguments the model passes to the shell tool.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ShellArgs {
    /// The argv. A single string is taken as a bash script:
    /// `["bash", "-lc", script]`.
    #[serde(deserialize_with = "argv_or_script")]
    pub command: Vec<String>,
    /// The folder to run in, relative to the session's folder.
    #[serde(default)]
    pub workdir: Option<String>,
    /// The timeout in milliseconds.
    #[serde(default, deserialize_with = "milliseconds")]
    pub timeout_ms: Option<u64>,
    /// `"require_escalated"`: the model asks to run the command outside the
    /// sandbox (Codex's name); anything else, or nothing, runs it inside.
    #[serde(default)]
    pub sandbox_permissions: Option<String>,
    /// `true`: the same as `sandbox_permissions: "require_escalated"`
    /// (the older name Codex's models also send).
    #[serde(default)]
    pub with_escalated_permissions: Option<bool>,
    /// Why the model needs to run it outside the sandbox, shown to the person.
    #[serde(default)]
    pub justification: Option<String>,
}

impl ShellArgs {
    /// Parses the JSON arguments of a `shell` call.
    pub fn parse(arguments: &str) -> Result<Self, ShellError> {
        let args: Self = serde_json::from_str(arguments).map_err(|err| {
            ShellError::InvalidArguments(format!(
                "{err}; expected a JSON object such as \
                 {{\"command\": [\"bash\", \"-lc\", \"ls\"], \"workdir\": \"src\", \"timeout_ms\": 10000}}"
            ))
        })?;
        match args.command.first() {
            None => Err(ShellError::InvalidArguments(
                "`command` is empty; give the program and its arguments, e.g. [\"bash\", \"-lc\", \"ls\"]"
                    .to_owned(),
            )),
            Some(program) if program.is_empty() => Err(ShellError::InvalidArguments(
                "the program name, `command[0]`, is empty".to_owned(),
            )),
            Some(_) => Ok(args),
        }
    }

    /// Whether the model asks to run the command outside the sandbox.
    pub fn wants_escalation(&self) -> bool {
        self.with_escalated_permissions == Some(true)
            || self.sandbox_permissions.as_deref() == Some("require_escalated")
    }

    /// The request to run: `workdir` taken relative to `cwd` (the session's
    /// folder), `default_timeout` when the model gave none.
    pub fn into_request(self, cwd: &Path, default_timeout: Duration) -> ShellRequest {
        let cwd = match self.workdir.as_deref() {
            Some(workdir) if !workdir.is_empty() => cwd.join(workdir),
            _ => cwd.to_path_buf(),
        };
        let timeout = self
            .timeout_ms
            .map_or(default_timeout, Duration::from_millis);
        ShellRequest {
            command: self.command,
            cwd,
            timeout,
            hidden_env: Vec::new(),
            sandbox: None,
        }
    }
}

/// `command`: an array of strings, or one string run by `bash -lc`.
fn argv_or_script<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    use serde::de::Error;

    let expected = "`command` must be an array of strings, e.g. [\"bash\", \"-lc\", \"ls\"]";
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(script) if script.trim().is_empty() => {
            Err(D::Error::custom("`command` is an empty string"))
        }
        serde_json::Value::String(script) => Ok(vec!["bash".to_owned(), "-lc".to_owned(), script]),
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(arg) => Ok(arg),
                _ => Err(D::Error::custom(expected)),
            })
            .collect(),
        _ => Err(D::Error::custom(expected)),
    }
}

/// `timeout_ms`: a non-negative number (fractions are rounded), or null.
fn milliseconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;

    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    if let Some(ms) = value.as_u64() {
        return Ok(Some(ms));
    }
    match value.as_f64() {
        // `as` saturates for values past u64::MAX, which is what we want.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(ms) if ms.is_finite() && ms >= 0.0 => Ok(Some(ms.round() as u64)),
        _ => Err(D::Error::custom(
            "`timeout_ms` must be a non-negative number of milliseconds",
        )),
    }
}

/// A command to run.
#[derive(Debug, Clone)]
pub struct ShellRequest {
    /// The argv; `command[0]` is looked up in `PATH`.
    pub command: Vec<String>,
    /// The folder to run in.
    pub cwd: PathBuf,
    /// How long the command may run before it is killed.
    pub timeout: Duration,
    /// Environment variables the command must not see (the provider's API key).
    pub hidden_env: Vec<String>,
    /// The sandbox it runs in; `None`: unconfined.
    pub sandbox: Option<Arc<PreparedSandbox>>,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellOutcome {
    /// The exit code; `None` if it was killed by a signal or never started.
    pub exit_code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// Wall time from spawn to return.
    pub duration: Duration,
    /// Stdout and stderr interleaved in arrival order, lossily decoded, the
    /// first [`EVENT_OUTPUT_HEAD_BYTES`] and last [`EVENT_OUTPUT_TAIL_BYTES`]
    /// kept, with a line saying how much was left out between them.
    pub aggregated_output: String,
    /// How many bytes of output there were in all, before capping.
    pub output_bytes: usize,
    /// `Completed` (exit 0), `Failed` (another exit, a signal, or it could not
    /// start), `TimedOut` or `Aborted`.
    pub status: ExecEndStatus,
    /// tiller killed the command while it was still running (timeout or
    /// abort); false if it had exited on its own.
    pub killed: bool,
    /// Why the command could not be started, if it could not.
    pub start_error: Option<String>,
}

impl ShellOutcome {
    /// A command that could not be started.
    fn not_started(error: String, started: Instant) -> Self {
        Self {
            exit_code: None,
            signal: None,
            duration: started.elapsed(),
            output_bytes: error.len(),
            aggregated_output: error.clone(),
            status: ExecEndStatus::Failed,
            killed: false,
            start_error: Some(error),
        }
    }

    /// What the model reads: how the command ended, its wall time and its
    /// output, capped to the first [`MODEL_OUTPUT_HEAD_BYTES`] and the last
    /// [`MODEL_OUTPUT_TAIL_BYTES`].
    pub fn model_output(&self) -> String {
        if let Some(error) = &self.start_error {
            return format!("The command did not start: {error}");
        }

        let seconds = self.duration.as_secs_f64();
        let exit = self.exit_description();
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = match self.status {
            ExecEndStatus::Completed | ExecEndStatus::Failed => write!(
                text,
                "Exit code: {exit}\nWall time: {seconds:.1} seconds\nOutput:\n"
            ),
            ExecEndStatus::TimedOut => write!(
                text,
                "Timed out: the command was still running after {seconds:.1} seconds and was \
                 killed, with every process it started.\nOutput before the timeout:\n"
            ),
            ExecEndStatus::Aborted if self.killed => write!(
                text,
                "Aborted by the user after {seconds:.1} seconds: the command was still running \
                 and was killed, with every process it started.\nOutput before the abort:\n"
            ),
            ExecEndStatus::Aborted if self.exit_code.is_none() && self.signal.is_none() => {
                return "Aborted by the user before the command started.".to_owned();
            }
            ExecEndStatus::Aborted => write!(
                text,
                "Aborted by the user after {seconds:.1} seconds; the command had already \
                 exited (exit code: {exit}).\nOutput:\n"
            ),
            ExecEndStatus::Denied => {
                return "The user did not allow this command; it was not run.".to_owned();
            }
        };
        text.push_str(&head_and_tail(
            &self.aggregated_output,
            self.output_bytes,
            MODEL_OUTPUT_HEAD_BYTES,
            MODEL_OUTPUT_TAIL_BYTES,
        ));
        text
    }

    fn exit_description(&self) -> String {
        match (self.exit_code, self.signal) {
            (Some(code), _) => code.to_string(),
            (None, Some(signal)) => match nix::sys::signal::Signal::try_from(signal) {
                Ok(name) => format!("none (killed by signal {signal}, {})", name.as_str()),
                Err(_) => format!("none (killed by signal {signal})"),
            },
            (None, None) => "unknown".to_owned(),
        }
    }
}

/// Runs `req`, streaming its output through `on_output`, until it exits,
/// times out or `cancel` fires. Every process it started is dead and reaped
/// when this returns. Never panics on a command that cannot start: that is a
/// `Failed` outcome saying why.
pub async fn run_shell(
    req: ShellRequest,
    cancel: CancellationToken,
    on_output: &(dyn Fn(ExecOutputStream, &str) + Send + Sync),
) -> ShellOutcome {
    let started = Instant::now();
    let Some((program, args)) = req.command.split_first() else {
        return ShellOutcome::not_started("the command is empty".to_owned(), started);
    };
    if cancel.is_cancelled() {
        // Nothing may start once the turn is being aborted (invariant I3).
        return ShellOutcome {
            status: ExecEndStatus::Aborted,
            start_error: None,
            ..ShellOutcome::not_started(String::new(), started)
        };
    }

    let mut command = Command::new(program);
    for name in &req.hidden_env {
        command.env_remove(name);
    }
    command
        .args(args)
        .current_dir(&req.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let sandbox = req.sandbox.as_deref();
    let mut process = match spawn_tool(&mut command, ToolMarker::new(), Cgroup::Own, sandbox) {
        Ok(process) => process,
        Err(SpawnError::Spawn(err)) => {
            // As a shell reports it: 127 for a command that is not there, 126
            // for one that cannot be run.
            let code = if err.kind() == io::ErrorKind::NotFound && req.cwd.is_dir() {
                127
            } else {
                126
            };
            return ShellOutcome {
                exit_code: Some(code),
                ..ShellOutcome::not_started(describe_spawn_error(program, &req.cwd, &err), started)
            };
        }
        Err(SpawnError::Track(err)) => {
            return ShellOutcome::not_started(
                format!("could not track `{program}`: {err}"),
                started,
            );
        }
    };
    let tree = &process.tree;
    let child = &mut process.child;
    // If this future is dropped half way, at least SIGKILL the tree.
    let mut kill_guard = KillTreeOnDrop { tree, armed: true };
    let mut pump = OutputPump::new(child.stdout.take(), child.stderr.take());

    let timeout = tokio::time::sleep(req.timeout.min(MAX_SHELL_TIMEOUT));
    tokio::pin!(timeout);
    let stop = loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break Stop::Aborted,
            () = &mut timeout => break Stop::TimedOut,
            status = child.wait() => break Stop::Exited(status.ok()),
            () = pump.pump_once(on_output), if pump.is_open() => {}
        }
    };

    let (exit, killed) = match stop {
        Stop::Exited(status) => {
            // Background processes must not outlive the call.
            kill_tree(tree, None).await;
            (status, false)
        }
        Stop::TimedOut | Stop::Aborted => {
            let exited = child.try_wait().ok().flatten();
            let report = kill_tree(tree, Some(child)).await;
            (exited.or(report.leader_status), exited.is_none())
        }
    };
    kill_guard.armed = false;
    drop(kill_guard);
    process.release();
    pump.drain(on_output, DRAIN_WAIT, &cancel).await;

    let status = match stop {
        Stop::Aborted => ExecEndStatus::Aborted,
        Stop::TimedOut => ExecEndStatus::TimedOut,
        Stop::Exited(_) if cancel.is_cancelled() => ExecEndStatus::Aborted,
        Stop::Exited(_) if exit.is_some_and(|status| status.success()) => ExecEndStatus::Completed,
        Stop::Exited(_) => ExecEndStatus::Failed,
    };
    let (aggregated_output, output_bytes) = pump.finish();
    ShellOutcome {
        exit_code: exit.and_then(|status| status.code()),
        signal: exit.and_then(|status| status.signal()),
        duration: started.elapsed(),
        aggregated_output,
        output_bytes,
        status,
        killed,
        start_error: None,
    }
}

/// Why the select loop of [`run_shell`] stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// The direct child exited (`None`: waiting for it failed).
    Exited(Option<ExitStatus>),
    TimedOut,
    Aborted,
}

/// Sends `SIGKILL` to the tree if [`run_shell`] is dropped before it killed
/// the tree itself.
struct KillTreeOnDrop<'a> {
    tree: &'a ProcessTree,
    armed: bool,
}

impl Drop for KillTreeOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            tiller_process::kill_tree_now(self.tree);
        }
    }
}

fn describe_spawn_error(program: &str, cwd: &Path, err: &io::Error) -> String {
    if !cwd.is_dir() {
        return format!(
            "the working directory {} does not exist or is not a folder",
            cwd.display()
        );
    }
    match err.kind() {
        io::ErrorKind::NotFound => format!("`{program}` was not found ({err})"),
        io::ErrorKind::PermissionDenied => format!(
            "`{program}` cannot be executed, or {} cannot be entered ({err})",
            cwd.display()
        ),
        _ => format!("could not start `{program}`: {err}"),
    }
}

/// Reads stdout and stderr, decodes them, hands chunks to the callback and
/// keeps the capped aggregate.
struct OutputPump {
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    stdout_buf: Vec<u8>,
    stderr_buf: Vec<u8>,
    stdout_utf8: Utf8Carry,
    stderr_utf8: Utf8Carry,
    output: HeadTailText,
}

impl OutputPump {
    fn new(stdout: Option<ChildStdout>, stderr: Option<ChildStderr>) -> Self {
        Self {
            stdout,
            stderr,
            stdout_buf: vec![0; READ_BUFFER_BYTES],
            stderr_buf: vec![0; READ_BUFFER_BYTES],
            stdout_utf8: Utf8Carry::default(),
            stderr_utf8: Utf8Carry::default(),
            output: HeadTailText::new(EVENT_OUTPUT_HEAD_BYTES, EVENT_OUTPUT_TAIL_BYTES),
        }
    }

    fn is_open(&self) -> bool {
        self.stdout.is_some() || self.stderr.is_some()
    }

    /// Reads one chunk from whichever pipe has one. Cancel-safe: nothing is
    /// lost if the future is dropped before it completes. Never completes
    /// when both pipes are closed.
    async fn pump_once(&mut self, on_output: &(dyn Fn(ExecOutputStream, &str) + Send + Sync)) {
        let (stream, result) = tokio::select! {
            read = read_some(self.stdout.as_mut(), &mut self.stdout_buf) => (ExecOutputStream::Stdout, read),
            read = read_some(self.stderr.as_mut(), &mut self.stderr_buf) => (ExecOutputStream::Stderr, read),
        };
        match result {
            Ok(0) => self.close(stream, on_output),
            Ok(n) => {
                let text = match stream {
                    ExecOutputStream::Stdout => self.stdout_utf8.decode(&self.stdout_buf[..n]),
                    ExecOutputStream::Stderr => self.stderr_utf8.decode(&self.stderr_buf[..n]),
                };
                self.emit(stream, &text, on_output);
            }
            Err(err) => {
                tracing::debug!(?stream, %err, "reading a command's output failed");
                self.close(stream, on_output);
            }
        }
    }

    /// Reads what is left, for at most `wait` (much less once `cancel` has
    /// fired), then closes both pipes.
    async fn drain(
        &mut self,
        on_output: &(dyn Fn(ExecOutputStream, &str) + Send + Sync),
        wait: Duration,
        cancel: &CancellationToken,
    ) {
        let now = tokio::time::Instant::now();
        let mut shortened = cancel.is_cancelled();
        let deadline = tokio::time::sleep_until(
            now + if shortened {
                DRAIN_WAIT_CANCELLED
            } else {
                wait
            },
        );
        tokio::pin!(deadline);
        while self.is_open() {
            tokio::select! {
                biased;
                () = self.pump_once(on_output) => {}
                () = cancel.cancelled(), if !shortened => {
                    shortened = true;
                    let sooner = tokio::time::Instant::now() + DRAIN_WAIT_CANCELLED;
                    if sooner < deadline.deadline() {
                        deadline.as_mut().reset(sooner);
                    }
                }
                () = &mut deadline => break,
            }
        }
        self.close(ExecOutputStream::Stdout, on_output);
        self.close(ExecOutputStream::Stderr, on_output);
    }

    /// Closes one pipe, emitting the bytes of an unfinished character.
    fn close(
        &mut self,
        stream: ExecOutputStream,
        on_output: &(dyn Fn(ExecOutputStream, &str) + Send + Sync),
    ) {
        let rest = match stream {
            ExecOutputStream::Stdout => {
                self.stdout = None;
                self.stdout_utf8.finish()
            }
            ExecOutputStream::Stderr => {
                self.stderr = None;
                self.stderr_utf8.finish()
            }
        };
        self.emit(stream, &rest, on_output);
    }

    fn emit(
        &mut self,
        stream: ExecOutputStream,
        text: &str,
        on_output: &(dyn Fn(ExecOutputStream, &str) + Send + Sync),
    ) {
        if !text.is_empty() {
            // A command that prints a registered key (a dotfile, a debug
            // dump) must not hand it to the model, the screen or the file.
            let text = tiller_secrets::redact(text);
            self.output.push(&text);
            on_output(stream, &text);
        }
    }

    /// The capped aggregate and the total number of bytes. Redacted whole as
    /// well: a key split across two reads is whole here.
    fn finish(self) -> (String, usize) {
        let total = self.output.total;
        (
            tiller_secrets::redact_owned(self.output.into_string()),
            total,
        )
    }
}

async fn read_some<R: AsyncRead + Unpin>(
    reader: Option<&mut R>,
    buf: &mut [u8],
) -> io::Result<usize> {
    match reader {
        Some(reader) => reader.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Holds back the bytes of a UTF-8 character split across two reads, so a
/// chunk never ends in half a character.
#[derive(Debug, Default)]
struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    fn decode(&mut self, bytes: &[u8]) -> String {
        let mut data = std::mem::take(&mut self.pending);
        data.extend_from_slice(bytes);
        let complete = complete_prefix_len(&data);
        let text = String::from_utf8_lossy(&data[..complete]).into_owned();
        data.drain(..complete);
        self.pending = data;
        text
    }

    fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

/// The length of `bytes` without an unfinished UTF-8 character at its end.
fn complete_prefix_len(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(4) {
        let byte = bytes[len - back];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for the lead
        }
        let needed = match byte {
            0x00..=0x7F => 1,
            _ if byte & 0xE0 == 0xC0 => 2,
            _ if byte & 0xF0 == 0xE0 => 3,
            _ if byte & 0xF8 == 0xF0 => 4,
            _ => 1, // invalid: decoded as U+FFFD now
        };
        return if needed > back { len - back } else { len };
    }
    len
}

/// Text capped to its first `head_cap` and last `tail_cap` bytes.
#[derive(Debug)]
struct HeadTailText {
    head: String,
    tail: String,
    head_cap: usize,
    tail_cap: usize,
    total: usize,
}

impl HeadTailText {
    fn new(head_cap: usize, tail_cap: usize) -> Self {
        Self {
            head: String::new(),
            tail: String::new(),
            head_cap,
            tail_cap,
            total: 0,
        }
    }

    fn push(&mut self, mut text: &str) {
        self.total += text.len();
        if self.tail.is_empty() && self.head.len() < self.head_cap {
            let take = floor_char_boundary(text, self.head_cap - self.head.len());
            self.head.push_str(&text[..take]);
            text = &text[take..];
        }
        self.tail.push_str(text);
        // Trim in batches so that many small chunks stay cheap.
        if self.tail.len() > 2 * self.tail_cap.max(1024) {
            let cut = ceil_char_boundary(&self.tail, self.tail.len() - self.tail_cap);
            self.tail.drain(..cut);
        }
    }

    fn into_string(mut self) -> String {
        let cut = ceil_char_boundary(&self.tail, self.tail.len().saturating_sub(self.tail_cap));
        let tail = &self.tail[cut..];
        let omitted = self.total - self.head.len() - tail.len();
        if omitted > 0 {
            self.head.push_str(&omission_line(omitted));
        }
        self.head.push_str(tail);
        self.head
    }
}

/// `text` (which stands for `total` bytes of output) capped to its first
/// `head` and last `tail` bytes.
fn head_and_tail(text: &str, total: usize, head: usize, tail: usize) -> String {
    if text.len() <= head + tail {
        return text.to_owned();
    }

    let head = &text[..floor_char_boundary(text, head)];
    let tail = &text[ceil_char_boundary(text, text.len() - tail)..];
    let omitted = total.max(text.len()) - head.len() - tail.len();
    format!("{head}{}{tail}", omission_line(omitted))
}

fn omission_line(omitted: usize) -> String {
    format!("\n[... {omitted} bytes of output omitted ...]\n")
}

/// The largest char boundary of `text` at or below `index`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// The smallest char boundary of `text` at or above `index`.
fn ceil_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index += 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Mutex;

    use super::*;
    use tiller_process::become_subreaper;
    use tiller_test_support::read_pids;

    fn bash(script: &str) -> ShellRequest {
        ShellRequest {
            hidden_env: Vec::new(),
            command: vec!["bash".to_owned(), "-c".to_owned(), script.to_owned()],
            cwd: std::env::temp_dir(),
            timeout: Duration::from_secs(30),
            sandbox: None,
        }
    }

    fn ignore_output(_: ExecOutputStream, _: &str) {}

    async fn run(req: ShellRequest) -> ShellOutcome {
        run_shell(req, CancellationToken::new(), &ignore_output).await
    }

    /// Shell snippet that writes `pids` to `path` atomically.
    fn write_pids(path: &Path, pids: &str) -> String {
        let path = path.display();
        format!("echo {pids} > {path}.tmp && mv {path}.tmp {path}")
    }

    fn is_gone(pid: i32) -> bool {
        !Path::new(&format!("/proc/{pid}")).exists()
    }

    /// Runs `script`, cancels it once it has written its pid file, and
    /// returns the outcome, the pids and the time from cancel to return.
    async fn run_and_cancel(script: &str, pidfile: &Path) -> (ShellOutcome, Vec<i32>, Duration) {
        let cancel = CancellationToken::new();
        let run = run_shell(bash(script), cancel.clone(), &ignore_output);
        let canceller = async {
            let pids = read_pids(pidfile).await;
            cancel.cancel();
            (pids, Instant::now())
        };
        let (outcome, (pids, cancelled_at)) = tokio::join!(run, canceller);
        (outcome, pids, cancelled_at.elapsed())
    }

    #[tokio::test]
    async fn exit_code_and_output_are_reported() {
        let outcome = run(bash("echo hello; echo oops >&2; exit 3")).await;

        assert_eq!(outcome.exit_code, Some(3));
        assert_eq!(outcome.signal, None);
        assert_eq!(outcome.status, ExecEndStatus::Failed);
        assert!(outcome.aggregated_output.contains("hello\n"));
        assert!(outcome.aggregated_output.contains("oops\n"));
        let model = outcome.model_output();
        assert!(model.starts_with("Exit code: 3\nWall time: "), "{model}");
        assert!(
            model.contains("Output:\nhello\n") || model.contains("Output:\noops\n"),
            "{model}"
        );
    }

    #[tokio::test]
    async fn successful_command_is_completed() {
        let outcome = run(bash("printf 'a\\nb\\n'")).await;

        assert_eq!(outcome.exit_code, Some(0));
        assert_eq!(outcome.status, ExecEndStatus::Completed);
        assert_eq!(outcome.aggregated_output, "a\nb\n");
        assert_eq!(outcome.output_bytes, 4);
        assert!(!outcome.killed);
    }

    #[tokio::test]
    async fn command_killed_by_a_signal_has_no_exit_code() {
        let outcome = run(bash("kill -KILL $$")).await;

        assert_eq!(outcome.exit_code, None);
        assert_eq!(outcome.signal, Some(9));
        assert_eq!(outcome.status, ExecEndStatus::Failed);
        assert!(
            outcome
                .model_output()
                .contains("killed by signal 9, SIGKILL")
        );
    }

    #[tokio::test]
    async fn output_is_streamed_through_on_output_as_it_comes() {
        let chunks = Mutex::new(Vec::new());
        let on_output = |stream: ExecOutputStream, text: &str| {
            chunks.lock().expect("lock").push((stream, text.to_owned()));
        };
        let cancel = CancellationToken::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = dir.path().join("gate");
        // The command waits for the test to have seen its first line: the
        // line was delivered while the command was still running.
        let script = format!(
            "echo first; while [ ! -e {gate} ]; do sleep 0.01; done; echo second >&2",
            gate = gate.display()
        );
        let run = run_shell(bash(&script), cancel.clone(), &on_output);
        let watcher = async {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !chunks
                .lock()
                .expect("lock")
                .iter()
                .any(|(_, text)| text.contains("first"))
            {
                assert!(Instant::now() < deadline, "first line never streamed");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            fs::write(&gate, "").expect("gate");
        };
        let (outcome, ()) = tokio::join!(run, watcher);

        assert_eq!(outcome.status, ExecEndStatus::Completed);
        let chunks = chunks.into_inner().expect("lock");
        let stdout: String = chunks
            .iter()
            .filter(|(stream, _)| *stream == ExecOutputStream::Stdout)
            .map(|(_, text)| text.as_str())
            .collect();
        let stderr: String = chunks
            .iter()
            .filter(|(stream, _)| *stream == ExecOutputStream::Stderr)
            .map(|(_, text)| text.as_str())
            .collect();
        assert_eq!(stdout, "first\n");
        assert_eq!(stderr, "second\n");
        assert_eq!(outcome.aggregated_output, "first\nsecond\n");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_tree() {
        become_subreaper().expect("subreaper");
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pids");
        let script = format!(
            "echo started; sleep 60 & {}; sleep 60",
            write_pids(&pidfile, "$$ $!")
        );
        let mut req = bash(&script);
        req.timeout = Duration::from_millis(300);

        let outcome = run(req).await;

        assert_eq!(outcome.status, ExecEndStatus::TimedOut);
        assert!(outcome.killed);
        assert_eq!(outcome.aggregated_output, "started\n");
        assert!(outcome.model_output().starts_with("Timed out"));
        for pid in read_pids(&pidfile).await {
            assert!(is_gone(pid), "{pid} survived the timeout");
        }
    }

    #[tokio::test]
    async fn cancel_during_sleep_returns_aborted_quickly_and_the_process_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pids");
        let script = format!(
            "echo partial; {}; exec sleep 60",
            write_pids(&pidfile, "$$")
        );

        let (outcome, pids, cancel_to_return) = run_and_cancel(&script, &pidfile).await;

        assert_eq!(outcome.status, ExecEndStatus::Aborted);
        assert!(outcome.killed);
        assert_eq!(outcome.exit_code, None);
        assert_eq!(outcome.signal, Some(15));
        assert_eq!(outcome.aggregated_output, "partial\n");
        assert!(
            cancel_to_return < Duration::from_secs(1),
            "took {cancel_to_return:?}"
        );
        assert!(is_gone(pids[0]));
        let model = outcome.model_output();
        assert!(model.starts_with("Aborted by the user after"), "{model}");
        assert!(
            model.ends_with("Output before the abort:\npartial\n"),
            "{model}"
        );
    }

    #[tokio::test]
    async fn cancel_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pids");
        let script = format!(
            "sleep 60 & a=$!; sleep 60 & b=$!; {}; wait",
            write_pids(&pidfile, "$$ $a $b")
        );

        let (outcome, pids, _) = run_and_cancel(&script, &pidfile).await;

        assert_eq!(outcome.status, ExecEndStatus::Aborted);
        for pid in pids {
            assert!(is_gone(pid), "{pid} survived the cancel");
        }
    }

    #[tokio::test]
    /// `kill_tree`'s last pass reaps adopted zombies; this pins that for one that
    /// left the group, whose marker is gone with its environment.
    async fn a_setsid_grandchild_that_exited_on_its_own_is_reaped_when_the_call_ends() {
        become_subreaper().expect("subreaper");
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        // The grandchild leaves the group, writes its pid and exits; its parent
        // has become `sleep`, which never reaps it, so when `sleep` exits the
        // zombie is re-parented to tiller, outside the tool's group.
        let script = format!(
            "setsid sh -c 'echo $$ > {p}.tmp; mv {p}.tmp {p}' & exec sleep 0.3",
            p = pidfile.display()
        );

        let outcome = run_shell(bash(&script), CancellationToken::new(), &ignore_output).await;

        assert_eq!(outcome.status, ExecEndStatus::Completed);
        let pid = read_pids(&pidfile).await[0];
        assert!(is_gone(pid), "{pid} is left as a zombie");
    }

    #[tokio::test]
    async fn grandchild_that_called_setsid_is_killed() {
        become_subreaper().expect("subreaper");
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pids");
        let script = format!("setsid sleep 60 & {}; sleep 60", write_pids(&pidfile, "$!"));

        let (outcome, pids, _) = run_and_cancel(&script, &pidfile).await;

        assert_eq!(outcome.status, ExecEndStatus::Aborted);
        assert!(is_gone(pids[0]), "the setsid grandchild survived");
    }

    #[tokio::test]
    async fn background_process_of_a_completed_command_is_killed_without_hanging_on_its_pipe() {
        become_subreaper().expect("subreaper");
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pids");
        // One background job in the group, one that left it; both hold stdout.
        let script = format!(
            "sleep 60 & a=$!; setsid sleep 60 & b=$!; {}; echo done",
            write_pids(&pidfile, "$a $b")
        );
        let started = Instant::now();

        let outcome = run(bash(&script)).await;

        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(outcome.status, ExecEndStatus::Completed);
        assert_eq!(outcome.aggregated_output, "done\n");
        for pid in read_pids(&pidfile).await {
            assert!(is_gone(pid), "background process {pid} outlived the call");
        }
    }

    #[tokio::test]
    async fn huge_output_is_capped_head_and_tail() {
        let script = "printf START; head -c 3000000 /dev/zero | tr '\\0' x; printf END";

        let outcome = run(bash(script)).await;

        assert_eq!(outcome.status, ExecEndStatus::Completed);
        assert_eq!(outcome.output_bytes, 3_000_008);
        let events = &outcome.aggregated_output;
        assert!(events.starts_with("START"));
        assert!(events.ends_with("END"));
        assert!(events.len() < EVENT_OUTPUT_HEAD_BYTES + EVENT_OUTPUT_TAIL_BYTES + 100);
        let omitted = 3_000_008 - EVENT_OUTPUT_HEAD_BYTES - EVENT_OUTPUT_TAIL_BYTES;
        assert!(events.contains(&format!("[... {omitted} bytes of output omitted ...]")));

        let model = outcome.model_output();
        assert!(model.len() < MODEL_OUTPUT_HEAD_BYTES + MODEL_OUTPUT_TAIL_BYTES + 200);
        assert!(model.contains("Output:\nSTARTxxx"));
        assert!(model.ends_with("xxxEND"));
        let omitted = 3_000_008 - MODEL_OUTPUT_HEAD_BYTES - MODEL_OUTPUT_TAIL_BYTES;
        assert!(model.contains(&format!("[... {omitted} bytes of output omitted ...]")));
    }

    #[tokio::test]
    async fn nothing_starts_once_the_call_is_cancelled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("ran");
        let cancel = CancellationToken::new();
        cancel.cancel();

        let script = format!("touch {}", marker.display());
        let outcome = run_shell(bash(&script), cancel, &ignore_output).await;

        assert_eq!(outcome.status, ExecEndStatus::Aborted);
        assert!(!marker.exists());
        assert_eq!(
            outcome.model_output(),
            "Aborted by the user before the command started."
        );
    }

    #[tokio::test]
    async fn missing_program_is_a_failed_outcome_that_says_why() {
        let mut req = bash("");
        req.command = vec!["/nonexistent/tiller-test-program".to_owned()];

        let outcome = run(req).await;

        assert_eq!(outcome.status, ExecEndStatus::Failed);
        // What a shell reports for a command that is not there, and no signal.
        assert_eq!(outcome.exit_code, Some(127));
        assert_eq!(outcome.signal, None);
        assert!(
            outcome.aggregated_output.contains("was not found"),
            "{outcome:?}"
        );
        assert!(
            outcome
                .model_output()
                .starts_with("The command did not start: ")
        );
    }

    #[tokio::test]
    async fn missing_working_directory_is_a_failed_outcome_that_says_why() {
        let mut req = bash("true");
        req.cwd = PathBuf::from("/nonexistent/tiller-test-folder");

        let outcome = run(req).await;

        assert_eq!(outcome.status, ExecEndStatus::Failed);
        assert!(
            outcome.aggregated_output.contains("working directory"),
            "{outcome:?}"
        );
    }

    #[test]
    fn arguments_in_argv_form_are_parsed() {
        let args = ShellArgs::parse(
            r#"{"command":["bash","-lc","ls"],"workdir":"src","timeout_ms":1500}"#,
        )
        .expect("valid");
        assert_eq!(args.command, ["bash", "-lc", "ls"]);

        let req = args.into_request(Path::new("/repo"), DEFAULT_SHELL_TIMEOUT);
        assert_eq!(req.cwd, Path::new("/repo/src"));
        assert_eq!(req.timeout, Duration::from_millis(1500));
    }

    #[test]
    fn command_given_as_a_string_runs_under_bash() {
        let args = ShellArgs::parse(r#"{"command":"ls | wc -l","timeout_ms":2.6}"#).expect("valid");
        assert_eq!(args.command, ["bash", "-lc", "ls | wc -l"]);
        assert_eq!(args.timeout_ms, Some(3));
        let req = args.into_request(Path::new("/repo"), DEFAULT_SHELL_TIMEOUT);
        assert_eq!(req.cwd, Path::new("/repo"));
    }

    #[test]
    fn empty_or_missing_command_is_rejected_with_a_readable_message() {
        for (arguments, expected) in [
            (r#"{"command":[]}"#, "`command` is empty"),
            (r#"{"command":[""]}"#, "`command[0]`, is empty"),
            (r#"{"command":"  "}"#, "empty string"),
            (r#"{"command":[1,2]}"#, "array of strings"),
            (r#"{"workdir":"src"}"#, "missing field `command`"),
            (
                r#"{"command":["ls"],"timeout_ms":-5}"#,
                "non-negative number",
            ),
            ("not json", "expected a JSON object"),
        ] {
            let err = ShellArgs::parse(arguments)
                .expect_err(arguments)
                .to_string();
            assert!(err.contains(expected), "{arguments}: {err}");
        }
    }

    #[test]
    fn tool_spec_describes_the_argv_schema() {
        let spec = shell_tool_spec();
        assert_eq!(spec["name"], SHELL_TOOL_NAME);
        assert_eq!(spec["type"], "function");
        assert_eq!(spec["strict"], false);
        assert_eq!(
            spec["parameters"]["required"],
            serde_json::json!(["command"])
        );
        assert_eq!(
            spec["parameters"]["properties"]["command"]["items"]["type"],
            "string"
        );
        assert_eq!(
            spec["parameters"]["properties"]["timeout_ms"]["type"],
            "number"
        );
    }

    #[test]
    fn characters_split_across_reads_are_not_broken() {
        let text = "é€😀";
        let bytes = text.as_bytes();
        for split in 0..=bytes.len() {
            let mut carry = Utf8Carry::default();
            let mut out = carry.decode(&bytes[..split]);
            out.push_str(&carry.decode(&bytes[split..]));
            out.push_str(&carry.finish());
            assert_eq!(out, text, "split at {split}");
        }
        let mut carry = Utf8Carry::default();
        assert_eq!(carry.decode(b"a\xff\xe2\x82"), "a\u{fffd}");
        assert_eq!(carry.finish(), "\u{fffd}");
    }

    #[test]
    fn head_and_tail_keep_char_boundaries() {
        let mut text = HeadTailText::new(3, 3);
        text.push("ééééé");
        // 10 bytes: the head keeps "é" (2 bytes, the third would split one),
        // the tail the last "é" that fits in 3 bytes.
        assert_eq!(
            text.into_string(),
            "é\n[... 6 bytes of output omitted ...]\né"
        );
    }
}
