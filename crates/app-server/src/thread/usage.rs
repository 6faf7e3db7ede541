//! A thread's token counts, from the model's usage of each completed turn.

use tiller_app_server_protocol::{
    ServerNotification, ThreadTokenUsage, TokenUsageBreakdown, TokenUsageUpdatedNotification,
};
use tiller_protocol::TokenUsage;

/// A thread's token counts, for `thread/tokenUsage/updated`.
#[derive(Debug, Default)]
pub(super) struct Usage {
    total: TokenUsageBreakdown,
}

impl Usage {
    /// Count a completed turn's usage; the notification that says so.
    pub(super) fn turn_completed(
        &mut self,
        thread_id: &str,
        turn_id: &str,
        usage: &TokenUsage,
    ) -> ServerNotification {
        let last = TokenUsageBreakdown {
            total_tokens: usage.input_tokens + usage.output_tokens,
            input_tokens: usage.input_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            cache_write_input_tokens: 0,
            output_tokens: usage.output_tokens,
            reasoning_output_tokens: usage.reasoning_output_tokens,
        };
        let total = &mut self.total;
        total.total_tokens += last.total_tokens;
        total.input_tokens += last.input_tokens;
        total.cached_input_tokens += last.cached_input_tokens;
        total.output_tokens += last.output_tokens;
        total.reasoning_output_tokens += last.reasoning_output_tokens;
        ServerNotification::TokenUsageUpdated(TokenUsageUpdatedNotification {
            thread_id: thread_id.to_string(),
            turn_id: turn_id.to_string(),
            token_usage: ThreadTokenUsage {
                total: *total,
                last,
                model_context_window: None,
            },
        })
    }
}
