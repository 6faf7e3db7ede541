//! The one writer of stdout: lines go through a channel, in order.

use serde_json::Value;
use tiller_app_server_protocol::{JsonRpcError, OutgoingMessage, RequestId, ServerNotification};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// A cheap handle for writing protocol lines.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    tx: mpsc::UnboundedSender<String>,
}

impl Outgoing {
    /// A handle and the task body that writes to `out` until every handle is gone.
    pub(crate) fn new<W: AsyncWrite + Unpin + Send + 'static>(
        out: W,
    ) -> (Outgoing, impl std::future::Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Outgoing { tx }, write_loop(out, rx))
    }

    fn send(&self, message: &OutgoingMessage) {
        match serde_json::to_string(message) {
            // The writer lives until every handle is dropped.
            Ok(line) => {
                let _ = self.tx.send(line);
            }
            Err(e) => tracing::error!("could not serialize an outgoing message: {e}"),
        }
    }

    pub(crate) fn respond(&self, id: RequestId, result: Value) {
        self.send(&OutgoingMessage::Response { id, result });
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
        self.send(&OutgoingMessage::Error { id, error });
    }

    pub(crate) fn notify(&self, notification: &ServerNotification) {
        self.send(&OutgoingMessage::Notification {
            method: notification.method().to_string(),
            params: notification.params(),
        });
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut out: W, mut rx: mpsc::UnboundedReceiver<String>) {
    while let Some(line) = rx.recv().await {
        let mut batch = line;
        batch.push('\n');
        // Take whatever else is queued so one write (and flush) carries it.
        while let Ok(more) = rx.try_recv() {
            batch.push_str(&more);
            batch.push('\n');
        }
        if out.write_all(batch.as_bytes()).await.is_err() || out.flush().await.is_err() {
            // The client is gone; keep draining so senders never block.
            while rx.recv().await.is_some() {}
            return;
        }
    }
}
