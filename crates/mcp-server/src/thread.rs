//! One thread: an engine session, and the routing of its events to calls.
//!
//! A router task owns the session's `EventStream`. Each turn gets a
//! [`TurnSlot`]: the call that started the turn claims it and receives the
//! turn's events through a channel (events that arrived before the claim are
//! kept in the slot and handed over first, so nothing is lost between the
//! engine's `TurnStarted` and the `StartTurn` reply); how the turn ended is
//! published on a `watch`, so every `tiller-interrupt` of the turn sees the
//! same end. The state sits behind a mutex that is never held across an
//! `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tiller_core::config::ApprovalPolicy;
use tiller_core::{EventSender, EventStream, SessionHandle};
use tiller_protocol::{Event, EventMsg, TurnAbortReason};
use tokio::sync::watch;

/// How a turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TurnEnd {
    /// The model finished.
    Completed {
        /// The last assistant message.
        last_agent_message: Option<String>,
    },
    /// Ended early.
    Aborted {
        /// Why.
        reason: TurnAbortReason,
    },
    /// Failed, in the server's words.
    Failed {
        /// The message.
        message: String,
    },
}

impl TurnEnd {
    /// The end of `msg`, if it is a terminal event.
    pub(crate) fn of_event(msg: &EventMsg) -> Option<TurnEnd> {
        match msg {
            EventMsg::TurnCompleted {
                last_agent_message, ..
            } => Some(TurnEnd::Completed {
                last_agent_message: last_agent_message.clone(),
            }),
            EventMsg::TurnAborted { reason, .. } => Some(TurnEnd::Aborted { reason: *reason }),
            EventMsg::TurnFailed { error, .. } => Some(TurnEnd::Failed {
                message: error.message.clone(),
            }),
            EventMsg::SessionConfigured { .. }
            | EventMsg::TurnStarted
            | EventMsg::AgentMessageDelta { .. }
            | EventMsg::AgentMessage { .. }
            | EventMsg::ReasoningDelta { .. }
            | EventMsg::Reasoning { .. }
            | EventMsg::ExecCommandBegin { .. }
            | EventMsg::ExecCommandOutputDelta { .. }
            | EventMsg::ExecCommandEnd { .. }
            | EventMsg::ExecApprovalRequest { .. }
            | EventMsg::StreamRetry { .. }
            | EventMsg::BackgroundEvent { .. }
            | EventMsg::SteerDelivered { .. }
            | EventMsg::ShutdownComplete => None,
        }
    }
}

/// One turn's routing state.
struct TurnSlot {
    /// Events that arrived before the turn was claimed.
    backlog: Vec<Event>,
    /// The call that started the turn.
    subscriber: Option<EventSender>,
    /// How the turn ended, once it has.
    end: watch::Sender<Option<TurnEnd>>,
}

impl TurnSlot {
    fn new() -> TurnSlot {
        TurnSlot {
            backlog: Vec::new(),
            subscriber: None,
            end: watch::channel(None).0,
        }
    }
}

#[derive(Default)]
struct ThreadState {
    /// The turn that has started and not ended.
    running: Option<String>,
    turns: HashMap<String, TurnSlot>,
    /// The session has ended: no turn will start or end any more.
    closed: bool,
}

/// A thread: its session and its event routing.
pub(crate) struct McpThread {
    id: String,
    session: SessionHandle,
    approval_policy: ApprovalPolicy,
    state: Mutex<ThreadState>,
}

impl std::fmt::Debug for McpThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpThread").field("id", &self.id).finish()
    }
}

