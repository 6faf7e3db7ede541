//! Retries: transient failures back off and retry, bad requests fail at once.

use std::time::Duration;

use serde_json::json;
use tiller_core::config::WireApi;
use tiller_mock_model::Step;
use tiller_protocol::{ErrorInfo, EventMsg};
use tiller_test_support::{EngineSettings, TestEngine};

fn retries(log: &[tiller_protocol::Event]) -> Vec<(u32, u32, String)> {
    log.iter()
        .filter_map(|e| match &e.msg {
            EventMsg::StreamRetry {
                attempt,
                max,
                reason,
                ..
            } => Some((*attempt, *max, reason.clone())),
            _ => None,
        })
        .collect()
}

async fn http_429_honours_retry_after(wire: WireApi) {
    let mut engine = TestEngine::start(
        wire,
        vec![
            Step::http_status(429).with_header("Retry-After", "1"),
            Step::text("ok"),
        ],
    )
    .await;
    let turn = engine.start_turn("hi").await;
    assert!(matches!(
        engine.wait_terminal(&turn).await,
        EventMsg::TurnCompleted { .. }
    ));
    let requests = engine.wait_requests(2).await;
    let gap = requests[1].arrived - requests[0].arrived;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(gap < Duration::from_millis(1900), "retried after {gap:?}");
    let seen = retries(&engine.log);
    assert_eq!(seen.len(), 1);
    assert!(seen[0].2.contains("429"));
    engine.finish().await;
}

async fn http_503_retries_until_the_budget_is_spent(wire: WireApi) {
    let mut engine = TestEngine::start_with(
        vec![
            Step::http_status(503),
            Step::http_status(503),
            Step::http_status(503),
            Step::text("unused"),
        ],
        EngineSettings {
            request_max_retries: 2,
            ..EngineSettings::new(wire)
        },
    )
    .await;
    let turn = engine.start_turn("hi").await;
    let end = engine.wait_terminal(&turn).await;
    let EventMsg::TurnFailed { error, .. } = end else {
        panic!("{end:?}")
    };
    assert!(error.message.contains("503"), "{}", error.message);
    assert_eq!(engine.requests().len(), 3);
    let seen: Vec<(u32, u32)> = retries(&engine.log)
        .into_iter()
        .map(|(a, m, _)| (a, m))
        .collect();
    assert_eq!(seen, vec![(1, 2), (2, 2)]);

    // I6: a failed turn leaves the session usable.
    let next = engine.start_turn("again").await;
    assert!(matches!(
        engine.wait_terminal(&next).await,
        EventMsg::TurnCompleted { .. }
    ));
    engine.finish().await;
}

async fn plain_400_is_not_retried_and_carries_the_servers_words(wire: WireApi) {
    let body =
        json!({"error": {"message": "Invalid model 'nope'.", "type": "invalid_request_error"}});
    let mut engine = TestEngine::start(
        wire,
        vec![Step::http_error(400, body), Step::text("unused")],
    )
    .await;
    let turn = engine.start_turn("hi").await;
    let end = engine.wait_terminal(&turn).await;
    assert_eq!(
        end,
        EventMsg::TurnFailed {
            error: ErrorInfo {
                message: "Invalid model 'nope'.".into(),
                http_status: Some(400)
            },
            unsent_input: vec![]
        }
    );
    assert_eq!(engine.requests().len(), 1);
    assert!(retries(&engine.log).is_empty());
    engine.finish().await;
}

async fn a_stream_dropped_mid_way_is_retried(wire: WireApi) {
    let mut engine = TestEngine::start(
        wire,
        vec![
            Step::text("one two three four five").with_drop_after(2),
            Step::text("whole answer"),
        ],
    )
    .await;
    let turn = engine.start_turn("hi").await;
    let end = engine.wait_terminal(&turn).await;
    assert!(
        matches!(end, EventMsg::TurnCompleted { last_agent_message: Some(ref t), .. } if t == "whole answer")
    );
    assert_eq!(engine.requests().len(), 2);
    let seen = retries(&engine.log);
    assert_eq!(seen.len(), 1, "{seen:?}");
    engine.finish().await;
}

async fn an_idle_stream_counts_as_a_drop(wire: WireApi) {
    let mut engine = TestEngine::start_with(
        vec![
            Step::text("one two three").with_stall(1, 10_000),
            Step::text("after the stall"),
        ],
        EngineSettings {
            stream_idle_timeout: Duration::from_millis(300),
            ..EngineSettings::new(wire)
        },
    )
    .await;
    let turn = engine.start_turn("hi").await;
    let end = engine.wait_terminal(&turn).await;
    assert!(
        matches!(end, EventMsg::TurnCompleted { last_agent_message: Some(ref t), .. } if t == "after the stall")
    );
    let seen = retries(&engine.log);
    assert_eq!(seen.len(), 1);
    assert!(seen[0].2.contains("idle"), "{seen:?}");
    engine.finish().await;
}

async fn a_malformed_event_is_retried(wire: WireApi) {
    let mut engine = TestEngine::start(
        wire,
        vec![
            Step::text("one two three").with_malformed_after(1),
            Step::text("clean"),
        ],
    )
    .await;
    let turn = engine.start_turn("hi").await;
    let end = engine.wait_terminal(&turn).await;
    assert!(
        matches!(end, EventMsg::TurnCompleted { last_agent_message: Some(ref t), .. } if t == "clean")
    );
    assert!(retries(&engine.log)[0].2.contains("malformed"));
    engine.finish().await;
}

on_both_wires!(
    http_429_honours_retry_after,
    http_503_retries_until_the_budget_is_spent,
    plain_400_is_not_retried_and_carries_the_servers_words,
    a_stream_dropped_mid_way_is_retried,
    an_idle_stream_counts_as_a_drop,
    a_malformed_event_is_retried,
);
