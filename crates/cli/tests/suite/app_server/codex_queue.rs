//! The queue in Codex's shapes (`thread/queue/{add,list,update,delete,
//! reorder,start}`), its `clientUserMessageId` rule (one live entry per id;
//! a started or deleted entry frees it; idempotency is per method),
//! `thread/loaded/list`, and what a probing client reads: every method it
//! probes is known, an unknown one says "method not found: NAME".
//! Every line is checked against the 0.171 schema by the support code.

use serde_json::{Value, json};
use tiller_mock_model::Step;

use super::support::{AppServer, Fixture, completed_items, shell, text_input, times_seen};

fn add_params(thread: &str, client_id: &str, text: &str) -> Value {
    json!({"threadId": thread, "clientUserMessageId": client_id, "input": [text_input(text)]})
}

async fn add(server: &mut AppServer, thread: &str, client_id: &str, text: &str) -> Value {
    let result = server
        .call("thread/queue/add", add_params(thread, client_id, text))
        .await;
    result["queuedSubmission"].clone()
}

async fn list(server: &mut AppServer, thread: &str) -> Vec<Value> {
    let listed = server
        .call("thread/queue/list", json!({"threadId": thread}))
        .await;
    assert_eq!(listed["nextCursor"], Value::Null, "{listed}");
    listed["data"].as_array().unwrap().clone()
}

fn ids(entries: &[Value]) -> Vec<&str> {
    entries.iter().map(|e| e["id"].as_str().unwrap()).collect()
}

/// A running turn that only an interrupt ends.
async fn sleeping(server: &mut AppServer, thread: &str) -> String {
    let turn = server.start_turn(thread, "sleep", None).await;
    server.wait_item_started(&turn, "commandExecution").await;
    turn
}

