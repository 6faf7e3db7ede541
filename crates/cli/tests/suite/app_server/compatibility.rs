//! One session that makes the server emit every response and notification
//! kind it has, each checked against its Codex schema as it is read; the test
//! then asserts that no kind was left unchecked.

use serde_json::json;
use tiller_mock_model::{Item, Step};

use super::schema::is_valid;
use super::support::{Fixture, completed_items, shell, text_input};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_tiller_emits_matches_the_codex_schema() {
    let fixture = Fixture::new(vec![
        // Turn 1: a command with output, then reasoning and streamed text.
        shell("call_echo", "echo hi"),
        Step::response(vec![
            Item::reasoning("The command printed hi."),
            Item::text_deltas(["all ", "done"]),
        ]),
        // Turn 2: a stream that breaks (an `error` with willRetry), then the retry.
        Step::text("a partial answer here").with_drop_after(1),
        Step::text("retried"),
        // Turn 3: the model refuses: a failed turn with its error.
        Step::http_status(400),
        // Turn 4: a long command, steered and interrupted.
        shell("call_sleep", "sleep 60"),
        // Turn 5, on the resumed thread.
        Step::text("resumed fine"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;

    let turn = server.start_turn(&thread, "run echo", None).await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");
    let commands = completed_items(&server.log, &turn, "commandExecution");
    assert_eq!(commands.len(), 1, "{}", server.dump());
    assert_eq!(commands[0]["status"], "completed", "{}", server.dump());
    assert_eq!(commands[0]["exitCode"], 0, "{}", server.dump());

    let turn = server.start_turn(&thread, "retry", None).await;
    let error = server.wait_turn_event("error", &turn).await;
    assert_eq!(server.log[error]["params"]["willRetry"], true);
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");

    let turn = server.start_turn(&thread, "fail", None).await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "failed", "{done}");
    assert!(done["turn"]["error"]["message"].is_string(), "{done}");

    let turn = server.start_turn(&thread, "sleep", None).await;
    server.wait_item_started(&turn, "commandExecution").await;
    let steered = server
        .call(
            "turn/steer",
            json!({"threadId": thread, "expectedTurnId": turn, "input": [text_input("then stop")]}),
        )
        .await;
    assert_eq!(steered["turnId"], turn.as_str());
    server
        .call(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
        )
        .await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "interrupted", "{done}");

    // `thread/resume` of a thread this server has loaded.
    let resumed = server
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    assert_eq!(resumed["thread"]["id"], thread.as_str());
    let unknown = server.call_err("no/such/method", json!({})).await;
    assert_eq!(unknown["code"], -32601);
    let first = server.close().await;
    first.assert_success();

    // A new server resumes it from the rollout and runs a turn on it.
    let mut server = fixture.spawn();
    server.initialize().await;
    let resumed = server
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    assert_eq!(
        resumed["thread"]["turns"].as_array().map(Vec::len),
        Some(4),
        "{resumed:#}"
    );
    let turn = server.start_turn(&thread, "again", None).await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");
    let second = server.close().await;
    second.assert_success();

    let checked: std::collections::BTreeSet<String> =
        first.kinds.union(&second.kinds).cloned().collect();
    let expected = [
        "JSONRPCError",
        "v1/InitializeResponse",
        "v2/ThreadStartResponse",
        "v2/ThreadResumeResponse",
        "v2/TurnStartResponse",
        "v2/TurnSteerResponse",
        "v2/TurnInterruptResponse",
        "v2/ThreadStartedNotification",
        "v2/ThreadStatusChangedNotification",
        "v2/TurnStartedNotification",
        "v2/TurnCompletedNotification",
        "v2/ItemStartedNotification",
        "v2/ItemCompletedNotification",
        "v2/AgentMessageDeltaNotification",
        "v2/CommandExecutionOutputDeltaNotification",
        "v2/ErrorNotification",
    ];
    let missing: Vec<&str> = expected
        .into_iter()
        .filter(|k| !checked.contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "kinds never emitted, so never checked: {missing:?}"
    );
    // Every item kind tiller produces was among them.
    let items: std::collections::BTreeSet<&str> = first
        .log
        .iter()
        .chain(&second.log)
        .filter(|l| l["method"] == "item/completed")
        .filter_map(|l| l["params"]["item"]["type"].as_str())
        .collect();
    for kind in [
        "userMessage",
        "agentMessage",
        "commandExecution",
        "reasoning",
    ] {
        assert!(
            items.contains(kind),
            "no {kind} item was emitted: {items:?}"
        );
    }
    fixture.finish().await;
}

/// The oracle is not vacuous: it refuses what the protocol forbids.
#[test]
fn the_schemas_refuse_what_the_protocol_forbids() {
    let turn = json!({"id": "t", "items": [], "status": "completed"});
    assert!(is_valid(
        "v2/TurnCompletedNotification",
        &json!({"threadId": "a", "turn": turn})
    ));
    let refused = [
        (
            "v2/TurnCompletedNotification",
            json!({"threadId": "a", "turn": {"id": "t", "items": []}}),
        ),
        (
            "v2/TurnCompletedNotification",
            json!({"threadId": "a", "turn": {"id": "t", "items": [], "status": "done"}}),
        ),
        (
            "v2/ItemStartedNotification",
            json!({"threadId": "a", "turnId": "t", "startedAtMs": 1,
                   "item": {"type": "telepathy", "id": "i"}}),
        ),
        (
            "v2/ThreadStatusChangedNotification",
            json!({"threadId": "a", "status": {"type": "active"}}),
        ),
        (
            "v1/InitializeResponse",
            json!({"platformFamily": "unix", "platformOs": "linux", "codexHome": "/h"}),
        ),
        ("v2/TurnSteerResponse", json!({"turnId": 5})),
        (
            "JSONRPCError",
            json!({"id": 1, "error": {"code": "x", "message": "m"}}),
        ),
    ];
    for (name, instance) in refused {
        assert!(!is_valid(name, &instance), "{name} accepted {instance}");
    }
}
