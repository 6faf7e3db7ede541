//! The model's plan through the real server: each `update_plan` call is a
//! `turn/plan/updated` of its turn (schema-checked as every line is), the
//! whole plan each time, between the turn's start and its end.

use serde_json::{Value, json};
use tiller_mock_model::Step;

use super::support::Fixture;

fn plan_call(call_id: &str, plan: Value) -> Step {
    Step::function_call(call_id, "update_plan", plan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_plan_update_is_a_turn_plan_updated_of_its_turn() {
    let fixture = Fixture::new(vec![
        plan_call(
            "call_p1",
            json!({"explanation": "first look", "plan": [
                {"step": "read the code", "status": "in_progress"},
                {"step": "fix the bug", "status": "pending"}]}),
        ),
        plan_call(
            "call_p2",
            json!({"plan": [
                {"step": "read the code", "status": "completed"},
                {"step": "fix the bug", "status": "in_progress"}]}),
        ),
        Step::text("on it"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "fix it", None).await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{done}");

    let plans: Vec<&Value> = server
        .notifications("turn/plan/updated")
        .into_iter()
        .map(|l| &l["params"])
        .collect();
    assert_eq!(
        plans,
        [
            &json!({"threadId": thread, "turnId": turn, "explanation": "first look", "plan": [
                {"step": "read the code", "status": "inProgress"},
                {"step": "fix the bug", "status": "pending"}]}),
            &json!({"threadId": thread, "turnId": turn, "explanation": null, "plan": [
                {"step": "read the code", "status": "completed"},
                {"step": "fix the bug", "status": "inProgress"}]}),
        ],
        "{}",
        server.dump()
    );
    let at = |method: &str| {
        server
            .log
            .iter()
            .position(|l| l["method"] == method)
            .unwrap_or_else(|| panic!("no {method}"))
    };
    assert!(at("turn/started") < at("turn/plan/updated"));
    assert!(at("turn/plan/updated") < at("turn/completed"));
    server.close().await.assert_success();
    fixture.finish().await;
}
