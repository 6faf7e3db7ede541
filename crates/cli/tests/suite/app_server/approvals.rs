//! Approvals over the app-server: under `untrusted`, a command that may
//! change things is put to the client as an `item/commandExecution/
//! requestApproval` server request; the answer drives the engine (accept
//! runs it, decline does not); `serverRequest/resolved` follows; a second
//! answer is ignored; an interrupt while one waits resolves it. Under
//! `on-request`, a write the sandbox denied is offered to run again outside
//! it, with the sandbox as the request's `reason`. Every line, the server
//! request included, is checked against the 0.171 schema.

use serde_json::{Value, json};
use tiller_mock_model::Step;

use super::support::{AppServer, Fixture, completed_items, shell};

const MADE: &str = "made-by-approval";

async fn untrusted_thread(fixture: &Fixture) -> (AppServer, String) {
    let mut server = fixture.spawn();
    server.initialize().await;
    let work = fixture.scratch.work();
    let started = server
        .call(
            "thread/start",
            json!({"cwd": work.to_str().unwrap(), "approvalPolicy": "untrusted"}),
        )
        .await;
    assert_eq!(started["approvalPolicy"], "untrusted");
    (server, started["thread"]["id"].as_str().unwrap().to_owned())
}

/// Wait for the approval request; its id and params.
async fn approval_request(server: &mut AppServer) -> (Value, Value) {
    let at = server
        .wait_for("the approval request", |l| {
            l["method"] == "item/commandExecution/requestApproval"
        })
        .await;
    let line = server.log[at].clone();
    (line["id"].clone(), line["params"].clone())
}

async fn answer(server: &mut AppServer, id: &Value, decision: &str) {
    let line = json!({"id": id, "result": {"decision": decision}});
    server.write_raw(format!("{line}\n").as_bytes()).await;
}

fn resolved(server: &AppServer, id: &Value) -> usize {
    server
        .notifications("serverRequest/resolved")
        .iter()
        .filter(|l| &l["params"]["requestId"] == id)
        .count()
}

