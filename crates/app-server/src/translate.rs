//! Engine events to app-server notifications: a mapping, event by event.
//!
//! The engine says which items start and complete (and completes every one
//! it started), so nothing here remembers open items. The only thing kept
//! between events is when the running turn started, for the timestamps and
//! the duration `turn/completed` carries.

use std::time::Instant;

use tiller_app_server_protocol::{
    AgentMessageDeltaNotification, CommandExecutionOutputDeltaNotification, ErrorNotification,
    ItemCompletedNotification, ItemStartedNotification, McpToolCallProgressNotification,
    ServerNotification, ThreadStatus, ThreadStatusChangedNotification, Turn,
    TurnCompletedNotification, TurnDiffUpdatedNotification, TurnError, TurnPlanStep,
    TurnPlanStepStatus, TurnPlanUpdatedNotification, TurnStartedNotification, TurnStatus,
};
use tiller_protocol::{EventMsg, StepStatus};

use crate::convert::{now_ms, now_secs, thread_item, wire_input};

/// When a turn started: for `startedAt`, `completedAt` and `durationMs`.
#[derive(Debug, Clone)]
pub(crate) struct TurnClock {
    started: Instant,
    started_at: i64,
}

impl TurnClock {
    pub(crate) fn start() -> TurnClock {
        TurnClock {
            started: Instant::now(),
            started_at: now_secs(),
        }
    }

    fn turn(&self, id: &str, status: TurnStatus, error: Option<TurnError>) -> Turn {
        let done = status != TurnStatus::InProgress;
        Turn {
            id: id.to_string(),
            items: Vec::new(),
            status,
            error,
            started_at: Some(self.started_at),
            completed_at: done.then(now_secs),
            duration_ms: done
                .then(|| i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)),
        }
    }
}

/// The notifications `msg` (an event of `turn_id`) becomes, and the turn's
/// status when it was the turn's terminal event.
pub(crate) fn notifications(
    thread_id: &str,
    turn_id: &str,
    clock: &TurnClock,
    msg: EventMsg,
) -> (Vec<ServerNotification>, Option<TurnStatus>) {
    let thread = || thread_id.to_string();
    let turn = || turn_id.to_string();
    let status_changed = |status| {
        ServerNotification::ThreadStatusChanged(ThreadStatusChangedNotification {
            thread_id: thread(),
            status,
        })
    };
    let end = |status: TurnStatus, error, unsent: &[tiller_protocol::UserInput]| {
        (
            vec![
                // A failed turn (the model or the disk failed) leaves the
                // thread in error until its next turn.
                status_changed(if status == TurnStatus::Failed {
                    ThreadStatus::SystemError
                } else {
                    ThreadStatus::Idle
                }),
                ServerNotification::TurnCompleted(TurnCompletedNotification {
                    thread_id: thread(),
                    turn: clock.turn(turn_id, status, error),
                    unsent_input: wire_input(unsent),
                }),
            ],
            Some(status),
        )
    };
    match msg {
        EventMsg::TurnStarted { .. } => (
            vec![
                status_changed(ThreadStatus::Active {
                    active_flags: Vec::new(),
                }),
                ServerNotification::TurnStarted(TurnStartedNotification {
                    thread_id: thread(),
                    turn: clock.turn(turn_id, TurnStatus::InProgress, None),
                }),
            ],
            None,
        ),
        EventMsg::ItemStarted { item } => (
            vec![ServerNotification::ItemStarted(ItemStartedNotification {
                thread_id: thread(),
                turn_id: turn(),
                item: thread_item(&item),
                started_at_ms: now_ms(),
            })],
            None,
        ),
        EventMsg::ItemCompleted { item } => (
            vec![ServerNotification::ItemCompleted(
                ItemCompletedNotification {
                    thread_id: thread(),
                    turn_id: turn(),
                    item: thread_item(&item),
                    completed_at_ms: now_ms(),
                },
            )],
            None,
        ),
        EventMsg::AgentMessageDelta { item_id, delta } => (
            vec![ServerNotification::AgentMessageDelta(
                AgentMessageDeltaNotification {
                    thread_id: thread(),
                    turn_id: turn(),
                    item_id: item_id.to_string(),
                    delta,
                },
            )],
            None,
        ),
        EventMsg::ExecCommandOutputDelta { item_id, chunk, .. } => (
            vec![ServerNotification::CommandExecutionOutputDelta(
                CommandExecutionOutputDeltaNotification {
                    thread_id: thread(),
                    turn_id: turn(),
                    item_id,
                    delta: chunk,
                },
            )],
            None,
        ),
        EventMsg::McpToolCallProgress {
            item_id, message, ..
        } => (
            vec![ServerNotification::McpToolCallProgress(
                McpToolCallProgressNotification {
                    thread_id: thread(),
                    turn_id: turn(),
                    item_id,
                    message,
                },
            )],
            None,
        ),
        EventMsg::StreamRetry {
            attempt,
            max,
            delay_ms,
            reason,
        } => (
            vec![ServerNotification::Error(ErrorNotification {
                thread_id: thread(),
                turn_id: turn(),
                error: TurnError {
                    message: format!(
                        "{reason}; retrying in {delay_ms} ms (attempt {attempt}/{max})"
                    ),
                    additional_details: None,
                },
                will_retry: true,
            })],
            None,
        ),
        EventMsg::TurnDiff { diff } => (
            vec![ServerNotification::TurnDiffUpdated(
                TurnDiffUpdatedNotification {
                    thread_id: thread(),
                    turn_id: turn(),
                    diff,
                },
            )],
            None,
        ),
        EventMsg::PlanUpdated { explanation, plan } => (
            vec![ServerNotification::TurnPlanUpdated(
                TurnPlanUpdatedNotification {
                    thread_id: thread(),
                    turn_id: turn(),
                    explanation,
                    plan: plan
                        .into_iter()
                        .map(|s| TurnPlanStep {
                            step: s.step,
                            status: match s.status {
                                StepStatus::Pending => TurnPlanStepStatus::Pending,
                                StepStatus::InProgress => TurnPlanStepStatus::InProgress,
                                StepStatus::Completed => TurnPlanStepStatus::Completed,
                            },
                        })
                        .collect(),
                },
            )],
            None,
        ),
        EventMsg::TurnCompleted { .. } => end(TurnStatus::Completed, None, &[]),
        // Replaced or interrupted, the wire says `interrupted`; `error` is for failed turns.
        EventMsg::TurnAborted { unsent_input, .. } => {
            end(TurnStatus::Interrupted, None, &unsent_input)
        }
        EventMsg::TurnFailed {
            error,
            unsent_input,
        } => {
            let error = TurnError {
                message: error.message,
                additional_details: error.http_status.map(|s| format!("HTTP {s}")),
            };
            end(TurnStatus::Failed, Some(error), &unsent_input)
        }
        EventMsg::SessionConfigured { .. }
        | EventMsg::ReasoningDelta { .. }
        | EventMsg::ExecApprovalRequest { .. }
        | EventMsg::PatchApprovalRequest { .. }
        | EventMsg::BackgroundEvent { .. }
        | EventMsg::SteerDelivered { .. }
        // Session-level: the thread's event loop shows them.
        | EventMsg::McpServerStatus { .. }
        | EventMsg::ElicitationRequest { .. }
        | EventMsg::ShutdownComplete => (Vec::new(), None),
    }
}
