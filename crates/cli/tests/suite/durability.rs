//! What tiller promises to save, it saves, or it says it could not: a full
//! disk fails the operation the promise is attached to; one session has one
//! writer; a damaged or hostile sessions folder costs a warning, never a
//! session or a hang.
//!
//! The full disk is real: tiller runs in a mount namespace of its own where
//! `home/sessions` is a small tmpfs ([`Scratch::tiller_on_small_disk`]), and a
//! tool the model calls fills it, as a build filling a disk would.

use std::io::Write;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::support::{
    DEADLINE, Running, Scratch, assert_valid_history, only_event, parse_rollout, run, shell_step,
    text_step, thread_id,
};

/// A tool script that fills the disk of `$TILLER_HOME/sessions`.
/// Its output (30 kB) needs more room than the last page of the rollout has.
const FILL_THE_DISK: &str = "head -c 8000000 /dev/zero > \"$TILLER_HOME/sessions/fill\" 2>/dev/null; \
     head -c 30000 /dev/zero | tr '\\0' x";

#[tokio::test]
async fn exec_exits_non_zero_when_the_turns_end_cannot_be_saved() {
    let scratch = Scratch::new();
    let script = scratch.script(json!([
        shell_step("call_fill", FILL_THE_DISK),
        text_step("done")
    ]));
    let work = scratch.work();
    let finished = run(&mut scratch.tiller_on_small_disk(
        &[
            "exec",
            "--json",
            "--cd",
            work.to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
            "fill the disk",
        ],
        512,
        false,
    ))
    .await;
    finished.assert_exit(1);
    let events = finished.json();
    let (_, failed) = only_event(&events, "turn.failed");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("could not save the session") && message.contains("No space left"),
        "{message}"
    );
    assert!(
        events.iter().all(|e| e["type"] != "turn.completed"),
        "a turn whose end was not saved was reported completed: {events:#?}"
    );
    assert!(
        finished.stderr.contains("No space left"),
        "stderr does not say why: {}",
        finished.stderr
    );
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn exec_on_a_full_disk_refuses_to_start_and_says_why() {
    let scratch = Scratch::new();
    let script = scratch.script(json!([text_step("never asked")]));
    let work = scratch.work();
    for json in [true, false] {
        let mut args = vec![
            "exec",
            "--cd",
            work.to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
        ];
        if json {
            args.push("--json");
        }
        args.push("hello");
        let finished = run(&mut scratch.tiller_on_small_disk(&args, 256, true)).await;
        assert_ne!(finished.status.code(), Some(0), "{finished:?}");
        assert!(
            finished.stderr.contains("could not save the session")
                && finished.stderr.contains("No space left"),
            "stderr: {}",
            finished.stderr
        );
        assert!(
            !finished.stdout.contains("turn.completed") && !finished.stdout.contains("never asked"),
            "stdout: {}",
            finished.stdout
        );
    }
}

/// A session run to completion; its id.
async fn saved_session(scratch: &Scratch) -> String {
    let script = scratch.script_named("first.json", json!([text_step("first answer")]));
    let finished = run(&mut scratch.exec(&script, &["--json", "first"])).await;
    finished.assert_exit(0);
    thread_id(&finished.json())
}

#[tokio::test]
async fn a_second_resume_of_a_running_session_is_refused_with_the_pid_or_waits_if_asked() {
    let scratch = Scratch::new();
    let id = saved_session(&scratch).await;
    let pid_file = scratch.work_file("tool.pid");
    let long = scratch.script_named(
        "long.json",
        json!([
            shell_step(
                "call_sleep",
                &format!("echo $$ > {}; exec sleep 60", pid_file.display())
            ),
            text_step("never"),
        ]),
    );
    let mut first = Running::spawn(&mut scratch.exec(&long, &["--json", "resume", &id, "sleep"]));
    first
        .wait_stdout("the tool to start", |out| out.contains("command_execution"))
        .await;
    super::support::wait_for_file(&pid_file).await;
    let first_pid = first.pid();

    // A second writer is refused at once, naming the first.
    let quick = scratch.script_named("quick.json", json!([text_step("second answer")]));
    let refused = run(&mut scratch.exec(&quick, &["--json", "resume", &id, "again"])).await;
    refused.assert_exit(1);
    assert!(
        refused.stderr.contains(&format!(
            "in use by another tiller process (pid {first_pid})"
        )),
        "{}",
        refused.stderr
    );
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);

    // An upper-case spelling of the id names the same session.
    let upper = id.to_ascii_uppercase();
    let refused = run(&mut scratch.exec(&quick, &["--json", "resume", &upper, "again"])).await;
    refused.assert_exit(1);
    assert!(refused.stderr.contains("in use"), "{}", refused.stderr);

    // `--wait` waits for the first to finish, then continues the session.
    let mut waiting =
        Running::spawn(&mut scratch.exec(&quick, &["--json", "resume", "--wait", &id, "after"]));
    first.signal(Signal::SIGINT);
    let first = first.finish(Duration::from_secs(5)).await;
    first.assert_exit(130);
    waiting
        .wait_stdout("the waiting resume to finish", |out| {
            out.contains("turn.completed")
        })
        .await;
    let waited = waiting.finish(DEADLINE).await;
    waited.assert_exit(0);
    assert!(
        !waited.stderr.contains("cut off"),
        "the waiting resume saw the first one's turn as cut off: {}",
        waited.stderr
    );
    let rollout = scratch.rollout_of(&id);
    let lines = parse_rollout(&std::fs::read(&rollout).unwrap(), "rollout");
    assert_valid_history(&lines);
    super::support::assert_one_terminal_per_turn_in_rollout(&lines);
    scratch.wait_no_process_left().await;
}

