//! A child process spoken to line by line: a server on stdin and stdout.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A spawned child whose stdout is read as lines on a task of its own (so a
/// test waits on `lines` with a deadline) and whose stderr is collected.
pub struct LineChild {
    /// The child, to wait for or kill.
    pub child: Child,
    /// Its pid.
    pub pid: i32,
    /// Its stdin, if the command piped it.
    pub stdin: Option<ChildStdin>,
    /// Its stdout, a line at a time; closed at EOF.
    pub lines: mpsc::UnboundedReceiver<String>,
    /// All of its stderr, once it closes.
    pub stderr: JoinHandle<String>,
}

impl LineChild {
    /// Spawn `command`, whose stdout and stderr must be piped.
    pub fn spawn(command: &mut Command) -> LineChild {
        let mut child = command.spawn().expect("spawn the child");
        let pid = i32::try_from(child.id().expect("a pid")).expect("a pid fits i32");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout piped");
        let mut err = child.stderr.take().expect("stderr piped");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = err.read_to_end(&mut text).await;
            String::from_utf8_lossy(&text).into_owned()
        });
        LineChild {
            child,
            pid,
            stdin,
            lines,
            stderr,
        }
    }
}
