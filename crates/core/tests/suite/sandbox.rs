//! The sandbox through the engine: what the model reads when a command is
//! denied, how each approval policy offers to run it outside the sandbox,
//! the model asking to leave the sandbox under `on-request`, patches that
//! write where the sandbox does not allow, and a settings change that
//! switches the sandbox between turns.
//!
//! Every other suite runs under the default sandbox too (workspace-write,
//! no network; see `EngineSettings::new`): the interrupt and torture suites
//! kill sandboxed trees.

use serde_json::json;
use tempfile::TempDir;
use tiller_core::config::{ApprovalPolicy, SandboxMode, SandboxPolicy, WireApi};
use tiller_mock_model::Step;
use tiller_protocol::{EventMsg, ExecEndStatus, Op, ReviewDecision, SettingsUpdate, TurnItemKind};
use tiller_test_support::{EngineSettings, TestEngine, input_summary};

use super::shell_call;

/// The default sandbox with `/tmp` and `$TMPDIR` not writable, so a temp
/// folder is "outside": only the session's folder is writable.
fn workspace_only() -> SandboxPolicy {
    SandboxPolicy {
        exclude_slash_tmp: true,
        exclude_tmpdir_env_var: true,
        ..SandboxPolicy::default()
    }
}

async fn engine(policy: ApprovalPolicy, sandbox: SandboxPolicy, steps: Vec<Step>) -> TestEngine {
    TestEngine::start_with(
        steps,
        EngineSettings {
            approval_policy: policy,
            sandbox,
            ..EngineSettings::new(WireApi::Responses)
        },
    )
    .await
}

/// What the model read as the output of `call_id` in request `n` (1-based).
async fn output_of(engine: &TestEngine, n: usize, call_id: &str) -> String {
    let requests = engine.wait_requests(n).await;
    let prefix = format!("output {call_id}:");
    input_summary(&requests[n - 1])
        .into_iter()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no output for {call_id} in request {n}"))
}

/// The next approval request: its call, item and reason.
async fn approval(engine: &mut TestEngine) -> (String, String, Option<String>) {
    let event = engine
        .wait_for("an approval request", |e| {
            matches!(e.msg, EventMsg::ExecApprovalRequest { .. })
        })
        .await;
    let EventMsg::ExecApprovalRequest {
        call_id,
        item_id,
        reason,
        ..
    } = event.msg
    else {
        unreachable!()
    };
    (call_id, item_id, reason)
}

async fn answer(engine: &TestEngine, call_id: String, decision: ReviewDecision) {
    engine
        .submit(Op::Approval { call_id, decision })
        .await
        .unwrap();
}

