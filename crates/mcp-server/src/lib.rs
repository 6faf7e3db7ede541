//! `tiller mcp-server`: the agent as an MCP tool, over stdio, built on the
//! official Rust MCP SDK (`rmcp`).
//!
//! Three tools ([`server::TillerMcpServer`]), and Codex's `codex` and
//! `codex-reply` as aliases of the first two ([`codex`]):
//! - `tiller` starts a session (a *thread*) with a prompt and answers when the
//!   turn ends;
//! - `tiller-reply` continues a thread (one this process started, or a saved
//!   one, resumed from its rollout);
//! - `tiller-interrupt` ends a thread's running turn and answers only once it
//!   has really ended (its processes dead, its rollout flushed), with the
//!   abort reason.
//!
//! While a `tiller`/`tiller-reply` call runs, every engine event goes to the
//! client as a `tiller/event` notification (request id and thread id in
//! `_meta`), and as a `notifications/progress` when the call carried a
//! `progressToken`.
//!
//! # Cancellation
//!
//! rmcp gives each request handler its own `CancellationToken` and cancels it
//! on `notifications/cancelled`; it also drops whatever the handler returns
//! afterwards, so no response is sent for a cancelled request, as the MCP
//! spec asks. That alone would leave the turn running, so the call handler
//! races its token against the turn's events: when the token fires it submits
//! `Op::Interrupt`, which the engine answers only after the turn's process
//! tree is dead and the rollout flushed, then waits for the turn's terminal
//! event and returns. The thread stays usable. The map of running calls
//! (request id → thread) is kept by a guard, so every path out of a call
//! (answer, error, cancel, shutdown) removes its entry.
//!
//! Lines are read by this crate's own line transport rather than rmcp's stdio
//! transport, so a line that is not a JSON-RPC message is answered (`-32700` /
//! `-32600`) instead of skipped in silence.
//!
//! # Threads
//!
//! Each thread is one engine session ([`thread`]): a router task reads the
//! session's events and hands each turn's events to the call that started the
//! turn (events that arrive before the call claims its turn are kept for it),
//! and records how each turn ended so any number of `tiller-interrupt` calls
//! can wait for the same end.
#![deny(missing_docs)]

mod approval;
mod call;
pub mod codex;
mod error;
mod notify;
pub mod params;
pub mod server;
mod thread;
mod transport;

use std::path::PathBuf;
use std::time::Duration;

use rmcp::ServiceExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::signal::unix::{SignalKind, signal};

use crate::transport::LineTransport;

pub use error::{McpServerError, Result};
pub use server::TillerMcpServer;
pub use transport::MAX_LINE_BYTES;

/// How long shutdown waits for running turns to be interrupted.
const SHUTDOWN_DEADLINE: Duration = Duration::from_millis(900);

/// Settings of one server process.
#[derive(Debug, Clone)]
pub struct McpServerOptions {
    /// `$TILLER_HOME`: config and sessions.
    pub tiller_home: PathBuf,
}

/// Serve MCP on stdin/stdout until EOF or SIGTERM, then interrupt every
/// running turn (processes killed, rollouts flushed) and return.
pub async fn run_mcp_server(options: McpServerOptions) -> Result<()> {
    let server = TillerMcpServer::new(options);
    serve_mcp_server(server, tokio::io::stdin(), tokio::io::stdout()).await
}

/// Serve `server` on `input`/`output` until EOF, cancellation or SIGTERM,
/// then shut every thread down. [`run_mcp_server`] is this on stdio.
pub async fn serve_mcp_server<R, W>(server: TillerMcpServer, input: R, output: W) -> Result<()>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let mut sigterm = signal(SignalKind::terminate()).ok();
    let running = server
        .clone()
        .serve(LineTransport::new(input, output))
        .await
        .map_err(|e| McpServerError::Initialize(e.to_string()))?;
    let cancel = running.cancellation_token();
    let waiting = running.waiting();
    tokio::pin!(waiting);
    let outcome = tokio::select! {
        outcome = &mut waiting => Some(outcome),
        () = terminated(&mut sigterm) => None,
    };
    let outcome = match outcome {
        Some(outcome) => outcome,
        None => {
            cancel.cancel();
            waiting.await
        }
    };
    server.shutdown(SHUTDOWN_DEADLINE).await;
    outcome
        .map(|reason| tracing::debug!(?reason, "MCP server stopped"))
        .map_err(|e| McpServerError::Serve(e.to_string()))
}

async fn terminated(sigterm: &mut Option<tokio::signal::unix::Signal>) {
    match sigterm {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
