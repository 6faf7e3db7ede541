//! Rollout persistence: one append-only JSONL file per session.
//!
//! [`RolloutRecorder`] writes lines from a dedicated thread so the turn never
//! waits on the disk; [`RolloutRecorder::commit`] makes the lines a promise
//! depends on durable (a turn's start, its end: invariant I5) or reports that it
//! could not, and a failed write never leaves a torn line. [`load`] reads a file
//! back as bytes, tolerating a truncated last line and skipping unreadable lines
//! (bad JSON, bad UTF-8) with a warning; [`open`] does the same for a session
//! that continues the file, holding the file's exclusive lock so no second
//! session can write it; [`store`] names, lists and finds session files (regular
//! files only). The format is documented in `docs/rollout.md`.

pub mod archive;
mod file;
mod fork;
mod legacy;
mod reader;
mod recorder;
pub mod store;
pub mod timestamp;

pub use file::{LockWait, LockedFile};
pub use fork::{ForkEnd, ForkError, fork};
pub use reader::{LastTurn, LoadedRollout, LoadedTurn, OpenRollout, RolloutError, load, open};
pub use recorder::RolloutRecorder;
