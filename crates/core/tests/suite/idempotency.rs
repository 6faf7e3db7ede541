//! `client_message_id`: the same request twice is accepted once.

use tiller_core::config::WireApi;
use tiller_mock_model::{Item, Step};
use tiller_protocol::{EventMsg, Op, Reply, UserInput, UserMessage};
use tiller_test_support::{TestEngine, input_summary};

async fn repeated_client_message_id_starts_one_turn_and_steers_once(wire: WireApi) {
    let deltas: Vec<String> = (0..300).map(|i| format!("w{i} ")).collect();
    let slow = Step::response(vec![Item::text_deltas(deltas)]).with_delta_delay(10);
    let mut engine = TestEngine::start(wire, vec![slow, Step::text("ok")]).await;
    let start = || Op::StartTurn {
        input: vec![UserMessage::new(vec![UserInput::text("hello")])],
        client_message_id: Some("m1".into()),
    };
    let first = engine.submit(start()).await.unwrap();
    let again = engine.submit(start()).await.unwrap();
    assert_eq!(first, again);
    let Reply::TurnStarted { turn_id } = first else {
        panic!("{first:?}")
    };
    engine
        .wait_for("a delta", |e| {
            matches!(e.msg, EventMsg::AgentMessageDelta { .. })
        })
        .await;

    let steer = || Op::Steer {
        items: vec![UserInput::text("once only")],
        expected_turn_id: turn_id.clone(),
        client_message_id: Some("m2".into()),
    };
    let (a, b) = (engine.submit(steer()).await, engine.submit(steer()).await);
    assert_eq!(a, b);
    engine.wait_terminal(&turn_id).await;

    let started = engine
        .log
        .iter()
        .filter(|e| matches!(e.msg, EventMsg::TurnStarted { .. }))
        .count();
    assert_eq!(started, 1);
    let requests = engine.wait_requests(2).await;
    let steers = input_summary(&requests[1])
        .iter()
        .filter(|line| *line == "user: once only")
        .count();
    assert_eq!(steers, 1);
    assert_eq!(requests.len(), 2);
    engine.finish().await;
}

async fn a_client_message_id_is_idempotent_per_op_not_across_ops(wire: WireApi) {
    let deltas: Vec<String> = (0..300).map(|i| format!("w{i} ")).collect();
    let slow = Step::response(vec![Item::text_deltas(deltas)]).with_delta_delay(10);
    let mut engine = TestEngine::start(wire, vec![slow, Step::text("ok")]).await;
    let started = engine
        .submit(Op::StartTurn {
            input: vec![UserMessage::new(vec![UserInput::text("hello")])],
            client_message_id: Some("same".into()),
        })
        .await
        .unwrap();
    let Reply::TurnStarted { turn_id } = started else {
        panic!("{started:?}")
    };
    engine
        .wait_for("a delta", |e| {
            matches!(e.msg, EventMsg::AgentMessageDelta { .. })
        })
        .await;
    // The same id on a steer is a steer, not a repeat of the start.
    let steered = engine
        .submit(Op::Steer {
            items: vec![UserInput::text("steered with the same id")],
            expected_turn_id: turn_id.clone(),
            client_message_id: Some("same".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        steered,
        Reply::Steered {
            turn_id: turn_id.clone()
        }
    );
    engine.wait_terminal(&turn_id).await;
    let requests = engine.wait_requests(2).await;
    assert!(
        input_summary(&requests[1]).contains(&"user: steered with the same id".to_string()),
        "{:?}",
        input_summary(&requests[1])
    );
    engine.finish().await;
}

on_both_wires!(
    repeated_client_message_id_starts_one_turn_and_steers_once,
    a_client_message_id_is_idempotent_per_op_not_across_ops,
);
