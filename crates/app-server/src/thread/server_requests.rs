//! A thread's requests to its clients: approvals ([`super::approvals`]) and
//! MCP servers' elicitations ([`super::mcp`]). Each is sent to every
//! connection subscribed to the thread (and to one that subscribes while it
//! waits); the first answer from a connection it was sent to is the one
//! that counts, and later answers are ignored. An answer, or the end of its
//! turn (an interrupt), resolves it: `serverRequest/resolved` to the
//! subscribers, and the thread's status drops its waiting flag.
//!
//! An elicitation is also answered `cancel` when no connection it was sent
//! to is left (they closed or unsubscribed): an MCP server waits on it in
//! the middle of a tool call, and nobody is there to answer. An approval
//! waits for a client to come back instead (the turn is the person's, and
//! `thread/resume` asks again).

use serde_json::Value;
use tiller_app_server_protocol::{
    RequestId, ServerNotification, ServerRequest, ServerRequestResolvedNotification, ThreadStatus,
    ThreadStatusChangedNotification,
};
use tiller_protocol::{ElicitationAction, Op};

use super::ThreadDriver;
use super::approvals::decision;
use super::mcp::elicitation_answer;
use crate::outgoing::{ConnectionId, Outgoing};

/// How the id of each kind of request starts: `<kind>:<thread id>:<n>`, so
/// an answer finds its thread ([`thread_of_request`]).
const APPROVAL_PREFIX: &str = "approval:";
const ELICITATION_PREFIX: &str = "elicitation:";

/// The thread a server request's id names, if it is one of the server's.
pub(crate) fn thread_of_request(id: &RequestId) -> Option<&str> {
    match id {
        RequestId::String(id) => id
            .strip_prefix(APPROVAL_PREFIX)
            .or_else(|| id.strip_prefix(ELICITATION_PREFIX))
            .and_then(|rest| rest.rsplit_once(':'))
            .map(|(thread, _)| thread),
        RequestId::Integer(_) => None,
    }
}

/// What the engine waits on, that the answer goes to.
#[derive(Debug, Clone)]
pub(super) enum Awaiting {
    /// The approval of tool call `call_id` (`Op::Approval`).
    Approval { call_id: String },
    /// The elicitation `request_id` (`SessionHandle::resolve_elicitation`).
    Elicitation { request_id: String },
}

impl Awaiting {
    fn id_prefix(&self) -> &'static str {
        match self {
            Awaiting::Approval { .. } => APPROVAL_PREFIX,
            Awaiting::Elicitation { .. } => ELICITATION_PREFIX,
        }
    }
}

/// One request waiting for an answer.
#[derive(Debug)]
struct Pending {
    id: RequestId,
    request: ServerRequest,
    awaiting: Awaiting,
    /// The turn it belongs to: its end resolves it.
    turn_id: Option<String>,
    /// The connections it was sent to: only they may answer.
    sent_to: Vec<ConnectionId>,
}

/// A thread's requests waiting for an answer, and the count for their ids.
#[derive(Debug, Default)]
pub(super) struct ServerRequests {
    asked: u64,
    pending: Vec<Pending>,
}

impl ThreadDriver {
    /// Ask the subscribers `request`; the answer goes to what it is `awaiting`.
    pub(super) fn ask(
        &mut self,
        request: ServerRequest,
        turn_id: Option<String>,
        awaiting: Awaiting,
    ) {
        self.requests.asked += 1;
        let id = RequestId::String(format!(
            "{}{}:{}",
            awaiting.id_prefix(),
            self.info.id,
            self.requests.asked
        ));
        let mut pending = Pending {
            id,
            request,
            awaiting,
            turn_id,
            sent_to: Vec::new(),
        };
        self.subscribers.retain(|s| !s.is_closed());
        for subscriber in &self.subscribers {
            send(&mut pending, subscriber);
        }
        let nobody = pending.sent_to.is_empty();
        let elicitation = matches!(pending.awaiting, Awaiting::Elicitation { .. });
        self.requests.pending.push(pending);
        if nobody && elicitation {
            // Nobody is connected to answer it.
            self.cancel_unanswerable();
            return;
        }

        self.status_changed();
    }

    /// A connection that subscribes while requests wait is asked too.
    pub(super) fn ask_again(&mut self, to: &Outgoing) {
        for pending in &mut self.requests.pending {
            send(pending, to);
        }
    }

