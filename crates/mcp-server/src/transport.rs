//! Newline-delimited JSON-RPC over a reader and a writer, answering lines it
//! cannot read.
//!
//! rmcp's own stdio transport skips a line that is not JSON without a word (so
//! an echoing peer cannot start an error storm). A caller that sent a broken
//! request would then wait forever, so this transport answers it, once per
//! line, as JSON-RPC 2.0 asks: `-32700 Parse error` for a line that is not
//! JSON (or not UTF-8), `-32600 Invalid Request` for JSON that is not a
//! JSON-RPC message (with the line's `id` when it has one) or a line over
//! [`MAX_LINE_BYTES`], which is skipped as it arrives, never buffered. It never
//! answers a message that is itself a response or an error, so two such
//! servers cannot echo each other forever. Lines are framed as bytes
//! ([`LineFramer`]): no input ends the server but the end of its input.

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tiller_jsonl::{Frame, LineFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

/// The longest line read; a longer one is answered with an error and skipped,
/// never buffered whole.
pub const MAX_LINE_BYTES: usize = 10 * 1024 * 1024;

/// JSON-RPC's parse error code.
const PARSE_ERROR: i64 = -32700;
/// JSON-RPC's invalid request code.
const INVALID_REQUEST: i64 = -32600;

/// A [`Transport`] on `input` / `output`, one JSON message per line.
pub(crate) struct LineTransport<R, W> {
    input: R,
    framer: LineFramer,
    buf: Vec<u8>,
    /// The input has ended.
    eof: bool,
    output: Arc<Mutex<W>>,
}

impl<R, W> LineTransport<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    pub(crate) fn new(input: R, output: W) -> LineTransport<R, W> {
        LineTransport {
            input,
            framer: LineFramer::new(MAX_LINE_BYTES),
            buf: vec![0; 64 * 1024],
            eof: false,
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
            let frame = match self.framer.next_frame() {
                Some(frame) => frame,
                None if self.eof => return None,
                None => {
                    // Cancel-safe: a read dropped before it completes took no bytes.
                    match self.input.read(&mut self.buf).await {
                        Ok(0) => {
                            self.eof = true;
                            match self.framer.finish() {
                                Some(frame) => frame,
                                None => return None,
                            }
                        }
                        Ok(n) => {
                            self.framer.push(&self.buf[..n]);
                            continue;
                        }
                        Err(e) => {
                            tracing::error!("could not read the input: {e}");
                            return None;
                        }
                    }
                }
            };
            let bytes = match frame {
                Frame::Line(bytes) => bytes,
                Frame::TooLong { .. } => {
                    self.answer(
                        INVALID_REQUEST,
                        format!("line longer than {MAX_LINE_BYTES} bytes; skipped"),
                        Value::Null,
                    );
                    continue;
                }
            };
            let line = match std::str::from_utf8(&bytes) {
                Ok(line) => line,
                Err(e) => {
                    self.answer(
                        PARSE_ERROR,
                        format!("Parse error: invalid UTF-8 at byte {}", e.valid_up_to()),
                        Value::Null,
                    );
                    continue;
                }
            };
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
