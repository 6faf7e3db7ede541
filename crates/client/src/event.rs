//! What the client reports on its event stream.

use std::process::ExitStatus;

use serde_json::Value;
use tiller_app_server_protocol::ServerNotification;

/// The message of the `turn/completed` (status `failed`) the client
/// synthesizes for a turn that was running when the server went away.
pub const DISCONNECTED_TURN_MESSAGE: &str = "the app-server went away while the turn was running";

/// One thing that happened, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every event is a notification: boxing it would cost an allocation each"
)]
pub enum ClientEvent {
    /// A notification from the server, typed. Also used for the synthetic
    /// `thread/status/changed` (idle) and `turn/completed` (failed, error
    /// message [`DISCONNECTED_TURN_MESSAGE`]) the client emits for every turn
    /// that was in progress when the server went away, so no turn is ever left
    /// in progress.
    Notification(ServerNotification),
    /// A notification this client does not know, or whose params did not
    /// parse, as it came.
    Other {
        /// The method.
        method: String,
        /// The params.
        params: Value,
    },
    /// The server is gone: exactly one per started server, after everything
    /// it sent and after the synthetic terminal notifications. Requests fail
    /// with [`ClientError::Disconnected`](crate::ClientError::Disconnected)
    /// until [`Client::reconnect`](crate::Client::reconnect).
    Disconnected {
        /// Which server (1 for the first, then one more per reconnect).
        generation: u64,
        /// Whether the client asked for it (shutdown, reconnect, drop).
        requested: bool,
        /// How the server process ended, when known.
        exit_status: Option<ExitStatus>,
    },
}

/// Read a notification by its method name: `None` for a method this crate does
/// not know, an error for params of the wrong shape.
pub fn parse_notification(
    method: &str,
    params: Value,
) -> Option<Result<ServerNotification, serde_json::Error>> {
    use ServerNotification as N;
    let parsed = match method {
        "thread/started" => serde_json::from_value(params).map(N::ThreadStarted),
        "thread/status/changed" => serde_json::from_value(params).map(N::ThreadStatusChanged),
        "turn/started" => serde_json::from_value(params).map(N::TurnStarted),
        "turn/completed" => serde_json::from_value(params).map(N::TurnCompleted),
        "item/started" => serde_json::from_value(params).map(N::ItemStarted),
        "item/completed" => serde_json::from_value(params).map(N::ItemCompleted),
        "item/agentMessage/delta" => serde_json::from_value(params).map(N::AgentMessageDelta),
        "item/commandExecution/outputDelta" => {
            serde_json::from_value(params).map(N::CommandExecutionOutputDelta)
        }
        "error" => serde_json::from_value(params).map(N::Error),
        "warning" => serde_json::from_value(params).map(N::Warning),
        "thread/queue/changed" => serde_json::from_value(params).map(N::QueueChanged),
        "thread/tokenUsage/updated" => serde_json::from_value(params).map(N::TokenUsageUpdated),
        _ => return None,
    };
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notification_method_round_trips() {
        let completed = serde_json::json!({
            "threadId": "t",
            "turn": {"id": "u", "items": [], "status": "completed", "error": null,
                     "startedAt": null, "completedAt": null, "durationMs": null}
        });
        let parsed = parse_notification("turn/completed", completed)
            .unwrap()
            .unwrap();
        assert_eq!(parsed.method(), "turn/completed");
        assert!(parse_notification("nope", Value::Null).is_none());
        assert!(
            parse_notification("thread/queue/changed", serde_json::json!({}))
                .unwrap()
                .is_err()
        );
    }
}
