//! Settings for the next turns: `thread/settings/update` and `turn/start`'s
//! overrides (model, cwd, approval policy, sandbox policy, reasoning effort
//! and summary) reach the model request and the tools; a change made while
//! a turn runs waits for the next turn; what tiller cannot apply is refused
//! by name; nothing is dropped. `thread/start` reports the sandbox the
//! thread's commands run in.

use serde_json::{Value, json};
use tiller_mock_model::Step;

use super::support::{AppServer, Fixture, completed_items, shell};

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
async fn turn_start_overrides_are_applied_or_refused() {
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
        (
            json!({"sandboxPolicy": {"type": "readOnly", "networkAccess": true}}),
            "networkAccess",
        ),
        (
            json!({"sandboxPolicy": {"type": "workspaceWrite", "writableRoots": ["cache"]}}),
            "\"cache\" is not an absolute path",
        ),
        (json!({"sandboxPolicy": {"type": "nowhere"}}), "nowhere"),
        (json!({"permissions": ":workspace"}), ":workspace"),
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

    // Applied from this turn on, the sandbox policy too, with nothing to warn about.
    let started = server
        .call(
            "turn/start",
            json!({"threadId": thread, "input": text("go"), "model": "turn-model",
                   "effort": "low",
                   "sandboxPolicy": {"type": "workspaceWrite", "networkAccess": true}}),
        )
        .await;
    let turn = started["turn"]["id"].as_str().unwrap().to_owned();
    server.wait_completed(&turn).await;
    let next = server.start_turn(&thread, "and on", None).await;
    server.wait_completed(&next).await;
    let resumed = server
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    assert_eq!(
        resumed["sandbox"],
        json!({"type": "workspaceWrite", "writableRoots": [], "networkAccess": true,
               "excludeTmpdirEnvVar": false, "excludeSlashTmp": false})
    );
    assert!(
        server.notifications("warning").is_empty(),
        "{}",
        server.dump()
    );
    server.close().await.assert_success();
    let requests = fixture.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.body["model"], "turn-model");
        assert_eq!(request.body["reasoning"], json!({"effort": "low"}));
    }
    fixture.finish().await;
}

const MADE: &str = "made-here";

