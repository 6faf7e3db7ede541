//! A stdio MCP server's process: spawned as a tool's is
//! ([`tiller_process::spawn_tool`]: its own process group and cgroup, a
//! marker, registered with the orphan watchdog before the spawn), so that
//! however tiller ends, the server and everything it started end too; killed
//! as a tree when the connection is dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use tiller_process::{Cgroup, Sandbox, SpawnError, ToolMarker, ToolProcess, spawn_tool};
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStdin, ChildStdout, Command};

/// How much of a server's stderr is kept, to say why it failed.
const STDERR_TAIL_BYTES: usize = 2048;

/// What to run.
pub(crate) struct Launch {
    pub(crate) command: String,
    pub(crate) args: Vec<String>,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) cwd: PathBuf,
    /// Variables the server must not see (the provider's secrets).
    pub(crate) hidden_env: Vec<String>,
    /// The sandbox it runs in, if its config asks for one.
    pub(crate) sandbox: Option<Sandbox>,
}

/// A running stdio server. Dropping it kills its whole tree.
pub(crate) struct ServerProcess {
    /// `None` once killed.
    process: Option<ToolProcess>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
}

impl ServerProcess {
    /// Start the server; returns it and its stdout and stdin, for the
    /// transport. The fork and exec run on a blocking thread: ten servers
    /// starting at once do not hold up the engine's workers (and the
    /// session's first model request).
    pub(crate) async fn start(
        launch: Launch,
    ) -> Result<(ServerProcess, ChildStdout, ChildStdin), String> {
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            // The child's pipes and its reaping belong to the async runtime.
            let _entered = runtime.enter();
            ServerProcess::spawn(&launch)
        })
        .await
        .map_err(|e| format!("the server could not be started: {e}"))?
    }

    fn spawn(launch: &Launch) -> Result<(ServerProcess, ChildStdout, ChildStdin), String> {
        let mut command = Command::new(&launch.command);
        for name in &launch.hidden_env {
            command.env_remove(name);
        }
        command
            .args(&launch.args)
            .envs(&launch.env)
            .current_dir(&launch.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let prepared = match &launch.sandbox {
            Some(sandbox) => Some(
                sandbox
                    .prepare()
                    .map_err(|e| format!("the server's sandbox could not be set up: {e}"))?,
            ),
            None => None,
        };
        let confined = prepared.as_ref();
        let mut process = spawn_tool(&mut command, ToolMarker::new(), Cgroup::None, confined)
            .map_err(|e| match e {
                SpawnError::Spawn(e) => format!("cannot start `{}`: {e}", launch.command),
                SpawnError::Track(e) => format!("cannot track `{}`: {e}", launch.command),
            })?;
        let child = &mut process.child;
        let (Some(stdout), Some(stdin), Some(stderr)) =
            (child.stdout.take(), child.stdin.take(), child.stderr.take())
        else {
            tiller_process::kill_tree_now(&process.tree);
            return Err("the server's pipes could not be opened".to_owned());
        };
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(keep_tail(stderr, Arc::clone(&stderr_tail)));
        let process = ServerProcess {
            process: Some(process),
            stderr_tail,
        };
        Ok((process, stdout, stdin))
    }

    /// The last lines the server wrote to stderr, for an error message.
    pub(crate) fn stderr_tail(&self) -> String {
        let tail = self
            .stderr_tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let text = String::from_utf8_lossy(&tail);
        tiller_secrets::redact(text.trim()).into_owned()
    }

    /// Kill the tree and wait until it is gone.
    pub(crate) async fn kill(mut self) {
        if let Some(mut process) = self.process.take() {
            tiller_process::kill_tree(&process.tree, Some(&mut process.child)).await;
            process.release();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            tiller_process::kill_tree_now(&process.tree);
            process.release();
        }
    }
}

/// Reads the server's stderr to its end, keeping the last [`STDERR_TAIL_BYTES`].
async fn keep_tail(mut stderr: tokio::process::ChildStderr, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 1024];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
                tail.extend_from_slice(&buf[..n]);
                let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
                tail.drain(..excess);
            }
        }
    }
}
