//! Engine events to app-server notifications for one turn.
//!
//! [`TurnView`] remembers the items it has started so that every
//! `item/started` gets its `item/completed`, also when the turn ends early or a
//! stream is retried.

use std::collections::HashMap;
use std::time::Instant;

use tiller_app_server_protocol::{
    AgentMessageDeltaNotification, CommandExecutionOutputDeltaNotification, ErrorNotification,
    ItemCompletedNotification, ItemStartedNotification, ServerNotification, ThreadItem,
    ThreadStatus, ThreadStatusChangedNotification, Turn, TurnCompletedNotification, TurnError,
    TurnStartedNotification, TurnStatus, UserInput as WireInput,
};
use tiller_protocol::{EventMsg, ExecEndStatus};

use tiller_core::tools::shell::display_command;

use crate::convert::{now_ms, now_secs, wire_input};
use crate::outgoing::Outgoing;

/// A user message to show as an item when its turn starts (turn input, queued
/// messages).
#[derive(Debug, Clone)]
pub(crate) struct PendingUserMessage {
    pub(crate) content: Vec<WireInput>,
    pub(crate) client_id: Option<String>,
}

/// The notifications state of the running turn.
#[derive(Debug)]
pub(crate) struct TurnView {
    thread_id: String,
    turn_id: String,
    started: Instant,
    started_at: i64,
    next_item: u64,
    agent: Option<(String, String)>,
    reasoning: Option<(String, String)>,
    /// Open command items by call id: (item id, command, cwd).
    commands: HashMap<String, (String, String, String)>,
}

impl TurnView {
    /// A turn started: `thread/status/changed active`, `turn/started`, then its
    /// user message items.
    pub(crate) fn start(
        out: &Outgoing,
        thread_id: &str,
        turn_id: &str,
        input: Vec<PendingUserMessage>,
    ) -> TurnView {
        let mut view = TurnView {
            thread_id: thread_id.to_string(),
            turn_id: turn_id.to_string(),
            started: Instant::now(),
            started_at: now_secs(),
            next_item: 0,
            agent: None,
            reasoning: None,
            commands: HashMap::new(),
        };
        out.notify(&ServerNotification::ThreadStatusChanged(
            ThreadStatusChangedNotification {
                thread_id: view.thread_id.clone(),
                status: ThreadStatus::Active {
                    active_flags: Vec::new(),
                },
            },
        ));
        out.notify(&ServerNotification::TurnStarted(TurnStartedNotification {
            thread_id: view.thread_id.clone(),
            turn: view.turn(TurnStatus::InProgress, None),
        }));
        for message in input {
            view.user_message(out, message);
        }
        view
    }

    pub(crate) fn turn_id(&self) -> &str {
        &self.turn_id
    }

