//! Reading threads: `thread/read` (with and without turns), `thread/turns/list`
//! (pages, both orders) and `thread/list` (pages, filters), for a thread this
//! server has loaded and for one only its rollout holds; their errors.
//! Every line is checked against the 0.171 schema by the support code.

use serde_json::{Value, json};
use tiller_mock_model::Step;

use super::support::{Fixture, text_input};

fn ids_of(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_are_read_paged_and_listed_loaded_or_saved() {
    let fixture = Fixture::new(vec![
        Step::text("one"),
        Step::text("two"),
        Step::text("three"),
        Step::text("other"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let turns = server
        .run_turns(&thread, &["first prompt", "second", "third"])
        .await;
    let other = server.start_thread(&fixture.scratch).await;
    let turn = server.start_turn(&other, "needle in the other", None).await;
    server.wait_completed(&turn).await;

    // Loaded: read with and without turns.
    let read = server
        .call(
            "thread/read",
            json!({"threadId": thread, "includeTurns": true}),
        )
        .await;
    assert_eq!(read["thread"]["id"], thread.as_str());
    assert_eq!(read["thread"]["status"], json!({"type": "idle"}));
    assert_eq!(read["readState"], Value::Null);
    let read_turns: Vec<&str> = read["thread"]["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(read_turns, turns);
    let bare = server
        .call("thread/read", json!({"threadId": thread}))
        .await;
    assert_eq!(bare["thread"]["turns"], json!([]));

    // Turns, newest first by default, two per page; then back.
    let page = server
        .call("thread/turns/list", json!({"threadId": thread, "limit": 2}))
        .await;
    assert_eq!(ids_of(&page), [turns[2].clone(), turns[1].clone()]);
    let rest = server
        .call(
            "thread/turns/list",
            json!({"threadId": thread, "limit": 2, "cursor": page["nextCursor"]}),
        )
        .await;
    assert_eq!(ids_of(&rest), [turns[0].clone()]);
    assert_eq!(rest["nextCursor"], Value::Null);
    let forward = server
        .call(
            "thread/turns/list",
            json!({"threadId": thread, "sortDirection": "asc", "cursor": rest["backwardsCursor"]}),
        )
        .await;
    assert_eq!(ids_of(&forward), turns);
    assert_eq!(
        forward["data"][0]["items"][0]["content"],
        json!([text_input("first prompt")])
    );

    // Items: each turn's user message and answer, newest first by default.
    let items = server
        .call("thread/items/list", json!({"threadId": thread, "limit": 4}))
        .await;
    let entries = items["data"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[0]["turnId"], turns[2].as_str());
    assert_eq!(entries[0]["item"]["type"], "agentMessage");
    assert_eq!(entries[1]["item"]["type"], "userMessage");
    let rest = server
        .call(
            "thread/items/list",
            json!({"threadId": thread, "cursor": items["nextCursor"]}),
        )
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 2);
    assert_eq!(rest["nextCursor"], Value::Null);
    let one_turn = server
        .call(
            "thread/items/list",
            json!({"threadId": thread, "turnId": turns[0], "sortDirection": "asc"}),
        )
        .await;
    let first_items: Vec<&str> = one_turn["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["item"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(first_items, ["userMessage", "agentMessage"]);
    let anchored = server
        .call(
            "thread/items/list",
            json!({"threadId": thread, "sortDirection": "asc",
                   "cursor": {"type": "item", "itemId": one_turn["data"][0]["item"]["id"]}}),
        )
        .await;
    assert_eq!(anchored["data"][0]["item"], one_turn["data"][1]["item"]);
    let no_turn = server
        .call_err(
            "thread/items/list",
            json!({"threadId": thread, "turnId": "nope"}),
        )
        .await;
    assert_eq!(no_turn["code"], -32600);

    // Listed, newest first, and filtered.
    let listed = server.call("thread/list", json!({})).await;
    let ids = ids_of(&listed);
    assert_eq!(ids, [other.as_str(), thread.as_str()]);
    assert_eq!(listed["data"][1]["preview"], "first prompt");
    let first_page = server.call("thread/list", json!({"limit": 1})).await;
    assert_eq!(ids_of(&first_page), [other.as_str()]);
    let second_page = server
        .call(
            "thread/list",
            json!({"limit": 1, "cursor": first_page["nextCursor"]}),
        )
        .await;
    assert_eq!(ids_of(&second_page), [thread.as_str()]);
    let searched = server
        .call("thread/list", json!({"searchTerm": "NEEDLE"}))
        .await;
    assert_eq!(ids_of(&searched), [other.as_str()]);
    let elsewhere = server.call("thread/list", json!({"cwd": "/nowhere"})).await;
    assert_eq!(ids_of(&elsewhere), Vec::<String>::new());
    let archived = server.call("thread/list", json!({"archived": true})).await;
    assert_eq!(ids_of(&archived), Vec::<String>::new());
    server.close().await.assert_success();

    // Saved only: a new server reads it without loading it.
    let mut server = fixture.spawn();
    server.initialize().await;
    let saved = server
        .call(
            "thread/read",
            json!({"threadId": thread, "includeTurns": true}),
        )
        .await;
    assert_eq!(saved["thread"]["status"], json!({"type": "notLoaded"}));
    assert_eq!(saved["thread"]["turns"], read["thread"]["turns"]);
    let page = server
        .call("thread/turns/list", json!({"threadId": thread, "limit": 1}))
        .await;
    assert_eq!(ids_of(&page), [turns[2].clone()]);
    let listed = server.call("thread/list", json!({})).await;
    assert_eq!(listed["data"][0]["status"], json!({"type": "notLoaded"}));
    let loaded = server.call("thread/loaded/list", json!({})).await;
    assert_eq!(loaded["data"], json!([]), "reading loads nothing");

    // Errors: an unknown thread, a cursor that names nothing, a bad shape.
    for (method, params, code) in [
        (
            "thread/read",
            json!({"threadId": "ffffffff-0000-0000-0000-000000000000"}),
            -32600,
        ),
        (
            "thread/turns/list",
            json!({"threadId": thread, "cursor": "no-such-turn"}),
            -32602,
        ),
        ("thread/list", json!({"cursor": "no-such-thread"}), -32602),
        ("thread/list", json!({"cwd": 7}), -32602),
        ("thread/read", json!({}), -32602),
    ] {
        let error = server.call_err(method, params.clone()).await;
        assert_eq!(error["code"], code, "{method} {params}: {error}");
    }
    server.close().await.assert_success();
    fixture.finish().await;
}

/// `thread/tokenUsage/updated` after each completed turn, before its
/// `turn/completed`: the thread's running total of what the model reported,
/// the turn's last response as `last` (how full the context is now), and the
/// context window the session knows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_usage_is_reported_after_each_completed_turn() {
    let fixture = Fixture::new(vec![
        Step::text("one").with_usage(100, 7),
        Step::function_call("call_1", "shell", json!({"command": ["true"]})).with_usage(200, 5),
        Step::text("two").with_usage(250, 11),
    ])
    .await;
    let mut server = fixture.spawn_with(&["-c", "model_context_window=8000"]);
    server.initialize().await;
    let thread = server.start_thread(&fixture.scratch).await;
    let mut lasts = Vec::new();
    for prompt in ["first", "second"] {
        let turn = server.start_turn(&thread, prompt, None).await;
        server.wait_completed(&turn).await;
        let usage: Vec<&Value> = server
            .notifications("thread/tokenUsage/updated")
            .into_iter()
            .filter(|l| l["params"]["turnId"] == turn.as_str())
            .collect();
        assert_eq!(usage.len(), 1, "{}", server.dump());
        let at = server.log.iter().position(|l| l == usage[0]).unwrap();
        let completed = server
            .log
            .iter()
            .position(|l| {
                l["method"] == "turn/completed" && l["params"]["turn"]["id"] == turn.as_str()
            })
            .unwrap();
        assert!(at < completed, "{}", server.dump());
        lasts.push(usage[0]["params"]["tokenUsage"].clone());
    }
    assert_eq!(lasts[0]["last"]["inputTokens"], 100);
    assert_eq!(lasts[0]["last"]["outputTokens"], 7);
    assert_eq!(lasts[0]["last"]["totalTokens"], 107);
    // The second turn made two requests: `last` is the second's.
    assert_eq!(lasts[1]["last"]["inputTokens"], 250);
    assert_eq!(lasts[1]["last"]["outputTokens"], 11);
    assert_eq!(lasts[1]["total"]["inputTokens"], 550);
    assert_eq!(lasts[1]["total"]["totalTokens"], 573);
    assert_eq!(lasts[1]["modelContextWindow"], 8000);
    server.close().await.assert_success();
    fixture.finish().await;
}

/// `thread/archive` unloads an idle thread (`thread/closed` to its
/// subscribers) and hides it from the list, from `thread/read` and from
/// `thread/resume` until `thread/unarchive`; `thread/delete` removes it. A
/// thread running a turn is not archived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_unarchive_and_delete() {
    let fixture = Fixture::new(vec![
        Step::text("one"),
        super::support::shell("call_sleep", "sleep 60"),
        Step::text("back"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let other = server.start_thread(&fixture.scratch).await;
    let turn = server.start_turn(&thread, "first", None).await;
    server.wait_completed(&turn).await;

    // Not while a turn runs.
    let running = server.start_turn(&thread, "sleep", None).await;
    server.wait_item_started(&running, "commandExecution").await;
    let busy = server
        .call_err("thread/archive", json!({"threadId": thread}))
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

    let archived = server
        .call("thread/archive", json!({"threadId": thread}))
        .await;
    assert_eq!(archived, json!({}));
    let id = thread.clone();
    server
        .wait_for("thread/archived", move |l| {
            l["method"] == "thread/archived" && l["params"]["threadId"] == id.as_str()
        })
        .await;
    assert!(
        server
            .notifications("thread/closed")
            .iter()
            .any(|l| l["params"]["threadId"] == thread.as_str()),
        "{}",
        server.dump()
    );
    let loaded = server.call("thread/loaded/list", json!({})).await;
    assert_eq!(loaded["data"], json!([other]));
    let listed = server.call("thread/list", json!({})).await;
    assert_eq!(ids_of(&listed), [other.as_str()]);
    let listed = server.call("thread/list", json!({"archived": true})).await;
    assert_eq!(ids_of(&listed), [thread.as_str()]);
    for method in ["thread/read", "thread/resume"] {
        let error = server.call_err(method, json!({"threadId": thread})).await;
        assert_eq!(error["code"], -32600, "{method}: {error}");
    }

    let unarchived = server
        .call("thread/unarchive", json!({"threadId": thread}))
        .await;
    assert_eq!(unarchived["thread"]["id"], thread.as_str());
    assert_eq!(unarchived["thread"]["status"], json!({"type": "notLoaded"}));
    let again = server
        .call_err("thread/unarchive", json!({"threadId": thread}))
        .await;
    assert_eq!(again["code"], -32600);
    let resumed = server
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    assert_eq!(resumed["thread"]["turns"].as_array().unwrap().len(), 2);
    let turn = server.start_turn(&thread, "back again", None).await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed");

    let deleted = server
        .call("thread/delete", json!({"threadId": other}))
        .await;
    assert_eq!(deleted, json!({}));
    let error = server
        .call_err("thread/read", json!({"threadId": other}))
        .await;
    assert_eq!(error["code"], -32600);
    let unknown = server
        .call_err(
            "thread/archive",
            json!({"threadId": "ffffffff-0000-0000-0000-000000000000"}),
        )
        .await;
    assert_eq!(unknown["code"], -32600);
    server.close().await.assert_success();
    fixture.finish().await;
}

/// `thread/name/set`: the name is kept across restarts and shown by
/// `thread/read` and `thread/list`; `thread/name/updated` follows; an empty
/// name clears it; an over-long one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_is_named_renamed_and_cleared() {
    let fixture = Fixture::new(vec![]).await;
    let (mut server, thread) = fixture.started().await;
    let named = server
        .call(
            "thread/name/set",
            json!({"threadId": thread, "name": "  fix the flaky test  "}),
        )
        .await;
    assert_eq!(named, json!({}));
    let id = thread.clone();
    let at = server
        .wait_for("thread/name/updated", move |l| {
            l["method"] == "thread/name/updated" && l["params"]["threadId"] == id.as_str()
        })
        .await;
    assert_eq!(server.log[at]["params"]["threadName"], "fix the flaky test");
    let read = server
        .call("thread/read", json!({"threadId": thread}))
        .await;
    assert_eq!(read["thread"]["name"], "fix the flaky test");
    let too_long = server
        .call_err(
            "thread/name/set",
            json!({"threadId": thread, "name": "x".repeat(2000)}),
        )
        .await;
    assert_eq!(too_long["code"], -32602);
    let unknown = server
        .call_err(
            "thread/name/set",
            json!({"threadId": "ffffffff-0000-0000-0000-000000000000", "name": "n"}),
        )
        .await;
    assert_eq!(unknown["code"], -32600);
    server.close().await.assert_success();

    // A new server: the name is there, and a thread it has not loaded is
    // renamed and cleared too.
    let mut server = fixture.spawn();
    server.initialize().await;
    let listed = server.call("thread/list", json!({})).await;
    assert_eq!(listed["data"][0]["name"], "fix the flaky test");
    server
        .call("thread/name/set", json!({"threadId": thread, "name": ""}))
        .await;
    let id = thread.clone();
    let at = server
        .wait_for("thread/name/updated", move |l| {
            l["method"] == "thread/name/updated" && l["params"]["threadId"] == id.as_str()
        })
        .await;
    assert!(server.log[at]["params"].get("threadName").is_none());
    let read = server
        .call("thread/read", json!({"threadId": thread}))
        .await;
    assert_eq!(read["thread"]["name"], Value::Null);
    server.close().await.assert_success();
    fixture.finish().await;
}

/// `model/list`: the provider's list (`GET /models`), the configured model
/// first and the default; with no list at the provider, the configured
/// model alone. Nothing is sent to the model's `/responses`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_listed_from_the_provider_or_the_config() {
    let fixture = Fixture::new(vec![]).await;
    let mut server = fixture.spawn();
    server.initialize().await;
    let ids = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // No list at the provider: the configured model.
    let alone = server.call("model/list", json!({})).await;
    assert_eq!(alone["data"].as_array().unwrap().len(), 1, "{alone}");
    let configured = ids(&alone)[0].clone();
    assert_eq!(alone["data"][0]["isDefault"], true);

    fixture.mock.serve_models(vec![
        "other-model".to_string(),
        configured.clone(),
        "third-model".to_string(),
    ]);
    let listed = server.call("model/list", json!({})).await;
    assert_eq!(
        ids(&listed),
        [configured.as_str(), "other-model", "third-model"]
    );
    let defaults: Vec<bool> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["isDefault"].as_bool().unwrap())
        .collect();
    assert_eq!(defaults, [true, false, false]);
    let page = server.call("model/list", json!({"limit": 2})).await;
    assert_eq!(ids(&page), [configured.as_str(), "other-model"]);
    let rest = server
        .call(
            "model/list",
            json!({"limit": 2, "cursor": page["nextCursor"]}),
        )
        .await;
    assert_eq!(ids(&rest), ["third-model"]);
    let unknown = server
        .call_err("model/list", json!({"modelProvider": "nope"}))
        .await;
    assert_eq!(unknown["code"], -32603, "{unknown}");
    assert!(
        unknown["message"].as_str().unwrap().contains("nope"),
        "{unknown}"
    );
    server.close().await.assert_success();
    assert!(fixture.requests().is_empty());
    fixture.finish().await;
}

/// A failed turn (here the model API refuses the request) leaves the thread
/// in `systemError` until its next turn: in `thread/status/changed`, in
/// `thread/read` and in `thread/list`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_turn_leaves_the_thread_in_system_error_until_the_next() {
    let fixture = Fixture::new(vec![
        Step::http_error(
            400,
            json!({"error": {"message": "bad request", "type": "invalid_request_error"}}),
        ),
        Step::text("fine again"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "fail", None).await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "failed", "{done}");
    let statuses: Vec<&Value> = server
        .notifications("thread/status/changed")
        .iter()
        .map(|l| &l["params"]["status"])
        .collect();
    assert_eq!(statuses.last().unwrap(), &&json!({"type": "systemError"}));
    let read = server
        .call("thread/read", json!({"threadId": thread}))
        .await;
    assert_eq!(read["thread"]["status"], json!({"type": "systemError"}));
    let listed = server.call("thread/list", json!({})).await;
    assert_eq!(listed["data"][0]["status"], json!({"type": "systemError"}));
    let turn = server.start_turn(&thread, "again", None).await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");
    let read = server
        .call("thread/read", json!({"threadId": thread}))
        .await;
    assert_eq!(read["thread"]["status"], json!({"type": "idle"}));
    server.close().await.assert_success();
    fixture.finish().await;
}
