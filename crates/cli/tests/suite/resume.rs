//! Resuming a session after Ctrl+C: the history the model gets back carries
//! the aborted tool output and the interrupted marker, once, and the session
//! listing follows how the last turn ended.

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::support::{
    DEADLINE, PROMPT_EXIT, Running, Scratch, assert_dead, assert_one_terminal_per_turn_in_rollout,
    assert_valid_history, completed_items, lifecycle_events, message_text, only_event,
    read_pids_when_ready, response_items, rollout_lines, run, shell_step, text_step, thread_id,
};

/// The `tiller sessions --json` row of session `id`.
async fn listed(scratch: &Scratch, id: &str) -> Value {
    let sessions = scratch.sessions_json().await;
    sessions
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("session {id} is not listed: {sessions:#?}"))
        .clone()
}

#[tokio::test]
async fn ctrl_c_then_resume_carries_the_aborted_tool_output() {
    let scratch = Scratch::new();
    let script = scratch.script_named(
        "run.json",
        json!([
            shell_step(
                "call_sleep",
                "echo $$ > pids; sleep 60 & echo $! >> pids; wait"
            ),
            text_step("the tool finished"),
        ]),
    );
    let exec = Running::spawn(&mut scratch.exec(&script, &["--json", "sleep for a minute"]));
    let pids = read_pids_when_ready(&scratch.work_file("pids"), 2, DEADLINE).await;
    exec.signal(Signal::SIGINT);
    let interrupted = exec.finish(PROMPT_EXIT).await;
    interrupted.assert_exit(130);
    assert_dead(&pids);
    let events = interrupted.json();
    let id = thread_id(&events);
    let (_, aborted) = only_event(&events, "turn.aborted");
    assert_eq!(aborted["reason"], "interrupted", "{aborted:#}");

    let row = listed(&scratch, &id).await;
    assert_eq!(row["last_turn"], "interrupted", "{row:#}");
    assert_eq!(row["first_prompt"], "sleep for a minute", "{row:#}");

    // The interrupt closed the history: the call's output says it was aborted,
    // and the model is told the user interrupted the turn.
    let path = scratch.rollout_of(&id);
    let before = std::fs::read(&path).unwrap();
    let lines = rollout_lines(&path);
    assert_valid_history(&lines);
    let items = response_items(&lines);
    let output_at = items
        .iter()
        .position(|i| i["type"] == "function_call_output" && i["call_id"] == "call_sleep")
        .unwrap_or_else(|| panic!("no output for call_sleep: {items:#?}"));
    let output = items[output_at]["output"].as_str().unwrap();
    assert!(output.contains("Aborted by the user"), "{output}");
    let marker_at = items
        .iter()
        .position(|i| i["role"] == "user" && message_text(i).contains("<turn_aborted>"))
        .unwrap_or_else(|| panic!("no interrupted marker: {items:#?}"));
    assert!(marker_at > output_at, "{items:#?}");

    let resume_script = scratch.script_named("resume.json", json!([text_step("it was stopped")]));
    let resumed = run(&mut scratch.exec(
        &resume_script,
        &["--json", "resume", &id, "what happened to the command?"],
    ))
    .await;
    resumed.assert_exit(0);
    let resumed_events = resumed.json();
    assert_eq!(thread_id(&resumed_events), id);
    only_event(&resumed_events, "turn.completed");
    let answers = completed_items(&resumed_events, "agent_message");
    assert_eq!(answers.len(), 1, "{resumed_events:#?}");
    assert_eq!(answers[0].1["text"], "it was stopped");
    // The turn ended cleanly, so there is nothing to close on resume; and the
    // history needed no repair (the engine would log one as a bug).
    assert!(
        !resumed.stderr.contains("cut off") && !resumed.stderr.contains("repaired"),
        "stderr:\n{}",
        resumed.stderr
    );

    // Appended to the same file; the aborted output is there once, not twice.
    let after = std::fs::read(&path).unwrap();
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "the rollout was rewritten"
    );
    let lines = rollout_lines(&path);
    assert_valid_history(&lines);
    assert_one_terminal_per_turn_in_rollout(&lines);
    let kinds: Vec<String> = lifecycle_events(&lines)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        kinds,
        [
            "turn_started",
            "turn_aborted",
            "turn_started",
            "turn_completed"
        ],
        "{lines:#?}"
    );
    let items = response_items(&lines);
    let markers = items
        .iter()
        .filter(|i| message_text(i).contains("<turn_aborted>"))
        .count();
    assert_eq!(markers, 1, "{items:#?}");

    let row = listed(&scratch, &id).await;
    assert_eq!(row["last_turn"], "completed", "{row:#}");
    assert_eq!(row["first_prompt"], "sleep for a minute", "{row:#}");
    scratch.wait_no_process_left().await;
}
