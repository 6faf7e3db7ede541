//! The one writer of stdout: lines go through a channel, in order.
//!
//! # A client that stops reading
//!
//! The queue is measured in bytes. Past [`MAX_QUEUED_DELTA_BYTES`] queued,
//! `item/commandExecution/outputDelta` notifications are dropped: they are the
//! one coalescible kind (a command's output is unbounded, and its
//! `item/completed` carries the aggregated output whatever the deltas did).
//! Nothing else is ever dropped, not a response, not a terminal notification;
//! instead, past [`MAX_QUEUED_BYTES`] the server stops reading requests
//! ([`Outgoing::room`]) until the client has read enough, so a client that
//! sends without reading cannot grow the queue either. Agent message deltas are
//! kept: they are bounded by what the model says, and clients build the answer
//! from them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use tiller_app_server_protocol::{JsonRpcError, OutgoingMessage, RequestId, ServerNotification};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};

/// Past this many bytes queued for the client, command output deltas are dropped.
pub(crate) const MAX_QUEUED_DELTA_BYTES: usize = 1024 * 1024;

/// Past this many bytes queued for the client, requests are not read.
pub(crate) const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

/// A cheap handle for writing protocol lines.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    tx: mpsc::UnboundedSender<String>,
    queue: Arc<QueueSize>,
}

/// Bytes queued and not yet written, and a wake-up when they shrink.
#[derive(Debug, Default)]
struct QueueSize {
    bytes: AtomicUsize,
    shrunk: Notify,
}

impl Outgoing {
    /// A handle and the task body that writes to `out` until every handle is gone.
    pub(crate) fn new<W: AsyncWrite + Unpin + Send + 'static>(
        out: W,
    ) -> (Outgoing, impl std::future::Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = Arc::new(QueueSize::default());
        (
            Outgoing {
                tx,
                queue: Arc::clone(&queue),
            },
            write_loop(out, rx, queue),
        )
    }

    fn send(&self, message: &OutgoingMessage, coalescible: bool) {
        let line = match serde_json::to_string(message) {
            Ok(line) => line,
            Err(e) => return tracing::error!("could not serialize an outgoing message: {e}"),
        };
        let len = line.len() + 1;
        let before = self.queue.bytes.fetch_add(len, Ordering::AcqRel);
        if coalescible && before + len > MAX_QUEUED_DELTA_BYTES {
            self.queue.bytes.fetch_sub(len, Ordering::AcqRel);
            return;
        }
        // The writer lives until every handle is dropped.
        if self.tx.send(line).is_err() {
            self.queue.bytes.fetch_sub(len, Ordering::AcqRel);
        }
    }

    /// Wait until fewer than [`MAX_QUEUED_BYTES`] are queued: the reader of
    /// requests waits here, so a client that does not read is not served more.
    pub(crate) async fn room(&self) {
        loop {
            let shrunk = self.queue.shrunk.notified();
            if self.queue.bytes.load(Ordering::Acquire) < MAX_QUEUED_BYTES {
                return;
            }
            shrunk.await;
        }
    }

    pub(crate) fn respond(&self, id: RequestId, result: Value) {
        self.send(&OutgoingMessage::Response { id, result }, false);
    }

    pub(crate) fn respond_with<T: serde::Serialize>(&self, id: RequestId, result: &T) {
        match serde_json::to_value(result) {
            Ok(result) => self.respond(id, result),
            Err(e) => self.error(
                Some(id),
                JsonRpcError::new(
                    tiller_app_server_protocol::ErrorCode::InternalError,
                    format!("could not serialize the result: {e}"),
                ),
            ),
        }
    }

    pub(crate) fn error(&self, id: Option<RequestId>, error: JsonRpcError) {
        self.send(&OutgoingMessage::Error { id, error }, false);
    }

    pub(crate) fn notify(&self, notification: &ServerNotification) {
        let coalescible = matches!(
            notification,
            ServerNotification::CommandExecutionOutputDelta(_)
        );
        self.send(
            &OutgoingMessage::Notification {
                method: notification.method().to_string(),
                params: notification.params(),
            },
            coalescible,
        );
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut out: W,
    mut rx: mpsc::UnboundedReceiver<String>,
    queue: Arc<QueueSize>,
) {
    let written = |bytes: usize| {
        queue.bytes.fetch_sub(bytes, Ordering::AcqRel);
        queue.shrunk.notify_waiters();
    };
    let mut broken = false;
    while let Some(line) = rx.recv().await {
        let mut batch = line;
        batch.push('\n');
        // Take whatever else is queued so one write (and flush) carries it,
        // up to a bound so a backlog is written (and accounted) in steps.
        while batch.len() < 1024 * 1024
            && let Ok(more) = rx.try_recv()
        {
            batch.push_str(&more);
            batch.push('\n');
        }
        if !broken && (out.write_all(batch.as_bytes()).await.is_err() || out.flush().await.is_err())
        {
            // The client is gone; keep draining so senders never wait.
            broken = true;
        }
        written(batch.len());
    }
}
