//! MCP servers over the app-server, end to end: a thread configured with
//! servers through `thread/start`'s `config.mcp_servers`, a real MCP server
//! on the official Python SDK's FastMCP (`tiller-test-support`'s
//! `slow_server.py`), the app-server in this process on a unix socket, and
//! the real client on the other end ([`harness`]). What the MCP server saw
//! is read from its side (its record file); every line the app-server wrote
//! is checked against the Codex 0.171 schema ([`wire`]).
// Tests fail by panicking (the harness helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;
mod wire;

use std::time::Duration;

use serde_json::{Value, json};
use tiller_client::parse_server_request;
use tiller_client::protocol::{
    ErrorCode, JsonRpcError, McpServerElicitationAction, McpServerStartupState, ServerNotification,
    ServerRequest, ThreadItem, ThreadStatus, ThreadUnsubscribeParams, ThreadUnsubscribeResponse,
    TurnStatus,
};
use tiller_mock_model::Step;
use tiller_test_support::mcp_servers::{recorded, wait_for_record};

use harness::{Harness, output_for};
use wire::{ELICITATION_PARAMS, THREAD_ITEM, assert_valid};

/// How long the MCP server may take to be recorded doing something.
const SERVER_DEADLINE: Duration = Duration::from_secs(20);

const ELICITATION: &str = "mcpServer/elicitation/request";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_report_their_start_and_one_that_never_speaks_fails_without_delaying_the_turn() {
    let mut h = Harness::start(vec![Step::text("hello")]).await;
    let (slow, _) = h.slow_server("slow").await;
    let servers = json!({
        "slow": slow,
        // Fails its start: it never answers `initialize`.
        "mute": h.mute_server("mute", 0.5),
        // Still starting when the turn is over, whatever the machine's speed.
        "stalled": h.mute_server("stalled", 600.0),
    });
    let thread = h.start_thread(servers).await;
    let turn = h.start_turn(&thread, "hi").await;
    let done = h.wait_turn_completed(&turn).await;
    assert_eq!(done.turn.status, TurnStatus::Completed, "{done:?}");
    // The turn's model request did not wait for a server still starting.
    assert!(
        h.statuses("stalled")
            .iter()
            .all(|s| *s == McpServerStartupState::Starting),
        "{:?}",
        h.statuses("stalled")
    );
    let requests = h.wait_requests(1).await;
    assert!(
        !requests[0]
            .tool_names()
            .iter()
            .any(|t| t.starts_with("mcp__stalled")),
        "{:?}",
        requests[0].tool_names()
    );

    h.wait_status("stalled", McpServerStartupState::Starting)
        .await;
    let failed = h.wait_status("mute", McpServerStartupState::Failed).await;
    let error = failed.error.as_deref().unwrap_or_default();
    assert!(error.contains("startup_timeout_sec"), "{failed:?}");
    h.wait_status("slow", McpServerStartupState::Ready).await;
    for server in ["slow", "mute"] {
        let statuses = h.statuses(server);
        assert_eq!(
            statuses[0],
            McpServerStartupState::Starting,
            "{server}: {statuses:?}"
        );
        assert_eq!(statuses.len(), 2, "{server}: {statuses:?}");
    }
    let updates: Vec<Value> = h
        .wire_lines()
        .into_iter()
        .filter(|line| line["method"] == "mcpServer/startupStatus/updated")
        .map(|line| line["params"].clone())
        .collect();
    assert!(updates.len() >= 5, "{updates:?}");
    for update in &updates {
        assert_eq!(update["threadId"], thread.as_str(), "{update}");
        assert_eq!(update["environmentId"], Value::Null, "{update}");
        assert_eq!(update["failureReason"], Value::Null, "{update}");
        let ok = update["status"] != "failed";
        assert_eq!(update["error"].is_null(), ok, "{update}");
    }
    // Each was sent after the answer that opened the thread.
    let lines = h.wire_lines();
    let opened = lines
        .iter()
        .position(|line| line["result"]["thread"]["id"] == thread.as_str())
        .unwrap();
    let first_update = lines
        .iter()
        .position(|line| line["method"] == "mcpServer/startupStatus/updated")
        .unwrap();
    assert!(opened < first_update, "{lines:#?}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_of_an_mcp_tool_is_an_mcp_tool_call_item_with_its_structured_result() {
    let mut h = Harness::start(vec![
        Step::function_call("call_add", "mcp__slow__add", json!({"a": 2, "b": 3})),
        Step::text("five"),
    ])
    .await;
    let (slow, _) = h.slow_server("slow").await;
    let thread = h.start_thread(json!({ "slow": slow })).await;
    h.wait_status("slow", McpServerStartupState::Ready).await;
    let turn = h.start_turn(&thread, "add 2 and 3").await;
    let done = h.wait_turn_completed(&turn).await;
    assert_eq!(done.turn.status, TurnStatus::Completed, "{done:?}");

    let [started] = h.mcp_items(&turn, true).try_into().unwrap();
    let [completed] = h.mcp_items(&turn, false).try_into().unwrap();
    for item in [&started, &completed] {
        assert_valid(THREAD_ITEM, &serde_json::to_value(item).unwrap());
    }
    let ThreadItem::McpToolCall {
        id,
        server,
        tool,
        status,
        arguments,
        result,
        ..
    } = &started
    else {
        unreachable!()
    };
    assert_eq!((server.as_str(), tool.as_str()), ("slow", "add"));
    assert_eq!(status, "inProgress");
    assert_eq!(arguments, &json!({"a": 2, "b": 3}));
    assert_eq!(result, &None);
    let ThreadItem::McpToolCall {
        id: completed_id,
        status,
        result,
        error,
        duration_ms,
        ..
    } = &completed
    else {
        unreachable!()
    };
    assert_eq!(completed_id, id);
    assert_eq!(status, "completed");
    let result = result.as_ref().expect("a completed call has a result");
    assert_eq!(
        result["structuredContent"],
        json!({"result": 5}),
        "{result}"
    );
    assert!(result["content"].is_array(), "{result}");
    assert_eq!(error, &None);
    assert!(duration_ms.is_some());
    // The wire carries the same items, and they fit Codex's notifications.
    let wire_items: Vec<Value> = h
        .wire_lines()
        .into_iter()
        .filter(|line| {
            (line["method"] == "item/started" || line["method"] == "item/completed")
                && line["params"]["item"]["type"] == "mcpToolCall"
        })
        .map(|line| line["params"]["item"].clone())
        .collect();
    assert_eq!(wire_items.len(), 2, "{wire_items:?}");
    assert_eq!(wire_items[1]["status"], "completed");

    let requests = h.wait_requests(2).await;
    assert_eq!(output_for(&requests[1], "call_add"), "5");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_passed_on_and_an_interrupt_cancels_the_call_on_the_server() {
    let mut h = Harness::start(vec![Step::function_call(
        "call_sleep",
        "mcp__slow__sleep",
        json!({"seconds": 2}),
    )])
    .await;
    let (slow, record) = h.slow_server("slow").await;
    let thread = h.start_thread(json!({ "slow": slow })).await;
    h.wait_status("slow", McpServerStartupState::Ready).await;
    let turn = h.start_turn(&thread, "sleep").await;
    let progress = h
        .wait_notification("progress", |n| match n {
            ServerNotification::McpToolCallProgress(progress) => Some(progress.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (progress.thread_id.as_str(), progress.turn_id.as_str()),
        (thread.as_str(), turn.as_str())
    );
    assert!(progress.message.starts_with("slept"), "{progress:?}");
    let [started] = h.mcp_items(&turn, true).try_into().unwrap();
    assert_eq!(progress.item_id, started.id());

    h.client.turn_interrupt(&thread, &turn).await.unwrap();
    let done = h.wait_turn_completed(&turn).await;
    assert_eq!(done.turn.status, TurnStatus::Interrupted, "{done:?}");
    let [completed] = h.mcp_items(&turn, false).try_into().unwrap();
    assert_valid(THREAD_ITEM, &serde_json::to_value(&completed).unwrap());
    let ThreadItem::McpToolCall { status, error, .. } = &completed else {
        unreachable!()
    };
    assert_eq!(status, "failed");
    assert!(
        error.as_ref().is_some_and(|e| e["message"].is_string()),
        "{error:?}"
    );
    // The server was told to cancel the call, and did.
    wait_for_record(&record, "cancelled", SERVER_DEADLINE).await;
    assert!(!recorded(&record).contains(&"finished".to_owned()));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elicitation_is_put_to_the_client_and_its_answer_reaches_the_server() {
    let mut h = Harness::start(vec![
        Step::function_call("call_ask", "mcp__slow__ask_name", json!({})),
        Step::text("hello Ada"),
    ])
    .await;
    let (slow, record) = h.slow_server("slow").await;
    let thread = h.start_thread(json!({ "slow": slow })).await;
    h.wait_status("slow", McpServerStartupState::Ready).await;
    let turn = h.start_turn(&thread, "ask my name").await;
    let (id, params) = h.wait_server_request(ELICITATION).await;
    assert_valid(ELICITATION_PARAMS, &params);
    assert_eq!(params["threadId"], thread.as_str());
    assert_eq!(params["turnId"], turn.as_str());
    assert_eq!(params["serverName"], "slow");
    assert_eq!(params["environmentId"], Value::Null);
    assert_eq!(params["mode"], "form");
    assert_eq!(params["_meta"], Value::Null);
    assert_eq!(params["message"], "What is your name?");
    assert_eq!(params["requestedSchema"]["type"], "object", "{params}");
    assert_eq!(
        params["requestedSchema"]["properties"]["name"]["type"], "string",
        "{params}"
    );
    // The client reads it as the typed request.
    let Some(Ok(ServerRequest::McpServerElicitation(typed))) =
        parse_server_request(ELICITATION, params.clone())
    else {
        panic!("not an elicitation: {params}");
    };
    assert_eq!(typed.turn_id.as_deref(), Some(turn.as_str()));
    // The thread says it waits on the person.
    h.wait_notification("waitingOnUserInput", |n| match n {
        ServerNotification::ThreadStatusChanged(changed) => match &changed.status {
            ThreadStatus::Active { active_flags } if active_flags == &["waitingOnUserInput"] => {
                Some(())
            }
            _ => None,
        },
        _ => None,
    })
    .await;

    h.client
        .respond_elicitation(
            id.clone(),
            McpServerElicitationAction::Accept,
            Some(json!({"name": "Ada"})),
        )
        .unwrap();
    wait_for_record(&record, "elicited accept Ada", SERVER_DEADLINE).await;
    h.wait_resolved(&id).await;
    let done = h.wait_turn_completed(&turn).await;
    assert_eq!(done.turn.status, TurnStatus::Completed, "{done:?}");
    let requests = h.wait_requests(2).await;
    assert_eq!(output_for(&requests[1], "call_ask"), "accept: Ada");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_answer_to_an_elicitation_cancels_it() {
    let mut h = Harness::start(vec![
        Step::function_call("call_ask", "mcp__slow__ask_name", json!({})),
        Step::text("no name then"),
    ])
    .await;
    let (slow, record) = h.slow_server("slow").await;
    let thread = h.start_thread(json!({ "slow": slow })).await;
    h.wait_status("slow", McpServerStartupState::Ready).await;
    let turn = h.start_turn(&thread, "ask my name").await;
    let (id, _) = h.wait_server_request(ELICITATION).await;
    let refusal = JsonRpcError::new(ErrorCode::MethodNotFound, "this client shows no forms");
    h.client.respond(id.clone(), Err(refusal)).unwrap();
    wait_for_record(&record, "elicited cancel -", SERVER_DEADLINE).await;
    h.wait_resolved(&id).await;
    let done = h.wait_turn_completed(&turn).await;
    assert_eq!(done.turn.status, TurnStatus::Completed, "{done:?}");
    let requests = h.wait_requests(2).await;
    assert_eq!(output_for(&requests[1], "call_ask"), "cancel: -");
    // A second answer changes nothing.
    h.client
        .respond_elicitation(
            id,
            McpServerElicitationAction::Accept,
            Some(json!({"name": "Ada"})),
        )
        .unwrap();
    h.client.queue_list(&thread).await.unwrap();
    assert_eq!(
        recorded(&record)
            .iter()
            .filter(|l| l.starts_with("elicited"))
            .collect::<Vec<_>>(),
        ["elicited cancel -"]
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elicitation_nobody_is_left_to_answer_is_cancelled() {
    let mut h = Harness::start(vec![
        Step::function_call("call_ask", "mcp__slow__ask_name", json!({})),
        Step::text("nobody answered"),
    ])
    .await;
    let (slow, record) = h.slow_server("slow").await;
    let thread = h.start_thread(json!({ "slow": slow })).await;
    h.wait_status("slow", McpServerStartupState::Ready).await;
    h.start_turn(&thread, "ask my name").await;
    h.wait_server_request(ELICITATION).await;
    // The one connection it was put to leaves the thread (as a closed
    // connection does); the turn runs on without it.
    let left: ThreadUnsubscribeResponse = h
        .client
        .request(
            "thread/unsubscribe",
            &ThreadUnsubscribeParams {
                thread_id: thread.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(left.status, "unsubscribed");
    wait_for_record(&record, "elicited cancel -", SERVER_DEADLINE).await;
    let requests = h.wait_requests(2).await;
    assert_eq!(output_for(&requests[1], "call_ask"), "cancel: -");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_while_an_elicitation_waits_resolves_it() {
    let mut h = Harness::start(vec![Step::function_call(
        "call_ask",
        "mcp__slow__ask_name",
        json!({}),
    )])
    .await;
    let (slow, record) = h.slow_server("slow").await;
    let thread = h.start_thread(json!({ "slow": slow })).await;
    h.wait_status("slow", McpServerStartupState::Ready).await;
    let turn = h.start_turn(&thread, "ask my name").await;
    let (id, _) = h.wait_server_request(ELICITATION).await;
    h.client.turn_interrupt(&thread, &turn).await.unwrap();
    let done = h.wait_turn_completed(&turn).await;
    assert_eq!(done.turn.status, TurnStatus::Interrupted, "{done:?}");
    // Resolved before the turn's end.
    let lines = h.wire_lines();
    let id_json = serde_json::to_value(&id).unwrap();
    let resolved = lines.iter().position(|l| {
        l["method"] == "serverRequest/resolved" && l["params"]["requestId"] == id_json
    });
    let completed = lines
        .iter()
        .position(|l| l["method"] == "turn/completed")
        .unwrap();
    assert!(resolved.is_some_and(|at| at < completed), "{lines:#?}");
    // Answering now reaches nobody: the call was cancelled, the elicitation with it.
    h.client
        .respond_elicitation(
            id,
            McpServerElicitationAction::Accept,
            Some(json!({"name": "Ada"})),
        )
        .unwrap();
    h.client.queue_list(&thread).await.unwrap();
    assert!(!recorded(&record).iter().any(|l| l.starts_with("elicited")));
    h.finish().await;
}
