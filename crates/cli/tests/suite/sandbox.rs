//! The sandbox through the real binary: `tiller exec` under each mode with
//! real escape attempts (a write outside the folder directly, through a
//! symbolic link, a hard link, a rename and `/proc/self/cwd`; a TCP
//! connection to a loopback listener), a denied command offered to run
//! outside the sandbox at the terminal, and `tiller sandbox -- CMD`.
//!
//! `/tmp` and `$TMPDIR` are writable by default, and the scratch folders
//! live there: the tests that write "outside" exclude both, so the only
//! writable folder is the session's.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::Path;

use serde_json::json;
use tiller_test_support::PtyChild;

use super::support::{DEADLINE, PROMPT_EXIT, Scratch, completed_items, run, shell_step, text_step};

/// `-c` flags that leave the session's folder the only writable one.
const NO_TMP: [&str; 4] = [
    "-c",
    "sandbox_workspace_write.exclude_slash_tmp=true",
    "-c",
    "sandbox_workspace_write.exclude_tmpdir_env_var=true",
];

/// A folder outside the session's, holding `existing` (with "original").
fn outside() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("existing"), "original").unwrap();
    dir
}

/// `tiller exec --json` running `script` as one shell call, with `args`.
async fn exec_one(scratch: &Scratch, script: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let steps = scratch.script(json!([shell_step("c1", script), text_step("done")]));
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    all.push("go");
    let finished = run(&mut scratch.exec(&steps, &all)).await;
    finished.assert_exit(0);
    scratch.wait_no_process_left().await;
    finished.json()
}

