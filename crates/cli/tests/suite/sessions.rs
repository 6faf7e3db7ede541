//! `tiller sessions`: the saved sessions, newest first, with the first prompt
//! and how the last turn ended, for a person and as JSON.

use std::os::unix::process::ExitStatusExt;

use nix::sys::signal::Signal;
use serde_json::json;

use super::support::{
    DEADLINE, PROMPT_EXIT, Running, Scratch, parse_killed_exec_json, read_pids_when_ready, run,
    shell_step, text_step, thread_id,
};

/// How many characters of the first prompt a table row shows.
const PROMPT_WIDTH: usize = 60;

#[tokio::test]
async fn sessions_lists_newest_first_with_first_prompt_and_last_turn() {
    let scratch = Scratch::new();

    let empty = run(&mut scratch.tiller(&["sessions"])).await;
    empty.assert_exit(0);
    assert!(empty.stdout.is_empty(), "{}", empty.stdout);
    assert!(empty.stderr.contains("no sessions yet"), "{}", empty.stderr);
    assert!(scratch.sessions_json().await.is_empty());

    // Completed, with a long prompt over two lines.
    let long_prompt = format!(
        "first: {}\nand a second line",
        "please look at every file in this folder ".repeat(3)
    );
    let script = scratch.script_named("completed.json", json!([text_step("looked")]));
    let completed = run(&mut scratch.exec(&script, &["--json", &long_prompt])).await;
    completed.assert_exit(0);
    let completed_id = thread_id(&completed.json());

    // Failed.
    let script = scratch.script_named(
        "failed.json",
        json!([{"type": "http_error", "status": 400,
            "body": {"error": {"message": "Invalid model.", "type": "invalid_request_error"}}}]),
    );
    let failed = run(&mut scratch.exec(&script, &["--json", "second: this one fails"])).await;
    failed.assert_exit(1);
    let failed_id = thread_id(&failed.json());

    // Cut off: tiller killed during a command.
    let script = scratch.script_named(
        "killed.json",
        json!([shell_step(
            "call_sleep",
            "echo $$ > pids; sleep 60 & echo $! >> pids; wait"
        )]),
    );
    let mut exec = Running::spawn(&mut scratch.exec(&script, &["--json", "third: killed"]));
    exec.wait_stdout("thread.started", |out| out.contains('\n'))
        .await;
    read_pids_when_ready(&scratch.work_file("pids"), 2, DEADLINE).await;
    exec.signal(Signal::SIGKILL);
    let killed = exec.finish(PROMPT_EXIT).await;
    assert_eq!(killed.status.signal(), Some(Signal::SIGKILL as i32));
    let killed_id = thread_id(&parse_killed_exec_json(&killed.stdout));
    scratch.wait_no_process_left().await;

    let expected = [
        (&killed_id, "third: killed", "cut off"),
        (&failed_id, "second: this one fails", "failed"),
        (&completed_id, long_prompt.as_str(), "completed"),
    ];
    let sessions = scratch.sessions_json().await;
    assert_eq!(sessions.len(), 3, "{sessions:#?}");
    let work = scratch.work();
    for (row, (id, prompt, last_turn)) in sessions.iter().zip(expected) {
        assert_eq!(row["id"], id.as_str(), "not newest first: {sessions:#?}");
        assert_eq!(row["first_prompt"], prompt, "{row:#}");
        assert_eq!(row["last_turn"], last_turn, "{row:#}");
        assert_eq!(row["cwd"], work.to_str().unwrap(), "{row:#}");
        assert_eq!(
            row["path"],
            scratch.rollout_of(id).to_str().unwrap(),
            "{row:#}"
        );
        assert!(row["started"].as_str().is_some_and(|s| !s.is_empty()));
    }

    let table = run(&mut scratch.tiller(&["sessions"])).await;
    table.assert_exit(0);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three rows:\n{}", table.stdout);
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("LAST TURN"),
        "{}",
        table.stdout
    );
    for (line, (id, prompt, last_turn)) in lines[1..].iter().zip(expected) {
        assert!(
            line.starts_with(id.as_str()),
            "not newest first:\n{}",
            table.stdout
        );
        assert!(line.contains(last_turn), "{line}");
        // One line per session; a long prompt is cut with an ellipsis.
        let flat = prompt.replace('\n', " ");
        let shown: String = if flat.chars().count() > PROMPT_WIDTH {
            flat.chars().take(PROMPT_WIDTH - 1).chain(['…']).collect()
        } else {
            flat
        };
        assert!(
            line.ends_with(&shown),
            "{line:?} does not end with {shown:?}"
        );
    }
}