fn steps() -> Vec<Step> {
    vec![
        shell("call_make", &format!("touch {MADE}")),
        Step::text("done"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_command_runs_once_and_a_second_answer_is_ignored() {
    let fixture = Fixture::new(steps()).await;
    let (mut server, thread) = untrusted_thread(&fixture).await;
    let turn = server.start_turn(&thread, "make it", None).await;
    let (id, params) = approval_request(&mut server).await;
    assert_eq!(params["threadId"], thread.as_str());
    assert_eq!(params["turnId"], turn.as_str());
    assert!(
        params["command"].as_str().unwrap().contains(MADE),
        "{params}"
    );
    server
        .wait_for("the thread waiting on approval", |l| {
            l["method"] == "thread/status/changed"
                && l["params"]["status"]["activeFlags"] == json!(["waitingOnApproval"])
        })
        .await;
    assert!(
        !fixture.scratch.work().join(MADE).exists(),
        "ran before the answer"
    );
    answer(&mut server, &id, "accept").await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");
    assert!(fixture.scratch.work().join(MADE).exists());
    assert_eq!(resolved(&server, &id), 1);
    let commands = completed_items(&server.log, &turn, "commandExecution");
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0]["status"], "completed", "{}", server.dump());

    // A second answer changes nothing, and the server serves on.
    answer(&mut server, &id, "decline").await;
    server.barrier(&thread).await;
    assert_eq!(resolved(&server, &id), 1);
    server.close().await.assert_success();
    assert_eq!(fixture.requests().len(), 2);
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_command_does_not_run_and_the_turn_goes_on() {
    let fixture = Fixture::new(steps()).await;
    let (mut server, thread) = untrusted_thread(&fixture).await;
    let turn = server.start_turn(&thread, "make it", None).await;
    let (id, _) = approval_request(&mut server).await;
    answer(&mut server, &id, "decline").await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");
    assert!(!fixture.scratch.work().join(MADE).exists());
    assert_eq!(resolved(&server, &id), 1);
    server.close().await.assert_success();
    // The model heard that it was declined.
    let requests = fixture.requests();
    assert_eq!(requests.len(), 2);
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_while_an_approval_waits_resolves_it() {
    let fixture = Fixture::new(steps()).await;
    let (mut server, thread) = untrusted_thread(&fixture).await;
    let turn = server.start_turn(&thread, "make it", None).await;
    let (id, _) = approval_request(&mut server).await;
    server
        .call(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
        )
        .await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "interrupted", "{done}");
    assert_eq!(resolved(&server, &id), 1);
    let resolved_at = server
        .log
        .iter()
        .position(|l| l["method"] == "serverRequest/resolved")
        .unwrap();
    let completed_at = server
        .log
        .iter()
        .position(|l| l["method"] == "turn/completed")
        .unwrap();
    assert!(resolved_at < completed_at, "{}", server.dump());
    // Answering now does nothing.
    answer(&mut server, &id, "accept").await;
    server.barrier(&thread).await;
    assert!(!fixture.scratch.work().join(MADE).exists());
    server.close().await.assert_success();
    assert_eq!(fixture.requests().len(), 1);
    fixture.finish().await;
}

/// A thread under `on-request` in the default `workspace-write` sandbox,
/// with `/tmp` and `$TMPDIR` not writable (the scratch folders are there):
/// only `work/` is.
async fn on_request_thread(fixture: &Fixture) -> (AppServer, String) {
    let mut server = fixture.spawn();
    server.initialize().await;
    let started = server
        .call(
            "thread/start",
            json!({"cwd": fixture.scratch.work(), "approvalPolicy": "on-request",
                   "config": {"sandbox_workspace_write.exclude_slash_tmp": true,
                              "sandbox_workspace_write.exclude_tmpdir_env_var": true}}),
        )
        .await;
    assert_eq!(started["approvalPolicy"], "on-request");
    assert_eq!(started["sandbox"]["type"], "workspaceWrite");
    assert_eq!(started["sandbox"]["excludeSlashTmp"], true);
    (server, started["thread"]["id"].as_str().unwrap().to_owned())
}

/// A folder beside `work/`, outside the workspace.
fn outside(fixture: &Fixture) -> std::path::PathBuf {
    let outside = fixture.scratch.work().parent().unwrap().join("outside");
    std::fs::create_dir(&outside).unwrap();
    outside
}

/// A turn under `on-request` whose model touches a file outside the
/// workspace: the command ran once in the sandbox and failed there; then the
/// person is asked, for a new item, with the sandbox as the reason. The
/// file, the server, the turn, and the request's id and params.
async fn denied_then_asked(
    fixture: &Fixture,
) -> (std::path::PathBuf, AppServer, String, Value, Value) {
    let target = outside(fixture).join(MADE);
    fixture
        .mock
        .push_step(shell("call_out", &format!("touch {}", target.display())));
    fixture.mock.push_step(Step::text("done"));
    let (mut server, thread) = on_request_thread(fixture).await;
    let turn = server.start_turn(&thread, "make it there", None).await;
    let (id, params) = approval_request(&mut server).await;
    let first = completed_items(&server.log, &turn, "commandExecution");
    assert_eq!(first.len(), 1, "{}", server.dump());
    assert_eq!(first[0]["status"], "failed", "{}", first[0]);
    let output = first[0]["aggregatedOutput"].as_str().unwrap();
    assert!(output.contains("Permission denied"), "{output}");
    assert_ne!(params["itemId"], first[0]["id"], "{params}");
    let reason = params["reason"].as_str().unwrap();
    assert!(
        reason.contains("failed in the sandbox (workspace-write (network off))"),
        "{reason}"
    );
    assert!(!target.exists(), "written before the answer");
    (target, server, turn, id, params)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_sandbox_denied_runs_outside_it_once_accepted() {
    let fixture = Fixture::new(Vec::new()).await;
    let (target, mut server, turn, id, params) = denied_then_asked(&fixture).await;
    answer(&mut server, &id, "accept").await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");
    assert!(target.exists());
    let commands = completed_items(&server.log, &turn, "commandExecution");
    assert_eq!(commands.len(), 2, "{}", server.dump());
    assert_eq!(commands[1]["id"], params["itemId"]);
    assert_eq!(commands[1]["status"], "completed", "{}", commands[1]);
    assert_eq!(resolved(&server, &id), 1);
    server.close().await.assert_success();
    let told = fixture.requests()[1].body["input"].to_string();
    assert!(told.contains("outside the sandbox"), "{told}");
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_sandbox_denied_stays_undone_when_declined() {
    let fixture = Fixture::new(Vec::new()).await;
    let (target, mut server, turn, id, _) = denied_then_asked(&fixture).await;
    answer(&mut server, &id, "decline").await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");
    assert!(!target.exists());
    assert_eq!(
        completed_items(&server.log, &turn, "commandExecution").len(),
        1,
        "{}",
        server.dump()
    );
    server.close().await.assert_success();
    let told = fixture.requests()[1].body["input"].to_string();
    assert!(told.contains("declined"), "{told}");
    fixture.finish().await;
}
