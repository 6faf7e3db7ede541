//! One `tiller` / `tiller-reply` call: start the turn, stream its events,
//! answer when it ends, and interrupt it when the client cancels the call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::RoleServer;
use rmcp::model::{CallToolResult, ContentBlock, RequestId};
use rmcp::service::RequestContext;
use tiller_core::TurnEnd;
use tiller_protocol::{Op, TurnAbortReason, UserInput, UserMessage};
use tokio_util::sync::CancellationToken;

use crate::approval::{self, ApprovalRequest};
use crate::notify::EventNotifier;
use crate::params::{TurnResult, TurnStatus};
use crate::thread::McpThread;

/// The calls that are running a turn: request id → thread id.
#[derive(Debug, Clone, Default)]
pub(crate) struct ActiveCalls {
    calls: Arc<Mutex<HashMap<RequestId, String>>>,
}

impl ActiveCalls {
    /// Record a call; the entry goes when the guard is dropped, whichever way
    /// the call ends (answered, failed, cancelled, or dropped at shutdown).
    pub(crate) fn register(&self, request_id: RequestId, thread_id: &str) -> ActiveCallGuard {
        self.lock()
            .insert(request_id.clone(), thread_id.to_string());
        ActiveCallGuard {
            calls: self.clone(),
            request_id,
        }
    }

    /// The thread a running call drives, if the request is a running call.
    pub(crate) fn thread_of(&self, request_id: &RequestId) -> Option<String> {
        self.lock().get(request_id).cloned()
    }

    /// How many calls are running.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, String>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Removes its call from [`ActiveCalls`] when dropped.
pub(crate) struct ActiveCallGuard {
    calls: ActiveCalls,
    request_id: RequestId,
}

impl Drop for ActiveCallGuard {
    fn drop(&mut self) {
        self.calls.lock().remove(&self.request_id);
    }
}

/// Run one turn of `thread` with `prompt` for the request in `context`. The
/// call holds its turn (`TurnHandle`): the turn's own events, through its end.
pub(crate) async fn run_turn_call(
    thread: Arc<McpThread>,
    prompt: String,
    context: RequestContext<RoleServer>,
    calls: &ActiveCalls,
) -> CallToolResult {
    let _active = calls.register(context.id.clone(), thread.id());
    let started = thread
        .session()
        .start_turn(vec![UserMessage::new(vec![UserInput::text(prompt)])], None)
        .await;
    let mut turn = match started {
        Ok(turn) => turn,
        Err(e) => return error_result(thread.id(), format!("could not start the turn: {e}")),
    };
    let turn_id = turn.id().to_string();
    let mut notifier = EventNotifier::new(
        context.peer.clone(),
        context.id.clone(),
        thread.id().to_string(),
        context.meta.get_progress_token(),
    );
    // Approval tasks end with the call: a decision for a finished turn is moot.
    let approvals = CancellationToken::new();
    let _approvals_guard = approvals.clone().drop_guard();
    let mut cancelled = false;
    loop {
        tokio::select! {
            biased;
            () = context.ct.cancelled(), if !cancelled => {
                cancelled = true;
                tracing::info!(thread = %thread.id(), turn = %turn_id, request = %context.id, "call cancelled; interrupting its turn");
                // Another call may have replaced this turn meanwhile; leave that one alone.
                if thread.is_running(&turn_id) {
                    // Answered once the process tree is dead and the rollout flushed.
                    if let Err(e) = thread.session().submit(Op::Interrupt).await {
                        tracing::warn!("could not interrupt the turn: {e}");
                    }
                }
            }
            event = turn.events.recv() => {
                let Some(event) = event else {
                    // The stream ends after the terminal event, or when the
                    // session has gone.
                    let end = turn.watch.ended().unwrap_or(TurnEnd::Failed {
                        message: "the session has shut down".to_string(),
                    });
                    return turn_result(thread.id(), end);
                };
                // After a cancel nobody is listening: the response will be dropped too.
                if !cancelled {
                    notifier.send(&event).await;
                }
                if let Some(request) = ApprovalRequest::of_event(&turn_id, &event.msg) {
                    let (peer, thread, stop) = (context.peer.clone(), Arc::clone(&thread), approvals.clone());
                    tokio::spawn(async move {
                        tokio::select! {
                            () = stop.cancelled() => {}
                            () = approval::resolve(peer, thread, request) => {}
                        }
                    });
                }
                if let Some(end) = TurnEnd::of_event(&event.msg) {
                    return turn_result(thread.id(), end);
                }
            }
        }
    }
}

/// The answer for a turn that ended with `end`.
pub(crate) fn turn_result(thread_id: &str, end: TurnEnd) -> CallToolResult {
    let (status, last_agent_message, error) = match end {
        TurnEnd::Completed { last_agent_message } => {
            (TurnStatus::Completed, last_agent_message, None)
        }
        TurnEnd::Aborted { reason } => (
            match reason {
                TurnAbortReason::Interrupted => TurnStatus::Interrupted,
                TurnAbortReason::Replaced => TurnStatus::Replaced,
            },
            None,
            None,
        ),
        TurnEnd::Failed { message } => (TurnStatus::Failed, None, Some(message)),
    };
    let text = match (&error, &last_agent_message, status) {
        (Some(message), _, _) => message.clone(),
        (None, Some(text), _) => text.clone(),
        (None, None, TurnStatus::Interrupted) => "the turn was interrupted".to_string(),
        (None, None, TurnStatus::Replaced) => "the turn was replaced by a newer one".to_string(),
        (None, None, TurnStatus::Completed | TurnStatus::Failed) => String::new(),
    };
    let structured = TurnResult {
        thread_id: thread_id.to_string(),
        status,
        last_agent_message,
        error: error.clone(),
    };
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = serde_json::to_value(&structured).ok();
    if error.is_some() {
        result.is_error = Some(true);
    }
    result
}

/// A call that failed before its turn could run.
pub(crate) fn error_result(thread_id: &str, message: String) -> CallToolResult {
    turn_result(thread_id, TurnEnd::Failed { message })
}
