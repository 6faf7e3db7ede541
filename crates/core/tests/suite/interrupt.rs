//! Interrupt and replace: the model and every process stop, the history stays valid.

use std::time::Duration;

use tiller_core::config::WireApi;
use tiller_core::{INTERRUPTED_MARKER, REPLACED_MARKER};
use tiller_mock_model::Step;
use tiller_protocol::{
    EventMsg, ExecEndStatus, Op, Reply, TurnAbortReason, TurnItem, TurnItemKind,
};
use tiller_test_support::{TestEngine, input_summary, pid_alive, read_pids_when_ready};

use super::shell_call;

const SLEEPER: &str = "echo $$ > pids; sleep 60 & echo $! >> pids; wait";

async fn interrupt_during_a_sleep_tool_kills_the_tree_before_the_terminal_event(wire: WireApi) {
    let mut engine = TestEngine::start(
        wire,
        vec![shell_call("call_1", SLEEPER), Step::text("after")],
    )
    .await;
    let turn = engine.start_turn("run it").await;
    let pids = read_pids_when_ready(&engine.dir().join("pids"), 2, Duration::from_secs(10)).await;

    engine.submit(Op::Interrupt).await.unwrap();
    let terminal = engine.wait_terminal(&turn).await;
    let alive: Vec<i32> = pids.iter().copied().filter(|&pid| pid_alive(pid)).collect();
    assert!(
        alive.is_empty(),
        "alive when TurnAborted was emitted: {alive:?}"
    );
    assert_eq!(
        terminal,
        EventMsg::TurnAborted {
            reason: TurnAbortReason::Interrupted,
            unsent_input: vec![]
        }
    );
    let end = engine
        .log
        .iter()
        .find_map(|e| match &e.msg {
            EventMsg::ItemCompleted {
                item:
                    TurnItem {
                        kind: TurnItemKind::CommandExecution { status, .. },
                        ..
                    },
            } => *status,
            _ => None,
        })
        .expect("a completed command item");
    assert_eq!(end, ExecEndStatus::Aborted);

    // The next request carries the aborted output and the marker, and passes the contract.
    let next = engine.start_turn("again").await;
    engine.wait_terminal(&next).await;
    let requests = engine.wait_requests(2).await;
    let input = input_summary(&requests[1]);
    let output = input
        .iter()
        .find(|line| line.starts_with("output call_1:"))
        .expect("an output for call_1");
    assert!(output.contains("Aborted by the user"), "{output}");
    assert!(
        input
            .iter()
            .any(|line| line == &format!("user: {INTERRUPTED_MARKER}"))
    );
    assert!(requests.iter().all(|r| r.rejected.is_none()));
    engine.finish().await;
}

async fn interrupt_while_text_streams_records_the_partial_text(wire: WireApi) {
    let words: Vec<String> = (0..400).map(|i| format!("w{i} ")).collect();
    let slow =
        Step::response(vec![tiller_mock_model::Item::text_deltas(words)]).with_delta_delay(10);
    let mut engine = TestEngine::start(wire, vec![slow, Step::text("ok")]).await;
    let turn = engine.start_turn("talk").await;
    engine
        .wait_for("a delta", |e| {
            matches!(e.msg, EventMsg::AgentMessageDelta { .. })
        })
        .await;

    engine.submit(Op::Interrupt).await.unwrap();
    let terminal = engine.wait_terminal(&turn).await;
    assert!(matches!(
        terminal,
        EventMsg::TurnAborted {
            reason: TurnAbortReason::Interrupted,
            ..
        }
    ));
    let seen: String = engine
        .log
        .iter()
        .filter_map(|e| match &e.msg {
            EventMsg::AgentMessageDelta { delta, .. } => Some(delta.as_str()),
            _ => None,
        })
        .collect();

    let next = engine.start_turn("again").await;
    engine.wait_terminal(&next).await;
    let requests = engine.wait_requests(2).await;
    let input = input_summary(&requests[1]);
    assert_eq!(
        input[1],
        format!("assistant: {seen}"),
        "the partial text the user saw"
    );
    assert_eq!(input[2], format!("user: {INTERRUPTED_MARKER}"));
    engine.finish().await;
}