impl McpThread {
    /// Wrap a session and start routing its events.
    pub(crate) fn spawn(
        session: SessionHandle,
        events: EventStream,
        approval_policy: ApprovalPolicy,
    ) -> Arc<McpThread> {
        let thread = Arc::new(McpThread {
            id: session.session_id().to_string(),
            session,
            approval_policy,
            state: Mutex::new(ThreadState::default()),
        });
        tokio::spawn(route_events(Arc::clone(&thread), events));
        thread
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn session(&self) -> &SessionHandle {
        &self.session
    }

    pub(crate) fn approval_policy(&self) -> ApprovalPolicy {
        self.approval_policy
    }

    fn state(&self) -> MutexGuard<'_, ThreadState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Receive `turn_id`'s events on `subscriber`, those already emitted first.
    /// The returned guard forgets the turn when the call is done with it.
    pub(crate) fn claim(self: &Arc<Self>, turn_id: &str, subscriber: EventSender) -> TurnClaim {
        let mut state = self.state();
        let closed = state.closed;
        let slot = state
            .turns
            .entry(turn_id.to_string())
            .or_insert_with(TurnSlot::new);
        for event in slot.backlog.drain(..) {
            subscriber.send(event);
        }
        let ended = slot.end.borrow().is_some();
        // After a closed session no event will come: dropping the sender ends the call.
        if !closed {
            slot.subscriber = Some(subscriber);
        }
        if !ended && !closed {
            // The router may not have seen `TurnStarted` yet; the engine has.
            state.running = Some(turn_id.to_string());
        }
        TurnClaim {
            thread: Arc::clone(self),
            turn_id: turn_id.to_string(),
        }
    }

    /// The running turn and a way to wait for its end, if a turn is running.
    pub(crate) fn running_turn(&self) -> Option<(String, watch::Receiver<Option<TurnEnd>>)> {
        let mut state = self.state();
        let turn_id = state.running.clone()?;
        let end = state
            .turns
            .entry(turn_id.clone())
            .or_insert_with(TurnSlot::new)
            .end
            .subscribe();
        Some((turn_id, end))
    }

    /// Whether `turn_id` is the running turn.
    pub(crate) fn is_running(&self, turn_id: &str) -> bool {
        self.state().running.as_deref() == Some(turn_id)
    }

    fn route(&self, event: Event) {
        let Some(turn_id) = event.turn_id.clone() else {
            return;
        };
        let mut state = self.state();
        let end = TurnEnd::of_event(&event.msg);
        if matches!(event.msg, EventMsg::TurnStarted) {
            state.running = Some(turn_id.clone());
        }
        if end.is_some() && state.running.as_deref() == Some(turn_id.as_str()) {
            state.running = None;
        }
        let slot = state.turns.entry(turn_id).or_insert_with(TurnSlot::new);
        match &slot.subscriber {
            Some(subscriber) => {
                if !subscriber.send(event) {
                    slot.subscriber = None;
                }
            }
            None => slot.backlog.push(event),
        }
        if let Some(end) = end {
            slot.end.send_replace(Some(end));
        }
    }

    /// The session ended: end every open turn so no call waits forever.
    fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        state.running = None;
        for slot in state.turns.values_mut() {
            slot.subscriber = None;
            if slot.end.borrow().is_none() {
                slot.end.send_replace(Some(TurnEnd::Failed {
                    message: "the session has shut down".to_string(),
                }));
            }
        }
    }
}

/// A call's hold on its turn; dropping it forgets the turn's routing state.
pub(crate) struct TurnClaim {
    thread: Arc<McpThread>,
    turn_id: String,
}

impl Drop for TurnClaim {
    fn drop(&mut self) {
        let mut state = self.thread.state();
        let ended = state
            .turns
            .get(&self.turn_id)
            .is_some_and(|slot| slot.end.borrow().is_some());
        if ended {
            state.turns.remove(&self.turn_id);
        } else if let Some(slot) = state.turns.get_mut(&self.turn_id) {
            // The call went away first (shutdown): keep the end for interrupts, drop the rest.
            slot.subscriber = None;
            slot.backlog.clear();
        }
    }
}

async fn route_events(thread: Arc<McpThread>, mut events: EventStream) {
    while let Some(event) = events.recv().await {
        thread.route(event);
    }
    thread.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_events_map_to_ends() {
        let aborted = EventMsg::TurnAborted {
            reason: TurnAbortReason::Interrupted,
            unsent_input: Vec::new(),
        };
        assert_eq!(
            TurnEnd::of_event(&aborted),
            Some(TurnEnd::Aborted {
                reason: TurnAbortReason::Interrupted
            })
        );
        assert_eq!(TurnEnd::of_event(&EventMsg::TurnStarted), None);
    }
}
