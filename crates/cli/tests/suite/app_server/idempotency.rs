//! tiller's idempotent `clientUserMessageId`: a repeated `turn/start`,
//! `turn/steer` or `thread/queue/add` is answered with the original result and
//! changes nothing: no second turn, no second user message item, and the
//! model sees the text once.

use serde_json::{Value, json};
use tiller_mock_model::{Item, Step};

use super::support::{AppServer, Fixture, completed_items, text_input, times_seen};

fn slow_text() -> Step {
    let words: Vec<String> = (0..40).map(|i| format!("w{i} ")).collect();
    Step::response(vec![Item::text_deltas(words)]).with_delta_delay(25)
}

/// User message items with `clientId` in the whole log.
fn user_messages_with(server: &AppServer, client_id: &str) -> usize {
    server
        .log
        .iter()
        .filter(|l| {
            l["method"] == "item/completed"
                && l["params"]["item"]["type"] == "userMessage"
                && l["params"]["item"]["clientId"] == client_id
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_turn_start_gets_the_original_turn_and_starts_nothing() {
    let fixture = Fixture::new(vec![slow_text(), Step::text("spare")]).await;
    let (mut server, thread) = fixture.started().await;
    let params = json!({"threadId": thread, "clientUserMessageId": "m-1",
                        "input": [text_input("say it once")]});
    let original = server.call("turn/start", params.clone()).await;
    let turn = original["turn"]["id"].as_str().unwrap().to_string();
    // While the turn runs, and after it completed.
    let repeat = server.call("turn/start", params.clone()).await;
    assert_eq!(repeat, original);
    server.wait_completed(&turn).await;
    let late = server.call("turn/start", params).await;
    assert_eq!(late, original);
    server.barrier(&thread).await;

    assert_eq!(
        server.notifications("turn/started").len(),
        1,
        "{}",
        server.dump()
    );
    assert_eq!(user_messages_with(&server, "m-1"), 1, "{}", server.dump());
    server.close().await.assert_success();
    let requests = fixture.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(times_seen(&requests[0], "say it once"), 1);
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_steer_gets_the_original_answer_and_is_delivered_once() {
    let fixture = Fixture::new(vec![
        slow_text(),
        Step::text("steered"),
        Step::text("spare"),
        Step::text("spare"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "talk", None).await;
    server
        .wait_turn_event("item/agentMessage/delta", &turn)
        .await;
    let params = json!({"threadId": thread, "expectedTurnId": turn,
                        "clientUserMessageId": "s-1", "input": [text_input("steer once")]});
    let original = server.call("turn/steer", params.clone()).await;
    assert_eq!(original, json!({"turnId": turn}));
    let repeat = server.call("turn/steer", params.clone()).await;
    assert_eq!(repeat, original);
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{}", server.dump());
    // After the turn: still the original answer, not "no active turn".
    let late = server.call("turn/steer", params).await;
    assert_eq!(late, original);
    server.barrier(&thread).await;

    assert_eq!(user_messages_with(&server, "s-1"), 1, "{}", server.dump());
    assert_eq!(server.notifications("turn/started").len(), 1);
    server.close().await.assert_success();
    let requests = fixture.requests();
    let last = requests.last().unwrap();
    assert_eq!(
        times_seen(last, "steer once"),
        1,
        "{:?}",
        super::support::texts_seen(last)
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_queue_add_gets_the_original_entry_and_queues_nothing() {
    let fixture = Fixture::new(vec![slow_text(), Step::text("queued answer")]).await;
    let (mut server, thread) = fixture.started().await;
    let first = server.start_turn(&thread, "first", None).await;
    let params = json!({"threadId": thread, "clientUserMessageId": "q-1",
                        "input": [text_input("queued once")]});
    let original = server.call("thread/queue/add", params.clone()).await;
    let repeat = server.call("thread/queue/add", params).await;
    assert_eq!(repeat, original);
    let listed = server
        .call("thread/queue/list", json!({"threadId": thread}))
        .await;
    assert_eq!(listed["data"], json!([original["queuedSubmission"]]));
    server.wait_completed(&first).await;
    while server.notifications("turn/started").len() < 2 {
        server
            .wait_for("the queued turn", |l| l["method"] == "turn/started")
            .await;
    }
    let second: String = server.notifications("turn/started")[1]["params"]["turn"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_completed(&second).await;
    server.barrier(&thread).await;
    let messages: Vec<&Value> = completed_items(&server.log, &second, "userMessage");
    assert_eq!(messages.len(), 1, "{}", server.dump());
    assert_eq!(server.notifications("turn/started").len(), 2);
    server.close().await.assert_success();
    let requests = fixture.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(times_seen(&requests[1], "queued once"), 1);
    fixture.finish().await;
}

/// One `clientUserMessageId` used with three methods: each method answers in
/// its own shape and does its own work; none is answered with another's
/// result and no input is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_id_across_methods_is_idempotent_per_method() {
    let fixture = Fixture::new(vec![slow_text(), Step::text("after the queue")]).await;
    let (mut server, thread) = fixture.started().await;
    let id = "shared-id";
    let started = server
        .call(
            "turn/start",
            json!({"threadId": thread, "clientUserMessageId": id, "input": [text_input("first text")]}),
        )
        .await;
    let turn = started["turn"]["id"].as_str().unwrap().to_string();
    let steered = server
        .call(
            "turn/steer",
            json!({"threadId": thread, "expectedTurnId": turn, "clientUserMessageId": id,
                   "input": [text_input("steered text")]}),
        )
        .await;
    assert_eq!(
        steered,
        json!({"turnId": turn}),
        "the steer got another method's answer"
    );
    let queued = server
        .call(
            "thread/queue/add",
            json!({"threadId": thread, "clientUserMessageId": id, "input": [text_input("queued text")]}),
        )
        .await;
    assert!(queued["queuedSubmission"]["id"].is_string(), "{queued}");
    // Each repeated: the answer of its own method.
    let again = server
        .call(
            "turn/steer",
            json!({"threadId": thread, "expectedTurnId": turn, "clientUserMessageId": id,
                   "input": [text_input("steered text")]}),
        )
        .await;
    assert_eq!(again, steered);
    server.wait_completed(&turn).await;
    let queued_turn = server
        .wait_for("the queued turn", |l| {
            l["method"] == "turn/started" && l["params"]["turn"]["id"] != turn.as_str()
        })
        .await;
    let queued_turn = server.log[queued_turn]["params"]["turn"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_completed(&queued_turn).await;
    server.close().await.assert_success();
    // Every text reached the model, once.
    let requests = fixture.requests();
    let last = requests.last().unwrap();
    for text in ["first text", "steered text", "queued text"] {
        assert_eq!(
            times_seen(last, text),
            1,
            "{text}: {:?}",
            super::support::texts_seen(last)
        );
    }
    fixture.finish().await;
}
