//! What the server says, folded into the state: notifications (only those
//! of this thread, and of its running turn), its requests (approvals and MCP
//! servers' questions), and the outcomes of the UI's own calls.

use std::time::Duration;

use serde_json::Value;
use tiller_client::ClientEvent;
use tiller_client::protocol::{
    RequestId, ServerNotification, Thread, ThreadItem, Turn, TurnStatus, UserInput,
};

use super::{
    App, Approval, Choice, ChoiceKind, Overlay, PendingSteer, ThreadInfo, TurnState,
    WaitingRequest, sandbox_label,
};
use crate::cell::{Cell, CellKind, Command, McpCall, Tone, TurnOutcome};
use crate::effect::{Effect, Outcome};

/// The most turns remembered as ended (their late events are dropped).
const FINISHED_KEPT: usize = 1024;

/// The text of a message's input items.
pub fn input_text(input: &[UserInput]) -> String {
    input
        .iter()
        .map(|piece| match piece {
            UserInput::Text { text } => text.clone(),
            UserInput::Mention { name, path } => format!("@{name} ({path})"),
            UserInput::Image { url } => format!("[image {}]", url.as_deref().unwrap_or("")),
            UserInput::LocalImage { path } => format!("[image {path}]"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl App {
    /// Something from the client.
    pub fn client_event(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Notification(notification) => self.notification(notification),
            ClientEvent::ServerRequest { id, method, params } => {
                self.server_request(id, &method, &params);
            }
            ClientEvent::Other { .. } => {}
            ClientEvent::Disconnected { requested, .. } => {
                if !requested {
                    self.notice(
                        "the app-server went away; restart tiller and `tiller resume --last` to go on",
                        Tone::Error,
                    );
                    self.turn = TurnState::Idle;
                }
            }
        }
    }

    /// A request of the server's: an approval or an MCP server's question
    /// to ask, or one refused (an elicitation that does not parse is
    /// refused too, which the server takes as a cancel).
    pub fn server_request(&mut self, id: RequestId, method: &str, params: &Value) {
        let ours = params.get("threadId").and_then(Value::as_str) == self.thread_id();
        let request = match Approval::from_request(id.clone(), method, params) {
            Some(approval) => Some(WaitingRequest::Approval(approval)),
            None => self.elicitation(&id, method, params),
        };
        match request {
            Some(request) if ours => self.ask(request),
            // Another thread's: a client that has it open answers.
            Some(_) => {}
            None => self.effect(Effect::Refuse { request_id: id }),
        }
    }

    pub(super) fn thread_id(&self) -> Option<&str> {
        self.thread.as_ref().map(|t| t.id.as_str())
    }

    /// A notification: dropped unless it is about this thread, and (for a
    /// turn's events) about the turn that runs.
    pub fn notification(&mut self, notification: ServerNotification) {
        use ServerNotification as N;
        if let N::McpServerStatusUpdated(update) = notification {
            // Kept even before a thread is open: see `mcp_server_status`.
            self.mcp_server_status(update);
            return;
        }
        let Some(thread_id) = self.thread_id().map(str::to_owned) else {
            return;
        };
        let ours = |id: &str| id == thread_id;
        match notification {
            N::TurnStarted(n) if ours(&n.thread_id) => self.turn_running(&n.turn.id),
            N::TurnCompleted(n) if ours(&n.thread_id) => {
                let unsent = input_text(&n.unsent_input);
                self.turn_completed(&n.turn, unsent);
            }
            N::ItemStarted(n) if ours(&n.thread_id) && self.is_current(&n.turn_id) => {
                self.item(n.item, false);
            }
            N::ItemCompleted(n) if ours(&n.thread_id) && self.is_current(&n.turn_id) => {
                self.item(n.item, true);
            }
            N::AgentMessageDelta(n) if ours(&n.thread_id) && self.is_current(&n.turn_id) => {
                self.answer_delta(n.item_id, &n.delta);
            }
            N::CommandExecutionOutputDelta(n)
                if ours(&n.thread_id) && self.is_current(&n.turn_id) =>
            {
                if let Some(CellKind::Command(command)) = self.transcript.item_mut(&n.item_id) {
                    command.push_output(&n.delta);
                }
            }
            N::McpToolCallProgress(n) if ours(&n.thread_id) && self.is_current(&n.turn_id) => {
                self.mcp_call_progress(n.item_id, n.message);
            }
            // A failure that ends the turn is said once, by its end line.
            N::Error(n) if ours(&n.thread_id) && self.is_current(&n.turn_id) && n.will_retry => {
                self.notice(n.error.message, Tone::Retry);
            }
            N::Warning(n) if n.thread_id.as_deref().is_none_or(ours) => {
                self.notice(n.message, Tone::Warning);
            }
            N::QueueChanged(n) if ours(&n.thread_id) => self.effect(Effect::QueueRefresh),
            N::TokenUsageUpdated(n) if ours(&n.thread_id) => self.tokens = Some(n.token_usage),
            N::TurnDiffUpdated(n) if ours(&n.thread_id) => self.last_diff = Some(n.diff),
            N::TurnPlanUpdated(n) if ours(&n.thread_id) && self.is_current(&n.turn_id) => {
                let steps = n.plan.into_iter().map(|s| (s.step, s.status)).collect();
                self.transcript.push(Cell::new(CellKind::Plan {
                    explanation: n.explanation,
                    steps,
                }));
            }
            N::ThreadReverted(n) if ours(&n.thread_id) => {
                if self.own_reverts > 0 {
                    self.own_reverts -= 1;
                } else {
                    self.effect(Effect::Reload);
                }
            }
            N::ServerRequestResolved(n) if ours(&n.thread_id) => {
                self.requests.retain(|r| r.request_id() != &n.request_id);
                let shown = self.overlay.as_ref().and_then(Overlay::request);
                if shown.is_some_and(|(id, _)| id == &n.request_id) {
                    self.overlay = None;
                    self.next_request();
                }
            }
            N::ThreadClosed(n) | N::ThreadDeleted(n) if ours(&n.thread_id) => {
                self.notice("this session was closed by another client", Tone::Warning);
            }
            _ => {}
        }
    }

    /// More of an answer; a delta for an answer not shown yet starts it.
    fn answer_delta(&mut self, item_id: String, delta: &str) {
        if !self.transcript.append_answer(&item_id, delta) && !self.transcript.has_item(&item_id) {
            self.transcript.push(Cell {
                item_id: Some(item_id),
                kind: CellKind::Agent {
                    text: delta.to_owned(),
                },
            });
        }
    }

    /// Whether events of `turn_id` belong on screen: the running turn's.
    fn is_current(&mut self, turn_id: &str) -> bool {
        match &self.turn {
            TurnState::Running { id, .. } => id == turn_id,
            // `turn/started` always comes first; while the UI waits for its
            // own `turn/start` answer, a turn it does not know is not shown.
            TurnState::Starting { .. } | TurnState::Idle => false,
        }
    }

    fn item(&mut self, item: ThreadItem, completed: bool) {
        let id = item.id().to_owned();
        let steer = match &item {
            ThreadItem::UserMessage {
                client_id: Some(client_id),
                ..
            } => self
                .pending_steers
                .iter()
                .position(|p| &p.client_id == client_id),
            ThreadItem::UserMessage { .. } => None,
            // The model speaking or thinking anew: the steers the server
            // accepted before were in the request that produced it. (A
            // command or an edit starting may still be the previous answer's
            // tool call; those steers join the transcript at the turn's end
            // at the latest.)
            ThreadItem::AgentMessage { .. } | ThreadItem::Reasoning { .. } => {
                if !completed && !self.transcript.has_item(&id) {
                    self.steers_delivered();
                }
                None
            }
            ThreadItem::CommandExecution { .. }
            | ThreadItem::FileChange { .. }
            | ThreadItem::ContextCompaction { .. }
            | ThreadItem::McpToolCall { .. } => None,
        };
        if completed && self.mcp_progress.as_ref().is_some_and(|p| p.item_id == id) {
            self.mcp_progress = None;
        }
        let kind = item_kind(item, completed);
        if let Some(index) = steer {
            // Shown once the model has it; until then it waits under the composer.
            self.pending_steers[index].item = Some((id, kind));
            return;
        }
        match self.transcript.item_mut(&id) {
            Some(existing) => {
                if completed {
                    merge(existing, kind);
                }
            }
            None => self.transcript.push(Cell {
                item_id: Some(id),
                kind,
            }),
        }
    }

    /// The steers the server showed as accepted have reached the model: into
    /// the transcript they go, in the order they were typed.
    fn steers_delivered(&mut self) {
        let (delivered, waiting): (Vec<PendingSteer>, Vec<PendingSteer>) =
            std::mem::take(&mut self.pending_steers)
                .into_iter()
                .partition(|p| p.item.is_some());
        self.pending_steers = waiting;
        for steer in delivered {
            if let Some((id, kind)) = steer.item {
                self.transcript.push(Cell {
                    item_id: Some(id),
                    kind,
                });
            }
        }
    }

    fn turn_completed(&mut self, turn: &Turn, unsent: String) {
        let mine = match &self.turn {
            TurnState::Running { id, .. } => id == &turn.id,
            // The answer to turn/start is still on its way.
            TurnState::Starting { .. } => !self.finished.contains(&turn.id),
            TurnState::Idle => false,
        };
        if !mine || self.finished.contains(&turn.id) {
            return;
        }
        if self.finished.len() >= FINISHED_KEPT {
            self.finished.clear();
        }
        self.finished.insert(turn.id.clone());
        if !self.turn_ids.iter().any(|t| t == &turn.id) {
            self.turn_ids.push(turn.id.clone());
        }
        // This UI's steer text the model never saw is sent at once, as the
        // next turn: what the server handed back, and what waited for the
        // turn's id. Another client's unsent text is that client's to send.
        // A steer accepted and not handed back reached the model; one not yet
        // answered stays pending (a refusal queues it).
        let (resend, rest): (Vec<PendingSteer>, Vec<PendingSteer>) =
            std::mem::take(&mut self.pending_steers)
                .into_iter()
                .partition(|p| !p.sent || unsent.contains(&p.text));
        self.pending_steers = rest;
        self.steers_delivered();
        let why = self.interrupting.take();
        self.interrupt_when_started = false;
        self.turn = TurnState::Idle;
        self.transcript
            .push(Cell::new(CellKind::TurnEnd(outcome(turn, why))));
        self.mcp_progress = None;
        // Requests of the ended turn are void (the server resolves them too).
        let ended = Some(turn.id.as_str());
        self.requests.retain(|r| r.turn_id() != ended);
        let shown = self.overlay.as_ref().and_then(Overlay::request);
        if shown.is_some_and(|(_, turn_id)| turn_id == ended) {
            self.overlay = None;
            self.next_request();
        }

        if !resend.is_empty() {
            let text = resend
                .iter()
                .map(|p| p.text.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            let client_id = self.client_id();
            self.turn = TurnState::Starting {
                since: std::time::Instant::now(),
            };
            self.effect(Effect::StartTurn { text, client_id });
        }
    }

    /// The outcome of one of the UI's calls.
    pub fn outcome(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::ThreadOpened(opened) => {
                let previous = self.thread.take().map(|t| t.id);
                self.thread = Some(ThreadInfo {
                    id: opened.thread.id.clone(),
                    model: opened.model.clone(),
                    cwd: opened.cwd.clone(),
                    approval_policy: opened.approval_policy.clone(),
                    sandbox: sandbox_label(&opened.sandbox),
                });
                self.overlay = None;
                self.requests.clear();
                self.show_thread(&opened.thread);
                self.mcp_thread_opened(previous);
                self.effect(Effect::QueueRefresh);
                if let Some(text) = self.first_prompt.take() {
                    self.send(text);
                }
            }
            Outcome::OpenFailed(message) => {
                self.notice(message, Tone::Error);
                if self.thread.is_none() {
                    self.notice(
                        "no session is open: /new tries again, /resume opens a saved one",
                        Tone::Info,
                    );
                }
            }
            Outcome::Reloaded(thread) => self.show_thread(&thread),
            Outcome::Reverted { thread, report, ok } => {
                if !ok {
                    self.own_reverts = self.own_reverts.saturating_sub(1);
                }
                if let Some(thread) = thread {
                    self.show_thread(&thread);
                }
                self.notice(report, if ok { Tone::Info } else { Tone::Error });
            }
            Outcome::TurnStarted { turn_id } => self.turn_running(&turn_id),
            Outcome::TurnNotStarted { text, error } => {
                if matches!(self.turn, TurnState::Starting { .. }) {
                    self.turn = TurnState::Idle;
                }
                self.notice(format!("not sent: {error}"), Tone::Error);
                self.give_back(&text);
            }
            Outcome::SteerRejected { text, client_id } => {
                let was_pending = self.pending_steers.iter().any(|p| p.client_id == client_id);
                self.pending_steers.retain(|p| p.client_id != client_id);
                if was_pending {
                    self.notice(
                        "the turn ended before the message reached it: queued for the next turn",
                        Tone::Info,
                    );
                    self.enqueue(text);
                }
            }
            Outcome::QueueAddFailed { text, error } => {
                self.notice(format!("not queued: {error}"), Tone::Error);
                self.give_back(&text);
            }
            Outcome::QueueTaken { text, deleted } => {
                if deleted {
                    self.give_back(&text);
                } else {
                    self.flash = Some("that message had already started".into());
                }
            }
            Outcome::Queue(queue) => self.queue = queue,
            Outcome::Sessions(rows) => {
                if let Some(Overlay::Picker(picker)) = &mut self.overlay {
                    picker.rows = Some(rows);
                    picker.selected = 0;
                }
            }
            Outcome::SessionEnded { id, ended } => {
                if let Some(Overlay::Picker(picker)) = &mut self.overlay
                    && let Some(row) = picker.rows.iter_mut().flatten().find(|r| r.id == id)
                {
                    row.ended = Some(ended);
                }
            }
            Outcome::Models(models) => {
                if let Some(Overlay::Choice(Choice {
                    kind: ChoiceKind::Model,
                    options,
                    selected,
                })) = &mut self.overlay
                {
                    let current = self.thread.as_ref().map(|t| t.model.clone());
                    *selected = models
                        .iter()
                        .position(|m| Some(m) == current.as_ref())
                        .unwrap_or(0);
                    *options = models.into_iter().map(|m| (m, String::new())).collect();
                }
            }
            Outcome::SettingsChanged {
                model,
                approval_policy,
            } => {
                if let Some(thread) = &mut self.thread {
                    if let Some(model) = model {
                        thread.model = model;
                    }
                    if let Some(policy) = approval_policy {
                        thread.approval_policy = policy;
                    }
                }
            }
            Outcome::Notice(text, tone) => self.notice(text, tone),
        }
    }

    /// Text that did not go anywhere goes back into the composer, before
    /// whatever is being typed.
    fn give_back(&mut self, text: &str) {
        let typed = self.composer.text().to_owned();
        if typed.trim().is_empty() {
            self.composer.set(text);
        } else {
            self.composer.set(&format!("{text}\n{typed}"));
        }
    }

    /// Show `thread`'s turns, as saved; a turn still running becomes the
    /// running turn.
    fn show_thread(&mut self, thread: &Thread) {
        self.transcript.clear();
        self.turn_ids.clear();
        self.pending_steers.clear();
        self.mcp_progress = None;
        self.turn = TurnState::Idle;
        for turn in &thread.turns {
            self.turn_ids.push(turn.id.clone());
            for item in &turn.items {
                let id = item.id().to_owned();
                self.transcript.push(Cell {
                    item_id: Some(id),
                    kind: item_kind(item.clone(), true),
                });
            }
            if turn.status == TurnStatus::InProgress {
                self.turn_running(&turn.id);
            } else {
                self.finished.insert(turn.id.clone());
                self.transcript
                    .push(Cell::new(CellKind::TurnEnd(outcome(turn, None))));
            }
        }
    }
}

/// How a turn ended, in its end line.
fn outcome(turn: &Turn, why: Option<String>) -> TurnOutcome {
    let error = turn.error.as_ref().map(|e| match &e.additional_details {
        Some(details) if !details.is_empty() => format!("{} ({details})", e.message),
        Some(_) | None => e.message.clone(),
    });
    match turn.status {
        TurnStatus::Completed | TurnStatus::InProgress => TurnOutcome::Completed(
            turn.duration_ms
                .and_then(|ms| u64::try_from(ms).ok())
                .map(Duration::from_millis),
        ),
        TurnStatus::Interrupted => TurnOutcome::Interrupted(
            why.or(error)
                .unwrap_or_else(|| "stopped by another client or by the server".to_owned()),
        ),
        TurnStatus::Failed => {
            TurnOutcome::Failed(error.unwrap_or_else(|| "the turn failed".to_owned()))
        }
    }
}

/// A protocol item as a cell (`completed`: as its `item/completed` has it).
fn item_kind(item: ThreadItem, completed: bool) -> CellKind {
    match item {
        ThreadItem::UserMessage { content, .. } => CellKind::User {
            text: input_text(&content),
        },
        ThreadItem::AgentMessage { text, .. } => CellKind::Agent { text },
        ThreadItem::Reasoning { summary, .. } => CellKind::Reasoning { summary },
        ThreadItem::CommandExecution {
            command,
            status,
            exit_code,
            aggregated_output,
            duration_ms,
            ..
        } => {
            let mut cell = Command {
                command,
                status,
                exit_code,
                duration_ms,
                ..Command::default()
            };
            cell.push_output(aggregated_output.as_deref().unwrap_or(""));
            CellKind::Command(cell)
        }
        ThreadItem::FileChange {
            changes, status, ..
        } => CellKind::FileChange { changes, status },
        ThreadItem::ContextCompaction { status, .. } => CellKind::Notice {
            text: match (completed, status.as_deref()) {
                (false, _) => "compacting the conversation…",
                // A server that sends no status (Codex) completes only
                // compactions that happened.
                (true, Some("completed") | None) => {
                    "conversation compacted: the model continues from its summary"
                }
                (true, Some(_)) => "compaction stopped: the conversation is as it was",
            }
            .to_owned(),
            tone: Tone::Info,
        },
        ThreadItem::McpToolCall {
            server,
            tool,
            status,
            arguments,
            result,
            error,
            duration_ms,
            ..
        } => CellKind::McpCall(McpCall {
            server,
            tool,
            arguments,
            status,
            result,
            error: error.map(|e| match e.get("message").and_then(Value::as_str) {
                Some(message) => message.to_owned(),
                None => e.to_string(),
            }),
            duration_ms,
        }),
    }
}

/// A completed item into the cell that showed it live. A command keeps the
/// output it streamed if the completed item has none.
fn merge(existing: &mut CellKind, completed: CellKind) {
    match (existing, completed) {
        (CellKind::Command(live), CellKind::Command(done)) => {
            live.status = done.status;
            live.exit_code = done.exit_code;
            live.duration_ms = done.duration_ms;
            if !done.output.is_empty() {
                live.output = done.output;
            }
        }
        (existing, completed) => *existing = completed,
    }
}
