//! A thread's token counts, from the model's usage of each completed turn.

use tiller_app_server_protocol::{
    ServerNotification, ThreadTokenUsage, TokenUsageBreakdown, TokenUsageUpdatedNotification,
};
use tiller_protocol::TokenUsage;

/// What the session knows of the model's context when a turn completes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Context {
    /// The model's context window, when known.
    pub(crate) window: Option<u64>,
    /// The usage of the turn's last model response: how full the context
    /// is now (a turn's own usage sums all its responses).
    pub(crate) last_response: Option<TokenUsage>,
}

/// A thread's token counts, for `thread/tokenUsage/updated`.
#[derive(Debug, Default)]
pub(super) struct Usage {
    total: TokenUsageBreakdown,
}

impl Usage {
    /// Count a completed turn's usage; the notification that says so: the
    /// thread's total, the last model response's usage (as Codex's `last`),
    /// and the context window when the session knows it.
    pub(super) fn turn_completed(
        &mut self,
        thread_id: &str,
        turn_id: &str,
        usage: &TokenUsage,
        context: Context,
    ) -> ServerNotification {
        let turn = breakdown(usage);
        let total = &mut self.total;
        total.total_tokens += turn.total_tokens;
        total.input_tokens += turn.input_tokens;
        total.cached_input_tokens += turn.cached_input_tokens;
        total.output_tokens += turn.output_tokens;
        total.reasoning_output_tokens += turn.reasoning_output_tokens;
        let last = context.last_response.as_ref().map_or(turn, breakdown);
        ServerNotification::TokenUsageUpdated(TokenUsageUpdatedNotification {
            thread_id: thread_id.to_string(),
            turn_id: turn_id.to_string(),
            token_usage: ThreadTokenUsage {
                total: *total,
                last,
                model_context_window: context.window,
            },
        })
    }
}

fn breakdown(usage: &TokenUsage) -> TokenUsageBreakdown {
    TokenUsageBreakdown {
        total_tokens: usage.input_tokens + usage.output_tokens,
        input_tokens: usage.input_tokens,
        cached_input_tokens: usage.cached_input_tokens,
        cache_write_input_tokens: 0,
        output_tokens: usage.output_tokens,
        reasoning_output_tokens: usage.reasoning_output_tokens,
    }
}
