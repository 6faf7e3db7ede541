//! One turn: model requests, tool calls and steer delivery, until the model is
//! done, the turn fails, or its cancellation token fires.
//!
//! The turn task never emits its own terminal event; it returns a [`TurnOutcome`]
//! and the session actor (`session.rs`) emits it. On cancellation the task first
//! makes the history valid again (I1): the running tool's aborted output, aborted
//! outputs for calls it never reached, and the partial assistant text the user
//! saw. The actor then adds the interrupted marker and emits `TurnAborted`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use tiller_protocol::{
    ErrorInfo, EventMsg, ExecEndStatus, ResponseItem, ReviewDecision, TokenUsage, UserInput,
};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::approval::needs_approval;
use crate::events::TurnEmitter;
use crate::history::ABORTED_BEFORE_OUTPUT;
use crate::session::SessionShared;
use crate::tools::shell::{self, SHELL_TOOL_NAME, ShellArgs, ShellRequest};
use tiller_model::ModelError;
use tiller_model::retry::{RetryBudget, RetryState};
use tiller_model::{ModelRequest, OutputItem, ResponseEvent};

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

/// State a running turn shares with the session actor.
#[derive(Debug)]
pub(crate) struct TurnShared {
    inbox: Mutex<TurnInbox>,
    steer_generation: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct TurnInbox {
    /// Steer input accepted but not yet sent to the model.
    pending_steer: Vec<Vec<UserInput>>,
    /// False once the turn has decided to end: steer is refused from then on.
    accepting: bool,
    /// Approval requests waiting for a person, by call id.
    approvals: HashMap<String, oneshot::Sender<ReviewDecision>>,
}

/// Why [`TurnShared::push_steer`] refused input.
pub(crate) struct SteerClosed;

impl TurnShared {
    pub(crate) fn new() -> Self {
        TurnShared {
            inbox: Mutex::new(TurnInbox {
                accepting: true,
                ..TurnInbox::default()
            }),
            steer_generation: watch::Sender::new(0),
        }
    }

    fn inbox(&self) -> MutexGuard<'_, TurnInbox> {
        // A panic elsewhere must not wedge the lifecycle: the inbox holds plain data.
        self.inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queue steer input for the next model request and cut a running stream.
    pub(crate) fn push_steer(&self, items: Vec<UserInput>) -> Result<(), SteerClosed> {
        let mut inbox = self.inbox();
        if !inbox.accepting {
            return Err(SteerClosed);
        }
        inbox.pending_steer.push(items);
        // Bumped under the lock so the turn reads queue and generation together.
        self.steer_generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Close the inbox: no more steer, pending approvals dropped; returns unsent input.
    pub(crate) fn close(&self) -> Vec<UserInput> {
        let mut inbox = self.inbox();
        inbox.accepting = false;
        inbox.approvals.clear();
        inbox.pending_steer.drain(..).flatten().collect()
    }

    /// Take the waiting approval for `call_id`, if any.
    pub(crate) fn take_approval(&self, call_id: &str) -> Option<oneshot::Sender<ReviewDecision>> {
        self.inbox().approvals.remove(call_id)
    }
}

/// Everything a turn task needs.
pub(crate) struct TurnContext {
    pub(crate) session: Arc<SessionShared>,
    pub(crate) shared: Arc<TurnShared>,
    pub(crate) cancel: CancellationToken,
    pub(crate) emitter: TurnEmitter,
}

/// What one model response gave.
#[derive(Debug, Default)]
struct Sample {
    items: Vec<OutputItem>,
    /// Text of an assistant message the stream was cut in the middle of.
    partial_text: String,
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

/// The tool call was cut short by cancellation.
struct CallCancelled;

/// Run a turn whose input the session has recorded.
pub(crate) async fn run_turn(ctx: TurnContext) -> TurnOutcome {
    let mut steer_rx = ctx.shared.steer_generation.subscribe();
    let mut usage = TokenUsage::default();
    let mut last_agent_message = None;
    let mut missing_output_retried = false;
    loop {
        if ctx.cancel.is_cancelled() {
            return ctx.close_cancelled(Sample::default());
        }
        let sample = match ctx.sample(&mut steer_rx, &mut missing_output_retried).await {
            Ok(sample) => sample,
            Err(SampleStop::Cancelled(partial)) => return ctx.close_cancelled(partial),
            Err(SampleStop::Failed(error)) => return TurnOutcome::Failed(error),
        };
        usage.add(&sample.usage);
        let calls = ctx.record_sample(sample, &mut last_agent_message);
        if calls.is_empty() {
            if ctx.finish_if_no_steer() {
                return TurnOutcome::Completed {
                    last_agent_message,
                    usage,
                };
            }
            continue;
        }
        for (name, arguments, call_id) in calls {
            let output = match ctx.run_call(&name, &arguments, &call_id).await {
                Ok(output) => output,
                Err(CallCancelled) => return ctx.close_cancelled(Sample::default()),
            };
            ctx.record(ResponseItem::call_output(call_id, output));
        }
    }
}

impl TurnContext {
    fn record(&self, item: ResponseItem) {
        self.session.record_item(item);
    }

