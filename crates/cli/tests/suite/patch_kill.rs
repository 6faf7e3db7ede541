//! SIGKILL of `tiller exec` while it writes a large patch (100 files of
//! 64 KiB), at 50 instants spread over the writing: every file is, byte for
//! byte, either as it was or as the patch makes it, never torn; and a later
//! `tiller undo --last` puts every one back.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;
use tokio::time::Instant;

use super::support::{PROMPT_EXIT, Running, Scratch, run, text_step};

const FILES: usize = 100;
const LINES: usize = 2_000;
const KILLS: u32 = 50;

fn old_text(file: usize) -> String {
    (0..LINES)
        .map(|line| format!("file {file:03} line {line:04}: some text to make it long enough\n"))
        .collect()
}

fn new_text(file: usize) -> String {
    old_text(file).replace(
        &format!("file {file:03} line 1000:"),
        &format!("file {file:03} line 1000 (patched):"),
    )
}

fn name(file: usize) -> String {
    format!("f{file:03}.txt")
}

fn patch() -> String {
    let mut patch = String::from("*** Begin Patch\n");
    for file in 0..FILES {
        let line = format!("file {file:03} line 1000: some text to make it long enough");
        let patched = line.replace("line 1000:", "line 1000 (patched):");
        patch.push_str(&format!(
            "*** Update File: {}\n@@\n-{line}\n+{patched}\n",
            name(file)
        ));
    }
    patch.push_str("*** End Patch");
    patch
}

fn setup() -> (Scratch, std::path::PathBuf) {
    let scratch = Scratch::new();
    for file in 0..FILES {
        std::fs::write(scratch.work_file(&name(file)), old_text(file)).unwrap();
    }
    let script = scratch.script(json!([
        {"type": "response", "items": [{"type": "function_call", "name": "apply_patch",
            "call_id": "call_big", "arguments": {"input": patch()}}]},
        text_step("patched"),
    ]));
    (scratch, script)
}

/// Wait, within the deadline, until the file's inode changes: the patch
/// renamed its new text over it. Polls: a file written by the tool has no
/// event to wait on.
async fn wait_replaced(path: &Path, inode: u64) {
    // Before the first file, tiller starts, asks the model and reads the
    // patch: a deadline for a hang, not a timing (a loaded machine is slow).
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(path).map(|m| m.ino()).unwrap_or(inode) == inode {
        assert!(
            Instant::now() < deadline,
            "{} was never written",
            path.display()
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// How each file came out: old, new, or neither (torn).
fn outcome(work: &Path) -> (usize, usize, Vec<String>) {
    let (mut old, mut new, mut torn) = (0, 0, Vec::new());
    for file in 0..FILES {
        let text = std::fs::read_to_string(work.join(name(file))).unwrap_or_default();
        if text == old_text(file) {
            old += 1;
        } else if text == new_text(file) {
            new += 1;
        } else {
            torn.push(name(file));
        }
    }
    (old, new, torn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_50_points_of_a_large_patch_never_leaves_a_torn_file() {
    // How long the writing takes, from the first file replaced to the last.
    let (scratch, script) = setup();
    let first = scratch.work_file(&name(0));
    let last = scratch.work_file(&name(FILES - 1));
    let (first_inode, last_inode) = (
        std::fs::metadata(&first).unwrap().ino(),
        std::fs::metadata(&last).unwrap().ino(),
    );
    let exec = Running::spawn(&mut scratch.exec(&script, &["patch it"]));
    wait_replaced(&first, first_inode).await;
    let started = Instant::now();
    wait_replaced(&last, last_inode).await;
    let window = started.elapsed().max(Duration::from_millis(1));
    exec.finish(PROMPT_EXIT).await.assert_exit(0);
    assert_eq!(outcome(&scratch.work()), (0, FILES, Vec::new()));

    let mut mixed = 0;
    for kill in 0..KILLS {
        let (scratch, script) = setup();
        let first = scratch.work_file(&name(0));
        let inode = std::fs::metadata(&first).unwrap().ino();
        let exec = Running::spawn(&mut scratch.exec(&script, &["patch it"]));
        wait_replaced(&first, inode).await;
        // The sleep is the scenario: the kill lands at a chosen instant of
        // the writing (and a little past it).
        tokio::time::sleep(window * kill / (KILLS - 5)).await;
        exec.signal(Signal::SIGKILL);
        exec.finish(PROMPT_EXIT).await;
        scratch.wait_no_process_left().await;
        let (old, new, torn) = outcome(&scratch.work());
        assert!(torn.is_empty(), "kill {kill}: torn files {torn:?}");
        assert!(
            new >= 1,
            "kill {kill}: the first file was replaced before the kill"
        );
        if old > 0 {
            mixed += 1;
        }
        // Whatever the instant, the turn can be taken back whole.
        if kill % 10 == 0 {
            run(&mut scratch.tiller(&["undo", "--last"]))
                .await
                .assert_exit(0);
            assert_eq!(
                outcome(&scratch.work()),
                (FILES, 0, Vec::new()),
                "kill {kill}"
            );
        }
    }
    eprintln!("window {window:?}: {mixed} of {KILLS} kills left old and new files");
    assert!(
        mixed >= 1,
        "no kill landed while the files were being written (window {window:?})"
    );
}
