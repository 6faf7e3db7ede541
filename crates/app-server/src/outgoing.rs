//! One connection's writer: messages go through a channel, in order, to the
//! one task that writes them (lines on stdio, text frames on a WebSocket).
//!
//! # A client that stops reading
//!
//! The queue is measured in bytes. Past [`MAX_QUEUED_DELTA_BYTES`] queued,
//! `item/commandExecution/outputDelta` notifications are dropped: they are the
//! one coalescible kind (a command's output is unbounded, and its
//! `item/completed` carries the aggregated output whatever the deltas did).
//! Nothing else is ever dropped silently. Then:
//! - on stdio (the one client of the process), past [`MAX_QUEUED_BYTES`] the
//!   server stops reading requests ([`Outgoing::room`]) until the client has
//!   read enough, so a client that sends without reading cannot grow the
//!   queue either;
//! - on a socket (one client among many), a message that finds more than
//!   [`MAX_BEHIND_BYTES`] already queued closes the connection with the
//!   reason (WebSocket close code 1008), so it never holds up the others or
//!   the engine; its threads run on, and a new connection can resume them.
//!   The limit is four times the largest event a model may send, and it is
//!   the backlog *before* a message that counts: a client that reads is
//!   never closed because one message (a long agent message, a long
//!   thread's `thread/resume`) is large.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use futures::{Sink, SinkExt};
use serde_json::Value;
use tiller_app_server_protocol::{JsonRpcError, OutgoingMessage, RequestId, ServerNotification};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Past this many bytes queued for a client, command output deltas are dropped.
pub(crate) const MAX_QUEUED_DELTA_BYTES: usize = 1024 * 1024;

/// Past this many bytes queued for the stdio client, the server stops
/// reading its requests.
pub(crate) const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

/// A socket connection with more than this many bytes queued when another
/// message comes is closed.
pub(crate) const MAX_BEHIND_BYTES: usize = 64 * 1024 * 1024;

/// What to do with a client that falls behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenBehind {
    /// Stop reading its requests until it catches up (stdio).
    Wait,
    /// Close the connection (sockets).
    Close,
}

/// Which connection a message goes to.
pub(crate) type ConnectionId = u64;

/// A new connection's id.
pub(crate) fn next_connection_id() -> ConnectionId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// How long a connection closed for falling behind is given to take the
/// close frame.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A cheap handle for writing to one connection.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    id: ConnectionId,
    tx: mpsc::UnboundedSender<String>,
    queue: Arc<QueueSize>,
    when_behind: WhenBehind,
}

/// Bytes queued and not yet written, and a wake-up when they shrink.
#[derive(Debug, Default)]
struct QueueSize {
    bytes: AtomicUsize,
    shrunk: Notify,
    /// The connection is gone, or is being closed for falling behind.
    dropped: AtomicBool,
    /// Wakes the writer of a connection that fell behind.
    kick: Notify,
}

