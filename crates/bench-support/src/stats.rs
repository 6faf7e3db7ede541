//! Median, p99 and max of a set of samples.

use std::time::Duration;

/// Nearest-rank percentile of sorted samples (`pct` in 0..=100); the default
/// value when there are none.
pub fn percentile<T: Copy + Default>(sorted: &[T], pct: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What a row shows of its samples, in the row's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// How many samples.
    pub n: usize,
    /// The median (nearest-rank p50).
    pub median: f64,
    /// The nearest-rank p99; `None` for a figure that is one derived value.
    pub p99: Option<f64>,
    /// The largest sample; `None` like `p99`.
    pub max: Option<f64>,
}

impl Stats {
    /// Of samples in any unit.
    pub fn of(samples: &[f64]) -> Stats {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Stats {
            n: sorted.len(),
            median: percentile(&sorted, 50.0),
            p99: Some(percentile(&sorted, 99.0)),
            max: Some(sorted.last().copied().unwrap_or_default()),
        }
    }

    /// Of durations, in milliseconds.
    pub fn of_millis(samples: &[Duration]) -> Stats {
        let millis: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        Stats::of(&millis)
    }

    /// One value derived from `n` samples (a ratio of medians, say).
    pub fn derived(n: usize, value: f64) -> Stats {
        Stats {
            n,
            median: value,
            p99: None,
            max: None,
        }
    }

    /// The value a target is judged on: the p99, or the median without one.
    pub fn judged(&self) -> f64 {
        self.p99.unwrap_or(self.median)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_of_200_is_the_third_largest_and_of_100_the_second() {
        let two_hundred: Vec<u32> = (1..=200).collect();
        assert_eq!(percentile(&two_hundred, 99.0), 198);
        let hundred: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 99.0), 99);
        assert_eq!(percentile(&hundred, 50.0), 50);
        let few: Vec<u32> = (1..=30).collect();
        assert_eq!(percentile(&few, 99.0), 30);
        assert_eq!(percentile::<u32>(&[], 99.0), 0);
    }

    #[test]
    fn stats_sort_their_samples_and_derived_ones_are_judged_on_the_median() {
        let stats = Stats::of(&[3.0, 1.0, 2.0]);
        assert_eq!(stats.n, 3);
        assert_eq!(stats.median, 2.0);
        assert_eq!(stats.p99, Some(3.0));
        assert_eq!(stats.judged(), 3.0);
        let millis = Stats::of_millis(&[Duration::from_micros(1500)]);
        assert_eq!(millis.median, 1.5);
        assert_eq!(Stats::derived(15, -2.0).judged(), -2.0);
    }
}