/// The first line of a rollout whose session has a first prompt ending in `é`.
fn write_rollout(scratch: &Scratch, id: &str, body: &[u8]) -> std::path::PathBuf {
    let dir = scratch.home().join("sessions/2026/01/02");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("rollout-2026-01-02T03-04-05-{id}.jsonl"));
    std::fs::write(&path, body).unwrap();
    path
}

#[tokio::test]
async fn a_last_line_cut_inside_a_multibyte_character_loses_nothing_before_it() {
    let scratch = Scratch::new();
    let id = saved_session(&scratch).await;
    let path = scratch.rollout_of(&id);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    // A line cut in the middle of `é` (0xC3 0xA9): only its first byte was written.
    file.write_all(
        b"{\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"type\":\"response_item\",\"payload\":{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"caf\xC3",
    )
    .unwrap();
    drop(file);

    let listed = scratch.sessions_json().await;
    assert!(
        listed.iter().any(|s| s["id"] == id.as_str()),
        "the session vanished from `tiller sessions`: {listed:#?}"
    );
    let script = scratch.script_named("resume.json", json!([text_step("resumed")]));
    let resumed = run(&mut scratch.exec(&script, &["--json", "resume", &id, "go on"])).await;
    resumed.assert_exit(0);
    assert!(
        resumed.stderr.contains("cut off"),
        "no warning about the cut line: {}",
        resumed.stderr
    );
    only_event(&resumed.json(), "turn.completed");

    // A line with bad UTF-8 in the middle of a file is skipped with its number.
    let other = "01a1fdef-0000-7000-8000-000000000042";
    let meta = format!(
        "{{\"timestamp\":\"t\",\"type\":\"session_meta\",\"payload\":{{\"id\":\"{other}\",\"created\":\"2026-01-02T03:04:05Z\",\"cwd\":\"/\",\"model\":\"m\",\"provider\":\"p\",\"tiller_version\":\"0\"}}}}\n"
    );
    let mut body = meta.into_bytes();
    body.extend_from_slice(b"{\"bad\": \"\xFF\xFE\"}\n");
    write_rollout(&scratch, other, &body);
    let listed = scratch.sessions_json().await;
    assert!(listed.iter().any(|s| s["id"] == other), "{listed:#?}");
}

#[tokio::test]
async fn a_fifo_in_the_sessions_folder_does_not_hang_tiller_sessions_or_resume() {
    let scratch = Scratch::new();
    let id = saved_session(&scratch).await;
    let dir = scratch.home().join("sessions/2026/01/02");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo_id = "01a1fdef-1111-7000-8000-000000000001";
    let fifo = dir.join(format!("rollout-2026-01-02T03-04-05-{fifo_id}.jsonl"));
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // A folder symlinked to its parent would loop a walker that follows links.
    std::os::unix::fs::symlink(scratch.home().join("sessions"), dir.join("loop")).unwrap();

    // `run` fails the test if the command does not end within the deadline.
    let listed = scratch.sessions_json().await;
    let ids: Vec<&str> = listed.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, [id.as_str()], "{listed:#?}");

    let script = scratch.script_named("resume.json", json!([text_step("x")]));
    let refused = run(&mut scratch.exec(&script, &["--json", "resume", fifo_id, "go"])).await;
    refused.assert_exit(1);
    assert!(refused.stderr.contains(fifo_id), "{}", refused.stderr);
}

/// The lines of the rollout a server in its own mount namespace is writing.
pub fn rollout_seen_by(pid: i32, scratch: &Scratch, id: &str) -> Vec<Value> {
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    let inside = scratch.home().join("sessions");
    let mut dirs = vec![root.join(inside.strip_prefix("/").unwrap())];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(path);
            } else if path.to_string_lossy().ends_with(&format!("{id}.jsonl")) {
                return parse_rollout(&std::fs::read(&path).unwrap(), "rollout");
            }
        }
    }
    panic!("no rollout of {id} under {}", scratch.home().display());
}
