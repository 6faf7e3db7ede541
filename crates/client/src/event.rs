//! What the client reports on its event stream.

use std::process::ExitStatus;

use serde_json::Value;
use tiller_app_server_protocol::{RequestId, ServerNotification, ServerRequest};

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
    /// A request of the server's (an approval such as
    /// `item/commandExecution/requestApproval`, or an MCP server's
    /// `mcpServer/elicitation/request`), when
    /// [`ClientOptions::server_requests`](crate::ClientOptions::server_requests)
    /// is on; [`parse_server_request`] reads it. The server waits for the
    /// answer: [`Client::respond`](crate::Client::respond) (or
    /// [`Client::respond_elicitation`](crate::Client::respond_elicitation))
    /// with this `id`. A request the server stops waiting for (the turn was
    /// interrupted) is followed by `serverRequest/resolved`; answering it
    /// then changes nothing.
    ServerRequest {
        /// Its id, to answer with.
        id: RequestId,
        /// The method.
        method: String,
        /// The params, as they came.
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
        "item/mcpToolCall/progress" => serde_json::from_value(params).map(N::McpToolCallProgress),
        "mcpServer/startupStatus/updated" => {
            serde_json::from_value(params).map(N::McpServerStatusUpdated)
        }
        "error" => serde_json::from_value(params).map(N::Error),
        "warning" => serde_json::from_value(params).map(N::Warning),
        "thread/queue/changed" => serde_json::from_value(params).map(N::QueueChanged),
        "thread/tokenUsage/updated" => serde_json::from_value(params).map(N::TokenUsageUpdated),
        "serverRequest/resolved" => serde_json::from_value(params).map(N::ServerRequestResolved),
        "thread/archived" => serde_json::from_value(params).map(N::ThreadArchived),
        "thread/unarchived" => serde_json::from_value(params).map(N::ThreadUnarchived),
        "thread/deleted" => serde_json::from_value(params).map(N::ThreadDeleted),
        "thread/closed" => serde_json::from_value(params).map(N::ThreadClosed),
        "thread/name/updated" => serde_json::from_value(params).map(N::ThreadNameUpdated),
        "thread/reverted" => serde_json::from_value(params).map(N::ThreadReverted),
        "turn/diff/updated" => serde_json::from_value(params).map(N::TurnDiffUpdated),
        "turn/plan/updated" => serde_json::from_value(params).map(N::TurnPlanUpdated),
        _ => return None,
    };
    Some(parsed)
}

