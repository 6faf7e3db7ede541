//! `shell` as a [`Tool`]: the arguments checked, the person asked where the
//! approval policy says so, the command run by [`super::shell::run_shell`]
//! in the session's sandbox and shown as a command execution item.
//!
//! The sandbox and the approval policy meet here:
//! - `untrusted` asks before a command not known to be read-only;
//! - under `on-request` the model may ask to run a command outside the
//!   sandbox (`sandbox_permissions: "require_escalated"`), and the person
//!   decides, told the model's `justification`; other policies refuse that;
//! - a command that fails in the sandbox and looks denied by it tells the
//!   model so, and under every policy but `never` the person is asked
//!   whether to run it again outside the sandbox (a second item, with the
//!   reason). "For the session" lets that command run outside from then on.

use tiller_config::ApprovalPolicy;
use tiller_protocol::{ExecEndStatus, ReviewDecision, TurnItem, TurnItemKind};

use super::apply_patch_tool::{apply, patch_in_shell};
use super::shell::{
    SHELL_TOOL_NAME, ShellArgs, ShellOutcome, ShellRequest, run_shell, shell_tool_spec,
};
use super::{Tool, ToolCall, ToolContext, ToolFuture, ToolOutput};
use crate::approval::needs_approval;
use crate::sandbox::{denial_note, likely_denied, rerun_reason};

/// The `shell` tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShellTool;

impl Tool for ShellTool {
    fn name(&self) -> &str {
        SHELL_TOOL_NAME
    }

    fn spec(&self) -> serde_json::Value {
        shell_tool_spec()
    }

    fn run<'a>(&'a self, call: &'a ToolCall, ctx: &'a ToolContext<'a>) -> ToolFuture<'a> {
        Box::pin(run_call(call, ctx))
    }
}

/// The key under which "run outside the sandbox for the session" is
/// remembered for `command` (apart from "run it, in the sandbox").
fn unsandboxed_key(command: &[String]) -> Vec<String> {
    let mut key = vec!["\0outside the sandbox".to_string()];
    key.extend(command.iter().cloned());
    key
}

/// What the person said about a command.
enum Asked {
    Yes,
    No,
    Aborted,
}

async fn run_call(call: &ToolCall, ctx: &ToolContext<'_>) -> ToolOutput {
    let args = match ShellArgs::parse(&call.arguments) {
        Ok(args) => args,
        Err(error) => {
            return ToolOutput::Output(format!("invalid arguments for {SHELL_TOOL_NAME}: {error}"));
        }
    };
    let escalation = args.wants_escalation().then(|| args.justification.clone());
    let mut request = args.into_request(&ctx.cwd(), ctx.default_timeout());
    // A command that only applies a patch is the patch tool's (Codex's
    // models send patches this way too): a file change, not a process.
    if let Some((patch, dir)) = patch_in_shell(&request.command, &request.cwd) {
        return apply(&patch, &dir, call, ctx).await;
    }
    // The model's commands never see the provider's key: their output goes to
    // the model and into the rollout.
    request.hidden_env.extend(ctx.hidden_env());
    let policy = ctx.approval_policy();
    let sandbox = ctx.sandbox_policy();
    let outside_key = unsandboxed_key(&request.command);
    let mut confined = sandbox.is_confined() && !ctx.approved_for_session(&outside_key);
    // The item the command runs as; an approval asked first names it.
    let item_id = ctx.new_item_id();

    // What the person is asked first, if anything: the reason, the key an
    // "always" answer is remembered under, and whether yes leaves the sandbox.
    let question = if let Some(justification) = escalation.filter(|_| confined) {
        if policy != ApprovalPolicy::OnRequest {
            return ToolOutput::Output(format!(
                "The command was not run: running outside the sandbox can only be asked for \
                 under the on-request approval policy, and the policy is {policy}. Run it in \
                 the sandbox ({}), without sandbox_permissions.",
                sandbox.summary()
            ));
        }
        let reason = justification
            .filter(|text| !text.trim().is_empty())
            .map_or_else(
                || "the model asks to run this command outside the sandbox".to_string(),
                |text| format!("the model asks to run this command outside the sandbox: {text}"),
            );
        Some((Some(reason), outside_key.clone(), true))
    } else if needs_approval(policy, &request.command)
        && !ctx.approved_for_session(&request.command)
    {
        Some((None, request.command.clone(), false))
    } else {
        None
    };
    if let Some((reason, key, leaves_sandbox)) = question {
        match ask(ctx, &item_id, &request, reason, &key).await {
            Asked::Yes => confined &= !leaves_sandbox,
            Asked::No => return declined(ctx, call, &item_id, &request),
            Asked::Aborted => return aborted_before_output(),
        }
    }

    if confined {
        request.sandbox = match ctx.sandbox_rules(&sandbox, &request.cwd) {
            Ok(rules) => rules,
            Err(why) => return not_run(ctx, call, &item_id, &request, &why),
        };
    }
    let outcome = run(ctx, call, &request, item_id).await;
    if outcome.status == ExecEndStatus::Aborted {
        return ToolOutput::Aborted(outcome.model_output());
    }
    if !confined || !likely_denied(&outcome, &sandbox) {
        return ToolOutput::Output(outcome.model_output());
    }

    let note = denial_note(&sandbox, &request.cwd);
    let first = format!("{}\n\n{note}", outcome.model_output());
    if !policy.asks_after_denial() {
        return ToolOutput::Output(format!(
            "{first} The approval policy is never, so it cannot be run outside the sandbox: \
             find a way within it, or tell the user what is needed."
        ));
    }
    let rerun_id = ctx.new_item_id();
    let reason = rerun_reason(&sandbox);
    match ask(ctx, &rerun_id, &request, Some(reason), &outside_key).await {
        Asked::Yes => {}
        Asked::No => {
            return ToolOutput::Output(format!(
                "{first} The user was asked whether to run it again outside the sandbox and \
                 declined."
            ));
        }
        Asked::Aborted => return ToolOutput::Aborted(first),
    }
    request.sandbox = None;
    let again = run(ctx, call, &request, rerun_id).await;
    let text = format!(
        "{first}\n\nThe user allowed it to run again outside the sandbox:\n{}",
        again.model_output()
    );
    if again.status == ExecEndStatus::Aborted {
        ToolOutput::Aborted(text)
    } else {
        ToolOutput::Output(text)
    }
}

