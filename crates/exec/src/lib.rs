//! `tiller exec`: run one turn headless.
//!
//! The front end is thin: it opens the session with `SessionBuilder` (config,
//! key, the rollout to resume; it prints the builder's warnings), starts one
//! turn and prints that turn's events (`TurnHandle`) until its terminal event,
//! through a `Printer`: for a person (`human`) or as
//! Codex-compatible JSON lines (`jsonl`), each mapping the engine's items
//! without keeping item state of its own. Ctrl+C and
//! SIGTERM become `Op::Interrupt`; a second Ctrl+C within two seconds exits at
//! once. Exit codes: 0 completed, 1 failed, 130 interrupted (143 after SIGTERM).
#![deny(missing_docs)]

mod args;
mod human;
mod jsonl;
mod printer;
mod run;
mod terminal;

pub use args::{ExecArgs, ExecCommand, ExecFlags, ResumeArgs};
pub use run::{ExecSetup, run_exec, run_resume};

/// Errors that stop `tiller exec` before or outside a turn.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The config could not be loaded, or the provider has no API key.
    #[error(transparent)]
    Config(#[from] tiller_core::config::ConfigError),
    /// The engine could not start.
    #[error(transparent)]
    Core(#[from] tiller_core::CoreError),
    /// `resume` without a session.
    #[error(
        "resume needs a session id (or a prefix of one) or --last; `tiller sessions` lists them"
    )]
    NoSession,
    /// The prompt on standard input cannot be used.
    #[error("{0}")]
    Prompt(String),
    /// No prompt was given.
    #[error(
        "no prompt: pass it as an argument, or '-' (or nothing) to read it from standard input"
    )]
    NoPrompt,
    /// Reading the prompt or writing output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The session refused the turn.
    #[error("the session refused the turn: {0}")]
    Op(#[from] tiller_protocol::OpError),
}