    /// Move pending steer input into the history, last, and mark the steer
    /// generation seen so only newer steer cuts the next stream.
    fn deliver_steer(&self, steer_rx: &mut watch::Receiver<u64>) {
        let delivered: Vec<Vec<UserInput>> = {
            let mut inbox = self.shared.inbox();
            steer_rx.borrow_and_update();
            inbox.pending_steer.drain(..).collect()
        };
        for items in delivered {
            self.record(user_message(&items));
            self.emitter.emit(EventMsg::SteerDelivered { items });
        }
    }

    /// With nothing to run: end the turn unless steer input is waiting. Decided
    /// under the inbox lock, so steer is either delivered or refused, never lost.
    fn finish_if_no_steer(&self) -> bool {
        let mut inbox = self.shared.inbox();
        if inbox.pending_steer.is_empty() {
            inbox.accepting = false;
            true
        } else {
            false
        }
    }

    /// One model request, retried per the provider's budgets.
    async fn sample(
        &self,
        steer_rx: &mut watch::Receiver<u64>,
        missing_output_retried: &mut bool,
    ) -> Result<Sample, SampleStop> {
        let provider = &self.session.config.provider;
        let mut retries = RetryState::new(RetryBudget {
            request_max_retries: provider.request_max_retries,
            stream_max_retries: provider.stream_max_retries,
        });
        loop {
            // Steer that arrived during a backoff wait goes into the retried request.
            self.deliver_steer(steer_rx);
            let request = self.session.prepare_request(&self.emitter);
            let error = match self.attempt(&request, steer_rx).await {
                Attempt::Done(sample) => return Ok(sample),
                Attempt::Cancelled(partial) => return Err(SampleStop::Cancelled(partial)),
                Attempt::Error(error) => error,
            };
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
            self.emitter.emit(EventMsg::StreamRetry {
                attempt: retry.attempt,
                max: retry.max,
                delay_ms: u64::try_from(retry.delay.as_millis()).unwrap_or(u64::MAX),
                reason: retry.reason,
            });
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(SampleStop::Cancelled(Sample::default())),
                () = tokio::time::sleep(retry.delay) => {}
            }
        }
    }

    /// One HTTP request and its stream. Steer input cuts the stream: what was
    /// complete is kept and the partial text is returned for recording.
    async fn attempt(
        &self,
        request: &ModelRequest,
        steer_rx: &mut watch::Receiver<u64>,
    ) -> Attempt {
        let client = &self.session.client;
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
                Some(Err(error)) => return Attempt::Error(error),
                None => {
                    return Attempt::Error(ModelError::RetryableStream {
                        reason: "the stream ended early".to_string(),
                    });
                }
            };
            match event {
                ResponseEvent::OutputTextDelta(delta) => {
                    sample.partial_text.push_str(&delta);
                    self.emitter.emit(EventMsg::AgentMessageDelta { delta });
                }
                ResponseEvent::ReasoningDelta(delta) => {
                    self.emitter.emit(EventMsg::ReasoningDelta { delta });
                }
                ResponseEvent::OutputItemDone(item) => {
                    if matches!(item, OutputItem::Message { .. }) {
                        sample.partial_text.clear();
                    }
                    sample.items.push(item);
                }
                ResponseEvent::Completed { usage } => {
                    sample.usage = usage;
                    return Attempt::Done(sample);
                }
            }
        }
    }

    /// Put a sample's items into the history and announce the complete ones;
    /// returns the calls to run.
    fn record_sample(
        &self,
        sample: Sample,
        last_agent_message: &mut Option<String>,
    ) -> Vec<(String, String, String)> {
        let mut calls = Vec::new();
        for item in sample.items {
            match item {
                OutputItem::Message { text } => {
                    self.record(ResponseItem::assistant_text(text.clone()));
                    self.emitter
                        .emit(EventMsg::AgentMessage { text: text.clone() });
                    *last_agent_message = Some(text);
                }
                OutputItem::Reasoning { text } => {
                    self.emitter.emit(EventMsg::Reasoning { text });
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
                    calls.push((name, arguments, call_id));
                }
            }
        }
        if !sample.partial_text.is_empty() {
            self.record(ResponseItem::assistant_text(sample.partial_text.clone()));
            self.emitter.emit(EventMsg::AgentMessage {
                text: sample.partial_text.clone(),
            });
            *last_agent_message = Some(sample.partial_text);
        }
        calls
    }

