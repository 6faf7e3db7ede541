//! A thread's history taken elsewhere or back: `thread/fork` (up to a turn,
//! into a new thread), `thread/revert` (back to before a turn) and
//! `thread/compact/start` (replaced by the model's summary); what the model
//! is sent next, and what a new server reads back.
//! Every line is checked against the 0.171 schema by the support code.

use serde_json::{Value, json};
use tiller_mock_model::{Item, Step};

use super::support::{Fixture, shell, text_input, times_seen};

/// `thread/fork`: a new thread with the history up to a turn (all of it,
/// through one, or before one); the source is untouched; the fork's next
/// turn sends the model only the history it carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_carries_the_history_up_to_a_turn_and_goes_on_alone() {
    let fixture = Fixture::new(vec![
        Step::text("one"),
        Step::text("two"),
        Step::text("three"),
        Step::text("forked on"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let turns = server.run_turns(&thread, &["alpha", "beta", "gamma"]).await;
    let count = |v: &Value| v["thread"]["turns"].as_array().unwrap().len();
    let all = server
        .call("thread/fork", json!({"threadId": thread}))
        .await;
    assert_ne!(all["thread"]["id"], thread.as_str());
    assert_eq!(count(&all), 3);
    assert_eq!(all["multiAgentMode"], "explicitRequestOnly");
    let before = server
        .call(
            "thread/fork",
            json!({"threadId": thread, "beforeTurnId": turns[1]}),
        )
        .await;
    assert_eq!(count(&before), 1);
    let through = server
        .call(
            "thread/fork",
            json!({"threadId": thread, "lastTurnId": turns[1], "excludeTurns": true}),
        )
        .await;
    assert_eq!(count(&through), 0, "excludeTurns");
    let fork = through["thread"]["id"].as_str().unwrap().to_owned();
    let id = fork.clone();
    server
        .wait_for("the fork's thread/started", move |l| {
            l["method"] == "thread/started" && l["params"]["thread"]["id"] == id.as_str()
        })
        .await;
    let read = server
        .call(
            "thread/read",
            json!({"threadId": fork, "includeTurns": true}),
        )
        .await;
    assert_eq!(count(&read), 2);

    // The fork goes on with its own history; the source is untouched.
    let turn = server.start_turn(&fork, "delta", None).await;
    server.wait_completed(&turn).await;
    let source = server
        .call(
            "thread/read",
            json!({"threadId": thread, "includeTurns": true}),
        )
        .await;
    assert_eq!(count(&source), 3);

    // Metadata: nothing to keep, so setting any is refused; clearing answers
    // with the thread.
    let kept = server
        .call(
            "thread/metadata/update",
            json!({"threadId": thread, "projectId": ""}),
        )
        .await;
    assert_eq!(kept["thread"]["id"], thread.as_str());
    let refused = server
        .call_err(
            "thread/metadata/update",
            json!({"threadId": thread, "gitInfo": {"branch": "main"}}),
        )
        .await;
    assert_eq!(refused["code"], -32602);
    assert!(refused["message"].as_str().unwrap().contains("gitInfo"));

    for (params, code) in [
        (json!({"threadId": thread, "beforeTurnId": "nope"}), -32600),
        (
            json!({"threadId": thread, "beforeTurnId": turns[0], "lastTurnId": turns[1]}),
            -32602,
        ),
        (json!({"threadId": thread, "path": "/tmp/x.jsonl"}), -32602),
        (json!({"threadId": thread, "ephemeral": true}), -32602),
        (
            json!({"threadId": "ffffffff-0000-0000-0000-000000000000"}),
            -32600,
        ),
    ] {
        let error = server.call_err("thread/fork", params.clone()).await;
        assert_eq!(error["code"], code, "{params}: {error}");
    }
    server.close().await.assert_success();
    let requests = fixture.requests();
    let last = requests.last().unwrap();
    assert_eq!(times_seen(last, "alpha"), 1);
    assert_eq!(times_seen(last, "beta"), 1);
    assert_eq!(times_seen(last, "gamma"), 0);
    assert_eq!(times_seen(last, "delta"), 1);
    fixture.finish().await;
}

/// `thread/revert`: the history goes back to before a turn (persisted: a new
/// server reads it so); the next turn's model request carries only what is
/// left; refused while a turn runs, and for a turn that is not there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_takes_the_history_back_to_before_a_turn() {
    let fixture = Fixture::new(vec![
        Step::text("one"),
        Step::text("two"),
        Step::text("three"),
        Step::text("after the revert"),
        shell("call_sleep", "sleep 60"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let turns = server.run_turns(&thread, &["alpha", "beta", "gamma"]).await;
    let reverted = server
        .call(
            "thread/revert",
            json!({"threadId": thread, "beforeTurnId": turns[1]}),
        )
        .await;
    let kept: Vec<&str> = reverted["thread"]["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(kept, [turns[0].as_str()]);
    let id = thread.clone();
    server
        .wait_for("thread/reverted", move |l| {
            l["method"] == "thread/reverted" && l["params"]["threadId"] == id.as_str()
        })
        .await;
    let turn = server.start_turn(&thread, "delta", None).await;
    server.wait_completed(&turn).await;

    let unknown = server
        .call_err(
            "thread/revert",
            json!({"threadId": thread, "beforeTurnId": turns[2]}),
        )
        .await;
    assert_eq!(unknown["code"], -32600, "{unknown}");
    let running = server.start_turn(&thread, "sleep", None).await;
    server.wait_item_started(&running, "commandExecution").await;
    let busy = server
        .call_err(
            "thread/revert",
            json!({"threadId": thread, "beforeTurnId": turns[0]}),
        )
        .await;
    assert_eq!(busy["code"], -32600, "{busy}");
    assert!(
        busy["message"].as_str().unwrap().contains("interrupt"),
        "{busy}"
    );
    server
        .call(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": running}),
        )
        .await;
    server.wait_completed(&running).await;
    server.close().await.assert_success();

    let requests = fixture.requests();
    let after = &requests[3];
    assert_eq!(times_seen(after, "alpha"), 1);
    assert_eq!(times_seen(after, "beta"), 0);
    assert_eq!(times_seen(after, "gamma"), 0);
    assert_eq!(times_seen(after, "delta"), 1);

    // A new server reads the thread as reverted.
    let mut server = fixture.spawn();
    server.initialize().await;
    let resumed = server
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    let ids: Vec<&str> = resumed["thread"]["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [turns[0].as_str(), turn.as_str(), running.as_str()]);
    server.close().await.assert_success();
    fixture.finish().await;
}

/// `thread/compact/start`: a real turn in which the model, offered no tools,
/// summarises the history; the summary then replaces the history, for the
/// next turn and after a restart. The compaction cannot be steered (Codex's
/// structured error) and is refused while another turn runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_replaces_the_history_with_the_models_summary() {
    let summary: Vec<String> = (0..20).map(|i| format!("SUMMARY{i} ")).collect();
    let fixture = Fixture::new(vec![
        Step::text("one"),
        Step::text("two"),
        Step::response(vec![Item::text_deltas(summary)]).with_delta_delay(20),
        Step::text("three"),
        Step::text("four"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    server.run_turns(&thread, &["alpha", "beta"]).await;
    let compacting = server
        .call("thread/compact/start", json!({"threadId": thread}))
        .await;
    assert_eq!(compacting, json!({}));
    let at = server
        .wait_for("the compaction's turn/started", |l| {
            l["method"] == "turn/started"
        })
        .await;
    let _ = at;
    let started = server.notifications("turn/started");
    let compaction = started.last().unwrap()["params"]["turn"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = compaction.clone();
    server
        .wait_for("the compaction item", move |l| {
            l["method"] == "item/started"
                && l["params"]["turnId"] == id.as_str()
                && l["params"]["item"]["type"] == "contextCompaction"
        })
        .await;
    let steer = server
        .call_err(
            "turn/steer",
            json!({"threadId": thread, "expectedTurnId": compaction,
                   "input": [text_input("not now")]}),
        )
        .await;
    assert_eq!(steer["code"], -32600, "{steer}");
    assert_eq!(
        steer["data"]["codexErrorInfo"]["activeTurnNotSteerable"]["turnKind"], "compact",
        "{steer}"
    );
    let again = server
        .call_err("thread/compact/start", json!({"threadId": thread}))
        .await;
    assert_eq!(again["code"], -32600, "{again}");
    let done = server.wait_completed(&compaction).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");
    let turn = server.start_turn(&thread, "gamma", None).await;
    server.wait_completed(&turn).await;
    server.close().await.assert_success();

    let requests = fixture.requests();
    let compact_request = &requests[2];
    assert_eq!(compact_request.body["tools"], json!([]));
    assert!(
        compact_request
            .raw_body
            .contains("Summarize the conversation"),
        "{}",
        compact_request.raw_body
    );
    let after = &requests[3];
    assert!(after.raw_body.contains("SUMMARY19"), "{}", after.raw_body);
    assert_eq!(times_seen(after, "alpha"), 0);
    assert_eq!(times_seen(after, "beta"), 0);
    assert_eq!(times_seen(after, "gamma"), 1);

    // A new server reads the compacted history back.
    let mut server = fixture.spawn();
    server.initialize().await;
    server
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    let turn = server.start_turn(&thread, "delta", None).await;
    server.wait_completed(&turn).await;
    server.close().await.assert_success();
    let requests = fixture.requests();
    let resumed = requests.last().unwrap();
    assert!(resumed.raw_body.contains("SUMMARY19"));
    assert_eq!(times_seen(resumed, "alpha"), 0);
    assert_eq!(times_seen(resumed, "gamma"), 1);
    assert_eq!(times_seen(resumed, "delta"), 1);
    fixture.finish().await;
}
