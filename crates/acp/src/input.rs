//! The client's bytes, made safe for the ACP crate's reader: whole lines of
//! at most [`MAX_LINE_BYTES`], each valid UTF-8. The crate answers a line
//! that is not JSON with a parse error and reads on, but stops the whole
//! connection at a byte that is not UTF-8, and would buffer a line without
//! end. So a line that is not UTF-8, or too long, is handed on as a short
//! line that says so (not JSON: the client gets `-32700` naming it), and
//! the connection keeps serving.

use tiller_jsonl::{Frame, LineFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest line read (a prompt with a large embedded file fits).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Copy `from` to `to` line by line, replacing bad lines, until `from`
/// ends (then `to` is closed) or `to` is gone.
pub(crate) async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) {
    let mut framer = LineFramer::new(MAX_LINE_BYTES);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        framer.push(&buf[..read]);
        while let Some(frame) = framer.next_frame() {
            if to.write_all(&checked(frame)).await.is_err() {
                return;
            }
        }
    }
    if let Some(frame) = framer.finish() {
        let _ = to.write_all(&checked(frame)).await;
    }
    let _ = to.shutdown().await;
}

/// A frame as the line handed on, with its newline.
fn checked(frame: Frame) -> Vec<u8> {
    let mut line = match frame {
        Frame::Line(line) if std::str::from_utf8(&line).is_ok() => line,
        Frame::Line(line) => {
            format!("(a line of {} bytes that is not UTF-8)", line.len()).into_bytes()
        }
        Frame::TooLong { seen } => {
            format!("(a line longer than {MAX_LINE_BYTES} bytes, {seen} of them read, was skipped)")
                .into_bytes()
        }
    };
    line.push(b'\n');
    line
}