    /// A client's answer to a server request of this thread.
    pub(super) async fn server_request_answer(
        &mut self,
        id: &RequestId,
        result: Result<Value, Value>,
        from: ConnectionId,
    ) {
        let Some(at) = self
            .requests
            .pending
            .iter()
            .position(|p| &p.id == id && p.sent_to.contains(&from))
        else {
            // Answered already, resolved by the turn's end, or never sent
            // to this connection.
            tracing::debug!(?id, "ignoring an answer to no pending request");
            return;
        };
        let pending = self.requests.pending.remove(at);
        match &pending.awaiting {
            Awaiting::Approval { call_id } => {
                let decision = decision(&result);
                if let Err(e) = self
                    .session
                    .submit(Op::Approval {
                        call_id: call_id.clone(),
                        decision,
                    })
                    .await
                {
                    // The turn ended meanwhile; its end resolves nothing more.
                    tracing::debug!("the approval came after its turn: {e}");
                }
            }
            Awaiting::Elicitation { request_id } => {
                let (action, content) = elicitation_answer(&result);
                if !self
                    .session
                    .resolve_elicitation(request_id, action, content)
                {
                    // Its call ended meanwhile (and cancelled it).
                    tracing::debug!(request_id, "the elicitation was answered after its call");
                }
            }
        }
        self.resolved(pending.id);
        self.status_changed();
    }

    /// A turn ended: whatever it waited on needs no answer any more (the
    /// engine already gave up on it).
    pub(super) fn turn_ended(&mut self, turn_id: &str) {
        let (ended, waiting): (Vec<Pending>, Vec<Pending>) =
            std::mem::take(&mut self.requests.pending)
                .into_iter()
                .partition(|p| p.turn_id.as_deref() == Some(turn_id));
        self.requests.pending = waiting;
        for pending in ended {
            self.resolved(pending.id);
        }
    }

    /// `connection` left the thread (closed, or unsubscribed): an
    /// elicitation no connection is left to answer is cancelled.
    pub(super) fn connection_left(&mut self, connection: ConnectionId) {
        for pending in &mut self.requests.pending {
            if matches!(pending.awaiting, Awaiting::Elicitation { .. }) {
                pending.sent_to.retain(|c| *c != connection);
            }
        }
        self.cancel_unanswerable();
    }

    /// Answer `cancel` to every elicitation nobody is left to answer.
    fn cancel_unanswerable(&mut self) {
        let (unanswerable, waiting): (Vec<Pending>, Vec<Pending>) =
            std::mem::take(&mut self.requests.pending)
                .into_iter()
                .partition(|p| {
                    matches!(p.awaiting, Awaiting::Elicitation { .. }) && p.sent_to.is_empty()
                });
        self.requests.pending = waiting;
        if unanswerable.is_empty() {
            return;
        }

        for pending in unanswerable {
            if let Awaiting::Elicitation { request_id } = &pending.awaiting {
                self.session
                    .resolve_elicitation(request_id, ElicitationAction::Cancel, None);
            }
            self.resolved(pending.id);
        }
        self.status_changed();
    }

    fn resolved(&mut self, request_id: RequestId) {
        let notification =
            ServerNotification::ServerRequestResolved(ServerRequestResolvedNotification {
                thread_id: self.info.id.clone(),
                request_id,
            });
        self.broadcast(&notification);
    }

    /// `thread/status/changed`: active, and what it waits on (an approval,
    /// the person's input).
    fn status_changed(&mut self) {
        if self.session.running_turn().is_none() {
            return;
        }

        let waits_on = |elicitation: bool| {
            self.requests
                .pending
                .iter()
                .any(|p| matches!(p.awaiting, Awaiting::Elicitation { .. }) == elicitation)
        };
        let mut flags = Vec::new();
        if waits_on(false) {
            flags.push("waitingOnApproval".to_string());
        }
        if waits_on(true) {
            flags.push("waitingOnUserInput".to_string());
        }
        let notification =
            ServerNotification::ThreadStatusChanged(ThreadStatusChangedNotification {
                thread_id: self.info.id.clone(),
                status: ThreadStatus::Active {
                    active_flags: flags,
                },
            });
        self.broadcast(&notification);
    }
}

fn send(pending: &mut Pending, to: &Outgoing) {
    if !pending.sent_to.contains(&to.id()) {
        to.request(
            pending.id.clone(),
            pending.request.method(),
            pending.request.params(),
        );
        pending.sent_to.push(to.id());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_requests_id_names_its_thread_and_no_other_id_does() {
        let approval = RequestId::String(format!("{APPROVAL_PREFIX}01a2-thread:7"));
        assert_eq!(thread_of_request(&approval), Some("01a2-thread"));
        let elicitation = RequestId::String(format!("{ELICITATION_PREFIX}01a2-thread:8"));
        assert_eq!(thread_of_request(&elicitation), Some("01a2-thread"));
        assert_eq!(thread_of_request(&RequestId::Integer(7)), None);
        assert_eq!(
            thread_of_request(&RequestId::String("other:1".into())),
            None
        );
    }
}
