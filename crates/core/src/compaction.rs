//! Keeping the conversation inside the model's context window.
//!
//! Before each model request the turn asks [`ContextBudget::over_limit`]: the
//! next request's size is the last response's reported usage (its input and
//! output tokens) plus an estimate of what was added since, or an estimate of
//! the whole when the provider reports no usage. The estimate is a quarter of
//! the bytes, which is what tokenizers average on English and code.
//!
//! Past the limit (`model_auto_compact_token_limit`, else 90 % of the
//! window, from `model_context_window` or the provider's model list), the
//! turn first runs a compaction step ([`TurnRuntime::compact`]): the model is
//! asked for a summary with no tools, and the summary replaces the history,
//! in memory and in the rollout (a `compacted` line), before the turn goes on.
//! A server that refuses a request as too long triggers one compaction and a
//! resend, outside the retry budget. A compaction that is interrupted, or
//! fails, changes nothing: the history is replaced only once the summary is
//! whole.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, PoisonError};

use futures::StreamExt;
use tiller_model::retry::{RetryBudget, RetryState};
use tiller_model::{ModelError, ModelRequest, OutputItem, ResponseEvent};
use tiller_protocol::{
    CompactedLine, CompactedTokens, CompactionStatus, CompactionTrigger, ErrorInfo, EventMsg,
    ResponseItem, RolloutItem, TokenUsage, TurnItem, TurnItemKind,
};

use crate::conversation::Conversation;
use crate::events::EventSink;
use crate::history::History;
use crate::turn::{TurnRuntime, error_info};

/// What the model is asked in a compaction (sent, not kept).
const COMPACT_PROMPT: &str = "Summarize the conversation so far so that you can continue the work from the summary alone: the user's goals and requests, what has been done (files, commands, results), decisions made, and what is left to do. Be complete but concise. Reply with the summary only.";

/// What the summary is introduced with in the history that replaces the old one.
const COMPACT_PREFIX: &str = "The conversation so far was compacted. Its summary:\n\n";

/// The share of the context window a request may fill before the
/// conversation is compacted, when no limit is configured.
const DEFAULT_LIMIT_PERCENT: u64 = 90;

/// How the context is measured and limited for one session.
#[derive(Debug, Default)]
pub(crate) struct ContextBudget {
    /// `model_context_window`: wins over the provider's list.
    configured_window: Option<u64>,
    /// `model_auto_compact_token_limit`.
    configured_limit: Option<u64>,
    /// Context windows by model, from the provider's model list.
    listed: Mutex<HashMap<String, u64>>,
    /// The size of the last request that was answered, and how long the
    /// history was when its answer was recorded.
    mark: Mutex<Option<UsageMark>>,
    /// The usage the last response reported.
    last_usage: Mutex<Option<TokenUsage>>,
}

#[derive(Debug, Clone, Copy)]
struct UsageMark {
    tokens: u64,
    history_len: usize,
}

impl ContextBudget {
    pub(crate) fn new(window: Option<u64>, limit: Option<u64>) -> ContextBudget {
        ContextBudget {
            configured_window: window,
            configured_limit: limit,
            ..ContextBudget::default()
        }
    }

    /// Whether a window or a limit is known for `model` without asking the provider.
    pub(crate) fn is_configured(&self) -> bool {
        self.configured_window.is_some() || self.configured_limit.is_some()
    }

    /// The provider's model list said these windows.
    pub(crate) fn set_listed(&self, windows: HashMap<String, u64>) {
        *self.listed.lock().unwrap_or_else(PoisonError::into_inner) = windows;
    }

    /// The context window of `model`, if known.
    pub(crate) fn window(&self, model: &str) -> Option<u64> {
        self.configured_window.or_else(|| {
            self.listed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(model)
                .copied()
        })
    }

    /// How many tokens a request may have before the conversation is compacted.
    pub(crate) fn limit(&self, model: &str) -> Option<u64> {
        let from_window = self
            .window(model)
            .map(|window| window * DEFAULT_LIMIT_PERCENT / 100);
        match (self.configured_limit, from_window) {
            (Some(limit), Some(window)) => Some(limit.min(window)),
            (limit, window) => limit.or(window),
        }
    }

    /// A response was answered with `usage` and its items recorded: the
    /// history is `history_len` long. A provider that reports no input
    /// tokens leaves the estimate to bytes.
    pub(crate) fn note_usage(&self, usage: &TokenUsage, history_len: usize) {
        *self
            .last_usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(*usage);
        let mut mark = self.mark.lock().unwrap_or_else(PoisonError::into_inner);
        *mark = (usage.input_tokens > 0).then_some(UsageMark {
            tokens: usage.input_tokens + usage.output_tokens,
            history_len,
        });
    }

