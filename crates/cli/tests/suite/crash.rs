//! `tiller exec` killed with SIGKILL at any instant (invariant I5): the rollout
//! it leaves resumes to a valid conversation, in the same file, which is only
//! ever appended to, and nothing its tools started outlives it.

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::support::{
    PROMPT_EXIT, Running, Scratch, assert_one_terminal_per_turn_in_rollout, assert_valid_history,
    completed_items, event_type, lifecycle_events, message_text, only_event,
    parse_killed_exec_json, parse_rollout, response_items, run, text_step, thread_id,
};

/// How many instants the run is killed at, each in a session of its own.
const KILLS: u32 = 50;

/// How many of those runs go at once: the test stays well under a minute and
/// the machine is not so loaded that the runs' timing drifts far.
const IN_PARALLEL: usize = 2;

const PROMPT: &str = "work until you are killed";
const RESUME_PROMPT: &str = "carry on after the crash";
const RESUMED_ANSWER: &str = "picked up where the crash left off";

/// About 1.5 s of work (debug build): streamed text, a short command, more text, a longer
/// command, and a long streamed answer.
fn crash_script() -> Value {
    let words =
        |tag: &str, n: usize| -> Vec<String> { (0..n).map(|i| format!("{tag}{i} ")).collect() };
    let shell = |call_id: &str, script: &str| {
        json!({"type": "function_call", "name": "shell", "call_id": call_id,
            "arguments": {"command": ["bash", "-lc", script]}})
    };
    json!([
        {"type": "response", "delta_delay_ms": 8, "items": [
            {"type": "text", "deltas": words("plan", 30)},
            shell("call_quick", "sleep 0.2; echo done"),
        ]},
        {"type": "response", "delta_delay_ms": 8, "items": [
            {"type": "text", "deltas": words("more", 20)},
            shell("call_slow", "sleep 0.3; echo slow done"),
        ]},
        {"type": "response", "delta_delay_ms": 8, "items": [
            {"type": "text", "deltas": words("answer", 40)},
        ]},
    ])
}

/// Where in the run the kill landed, going by what the run had printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landed {
    /// No session was saved yet: there is nothing to resume.
    BeforeSession,
    /// The session was saved, the turn not started.
    BeforeTurn,
    /// The turn was running, no command was (text streaming, or between steps).
    InTurn,
    /// A command was running.
    InCommand,
    /// The run had already finished its turn.
    AfterTurn,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_any_instant_resumes_to_a_valid_conversation() {
    // A reference run says how long the whole run takes on this machine now.
    let scratch = Scratch::new();
    let script = scratch.script(crash_script());
    let started = Instant::now();
    let reference = run(&mut scratch.exec(&script, &["--json", PROMPT])).await;
    let length = started.elapsed();
    reference.assert_exit(0);
    let events = reference.json();
    assert_eq!(
        completed_items(&events, "command_execution").len(),
        2,
        "{events:#?}"
    );
    only_event(&events, "turn.completed");
    scratch.wait_no_process_left().await;

    let slots = Arc::new(Semaphore::new(IN_PARALLEL));
    let runs: Vec<_> = (0..KILLS)
        .map(|i| {
            let at = length * i / KILLS;
            let slots = Arc::clone(&slots);
            tokio::spawn(async move {
                let _slot = slots.acquire().await.unwrap();
                (at, kill_at_then_resume(at).await)
            })
        })
        .collect();
    let mut landed = Vec::new();
    for handle in runs {
        landed.push(handle.await.unwrap());
    }

    let count = |kind: Landed| landed.iter().filter(|(_, l)| *l == kind).count();
    let summary: Vec<String> = landed
        .iter()
        .map(|(at, l)| format!("{}ms {l:?}", at.as_millis()))
        .collect();
    eprintln!("run length {length:?}; kills: {}", summary.join(", "));
    // Most land inside the run; a third leaves room for a reference run that
    // was slower than the rest (a busy machine), and still catches kills that
    // all miss it.
    let inside = count(Landed::BeforeTurn) + count(Landed::InTurn) + count(Landed::InCommand);
    assert!(
        inside >= KILLS as usize / 3,
        "only {inside} of {KILLS} kills landed inside the run: {summary:?}"
    );
    assert!(
        count(Landed::InCommand) >= 1 && count(Landed::InTurn) >= 1,
        "no kill landed during a command, or none while the model streamed: {summary:?}"
    );
}