/// Read a request of the server's ([`ClientEvent::ServerRequest`]) by its
/// method name: `None` for a method this crate does not know (refuse it
/// with an error: the server takes that as a no), an error for params of
/// the wrong shape.
pub fn parse_server_request(
    method: &str,
    params: Value,
) -> Option<Result<ServerRequest, serde_json::Error>> {
    use ServerRequest as R;
    let parsed = match method {
        "item/commandExecution/requestApproval" => {
            serde_json::from_value(params).map(R::CommandApproval)
        }
        "item/fileChange/requestApproval" => {
            serde_json::from_value(params).map(R::FileChangeApproval)
        }
        "mcpServer/elicitation/request" => {
            serde_json::from_value(params).map(R::McpServerElicitation)
        }
        _ => return None,
    };
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;
    use tiller_app_server_protocol::{
        AgentMessageDeltaNotification, CommandExecutionOutputDeltaNotification, ErrorNotification,
        ItemCompletedNotification, ItemStartedNotification, McpServerStartupState,
        McpServerStatusUpdatedNotification, McpToolCallProgressNotification,
        QueueChangedNotification, ServerRequestResolvedNotification, Thread, ThreadIdNotification,
        ThreadItem, ThreadNameUpdatedNotification, ThreadStartedNotification, ThreadStatus,
        ThreadStatusChangedNotification, ThreadTokenUsage, TokenUsageBreakdown,
        TokenUsageUpdatedNotification, Turn, TurnCompletedNotification,
        TurnDiffUpdatedNotification, TurnError, TurnPlanStep, TurnPlanStepStatus,
        TurnPlanUpdatedNotification, TurnStartedNotification, TurnStatus, WarningNotification,
    };

    use super::*;

    /// One notification of each kind, with every optional field filled.
    fn one_of_each() -> Vec<ServerNotification> {
        use ServerNotification as N;
        let turn = Turn {
            id: "u".to_owned(),
            items: vec![ThreadItem::AgentMessage {
                id: "i".to_owned(),
                text: "hi".to_owned(),
            }],
            status: TurnStatus::Completed,
            error: None,
            started_at: Some(1),
            completed_at: Some(2),
            duration_ms: Some(1000),
        };
        let thread = Thread {
            id: "t".to_owned(),
            name: Some("name".to_owned()),
            session_id: "t".to_owned(),
            preview: "hello".to_owned(),
            cli_version: "0.0.0".to_owned(),
            created_at: 1,
            updated_at: 2,
            cwd: "/w".to_owned(),
            ephemeral: false,
            model: Some("m".to_owned()),
            model_provider: "mock".to_owned(),
            project_id: None,
            source: "appServer".to_owned(),
            status: ThreadStatus::Idle,
            turns: vec![turn.clone()],
        };
        let item = ThreadItem::CommandExecution {
            id: "c".to_owned(),
            command: "ls".to_owned(),
            cwd: "/w".to_owned(),
            status: "completed".to_owned(),
            command_actions: Vec::new(),
            exit_code: Some(0),
            aggregated_output: Some("out".to_owned()),
            duration_ms: Some(5),
        };
        let thread_id = || ThreadIdNotification {
            thread_id: "t".to_owned(),
        };
        vec![
            N::ThreadStarted(ThreadStartedNotification { thread }),
            N::ThreadStatusChanged(ThreadStatusChangedNotification {
                thread_id: "t".to_owned(),
                status: ThreadStatus::Active {
                    active_flags: vec!["waitingOnApproval".to_owned()],
                },
            }),
            N::TurnStarted(TurnStartedNotification {
                thread_id: "t".to_owned(),
                turn: turn.clone(),
            }),
            N::TurnCompleted(TurnCompletedNotification {
                thread_id: "t".to_owned(),
                turn,
                unsent_input: Vec::new(),
            }),
            N::ItemStarted(ItemStartedNotification {
                thread_id: "t".to_owned(),
                turn_id: "u".to_owned(),
                item: item.clone(),
                started_at_ms: 1,
            }),
            N::ItemCompleted(ItemCompletedNotification {
                thread_id: "t".to_owned(),
                turn_id: "u".to_owned(),
                item,
                completed_at_ms: 2,
            }),
            N::AgentMessageDelta(AgentMessageDeltaNotification {
                thread_id: "t".to_owned(),
                turn_id: "u".to_owned(),
                item_id: "a".to_owned(),
                delta: "hi".to_owned(),
            }),
            N::CommandExecutionOutputDelta(CommandExecutionOutputDeltaNotification {
                thread_id: "t".to_owned(),
                turn_id: "u".to_owned(),
                item_id: "c".to_owned(),
                delta: "out".to_owned(),
            }),
            N::McpToolCallProgress(McpToolCallProgressNotification {
                thread_id: "t".to_owned(),
                turn_id: "u".to_owned(),
                item_id: "m".to_owned(),
                message: "half way".to_owned(),
            }),
            N::McpServerStatusUpdated(McpServerStatusUpdatedNotification {
                thread_id: Some("t".to_owned()),
                name: "docs".to_owned(),
                environment_id: None,
                status: McpServerStartupState::Failed,
                error: Some("it did not start".to_owned()),
                failure_reason: None,
            }),
            N::Error(ErrorNotification {
                thread_id: "t".to_owned(),
                turn_id: "u".to_owned(),
                error: TurnError {
                    message: "boom".to_owned(),
                    additional_details: Some("more".to_owned()),
                },
                will_retry: true,
            }),
            N::Warning(WarningNotification {
                thread_id: Some("t".to_owned()),
                message: "careful".to_owned(),
            }),
            N::QueueChanged(QueueChangedNotification {
                thread_id: "t".to_owned(),
            }),
            N::TokenUsageUpdated(TokenUsageUpdatedNotification {
                thread_id: "t".to_owned(),
                turn_id: "u".to_owned(),
                token_usage: ThreadTokenUsage {
                    total: TokenUsageBreakdown::default(),
                    last: TokenUsageBreakdown::default(),
                    model_context_window: Some(1000),
                },
            }),
            N::ServerRequestResolved(ServerRequestResolvedNotification {
                thread_id: "t".to_owned(),
                request_id: RequestId::Integer(7),
            }),
            N::ThreadArchived(thread_id()),
            N::ThreadUnarchived(thread_id()),
            N::ThreadDeleted(thread_id()),
            N::ThreadClosed(thread_id()),
            N::ThreadNameUpdated(ThreadNameUpdatedNotification {
                thread_id: "t".to_owned(),
                thread_name: Some("name".to_owned()),
            }),
            N::ThreadReverted(thread_id()),
            N::TurnDiffUpdated(TurnDiffUpdatedNotification {
                thread_id: "t".to_owned(),
                turn_id: "u".to_owned(),
                diff: "--- a\n+++ b\n".to_owned(),
            }),
            N::TurnPlanUpdated(TurnPlanUpdatedNotification {
                thread_id: "t".to_owned(),
                turn_id: "u".to_owned(),
                explanation: None,
                plan: vec![TurnPlanStep {
                    step: "read".to_owned(),
                    status: TurnPlanStepStatus::InProgress,
                }],
            }),
        ]
    }

    #[test]
    fn every_notification_method_round_trips() {
        let samples = one_of_each();
        let mut methods = BTreeSet::new();
        for sample in samples {
            // A new variant fails to compile here until it has a sample above.
            match &sample {
                ServerNotification::ThreadStarted(_)
                | ServerNotification::ThreadStatusChanged(_)
                | ServerNotification::TurnStarted(_)
                | ServerNotification::TurnCompleted(_)
                | ServerNotification::ItemStarted(_)
                | ServerNotification::ItemCompleted(_)
                | ServerNotification::AgentMessageDelta(_)
                | ServerNotification::CommandExecutionOutputDelta(_)
                | ServerNotification::McpToolCallProgress(_)
                | ServerNotification::McpServerStatusUpdated(_)
                | ServerNotification::Error(_)
                | ServerNotification::Warning(_)
                | ServerNotification::QueueChanged(_)
                | ServerNotification::TokenUsageUpdated(_)
                | ServerNotification::ServerRequestResolved(_)
                | ServerNotification::ThreadArchived(_)
                | ServerNotification::ThreadUnarchived(_)
                | ServerNotification::ThreadDeleted(_)
                | ServerNotification::ThreadClosed(_)
                | ServerNotification::ThreadNameUpdated(_)
                | ServerNotification::ThreadReverted(_)
                | ServerNotification::TurnDiffUpdated(_)
                | ServerNotification::TurnPlanUpdated(_) => {}
            }
            let method = sample.method();
            let parsed = parse_notification(method, sample.params())
                .unwrap_or_else(|| panic!("{method} is not known"))
                .unwrap_or_else(|e| panic!("{method}: {e}"));
            assert_eq!(parsed, sample, "{method}");
            methods.insert(method);
        }
        assert_eq!(methods.len(), 23, "one sample per variant: {methods:?}");
    }

    #[test]
    fn every_server_request_method_round_trips() {
        use tiller_app_server_protocol::{
            CommandApprovalParams, FileChangeApprovalParams, McpServerElicitationRequestParams,
        };
        let samples = vec![
            ServerRequest::CommandApproval(CommandApprovalParams {
                kind: "command".to_owned(),
                thread_id: "t".to_owned(),
                turn_id: "u".to_owned(),
                item_id: "c".to_owned(),
                started_at_ms: 1,
                approval_id: None,
                environment_id: None,
                reason: Some("why".to_owned()),
                command: Some("ls".to_owned()),
                cwd: Some("/w".to_owned()),
                available_decisions: vec!["accept".to_owned(), "decline".to_owned()],
            }),
            ServerRequest::FileChangeApproval(FileChangeApprovalParams {
                thread_id: "t".to_owned(),
                turn_id: "u".to_owned(),
                item_id: "f".to_owned(),
                started_at_ms: 1,
                reason: None,
                grant_root: Some("/elsewhere".to_owned()),
            }),
            ServerRequest::McpServerElicitation(McpServerElicitationRequestParams {
                thread_id: "t".to_owned(),
                turn_id: None,
                server_name: "docs".to_owned(),
                environment_id: None,
                mode: "form".to_owned(),
                meta: None,
                message: "Your name?".to_owned(),
                requested_schema: json!({"type": "object", "properties": {
                    "name": {"type": "string"}}}),
            }),
        ];
        let mut methods = BTreeSet::new();
        for sample in samples {
            // A new variant fails to compile here until it has a sample above.
            match &sample {
                ServerRequest::CommandApproval(_)
                | ServerRequest::FileChangeApproval(_)
                | ServerRequest::McpServerElicitation(_) => {}
            }
            let method = sample.method();
            let parsed = parse_server_request(method, sample.params())
                .unwrap_or_else(|| panic!("{method} is not known"))
                .unwrap_or_else(|e| panic!("{method}: {e}"));
            assert_eq!(parsed, sample, "{method}");
            assert_eq!(parsed.thread_id(), "t");
            methods.insert(method);
        }
        assert_eq!(methods.len(), 3, "one sample per variant: {methods:?}");
        assert!(parse_server_request("item/tool/call", json!({})).is_none());
    }

    #[test]
    fn unknown_methods_and_misshapen_params_are_told_apart() {
        assert!(parse_notification("nope", Value::Null).is_none());
        assert!(
            parse_notification("thread/queue/changed", json!({}))
                .unwrap()
                .is_err()
        );
        assert!(
            parse_notification("thread/closed", json!({"threadId": 1}))
                .unwrap()
                .is_err()
        );
    }
}