/// The loss a hub client found: queue X, take it out of the queue to send it
/// now, steer with the same X. The steer steers (it is not answered with the
/// add's result), and the message reaches the model once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_deleted_from_the_queue_and_steered_with_its_id_is_steered() {
    let fixture = Fixture::new(vec![
        shell("call_wait", "sleep 1"),
        Step::text("steered in"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "work", None).await;
    let entry = add(&mut server, &thread, "X", "send this now").await;
    let deleted = server
        .call(
            "thread/queue/delete",
            json!({"threadId": thread, "queuedSubmissionId": entry["id"]}),
        )
        .await;
    assert_eq!(deleted, json!({"deleted": true}));
    let steered = server
        .call(
            "turn/steer",
            json!({"threadId": thread, "expectedTurnId": turn, "clientUserMessageId": "X",
                   "input": [text_input("send this now")]}),
        )
        .await;
    assert_eq!(steered, json!({"turnId": turn}));
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");
    let messages = completed_items(&server.log, &turn, "userMessage");
    assert!(
        messages.iter().any(|m| m["clientId"] == "X"),
        "the steer is not shown: {}",
        server.dump()
    );
    assert!(list(&mut server, &thread).await.is_empty());
    server.close().await.assert_success();
    let requests = fixture.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(times_seen(&requests[1], "send this now"), 1);
    fixture.finish().await;
}

/// Update, reorder, pages, start of a named entry, and their refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_is_edited_paged_reordered_and_started_in_codex_shapes() {
    let fixture = Fixture::new(vec![
        shell("call_sleep", "sleep 60"),
        shell("call_sleep_2", "sleep 60"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let turn = sleeping(&mut server, &thread).await;
    let a = add(&mut server, &thread, "a", "first").await;
    let b = add(&mut server, &thread, "b", "second").await;
    let c = add(&mut server, &thread, "c", "third").await;
    assert_eq!(a["responsesapiClientMetadata"], Value::Null);
    // The same client id while its entry is queued: that entry, nothing new.
    let again = add(&mut server, &thread, "b", "second").await;
    assert_eq!(again, b);
    assert_eq!(list(&mut server, &thread).await.len(), 3);

    // Pages of two.
    let page = server
        .call("thread/queue/list", json!({"threadId": thread, "limit": 2}))
        .await;
    assert_eq!(
        ids(page["data"].as_array().unwrap()),
        [a["id"].as_str().unwrap(), b["id"].as_str().unwrap()]
    );
    let cursor = page["nextCursor"].clone();
    assert!(cursor.is_string(), "{page}");
    let rest = server
        .call(
            "thread/queue/list",
            json!({"threadId": thread, "limit": 2, "cursor": cursor}),
        )
        .await;
    assert_eq!(rest, json!({"data": [c], "nextCursor": null}));

    // Update the input and the metadata.
    let updated = server
        .call(
            "thread/queue/update",
            json!({"threadId": thread, "queuedSubmissionId": b["id"],
                   "input": [text_input("second, edited")],
                   "responsesapiClientMetadata": {"origin": "phone"}}),
        )
        .await;
    assert_eq!(updated["queuedSubmission"]["id"], b["id"]);
    assert_eq!(
        updated["queuedSubmission"]["input"],
        json!([text_input("second, edited")])
    );
    assert_eq!(
        updated["queuedSubmission"]["responsesapiClientMetadata"],
        json!({"origin": "phone"})
    );

    // Reorder: every entry once, or refused.
    let refused = server
        .call_err(
            "thread/queue/reorder",
            json!({"threadId": thread, "queuedSubmissionIds": [c["id"], a["id"]]}),
        )
        .await;
    assert_eq!(refused["code"], -32602, "{refused}");
    let order = json!([c["id"], b["id"], a["id"]]);
    let reordered = server
        .call(
            "thread/queue/reorder",
            json!({"threadId": thread, "queuedSubmissionIds": order}),
        )
        .await;
    assert_eq!(reordered, json!({}));
    let listed = list(&mut server, &thread).await;
    assert_eq!(json!(ids(&listed)), order);

    // Start while a turn runs: refused, saying what to do.
    let busy = server
        .call_err("thread/queue/start", json!({"threadId": thread}))
        .await;
    assert_eq!(busy["code"], -32600, "{busy}");
    assert!(
        busy["message"].as_str().unwrap().contains("turn/steer"),
        "{busy}"
    );
    server
        .call(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
        )
        .await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "interrupted");
    // The interrupt left the queue as it was.
    assert_eq!(json!(ids(&list(&mut server, &thread).await)), order);

    // Start the middle one now: one turn with that message, the rest stays.
    let started = server
        .call(
            "thread/queue/start",
            json!({"threadId": thread, "queuedSubmissionId": b["id"]}),
        )
        .await;
    let second = started["turn"]["id"].as_str().unwrap().to_owned();
    assert_eq!(started["turn"]["status"], "inProgress");
    assert_eq!(
        json!(ids(&list(&mut server, &thread).await)),
        json!([c["id"], a["id"]])
    );
    server
        .call(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": second}),
        )
        .await;
    server.wait_completed(&second).await;
    let messages = completed_items(&server.log, &second, "userMessage");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["clientId"], "b");

    // Its id is free again: adding "b" queues a new entry (behind the others:
    // the thread is idle, but its queue waits after an interrupt).
    let readded = add(&mut server, &thread, "b", "second again").await;
    assert_ne!(readded["id"], b["id"]);
    assert_eq!(
        json!(ids(&list(&mut server, &thread).await)),
        json!([c["id"], a["id"], readded["id"]])
    );

    // Refusals name what is wrong.
    for (method, params, code) in [
        (
            "thread/queue/update",
            json!({"threadId": thread, "queuedSubmissionId": "nope", "input": [text_input("x")]}),
            -32600,
        ),
        (
            "thread/queue/update",
            json!({"threadId": thread, "queuedSubmissionId": a["id"], "input": []}),
            -32602,
        ),
        (
            "thread/queue/start",
            json!({"threadId": thread, "queuedSubmissionId": "nope"}),
            -32600,
        ),
        (
            "thread/queue/list",
            json!({"threadId": thread, "cursor": "gone"}),
            -32602,
        ),
        ("thread/queue/delete", json!({"threadId": thread}), -32602),
        (
            "thread/queue/add",
            json!({"threadId": thread, "input": [text_input("x")], "clientUserMessageId": 7}),
            -32602,
        ),
    ] {
        let error = server.call_err(method, params.clone()).await;
        assert_eq!(error["code"], code, "{method} {params}: {error}");
    }
    let deleted = server
        .call(
            "thread/queue/delete",
            json!({"threadId": thread, "queuedSubmissionId": "nope"}),
        )
        .await;
    assert_eq!(deleted, json!({"deleted": false}));
    server.close().await.assert_success();
    fixture.finish().await;
}

/// What a hub probes at start-up, with a thread id that does not exist:
/// every method is known (the answer is about the thread, not the method).
/// An unknown method is -32601 "method not found: NAME".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probed_methods_are_known_and_an_unknown_one_is_method_not_found() {
    let fixture = Fixture::new(vec![]).await;
    let mut server = fixture.spawn();
    server.initialize().await;
    let dummy = "00000000-0000-0000-0000-000000000000";
    for method in [
        "thread/queue/list",
        "thread/queue/add",
        "thread/queue/delete",
        "thread/queue/start",
        "thread/queue/update",
        "thread/queue/reorder",
        "turn/steer",
        "thread/settings/update",
        "thread/metadata/update",
        "thread/fork",
        "thread/turns/list",
        "thread/read",
        "thread/unsubscribe",
    ] {
        // An answer or an error about the thread, never about the method.
        let id = server.send(method, json!({"threadId": dummy})).await;
        if let Err(error) = server.response(id).await {
            assert_ne!(error["code"], -32601, "{method}: {error}");
        }
    }
    let unknown = server.call_err("thread/frobnicate", json!({})).await;
    assert_eq!(unknown["code"], -32601);
    assert_eq!(unknown["message"], "method not found: thread/frobnicate");
    server.close().await.assert_success();
    fixture.finish().await;
}

/// `thread/loaded/list`: every thread this process has loaded, in pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loaded_list_pages() {
    let fixture = Fixture::new(vec![]).await;
    let (mut server, thread) = fixture.started().await;
    let other = server.start_thread(&fixture.scratch).await;
    let loaded = server.call("thread/loaded/list", json!({})).await;
    let mut expected = vec![thread.clone(), other.clone()];
    expected.sort();
    assert_eq!(loaded, json!({"data": expected, "nextCursor": null}));
    let page = server.call("thread/loaded/list", json!({"limit": 1})).await;
    assert_eq!(page["data"], json!([expected[0]]));
    let rest = server
        .call(
            "thread/loaded/list",
            json!({"limit": 1, "cursor": page["nextCursor"]}),
        )
        .await;
    assert_eq!(rest, json!({"data": [expected[1]], "nextCursor": null}));
    let gone = server
        .call_err("thread/loaded/list", json!({"cursor": "nope"}))
        .await;
    assert_eq!(gone["code"], -32602);
    server.close().await.assert_success();
    fixture.finish().await;
}