    /// The usage the last response reported, if one has been answered.
    pub(crate) fn last_usage(&self) -> Option<TokenUsage> {
        *self
            .last_usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The history was replaced: what was reported no longer measures it.
    pub(crate) fn forget_usage(&self) {
        *self.mark.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The estimated tokens of the next request from the last reported
    /// usage and the items of `history` recorded since; `None` when there is
    /// no report that measures this history.
    pub(crate) fn estimate_since_usage(&self, history: &[ResponseItem]) -> Option<u64> {
        let mark = (*self.mark.lock().unwrap_or_else(PoisonError::into_inner))?;
        (mark.history_len <= history.len())
            .then(|| mark.tokens + tokens_of(&history[mark.history_len..]))
    }
}

/// Learn the context windows the provider's model list gives (OpenRouter,
/// vLLM and LM Studio say them), for a session that configured none, and
/// say the session model's in a background event. A provider without a
/// list, or one that cannot be reached, leaves them unknown; a session gone
/// by then is not kept alive for it.
pub(crate) async fn read_listed_windows(
    conversation: std::sync::Weak<Conversation>,
    api_key: Option<String>,
    events: EventSink,
) {
    let Some(provider) = conversation.upgrade().map(|c| c.config.provider.clone()) else {
        return;
    };
    let models = match tiller_model::models::list_models(&provider, api_key).await {
        Ok(models) => models,
        Err(error) => {
            tracing::debug!(provider = %provider.id, "no model list: {error}");
            return;
        }
    };
    let windows: HashMap<String, u64> = models
        .into_iter()
        .filter_map(|m| m.context_window.map(|w| (m.id, w)))
        .collect();
    let Some(conversation) = conversation.upgrade() else {
        return;
    };
    let model = conversation.settings().model;
    conversation.context.set_listed(windows);
    if let Some(window) = conversation.context.window(&model) {
        events.emit(
            None,
            EventMsg::BackgroundEvent {
                message: format!(
                    "{model} has a context window of {window} tokens (the provider's model list says); the conversation is compacted as it nears it"
                ),
            },
        );
    }
}

/// The estimated tokens of a whole request: instructions, input and tools.
pub(crate) fn request_tokens(request: &ModelRequest) -> u64 {
    bytes_to_tokens(request.instructions.len() as u64)
        + tokens_of(&request.input)
        + tokens_of(&request.tools)
}

/// The estimated tokens of the next request, measured without copying the
/// history (this runs before every request).
fn next_request_tokens(conversation: &Conversation) -> u64 {
    let fixed = request_tokens(&conversation.request_without_history());
    fixed + tokens_of(conversation.history().items())
}

/// The estimated tokens of `values` as JSON.
fn tokens_of<T: serde::Serialize>(values: &[T]) -> u64 {
    let mut counter = ByteCounter(0);
    // Writing to a counter cannot fail; a value that cannot be serialized
    // would fail the request itself.
    let _ = serde_json::to_writer(&mut counter, values);
    // Not the array's brackets: an empty list is nothing.
    bytes_to_tokens(counter.0.saturating_sub(2))
}

fn bytes_to_tokens(bytes: u64) -> u64 {
    bytes.div_ceil(4)
}

/// Counts what is written to it.
struct ByteCounter(u64);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether `error` is a server saying the request is longer than the model's
/// context (OpenAI's `context_length_exceeded` and the words local servers use).
pub(crate) fn is_context_overflow(error: &ModelError) -> bool {
    let ModelError::Fatal { message, status } = error else {
        return false;
    };
    if !matches!(status, None | Some(400 | 413)) {
        return false;
    }
    let message = message.to_ascii_lowercase();
    [
        "context_length_exceeded",
        "context length",
        "context window",
        "context size",
        "maximum context",
        "prompt is too long",
    ]
    .iter()
    .any(|words| message.contains(words))
}

/// How a compaction step ended.
pub(crate) enum Compaction {
    /// The summary replaced the history.
    Done,
    /// The turn was cancelled; the history is as it was.
    Cancelled,
    /// It could not be done; the history is as it was.
    Failed(ErrorInfo),
}

impl TurnRuntime {
    /// Whether the next request would pass the limit (and there is more
    /// than a summary to compact).
    pub(crate) fn over_limit(&self) -> bool {
        let conversation = &self.conversation;
        let Some(limit) = conversation.context.limit(&conversation.settings().model) else {
            return false;
        };
        let since_usage = {
            let history = conversation.history();
            if history.items().len() <= 1 {
                return false;
            }
            conversation.context.estimate_since_usage(history.items())
        };
        since_usage.unwrap_or_else(|| next_request_tokens(conversation)) > limit
    }

    /// Ask the model for a summary of the conversation and replace the
    /// history with it: one `contextCompaction` item, retries as for any
    /// request, cancellable at every wait.
    pub(crate) async fn compact(&self, trigger: CompactionTrigger) -> Compaction {
        let conversation = &self.conversation;
        let id = self.items.new_id();
        self.items.started(TurnItem::new(
            id.clone(),
            TurnItemKind::ContextCompaction {
                trigger,
                status: None,
                tokens: None,
            },
        ));
        let before = next_request_tokens(conversation);
        let (mut request, kept) = summary_request(conversation, trigger);
        if let Some(window) = conversation.context.window(&request.model) {
            fit(&mut request, window);
        }
        let outcome = self.summarise(&request).await;
        let tokens = match &outcome {
            Ok(summary) => {
                let message = format!("{COMPACT_PREFIX}{summary}");
                replace_history(conversation, message, kept);
                Some(CompactedTokens {
                    before,
                    after: next_request_tokens(conversation),
                })
            }
            Err(_) => None,
        };
        self.items.completed(TurnItem::new(
            id,
            TurnItemKind::ContextCompaction {
                trigger,
                status: Some(if tokens.is_some() {
                    CompactionStatus::Completed
                } else {
                    CompactionStatus::Failed
                }),
                tokens,
            },
        ));
        match outcome {
            Ok(_) => Compaction::Done,
            Err(None) => Compaction::Cancelled,
            Err(Some(error)) => Compaction::Failed(error),
        }
    }

    /// The model's summary; `Err(None)` when cancelled.
    async fn summarise(&self, request: &ModelRequest) -> Result<String, Option<ErrorInfo>> {
        let provider = &self.conversation.config.provider;
        let mut retries = RetryState::new(RetryBudget {
            request_max_retries: provider.request_max_retries,
            stream_max_retries: provider.stream_max_retries,
        });
        loop {
            let error = match self.summary_attempt(request).await {
                Ok(Some(summary)) if !summary.trim().is_empty() => return Ok(summary),
                Ok(Some(_)) => {
                    return Err(Some(ErrorInfo {
                        message: "the model gave no summary; the history is unchanged".to_string(),
                        http_status: None,
                    }));
                }
                Ok(None) => return Err(None),
                Err(error) => error,
            };
            let Some(retry) = retries.next(&error) else {
                let mut info = error_info(error);
                info.message = format!(
                    "could not compact the conversation: {}; the history is unchanged",
                    info.message
                );
                return Err(Some(info));
            };
            if !self.wait_to_retry(retry).await {
                return Err(None);
            }
        }
    }

    /// One request for the summary: its text, `Ok(None)` when cancelled.
    async fn summary_attempt(&self, request: &ModelRequest) -> Result<Option<String>, ModelError> {
        let client = &self.conversation.client;
        let mut stream = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Ok(None),
            result = client.stream(request) => result?,
        };
        let mut text = String::new();
        let mut message = None;
        loop {
            let event = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Ok(None),
                event = stream.next() => event,
            };
            match event {
                Some(Ok(ResponseEvent::OutputTextDelta(delta))) => text.push_str(&delta),
                Some(Ok(ResponseEvent::OutputItemDone(OutputItem::Message { text: done }))) => {
                    message = Some(done);
                }
                Some(Ok(ResponseEvent::Completed { .. })) => {
                    return Ok(Some(message.unwrap_or(text)));
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => {
                    return Err(ModelError::RetryableStream {
                        reason: "the stream ended early".to_string(),
                    });
                }
            }
        }
    }
}

/// Drop the oldest items of a compaction request until it fits `window`
/// (a history that outgrew the window in one step, a huge tool output):
/// the summary is of what the model can read. The calls and outputs left
/// are paired again (I1).
fn fit(request: &mut ModelRequest, window: u64) {
    while request_tokens(request) > window && request.input.len() > 2 {
        let drop = (request.input.len() - 1) / 4;
        request.input.drain(..drop.max(1));
        let mut history = History::from_items(std::mem::take(&mut request.input));
        history.repair();
        request.input = history.items().to_vec();
    }
}

/// The history is the summary from here on, in memory and in the rollout.
/// The request for the summary, and how many of the history's last items
/// stay as they are after it. A turn that compacts before answering keeps
/// the person's newest messages (the ones after the model last spoke)
/// word for word after the summary, as Codex keeps recent user messages: a
/// long paste is not left to a summary of it. When there is nothing before
/// them, or for a compaction asked for between turns, everything is
/// summarised.
fn summary_request(
    conversation: &Conversation,
    trigger: CompactionTrigger,
) -> (ModelRequest, usize) {
    let mut request = conversation.request_without_history();
    let kept = {
        let mut history = conversation.history();
        history.repair();
        let items = history.items();
        let newest = items
            .iter()
            .rev()
            .take_while(|item| matches!(item, ResponseItem::Message { role, .. } if role == "user"))
            .count();
        let kept = match trigger {
            CompactionTrigger::Manual => 0,
            CompactionTrigger::Auto | CompactionTrigger::Overflow if newest < items.len() => newest,
            CompactionTrigger::Auto | CompactionTrigger::Overflow => 0,
        };
        request
            .input
            .extend_from_slice(&items[..items.len() - kept]);
        kept
    };
    // The summary is all the model is asked for: no tools.
    request.tools = Vec::new();
    request.input.push(ResponseItem::user_text(COMPACT_PROMPT));
    (request, kept)
}

/// The history is the summary, then its last `kept` items, from here on,
/// in memory and in the rollout (whose reader starts the history again at
/// a `compacted` line: the kept items are recorded again after it).
fn replace_history(conversation: &Conversation, message: String, kept: usize) {
    let mut history = conversation.history();
    let items = history.items();
    let tail = items[items.len().saturating_sub(kept)..].to_vec();
    conversation.record_line(RolloutItem::Compacted(CompactedLine {
        message: message.clone(),
    }));
    for item in &tail {
        conversation.record_line(RolloutItem::ResponseItem(item.clone()));
    }
    let mut items = vec![ResponseItem::user_text(message)];
    items.extend(tail);
    *history = History::from_items(items);
    conversation.context.forget_usage();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(input: Vec<ResponseItem>) -> ModelRequest {
        ModelRequest {
            model: "m".into(),
            instructions: "i".repeat(400),
            input,
            tools: Vec::new(),
            reasoning: None,
        }
    }

    #[test]
    fn the_limit_is_the_configured_one_or_ninety_percent_of_the_window() {
        assert_eq!(ContextBudget::new(None, None).limit("m"), None);
        assert_eq!(ContextBudget::new(Some(1000), None).limit("m"), Some(900));
        assert_eq!(ContextBudget::new(None, Some(500)).limit("m"), Some(500));
        assert_eq!(
            ContextBudget::new(Some(1000), Some(950)).limit("m"),
            Some(900)
        );
        let listed = ContextBudget::new(None, None);
        listed.set_listed(HashMap::from([("m".to_string(), 2000)]));
        assert_eq!(listed.limit("m"), Some(1800));
        assert_eq!(listed.limit("other"), None);
    }

    #[test]
    fn reported_usage_plus_what_came_after_is_the_estimate() {
        let budget = ContextBudget::new(Some(1000), None);
        let history = vec![
            ResponseItem::user_text("a"),
            ResponseItem::assistant_text("b"),
        ];
        assert_eq!(budget.estimate_since_usage(&history), None);
        budget.note_usage(
            &TokenUsage {
                input_tokens: 300,
                output_tokens: 20,
                ..TokenUsage::default()
            },
            2,
        );
        assert_eq!(budget.estimate_since_usage(&history), Some(320));
        let mut longer = history.clone();
        longer.push(ResponseItem::user_text("x".repeat(400)));
        let added = tokens_of(&longer[2..]);
        assert!(added > 100);
        assert_eq!(budget.estimate_since_usage(&longer), Some(320 + added));
        // A shorter history (compacted, reverted) is measured afresh.
        assert_eq!(budget.estimate_since_usage(&history[..1]), None);
        // So is one after a provider that reports no usage.
        budget.note_usage(&TokenUsage::default(), 2);
        assert_eq!(budget.estimate_since_usage(&history), None);
    }

    #[test]
    fn fitting_drops_the_oldest_items_and_keeps_calls_paired() {
        let mut input = Vec::new();
        for i in 0..40 {
            input.push(ResponseItem::FunctionCall {
                name: "shell".into(),
                arguments: "{}".into(),
                call_id: format!("c{i}"),
            });
            input.push(ResponseItem::call_output(format!("c{i}"), "y".repeat(200)));
        }
        let mut request = request(input);
        fit(&mut request, 1500);
        assert!(request_tokens(&request) <= 1500);
        let mut history = History::from_items(request.input.clone());
        assert!(history.repair().is_empty(), "{:?}", request.input);
        assert!(matches!(
            request.input.last(),
            Some(ResponseItem::FunctionCallOutput { call_id, .. }) if call_id == "c39"
        ));
    }

    #[test]
    fn context_overflow_errors_are_recognised() {
        let fatal = |message: &str, status| ModelError::Fatal {
            message: message.into(),
            status,
        };
        assert!(is_context_overflow(&fatal(
            "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
            Some(400)
        )));
        assert!(is_context_overflow(&fatal(
            "Your input exceeds the context window of this model.",
            None
        )));
        assert!(is_context_overflow(&fatal(
            "the request exceeds the available context size, try increasing it",
            Some(400)
        )));
        assert!(!is_context_overflow(&fatal(
            "Invalid model 'x'.",
            Some(400)
        )));
        assert!(!is_context_overflow(&fatal("context length", Some(401))));
    }
}