/// The command items of `turn`, as they completed: (status, exit code, output).
fn commands(server: &AppServer, turn: &str) -> Vec<(String, Value, String)> {
    completed_items(&server.log, turn, "commandExecution")
        .into_iter()
        .map(|item| {
            (
                item["status"].as_str().unwrap().to_owned(),
                item["exitCode"].clone(),
                item["aggregatedOutput"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_thread_writes_nothing_until_a_turn_lifts_the_sandbox() {
    let fixture = Fixture::new(vec![
        shell("call_denied", &format!("touch {MADE}")),
        Step::text("it was denied"),
        shell("call_allowed", &format!("touch {MADE}")),
        Step::text("made it"),
    ])
    .await;
    let mut server = fixture.spawn();
    server.initialize().await;
    let work = fixture.scratch.work();
    let started = server
        .call(
            "thread/start",
            json!({"cwd": work, "approvalPolicy": "never", "sandbox": "read-only"}),
        )
        .await;
    assert_eq!(
        started["sandbox"],
        json!({"type": "readOnly", "networkAccess": false})
    );
    let thread = started["thread"]["id"].as_str().unwrap().to_owned();

    let denied = server.start_turn(&thread, "make it", None).await;
    server.wait_completed(&denied).await;
    let ran = commands(&server, &denied);
    assert_eq!(ran.len(), 1, "{}", server.dump());
    let (status, exit_code, output) = &ran[0];
    assert_eq!(status, "failed", "{output}");
    assert_ne!(exit_code, &json!(0));
    assert!(output.contains("Permission denied"), "{output}");
    assert!(!work.join(MADE).exists());
    // Under `never` nobody is asked: the model hears why.
    assert!(
        server
            .notifications("item/commandExecution/requestApproval")
            .is_empty()
    );

    let allowed = server
        .call(
            "turn/start",
            json!({"threadId": thread, "input": [{"type": "text", "text": "again"}],
                   "sandboxPolicy": {"type": "dangerFullAccess"}}),
        )
        .await;
    let allowed = allowed["turn"]["id"].as_str().unwrap().to_owned();
    server.wait_completed(&allowed).await;
    let ran = commands(&server, &allowed);
    assert_eq!(ran.len(), 1, "{}", server.dump());
    assert_eq!(ran[0].0, "completed", "{}", ran[0].2);
    assert!(work.join(MADE).exists());
    let resumed = server
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    assert_eq!(resumed["sandbox"], json!({"type": "dangerFullAccess"}));
    server.close().await.assert_success();
    let requests = fixture.requests();
    let told = requests[1].body["input"].to_string();
    assert!(told.contains("sandbox"), "{told}");
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_start_reports_the_sandbox_and_policy_it_runs_with() {
    let fixture = Fixture::new(Vec::new()).await;
    let mut server = fixture.spawn();
    server.initialize().await;
    let work = fixture.scratch.work();
    let cache = fixture.scratch.home().join("cache");

    let default = server.call("thread/start", json!({"cwd": work})).await;
    assert_eq!(
        default["sandbox"],
        json!({"type": "workspaceWrite", "writableRoots": [], "networkAccess": false,
               "excludeTmpdirEnvVar": false, "excludeSlashTmp": false})
    );
    assert_eq!(default["approvalPolicy"], "never");

    let configured = server
        .call(
            "thread/start",
            json!({"cwd": work, "approvalPolicy": "untrusted",
                   "config": {"sandbox_workspace_write.writable_roots": [cache],
                              "sandbox_workspace_write.network_access": true,
                              "sandbox_workspace_write.exclude_slash_tmp": true}}),
        )
        .await;
    assert_eq!(
        configured["sandbox"],
        json!({"type": "workspaceWrite", "writableRoots": [cache], "networkAccess": true,
               "excludeTmpdirEnvVar": false, "excludeSlashTmp": true})
    );
    assert_eq!(configured["approvalPolicy"], "untrusted");

    for (params, sandbox, policy) in [
        (
            json!({"sandbox": "read-only", "approvalPolicy": "on-request"}),
            json!({"type": "readOnly", "networkAccess": false}),
            "on-request",
        ),
        (
            json!({"sandbox": "danger-full-access", "approvalPolicy": "never"}),
            json!({"type": "dangerFullAccess"}),
            "never",
        ),
        // tiller's on-failure, which Codex's AskForApproval does not have.
        (
            json!({"sandbox": "workspace-write", "approvalPolicy": "on-failure"}),
            json!({"type": "workspaceWrite", "writableRoots": [], "networkAccess": false,
                   "excludeTmpdirEnvVar": false, "excludeSlashTmp": false}),
            "on-request",
        ),
    ] {
        let mut params = params;
        params["cwd"] = json!(work);
        let started = server.call("thread/start", params.clone()).await;
        assert_eq!(started["sandbox"], sandbox, "{params}");
        assert_eq!(started["approvalPolicy"], policy, "{params}");
    }

    // A fork takes the same overrides.
    let source = default["thread"]["id"].as_str().unwrap();
    let forked = server
        .call(
            "thread/fork",
            json!({"threadId": source, "sandbox": "read-only"}),
        )
        .await;
    assert_eq!(
        forked["sandbox"],
        json!({"type": "readOnly", "networkAccess": false})
    );

    for (params, named) in [
        (json!({"sandbox": "readOnly"}), "readOnly"),
        (json!({"sandbox": {"type": "readOnly"}}), "sandbox"),
        (json!({"approvalPolicy": "sometimes"}), "sometimes"),
        (json!({"permissions": ":read-only"}), ":read-only"),
    ] {
        let mut params = params;
        params["cwd"] = json!(work);
        let error = server.call_err("thread/start", params.clone()).await;
        assert_eq!(error["code"], -32602, "{params}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains(named),
            "{params}: {error}"
        );
    }
    let error = server
        .call_err(
            "thread/fork",
            json!({"threadId": source, "sandbox": "nowhere"}),
        )
        .await;
    assert!(
        error["message"].as_str().unwrap().contains("nowhere"),
        "{error}"
    );
    server.close().await.assert_success();
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
