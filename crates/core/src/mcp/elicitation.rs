//! Elicitations: an MCP server asking the person for input mid-call. Each is
//! shown as an [`EventMsg::ElicitationRequest`] and waits for
//! [`Elicitations::resolve`]; one left unanswered is cancelled when the call
//! that caused it ends, and past [`MAX_PENDING`] a server's request is declined.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use rmcp::model::{ElicitRequestParams, ElicitResult, ElicitationAction as McpAction};
use tiller_protocol::{ElicitationAction, EventMsg};
use tokio::sync::oneshot;

use crate::events::EventSink;

/// The most elicitations waiting for an answer at once.
pub(crate) const MAX_PENDING: usize = 16;

/// The elicitations of a session waiting for a person.
pub(crate) struct Elicitations {
    events: EventSink,
    pending: Mutex<HashMap<String, Pending>>,
    next: AtomicU64,
}

struct Pending {
    server: String,
    reply: oneshot::Sender<ElicitResult>,
}

impl Elicitations {
    pub(crate) fn new(events: EventSink) -> Elicitations {
        Elicitations {
            events,
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }

    /// Show `request` of `server` and wait for the person's answer.
    pub(crate) async fn ask(&self, server: &str, request: ElicitRequestParams) -> ElicitResult {
        let (message, requested_schema) = match request {
            ElicitRequestParams::FormElicitationParams {
                message,
                requested_schema,
                ..
            } => (
                message,
                serde_json::to_value(requested_schema).unwrap_or_default(),
            ),
            ElicitRequestParams::UrlElicitationParams { message, url, .. } => (
                format!("{message}\nOpen: {url}"),
                serde_json::json!({"type": "object", "properties": {}}),
            ),
            // A kind this version of MCP does not know: not shown, declined.
            _ => return result(McpAction::Decline, None),
        };
        let (tx, rx) = oneshot::channel();
        let request_id = format!("elicitation-{}", self.next.fetch_add(1, Ordering::Relaxed));
        {
            let mut pending = self.lock();
            if pending.len() >= MAX_PENDING {
                return result(McpAction::Decline, None);
            }
            pending.insert(
                request_id.clone(),
                Pending {
                    server: server.to_owned(),
                    reply: tx,
                },
            );
        }
        self.events.emit(
            None,
            EventMsg::ElicitationRequest {
                server: server.to_owned(),
                request_id,
                message,
                requested_schema,
            },
        );
        rx.await.unwrap_or_else(|_| result(McpAction::Cancel, None))
    }

    /// Answer the elicitation `request_id`. False when none such waits.
    pub(crate) fn resolve(
        &self,
        request_id: &str,
        action: ElicitationAction,
        content: Option<serde_json::Value>,
    ) -> bool {
        let Some(pending) = self.lock().remove(request_id) else {
            return false;
        };
        let action = match action {
            ElicitationAction::Accept => McpAction::Accept,
            ElicitationAction::Decline => McpAction::Decline,
            ElicitationAction::Cancel => McpAction::Cancel,
        };
        let content = content.filter(|_| action == McpAction::Accept);
        pending.reply.send(result(action, content)).is_ok()
    }

    /// Cancel every elicitation of `server` still waiting (its call ended).
    pub(crate) fn cancel_server(&self, server: &str) {
        self.lock().retain(|_, pending| pending.server != server);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn result(action: McpAction, content: Option<serde_json::Value>) -> ElicitResult {
    let result = ElicitResult::new(action);
    match content {
        Some(content) => result.with_content(content),
        None => result,
    }
}
