//! The server-side queue: `thread/queue/add|list|delete` and
//! `thread/queue/changed`; queued messages start the next turn (joined), an
//! interrupt leaves them waiting, and they survive a killed server.

use serde_json::{Value, json};
use tiller_mock_model::{Item, Step};

use super::support::{AppServer, Fixture, completed_items, shell, text_input, times_seen};

/// A running turn that ends by itself after about a second.
fn slow_text() -> Step {
    let words: Vec<String> = (0..40).map(|i| format!("w{i} ")).collect();
    Step::response(vec![Item::text_deltas(words)]).with_delta_delay(25)
}

async fn queue_add(server: &mut AppServer, thread: &str, client_id: &str, text: &str) -> Value {
    let result = server
        .call(
            "thread/queue/add",
            json!({"threadId": thread, "clientUserMessageId": client_id,
                   "input": [text_input(text)]}),
        )
        .await;
    let entry = result["queuedSubmission"].clone();
    assert_eq!(entry["clientUserMessageId"], client_id, "{result}");
    assert_eq!(entry["input"], json!([text_input(text)]), "{result}");
    entry
}

async fn queue_list(server: &mut AppServer, thread: &str) -> Vec<Value> {
    let result = server
        .call("thread/queue/list", json!({"threadId": thread}))
        .await;
    result["data"].as_array().unwrap().clone()
}

/// The ids of the turns started so far, in order.
fn started_turns(server: &AppServer) -> Vec<String> {
    server
        .notifications("turn/started")
        .iter()
        .map(|l| l["params"]["turn"]["id"].as_str().unwrap().to_string())
        .collect()
}

