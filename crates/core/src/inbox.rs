//! What a running turn shares with the session actor while it runs: steer
//! input waiting for the next model request, and approvals waiting for a
//! person. The actor pushes steer and answers approvals; the turn drains the
//! steer before each request and asks through [`TurnInbox::ask_approval`].
//! Both sides decide under one lock, so a steer is delivered or refused,
//! never lost.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tiller_protocol::{EventMsg, ReviewDecision, UserInput, UserMessage};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::events::TurnEmitter;
use crate::items::TurnItems;

/// What a running turn shares with the session actor: steer input waiting for
/// the next request, and approvals waiting for a person.
#[derive(Debug)]
pub(crate) struct TurnInbox {
    state: Mutex<InboxState>,
    steer_generation: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct InboxState {
    /// Steer input accepted but not yet sent to the model, with the id of the
    /// user message item that shows it.
    pending_steer: Vec<(UserMessage, String)>,
    /// False once the turn has decided to end: steer is refused from then on.
    accepting: bool,
    /// Approval requests waiting for a person, by call id.
    approvals: HashMap<String, oneshot::Sender<ReviewDecision>>,
}

/// The call was cut short by cancellation while it waited for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

/// Why [`TurnInbox::push_steer`] refused input.
pub(crate) struct SteerClosed;

impl TurnInbox {
    pub(crate) fn new() -> Self {
        TurnInbox {
            state: Mutex::new(InboxState {
                accepting: true,
                ..InboxState::default()
            }),
            steer_generation: watch::Sender::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, InboxState> {
        // A panic elsewhere must not wedge the lifecycle: the inbox holds plain data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queue steer input for the next model request and cut a running stream.
    /// Accepted input is shown at once, as a user message item of `items`
    /// (under the inbox lock, so it is shown before it can be delivered); it
    /// then reaches the model or comes back in `unsent_input`.
    pub(crate) fn push_steer(
        &self,
        message: UserMessage,
        items: &TurnItems,
    ) -> Result<String, SteerClosed> {
        let mut state = self.state();
        if !state.accepting {
            return Err(SteerClosed);
        }
        let item_id = items.user_message(&message);
        state.pending_steer.push((message, item_id.clone()));
        // Bumped under the lock so the turn reads queue and generation together.
        self.steer_generation.send_modify(|g| *g += 1);
        Ok(item_id)
    }

    /// A receiver that sees every accepted steer (it cuts a running stream).
    pub(crate) fn subscribe_steer(&self) -> watch::Receiver<u64> {
        self.steer_generation.subscribe()
    }

    /// Take the steer waiting for the next request, each with its item's id,
    /// and mark the generation seen on `steer_rx` (under the lock, so only
    /// newer steer cuts the next stream).
    pub(crate) fn take_steer(
        &self,
        steer_rx: &mut watch::Receiver<u64>,
    ) -> Vec<(UserMessage, String)> {
        let mut state = self.state();
        steer_rx.borrow_and_update();
        state.pending_steer.drain(..).collect()
    }

    /// With nothing left to run: close the inbox unless steer is waiting;
    /// true when closed. Decided under the lock, so steer is either delivered
    /// or refused, never lost.
    pub(crate) fn close_if_no_steer(&self) -> bool {
        let mut state = self.state();
        if state.pending_steer.is_empty() {
            state.accepting = false;
            true
        } else {
            false
        }
    }

    /// Close the inbox: no more steer, pending approvals dropped; returns unsent input.
    pub(crate) fn close(&self) -> Vec<UserInput> {
        let mut state = self.state();
        state.accepting = false;
        state.approvals.clear();
        state
            .pending_steer
            .drain(..)
            .flat_map(|(message, _)| message.items)
            .collect()
    }

    /// Take the waiting approval for `call_id`, if any.
    pub(crate) fn take_approval(&self, call_id: &str) -> Option<oneshot::Sender<ReviewDecision>> {
        self.state().approvals.remove(call_id)
    }

    /// Ask the person about `call_id` with `request` (an approval request
    /// event, emitted through `emitter`). `Err` once the turn is aborted, also by an `Abort` answer.
    pub(crate) async fn ask_approval(
        &self,
        call_id: &str,
        request: EventMsg,
        emitter: &TurnEmitter,
        cancel: &CancellationToken,
    ) -> Result<ReviewDecision, Cancelled> {
        let (tx, rx) = oneshot::channel();
        self.state().approvals.insert(call_id.to_string(), tx);
        emitter.emit(request);
        tokio::select! {
            biased;
            () = cancel.cancelled() => Err(Cancelled),
            // A dropped sender means the turn is being aborted.
            decision = rx => decision.map_err(|_| Cancelled),
        }
    }
}