    fn turn(&self, status: TurnStatus, error: Option<TurnError>) -> Turn {
        let done = status != TurnStatus::InProgress;
        Turn {
            id: self.turn_id.clone(),
            items: Vec::new(),
            status,
            error,
            started_at: Some(self.started_at),
            completed_at: done.then(now_secs),
            duration_ms: done
                .then(|| i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)),
        }
    }

    fn item_id(&mut self) -> String {
        self.next_item += 1;
        format!("{}-item-{}", self.turn_id, self.next_item)
    }

    fn started(&self, out: &Outgoing, item: ThreadItem) {
        out.notify(&ServerNotification::ItemStarted(ItemStartedNotification {
            thread_id: self.thread_id.clone(),
            turn_id: self.turn_id.clone(),
            item,
            started_at_ms: now_ms(),
        }));
    }

    fn completed(&self, out: &Outgoing, item: ThreadItem) {
        out.notify(&ServerNotification::ItemCompleted(
            ItemCompletedNotification {
                thread_id: self.thread_id.clone(),
                turn_id: self.turn_id.clone(),
                item,
                completed_at_ms: now_ms(),
            },
        ));
    }

    /// A user message item (turn input, steer, queued message): started and completed.
    pub(crate) fn user_message(&mut self, out: &Outgoing, message: PendingUserMessage) {
        let item = ThreadItem::UserMessage {
            id: self.item_id(),
            content: message.content,
            client_id: message.client_id,
        };
        self.started(out, item.clone());
        self.completed(out, item);
    }

    fn close_agent(&mut self, out: &Outgoing) {
        if let Some((id, text)) = self.agent.take() {
            self.completed(out, ThreadItem::AgentMessage { id, text });
        }
    }

    /// The open reasoning item's text, starting the item if none is open.
    fn open_reasoning(&mut self, out: &Outgoing) -> &mut String {
        if self.reasoning.is_none() {
            let id = self.item_id();
            self.started(
                out,
                ThreadItem::Reasoning {
                    id: id.clone(),
                    summary: Vec::new(),
                    content: Vec::new(),
                },
            );
            self.reasoning = Some((id, String::new()));
        }
        &mut self.reasoning.get_or_insert_with(Default::default).1
    }

    fn close_reasoning(&mut self, out: &Outgoing) {
        if let Some((id, text)) = self.reasoning.take() {
            self.completed(
                out,
                ThreadItem::Reasoning {
                    id,
                    summary: vec![text],
                    content: Vec::new(),
                },
            );
        }
    }

    /// One engine event of this turn. Returns the turn's final status when the
    /// event was its terminal one (after `turn/completed` went out).
    pub(crate) fn event(&mut self, out: &Outgoing, msg: EventMsg) -> Option<TurnStatus> {
        match msg {
            EventMsg::AgentMessageDelta { delta } => {
                if self.agent.is_none() {
                    let id = self.item_id();
                    self.started(
                        out,
                        ThreadItem::AgentMessage {
                            id: id.clone(),
                            text: String::new(),
                        },
                    );
                    self.agent = Some((id, String::new()));
                }
                if let Some((id, text)) = &mut self.agent {
                    text.push_str(&delta);
                    out.notify(&ServerNotification::AgentMessageDelta(
                        AgentMessageDeltaNotification {
                            thread_id: self.thread_id.clone(),
                            turn_id: self.turn_id.clone(),
                            item_id: id.clone(),
                            delta,
                        },
                    ));
                }
            }
            EventMsg::AgentMessage { text } => {
                let id = match self.agent.take() {
                    Some((id, _)) => id,
                    None => {
                        let id = self.item_id();
                        self.started(
                            out,
                            ThreadItem::AgentMessage {
                                id: id.clone(),
                                text: String::new(),
                            },
                        );
                        id
                    }
                };
                self.completed(out, ThreadItem::AgentMessage { id, text });
            }
            EventMsg::ReasoningDelta { delta } => {
                self.open_reasoning(out).push_str(&delta);
            }
            EventMsg::Reasoning { text } => {
                *self.open_reasoning(out) = text;
                self.close_reasoning(out);
            }
            EventMsg::ExecCommandBegin {
                call_id,
                command,
                cwd,
            } => {
                let id = self.item_id();
                let command = display_command(&command);
                self.started(
                    out,
                    command_item(&id, &command, &cwd, "inProgress", None, None, None),
                );
                self.commands.insert(call_id, (id, command, cwd));
            }
            EventMsg::ExecCommandOutputDelta { call_id, chunk, .. } => {
                if let Some((id, _, _)) = self.commands.get(&call_id) {
                    out.notify(&ServerNotification::CommandExecutionOutputDelta(
                        CommandExecutionOutputDeltaNotification {
                            thread_id: self.thread_id.clone(),
                            turn_id: self.turn_id.clone(),
                            item_id: id.clone(),
                            delta: chunk,
                        },
                    ));
                }
            }
            EventMsg::ExecCommandEnd {
                call_id,
                command,
                exit_code,
                duration_ms,
                aggregated_output,
                status,
            } => {
                let status = match status {
                    ExecEndStatus::Completed => "completed",
                    ExecEndStatus::Denied => "declined",
                    ExecEndStatus::Failed | ExecEndStatus::TimedOut | ExecEndStatus::Aborted => {
                        "failed"
                    }
                };
                let (id, command, cwd) = match self.commands.remove(&call_id) {
                    Some(open) => open,
                    None => {
                        // Denied before it began: show it as one finished item.
                        let id = self.item_id();
                        let command = display_command(&command);
                        self.started(
                            out,
                            command_item(&id, &command, "", "inProgress", None, None, None),
                        );
                        (id, command, String::new())
                    }
                };
                let duration = i64::try_from(duration_ms).unwrap_or(i64::MAX);
                self.completed(
                    out,
                    command_item(
                        &id,
                        &command,
                        &cwd,
                        status,
                        exit_code,
                        Some(aggregated_output),
                        Some(duration),
                    ),
                );
            }
            EventMsg::StreamRetry {
                attempt,
                max,
                delay_ms,
                reason,
            } => {
                // The partial answer of the failed attempt is final as it stands.
                self.close_agent(out);
                self.close_reasoning(out);
                out.notify(&ServerNotification::Error(ErrorNotification {
                    thread_id: self.thread_id.clone(),
                    turn_id: self.turn_id.clone(),
                    error: TurnError {
                        message: format!(
                            "{reason}; retrying in {delay_ms} ms (attempt {attempt}/{max})"
                        ),
                        additional_details: None,
                    },
                    will_retry: true,
                }));
            }
            EventMsg::TurnCompleted { .. } => {
                return Some(self.finish(out, TurnStatus::Completed, None, &[]));
            }
            // Replaced or interrupted, the wire says `interrupted`; `error` is for failed turns.
            EventMsg::TurnAborted { unsent_input, .. } => {
                return Some(self.finish(out, TurnStatus::Interrupted, None, &unsent_input));
            }
            EventMsg::TurnFailed {
                error,
                unsent_input,
            } => {
                let error = TurnError {
                    message: error.message,
                    additional_details: error.http_status.map(|s| format!("HTTP {s}")),
                };
                return Some(self.finish(out, TurnStatus::Failed, Some(error), &unsent_input));
            }
            EventMsg::SessionConfigured { .. }
            | EventMsg::TurnStarted
            | EventMsg::ExecApprovalRequest { .. }
            | EventMsg::BackgroundEvent { .. }
            | EventMsg::SteerDelivered { .. }
            | EventMsg::ShutdownComplete => {}
        }
        None
    }

    /// Close every open item, go idle, and send the one `turn/completed`.
    fn finish(
        &mut self,
        out: &Outgoing,
        status: TurnStatus,
        error: Option<TurnError>,
        unsent: &[tiller_protocol::UserInput],
    ) -> TurnStatus {
        self.close_agent(out);
        self.close_reasoning(out);
        let mut open: Vec<(String, (String, String, String))> = self.commands.drain().collect();
        open.sort();
        for (_, (id, command, cwd)) in open {
            self.completed(
                out,
                command_item(&id, &command, &cwd, "failed", None, None, None),
            );
        }
        out.notify(&ServerNotification::ThreadStatusChanged(
            ThreadStatusChangedNotification {
                thread_id: self.thread_id.clone(),
                status: ThreadStatus::Idle,
            },
        ));
        out.notify(&ServerNotification::TurnCompleted(
            TurnCompletedNotification {
                thread_id: self.thread_id.clone(),
                turn: self.turn(status, error),
                unsent_input: wire_input(unsent),
            },
        ));
        status
    }
}

fn command_item(
    id: &str,
    command: &str,
    cwd: &str,
    status: &str,
    exit_code: Option<i32>,
    aggregated_output: Option<String>,
    duration_ms: Option<i64>,
) -> ThreadItem {
    ThreadItem::CommandExecution {
        id: id.to_string(),
        command: command.to_string(),
        cwd: cwd.to_string(),
        status: status.to_string(),
        command_actions: Vec::new(),
        exit_code,
        aggregated_output,
        duration_ms,
    }
}
