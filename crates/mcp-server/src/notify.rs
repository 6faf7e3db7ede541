//! Engine events as MCP notifications.
//!
//! Every event of a call's turn goes out as a `tiller/event` notification:
//! `{"_meta": {"requestId", "threadId"}, "threadId", "turnId", "msg": <engine
//! event>}` (the `msg` is the engine's `EventMsg` as serialized in rollouts).
//! When the call carried a `progressToken`, each event also goes out as a
//! `notifications/progress` with a one-line message.

use rmcp::model::{
    CustomNotification, GetMeta, ProgressNotificationParam, ProgressToken, RequestId,
    ServerNotification,
};
use rmcp::{Peer, RoleServer};
use serde_json::{Value, json};
use tiller_protocol::{Event, EventMsg, TurnAbortReason};

/// The method of the event notifications.
pub const EVENT_METHOD: &str = "tiller/event";

/// Sends one call's events to the client.
pub(crate) struct EventNotifier {
    peer: Peer<RoleServer>,
    request_id: RequestId,
    thread_id: String,
    progress_token: Option<ProgressToken>,
    progress: u64,
}

impl EventNotifier {
    pub(crate) fn new(
        peer: Peer<RoleServer>,
        request_id: RequestId,
        thread_id: String,
        progress_token: Option<ProgressToken>,
    ) -> EventNotifier {
        EventNotifier {
            peer,
            request_id,
            thread_id,
            progress_token,
            progress: 0,
        }
    }

    /// Send `event`. A client that cannot be written to any more is not an
    /// error here: the call's answer will not reach it either.
    pub(crate) async fn send(&mut self, event: &Event) {
        let params = json!({
            "threadId": self.thread_id,
            "turnId": event.turn_id,
            "msg": serde_json::to_value(&event.msg).unwrap_or(Value::Null),
        });
        let mut notification = CustomNotification::new(EVENT_METHOD, Some(params));
        // rmcp writes `_meta` from the notification's extensions, not from the params.
        let meta = &mut notification.get_meta_mut().0.0;
        meta.insert("requestId".into(), request_id_value(&self.request_id));
        meta.insert("threadId".into(), Value::String(self.thread_id.clone()));
        let notification = ServerNotification::CustomNotification(notification);
        if let Err(e) = self.peer.send_notification(notification).await {
            tracing::debug!("could not send an event notification: {e}");
        }
        let Some(token) = &self.progress_token else {
            return;
        };

        self.progress += 1;
        let param = ProgressNotificationParam::new(token.clone(), self.progress as f64)
            .with_message(describe(&event.msg));
        if let Err(e) = self.peer.notify_progress(param).await {
            tracing::debug!("could not send a progress notification: {e}");
        }
    }
}

fn request_id_value(id: &RequestId) -> Value {
    serde_json::to_value(id).unwrap_or(Value::Null)
}

/// One line for a progress notification.
pub(crate) fn describe(msg: &EventMsg) -> String {
    match msg {
        EventMsg::SessionConfigured { session_id, .. } => format!("session {session_id} ready"),
        EventMsg::TurnStarted => "turn started".to_string(),
        EventMsg::AgentMessageDelta { delta } => delta.clone(),
        EventMsg::AgentMessage { text } => format!("agent: {text}"),
        EventMsg::ReasoningDelta { delta } => delta.clone(),
        EventMsg::Reasoning { text } => format!("reasoning: {text}"),
        EventMsg::ExecCommandBegin { command, .. } => format!("running: {}", command.join(" ")),
        EventMsg::ExecCommandOutputDelta { chunk, .. } => chunk.clone(),
        EventMsg::ExecCommandEnd {
            command,
            exit_code,
            status,
            ..
        } => match exit_code {
            Some(code) => format!("{} exited with {code}", command.join(" ")),
            None => format!("{} ended: {status:?}", command.join(" ")),
        },
        EventMsg::ExecApprovalRequest { command, .. } => {
            format!("approval needed: {}", command.join(" "))
        }
        EventMsg::StreamRetry {
            attempt,
            max,
            reason,
            ..
        } => format!("retrying the model request ({attempt}/{max}): {reason}"),
        EventMsg::BackgroundEvent { message } => message.clone(),
        EventMsg::SteerDelivered { .. } => "input delivered to the model".to_string(),
        EventMsg::TurnCompleted { .. } => "turn completed".to_string(),
        EventMsg::TurnAborted { reason, .. } => match reason {
            TurnAbortReason::Interrupted => "turn interrupted".to_string(),
            TurnAbortReason::Replaced => "turn replaced by a new one".to_string(),
        },
        EventMsg::TurnFailed { error, .. } => format!("turn failed: {}", error.message),
        EventMsg::ShutdownComplete => "session shut down".to_string(),
    }
}
