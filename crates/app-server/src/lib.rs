//! `tiller app-server`: Codex's app-server protocol, on stdio or on sockets
//! (WebSocket), many threads per process and many clients per thread.
//!
//! Each thread is one engine session driven by its own task
//! ([`thread::ThreadDriver`]). The driver is the only writer of everything that
//! concerns its thread, to every connection subscribed to it, responses
//! included, and it handles that thread's requests and events in one loop;
//! that is what makes the ordering guarantees hold on every connection:
//! - `turn/start`'s response is written before any notification of that turn
//!   (the engine's events are read only after the reply is out);
//! - a `turn/steer` or `turn/interrupt` for the id `turn/start` returned is
//!   handled after the engine already runs that turn (the reply comes from the
//!   engine once the turn exists);
//! - exactly one `turn/completed` per `turn/started`, and every `item/started`
//!   gets its `item/completed`.
//!
//! [`transport`] accepts connections; each ([`connection`]) answers
//! `initialize` and routes its requests: `thread/start`, `thread/resume`,
//! `thread/unsubscribe` and the reading and listing of threads to the [`hub`]
//! (the loaded threads, shared by all connections; [`saved`] reads those that
//! are not loaded), the rest to the thread's driver. Each connection has one
//! writer ([`outgoing`]).
#![deny(missing_docs)]

mod connection;
mod convert;
mod hub;
mod models;
mod names;
mod outgoing;
mod pages;
mod policy;
mod restore;
mod saved;
pub mod server;
mod settings;
mod thread;
mod translate;
pub mod transport;

pub use hub::AppServerOptions;
pub use server::{MAX_LINE_BYTES, run_app_server};
pub use transport::{Listen, WsAuth, serve};
