//! `tiller` with no subcommand: the terminal UI.
//!
//! The UI is a client of the app-server protocol and nothing else. By
//! default the binary runs the app-server in its own process and hands this
//! crate a [`ClientOptions`](tiller_client::ClientOptions) that talks to it
//! over an in-memory pipe; with `--remote` it is a socket to a server that
//! other clients may be driving at the same time. Either way the same calls
//! and notifications flow, so what a person sees here is what any client of
//! the server sees.
//!
//! The design is a functional core with an imperative shell:
//!
//! - [`App`] is the whole state, changed only by its own methods: a key
//!   ([`App::key`]), a notification or server request ([`App::client_event`]),
//!   or the outcome of a call ([`App::outcome`]). Everything shown is derived
//!   from protocol items; events of a turn that is no longer running are
//!   dropped, and every turn ends with exactly one end line.
//! - What needs the server leaves the state as an [`Effect`]; the runner
//!   carries it out and feeds the [`Outcome`] back. Messages (turn starts,
//!   steers, queue changes) go out in the order they were typed; an
//!   interrupt never waits behind them.
//! - [`draw`] renders a frame from the state; the transcript wraps each cell
//!   once per width, so a frame costs what is on screen.
//!
//! Crates, and why: `ratatui` (0.30) and `crossterm` (0.29, with its event
//! stream) draw and read the terminal; `pulldown-cmark` parses the model's
//! markdown. The rest is written here to stay small: the composer (the
//! text-area crates pin older ratatui versions), line wrapping (exact
//! heights for scrolling), and code colouring (a small lexer instead of
//! syntect's grammar engine and its megabyte of syntax dumps). Tests use
//! ratatui's `TestBackend` with `insta` snapshots.
#![deny(missing_docs)]

mod app;
mod calls;
mod cell;
mod clean;
mod composer;
mod effect;
mod highlight;
mod markdown;
mod options;
mod pager;
mod picker;
mod runner;
mod slash;
mod streaming;
mod terminal;
mod transcript;
mod view;
mod wrap;

pub use app::{App, TurnState};
pub use effect::{Effect, Outcome};
pub use options::{Open, TuiOptions};
pub use runner::run;
pub use terminal::restore as restore_terminal;
pub use view::{Clock, draw};

/// Why the UI could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// The server could not be started or reached.
    #[error("could not reach the app-server: {0}")]
    Connect(tiller_client::ClientError),
    /// The terminal failed (not a terminal, or it went away).
    #[error("terminal: {0}")]
    Terminal(std::io::Error),
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod snapshots;
