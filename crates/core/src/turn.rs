//! One turn: model requests, tool calls and steer delivery, until the model is
//! done, the turn fails, or its cancellation token fires.
//!
//! The turn task never emits its own terminal event; it returns a [`TurnOutcome`]
//! and the session actor (`session.rs`) emits it. On cancellation the task first
//! makes the history valid again (I1): the running tool's aborted output, aborted
//! outputs for calls it never reached, and the partial assistant text the user
//! saw. The actor then adds the interrupted marker and emits `TurnAborted`.
//!
//! What the turn shows a person goes out as items (`TurnItem`): the model's
//! messages and reasoning here, each tool's own items through its
//! [`ToolContext`]. Every item started is completed before the task returns: a
//! message cut short completes with the text the person saw; a message of a
//! response that broke off and is retried completes empty (it was not the
//! answer, and it is not in the history).

use std::sync::Arc;

use futures::StreamExt;
use tiller_model::retry::{Retry, RetryBudget, RetryState};
use tiller_model::{ModelError, ModelRequest, OutputItem, ResponseEvent};
use tiller_protocol::{
    CallKind, CompactionTrigger, ErrorInfo, EventMsg, ReasoningSummary, ResponseItem, TokenUsage,
    TurnItem, TurnItemKind,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::compaction::{Compaction, is_context_overflow};
use crate::conversation::Conversation;
use crate::events::TurnEmitter;
use crate::history::ABORTED_BEFORE_OUTPUT;
use crate::inbox::TurnInbox;
use crate::items::TurnItems;
use crate::session::CheckpointGate;
use crate::tools::{ToolCall, ToolContext, ToolOutput};

/// How a turn task ended.
#[derive(Debug)]
pub(crate) enum TurnOutcome {
    /// The model finished with no more calls and no steer input waiting.
    Completed {
        last_agent_message: Option<String>,
        usage: TokenUsage,
    },
    /// A fatal error or an exhausted retry budget.
    Failed(ErrorInfo),
    /// The cancellation token fired; the history has been closed.
    Cancelled,
}

/// Everything a turn task needs.
pub(crate) struct TurnRuntime {
    pub(crate) conversation: Arc<Conversation>,
    pub(crate) inbox: Arc<TurnInbox>,
    pub(crate) cancel: CancellationToken,
    pub(crate) emitter: TurnEmitter,
    pub(crate) items: TurnItems,
    /// A compaction turn: the model is asked for a summary, with no tools.
    pub(crate) compact: bool,
    /// Opens when the workspace has been snapshotted: tools wait for it.
    pub(crate) checkpoint: CheckpointGate,
}

/// A message or reasoning item the model is streaming.
#[derive(Debug, Default)]
struct OpenText {
    id: String,
    /// The id again, shared by every delta event (no copy per delta).
    shared_id: Arc<str>,
    text: String,
}

/// What one model response gave.
#[derive(Debug, Default)]
struct Sample {
    items: Vec<SampledItem>,
    /// The message being streamed when the response was cut.
    message: Option<OpenText>,
    /// The reasoning being streamed when the response was cut.
    reasoning: Option<OpenText>,
    usage: TokenUsage,
}

/// Why sampling stopped without a sample.
enum SampleStop {
    Cancelled(Sample),
    Failed(ErrorInfo),
}

/// One attempt's result.
enum Attempt {
    Done(Sample),
    Cancelled(Sample),
    Error(ModelError),
}

/// Run a turn whose input the session has recorded.
pub(crate) async fn run_turn(turn: TurnRuntime) -> TurnOutcome {
    let mut steer_rx = turn.inbox.subscribe_steer();
    let mut usage = TokenUsage::default();
    let mut last_agent_message = None;
    let mut missing_output_retried = false;
    if turn.compact {
        // A compaction turn is the compaction step alone.
        return match turn.compact(CompactionTrigger::Manual).await {
            Compaction::Done => TurnOutcome::Completed {
                last_agent_message: None,
                usage,
            },
            Compaction::Cancelled => TurnOutcome::Cancelled,
            Compaction::Failed(error) => TurnOutcome::Failed(error),
        };
    }
    loop {
        if turn.cancel.is_cancelled() {
            return turn.close_cancelled(Sample::default());
        }
        let sample = match turn
            .sample(&mut steer_rx, &mut missing_output_retried)
            .await
        {
            Ok(sample) => sample,
            Err(SampleStop::Cancelled(partial)) => return turn.close_cancelled(partial),
            Err(SampleStop::Failed(error)) => return TurnOutcome::Failed(error),
        };
        usage.add(&sample.usage);
        let sample_usage = sample.usage;
        let calls = turn.record_sample(sample, &mut last_agent_message);
        let history_len = turn.conversation.history().items().len();
        turn.conversation
            .context
            .note_usage(&sample_usage, history_len);
        if calls.is_empty() {
            if turn.inbox.close_if_no_steer() {
                return TurnOutcome::Completed {
                    last_agent_message,
                    usage,
                };
            }
            continue;
        }
        for call in calls {
            let output = turn.run_call(&call).await;
            match output {
                ToolOutput::Output(output) => {
                    turn.record(ResponseItem::output_of(call.kind, &call.call_id, output));
                }
                ToolOutput::Aborted(output) => {
                    turn.record(ResponseItem::output_of(call.kind, &call.call_id, output));
                    return turn.close_cancelled(Sample::default());
                }
            }
        }
    }
}

impl TurnRuntime {
    fn record(&self, item: ResponseItem) {
        self.conversation.record_item(item);
    }

    /// Move pending steer input into the history, last, and mark the steer
    /// generation seen so only newer steer cuts the next stream. (Its user
    /// message item went out when it was accepted; `SteerDelivered` says the
    /// model now reads it.)
    fn deliver_steer(&self, steer_rx: &mut watch::Receiver<u64>) {
        for (message, item_id) in self.inbox.take_steer(steer_rx) {
            self.record(ResponseItem::user_text(message.model_text()));
            self.emitter.emit(EventMsg::SteerDelivered {
                item_id,
                items: message.items,
            });
        }
    }

    /// One model request, retried per the provider's budgets; the
    /// conversation is compacted first when the request would pass the
    /// context limit, and once more when the server says it did.
    async fn sample(
        &self,
        steer_rx: &mut watch::Receiver<u64>,
        missing_output_retried: &mut bool,
    ) -> Result<Sample, SampleStop> {
        let provider = &self.conversation.config.provider;
        let mut retries = RetryState::new(RetryBudget {
            request_max_retries: provider.request_max_retries,
            stream_max_retries: provider.stream_max_retries,
        });
        let mut compacted = false;
        loop {
            // Steer that arrived during a backoff wait goes into the retried request.
            self.deliver_steer(steer_rx);
            if !compacted && self.over_limit() {
                compacted = true;
                self.compact_or_stop(CompactionTrigger::Auto).await?;
            }
            let (request, repair) = self.conversation.prepare_request();
            if !repair.is_empty() {
                tracing::error!(
                    ?repair,
                    "bug: the history broke invariant I1 and was repaired"
                );
                self.emitter.emit(EventMsg::BackgroundEvent {
                    message: format!(
                        "repaired the conversation history before sending it: {repair:?}"
                    ),
                });
            }
            let error = match self.attempt(&request, steer_rx).await {
                Attempt::Done(sample) => return Ok(sample),
                Attempt::Cancelled(partial) => return Err(SampleStop::Cancelled(partial)),
                Attempt::Error(error) => error,
            };
            if !compacted && is_context_overflow(&error) {
                // Outside the retry budget, like the repair below.
                compacted = true;
                self.emitter.emit(EventMsg::BackgroundEvent {
                    message: format!(
                        "the model API said the conversation is too long ({error}); compacting it and sending the request again"
                    ),
                });
                self.compact_or_stop(CompactionTrigger::Overflow).await?;
                continue;
            }
            if let Some(call_id) = error.missing_tool_output_call_id()
                && !*missing_output_retried
            {
                *missing_output_retried = true;
                self.emitter.emit(EventMsg::BackgroundEvent {
                    message: format!(
                        "the model API reported no output for tool call {call_id}; the history was checked and the request is sent again"
                    ),
                });
                tracing::error!(
                    call_id,
                    "model API rejected the history for a missing tool output"
                );
                continue;
            }
            let Some(retry) = retries.next(&error) else {
                return Err(SampleStop::Failed(error_info(error)));
            };
            if !self.wait_to_retry(retry).await {
                return Err(SampleStop::Cancelled(Sample::default()));
            }
        }
    }

    /// Say the retry, and wait its delay; `false` if the turn was cancelled meanwhile.
    pub(crate) async fn wait_to_retry(&self, retry: Retry) -> bool {
        self.emitter.emit(EventMsg::StreamRetry {
            attempt: retry.attempt,
            max: retry.max,
            delay_ms: u64::try_from(retry.delay.as_millis()).unwrap_or(u64::MAX),
            reason: retry.reason,
        });
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => false,
            () = tokio::time::sleep(retry.delay) => true,
        }
    }

    /// Compact, or say why the turn cannot go on.
    async fn compact_or_stop(&self, trigger: CompactionTrigger) -> Result<(), SampleStop> {
        match self.compact(trigger).await {
            Compaction::Done => Ok(()),
            Compaction::Cancelled => Err(SampleStop::Cancelled(Sample::default())),
            Compaction::Failed(error) => Err(SampleStop::Failed(error)),
        }
    }

    /// One HTTP request and its stream. Steer input cuts the stream: what was
    /// complete is kept and the partial text is returned for recording. A
    /// response that breaks off withdraws what it streamed: its open items
    /// complete empty.
    async fn attempt(
        &self,
        request: &ModelRequest,
        steer_rx: &mut watch::Receiver<u64>,
    ) -> Attempt {
        let client = &self.conversation.client;
        let mut stream = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Attempt::Cancelled(Sample::default()),
            result = client.stream(request) => match result {
                Ok(stream) => stream,
                Err(error) => return Attempt::Error(error),
            },
        };
        let mut sample = Sample::default();
        loop {
            let event = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Attempt::Cancelled(sample),
                () = steer_changed(steer_rx) => return Attempt::Done(sample),
                event = stream.next() => event,
            };
            let event = match event {
                Some(Ok(event)) => event,
                Some(Err(error)) => {
                    self.withdraw(&mut sample);
                    return Attempt::Error(error);
                }
                None => {
                    self.withdraw(&mut sample);
                    return Attempt::Error(ModelError::RetryableStream {
                        reason: "the stream ended early".to_string(),
                    });
                }
            };
            match event {
                ResponseEvent::OutputTextDelta(delta) => {
                    let open = self.open(&mut sample.message, |id| {
                        TurnItem::new(
                            id,
                            TurnItemKind::AgentMessage {
                                text: String::new(),
                            },
                        )
                    });
                    open.text.push_str(&delta);
                    let item_id = Arc::clone(&open.shared_id);
                    self.emitter
                        .emit(EventMsg::AgentMessageDelta { item_id, delta });
                }
                ResponseEvent::ReasoningDelta(delta) => {
                    let open = self.open(&mut sample.reasoning, |id| {
                        TurnItem::new(
                            id,
                            TurnItemKind::Reasoning {
                                text: String::new(),
                            },
                        )
                    });
                    open.text.push_str(&delta);
                    let item_id = Arc::clone(&open.shared_id);
                    self.emitter
                        .emit(EventMsg::ReasoningDelta { item_id, delta });
                }
                ResponseEvent::OutputItemDone(item) => {
                    // A finished item is recorded with the rest of the sample;
                    // its streamed item id goes with it.
                    let open = match &item {
                        OutputItem::Message { .. } => sample.message.take(),
                        OutputItem::Reasoning { .. } => sample.reasoning.take(),
                        OutputItem::FunctionCall { .. } | OutputItem::CustomToolCall { .. } => None,
                    };
                    sample.items.push(SampledItem {
                        item,
                        id: open.map(|o| o.id),
                    });
                }
                ResponseEvent::Completed { usage } => {
                    sample.usage = usage;
                    return Attempt::Done(sample);
                }
            }
        }
    }

    /// The open text item of `slot`, starting it (with `start`) if none is open.
    fn open<'s>(
        &self,
        slot: &'s mut Option<OpenText>,
        start: impl FnOnce(String) -> TurnItem,
    ) -> &'s mut OpenText {
        slot.get_or_insert_with(|| {
            let id = self.items.new_id();
            self.items.started(start(id.clone()));
            OpenText {
                shared_id: Arc::from(id.as_str()),
                id,
                text: String::new(),
            }
        })
    }

    /// A broken response: what it streamed was not the answer.
    fn withdraw(&self, sample: &mut Sample) {
        for (open, kind) in [
            (sample.message.take(), text_kind(false)),
            (sample.reasoning.take(), text_kind(true)),
        ] {
            if let Some(open) = open {
                self.items
                    .completed(TurnItem::new(open.id, kind(String::new())));
            }
        }
        // Items that were done in the broken response are dropped from it
        // too: the retry answers again. Their streamed items complete empty.
        for sampled in sample.items.drain(..) {
            let reasoning = match sampled.item {
                OutputItem::Message { .. } => false,
                OutputItem::Reasoning { .. } => true,
                OutputItem::FunctionCall { .. } | OutputItem::CustomToolCall { .. } => continue,
            };
            if let Some(id) = sampled.id {
                self.items
                    .completed(TurnItem::new(id, text_kind(reasoning)(String::new())));
            }
        }
    }

    /// Put a sample's items into the history and complete their items; returns
    /// the calls to run.
    fn record_sample(
        &self,
        sample: Sample,
        last_agent_message: &mut Option<String>,
    ) -> Vec<ToolCall> {
        let mut calls = Vec::new();
        for SampledItem { item, id } in sample.items {
            match item {
                OutputItem::Message { text } => {
                    self.record(ResponseItem::assistant_text(text.clone()));
                    self.complete_text(id, false, text.clone());
                    *last_agent_message = Some(text);
                }
                OutputItem::Reasoning {
                    text,
                    encrypted_content,
                } => {
                    // Kept so the next request carries it, as Codex does.
                    self.record(ResponseItem::Reasoning {
                        summary: vec![ReasoningSummary::SummaryText { text: text.clone() }],
                        encrypted_content,
                    });
                    self.complete_text(id, true, text);
                }
                OutputItem::FunctionCall {
                    name,
                    arguments,
                    call_id,
                } => {
                    self.record(ResponseItem::FunctionCall {
                        name: name.clone(),
                        arguments: arguments.clone(),
                        call_id: call_id.clone(),
                    });
                    calls.push(ToolCall {
                        name,
                        call_id,
                        arguments,
                        kind: CallKind::Function,
                    });
                }
                OutputItem::CustomToolCall {
                    name,
                    input,
                    call_id,
                } => {
                    self.record(ResponseItem::CustomToolCall {
                        name: name.clone(),
                        input: input.clone(),
                        call_id: call_id.clone(),
                    });
                    calls.push(ToolCall {
                        name,
                        call_id,
                        arguments: input,
                        kind: CallKind::Custom,
                    });
                }
            }
        }
        // Cut short (a steer, an abort): what the person saw is what was said.
        if let Some(open) = sample.message {
            if !open.text.is_empty() {
                self.record(ResponseItem::assistant_text(open.text.clone()));
                *last_agent_message = Some(open.text.clone());
            }
            self.items.completed(TurnItem::new(
                open.id,
                TurnItemKind::AgentMessage { text: open.text },
            ));
        }
        if let Some(open) = sample.reasoning {
            self.items.completed(TurnItem::new(
                open.id,
                TurnItemKind::Reasoning { text: open.text },
            ));
        }
        calls
    }

    /// Complete a finished message or reasoning item (starting it first if
    /// the model sent it with no deltas).
    fn complete_text(&self, id: Option<String>, reasoning: bool, text: String) {
        let kind = text_kind(reasoning);
        let id = id.unwrap_or_else(|| {
            let id = self.items.new_id();
            self.items
                .started(TurnItem::new(id.clone(), kind(String::new())));
            id
        });
        self.items.completed(TurnItem::new(id, kind(text)));
    }

    /// Cancellation: record what the user saw, and close every call of the turn
    /// that has no output yet. Process trees are already dead: a tool returns
    /// only once everything it started has stopped.
    fn close_cancelled(&self, partial: Sample) -> TurnOutcome {
        let calls = self.record_sample(partial, &mut None);
        for call in calls {
            self.record(ResponseItem::output_of(
                call.kind,
                call.call_id,
                ABORTED_BEFORE_OUTPUT,
            ));
        }
        let unanswered = self.conversation.history().unanswered_calls();
        for (call_id, kind) in unanswered {
            self.record(ResponseItem::output_of(
                kind,
                call_id,
                ABORTED_BEFORE_OUTPUT,
            ));
        }
        TurnOutcome::Cancelled
    }

    /// Run one tool call and return what the model reads.
    async fn run_call(&self, call: &ToolCall) -> ToolOutput {
        if self.cancel.is_cancelled() {
            return ToolOutput::Aborted(ABORTED_BEFORE_OUTPUT.to_string());
        }
        let Some(tool) = self.conversation.tools.get(&call.name) else {
            return ToolOutput::Output(format!(
                "unknown tool '{}': the tools are {}",
                call.name,
                self.conversation.tools.names().join(", ")
            ));
        };
        // Nothing touches the workspace before its checkpoint is taken.
        tokio::select! {
            () = self.checkpoint.passed() => {}
            () = self.cancel.cancelled() => {
                return ToolOutput::Aborted(ABORTED_BEFORE_OUTPUT.to_string());
            }
        }
        let ctx = ToolContext {
            conversation: &self.conversation,
            inbox: &self.inbox,
            items: &self.items,
            emitter: &self.emitter,
            cancel: &self.cancel,
            call_id: &call.call_id,
        };
        tool.run(call, &ctx).await
    }
}

/// A finished output item and the id of the item it streamed as, if it did.
#[derive(Debug)]
struct SampledItem {
    item: OutputItem,
    id: Option<String>,
}

/// The item kind of a text: agent message or reasoning.
fn text_kind(reasoning: bool) -> fn(String) -> TurnItemKind {
    if reasoning {
        |text| TurnItemKind::Reasoning { text }
    } else {
        |text| TurnItemKind::AgentMessage { text }
    }
}

async fn steer_changed(rx: &mut watch::Receiver<u64>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

pub(crate) fn error_info(error: ModelError) -> ErrorInfo {
    match error {
        ModelError::Fatal { message, status } => ErrorInfo {
            message,
            http_status: status,
        },
        ModelError::RetryableRequest { reason, .. } | ModelError::RetryableStream { reason } => {
            ErrorInfo {
                message: format!("{reason} (retries exhausted)"),
                http_status: None,
            }
        }
    }
}
