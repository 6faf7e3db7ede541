//! `apply_patch` through the real server: a multi-file patch (add, update
//! with a move, delete) written and shown as one `fileChange` item with a
//! diff per file (schema-checked); a chunk that does not match changes
//! nothing and tells the model which file and chunk; under `untrusted` the
//! edit is put to the client first, and a "decline" leaves every file as it
//! was.

use serde_json::{Value, json};
use tiller_mock_model::Step;

use super::support::{AppServer, Fixture, completed_items, shell};

const PATCH: &str = "*** Begin Patch
*** Add File: notes/new.txt
+hello
*** Update File: src/lib.rs
*** Move to: src/main.rs
@@ fn main() {
-    println!(\"old\");
+    println!(\"new\");
 }
*** Delete File: gone.txt
*** End Patch";

fn patch_step(patch: &str) -> Step {
    patch_call("call_patch", patch)
}

/// The model calls `apply_patch` (the function tool) with `patch`.
fn patch_call(call_id: &str, patch: &str) -> Step {
    Step::function_call(call_id, "apply_patch", json!({ "input": patch }))
}

/// `tiller exec FLAGS --cd WORK edit`, to its end.
async fn exec_in(
    fixture: &Fixture,
    work: &std::path::Path,
    flags: &[&str],
) -> crate::suite::support::Finished {
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--cd", work.to_str().unwrap(), "edit"]);
    crate::suite::support::run(&mut fixture.scratch.tiller(&args)).await
}

/// Initialize `server` and start a thread in `work` under `untrusted`.
async fn untrusted_thread(server: &mut AppServer, work: &std::path::Path) -> String {
    server.initialize().await;
    server
        .call(
            "thread/start",
            json!({"cwd": work.to_str().unwrap(), "approvalPolicy": "untrusted"}),
        )
        .await["thread"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn workspace(fixture: &Fixture) -> std::path::PathBuf {
    let work = fixture.scratch.work();
    std::fs::create_dir_all(work.join("src")).unwrap();
    std::fs::write(
        work.join("src/lib.rs"),
        "// a file\nfn main() {\n    println!(\"old\");\n}\n",
    )
    .unwrap();
    std::fs::write(work.join("gone.txt"), "bye\n").unwrap();
    work
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_file_patch_is_applied_and_shown_as_one_file_change() {
    let fixture = Fixture::new(vec![patch_step(PATCH), Step::text("patched")]).await;
    let work = workspace(&fixture);
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "edit", None).await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");
    assert_eq!(
        std::fs::read_to_string(work.join("notes/new.txt")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("src/main.rs")).unwrap(),
        "// a file\nfn main() {\n    println!(\"new\");\n}\n"
    );
    assert!(!work.join("src/lib.rs").exists());
    assert!(!work.join("gone.txt").exists());
    let changes = completed_items(&server.log, &turn, "fileChange");
    assert_eq!(changes.len(), 1, "{}", server.dump());
    let item = changes[0];
    assert_eq!(item["status"], "completed");
    let kinds: Vec<&Value> = item["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["kind"])
        .collect();
    assert_eq!(
        kinds,
        [
            &json!({"type": "add"}),
            &json!({"type": "update", "move_path": "src/main.rs"}),
            &json!({"type": "delete"})
        ]
    );
    // The turn's whole diff, once per patch.
    let whole: Vec<&Value> = server
        .log
        .iter()
        .filter(|l| l["method"] == "turn/diff/updated")
        .collect();
    assert_eq!(whole.len(), 1, "{}", server.dump());
    assert_eq!(whole[0]["params"]["turnId"], turn.as_str());
    let turn_diff = whole[0]["params"]["diff"].as_str().unwrap();
    for header in [
        "+++ b/notes/new.txt",
        "--- a/gone.txt",
        "--- a/src/lib.rs",
        "+++ b/src/main.rs",
    ] {
        assert!(turn_diff.contains(header), "{header} not in {turn_diff}");
    }
    let diff = item["changes"][1]["diff"].as_str().unwrap();
    assert!(
        diff.contains("-    println!(\"old\");\n+    println!(\"new\");"),
        "{diff}"
    );
    server.close().await.assert_success();
    let requests = fixture.requests();
    assert!(
        requests[1]
            .raw_body
            .contains("Success. Updated the following files"),
        "{}",
        requests[1].raw_body
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_that_does_not_match_changes_nothing_and_names_the_file() {
    let bad = PATCH.replace(
        "-    println!(\"old\");",
        "-    println!(\"no such line\");",
    );
    let fixture = Fixture::new(vec![patch_step(&bad), Step::text("sorry")]).await;
    let work = workspace(&fixture);
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "edit", None).await;
    server.wait_completed(&turn).await;
    assert!(!work.join("notes/new.txt").exists(), "nothing is written");
    assert!(work.join("gone.txt").exists());
    assert!(work.join("src/lib.rs").exists());
    server.close().await.assert_success();
    let requests = fixture.requests();
    let told = &requests[1].raw_body;
    assert!(
        told.contains("src/lib.rs") && told.contains("chunk 1"),
        "{told}"
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_untrusted_an_edit_is_asked_and_a_decline_writes_nothing() {
    let fixture = Fixture::new(vec![patch_step(PATCH), Step::text("ok")]).await;
    let work = workspace(&fixture);
    let mut server = fixture.spawn();
    let thread = untrusted_thread(&mut server, &work).await;
    let turn = server.start_turn(&thread, "edit", None).await;
    let at = server
        .wait_for("the approval request", |l| {
            l["method"] == "item/fileChange/requestApproval"
        })
        .await;
    let request = server.log[at].clone();
    assert!(
        request["params"]["reason"]
            .as_str()
            .unwrap()
            .contains("untrusted"),
        "{request}"
    );
    assert_eq!(request["params"]["grantRoot"], Value::Null);
    // The item it asks about was shown first, with its diffs.
    let started = server.log[..at]
        .iter()
        .find(|l| l["method"] == "item/started" && l["params"]["item"]["type"] == "fileChange")
        .expect("the file change item started before the request");
    assert_eq!(started["params"]["item"]["id"], request["params"]["itemId"]);
    let answer = json!({"id": request["id"], "result": {"decision": "decline"}});
    server.write_raw(format!("{answer}\n").as_bytes()).await;
    server.wait_completed(&turn).await;
    assert!(!work.join("notes/new.txt").exists());
    assert!(work.join("gone.txt").exists());
    let changes = completed_items(&server.log, &turn, "fileChange");
    assert_eq!(changes[0]["status"], "declined");
    server.close().await.assert_success();
    fixture.finish().await;
}

/// Under `untrusted` with `auto_approve_workspace_edits`, an edit inside the
/// workspace goes ahead unasked; one that writes outside it is still asked
/// (`grantRoot` says where), and written once accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_inside_the_workspace_may_go_ahead_and_edits_outside_always_ask() {
    let fixture = Fixture::new(vec![
        patch_call(
            "call_in",
            "*** Begin Patch\n*** Add File: inside.txt\n+in\n*** End Patch",
        ),
        patch_call(
            "call_out",
            "*** Begin Patch\n*** Add File: ../elsewhere/out.txt\n+out\n*** End Patch",
        ),
        Step::text("done"),
    ])
    .await;
    let work = workspace(&fixture);
    let mut server = fixture.spawn_with(&["-c", "auto_approve_workspace_edits=true"]);
    let thread = untrusted_thread(&mut server, &work).await;
    let turn = server.start_turn(&thread, "edit", None).await;
    let at = server
        .wait_for("the approval request", |l| {
            l["method"] == "item/fileChange/requestApproval"
        })
        .await;
    assert_eq!(
        std::fs::read_to_string(work.join("inside.txt")).unwrap(),
        "in\n",
        "the edit inside went ahead unasked"
    );
    let request = server.log[at].clone();
    let outside = fixture.scratch.work().parent().unwrap().join("elsewhere");
    let grant = request["params"]["grantRoot"].as_str().unwrap();
    assert!(
        grant.starts_with(
            &std::fs::canonicalize(outside.parent().unwrap())
                .unwrap()
                .join("elsewhere")
                .display()
                .to_string()
        ),
        "{request}"
    );
    let answer = json!({"id": request["id"], "result": {"decision": "accept"}});
    server.write_raw(format!("{answer}\n").as_bytes()).await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");
    assert_eq!(
        std::fs::read_to_string(outside.join("out.txt")).unwrap(),
        "out\n"
    );
    let asked = server
        .log
        .iter()
        .filter(|l| l["method"] == "item/fileChange/requestApproval")
        .count();
    assert_eq!(asked, 1, "{}", server.dump());
    server.close().await.assert_success();
    fixture.finish().await;
}

/// `tiller exec --json` shows the edit as Codex's `file_change` item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_json_shows_a_file_change_item() {
    let fixture = Fixture::new(vec![patch_step(PATCH), Step::text("patched")]).await;
    let work = workspace(&fixture);
    let done = exec_in(&fixture, &work, &["--json"]).await;
    done.assert_exit(0);
    let items: Vec<Value> = done
        .json()
        .into_iter()
        .filter(|l| l["type"] == "item.completed" && l["item"]["type"] == "file_change")
        .collect();
    assert_eq!(items.len(), 1, "{}", done.stdout);
    assert_eq!(items[0]["item"]["status"], "completed");
    assert_eq!(
        items[0]["item"]["changes"],
        json!([{"path": "notes/new.txt", "kind": "add"},
               {"path": "src/lib.rs", "kind": "update"},
               {"path": "gone.txt", "kind": "delete"}])
    );
    assert!(work.join("src/main.rs").exists());
    fixture.finish().await;
}

/// `thread/revert` with tiller's `restoreFiles`: the files the turn changed
/// are as they were before it, the answer says which, and the thread has no
/// turn left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_with_restore_files_puts_the_workspace_back() {
    let fixture = Fixture::new(vec![patch_step(PATCH), Step::text("patched")]).await;
    let work = workspace(&fixture);
    let lib = std::fs::read(work.join("src/lib.rs")).unwrap();
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "edit", None).await;
    server.wait_completed(&turn).await;
    assert!(work.join("src/main.rs").exists());
    let reverted = server
        .call(
            "thread/revert",
            json!({"threadId": thread, "beforeTurnId": turn, "restoreFiles": true}),
        )
        .await;
    let sorted = |v: &Value| {
        let mut paths: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        paths.sort();
        paths
    };
    let files = &reverted["files"];
    assert_eq!(
        sorted(&files["restored"]),
        ["gone.txt", "src/lib.rs"],
        "{reverted}"
    );
    assert_eq!(
        sorted(&files["removed"]),
        ["notes/new.txt", "src/main.rs"],
        "{reverted}"
    );
    assert_eq!(files["conflicts"], json!([]));
    assert_eq!(reverted["thread"]["turns"], json!([]));
    assert_eq!(std::fs::read(work.join("src/lib.rs")).unwrap(), lib);
    assert_eq!(
        std::fs::read_to_string(work.join("gone.txt")).unwrap(),
        "bye\n"
    );
    assert!(!work.join("src/main.rs").exists());
    assert!(!work.join("notes").exists());

    // tiller's `thread/unrevert` takes it back: the turn and its files.
    let back = server
        .call("thread/unrevert", json!({"threadId": thread}))
        .await;
    assert_eq!(back["thread"]["turns"][0]["id"], turn.as_str(), "{back}");
    assert_eq!(
        sorted(&back["files"]["restored"]),
        ["notes/new.txt", "src/main.rs"],
        "{back}"
    );
    assert!(work.join("src/main.rs").exists());
    assert!(!work.join("gone.txt").exists());
    let again = server
        .call_err("thread/unrevert", json!({"threadId": thread}))
        .await;
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("no revert to take back"),
        "{again}"
    );
}

/// A patch sent through `shell` as an `apply_patch` heredoc (as Codex's models
/// send it) is applied as a patch: a file change item, no command run; the
/// `cd DIR &&` form applies it in that folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_sent_as_a_shell_heredoc_is_a_file_change() {
    let script = format!(
        "cd src && apply_patch <<'EOF'\n{}\nEOF\n",
        "*** Begin Patch\n*** Update File: lib.rs\n@@\n-    println!(\"old\");\n+    println!(\"heredoc\");\n*** End Patch"
    );
    let fixture = Fixture::new(vec![shell("call_heredoc", &script), Step::text("patched")]).await;
    let work = workspace(&fixture);
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "edit", None).await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");
    assert!(
        std::fs::read_to_string(work.join("src/lib.rs"))
            .unwrap()
            .contains("println!(\"heredoc\")")
    );
    let changes = completed_items(&server.log, &turn, "fileChange");
    assert_eq!(changes.len(), 1, "{}", server.dump());
    assert_eq!(changes[0]["changes"][0]["path"], "lib.rs");
    assert!(completed_items(&server.log, &turn, "commandExecution").is_empty());
    let output = fixture.mock.requests()[1].body["input"].to_string();
    assert!(
        output.contains("Success. Updated the following files"),
        "{output}"
    );
}

/// `tiller exec` under `untrusted` with no terminal to ask on: the edit is
/// declined, and the note names the files and how to allow edits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_without_a_terminal_declines_an_edit_and_says_how_to_allow_it() {
    let fixture = Fixture::new(vec![patch_step(PATCH), Step::text("ok")]).await;
    let work = workspace(&fixture);
    let done = exec_in(&fixture, &work, &["--approval", "untrusted"]).await;
    done.assert_exit(0);
    assert!(
        done.stderr
            .contains("denied: edit notes/new.txt, src/lib.rs, gone.txt"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("to allow edits"), "{}", done.stderr);
    assert!(work.join("gone.txt").exists());
    assert!(!work.join("notes").exists());
    let output = fixture.requests()[1].body["input"].to_string();
    assert!(output.contains("the user declined the edit"), "{output}");
}

/// With `experimental_use_freeform_apply_patch`, `apply_patch` is offered as
/// a custom tool with the patch grammar; the model's `custom_tool_call` is
/// applied, and its output goes back as a `custom_tool_call_output` (the mock
/// refuses any other pairing, as the API does). Interrupted while it waits for
/// an approval, the call still gets an output of its own kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeform_patch_is_applied_and_answered_in_kind() {
    let fixture = Fixture::new(vec![
        Step::custom_tool_call("call_free", "apply_patch", PATCH),
        Step::text("patched"),
        Step::custom_tool_call(
            "call_asked",
            "apply_patch",
            "*** Begin Patch\n*** Add File: later.txt\n+x\n*** End Patch",
        ),
        Step::text("after the interrupt"),
    ])
    .await;
    let work = workspace(&fixture);
    let mut server = fixture.spawn_with(&["-c", "experimental_use_freeform_apply_patch=true"]);
    server.initialize().await;
    let thread = server.start_thread(&fixture.scratch).await;
    let turn = server.start_turn(&thread, "edit", None).await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");
    assert!(work.join("src/main.rs").exists());
    assert_eq!(completed_items(&server.log, &turn, "fileChange").len(), 1);
    let requests = fixture.requests();
    let tool = requests[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "apply_patch")
        .unwrap()
        .clone();
    assert_eq!(tool["type"], "custom", "{tool}");
    assert_eq!(tool["format"]["syntax"], "lark", "{tool}");
    let input = requests[1].body["input"].as_array().unwrap().clone();
    let kinds: Vec<&str> = input.iter().filter_map(|i| i["type"].as_str()).collect();
    assert!(
        kinds.contains(&"custom_tool_call") && kinds.contains(&"custom_tool_call_output"),
        "{kinds:?}"
    );

    // The next turn asks (untrusted) and is interrupted while it waits.
    server
        .call(
            "thread/settings/update",
            json!({"threadId": thread, "approvalPolicy": "untrusted"}),
        )
        .await;
    let turn = server.start_turn(&thread, "edit again", None).await;
    server
        .wait_for("the approval request", |l| {
            l["method"] == "item/fileChange/requestApproval"
        })
        .await;
    server
        .call(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
        )
        .await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "interrupted", "{done}");
    assert!(!work.join("later.txt").exists());
    let turn = server.start_turn(&thread, "go on", None).await;
    server.wait_completed(&turn).await;
    let last = fixture.requests().last().unwrap().body["input"].to_string();
    assert!(last.contains("custom_tool_call_output"), "{last}");
    server.close().await.assert_success();
    fixture.finish().await;
}