/// Wait for the `n`th `turn/started` (1-based); returns its turn id.
async fn wait_turn_started(server: &mut AppServer, n: usize) -> String {
    while started_turns(server).len() < n {
        server
            .wait_for("a turn/started", |l| l["method"] == "turn/started")
            .await;
    }
    started_turns(server)[n - 1].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_message_starts_the_next_turn_when_the_running_one_completes() {
    let fixture = Fixture::new(vec![slow_text(), Step::text("queued answer")]).await;
    let (mut server, thread) = fixture.started().await;
    let first = server.start_turn(&thread, "first", None).await;
    let entry = queue_add(&mut server, &thread, "q-1", "queued question").await;
    server
        .wait_for("thread/queue/changed", |l| {
            l["method"] == "thread/queue/changed"
        })
        .await;
    assert_eq!(queue_list(&mut server, &thread).await, vec![entry]);
    assert_eq!(started_turns(&server), vec![first.clone()], "started early");

    let done = server.wait_completed(&first).await;
    assert_eq!(done["turn"]["status"], "completed");
    let second = wait_turn_started(&mut server, 2).await;
    let done = server.wait_completed(&second).await;
    assert_eq!(done["turn"]["status"], "completed");
    let messages = completed_items(&server.log, &second, "userMessage");
    assert_eq!(messages.len(), 1, "{}", server.dump());
    assert_eq!(messages[0]["clientId"], "q-1");
    assert_eq!(
        messages[0]["content"],
        json!([text_input("queued question")])
    );
    assert!(queue_list(&mut server, &thread).await.is_empty());
    let requests = fixture.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(times_seen(&requests[1], "queued question"), 1);
    server.close().await.assert_success();
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_queued_messages_are_joined_into_one_turn() {
    let fixture = Fixture::new(vec![
        slow_text(),
        Step::text("joined answer"),
        Step::text("spare"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let first = server.start_turn(&thread, "first", None).await;
    queue_add(&mut server, &thread, "q-1", "queued one").await;
    queue_add(&mut server, &thread, "q-2", "queued two").await;
    assert_eq!(queue_list(&mut server, &thread).await.len(), 2);
    server.wait_completed(&first).await;
    let second = wait_turn_started(&mut server, 2).await;
    server.wait_completed(&second).await;
    server.barrier(&thread).await;
    assert_eq!(started_turns(&server).len(), 2, "{}", server.dump());
    let messages = completed_items(&server.log, &second, "userMessage");
    let ids: Vec<&Value> = messages.iter().map(|m| &m["clientId"]).collect();
    assert_eq!(ids, [&json!("q-1"), &json!("q-2")], "{}", server.dump());
    let requests = fixture.requests();
    assert_eq!(requests.len(), 2, "one model request for the joined turn");
    assert_eq!(times_seen(&requests[1], "queued one"), 1);
    assert_eq!(times_seen(&requests[1], "queued two"), 1);
    assert!(queue_list(&mut server, &thread).await.is_empty());
    server.close().await.assert_success();
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_add_while_idle_starts_a_turn_now() {
    let fixture = Fixture::new(vec![Step::text("at once"), Step::text("again")]).await;
    let (mut server, thread) = fixture.started().await;
    let first = queue_add(&mut server, &thread, "q-now", "right away").await;
    let turn = wait_turn_started(&mut server, 1).await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed");
    let messages = completed_items(&server.log, &turn, "userMessage");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["clientId"], "q-now");
    assert!(queue_list(&mut server, &thread).await.is_empty());
    // Its entry has started, so the id is free: the same client id again is
    // a new entry (Codex's rule), and it starts its own turn.
    let again = server
        .call(
            "thread/queue/add",
            json!({"threadId": thread, "clientUserMessageId": "q-now",
                   "input": [text_input("right away")]}),
        )
        .await;
    assert_eq!(again["queuedSubmission"]["clientUserMessageId"], "q-now");
    assert_ne!(again["queuedSubmission"]["id"], first["id"]);
    let second = wait_turn_started(&mut server, 2).await;
    server.wait_completed(&second).await;
    server.close().await.assert_success();
    assert_eq!(fixture.requests().len(), 2);
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_leaves_the_queue_as_it_is_and_nothing_starts_by_itself() {
    let fixture = Fixture::new(vec![shell("call_sleep", "sleep 60"), Step::text("later")]).await;
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "sleep", None).await;
    server.wait_item_started(&turn, "commandExecution").await;
    let entry = queue_add(&mut server, &thread, "q-1", "after the interrupt").await;
    server
        .call(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
        )
        .await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "interrupted");
    assert_eq!(queue_list(&mut server, &thread).await, vec![entry.clone()]);
    server.barrier(&thread).await;
    assert_eq!(started_turns(&server), vec![turn], "{}", server.dump());

    let changed = server.notifications("thread/queue/changed").len();
    let deleted = server
        .call(
            "thread/queue/delete",
            json!({"threadId": thread, "queuedSubmissionId": entry["id"]}),
        )
        .await;
    assert_eq!(deleted, json!({"deleted": true}));
    server.wait_count("thread/queue/changed", changed + 1).await;
    assert!(queue_list(&mut server, &thread).await.is_empty());
    let again = server
        .call(
            "thread/queue/delete",
            json!({"threadId": thread, "queuedSubmissionId": entry["id"]}),
        )
        .await;
    assert_eq!(again, json!({"deleted": false}));
    assert_eq!(started_turns(&server).len(), 1, "{}", server.dump());
    server.close().await.assert_success();
    assert_eq!(fixture.requests().len(), 1);
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_survives_a_killed_server_and_thread_resume() {
    let fixture = Fixture::new(vec![shell("call_sleep", "sleep 60")]).await;
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "sleep", None).await;
    server.wait_item_started(&turn, "commandExecution").await;
    let one = queue_add(&mut server, &thread, "q-1", "kept one").await;
    let two = queue_add(&mut server, &thread, "q-2", "kept two").await;
    server.kill().await;

    let mut server = fixture.spawn();
    server.initialize().await;
    let resumed = server
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    assert_eq!(resumed["thread"]["id"], thread.as_str());
    assert_eq!(queue_list(&mut server, &thread).await, vec![one, two]);
    server.close().await.assert_success();
    fixture.finish().await;
}
