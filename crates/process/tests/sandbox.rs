//! Processes spawned through `spawn_tool` under a sandbox: what they may
//! write, the escapes that must fail, the network, and killing their tree.
//!
//! On a kernel without Landlock (or too old an ABI), every test instead pins
//! that preparing a confined policy fails with a message saying why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::process::Stdio;

use tempfile::TempDir;
use tiller_process::{
    Cgroup, PreparedSandbox, Sandbox, SandboxError, ToolMarker, become_subreaper, kill_tree,
    spawn_tool,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// What a sandboxed `bash -c` did.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `sandbox` prepared, or `None` after checking that the kernel's lack is
/// reported clearly (and never ignored).
fn prepare(sandbox: &Sandbox) -> Option<PreparedSandbox> {
    match sandbox.prepare() {
        Ok(prepared) => Some(prepared),
        Err(SandboxError::Unsupported(why)) => {
            assert!(why.contains("danger-full-access"), "unclear: {why}");
            assert_eq!(sandbox.check(), Err(why));
            eprintln!("the sandbox cannot be enforced here; only its refusal is tested");
            None
        }
        Err(err) => panic!("cannot prepare {sandbox:?}: {err}"),
    }
}

fn bash(script: &str) -> Command {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `script` under `sandbox` to its end, and kills and reaps whatever it left.
async fn run(sandbox: &PreparedSandbox, script: &str) -> Ran {
    let mut process = spawn_tool(
        &mut bash(script),
        ToolMarker::new(),
        Cgroup::Own,
        Some(sandbox),
    )
    .expect("spawn bash in the sandbox");
    let mut out = process.child.stdout.take().expect("stdout");
    let mut err = process.child.stderr.take().expect("stderr");
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let (read_out, read_err, status) = tokio::join!(
        out.read_to_string(&mut stdout),
        err.read_to_string(&mut stderr),
        process.child.wait()
    );
    read_out.expect("read stdout");
    read_err.expect("read stderr");
    let status = status.expect("wait");
    assert!(kill_tree(&process.tree, None).await.complete);
    process.release();
    Ran {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// A writable root and a folder outside it.
fn folders() -> (TempDir, TempDir) {
    (
        tempfile::tempdir().expect("root"),
        tempfile::tempdir().expect("outside"),
    )
}

fn workspace_write(root: &Path, network: bool) -> Sandbox {
    Sandbox::WorkspaceWrite {
        writable_roots: vec![root.to_path_buf()],
        network,
    }
}

fn assert_denied(ran: &Ran, what: &str) {
    assert_ne!(ran.code, Some(0), "{what} was allowed: {ran:?}");
    assert!(
        ran.stderr.contains("Permission denied")
            || ran.stderr.contains("Operation not permitted")
            || ran.stderr.contains("Invalid cross-device link"),
        "{what}: no denial on stderr: {ran:?}"
    );
}

#[tokio::test]
async fn writing_beneath_a_writable_root_works() {
    let (root, _outside) = folders();
    let Some(sandbox) = prepare(&workspace_write(root.path(), false)) else {
        return;
    };
    let file = root.path().join("sub/file");
    let ran = run(
        &sandbox,
        &format!(
            "mkdir {0} && echo hi > {1} && cat {1} && echo gone > /dev/null",
            root.path().join("sub").display(),
            file.display()
        ),
    )
    .await;

    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.stdout, "hi\n");
    assert_eq!(fs::read_to_string(&file).expect("written"), "hi\n");
}

#[tokio::test]
async fn writing_outside_the_writable_roots_is_denied() {
    let (root, outside) = folders();
    let Some(sandbox) = prepare(&workspace_write(root.path(), false)) else {
        return;
    };
    let file = outside.path().join("file");
    let ran = run(&sandbox, &format!("echo x > {}", file.display())).await;

    assert_denied(&ran, "writing outside");
    assert!(!file.exists());
}

#[tokio::test]
async fn a_symlink_inside_pointing_outside_does_not_let_a_write_through() {
    let (root, outside) = folders();
    let Some(sandbox) = prepare(&workspace_write(root.path(), false)) else {
        return;
    };
    let target = outside.path().join("target");
    let link = root.path().join("link");
    let ran = run(
        &sandbox,
        &format!(
            "ln -s {} {1} && echo x > {1}",
            target.display(),
            link.display()
        ),
    )
    .await;

    assert_denied(&ran, "writing through a symlink");
    assert!(link.is_symlink(), "making the link itself is allowed");
    assert!(!target.exists());
}

#[tokio::test]
async fn a_hard_link_of_an_outside_file_cannot_be_made_and_written() {
    let (root, outside) = folders();
    let Some(sandbox) = prepare(&workspace_write(root.path(), false)) else {
        return;
    };
    let file = outside.path().join("file");
    fs::write(&file, "original\n").expect("outside file");
    let link = root.path().join("hard");
    let ran = run(
        &sandbox,
        &format!(
            "ln {} {1} && echo pwned >> {1}",
            file.display(),
            link.display()
        ),
    )
    .await;

    assert_denied(&ran, "hard-linking an outside file in");
    assert_eq!(fs::read_to_string(&file).expect("read"), "original\n");
}

#[tokio::test]
async fn a_file_inside_cannot_be_renamed_to_outside() {
    let (root, outside) = folders();
    let Some(sandbox) = prepare(&workspace_write(root.path(), false)) else {
        return;
    };
    let inside = root.path().join("inside");
    fs::write(&inside, "data\n").expect("inside file");
    let moved = outside.path().join("moved");
    let ran = run(
        &sandbox,
        &format!("mv {} {}", inside.display(), moved.display()),
    )
    .await;

    assert_denied(&ran, "renaming out");
    assert!(!moved.exists());
    assert!(inside.exists());
}

#[tokio::test]
async fn writing_through_proc_self_cwd_after_cd_outside_is_denied() {
    let (root, outside) = folders();
    let Some(sandbox) = prepare(&workspace_write(root.path(), false)) else {
        return;
    };
    let ran = run(
        &sandbox,
        &format!(
            "cd {} && echo x > /proc/self/cwd/file",
            outside.path().display()
        ),
    )
    .await;

    assert_denied(&ran, "writing through /proc/self/cwd");
    assert!(!outside.path().join("file").exists());
}

#[tokio::test]
async fn mounting_is_denied_even_beneath_a_writable_root() {
    let (root, _outside) = folders();
    let Some(sandbox) = prepare(&workspace_write(root.path(), false)) else {
        return;
    };
    let point = root.path().join("mnt");
    let ran = run(
        &sandbox,
        &format!("mkdir {0} && mount -t tmpfs tmpfs {0}", point.display()),
    )
    .await;

    assert_ne!(ran.code, Some(0), "mounting was allowed: {ran:?}");
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&point.display().to_string()), "{mounts}");
}

#[tokio::test]
async fn read_only_denies_writes_everywhere_but_allows_reading_and_running() {
    let (root, _outside) = folders();
    let Some(sandbox) = prepare(&Sandbox::ReadOnly) else {
        return;
    };
    let readable = ["/etc/hostname", "/etc/passwd"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect("a file to read");

    let read = run(&sandbox, &format!("cat {readable} && ls / > /dev/null")).await;
    let file = root.path().join("file");
    let wrote = run(&sandbox, &format!("echo x > {}", file.display())).await;

    assert_eq!(read.code, Some(0), "{read:?}");
    assert_eq!(read.stdout, fs::read_to_string(readable).expect("read"));
    assert_denied(&wrote, "writing under read-only");
    assert!(!file.exists());
}

/// `bash`'s `/dev/tcp` to a loopback listener the test holds.
async fn connect_to_loopback(network: bool) -> (Ran, bool) {
    let root = tempfile::tempdir().expect("root");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("address").port();
    let Some(sandbox) = prepare(&workspace_write(root.path(), network)) else {
        return (
            Ran {
                code: None,
                stdout: String::new(),
                stderr: String::new(),
            },
            false,
        );
    };
    let ran = run(
        &sandbox,
        &format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected"),
    )
    .await;
    // The process has exited: a connection it made waits in the backlog.
    listener.set_nonblocking(true).expect("non-blocking");
    let accepted = listener.accept().is_ok();
    (ran, accepted)
}

#[tokio::test]
async fn a_tcp_connect_is_denied_without_the_network() {
    let (ran, accepted) = connect_to_loopback(false).await;
    if ran.code.is_none() {
        return;
    }

    assert_ne!(ran.code, Some(0), "{ran:?}");
    assert!(ran.stderr.contains("Operation not permitted"), "{ran:?}");
    assert!(!accepted);
}

#[tokio::test]
async fn a_tcp_connect_works_with_the_network() {
    let (ran, accepted) = connect_to_loopback(true).await;
    if ran.code.is_none() {
        return;
    }

    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.stdout, "connected\n");
    assert!(accepted);
}

#[tokio::test]
async fn unix_socketpairs_work_and_io_uring_is_denied() {
    let (root, _outside) = folders();
    let Some(sandbox) = prepare(&workspace_write(root.path(), false)) else {
        return;
    };
    let script = r#"python3 -c '
import ctypes, socket
a, b = socket.socketpair()
a.send(b"x")
print(b.recv(1).decode())
libc = ctypes.CDLL(None, use_errno=True)
print(libc.syscall(425, 1, None), ctypes.get_errno())
'"#;
    let ran = run(&sandbox, script).await;

    assert_eq!(ran.code, Some(0), "{ran:?}");
    // io_uring_setup: -1, EPERM (1), where the kernel would say EFAULT.
    assert_eq!(ran.stdout, "x\n-1 1\n");
}

#[tokio::test]
async fn full_access_confines_nothing() {
    let (_root, outside) = folders();
    let sandbox = Sandbox::FullAccess.prepare().expect("always prepared");
    let file = outside.path().join("file");
    let ran = run(&sandbox, &format!("echo x > {}", file.display())).await;

    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(file.exists());
}

#[tokio::test]
async fn a_missing_writable_root_is_an_error_not_a_looser_sandbox() {
    let root = tempfile::tempdir().expect("root");
    let sandbox = workspace_write(&root.path().join("missing"), false);
    if sandbox.check().is_err() {
        return;
    }

    let err = sandbox.prepare().expect_err("a missing root");
    assert!(matches!(err, SandboxError::Path { .. }), "{err}");
}

#[tokio::test]
async fn kill_tree_kills_a_sandboxed_tree() {
    become_subreaper().expect("subreaper");
    let (root, _outside) = folders();
    let Some(sandbox) = prepare(&workspace_write(root.path(), false)) else {
        return;
    };
    let mut process = spawn_tool(
        &mut bash("sleep 60 & echo $!; wait"),
        ToolMarker::new(),
        Cgroup::Own,
        Some(&sandbox),
    )
    .expect("spawn");
    let stdout = process.child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .expect("the background pid");
    let sleep: i32 = line.trim().parse().expect("a pid");

    let report = kill_tree(&process.tree, Some(&mut process.child)).await;
    process.release();

    assert!(report.complete, "{report:?}");
    assert!(report.leader_status.is_some());
    assert!(!Path::new(&format!("/proc/{sleep}")).exists());
}
