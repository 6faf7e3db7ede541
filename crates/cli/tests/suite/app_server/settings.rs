//! Settings for the next turns: `thread/settings/update` and `turn/start`'s
//! overrides (model, cwd, approval policy, reasoning effort and summary)
//! reach the model request and the tools; a change made while a turn runs
//! waits for the next turn; what tiller cannot apply is refused by name, a
//! sandbox policy it cannot enforce is warned about; nothing is dropped.

use serde_json::json;
use tiller_mock_model::Step;

use super::support::{Fixture, completed_items, shell};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_update_changes_the_model_folder_and_reasoning_of_the_next_turn() {
    let fixture = Fixture::new(vec![shell("call_pwd", "pwd"), Step::text("there")]).await;
    let elsewhere = fixture.scratch.work().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let (mut server, thread) = fixture.started().await;
    let updated = server
        .call(
            "thread/settings/update",
            json!({"threadId": thread, "model": "other-model", "cwd": elsewhere,
                   "approvalPolicy": "never", "effort": "high", "summary": "concise"}),
        )
        .await;
    assert_eq!(updated, json!({}));
    let read = server
        .call("thread/read", json!({"threadId": thread}))
        .await;
    assert_eq!(read["thread"]["model"], "other-model");
    assert_eq!(read["thread"]["cwd"], elsewhere.to_str().unwrap());
    let turn = server.start_turn(&thread, "where are you", None).await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");
    let command = completed_items(&server.log, &turn, "commandExecution");
    assert_eq!(
        command[0]["aggregatedOutput"].as_str().unwrap().trim(),
        elsewhere.to_str().unwrap()
    );
    server.close().await.assert_success();
    let requests = fixture.requests();
    for request in &requests {
        assert_eq!(request.body["model"], "other-model");
        assert_eq!(
            request.body["reasoning"],
            json!({"effort": "high", "summary": "concise"})
        );
    }
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_while_a_turn_runs_waits_for_the_next_turn() {
    let fixture = Fixture::new(vec![
        shell("call_wait", "sleep 1"),
        Step::text("first done"),
        Step::text("second done"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let first = server.start_turn(&thread, "wait", None).await;
    server.wait_item_started(&first, "commandExecution").await;
    server
        .call(
            "thread/settings/update",
            json!({"threadId": thread, "model": "next-model"}),
        )
        .await;
    server.wait_completed(&first).await;
    let second = server.start_turn(&thread, "again", None).await;
    server.wait_completed(&second).await;
    server.close().await.assert_success();
    let models: Vec<String> = fixture
        .requests()
        .iter()
        .map(|r| r.body["model"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(models.len(), 3);
    assert_ne!(models[0], "next-model");
    assert_eq!(models[1], models[0], "the running turn kept its model");
    assert_eq!(models[2], "next-model");
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_start_overrides_are_applied_warned_about_or_refused() {
    let fixture = Fixture::new(vec![Step::text("one"), Step::text("two")]).await;
    let (mut server, thread) = fixture.started().await;
    let text = |t: &str| json!([{"type": "text", "text": t}]);

    // Refused by name, and no turn starts.
    for (params, named) in [
        (json!({"outputSchema": {"type": "object"}}), "outputSchema"),
        (json!({"cwd": "/no/such/folder"}), "/no/such/folder"),
        (json!({"approvalPolicy": "sometimes"}), "sometimes"),
        (json!({"summary": "verbose"}), "verbose"),
        (
            json!({"collaborationMode": {"mode": "plan"}}),
            "collaborationMode",
        ),
    ] {
        let mut params = params;
        params["threadId"] = json!(thread);
        params["input"] = text("refused");
        let error = server.call_err("turn/start", params.clone()).await;
        assert_eq!(error["code"], -32602, "{params}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains(named),
            "{params}: {error}"
        );
    }
    assert!(server.notifications("turn/started").is_empty());

    // Applied from this turn on; a sandbox policy is warned about.
    let started = server
        .call(
            "turn/start",
            json!({"threadId": thread, "input": text("go"), "model": "turn-model",
                   "effort": "low", "sandboxPolicy": {"type": "workspaceWrite"}}),
        )
        .await;
    let turn = started["turn"]["id"].as_str().unwrap().to_owned();
    server.wait_completed(&turn).await;
    let warnings = server.notifications("warning");
    assert_eq!(warnings.len(), 1, "{}", server.dump());
    assert!(
        warnings[0]["params"]["message"]
            .as_str()
            .unwrap()
            .contains("sandboxPolicy"),
        "{}",
        warnings[0]
    );
    let next = server.start_turn(&thread, "and on", None).await;
    server.wait_completed(&next).await;
    server.close().await.assert_success();
    let requests = fixture.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.body["model"], "turn-model");
        assert_eq!(request.body["reasoning"], json!({"effort": "low"}));
    }
    fixture.finish().await;
}

/// A turn in another folder reads that folder's `AGENTS.md` files, not the
/// first folder's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_folder_brings_its_own_agents_md() {
    let fixture = Fixture::new(vec![Step::text("here"), Step::text("there")]).await;
    let work = fixture.scratch.work();
    let elsewhere = fixture.scratch.work().parent().unwrap().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(work.join("AGENTS.md"), "RULE-OF-WORK").unwrap();
    std::fs::write(elsewhere.join("AGENTS.md"), "RULE-OF-ELSEWHERE").unwrap();
    let (mut server, thread) = fixture.started().await;
    server.run_turns(&thread, &["first"]).await;
    server
        .call(
            "thread/settings/update",
            json!({"threadId": thread, "cwd": elsewhere}),
        )
        .await;
    server.run_turns(&thread, &["second"]).await;
    server.close().await.assert_success();
    let requests = fixture.requests();
    let first = requests[0].body["input"][0].to_string();
    let second = requests[1].body["input"][0].to_string();
    assert!(first.contains("RULE-OF-WORK"), "{first}");
    assert!(second.contains("RULE-OF-ELSEWHERE"), "{second}");
    assert!(!second.contains("RULE-OF-WORK"), "{second}");
    fixture.finish().await;
}
