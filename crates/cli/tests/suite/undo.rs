//! `tiller undo` through the real binary: after a completed turn, an
//! interrupted one and one killed with SIGKILL, the workspace is put back
//! byte for byte as it was before the turn (contents, executable bits,
//! symbolic links; the user's own `.git` untouched), the conversation no longer
//! has the turn and the next model request is valid; `--redo` takes the undo
//! back; a file changed by hand after the turn is left alone and named.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tiller_mock_model::{MockModel, Script, Step};

use super::support::{PROMPT_EXIT, Running, Scratch, run, shell_step, text_step, wait_for_file};

/// One entry of a folder as a test compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File { bytes: Vec<u8>, executable: bool },
    Link(std::path::PathBuf),
}

/// Every file and link under `root`, by path, but those under `skip`.
fn tree(root: &Path, skip: &[&str]) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, skip: &[&str], out: &mut BTreeMap<String, Entry>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if skip
                .iter()
                .any(|s| rel == *s || rel.starts_with(&format!("{s}/")))
            {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_symlink() {
                out.insert(rel, Entry::Link(std::fs::read_link(&path).unwrap()));
            } else if meta.is_dir() {
                walk(root, &path, skip, out);
            } else {
                out.insert(
                    rel,
                    Entry::File {
                        bytes: std::fs::read(&path).unwrap(),
                        executable: meta.permissions().mode() & 0o111 != 0,
                    },
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, skip, &mut out);
    out
}

fn assert_same_tree(found: &BTreeMap<String, Entry>, expected: &BTreeMap<String, Entry>) {
    let names = |t: &BTreeMap<String, Entry>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(found), names(expected), "the files differ");
    for (path, entry) in expected {
        assert_eq!(&found[path], entry, "{path} differs");
    }
}

fn write(root: &Path, path: &str, bytes: &[u8]) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, bytes).unwrap();
}

