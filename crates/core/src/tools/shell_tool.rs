//! `shell` as a [`Tool`]: the arguments checked, the person asked where the
//! approval policy says so, the command run by [`super::shell::run_shell`]
//! and shown as one command execution item.

use tiller_protocol::{ExecEndStatus, ReviewDecision, TurnItem, TurnItemKind};

use super::apply_patch_tool::{apply, patch_in_shell};
use super::shell::{SHELL_TOOL_NAME, ShellArgs, run_shell, shell_tool_spec};
use super::{Tool, ToolCall, ToolContext, ToolFuture, ToolOutput};
use crate::approval::needs_approval;

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

async fn run_call(call: &ToolCall, ctx: &ToolContext<'_>) -> ToolOutput {
    let args = match ShellArgs::parse(&call.arguments) {
        Ok(args) => args,
        Err(error) => {
            return ToolOutput::Output(format!("invalid arguments for {SHELL_TOOL_NAME}: {error}"));
        }
    };
    let mut request = args.into_request(&ctx.cwd(), ctx.default_timeout());
    // A command that only applies a patch is the patch tool's (Codex's
    // models send patches this way too): a file change, not a process.
    if let Some((patch, dir)) = patch_in_shell(&request.command, &request.cwd) {
        return apply(&patch, &dir, call, ctx).await;
    }
    // The model's commands never see the provider's key: their output goes to
    // the model and into the rollout.
    request.hidden_env.extend(ctx.hidden_env());
    let item_id = ctx.new_item_id();
    let item = |status, exit_code, duration_ms, output| {
        TurnItem::new(
            item_id.clone(),
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
    };
    if needs_approval(ctx.approval_policy(), &request.command)
        && !ctx.approved_for_session(&request.command)
    {
        let decision = ctx
            .ask_exec_approval(&item_id, &request.command, &request.cwd)
            .await;
        match decision {
            Ok(ReviewDecision::Approved | ReviewDecision::ApprovedForSession) => {}
            Ok(ReviewDecision::Denied) => {
                ctx.item_started(item(None, None, None, None));
                ctx.item_completed(item(
                    Some(ExecEndStatus::Denied),
                    None,
                    Some(0),
                    Some(String::new()),
                ));
                return ToolOutput::Output("the user denied this command; it did not run".into());
            }
            // The actor turns Abort into an interrupt and never forwards it.
            Ok(ReviewDecision::Abort) | Err(_) => {
                return ToolOutput::Aborted(crate::history::ABORTED_BEFORE_OUTPUT.to_string());
            }
        }
    }
    ctx.item_started(item(None, None, None, None));
    let on_output = |stream, chunk: &str| ctx.output_delta(&item_id, stream, chunk);
    let outcome = run_shell(request.clone(), ctx.cancel().child_token(), &on_output).await;
    ctx.item_completed(item(
        Some(outcome.status),
        outcome.exit_code,
        Some(u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX)),
        Some(outcome.aggregated_output.clone()),
    ));
    if outcome.status == ExecEndStatus::Aborted {
        ToolOutput::Aborted(outcome.model_output())
    } else {
        ToolOutput::Output(outcome.model_output())
    }
}
