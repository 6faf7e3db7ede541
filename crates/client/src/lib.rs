//! A Rust client for tiller's app-server (`tiller app-server`, or any server
//! that speaks the same JSON lines on stdio), as a child on stdio or over a
//! socket to one that listens (`unix://PATH`, `ws://IP:PORT`:
//! [`ClientOptions::connect`]).
//!
//! [`Client::spawn`] starts the server from [`ClientOptions`] (program, args,
//! env, cwd), does the `initialize` / `initialized` handshake, and returns the
//! client with an [`EventReceiver`]: the server's notifications, typed
//! ([`ClientEvent::Notification`] of the protocol crate's
//! [`ServerNotification`](tiller_app_server_protocol::ServerNotification)), in
//! the order they were sent. The typed calls ([`Client::thread_start`],
//! [`Client::turn_start`], [`Client::turn_steer`], [`Client::queue_add`], …)
//! reuse the params and result types of `tiller-app-server-protocol`, each
//! with its own timeout ([`Timeouts`]).
//!
//! # When the server goes away
//!
//! One actor task owns each server process: its pipes, its pending requests,
//! and the turns it has running. It is the only place that can notice the
//! server is gone, and it does so once:
//!
//! - every pending request fails with [`ClientError::Disconnected`], once;
//!   later requests fail with it at once;
//! - every turn in progress gets a synthetic `turn/completed` with status
//!   `failed` (message [`DISCONNECTED_TURN_MESSAGE`]), so no turn is left in
//!   progress;
//! - then exactly one [`ClientEvent::Disconnected`] is sent.
//!
//! [`Client::reconnect`] starts a new server and resumes (`thread/resume`)
//! every thread the client knows. The server keeps each thread's queue in its
//! rollout, so queued messages are still there.
//!
//! # Nothing is sent twice behind the caller's back
//!
//! The client never retries. A rejected `turn/steer` (no active turn, turn id
//! mismatch) comes back as [`SteerRejected`] with the input handed back; a
//! steer that never reached the model because the turn was interrupted comes
//! back in that turn's `turn/completed` (`unsentInput`). Either way, what to
//! do with the text is the caller's decision. Calls that carry a
//! `clientUserMessageId` are idempotent on the server, so after a timeout or a
//! reconnect the caller may send the same call again safely.
#![deny(missing_docs)]

mod client;
mod connection;
mod error;
mod event;
mod options;

pub use client::{Client, EventReceiver};
pub use error::{ClientError, SteerRejected};
pub use event::{ClientEvent, DISCONNECTED_TURN_MESSAGE, parse_notification};
pub use options::{ClientOptions, Endpoint, Timeouts};

/// The protocol types the client's calls take and return.
pub use tiller_app_server_protocol as protocol;