/// A workspace with text, binary, executable and linked files.
fn workspace(scratch: &Scratch) -> std::path::PathBuf {
    let work = scratch.work();
    write(
        &work,
        "src/lib.rs",
        b"pub fn answer() -> u32 {\n    41\n}\n",
    );
    write(&work, "run.sh", b"#!/bin/sh\necho run\n");
    std::fs::set_permissions(work.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    write(&work, "data.bin", &[0, 159, 146, 150, 255, 10, 0, 1]);
    write(&work, "notes/keep.txt", b"left alone\n");
    std::os::unix::fs::symlink("src/lib.rs", work.join("link")).unwrap();
    work
}

/// What the turn does to [`workspace`]: edits, deletes, adds, changes a
/// mode and a link, through the shell and through `apply_patch`.
const TURN_SHELL: &str = "printf '    42\\n' >> src/lib.rs && chmod -x run.sh && rm data.bin \
     && ln -sfn notes/keep.txt link && mkdir -p made/deep && echo new > made/deep/file.txt";

const TURN_PATCH: &str = "*** Begin Patch
*** Add File: src/added.rs
+pub const ADDED: bool = true;
*** Update File: notes/keep.txt
@@
-left alone
+not left alone
*** End Patch";

fn turn_steps() -> Value {
    json!([
        shell_step("call_edit", TURN_SHELL),
        {"type": "response", "items": [{"type": "function_call", "name": "apply_patch", "call_id": "call_patch", "arguments": {"input": TURN_PATCH}}]},
        text_step("edited"),
    ])
}

/// A turn (`tiller exec`) that writes `turn` into `src/lib.rs` and
/// `notes/keep.txt`.
async fn edit_turn(scratch: &Scratch) {
    let script = scratch.script(json!([
        shell_step(
            "call_edit",
            "echo turn > src/lib.rs && echo turn > notes/keep.txt"
        ),
        text_step("edited"),
    ]));
    run(&mut scratch.exec(&script, &["edit"]))
        .await
        .assert_exit(0);
}

/// The session goes on after an undo (`tiller resume --last PROMPT` against a
/// mock that refuses an invalid history): the input of its model request.
async fn next_request(scratch: &Scratch, prompt: &str) -> String {
    let mock = MockModel::start(Script::new(vec![Step::text("fresh start")]))
        .await
        .unwrap();
    scratch.mock_config(&mock.base_url(), "");
    run(&mut scratch.tiller(&["resume", "--last", prompt]))
        .await
        .assert_exit(0);
    mock.requests()[0].body["input"].to_string()
}

/// `git` with no config of the developer's.
fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_after_a_completed_turn_restores_the_tree_and_the_history_and_redo_takes_it_back() {
    let scratch = Scratch::new();
    let work = workspace(&scratch);
    // A repository of the user's: its `.git` must come out untouched, and
    // its ignored files are not the checkpoint's business.
    write(&work, ".gitignore", b"target/\n");
    write(&work, "target/build.o", b"old object\n");
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "start"]);
    let before = tree(&work, &["target"]);

    let script = scratch.script(turn_steps());
    let done = run(&mut scratch.exec(&script, &["edit things"])).await;
    done.assert_exit(0);
    write(&work, "target/build.o", b"new object\n");
    let after = tree(&work, &["target"]);
    assert_ne!(after, before, "the turn changed nothing");

    let undone = run(&mut scratch.tiller(&["undo", "--last"])).await;
    undone.assert_exit(0);
    assert!(undone.stdout.contains("undone: turn"), "{}", undone.stdout);
    assert!(
        undone.stdout.contains("removed  made/deep/file.txt"),
        "{}",
        undone.stdout
    );
    assert_same_tree(&tree(&work, &["target"]), &before);
    assert!(
        !work.join("made").exists(),
        "the folders the turn made are gone"
    );
    assert_eq!(
        std::fs::read(work.join("target/build.o")).unwrap(),
        b"new object\n",
        "an ignored file is not restored"
    );

    let redone = run(&mut scratch.tiller(&["undo", "--last", "--redo"])).await;
    redone.assert_exit(0);
    assert!(redone.stdout.contains("redone: turn"), "{}", redone.stdout);
    assert_same_tree(&tree(&work, &["target"]), &after);

    // Undone again, then the session goes on: the model no longer sees the
    // turn, and the request is one the mock (which checks every call has
    // its output) accepts.
    run(&mut scratch.tiller(&["undo", "--last"]))
        .await
        .assert_exit(0);
    assert_same_tree(&tree(&work, &["target"]), &before);
    let input = next_request(&scratch, "what now?").await;
    assert!(input.contains("what now?"), "{input}");
    assert!(
        !input.contains("edit things"),
        "the undone turn was sent: {input}"
    );
    assert!(
        !input.contains("call_edit"),
        "the undone turn was sent: {input}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_after_an_interrupted_turn_restores_what_it_had_done() {
    undo_after_a_stopped_turn(Signal::SIGINT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_after_a_sigkill_resumes_the_session_and_restores_the_tree() {
    undo_after_a_stopped_turn(Signal::SIGKILL).await;
}

/// A turn stopped by `signal` (SIGINT: interrupted; SIGKILL: cut off, and
/// closed by the undo's resume) while its command sleeps after changing
/// files: the undo restores the tree, and the next request has neither the
/// turn nor its interrupted marker.
async fn undo_after_a_stopped_turn(signal: Signal) {
    let scratch = Scratch::new();
    let work = workspace(&scratch);
    let before = tree(&work, &[]);
    let script = scratch.script(json!([shell_step(
        "call_half",
        "echo half > src/lib.rs && rm data.bin && chmod -x run.sh && echo started > began.txt && sleep 60"
    )]));
    let exec = Running::spawn(&mut scratch.exec(&script, &["--json", "do it"]));
    wait_for_file(&work.join("began.txt")).await;
    exec.signal(signal);
    let stopped = exec.finish(PROMPT_EXIT).await;
    scratch.wait_no_process_left().await;
    if signal == Signal::SIGINT {
        assert_eq!(stopped.status.code(), Some(130), "{}", stopped.stderr);
    }

    if signal == Signal::SIGKILL {
        // As if tiller had died before the command's item reached the file
        // (only the checkpoint line is in it before the tool runs): the turn
        // is still known to have changed files.
        let path = &scratch.rollout_files()[0];
        let text = std::fs::read_to_string(path).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains(r#""type":"command_execution""#))
            .collect();
        assert!(kept.len() < text.lines().count(), "{text}");
        std::fs::write(path, format!("{}\n", kept.join("\n"))).unwrap();
    }
    let undone = run(&mut scratch.tiller(&["undo", "--last"])).await;
    undone.assert_exit(0);
    if signal == Signal::SIGKILL {
        assert!(undone.stderr.contains("cut off"), "{}", undone.stderr);
    }
    assert_same_tree(&tree(&work, &[]), &before);

    let input = next_request(&scratch, "again").await;
    assert!(
        !input.contains("call_half"),
        "the undone turn was sent: {input}"
    );
    assert!(
        !input.contains("turn_aborted"),
        "its marker was sent: {input}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_by_hand_after_the_turn_is_left_and_named() {
    let scratch = Scratch::new();
    let work = workspace(&scratch);
    edit_turn(&scratch).await;
    write(&work, "src/lib.rs", b"mine, by hand\n");

    let undone = run(&mut scratch.tiller(&["undo", "--last"])).await;
    undone.assert_exit(1);
    assert!(
        undone
            .stdout
            .contains("conflict src/lib.rs: changed since the turn by someone else"),
        "{}",
        undone.stdout
    );
    assert_eq!(
        std::fs::read(work.join("src/lib.rs")).unwrap(),
        b"mine, by hand\n"
    );
    assert_eq!(
        std::fs::read(work.join("notes/keep.txt")).unwrap(),
        b"left alone\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_checkpoints_off_undo_says_so_and_keep_files_still_reverts() {
    let scratch = Scratch::new();
    scratch.config("checkpoints = false\n");
    let work = workspace(&scratch);
    edit_turn(&scratch).await;
    assert!(!scratch.home().join("checkpoints").exists());
    let refused = run(&mut scratch.tiller(&["undo", "--last"])).await;
    refused.assert_exit(1);
    assert!(
        refused.stderr.contains("has no checkpoint"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read(work.join("src/lib.rs")).unwrap(), b"turn\n");
    let kept = run(&mut scratch.tiller(&["undo", "--last", "--keep-files"])).await;
    kept.assert_exit(0);
    assert!(kept.stdout.contains("undone: turn"), "{}", kept.stdout);
    assert_eq!(std::fs::read(work.join("src/lib.rs")).unwrap(), b"turn\n");
}

/// Undo of two turns, the second of which ran no tool (and so took no
/// snapshot after it): the first one's tells a file the turns changed from one
/// changed by hand after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_across_a_turn_without_tools_still_sees_a_change_by_hand() {
    let scratch = Scratch::new();
    let work = workspace(&scratch);
    edit_turn(&scratch).await;
    let chat = scratch.script_named("chat.json", json!([text_step("just talking")]));
    run(&mut scratch.tiller(&[
        "resume",
        "--last",
        "--script",
        chat.to_str().unwrap(),
        "what did you do?",
    ]))
    .await
    .assert_exit(0);
    write(&work, "notes/keep.txt", b"mine, by hand\n");
    let session = scratch.sessions_json().await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let lines = super::support::rollout_lines(&scratch.rollout_of(&session));
    let first_turn = lines
        .iter()
        .find(|l| l["type"] == "event" && l["payload"]["type"] == "turn_started")
        .unwrap()["payload"]["turn_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let undone = run(&mut scratch.tiller(&["undo", &session, "--turn", &first_turn])).await;
    undone.assert_exit(1);
    assert!(
        undone.stdout.contains("conflict notes/keep.txt"),
        "{}",
        undone.stdout
    );
    assert_eq!(
        std::fs::read(work.join("src/lib.rs")).unwrap(),
        b"pub fn answer() -> u32 {\n    41\n}\n"
    );
    assert_eq!(
        std::fs::read(work.join("notes/keep.txt")).unwrap(),
        b"mine, by hand\n"
    );
}

/// A turn that ran no tool changed no file and took no snapshot: undoing it
/// takes the conversation back and says there were no files to restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_of_a_turn_without_tools_reverts_the_conversation_only() {
    let scratch = Scratch::new();
    let work = workspace(&scratch);
    let before = tree(&work, &[]);
    let script = scratch.script(json!([text_step("just talking")]));
    run(&mut scratch.exec(&script, &["hello"]))
        .await
        .assert_exit(0);
    let undone = run(&mut scratch.tiller(&["undo", "--last"])).await;
    undone.assert_exit(0);
    assert!(undone.stdout.contains("undone: turn"), "{}", undone.stdout);
    assert!(
        undone.stdout.contains("files: none to restore"),
        "{}",
        undone.stdout
    );
    assert_same_tree(&tree(&work, &[]), &before);
}