/// The command items completed so far: id and status.
fn commands(engine: &TestEngine) -> Vec<(String, Option<ExecEndStatus>)> {
    engine
        .log
        .iter()
        .filter_map(|e| e.msg.completed_item())
        .filter_map(|item| match &item.kind {
            TurnItemKind::CommandExecution { status, .. } => Some((item.id.clone(), *status)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_never_a_denied_write_is_explained_to_the_model_and_nobody_is_asked() {
    let outside = TempDir::new().unwrap();
    let target = outside.path().join("x");
    let mut engine = engine(
        ApprovalPolicy::Never,
        workspace_only(),
        vec![
            shell_call(
                "call_1",
                &format!("touch inside && touch {}", target.display()),
            ),
            Step::text("ok"),
        ],
    )
    .await;
    let turn = engine.start_turn("write").await;
    engine.wait_terminal(&turn).await;
    assert!(engine.dir().join("inside").exists());
    assert!(!target.exists());
    let output = output_of(&engine, 2, "call_1").await;
    assert!(output.contains("Permission denied"), "{output}");
    assert!(
        output.contains("The command ran in the sandbox (workspace-write)"),
        "{output}"
    );
    assert!(
        output.contains(&format!("writes only beneath {}", engine.dir().display())),
        "{output}"
    );
    assert!(output.contains("opens no network connections"), "{output}");
    assert!(output.contains("The approval policy is never"), "{output}");
    assert!(
        !engine
            .log
            .iter()
            .any(|e| matches!(e.msg, EventMsg::ExecApprovalRequest { .. }))
    );
    engine.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_untrusted_a_denied_command_is_offered_again_outside_and_runs_when_approved() {
    let outside = TempDir::new().unwrap();
    let target = outside.path().join("x");
    let script = format!("touch {}", target.display());
    let mut engine = engine(
        ApprovalPolicy::Untrusted,
        workspace_only(),
        vec![shell_call("call_1", &script), Step::text("ok")],
    )
    .await;
    let turn = engine.start_turn("write").await;

    // Not on the read-only list: asked first, with no sandbox reason.
    let (call_id, first_item, reason) = approval(&mut engine).await;
    assert_eq!(reason, None);
    answer(&engine, call_id, ReviewDecision::Approved).await;

    // It ran confined and was denied: asked again, for a new item.
    let (call_id, rerun_item, reason) = approval(&mut engine).await;
    assert_ne!(rerun_item, first_item);
    let reason = reason.expect("a reason");
    assert!(
        reason.contains("failed in the sandbox (workspace-write (network off))"),
        "{reason}"
    );
    assert!(!target.exists(), "the first run must be confined");
    answer(&engine, call_id, ReviewDecision::Approved).await;
    engine.wait_terminal(&turn).await;

    assert!(target.exists(), "the approved run is not confined");
    assert_eq!(
        commands(&engine),
        [
            (first_item, Some(ExecEndStatus::Failed)),
            (rerun_item, Some(ExecEndStatus::Completed)),
        ]
    );
    let output = output_of(&engine, 2, "call_1").await;
    assert!(output.contains("Permission denied"), "{output}");
    assert!(
        output.contains("The user allowed it to run again outside the sandbox"),
        "{output}"
    );
    engine.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_rerun_leaves_the_command_confined_and_the_model_is_told() {
    let outside = TempDir::new().unwrap();
    let target = outside.path().join("x");
    let mut engine = engine(
        ApprovalPolicy::OnFailure,
        workspace_only(),
        vec![
            shell_call("call_1", "touch fine"),
            shell_call("call_2", &format!("touch {}", target.display())),
            Step::text("ok"),
        ],
    )
    .await;
    let turn = engine.start_turn("write").await;
    // `touch fine` succeeds in the sandbox: on-failure never asks for it.
    let (call_id, _, reason) = approval(&mut engine).await;
    assert_eq!(call_id, "call_2");
    assert!(reason.is_some());
    assert!(engine.dir().join("fine").exists());
    answer(&engine, call_id, ReviewDecision::Denied).await;
    engine.wait_terminal(&turn).await;
    assert!(!target.exists());
    let output = output_of(&engine, 3, "call_2").await;
    assert!(output.contains("declined"), "{output}");
    assert!(
        output.contains("The command ran in the sandbox"),
        "{output}"
    );
    engine.finish().await;
}

/// A `shell` call asking to run outside the sandbox.
fn escalated_call(call_id: &str, script: &str, justification: &str) -> Step {
    Step::function_call(
        call_id,
        "shell",
        json!({"command": ["bash", "-lc", script],
               "sandbox_permissions": "require_escalated",
               "justification": justification}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_on_request_the_model_may_ask_to_leave_the_sandbox_and_the_person_decides() {
    let outside = TempDir::new().unwrap();
    let target = outside.path().join("x");
    let script = format!("touch {}", target.display());
    let mut engine = engine(
        ApprovalPolicy::OnRequest,
        workspace_only(),
        vec![
            escalated_call("call_1", &script, "the cache lives outside the repository"),
            Step::text("ok"),
        ],
    )
    .await;
    let turn = engine.start_turn("write").await;
    let (call_id, _, reason) = approval(&mut engine).await;
    let reason = reason.expect("a reason");
    assert!(
        reason.contains("outside the sandbox: the cache lives outside the repository"),
        "{reason}"
    );
    answer(&engine, call_id, ReviewDecision::Approved).await;
    engine.wait_terminal(&turn).await;
    assert!(target.exists());
    engine.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_on_request_lets_the_model_ask_to_leave_the_sandbox() {
    let outside = TempDir::new().unwrap();
    let target = outside.path().join("x");
    let script = format!("touch {}", target.display());
    let mut engine = engine(
        ApprovalPolicy::Never,
        workspace_only(),
        vec![
            escalated_call("call_1", &script, "please"),
            Step::text("ok"),
        ],
    )
    .await;
    let turn = engine.start_turn("write").await;
    engine.wait_terminal(&turn).await;
    assert!(!target.exists());
    assert!(commands(&engine).is_empty(), "nothing ran");
    let output = output_of(&engine, 2, "call_1").await;
    assert!(
        output.contains("only be asked for under the on-request approval policy"),
        "{output}"
    );
    engine.finish().await;
}

/// An `apply_patch` call adding `path` with one line.
fn patch_call(call_id: &str, path: &std::path::Path) -> Step {
    let patch = format!(
        "*** Begin Patch\n*** Add File: {}\n+patched\n*** End Patch",
        path.display()
    );
    Step::function_call(call_id, "apply_patch", json!({"input": patch}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_outside_the_writable_folders_is_refused_or_asked_about() {
    let outside = TempDir::new().unwrap();
    let target = outside.path().join("patched.txt");
    let mut never = engine(
        ApprovalPolicy::Never,
        workspace_only(),
        vec![patch_call("call_1", &target), Step::text("ok")],
    )
    .await;
    let turn = never.start_turn("patch").await;
    never.wait_terminal(&turn).await;
    assert!(!target.exists());
    let output = output_of(&never, 2, "call_1").await;
    assert!(
        output.contains("which the sandbox (workspace-write) does not allow"),
        "{output}"
    );
    never.finish().await;

    let mut asked = engine(
        ApprovalPolicy::OnRequest,
        workspace_only(),
        vec![patch_call("call_1", &target), Step::text("ok")],
    )
    .await;
    let turn = asked.start_turn("patch").await;
    let event = asked
        .wait_for("a patch approval", |e| {
            matches!(e.msg, EventMsg::PatchApprovalRequest { .. })
        })
        .await;
    let EventMsg::PatchApprovalRequest { reason, .. } = event.msg else {
        unreachable!()
    };
    assert!(reason.contains("does not allow"), "{reason}");
    answer(&asked, "call_1".to_string(), ReviewDecision::Approved).await;
    asked.wait_terminal(&turn).await;
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "patched\n");
    asked.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_change_switches_the_sandbox_from_the_next_turn() {
    let outside = TempDir::new().unwrap();
    let target = outside.path().join("x");
    let script = format!("touch {}", target.display());
    let mut engine = engine(
        ApprovalPolicy::Never,
        SandboxPolicy::of_mode(SandboxMode::ReadOnly),
        vec![
            shell_call("call_1", "touch here"),
            Step::text("denied"),
            shell_call("call_2", &script),
            Step::text("done"),
        ],
    )
    .await;
    let turn = engine.start_turn("first").await;
    engine.wait_terminal(&turn).await;
    assert!(!engine.dir().join("here").exists(), "read-only");

    engine
        .submit(Op::UpdateSettings {
            settings: SettingsUpdate {
                sandbox_mode: Some("danger-full-access".to_string()),
                ..SettingsUpdate::default()
            },
        })
        .await
        .unwrap();
    let turn = engine.start_turn("second").await;
    engine.wait_terminal(&turn).await;
    assert!(target.exists(), "full access");
    assert!(
        engine
            .submit(Op::UpdateSettings {
                settings: SettingsUpdate {
                    sandbox_mode: Some("open".to_string()),
                    ..SettingsUpdate::default()
                },
            })
            .await
            .is_err()
    );
    engine.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_outside_for_the_session_is_not_asked_again_for_that_command() {
    let outside = TempDir::new().unwrap();
    let target = outside.path().join("log");
    let script = format!("echo run >> {}", target.display());
    let mut engine = engine(
        ApprovalPolicy::OnFailure,
        workspace_only(),
        vec![
            shell_call("call_1", &script),
            shell_call("call_2", &script),
            Step::text("ok"),
        ],
    )
    .await;
    let turn = engine.start_turn("log twice").await;
    let (call_id, _, _) = approval(&mut engine).await;
    answer(&engine, call_id, ReviewDecision::ApprovedForSession).await;
    engine.wait_terminal(&turn).await;
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "run\nrun\n");
    let asked = engine
        .log
        .iter()
        .filter(|e| matches!(e.msg, EventMsg::ExecApprovalRequest { .. }))
        .count();
    assert_eq!(asked, 1, "the second call ran outside without asking");
    // call_1: confined (failed), then again outside; call_2: outside at once.
    assert_eq!(commands(&engine).len(), 3);
    engine.finish().await;
}