/// Ask whether `request` may run, as item `item_id` (not yet started).
async fn ask(
    ctx: &ToolContext<'_>,
    item_id: &str,
    request: &ShellRequest,
    reason: Option<String>,
    key: &[String],
) -> Asked {
    match ctx
        .ask_exec_approval(item_id, &request.command, &request.cwd, reason, key)
        .await
    {
        Ok(ReviewDecision::Approved | ReviewDecision::ApprovedForSession) => Asked::Yes,
        Ok(ReviewDecision::Denied) => Asked::No,
        // The actor turns Abort into an interrupt and never forwards it.
        Ok(ReviewDecision::Abort) | Err(_) => Asked::Aborted,
    }
}

fn aborted_before_output() -> ToolOutput {
    ToolOutput::Aborted(crate::history::ABORTED_BEFORE_OUTPUT.to_string())
}

/// The item of `request` for `call`, as it stands.
fn item(
    call: &ToolCall,
    item_id: &str,
    request: &ShellRequest,
    status: Option<ExecEndStatus>,
    exit_code: Option<i32>,
    duration_ms: Option<u64>,
    output: Option<String>,
) -> TurnItem {
    TurnItem::new(
        item_id.to_string(),
        TurnItemKind::CommandExecution {
            call_id: call.call_id.clone(),
            command: request.command.clone(),
            cwd: request.cwd.display().to_string(),
            status,
            exit_code,
            duration_ms,
            aggregated_output: output,
        },
    )
}

/// The person said no: the item shows it, the model reads it.
fn declined(
    ctx: &ToolContext<'_>,
    call: &ToolCall,
    item_id: &str,
    request: &ShellRequest,
) -> ToolOutput {
    unrun(ctx, call, item_id, request, ExecEndStatus::Denied, "");
    ToolOutput::Output("the user denied this command; it did not run".into())
}

/// The command cannot run at all (the sandbox cannot be set up): a failed
/// item saying why.
fn not_run(
    ctx: &ToolContext<'_>,
    call: &ToolCall,
    item_id: &str,
    request: &ShellRequest,
    why: &str,
) -> ToolOutput {
    unrun(ctx, call, item_id, request, ExecEndStatus::Failed, why);
    ToolOutput::Output(format!("The command did not run: {why}"))
}

/// Item `item_id` of a command that never ran, started and ended `status`
/// with `output`.
fn unrun(
    ctx: &ToolContext<'_>,
    call: &ToolCall,
    item_id: &str,
    request: &ShellRequest,
    status: ExecEndStatus,
    output: &str,
) {
    ctx.item_started(item(call, item_id, request, None, None, None, None));
    ctx.item_completed(item(
        call,
        item_id,
        request,
        Some(status),
        None,
        Some(0),
        Some(output.to_string()),
    ));
}

/// Run `request` as item `item_id`, shown from start to end.
async fn run(
    ctx: &ToolContext<'_>,
    call: &ToolCall,
    request: &ShellRequest,
    item_id: String,
) -> ShellOutcome {
    ctx.item_started(item(call, &item_id, request, None, None, None, None));
    let on_output = |stream, chunk: &str| ctx.output_delta(&item_id, stream, chunk);
    let outcome = run_shell(request.clone(), ctx.cancel().child_token(), &on_output).await;
    ctx.item_completed(item(
        call,
        &item_id,
        request,
        Some(outcome.status),
        outcome.exit_code,
        Some(u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX)),
        Some(outcome.aggregated_output.clone()),
    ));
    outcome
}
