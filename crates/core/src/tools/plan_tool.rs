//! `update_plan`: the model sets out its plan for the turn, as Codex's tool of
//! the same name does. Each call replaces the whole plan; front ends show it
//! (the app-server's `turn/plan/updated`, an ACP `plan` update, the terminal's
//! checklist). It runs nothing, and the model reads `Plan updated`.

use serde::Deserialize;
use tiller_protocol::{EventMsg, PlanStep, StepStatus};

use super::{Tool, ToolCall, ToolContext, ToolFuture, ToolOutput};

/// The name the model calls it by.
pub const UPDATE_PLAN_TOOL_NAME: &str = "update_plan";
/// The most steps a plan may have: a plan longer than this is refused, with
/// the reason, and the one shown stays.
pub const MAX_PLAN_STEPS: usize = 64;
/// The longest a step or the explanation may be, in bytes.
pub const MAX_PLAN_TEXT: usize = 2_000;

/// The `update_plan` tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpdatePlanTool;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanArgs {
    #[serde(default)]
    explanation: Option<String>,
    plan: Vec<PlanStep>,
}

impl Tool for UpdatePlanTool {
    fn name(&self) -> &str {
        UPDATE_PLAN_TOOL_NAME
    }

    fn spec(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "function",
            "name": UPDATE_PLAN_TOOL_NAME,
            "description": "Updates the task plan. Give an optional explanation and the whole \
                list of steps, each with a status; every call replaces the plan. At most one \
                step can be in_progress at a time. Use it for work of several steps, not for \
                a single quick action.",
            "strict": false,
            "parameters": {
                "type": "object",
                "properties": {
                    "explanation": { "type": "string" },
                    "plan": {
                        "type": "array",
                        "description": "The steps, in order.",
                        "items": {
                            "type": "object",
                            "properties": {
                                "step": { "type": "string" },
                                "status": {
                                    "type": "string",
                                    "enum": ["pending", "in_progress", "completed"]
                                }
                            },
                            "required": ["step", "status"],
                            "additionalProperties": false
                        }
                    }
                },
                "required": ["plan"],
                "additionalProperties": false
            }
        })
    }

    fn run<'a>(&'a self, call: &'a ToolCall, ctx: &'a ToolContext<'a>) -> ToolFuture<'a> {
        Box::pin(async move {
            match parse(&call.arguments) {
                Ok((explanation, plan)) => {
                    ctx.emit(EventMsg::PlanUpdated { explanation, plan });
                    ToolOutput::Output("Plan updated".to_owned())
                }
                Err(why) => ToolOutput::Output(format!(
                    "invalid arguments for {UPDATE_PLAN_TOOL_NAME}: {why}; the plan is unchanged"
                )),
            }
        })
    }
}

/// The explanation and steps of a call, or why they are refused.
fn parse(arguments: &str) -> Result<(Option<String>, Vec<PlanStep>), String> {
    let args: PlanArgs = serde_json::from_str(arguments).map_err(|e| e.to_string())?;
    if args.plan.len() > MAX_PLAN_STEPS {
        return Err(format!(
            "{} steps; a plan has at most {MAX_PLAN_STEPS}",
            args.plan.len()
        ));
    }
    let too_long = |text: &str| text.len() > MAX_PLAN_TEXT;
    if args.explanation.as_deref().is_some_and(too_long) {
        return Err(format!(
            "the explanation is longer than {MAX_PLAN_TEXT} bytes"
        ));
    }
    if let Some(n) = args.plan.iter().position(|s| too_long(&s.step)) {
        return Err(format!(
            "step {} is longer than {MAX_PLAN_TEXT} bytes",
            n + 1
        ));
    }
    let in_progress = args
        .plan
        .iter()
        .filter(|s| s.status == StepStatus::InProgress)
        .count();
    if in_progress > 1 {
        return Err(format!(
            "{in_progress} steps are in_progress; at most one can be"
        ));
    }
    let explanation = args.explanation.filter(|e| !e.trim().is_empty());
    Ok((explanation, args.plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_read_with_its_explanation() {
        let (explanation, plan) = parse(
            r#"{"explanation":"why","plan":[{"step":"read","status":"completed"},
                {"step":"fix","status":"in_progress"},{"step":"test","status":"pending"}]}"#,
        )
        .unwrap();
        assert_eq!(explanation.as_deref(), Some("why"));
        let statuses: Vec<_> = plan.iter().map(|s| s.status).collect();
        assert_eq!(
            statuses,
            [
                StepStatus::Completed,
                StepStatus::InProgress,
                StepStatus::Pending
            ]
        );
    }

    #[test]
    fn bad_plans_are_refused_with_the_reason() {
        let two =
            r#"{"plan":[{"step":"a","status":"in_progress"},{"step":"b","status":"in_progress"}]}"#;
        assert!(parse(two).unwrap_err().contains("at most one"));
        let unknown = r#"{"plan":[{"step":"a","status":"done"}]}"#;
        assert!(parse(unknown).unwrap_err().contains("unknown variant"));
        let steps: Vec<_> = (0..=MAX_PLAN_STEPS)
            .map(|n| serde_json::json!({"step": n.to_string(), "status": "pending"}))
            .collect();
        let long = serde_json::json!({ "plan": steps }).to_string();
        assert!(parse(&long).unwrap_err().contains("at most 64"));
        let wordy = serde_json::json!({"plan": [{"step": "x".repeat(MAX_PLAN_TEXT + 1), "status": "pending"}]});
        assert!(parse(&wordy.to_string()).unwrap_err().contains("step 1"));
        assert!(parse("{}").unwrap_err().contains("missing field `plan`"));
    }
}