/// Run the script in a fresh session, SIGKILL tiller `at` after the spawn,
/// check what is left, resume, and check the resumed conversation.
async fn kill_at_then_resume(at: Duration) -> Landed {
    let scratch = Scratch::new();
    let script = scratch.script_named("crash.json", crash_script());
    let resume_script = scratch.script_named("resume.json", json!([text_step(RESUMED_ANSWER)]));

    let spawned = Instant::now();
    let exec = Running::spawn(&mut scratch.exec(&script, &["--json", PROMPT]));
    // The sleep is the scenario: the kill lands at a chosen instant.
    tokio::time::sleep_until(spawned + at).await;
    exec.signal(Signal::SIGKILL);
    let killed = exec.finish(PROMPT_EXIT).await;
    let files = scratch.rollout_files();
    let before = files.first().map(|path| std::fs::read(path).unwrap());
    assert!(
        killed.status.signal() == Some(Signal::SIGKILL as i32) || killed.status.code() == Some(0),
        "killed at {at:?}: ended with {:?}\nstderr:\n{}",
        killed.status,
        killed.stderr
    );
    let events = parse_killed_exec_json(&killed.stdout);
    // Whatever the instant, the watchdog leaves no tool process behind (I3).
    scratch.wait_no_process_left().await;

    let announced = events
        .first()
        .filter(|e| event_type(e) == "thread.started")
        .map(|e| e["thread_id"].as_str().unwrap().to_owned());
    assert!(files.len() <= 1, "one run, several rollouts: {files:?}");
    let (Some(path), Some(before)) = (files.first(), before) else {
        assert!(
            announced.is_none(),
            "killed at {at:?}: the session id was printed but there is no rollout"
        );
        return Landed::BeforeSession;
    };
    if announced.is_none() && !before.contains(&b'\n') {
        // Killed before the session_meta line was out and before anyone
        // heard of the session: there is nothing to resume.
        return Landed::BeforeSession;
    }
    let id = Scratch::session_id_of(path);
    if let Some(announced) = &announced {
        assert_eq!(announced, &id, "thread.started names another session");
    }
    let landed = landed(&events);

    let resumed =
        run(&mut scratch.exec(&resume_script, &["--json", "resume", &id, RESUME_PROMPT])).await;
    let context = format!(
        "killed at {at:?} ({landed:?}); rollout before the resume:\n{}\nresume stderr:\n{}",
        String::from_utf8_lossy(&before),
        resumed.stderr
    );
    resumed.assert_exit(0);
    let resumed_events = resumed.json();
    assert_eq!(thread_id(&resumed_events), id, "{context}");
    only_event(&resumed_events, "turn.completed");
    let answers = completed_items(&resumed_events, "agent_message");
    assert_eq!(answers.len(), 1, "{resumed_events:#?}");
    assert_eq!(answers[0].1["text"], RESUMED_ANSWER);
    // The engine repairs a broken history before sending it, so the mock's
    // contract check alone would not notice one: the repair is logged as a bug.
    assert!(
        !resumed.stderr.contains("invariant I1") && !resumed.stderr.contains("repaired"),
        "the resumed history had to be repaired: {context}"
    );

    // Append-only: the bytes that were there are there still, unchanged.
    let after = std::fs::read(path).unwrap();
    assert!(
        after.len() > before.len() && after[..before.len()] == before[..],
        "the resume rewrote the rollout instead of appending to it: {context}\nafter:\n{}",
        String::from_utf8_lossy(&after)
    );
    let cut_line = !before.is_empty() && !before.ends_with(b"\n");
    let appended_from = if cut_line {
        assert_eq!(
            after[before.len()],
            b'\n',
            "a cut-off last line was not ended before appending: {context}"
        );
        assert!(
            resumed.stderr.contains("the last line was cut off"),
            "no warning about the cut-off last line: {context}"
        );
        before.len() + 1
    } else {
        before.len()
    };
    let old_lines = parse_rollout(&before, "rollout before the resume");
    let new_lines = parse_rollout(&after[appended_from..], "lines the resume appended");
    assert!(
        after.ends_with(b"\n") && !new_lines.is_empty(),
        "the resume left a partial line: {context}"
    );
    let after_text = String::from_utf8_lossy(&after);
    for line in String::from_utf8_lossy(&before).lines() {
        if line.contains(r#""type":"response_item""#) {
            assert!(
                after_text.lines().any(|l| l == line),
                "a history line was lost: {line}\n{context}"
            );
        }
    }
    let lines: Vec<Value> = old_lines.iter().chain(&new_lines).cloned().collect();
    assert_valid_history(&lines);
    assert_one_terminal_per_turn_in_rollout(&lines);

    // A turn the kill cut off is closed as interrupted, then the new turn runs.
    let old_events = lifecycle_events(&old_lines);
    let open_turn = old_events
        .last()
        .filter(|(kind, _)| kind == "turn_started")
        .map(|(_, turn)| turn.clone());
    let new_events = lifecycle_events(&new_lines);
    let new_items = response_items(&new_lines);
    if let Some(open_turn) = open_turn {
        assert!(
            resumed.stderr.contains("cut off when tiller stopped"),
            "the resume did not say the last turn was cut off: {context}"
        );
        assert_eq!(
            new_events.first(),
            Some(&("turn_aborted".to_owned(), open_turn)),
            "the cut-off turn was not closed first: {context}"
        );
        assert!(
            new_items
                .iter()
                .any(|i| i["role"] == "user" && message_text(i).contains("<turn_aborted>")),
            "no interrupted marker for the model: {context}"
        );
    }
    assert_eq!(
        new_events.last().map(|(kind, _)| kind.as_str()),
        Some("turn_completed"),
        "{context}"
    );
    assert!(
        new_items
            .iter()
            .any(|i| i["role"] == "user" && message_text(i) == RESUME_PROMPT),
        "the new prompt is not in the rollout: {context}"
    );
    assert!(
        new_items
            .iter()
            .any(|i| i["role"] == "assistant" && message_text(i) == RESUMED_ANSWER),
        "the new answer is not in the rollout: {context}"
    );
    landed
}

/// Where the kill landed, going by the `--json` lines the run printed.
fn landed(events: &[Value]) -> Landed {
    let printed = |kind: &str| events.iter().filter(|e| event_type(e) == kind).count();
    let commands_started = events
        .iter()
        .filter(|e| event_type(e) == "item.started" && e["item"]["type"] == "command_execution")
        .count();
    if printed("turn.completed") + printed("turn.failed") + printed("turn.aborted") > 0 {
        Landed::AfterTurn
    } else if commands_started > completed_items(events, "command_execution").len() {
        Landed::InCommand
    } else if printed("turn.started") > 0 {
        Landed::InTurn
    } else {
        Landed::BeforeTurn
    }
}
