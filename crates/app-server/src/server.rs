//! The stdio server: one client on stdin and stdout, lines in, requests
//! routed, shutdown on EOF or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use tiller_jsonl::LineFramer;
use tokio::io::AsyncReadExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::signal::unix::{SignalKind, signal};

use crate::connection::Connection;
use crate::hub::{AppServerOptions, Hub};
use crate::outgoing::Outgoing;

/// The longest line (or WebSocket message) the server reads; a longer one is
/// answered with an error and skipped, never buffered whole.
pub const MAX_LINE_BYTES: usize = 10 * 1024 * 1024;

/// How much is read from stdin at a time.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// How long what is queued for the client may take to go out at the end.
const FLUSH_DEADLINE: Duration = Duration::from_millis(900);

/// Serve `input` → `output` until EOF or SIGTERM; returns the exit code.
pub async fn run_app_server<R, W>(input: R, output: W, options: AppServerOptions) -> i32
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, writer) = Outgoing::lines(output);
    let writer = tokio::spawn(writer);
    let hub = Arc::new(Hub::new(options));
    let mut connection = Connection::new(Arc::clone(&hub), out);
    let mut sigterm = signal(SignalKind::terminate()).ok();
    let mut input = input;
    let mut framer = LineFramer::new(MAX_LINE_BYTES);
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    'serve: loop {
        while let Some(frame) = framer.next_frame() {
            connection.frame(frame).await;
        }
        // A client that does not read what it is sent is not read from.
        tokio::select! {
            () = connection.out().room() => {}
            () = terminated(&mut sigterm) => break 'serve,
        }
        let read = tokio::select! {
            read = input.read(&mut buf) => read,
            () = terminated(&mut sigterm) => break 'serve,
        };
        match read {
            Ok(0) | Err(_) => {
                if let Some(frame) = framer.finish() {
                    connection.frame(frame).await;
                }
                break;
            }
            Ok(n) => framer.push(&buf[..n]),
        }
    }
    hub.shutdown().await;
    connection.close();
    drop(hub);
    // What is queued goes out, unless the client stopped reading: then the
    // server does not wait for it.
    if tokio::time::timeout(FLUSH_DEADLINE, writer).await.is_err() {
        tracing::warn!("the client is not reading; exiting with lines unsent");
    }
    0
}

async fn terminated(sigterm: &mut Option<tokio::signal::unix::Signal>) {
    match sigterm {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