/// The output the one command item of `events` showed.
fn command_output(events: &[serde_json::Value]) -> String {
    let commands = completed_items(events, "command_execution");
    assert_eq!(commands.len(), 1, "{events:#?}");
    commands[0].1["aggregated_output"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn the_default_sandbox_lets_a_command_write_its_folder_and_no_way_outside_it() {
    let scratch = Scratch::new();
    let out = outside();
    let o = out.path().display();
    let script = format!(
        "touch inside; \
         touch {o}/direct; \
         ln -s {o} link; touch link/via-symlink; \
         ln {o}/existing hard; echo pwned >> hard; \
         mv {o}/existing moved; \
         (cd {o} && touch /proc/self/cwd/via-proc); \
         echo pwned > {o}/existing; \
         true"
    );
    let mut args = NO_TMP.to_vec();
    args.push("-v");
    let events = exec_one(&scratch, &script, &args).await;
    let output = command_output(&events);

    assert!(scratch.work_file("inside").exists(), "{output}");
    for escaped in ["direct", "via-symlink", "via-proc", "moved"] {
        assert!(
            !out.path().join(escaped).exists(),
            "{escaped} was written outside: {output}"
        );
    }
    assert!(!scratch.work_file("moved").exists(), "{output}");
    assert_eq!(
        std::fs::read_to_string(out.path().join("existing")).unwrap(),
        "original",
        "the file outside was changed: {output}"
    );
    assert!(output.contains("Permission denied"), "{output}");
    // A hard link into the folder would give write access: refused.
    assert!(
        output.contains("Invalid cross-device link") || output.contains("Permission denied"),
        "{output}"
    );
}

#[tokio::test]
async fn read_only_denies_every_write_and_still_reads() {
    let scratch = Scratch::new();
    let events = exec_one(
        &scratch,
        "touch made; head -c 1 /etc/passwd > /dev/null && echo read-ok",
        &["--sandbox", "read-only"],
    )
    .await;
    let output = command_output(&events);
    assert!(!scratch.work_file("made").exists(), "{output}");
    assert!(output.contains("Permission denied"), "{output}");
    assert!(output.contains("read-ok"), "{output}");
}

#[tokio::test]
async fn danger_full_access_confines_nothing() {
    let scratch = Scratch::new();
    let out = outside();
    let script = format!("touch {}/direct", out.path().display());
    let mut args = vec!["--sandbox", "danger-full-access"];
    args.extend_from_slice(&NO_TMP);
    exec_one(&scratch, &script, &args).await;
    assert!(out.path().join("direct").exists());
}

/// Whether a connection reached `listener` (the command has ended, so one
/// that was made waits in its backlog).
fn was_connected(listener: &TcpListener) -> bool {
    listener.set_nonblocking(true).unwrap();
    match listener.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    }
}

#[tokio::test]
async fn the_network_is_off_unless_the_config_turns_it_on() {
    let scratch = Scratch::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");

    let events = exec_one(&scratch, &script, &[]).await;
    let output = command_output(&events);
    assert!(!output.contains("connected"), "{output}");
    assert!(output.contains("Operation not permitted"), "{output}");
    assert!(!was_connected(&listener));

    let events = exec_one(
        &scratch,
        &script,
        &["-c", "sandbox_workspace_write.network_access=true"],
    )
    .await;
    let output = command_output(&events);
    assert!(output.contains("connected"), "{output}");
    assert!(was_connected(&listener));
}

#[tokio::test]
async fn a_denied_command_is_offered_to_run_outside_the_sandbox_and_runs_when_allowed() {
    let scratch = Scratch::new();
    let out = outside();
    let target = out.path().join("allowed");
    let script = scratch.script(json!([
        shell_step("c1", &format!("touch {}", target.display())),
        text_step("done"),
    ]));
    let work = scratch.work();
    let mut args = vec![
        "exec",
        "--cd",
        work.to_str().unwrap(),
        "--script",
        script.to_str().unwrap(),
        "--approval",
        "on-request",
    ];
    args.extend_from_slice(&NO_TMP);
    args.push("make it");
    let mut tiller = PtyChild::spawn(scratch.tiller_for_pty(&args, "xterm"), 160, 30);
    tiller.wait_for("a[b]ort turn", DEADLINE);
    let asked = tiller.output();
    assert!(
        asked.contains("it failed in the sandbox (workspace-write (network off))"),
        "{asked}"
    );
    assert!(
        asked.contains("allowing runs it again without the sandbox"),
        "{asked}"
    );
    assert!(!target.exists(), "the first run was confined");
    tiller.send(b"y\r");
    let status = tiller.wait_exit(PROMPT_EXIT);
    assert_eq!(status.code(), Some(0), "{}", tiller.output());
    assert!(target.exists(), "{}", tiller.output());
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn without_a_terminal_the_rerun_is_denied_and_says_how_to_run_unconfined() {
    let scratch = Scratch::new();
    let out = outside();
    let target = out.path().join("denied");
    let steps = scratch.script(json!([
        shell_step("c1", &format!("touch {}", target.display())),
        text_step("done"),
    ]));
    let mut args = vec!["--approval", "on-failure"];
    args.extend_from_slice(&NO_TMP);
    args.push("go");
    let finished = run(&mut scratch.exec(&steps, &args)).await;
    finished.assert_exit(0);
    assert!(!target.exists());
    assert!(
        finished
            .stderr
            .contains("to run commands without a sandbox, run with --sandbox danger-full-access"),
        "{}",
        finished.stderr
    );
}

#[tokio::test]
async fn git_branch_delete_asks_under_untrusted() {
    let scratch = Scratch::new();
    let steps = scratch.script(json!([
        shell_step("c1", "git branch -D work"),
        text_step("ok")
    ]));
    let finished = run(&mut scratch.exec(&steps, &["--approval", "untrusted", "go"])).await;
    finished.assert_exit(0);
    assert!(
        finished
            .stderr
            .contains("denied: `bash -lc 'git branch -D work'` needs approval"),
        "{}",
        finished.stderr
    );
}

#[tokio::test]
async fn a_bad_sandbox_mode_is_refused_in_words() {
    let scratch = Scratch::new();
    let steps = scratch.script(json!([text_step("never")]));
    let finished = run(&mut scratch.exec(&steps, &["--sandbox", "sometimes", "go"])).await;
    assert_ne!(finished.status.code(), Some(0));
    assert!(
        finished.stderr.contains(
            "expected \"read-only\", \"workspace-write\" or \"danger-full-access\", found \"sometimes\""
        ),
        "{}",
        finished.stderr
    );
}

/// `tiller sandbox ARGS` in the scratch folder.
async fn sandbox(scratch: &Scratch, args: &[&str]) -> super::support::Finished {
    let work = scratch.work();
    let mut all = vec!["sandbox", "-C", work.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&mut scratch.tiller(&all)).await
}

fn is_mount_point(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let path = path.display().to_string();
    mounts
        .lines()
        .any(|line| line.split(' ').nth(1) == Some(path.as_str()))
}

#[tokio::test]
async fn tiller_sandbox_runs_a_command_confined_and_passes_its_exit_status_on() {
    let scratch = Scratch::new();
    let out = outside();
    let o = out.path().display().to_string();

    let inside = sandbox(&scratch, &[&NO_TMP[..], &["--", "touch", "made"]].concat()).await;
    inside.assert_exit(0);
    assert!(scratch.work_file("made").exists());

    let denied = sandbox(
        &scratch,
        &[&NO_TMP[..], &["--", "touch", &format!("{o}/direct")]].concat(),
    )
    .await;
    denied.assert_exit(1);
    assert!(
        denied.stderr.contains("Permission denied"),
        "{}",
        denied.stderr
    );
    assert!(!out.path().join("direct").exists());

    // tiller runs as root in CI: only the sandbox stops this mount.
    let mount = sandbox(&scratch, &["--", "mount", "-t", "tmpfs", "none", &o]).await;
    assert_ne!(mount.status.code(), Some(0), "{}", mount.stderr);
    assert!(!is_mount_point(out.path()));

    let read_only = sandbox(&scratch, &["-s", "read-only", "--", "touch", "ro"]).await;
    read_only.assert_exit(1);
    assert!(!scratch.work_file("ro").exists());

    let full = sandbox(
        &scratch,
        &[
            "-s",
            "danger-full-access",
            "--",
            "touch",
            &format!("{o}/full"),
        ],
    )
    .await;
    full.assert_exit(0);
    assert!(out.path().join("full").exists());

    let exit = sandbox(&scratch, &["--", "sh", "-c", "exit 7"]).await;
    exit.assert_exit(7);
    let missing = sandbox(&scratch, &["--", "no-such-program-here"]).await;
    missing.assert_exit(127);
    assert!(
        missing.stderr.contains("cannot run no-such-program-here"),
        "{}",
        missing.stderr
    );
}

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn without_landlock_tiller_says_so_once_and_runs_no_command_unless_told_to_run_unconfined() {
    use tiller_test_support::kernel::hide_landlock;

    let scratch = Scratch::new();
    let steps = scratch.script(json!([shell_step("c1", "touch made"), text_step("done")]));
    let mut exec = scratch.exec(&steps, &["--json", "go"]);
    hide_landlock(&mut exec);
    let finished = run(&mut exec).await;
    finished.assert_exit(0);
    let warnings: Vec<&str> = finished
        .stderr
        .lines()
        .filter(|line| line.contains("cannot be enforced"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", finished.stderr);
    assert!(
        warnings[0].contains("the kernel was built without Landlock")
            && warnings[0].contains("--sandbox danger-full-access"),
        "{}",
        warnings[0]
    );
    assert!(!scratch.work_file("made").exists(), "ran unconfined");
    let events = finished.json();
    let commands = completed_items(&events, "command_execution");
    assert_eq!(commands[0].1["status"], "failed", "{events:#?}");

    // Asked for, full access runs, and nothing is said.
    let mut exec = scratch.exec(&steps, &["--sandbox", "danger-full-access", "go"]);
    hide_landlock(&mut exec);
    let finished = run(&mut exec).await;
    finished.assert_exit(0);
    assert!(scratch.work_file("made").exists());
    assert!(
        !finished.stderr.contains("cannot be enforced"),
        "{}",
        finished.stderr
    );

    let work = scratch.work();
    let mut confined =
        scratch.tiller(&["sandbox", "-C", work.to_str().unwrap(), "--", "touch", "x"]);
    hide_landlock(&mut confined);
    let finished = run(&mut confined).await;
    finished.assert_exit(126);
    assert!(
        finished
            .stderr
            .contains("the kernel was built without Landlock"),
        "{}",
        finished.stderr
    );
    assert!(!scratch.work_file("x").exists());
}

#[tokio::test]
async fn slash_tmp_is_writable_unless_excluded() {
    let scratch = Scratch::new();
    // Named after the scratch folder, so no other test writes it.
    let name = format!(
        "tiller-sandbox-{}",
        scratch
            .work()
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
    );
    let in_tmp = Path::new("/tmp").join(&name);
    let script = format!("touch {}", in_tmp.display());

    let mut excluded = vec!["-c", "sandbox_workspace_write.exclude_slash_tmp=true"];
    // `$TMPDIR` may be /tmp itself.
    excluded.extend(["-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true"]);
    let events = exec_one(&scratch, &script, &excluded).await;
    assert!(!in_tmp.exists(), "{}", command_output(&events));
    assert!(command_output(&events).contains("Permission denied"));

    exec_one(&scratch, &script, &[]).await;
    assert!(in_tmp.exists());
    std::fs::remove_file(&in_tmp).unwrap();
}
