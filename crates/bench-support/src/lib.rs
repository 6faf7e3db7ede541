//! What tiller's benches share: statistics, the printed table, the machine's
//! load while a bench runs, and the summary file that `scripts/bench` turns
//! into the one table of `BENCHMARKS.md`.
//!
//! Each bench is a plain `harness = false` binary. It opens a [`Report`],
//! adds one row per figure ([`Figure`] says what the row is and its target),
//! and calls [`Report::finish`], which prints the bench's own table and how
//! much CPU other processes took meanwhile. When `TILLER_BENCH_SUMMARY` names a
//! file, every row is also appended to it as one JSON line as soon as it is
//! measured, so a bench that dies half-way still leaves the rows it measured.
//! [`render`] turns that file into markdown (the `bench-report` binary).
//!
//! Percentiles are nearest-rank ([`percentile`]): with n = 200 the p99 is the
//! 3rd largest sample, with n = 100 the 2nd largest, with n < 100 the largest.
//! A target is judged on the p99, or on the median when a row has no p99.
//!
//! `TILLER_BENCH_QUICK=1` makes [`samples`] return the small counts, for a
//! smoke test of the whole pipeline; such figures are marked as not figures.
#![deny(missing_docs)]

mod machine;
pub mod render;
mod report;
mod runtime;
mod stats;

pub use report::{Figure, Report, Unit, quick, samples, thousands};
pub use runtime::runtime;
pub use stats::{Stats, percentile};
