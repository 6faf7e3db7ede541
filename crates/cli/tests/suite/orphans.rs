//! No orphans: when tiller dies without a chance to clean up (SIGKILL), the
//! watchdog it started kills every process its tools left, including those
//! that left the tool's process group.

use std::os::unix::process::ExitStatusExt;

use nix::sys::signal::Signal;
use serde_json::json;

use super::support::{
    DEADLINE, PROMPT_EXIT, Running, Scratch, completed_items, parse_killed_exec_json, pid_alive,
    read_pids_when_ready, shell_step, text_step, wait_gone,
};

#[tokio::test]
async fn sigkill_of_tiller_leaves_no_tool_process_alive() {
    let scratch = Scratch::new();
    // A background child, one in a session of its own (out of the tool's
    // process group), one orphaned at once by its subshell, and the shell.
    let tool = "sleep 60 & echo $! > pids; \
                setsid sleep 60 & echo $! >> pids; \
                (sleep 60 & echo $! >> pids); \
                echo $$ >> pids; wait";
    let script = scratch.script(json!([
        shell_step("call_spawn", tool),
        text_step("the tool finished"),
    ]));
    let exec = Running::spawn(&mut scratch.exec(&script, &["--json", "start some sleepers"]));
    let pids = read_pids_when_ready(&scratch.work_file("pids"), 4, DEADLINE).await;

    exec.signal(Signal::SIGKILL);
    let killed = exec.finish(PROMPT_EXIT).await;
    assert_eq!(
        killed.status.signal(),
        Some(Signal::SIGKILL as i32),
        "{killed:?}"
    );
    let events = parse_killed_exec_json(&killed.stdout);
    assert_eq!(
        completed_items(&events, "command_execution").len(),
        0,
        "the command ended before the kill: {events:#?}"
    );
    // The shell leads the tool's process group.
    let shell = pids[3];
    wait_gone(&pids, shell).await;
    // And nothing else tiller started is left: not the watchdog either.
    scratch.wait_no_process_left().await;
}

/// `setsid env -i sleep 600 &` and the shell exits at once: the sleep has no
/// group, no marker and no parent tied to the call. It does not outlive it.
#[tokio::test]
async fn a_daemon_that_cleared_group_and_environment_does_not_outlive_its_call() {
    let scratch = Scratch::new();
    let pid_file = scratch.work_file("daemon.pid");
    let tool = format!(
        "setsid env -i sleep 600 & echo $! > {}; exit 0",
        pid_file.display()
    );
    let script = scratch.script(json!([
        shell_step("call_daemon", &tool),
        text_step("started a daemon"),
    ]));
    let finished = super::support::run(&mut scratch.exec(&script, &["--json", "daemon"])).await;
    finished.assert_exit(0);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !pid_alive(pid),
        "the daemon {pid} outlived its call and tiller"
    );
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn sigkill_of_tiller_kills_a_daemon_that_cleared_group_and_environment() {
    let scratch = Scratch::new();
    let pid_file = scratch.work_file("daemon.pid");
    let tool = format!(
        "(setsid env -i sleep 600 & echo $! > {}.tmp; mv {0}.tmp {0}); sleep 60",
        pid_file.display()
    );
    let script = scratch.script(json!([
        shell_step("call_daemon", &tool),
        text_step("never"),
    ]));
    let exec = Running::spawn(&mut scratch.exec(&script, &["--json", "daemon"]));
    let pids = read_pids_when_ready(&pid_file, 1, DEADLINE).await;
    exec.signal(Signal::SIGKILL);
    exec.finish(PROMPT_EXIT).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while pid_alive(pids[0]) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon {} outlived the killed tiller",
            pids[0]
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    scratch.wait_no_process_left().await;
}
