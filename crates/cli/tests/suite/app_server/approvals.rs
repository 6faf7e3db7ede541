//! Approvals over the app-server: under `untrusted`, a command that may
//! change things is put to the client as an `item/commandExecution/
//! requestApproval` server request; the answer drives the engine (accept
//! runs it, decline does not); `serverRequest/resolved` follows; a second
//! answer is ignored; an interrupt while one waits resolves it. Every line,
//! the server request included, is checked against the 0.171 schema.

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
