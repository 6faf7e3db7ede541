//! Steer: input added to the running turn exactly once, or refused and kept nowhere.

use std::time::Duration;

use tiller_core::config::WireApi;
use tiller_mock_model::{Item, Step};
use tiller_protocol::{EventMsg, Op, OpError, Reply, TurnAbortReason, UserInput};
use tiller_test_support::{TestEngine, input_summary, read_pids_when_ready};

use super::shell_call;

fn steer(turn: &str, text: &str) -> Op {
    Op::Steer {
        items: vec![UserInput::text(text)],
        expected_turn_id: turn.to_string(),
        client_message_id: None,
    }
}

fn slow_text(words: usize) -> Step {
    let deltas: Vec<String> = (0..words).map(|i| format!("w{i} ")).collect();
    Step::response(vec![Item::text_deltas(deltas)]).with_delta_delay(10)
}

async fn steer_while_streaming_cuts_the_stream_and_sends_the_steer_last(wire: WireApi) {
    let mut engine =
        TestEngine::start(wire, vec![slow_text(500), Step::text("steered answer")]).await;
    let turn = engine.start_turn("write a lot").await;
    engine
        .wait_for("a delta", |e| {
            matches!(e.msg, EventMsg::AgentMessageDelta { .. })
        })
        .await;

    assert_eq!(
        engine.submit(steer(&turn, "actually, be brief")).await,
        Ok(Reply::Steered {
            turn_id: turn.clone()
        })
    );
    let end = engine.wait_terminal(&turn).await;
    assert!(
        matches!(end, EventMsg::TurnCompleted { last_agent_message: Some(ref t), .. } if t == "steered answer"),
        "{end:?}"
    );
    let requests = engine.wait_requests(2).await;
    let input = input_summary(&requests[1]);
    assert_eq!(
        input.last().map(String::as_str),
        Some("user: actually, be brief")
    );
    assert!(
        input[1].starts_with("assistant: w0 "),
        "the partial text is kept: {input:?}"
    );
    let delivered = engine
        .log
        .iter()
        .filter(|e| matches!(e.msg, EventMsg::SteerDelivered { .. }))
        .count();
    assert_eq!(delivered, 1);
    engine.finish().await;
}

async fn steer_while_a_tool_runs_is_delivered_after_its_output(wire: WireApi) {
    let wait_for_go = "echo $$ > pids; while [ ! -f go ]; do sleep 0.01; done; echo finished";
    let mut engine = TestEngine::start(
        wire,
        vec![shell_call("call_1", wait_for_go), Step::text("done")],
    )
    .await;
    let turn = engine.start_turn("run").await;
    read_pids_when_ready(&engine.dir().join("pids"), 1, Duration::from_secs(10)).await;

    assert!(matches!(
        engine.submit(steer(&turn, "and then stop")).await,
        Ok(Reply::Steered { .. })
    ));
    std::fs::write(engine.dir().join("go"), "").unwrap();
    let end = engine.wait_terminal(&turn).await;
    assert!(matches!(end, EventMsg::TurnCompleted { .. }), "{end:?}");

    let requests = engine.wait_requests(2).await;
    let input = input_summary(&requests[1]);
    let n = input.len();
    assert!(
        input[n - 2].starts_with("output call_1:") && input[n - 2].contains("finished"),
        "{input:?}"
    );
    assert_eq!(input[n - 1], "user: and then stop");
    engine.finish().await;
}

async fn steer_with_a_stale_turn_id_is_rejected_and_keeps_nothing(wire: WireApi) {
    let mut engine = TestEngine::start(wire, vec![Step::text("ok"), slow_text(500)]).await;
    let first = engine.start_turn("one").await;
    engine.wait_terminal(&first).await;
    let second = engine.start_turn("two").await;
    engine
        .wait_for("a delta", |e| {
            matches!(e.msg, EventMsg::AgentMessageDelta { .. })
        })
        .await;

    let refused = engine.submit(steer(&first, "stale")).await;
    assert_eq!(
        refused,
        Err(OpError::TurnMismatch {
            expected: first.clone(),
            actual: second.clone()
        })
    );
    engine.submit(Op::Interrupt).await.unwrap();
    engine.wait_terminal(&second).await;
    for request in engine.requests() {
        assert!(
            !request.raw_body.contains("stale"),
            "refused steer reached the model"
        );
    }
    assert!(
        !engine
            .log
            .iter()
            .any(|e| matches!(e.msg, EventMsg::SteerDelivered { .. }))
    );
    engine.finish().await;
}

async fn steer_when_idle_or_empty_is_rejected(wire: WireApi) {
    let mut engine = TestEngine::start(wire, vec![slow_text(200)]).await;
    assert_eq!(
        engine.submit(steer("nope", "hello")).await,
        Err(OpError::NoActiveTurn)
    );
    let turn = engine.start_turn("talk").await;
    assert_eq!(
        engine.submit(steer(&turn, "   ")).await,
        Err(OpError::EmptyInput)
    );
    engine.submit(Op::Interrupt).await.unwrap();
    engine.wait_terminal(&turn).await;
    assert_eq!(
        engine.submit(steer(&turn, "late")).await,
        Err(OpError::NoActiveTurn)
    );
    engine.finish().await;
}

async fn steer_that_never_reached_the_model_is_handed_back_on_abort(wire: WireApi) {
    let mut engine =
        TestEngine::start(wire, vec![shell_call("call_1", "echo $$ > pids; sleep 60")]).await;
    let turn = engine.start_turn("run").await;
    read_pids_when_ready(&engine.dir().join("pids"), 1, Duration::from_secs(10)).await;
    engine
        .submit(steer(&turn, "queued for later"))
        .await
        .unwrap();

    engine.submit(Op::Interrupt).await.unwrap();
    let end = engine.wait_terminal(&turn).await;
    assert_eq!(
        end,
        EventMsg::TurnAborted {
            reason: TurnAbortReason::Interrupted,
            unsent_input: vec![UserInput::text("queued for later")]
        }
    );
    assert_eq!(engine.requests().len(), 1, "the steer was not sent");
    engine.finish().await;
}

on_both_wires!(
    steer_while_streaming_cuts_the_stream_and_sends_the_steer_last,
    steer_while_a_tool_runs_is_delivered_after_its_output,
    steer_with_a_stale_turn_id_is_rejected_and_keeps_nothing,
    steer_when_idle_or_empty_is_rejected,
    steer_that_never_reached_the_model_is_handed_back_on_abort,
);
