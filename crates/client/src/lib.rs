//! A Rust client for tiller's app-server (`tiller app-server`, or any server
//! that speaks the same JSON lines on stdio), as a child on stdio, over a
//! socket to one that listens (`unix://PATH`, `ws://IP:PORT`:
//! [`ClientOptions::connect`]), or in this process
//! ([`ClientOptions::in_process`]).
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
//! # A server in the same process
//!
//! A front end that embeds the app-server (say, over a `tokio::io::duplex`
//! pair) gives the client a [`Connector`]: a function that opens a new pair
//! of [`Streams`] and starts a server on the other end. The client speaks the
//! same JSON lines over them as to a child on stdio, so an embedded server
//! behaves exactly as a spawned one, and one code path serves both. The
//! connector is called again for every connection, which is what lets
//! [`Client::reconnect`] work: closing the client's write half is how a
//! server is told to stop, so a stream pair is never reused.
//!
//! # The server's requests
//!
//! Approvals, and MCP servers' elicitations (a tool asking the person for
//! input), are requests of the server's, which it waits on. By default the
//! client refuses each at once (method not found), so a caller that shows no
//! approvals never leaves a turn hanging (a refused approval is declined, a
//! refused elicitation cancelled). With [`ClientOptions::server_requests`],
//! each comes on the event stream as [`ClientEvent::ServerRequest`], in order
//! with the notifications; [`parse_server_request`] reads it, and the caller
//! answers it with [`Client::respond`] (an elicitation with
//! [`Client::respond_elicitation`]).
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
mod transport;

pub use client::{Client, EventReceiver};
pub use error::{ClientError, SteerRejected};
pub use event::{ClientEvent, DISCONNECTED_TURN_MESSAGE, parse_notification, parse_server_request};
pub use options::{ClientOptions, Connector, Endpoint, Streams, Timeouts};

/// The protocol types the client's calls take and return.
pub use tiller_app_server_protocol as protocol;