impl Outgoing {
    /// A handle and its channel's receiving end, for one of the write loops.
    fn new(when_behind: WhenBehind) -> (Outgoing, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Outgoing {
                id: next_connection_id(),
                tx,
                queue: Arc::new(QueueSize::default()),
                when_behind,
            },
            rx,
        )
    }

    /// A handle, and the task body writing lines to `out` until every handle
    /// is gone.
    pub(crate) fn lines<W: AsyncWrite + Unpin + Send + 'static>(
        out: W,
    ) -> (Outgoing, impl std::future::Future<Output = ()> + Send) {
        let (outgoing, rx) = Outgoing::new(WhenBehind::Wait);
        let queue = Arc::clone(&outgoing.queue);
        (outgoing, write_lines(out, rx, queue))
    }

    /// A handle, and the task body writing text frames to `sink` until every
    /// handle is gone or the connection is closed for falling behind.
    pub(crate) fn frames<S>(sink: S) -> (Outgoing, impl std::future::Future<Output = ()> + Send)
    where
        S: Sink<Message> + Unpin + Send + 'static,
    {
        let (outgoing, rx) = Outgoing::new(WhenBehind::Close);
        let queue = Arc::clone(&outgoing.queue);
        (outgoing, write_frames(sink, rx, queue))
    }

    /// The connection's id.
    pub(crate) fn id(&self) -> ConnectionId {
        self.id
    }

    /// Whether the connection is gone (its writer stopped, or it was closed
    /// for falling behind): nothing more is sent to it.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.queue.dropped.load(Ordering::Acquire)
    }

    fn send(&self, message: &OutgoingMessage, coalescible: bool) {
        if self.queue.dropped.load(Ordering::Acquire) {
            return;
        }
        match serde_json::to_string(message) {
            Ok(line) => self.send_line(line, coalescible),
            Err(e) => tracing::error!("could not serialize an outgoing message: {e}"),
        }
    }

    /// Whether a coalescible notification would be sent now (the client is
    /// not [`MAX_QUEUED_DELTA_BYTES`] behind): if no subscriber would take
    /// it, it is not even serialized.
    pub(crate) fn takes_deltas(&self) -> bool {
        !self.queue.dropped.load(Ordering::Acquire)
            && self.queue.bytes.load(Ordering::Acquire) < MAX_QUEUED_DELTA_BYTES
    }

    /// Send a notification serialized once for every subscriber.
    pub(crate) fn send_prepared(&self, prepared: &Prepared) {
        if !self.queue.dropped.load(Ordering::Acquire) {
            self.send_line(prepared.line.clone(), prepared.coalescible);
        }
    }

    fn send_line(&self, line: String, coalescible: bool) {
        let len = line.len() + 1;
        let before = self.queue.bytes.fetch_add(len, Ordering::AcqRel);
        if coalescible && before + len > MAX_QUEUED_DELTA_BYTES {
            self.queue.bytes.fetch_sub(len, Ordering::AcqRel);
            return;
        }
        if self.when_behind == WhenBehind::Close && before > MAX_BEHIND_BYTES {
            self.queue.bytes.fetch_sub(len, Ordering::AcqRel);
            if !self.queue.dropped.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    connection = self.id,
                    "closing a connection more than {MAX_BEHIND_BYTES} bytes behind"
                );
                self.queue.kick.notify_one();
                self.queue.shrunk.notify_waiters();
            }
            return;
        }
        // The writer lives until every handle is dropped.
        if self.tx.send(line).is_err() {
            self.queue.bytes.fetch_sub(len, Ordering::AcqRel);
        }
    }

    /// Wait until fewer than [`MAX_QUEUED_BYTES`] are queued: the reader of
    /// a stdio client's requests waits here, so a client that does not read is
    /// not served more.
    pub(crate) async fn room(&self) {
        loop {
            let shrunk = self.queue.shrunk.notified();
            if self.queue.bytes.load(Ordering::Acquire) < MAX_QUEUED_BYTES {
                return;
            }
            shrunk.await;
        }
    }

    /// Wait until the connection is closed for falling behind.
    pub(crate) async fn dropped(&self) {
        loop {
            let shrunk = self.queue.shrunk.notified();
            if self.queue.dropped.load(Ordering::Acquire) {
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

    /// A request of the server's (an approval, an elicitation).
    pub(crate) fn request(&self, id: RequestId, method: &str, params: Value) {
        self.send(
            &OutgoingMessage::Request {
                id,
                method: method.to_string(),
                params,
            },
            false,
        );
    }

    pub(crate) fn notify(&self, notification: &ServerNotification) {
        if let Some(prepared) = Prepared::notification(notification) {
            self.send_prepared(&prepared);
        }
    }
}

/// A notification serialized once, to be sent to several connections.
#[derive(Debug)]
pub(crate) struct Prepared {
    line: String,
    coalescible: bool,
}

impl Prepared {
    /// Whether `notification` may be dropped for a client that is behind.
    pub(crate) fn is_coalescible(notification: &ServerNotification) -> bool {
        matches!(
            notification,
            ServerNotification::CommandExecutionOutputDelta(_)
        )
    }

    pub(crate) fn notification(notification: &ServerNotification) -> Option<Prepared> {
        let message = OutgoingMessage::Notification {
            method: notification.method().to_string(),
            params: notification.params(),
        };
        match serde_json::to_string(&message) {
            Ok(line) => Some(Prepared {
                line,
                coalescible: Prepared::is_coalescible(notification),
            }),
            Err(e) => {
                tracing::error!("could not serialize a notification: {e}");
                None
            }
        }
    }
}

/// Count `bytes` as written and wake a waiting reader.
fn written(queue: &QueueSize, bytes: usize) {
    queue.bytes.fetch_sub(bytes, Ordering::AcqRel);
    queue.shrunk.notify_waiters();
}

async fn write_lines<W: AsyncWrite + Unpin>(
    mut out: W,
    mut rx: mpsc::UnboundedReceiver<String>,
    queue: Arc<QueueSize>,
) {
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
        written(&queue, batch.len());
    }
}

async fn write_frames<S>(
    mut sink: S,
    mut rx: mpsc::UnboundedReceiver<String>,
    queue: Arc<QueueSize>,
) where
    S: Sink<Message> + Unpin,
{
    // Frames in order until the connection ends; a connection that fell too
    // far behind gets no more of them, only the close frame with the reason.
    let behind = loop {
        tokio::select! {
            biased;
            () = queue.kick.notified() => break true,
            out = rx.recv() => match out {
                Some(line) => {
                    let len = line.len() + 1;
                    let sent = tokio::select! {
                        biased;
                        () = queue.kick.notified() => break true,
                        sent = sink.send(Message::text(line)) => sent,
                    };
                    written(&queue, len);
                    if sent.is_err() {
                        break false;
                    }
                }
                None => break false,
            },
        }
    };
    if behind {
        let frame = CloseFrame {
            code: CloseCode::Policy,
            reason: format!(
                "too far behind: more than {} MiB unread",
                MAX_BEHIND_BYTES / (1024 * 1024)
            )
            .into(),
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame)))).await;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
    // Senders see the connection closed from now on.
    queue.dropped.store(true, Ordering::Release);
    queue.shrunk.notify_waiters();
}
