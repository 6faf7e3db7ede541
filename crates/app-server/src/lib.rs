//! `tiller app-server`: JSON-RPC over stdio, many threads per process.
//!
//! Each thread is one engine session driven by its own task
//! ([`thread::ThreadDriver`]). The driver is the only writer of everything that
//! concerns its thread, responses included, and it handles that thread's
//! requests and events in one loop; that is what makes the ordering
//! guarantees hold:
//! - `turn/start`'s response is written before any notification of that turn
//!   (the engine's events are read only after the reply is out);
//! - a `turn/steer` or `turn/interrupt` for the id `turn/start` returned is
//!   handled after the engine already runs that turn (the reply comes from the
//!   engine once the turn exists);
//! - exactly one `turn/completed` per `turn/started`, and every `item/started`
//!   gets its `item/completed` ([`translate`] closes open items at the end).
//!
//! The main loop ([`server`]) reads lines (10 MiB at most), answers
//! `initialize`, `thread/start` and `thread/resume`, and routes every other
//! request to its thread's driver. One writer task owns stdout.
#![deny(missing_docs)]

mod convert;
mod outgoing;
pub mod server;
mod thread;
mod translate;

pub use server::{AppServerOptions, MAX_LINE_BYTES, run_app_server};
