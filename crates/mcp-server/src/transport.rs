//! Newline-delimited JSON-RPC over a reader and a writer, answering lines it
//! cannot read.
//!
//! rmcp's own stdio transport skips a line that is not JSON without a word (so
//! an echoing peer cannot start an error storm). A caller that sent a broken
//! request would then wait forever, so this transport answers it, once per
//! line, as JSON-RPC 2.0 asks: `-32700 Parse error` for a line that is not
//! JSON, `-32600 Invalid Request` for JSON that is not a JSON-RPC message (with
//! the line's `id` when it has one) or a line over [`MAX_LINE_BYTES`]. It never
//! answers a message that is itself a response or an error, so two such
//! servers cannot echo each other forever.

use std::sync::Arc;

use futures::StreamExt;
use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

/// The longest line read; a longer one is answered with an error and skipped,
/// never buffered whole.
pub const MAX_LINE_BYTES: usize = 10 * 1024 * 1024;

/// JSON-RPC's parse error code.
const PARSE_ERROR: i64 = -32700;
/// JSON-RPC's invalid request code.
const INVALID_REQUEST: i64 = -32600;

/// A [`Transport`] on `input` / `output`, one JSON message per line.
pub(crate) struct LineTransport<R, W> {
    lines: FramedRead<R, LinesCodec>,
    output: Arc<Mutex<W>>,
}

impl<R, W> LineTransport<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    pub(crate) fn new(input: R, output: W) -> LineTransport<R, W> {
        LineTransport {
            lines: FramedRead::new(input, LinesCodec::new_with_max_length(MAX_LINE_BYTES)),
            output: Arc::new(Mutex::new(output)),
        }
    }

    /// Answer a line that could not be read, without blocking the reader
    /// (`receive` must stay cancel-safe: it is polled in a `select!`).
    fn answer(&self, code: i64, message: String, id: Value) {
        let line = json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": code, "message": message},
        })
        .to_string();
        let output = Arc::clone(&self.output);
        tokio::spawn(async move {
            if let Err(e) = write_line(&output, line).await {
                tracing::debug!("could not answer a malformed line: {e}");
            }
        });
    }

    /// The answer to `line`, which is not a message rmcp can take.
    fn reject(&self, line: &str) {
        let value: Value = match serde_json::from_str(line) {
            Ok(value) => value,
            Err(e) => {
                tracing::debug!("unparsable line: {e}");
                return self.answer(PARSE_ERROR, format!("Parse error: {e}"), Value::Null);
            }
        };
        let is_reply = value.get("result").is_some() || value.get("error").is_some();
        if is_reply {
            tracing::debug!("ignoring a malformed response");
            return;
        }

        let id = value
            .get("id")
            .filter(|id| id.is_string() || id.is_number())
            .cloned()
            .unwrap_or(Value::Null);
        self.answer(
            INVALID_REQUEST,
            "Invalid Request: not a JSON-RPC 2.0 request or notification this server knows"
                .to_string(),
            id,
        );
    }
}

async fn write_line<W: AsyncWrite + Unpin>(
    output: &Mutex<W>,
    mut line: String,
) -> std::io::Result<()> {
    line.push('\n');
    // The whole line is written under the lock: lines never interleave.
    let mut output = output.lock().await;
    output.write_all(line.as_bytes()).await?;
    output.flush().await
}

impl<R, W> Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let output = Arc::clone(&self.output);
        async move {
            let line = serde_json::to_string(&item).map_err(std::io::Error::other)?;
            write_line(&output, line).await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            let line = match self.lines.next().await? {
                Ok(line) => line,
                Err(LinesCodecError::MaxLineLengthExceeded) => {
                    self.answer(
                        INVALID_REQUEST,
                        format!("line longer than {MAX_LINE_BYTES} bytes; skipped"),
                        Value::Null,
                    );
                    continue;
                }
                Err(LinesCodecError::Io(e)) => {
                    tracing::error!("could not read the input: {e}");
                    return None;
                }
            };
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<RxJsonRpcMessage<RoleServer>>(line) {
                Ok(message) => return Some(message),
                Err(_) => self.reject(line),
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.output.lock().await.shutdown().await
    }
}
