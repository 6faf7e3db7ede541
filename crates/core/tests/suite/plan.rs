//! `update_plan`: the model's plan reaches the front ends as an event, and
//! the model reads whether it was taken.

use serde_json::json;
use tiller_core::config::WireApi;
use tiller_mock_model::Step;
use tiller_protocol::{EventMsg, PlanStep, StepStatus};
use tiller_test_support::{TestEngine, input_summary};

/// A turn whose model calls `update_plan` with `args` once, then answers:
/// the engine once it ended, the turn's id, and what the model read back.
async fn one_plan_call(wire: WireApi, args: serde_json::Value) -> (TestEngine, String, String) {
    let mut engine = TestEngine::start(
        wire,
        vec![
            Step::function_call("call_p", "update_plan", args),
            Step::text("noted"),
        ],
    )
    .await;
    let turn = engine.start_turn("plan it").await;
    engine.wait_terminal(&turn).await;
    let requests = engine.wait_requests(2).await;
    assert!(
        requests[0].tool_names().iter().any(|n| n == "update_plan"),
        "the model is offered update_plan: {:?}",
        requests[0].tool_names()
    );
    let output = input_summary(&requests[1])
        .into_iter()
        .find(|line| line.starts_with("output call_p:"))
        .expect("an output for call_p");
    (engine, turn, output)
}

fn plans(engine: &TestEngine) -> Vec<(Option<String>, Vec<PlanStep>)> {
    engine
        .log
        .iter()
        .filter_map(|e| match &e.msg {
            EventMsg::PlanUpdated { explanation, plan } => {
                Some((explanation.clone(), plan.clone()))
            }
            _ => None,
        })
        .collect()
}

async fn the_plan_is_shown_in_its_turn_and_the_model_reads_plan_updated(wire: WireApi) {
    let (engine, turn, output) = one_plan_call(
        wire,
        json!({"explanation": "two steps", "plan": [
            {"step": "read the code", "status": "completed"},
            {"step": "fix the bug", "status": "in_progress"},
            {"step": "run the tests", "status": "pending"}]}),
    )
    .await;
    let step = |text: &str, status| PlanStep {
        step: text.to_owned(),
        status,
    };
    assert_eq!(
        plans(&engine),
        [(
            Some("two steps".to_owned()),
            vec![
                step("read the code", StepStatus::Completed),
                step("fix the bug", StepStatus::InProgress),
                step("run the tests", StepStatus::Pending),
            ]
        )]
    );
    let shown = engine
        .log
        .iter()
        .find(|e| matches!(e.msg, EventMsg::PlanUpdated { .. }))
        .unwrap();
    assert_eq!(
        shown.turn_id.as_deref(),
        Some(turn.as_str()),
        "the plan's turn"
    );
    assert!(output.ends_with("Plan updated"), "{output}");
    engine.finish().await;
}

async fn a_bad_plan_is_refused_to_the_model_and_nothing_is_shown(wire: WireApi) {
    let (engine, _, output) = one_plan_call(
        wire,
        json!({"plan": [{"step": "a", "status": "in_progress"},
                        {"step": "b", "status": "in_progress"}]}),
    )
    .await;
    assert!(plans(&engine).is_empty(), "{:?}", plans(&engine));
    assert!(
        output.contains("at most one") && output.contains("the plan is unchanged"),
        "{output}"
    );
    engine.finish().await;
}

on_both_wires!(
    the_plan_is_shown_in_its_turn_and_the_model_reads_plan_updated,
    a_bad_plan_is_refused_to_the_model_and_nothing_is_shown,
);
