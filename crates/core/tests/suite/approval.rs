//! Approvals under the `untrusted` policy.

use tiller_core::config::{ApprovalPolicy, WireApi};
use tiller_mock_model::Step;
use tiller_protocol::{
    EventMsg, ExecEndStatus, Op, OpError, ReviewDecision, TurnAbortReason, TurnItemKind,
};
use tiller_test_support::{EngineSettings, TestEngine, input_summary};

use super::shell_call;

async fn untrusted(wire: WireApi, steps: Vec<Step>) -> TestEngine {
    TestEngine::start_with(
        steps,
        EngineSettings {
            approval_policy: ApprovalPolicy::Untrusted,
            ..EngineSettings::new(wire)
        },
    )
    .await
}

async fn approval_request(engine: &mut TestEngine) -> String {
    let event = engine
        .wait_for("an approval request", |e| {
            matches!(e.msg, EventMsg::ExecApprovalRequest { .. })
        })
        .await;
    let EventMsg::ExecApprovalRequest { call_id, .. } = event.msg else {
        unreachable!()
    };
    call_id
}

async fn approval_abort_interrupts_and_the_model_never_sees_a_denial(wire: WireApi) {
    let mut engine = untrusted(
        wire,
        vec![shell_call("call_1", "touch made"), Step::text("next")],
    )
    .await;
    let turn = engine.start_turn("make a file").await;
    let call_id = approval_request(&mut engine).await;

    engine
        .submit(Op::Approval {
            call_id,
            decision: ReviewDecision::Abort,
        })
        .await
        .unwrap();
    let end = engine.wait_terminal(&turn).await;
    assert!(matches!(
        end,
        EventMsg::TurnAborted {
            reason: TurnAbortReason::Interrupted,
            ..
        }
    ));
    assert!(
        !engine.dir().join("made").exists(),
        "the command must not run"
    );

    let next = engine.start_turn("again").await;
    engine.wait_terminal(&next).await;
    let requests = engine.wait_requests(2).await;
    let output = input_summary(&requests[1])
        .into_iter()
        .find(|line| line.starts_with("output call_1:"))
        .expect("an output for call_1");
    assert!(output.contains("aborted"), "{output}");
    assert!(
        !output.to_lowercase().contains("denied") && !output.contains("did not allow"),
        "{output}"
    );
    engine.finish().await;
}

async fn denied_command_does_not_run_and_the_model_is_told(wire: WireApi) {
    let mut engine = untrusted(
        wire,
        vec![shell_call("call_1", "touch made"), Step::text("ok")],
    )
    .await;
    let turn = engine.start_turn("make a file").await;
    let call_id = approval_request(&mut engine).await;
    engine
        .submit(Op::Approval {
            call_id: call_id.clone(),
            decision: ReviewDecision::Denied,
        })
        .await
        .unwrap();
    assert!(matches!(
        engine.wait_terminal(&turn).await,
        EventMsg::TurnCompleted { .. }
    ));
    assert!(!engine.dir().join("made").exists());
    assert!(engine.log.iter().any(|e| matches!(
        e.msg.completed_item().map(|item| &item.kind),
        Some(TurnItemKind::CommandExecution {
            status: Some(ExecEndStatus::Denied),
            ..
        })
    )));
    let requests = engine.wait_requests(2).await;
    assert!(
        input_summary(&requests[1])
            .iter()
            .any(|l| l.starts_with("output call_1:") && l.contains("denied"))
    );
    assert_eq!(
        engine
            .submit(Op::Approval {
                call_id,
                decision: ReviewDecision::Approved
            })
            .await,
        Err(OpError::UnknownApproval {
            call_id: "call_1".into()
        })
    );
    engine.finish().await;
}

async fn approved_for_session_is_not_asked_again_and_safe_commands_never_ask(wire: WireApi) {
    let mut engine = untrusted(
        wire,
        vec![
            shell_call("call_1", "touch a"),
            shell_call("call_2", "touch a"),
            shell_call("call_3", "ls"),
            Step::text("done"),
        ],
    )
    .await;
    let turn = engine.start_turn("go").await;
    let call_id = approval_request(&mut engine).await;
    engine
        .submit(Op::Approval {
            call_id,
            decision: ReviewDecision::ApprovedForSession,
        })
        .await
        .unwrap();
    assert!(matches!(
        engine.wait_terminal(&turn).await,
        EventMsg::TurnCompleted { .. }
    ));
    let asked = engine
        .log
        .iter()
        .filter(|e| matches!(e.msg, EventMsg::ExecApprovalRequest { .. }))
        .count();
    assert_eq!(asked, 1);
    assert!(engine.dir().join("a").exists());
    engine.finish().await;
}

on_both_wires!(
    approval_abort_interrupts_and_the_model_never_sees_a_denial,
    denied_command_does_not_run_and_the_model_is_told,
    approved_for_session_is_not_asked_again_and_safe_commands_never_ask,
);
