//! Rollout persistence: one append-only JSONL file per session.
//!
//! [`RolloutRecorder`] writes lines from a dedicated thread so the turn never
//! waits on the disk, and [`RolloutRecorder::flush`] fsyncs before every terminal
//! event (invariant I5). [`load`] reads a file back, tolerating a truncated last
//! line and skipping unreadable lines with a warning; [`store`] names, lists and
//! finds session files. The format is documented in `docs/rollout.md`.

mod reader;
mod recorder;
pub mod store;
pub mod timestamp;

pub use reader::{LastTurn, LoadedRollout, LoadedTurn, RolloutError, load};
pub use recorder::RolloutRecorder;
