//! The model's plan for a turn: steps and where each one is, as the
//! `update_plan` tool gives them. Each update replaces the whole plan.

use serde::{Deserialize, Serialize};

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    /// What the step does, in a sentence.
    pub step: String,
    /// Where it is.
    pub status: StepStatus,
}

/// Where a plan step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not begun.
    Pending,
    /// Being worked on (at most one step at a time).
    InProgress,
    /// Done.
    Completed,
}

impl StepStatus {
    /// The name the model writes: `pending`, `in_progress` or `completed`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::InProgress => "in_progress",
            StepStatus::Completed => "completed",
        }
    }
}

/// How every front end shows a plan as text: a heading (with the
/// explanation, when there is one), then a line per step, `[x]` done, `[>]`
/// in progress, `[ ]` pending.
pub fn plan_lines(explanation: Option<&str>, plan: &[PlanStep]) -> Vec<String> {
    let heading = match explanation {
        Some(why) => format!("plan: {why}"),
        None => "plan".to_owned(),
    };
    let steps = plan.iter().map(|s| {
        let mark = match s.status {
            StepStatus::Completed => "[x]",
            StepStatus::InProgress => "[>]",
            StepStatus::Pending => "[ ]",
        };
        format!("  {mark} {}", s.step)
    });
    std::iter::once(heading).chain(steps).collect()
}