async fn interrupt_during_a_backoff_wait_sends_no_further_request(wire: WireApi) {
    let mut engine = TestEngine::start(
        wire,
        vec![
            Step::http_status(503).with_header("Retry-After", "30"),
            Step::text("never sent to the first turn"),
        ],
    )
    .await;
    let turn = engine.start_turn("hello").await;
    let retry = engine
        .wait_for("a retry", |e| matches!(e.msg, EventMsg::StreamRetry { .. }))
        .await;
    assert!(matches!(
        retry.msg,
        EventMsg::StreamRetry {
            delay_ms: 30_000,
            ..
        }
    ));

    engine.submit(Op::Interrupt).await.unwrap();
    let terminal = engine.wait_terminal(&turn).await;
    assert!(matches!(terminal, EventMsg::TurnAborted { .. }));
    // The next request to arrive is the new turn's, not the abandoned retry.
    let next = engine.start_turn("second").await;
    engine.wait_terminal(&next).await;
    let requests = engine.wait_requests(2).await;
    assert_eq!(requests.len(), 2);
    assert!(input_summary(&requests[1]).contains(&"user: second".to_string()));
    engine.finish().await;
}

async fn interrupt_when_idle_and_twice_is_harmless(wire: WireApi) {
    let mut engine = TestEngine::start(
        wire,
        vec![shell_call("call_1", SLEEPER), Step::text("fine")],
    )
    .await;
    assert_eq!(engine.submit(Op::Interrupt).await, Ok(Reply::Done));

    let turn = engine.start_turn("run").await;
    read_pids_when_ready(&engine.dir().join("pids"), 2, Duration::from_secs(10)).await;
    let (a, b) = tokio::join!(engine.submit(Op::Interrupt), engine.submit(Op::Interrupt));
    assert_eq!((a, b), (Ok(Reply::Done), Ok(Reply::Done)));
    engine.wait_terminal(&turn).await;
    assert_eq!(engine.submit(Op::Interrupt).await, Ok(Reply::Done));

    // I6: the session is still usable.
    let next = engine.start_turn("again").await;
    assert!(matches!(
        engine.wait_terminal(&next).await,
        EventMsg::TurnCompleted { .. }
    ));
    engine.finish().await;
}

async fn start_turn_while_running_replaces_the_old_turn(wire: WireApi) {
    let mut engine = TestEngine::start(
        wire,
        vec![shell_call("call_1", SLEEPER), Step::text("new answer")],
    )
    .await;
    let old = engine.start_turn("first").await;
    let pids = read_pids_when_ready(&engine.dir().join("pids"), 2, Duration::from_secs(10)).await;

    let new = engine.start_turn("second").await;
    assert_ne!(old, new);
    let old_end = engine.wait_terminal(&old).await;
    assert!(pids.iter().all(|&pid| !pid_alive(pid)));
    assert_eq!(
        old_end,
        EventMsg::TurnAborted {
            reason: TurnAbortReason::Replaced,
            unsent_input: vec![]
        }
    );
    let new_end = engine.wait_terminal(&new).await;
    assert!(
        matches!(new_end, EventMsg::TurnCompleted { last_agent_message: Some(ref t), .. } if t == "new answer")
    );
    // TurnStarted of the new turn comes after the old turn's terminal event.
    let order: Vec<(Option<String>, bool)> = engine
        .log
        .iter()
        .filter(|e| e.is_terminal() || matches!(e.msg, EventMsg::TurnStarted { .. }))
        .map(|e| (e.turn_id.as_deref().map(str::to_string), e.is_terminal()))
        .collect();
    assert_eq!(
        order,
        vec![
            (Some(old.clone()), false),
            (Some(old), true),
            (Some(new.clone()), false),
            (Some(new), true)
        ]
    );
    let requests = engine.wait_requests(2).await;
    let input = input_summary(&requests[1]);
    assert!(input.contains(&format!("user: {REPLACED_MARKER}")));
    assert_eq!(input.last().map(String::as_str), Some("user: second"));
    engine.finish().await;
}

async fn a_grandchild_that_called_setsid_is_still_killed(wire: WireApi) {
    let script = "setsid sleep 60 & echo $! > pids; sleep 60 & echo $! >> pids; wait";
    let mut engine = TestEngine::start(wire, vec![shell_call("call_1", script)]).await;
    let turn = engine.start_turn("escape").await;
    let pids = read_pids_when_ready(&engine.dir().join("pids"), 2, Duration::from_secs(10)).await;
    assert!(pids.iter().all(|&pid| pid_alive(pid)));

    engine.submit(Op::Interrupt).await.unwrap();
    engine.wait_terminal(&turn).await;
    let alive: Vec<i32> = pids.iter().copied().filter(|&pid| pid_alive(pid)).collect();
    assert!(alive.is_empty(), "still alive after TurnAborted: {alive:?}");
    engine.finish().await;
}

on_both_wires!(
    interrupt_during_a_sleep_tool_kills_the_tree_before_the_terminal_event,
    interrupt_while_text_streams_records_the_partial_text,
    interrupt_during_a_backoff_wait_sends_no_further_request,
    interrupt_when_idle_and_twice_is_harmless,
    start_turn_while_running_replaces_the_old_turn,
    a_grandchild_that_called_setsid_is_still_killed,
);
