//! The missing-tool-output 400: repaired and retried once, then fatal.

use serde_json::json;
use tiller_core::config::WireApi;
use tiller_mock_model::Step;
use tiller_protocol::EventMsg;
use tiller_test_support::TestEngine;

/// What each API answers a call with no output, in its own words.
fn missing_output_message(wire: WireApi) -> &'static str {
    match wire {
        WireApi::Responses => "No tool output found for function call call_x.",
        WireApi::Chat => {
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: call_x"
        }
    }
}

fn missing_output_400(wire: WireApi) -> Step {
    Step::http_error(
        400,
        json!({"error": {"message": missing_output_message(wire), "type": "invalid_request_error", "param": "input", "code": null}}),
    )
}

async fn missing_tool_output_400_is_retried_once_without_spending_the_budget(wire: WireApi) {
    let mut engine = TestEngine::start_with(
        vec![missing_output_400(wire), Step::text("recovered")],
        tiller_test_support::EngineSettings {
            request_max_retries: 0,
            ..tiller_test_support::EngineSettings::new(wire)
        },
    )
    .await;
    let turn = engine.start_turn("hi").await;
    let end = engine.wait_terminal(&turn).await;
    assert!(
        matches!(end, EventMsg::TurnCompleted { last_agent_message: Some(ref t), .. } if t == "recovered"),
        "{end:?}"
    );
    assert!(engine.log.iter().any(
        |e| matches!(&e.msg, EventMsg::BackgroundEvent { message } if message.contains("call_x"))
    ));
    assert!(
        !engine
            .log
            .iter()
            .any(|e| matches!(e.msg, EventMsg::StreamRetry { .. }))
    );
    engine.finish().await;
}

async fn a_second_missing_tool_output_400_fails_the_turn(wire: WireApi) {
    let mut engine = TestEngine::start(
        wire,
        vec![
            missing_output_400(wire),
            missing_output_400(wire),
            Step::text("unused"),
        ],
    )
    .await;
    let turn = engine.start_turn("hi").await;
    let end = engine.wait_terminal(&turn).await;
    let EventMsg::TurnFailed { error, .. } = end else {
        panic!("{end:?}")
    };
    assert_eq!(error.message, missing_output_message(wire));
    assert_eq!(engine.requests().len(), 2);
    engine.finish().await;
}

async fn a_gap_in_the_history_is_repaired_before_the_request_and_reported(wire: WireApi) {
    use tiller_protocol::ResponseItem;
    let broken = vec![
        ResponseItem::user_text("earlier"),
        ResponseItem::FunctionCall {
            name: "shell".into(),
            arguments: "{}".into(),
            call_id: "call_lost".into(),
        },
    ];
    let mut engine = TestEngine::start_with(
        vec![Step::text("fine")],
        tiller_test_support::EngineSettings {
            history: broken,
            ..tiller_test_support::EngineSettings::new(wire)
        },
    )
    .await;
    let turn = engine.start_turn("continue").await;
    assert!(matches!(
        engine.wait_terminal(&turn).await,
        EventMsg::TurnCompleted { .. }
    ));
    let requests = engine.wait_requests(1).await;
    assert!(requests[0].rejected.is_none());
    let summary = tiller_test_support::input_summary(&requests[0]);
    assert!(
        summary[2].starts_with("output call_lost: aborted"),
        "{summary:?}"
    );
    assert!(engine.log.iter().any(
        |e| matches!(&e.msg, EventMsg::BackgroundEvent { message } if message.contains("call_lost"))
    ));
    engine.finish().await;
}

on_both_wires!(
    missing_tool_output_400_is_retried_once_without_spending_the_budget,
    a_second_missing_tool_output_400_fails_the_turn,
    a_gap_in_the_history_is_repaired_before_the_request_and_reported,
);
