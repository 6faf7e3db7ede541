//! Resuming from a damaged rollout file: a cut-off last line or an unreadable
//! line is skipped with a warning naming the file and line, and the session
//! goes on; a file or session that cannot be used is an error that says what
//! to do.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use super::support::{
    Finished, Scratch, assert_valid_history, completed_items, only_event, parse_rollout,
    response_items, rollout_lines, run, shell_step, text_step, thread_id,
};

/// Run a session that calls a tool and answers, to completion; its id and rollout.
async fn saved_session(scratch: &Scratch, prompt: &str) -> (String, PathBuf) {
    let script = scratch.script_named(
        "session.json",
        json!([
            shell_step("call_echo", "echo hello from the tool"),
            text_step("the tool said hello"),
        ]),
    );
    let finished = run(&mut scratch.exec(&script, &["--json", prompt])).await;
    finished.assert_exit(0);
    let id = thread_id(&finished.json());
    let path = scratch.rollout_of(&id);
    (id, path)
}

/// `tiller exec --json resume <query> PROMPT` with a script answering `answer`.
async fn resume(scratch: &Scratch, query: &str, answer: &str) -> Finished {
    let script = scratch.script_named("resume.json", json!([text_step(answer)]));
    run(&mut scratch.exec(&script, &["--json", "resume", query, "go on"])).await
}

/// A resume that worked: exit 0, the answer, a history the engine did not
/// have to repair.
fn assert_resumed(resumed: &Finished, id: &str, answer: &str) {
    resumed.assert_exit(0);
    let events = resumed.json();
    assert_eq!(thread_id(&events), id);
    only_event(&events, "turn.completed");
    let answers = completed_items(&events, "agent_message");
    assert_eq!(answers.len(), 1, "{events:#?}");
    assert_eq!(answers[0].1["text"], answer);
    assert!(
        !resumed.stderr.contains("repaired"),
        "the history had to be repaired:\n{}",
        resumed.stderr
    );
}

/// A failure before any turn: exit 1, nothing on stdout, no panic.
fn assert_refused(finished: &Finished) {
    finished.assert_exit(1);
    assert!(
        finished.stdout.is_empty(),
        "a refused resume printed events:\n{}",
        finished.stdout
    );
    assert!(
        !finished.stderr.contains("panicked"),
        "stderr:\n{}",
        finished.stderr
    );
}

#[tokio::test]
async fn truncated_last_line_is_skipped_with_a_warning() {
    let scratch = Scratch::new();
    let (id, path) = saved_session(&scratch, "say hello").await;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    // Half of a line, as a crash in the middle of a write leaves it.
    file.write_all(
        br#"{"timestamp":"2026-01-01T00:00:00.000Z","type":"response_item","payload":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"half a sent"#,
    )
    .unwrap();
    drop(file);
    let before = std::fs::read(&path).unwrap();
    let cut_line = before.iter().filter(|b| **b == b'\n').count() + 1;

    let resumed = resume(&scratch, &id, "resumed past the cut line").await;
    assert_resumed(&resumed, &id, "resumed past the cut line");
    let location = format!("{}:{cut_line}:", path.display());
    assert!(
        resumed
            .stderr
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains(&location) && l.contains("cut off")),
        "no warning naming {location}:\n{}",
        resumed.stderr
    );

    // The bytes were kept; the cut line was ended with a newline, then appended to.
    let after = std::fs::read(&path).unwrap();
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "the rollout was rewritten"
    );
    assert_eq!(after[before.len()], b'\n');
    let appended = parse_rollout(&after[before.len() + 1..], "appended lines");
    let lines: Vec<_> = parse_rollout(&before, "before")
        .into_iter()
        .chain(appended)
        .collect();
    assert_valid_history(&lines);
    assert!(
        !response_items(&lines)
            .iter()
            .any(|i| i.to_string().contains("half a sent")),
        "the cut line reached the history"
    );

    // The cut line is now in the middle of the file: the next resume skips it too.
    let again = resume(&scratch, &id, "and again").await;
    assert_resumed(&again, &id, "and again");
    assert!(
        again
            .stderr
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains(&location)),
        "no warning naming {location}:\n{}",
        again.stderr
    );
}

