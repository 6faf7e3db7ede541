//! Ctrl+C and SIGTERM during `tiller exec`: the turn ends as aborted, the
//! tool's processes are gone, and the exit code says which signal it was.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::support::{
    DEADLINE, PROMPT_EXIT, Running, Scratch, assert_dead, completed_items, only_event,
    read_pids_when_ready, wait_for_file, wait_gone,
};

/// A shell call whose script writes its pid and a background child's pid to
/// `pids`, then waits for the child (a `sleep 60`); then a text answer that
/// only a run that carried on after the tool would ever ask for.
fn long_tool_script() -> Value {
    json!([
        {"type": "response", "items": [{"type": "function_call", "name": "shell",
            "call_id": "call_sleep",
            "arguments": {"command": ["bash", "-lc",
                "echo $$ > pids; sleep 60 & echo $! >> pids; wait"]}}]},
        {"type": "response", "items": [{"type": "text", "text": "the tool finished"}]},
    ])
}

/// Start `tiller exec --json` on [`long_tool_script`], signal it with `signal`
/// once both of the tool's processes are up, and check how it ended.
async fn signal_during_a_tool_call(signal: Signal, exit_code: i32) {
    let scratch = Scratch::new();
    let script = scratch.script(long_tool_script());
    let exec = Running::spawn(&mut scratch.exec(&script, &["--json", "sleep a while"]));
    let pids = read_pids_when_ready(&scratch.work_file("pids"), 2, DEADLINE).await;

    exec.signal(signal);
    let finished = exec.finish(PROMPT_EXIT).await;
    finished.assert_exit(exit_code);
    // I3: the tree is gone by the time the turn has ended (zombies count as dead).
    assert_dead(&pids);

    let events = finished.json();
    let commands = completed_items(&events, "command_execution");
    assert_eq!(commands.len(), 1, "{events:#?}");
    let (command_at, command) = commands[0];
    assert_eq!(command["status"], "failed", "{command:#}");
    let (aborted_at, aborted) = only_event(&events, "turn.aborted");
    assert_eq!(aborted["reason"], "interrupted", "{aborted:#}");
    assert!(aborted_at > command_at, "{events:#?}");
    assert!(
        completed_items(&events, "agent_message").is_empty(),
        "the turn went on after the interrupt: {events:#?}"
    );
}

#[tokio::test]
async fn exec_sigint_during_a_tool_call_kills_the_tree_and_exits_130() {
    signal_during_a_tool_call(Signal::SIGINT, 130).await;
}

#[tokio::test]
async fn exec_sigterm_interrupts_like_ctrl_c() {
    signal_during_a_tool_call(Signal::SIGTERM, 143).await;
}

#[tokio::test]
async fn exec_double_sigint_exits_at_once() {
    let scratch = Scratch::new();
    // The shell survives SIGTERM (it notes it in `got_term`) and its child
    // ignores it, so the first interrupt has to wait out the grace period
    // before SIGKILL: the second Ctrl+C lands while it does.
    let tool = "trap 'echo term > got_term' TERM; echo $$ > pids; \
                (trap '' TERM; exec sleep 60) & echo $! >> pids; \
                while :; do wait; done";
    let script = scratch.script(json!([
        {"type": "response", "items": [{"type": "function_call", "name": "shell",
            "call_id": "call_stubborn", "arguments": {"command": ["bash", "-lc", tool]}}]},
        {"type": "response", "items": [{"type": "text", "text": "the tool finished"}]},
    ]));
    let exec = Running::spawn(&mut scratch.exec(&script, &["stubborn tool"]));
    let pids = read_pids_when_ready(&scratch.work_file("pids"), 2, DEADLINE).await;

    exec.signal(Signal::SIGINT);
    // The first interrupt is being handled once the tool has seen SIGTERM.
    wait_for_file(&scratch.work_file("got_term")).await;
    let second = Instant::now();
    exec.signal(Signal::SIGINT);
    let finished = exec.finish(PROMPT_EXIT).await;
    let took = second.elapsed();
    finished.assert_exit(130);
    assert!(
        finished.stderr.contains("interrupted twice"),
        "the run did not take the double-Ctrl+C exit:\n{}",
        finished.stderr
    );
    assert!(
        took < Duration::from_secs(2),
        "exiting took {took:?} after the second Ctrl+C"
    );
    // The hard exit SIGKILLs the tool's group without waiting for it.
    wait_gone(&pids, pids[0]).await;
}

#[tokio::test]
async fn exec_interrupt_while_text_streams() {
    let scratch = Scratch::new();
    let deltas: Vec<String> = (0..200).map(|i| format!("word{i} ")).collect();
    let script = scratch.script(json!([
        {"type": "response", "delta_delay_ms": 20,
         "items": [{"type": "text", "deltas": deltas}]},
    ]));
    // The answer streams to a terminal (to a pipe, only whole messages go):
    // Ctrl+C is pressed there, as a person would.
    let mut command = std::process::Command::new(super::support::TILLER);
    command
        .args(["exec", "--cd"])
        .arg(scratch.work())
        .arg("--script")
        .arg(&script)
        .arg("talk for a while")
        .env("TILLER_HOME", scratch.home())
        .env("HOME", scratch.home());
    let mut exec = tiller_test_support::PtyChild::spawn(command, 200, 40);
    exec.wait_for("word3 ", super::support::DEADLINE);

    exec.send(b"\x03");
    let status = exec.wait_exit(PROMPT_EXIT);
    let shown = exec.output();
    assert_eq!(status.code(), Some(130), "{shown}");
    assert!(shown.contains("turn interrupted"), "terminal:\n{shown}");
    assert!(
        !shown.contains("word199"),
        "the whole answer was printed despite the interrupt:\n{shown}"
    );
}
