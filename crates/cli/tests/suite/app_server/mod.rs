//! `tiller app-server` end to end: the real binary on stdin/stdout, an
//! in-process mock model, and every line it prints checked against the Codex
//! app-server JSON Schemas (`schema`), so every test here is also a
//! compatibility test. When a server ends, the protocol invariants are checked
//! on everything it printed (`support::check_protocol`): one response per
//! request, `turn/start`'s response before its turn's notifications, one
//! `turn/completed` per `turn/started` and nothing of a turn after it, every
//! `item/started` completed.

mod approvals;
mod bad_input;
mod codex_queue;
mod compatibility;
mod disk;
mod edits;
mod history;
mod idempotency;
mod ordering;
mod plan;
mod queue;
mod resume;
pub(super) mod schema;
mod settings;
mod shutdown;
mod sockets;
pub(super) mod support;
mod threads;