#[tokio::test]
async fn garbage_line_in_the_middle_is_skipped_naming_file_and_line() {
    let scratch = Scratch::new();
    let (id, path) = saved_session(&scratch, "say hello").await;
    // Between the tool call and its output.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let call_at = lines
        .iter()
        .position(|l| l.contains(r#""type":"function_call""#))
        .unwrap_or_else(|| panic!("no function_call line:\n{text}"));
    lines.insert(call_at + 1, "this is not JSON {");
    let garbage_line = call_at + 2;
    let copy = path.with_extension("rewritten");
    std::fs::write(&copy, lines.join("\n") + "\n").unwrap();
    std::fs::rename(&copy, &path).unwrap();
    let before = std::fs::read(&path).unwrap();

    let resumed = resume(&scratch, &id, "resumed past the garbage").await;
    assert_resumed(&resumed, &id, "resumed past the garbage");
    let location = format!("{}:{garbage_line}:", path.display());
    assert!(
        resumed.stderr.lines().any(|l| l.starts_with("warning:")
            && l.contains(&location)
            && l.contains("unreadable line skipped")),
        "no warning naming {location}:\n{}",
        resumed.stderr
    );
    let after = std::fs::read(&path).unwrap();
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "the rollout was rewritten"
    );
    let readable: Vec<_> = String::from_utf8_lossy(&after)
        .lines()
        .filter(|l| *l != "this is not JSON {")
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_valid_history(&readable);
}

#[tokio::test]
async fn empty_session_file_is_a_clear_error() {
    let scratch = Scratch::new();
    let (kept, _) = saved_session(&scratch, "a session that stays").await;
    let (id, path) = saved_session(&scratch, "a session that is emptied").await;
    std::fs::write(&path, "").unwrap();

    let resumed = resume(&scratch, &id, "unused").await;
    assert_refused(&resumed);
    assert!(
        resumed.stderr.contains(&path.display().to_string())
            && (resumed.stderr.contains("empty") || resumed.stderr.contains("session_meta")),
        "the error does not name the file and what is wrong with it:\n{}",
        resumed.stderr
    );
    assert!(
        std::fs::read(&path).unwrap().is_empty(),
        "the failed resume wrote to the file"
    );

    // The listing shows the good session and warns about the empty file.
    let listed = run(&mut scratch.tiller(&["sessions", "--json"])).await;
    listed.assert_exit(0);
    let sessions: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let ids: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [kept.as_str()], "{sessions:#}");
    assert!(
        listed
            .stderr
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains(&path.display().to_string())),
        "no warning about the empty file:\n{}",
        listed.stderr
    );
}

#[tokio::test]
async fn missing_session_file_or_unknown_id_says_how_to_list_sessions() {
    let scratch = Scratch::new();

    // Nothing saved yet.
    let last = run(&mut scratch.exec(
        &scratch.script(json!([text_step("unused")])),
        &["--json", "resume", "--last", "go on"],
    ))
    .await;
    assert_refused(&last);
    assert!(
        last.stderr.contains("no sessions"),
        "stderr:\n{}",
        last.stderr
    );

    let (id, path) = saved_session(&scratch, "a session").await;

    // An id no session has.
    let unknown = resume(&scratch, "0123abcd-0000-7000-8000-000000000000", "unused").await;
    assert_refused(&unknown);
    assert!(
        unknown.stderr.contains("0123abcd") && unknown.stderr.contains("tiller sessions"),
        "stderr:\n{}",
        unknown.stderr
    );

    // A session whose file is gone.
    std::fs::remove_file(&path).unwrap();
    let missing = resume(&scratch, &id, "unused").await;
    assert_refused(&missing);
    assert!(
        missing.stderr.contains(&id) && missing.stderr.contains("tiller sessions"),
        "stderr:\n{}",
        missing.stderr
    );

    // No session named at all.
    let script = scratch.script(json!([text_step("unused")]));
    let unnamed = run(&mut scratch.exec(&script, &["--json", "resume"])).await;
    assert_refused(&unnamed);
    assert!(
        unnamed.stderr.contains("tiller sessions"),
        "stderr:\n{}",
        unnamed.stderr
    );
}

#[tokio::test]
async fn ambiguous_prefix_lists_the_matches() {
    let scratch = Scratch::new();
    let (first, _) = saved_session(&scratch, "the first session").await;
    let (second, _) = saved_session(&scratch, "the second session").await;
    // Session ids are UUIDv7s, which begin with the time: two made a moment
    // apart share a prefix.
    let shared = first
        .chars()
        .zip(second.chars())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(shared > 0, "{first} and {second} share no prefix");
    let prefix = &first[..shared];

    let ambiguous = resume(&scratch, prefix, "unused").await;
    assert_refused(&ambiguous);
    assert!(
        ambiguous.stderr.contains(&first)
            && ambiguous.stderr.contains(&second)
            && ambiguous.stderr.contains("more of the id"),
        "stderr:\n{}",
        ambiguous.stderr
    );
    for id in [&first, &second] {
        let lines = rollout_lines(&scratch.rollout_of(id));
        assert!(
            !lines.iter().any(|l| l.to_string().contains("unused")),
            "an ambiguous resume touched {id}"
        );
    }

    // One more character is enough.
    let resumed = resume(&scratch, &second[..=shared], "the second one").await;
    assert_resumed(&resumed, &second, "the second one");
}
