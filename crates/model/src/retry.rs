//! Retry policy: which failures are retried, how long to wait, and the budgets.
//!
//! tiller computes backoff itself rather than through a retry crate: the turn has
//! to race every wait against its cancellation token and announce every retry as
//! an event, and `Retry-After` replaces the computed delay. That is a dozen lines
//! here and would be adapters around a crate's loop.

use std::time::Duration;

use crate::error::ModelError;

/// The longest a `Retry-After` header can make tiller wait.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The first backoff delay; each retry doubles it.
const BASE_DELAY: Duration = Duration::from_millis(200);

/// The longest computed backoff delay.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Retry budgets for one model request (one per provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    /// Retries of requests that got no good answer.
    pub request_max_retries: u32,
    /// Retries of responses whose stream broke off.
    pub stream_max_retries: u32,
}

/// Counts retries spent for one model request and decides the next wait.
#[derive(Debug)]
pub struct RetryState {
    budget: RetryBudget,
    request_retries: u32,
    stream_retries: u32,
}

/// A decision to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Which retry of its kind this is (1-based).
    pub attempt: u32,
    /// The budget for its kind.
    pub max: u32,
    /// How long to wait first.
    pub delay: Duration,
    /// What went wrong.
    pub reason: String,
}

impl RetryState {
    /// A fresh state with `budget`.
    pub fn new(budget: RetryBudget) -> Self {
        RetryState {
            budget,
            request_retries: 0,
            stream_retries: 0,
        }
    }

    /// `Some` if `error` is worth another attempt and the budget allows it.
    pub fn next(&mut self, error: &ModelError) -> Option<Retry> {
        let (count, max, retry_after, reason) = match error {
            ModelError::RetryableRequest {
                reason,
                retry_after,
            } => (
                &mut self.request_retries,
                self.budget.request_max_retries,
                *retry_after,
                reason,
            ),
            ModelError::RetryableStream { reason } => (
                &mut self.stream_retries,
                self.budget.stream_max_retries,
                None,
                reason,
            ),
            ModelError::Fatal { .. } => return None,
        };
        if *count >= max {
            return None;
        }
        *count += 1;
        let delay = match retry_after {
            Some(after) => after.min(MAX_RETRY_AFTER),
            None => backoff(*count),
        };
        Some(Retry {
            attempt: *count,
            max,
            delay,
            reason: reason.clone(),
        })
    }
}

/// Exponential backoff with ±10 % jitter: 200 ms, 400 ms, 800 ms, …
pub fn backoff(attempt: u32) -> Duration {
    let exp = BASE_DELAY.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let jitter = 0.9 + fastrand::f64() * 0.2;
    exp.min(MAX_DELAY).mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> RetryBudget {
        RetryBudget {
            request_max_retries: 2,
            stream_max_retries: 1,
        }
    }

    #[test]
    fn request_retries_stop_at_the_budget() {
        let mut state = RetryState::new(budget());
        let error = ModelError::RetryableRequest {
            reason: "HTTP 503".into(),
            retry_after: None,
        };
        assert_eq!(state.next(&error).map(|r| r.attempt), Some(1));
        assert_eq!(state.next(&error).map(|r| r.attempt), Some(2));
        assert_eq!(state.next(&error), None);
    }

    #[test]
    fn retry_after_replaces_backoff_and_is_capped() {
        let mut state = RetryState::new(budget());
        let error = ModelError::RetryableRequest {
            reason: "HTTP 429".into(),
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert_eq!(state.next(&error).map(|r| r.delay), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn fatal_errors_are_not_retried() {
        let mut state = RetryState::new(budget());
        let error = ModelError::Fatal {
            message: "bad".into(),
            status: Some(400),
        };
        assert_eq!(state.next(&error), None);
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        for (attempt, base) in [(1, 200.0), (2, 400.0), (3, 800.0)] {
            let ms = backoff(attempt).as_secs_f64() * 1000.0;
            assert!((base * 0.9..=base * 1.1).contains(&ms), "{attempt}: {ms}");
        }
    }
}