    /// Cancellation: record what the user saw, and close every call of the turn
    /// that has no output yet. Process trees are already dead: the shell tool
    /// kills and reaps before it returns an aborted outcome.
    fn close_cancelled(&self, partial: Sample) -> TurnOutcome {
        let calls = self.record_sample(partial, &mut None);
        for (_, _, call_id) in calls {
            self.record(ResponseItem::call_output(call_id, ABORTED_BEFORE_OUTPUT));
        }
        let unanswered = self.session.history().unanswered_calls();
        for call_id in unanswered {
            self.record(ResponseItem::call_output(call_id, ABORTED_BEFORE_OUTPUT));
        }
        TurnOutcome::Cancelled
    }

    /// Run one tool call and return what the model reads.
    async fn run_call(
        &self,
        name: &str,
        arguments: &str,
        call_id: &str,
    ) -> Result<String, CallCancelled> {
        if name != SHELL_TOOL_NAME {
            return Ok(format!(
                "unknown tool '{name}': the only tool is '{SHELL_TOOL_NAME}'"
            ));
        }
        let args = match ShellArgs::parse(arguments) {
            Ok(args) => args,
            Err(error) => return Ok(format!("invalid arguments for {SHELL_TOOL_NAME}: {error}")),
        };
        let config = &self.session.config;
        let mut request = args.into_request(&config.cwd, self.session.default_tool_timeout);
        // The model's commands never see the provider's key: their output goes to
        // the model and into the rollout.
        request
            .hidden_env
            .extend(config.provider.env_key.iter().cloned());
        if needs_approval(config.approval_policy, &request.command)
            && !self.session.is_approved(&request.command)
        {
            match self
                .ask_approval(call_id, &request.command, &request.cwd)
                .await?
            {
                ReviewDecision::Approved => {}
                ReviewDecision::ApprovedForSession => {
                    self.session.approve_for_session(request.command.clone())
                }
                ReviewDecision::Denied => {
                    self.emitter.emit(EventMsg::ExecCommandEnd {
                        call_id: call_id.to_string(),
                        command: request.command.clone(),
                        exit_code: None,
                        duration_ms: 0,
                        aggregated_output: String::new(),
                        status: ExecEndStatus::Denied,
                    });
                    return Ok("the user denied this command; it did not run".to_string());
                }
                // The actor turns Abort into an interrupt and never forwards it.
                ReviewDecision::Abort => return Err(CallCancelled),
            }
        }
        self.run_shell(call_id, request).await
    }

    async fn ask_approval(
        &self,
        call_id: &str,
        command: &[String],
        cwd: &Path,
    ) -> Result<ReviewDecision, CallCancelled> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .inbox()
            .approvals
            .insert(call_id.to_string(), tx);
        self.emitter.emit(EventMsg::ExecApprovalRequest {
            call_id: call_id.to_string(),
            command: command.to_vec(),
            cwd: cwd.display().to_string(),
        });
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(CallCancelled),
            // A dropped sender means the turn is being aborted.
            decision = rx => decision.map_err(|_| CallCancelled),
        }
    }

    async fn run_shell(
        &self,
        call_id: &str,
        request: ShellRequest,
    ) -> Result<String, CallCancelled> {
        let command = request.command.clone();
        self.emitter.emit(EventMsg::ExecCommandBegin {
            call_id: call_id.to_string(),
            command: command.clone(),
            cwd: request.cwd.display().to_string(),
        });
        let emitter = self.emitter.clone();
        let delta_call_id = call_id.to_string();
        let on_output = move |stream, chunk: &str| {
            emitter.emit(EventMsg::ExecCommandOutputDelta {
                call_id: delta_call_id.clone(),
                stream,
                chunk: chunk.to_string(),
            });
        };
        let outcome = shell::run_shell(request, self.cancel.child_token(), &on_output).await;
        self.emitter.emit(EventMsg::ExecCommandEnd {
            call_id: call_id.to_string(),
            command,
            exit_code: outcome.exit_code,
            duration_ms: u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
            aggregated_output: outcome.aggregated_output.clone(),
            status: outcome.status,
        });
        if outcome.status == ExecEndStatus::Aborted {
            self.record(ResponseItem::call_output(call_id, outcome.model_output()));
            return Err(CallCancelled);
        }
        Ok(outcome.model_output())
    }
}

async fn steer_changed(rx: &mut watch::Receiver<u64>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One user message of `items`, a line each.
pub(crate) fn user_message(items: &[UserInput]) -> ResponseItem {
    let text = items
        .iter()
        .map(UserInput::as_text)
        .collect::<Vec<_>>()
        .join("\n");
    ResponseItem::user_text(text)
}

fn error_info(error: ModelError) -> ErrorInfo {
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
