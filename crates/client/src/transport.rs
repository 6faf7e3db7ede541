//! How a connection's lines get to the server and back: a child's pipes, a
//! WebSocket (over a unix socket or TCP), or the streams of a server in this
//! process. Each transport is one reader task and one writer task around the
//! connection's actor ([`crate::connection`]), which sees only lines, so
//! every transport behaves the same once it is open.

use std::process::Stdio;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, Command as ProcessCommand};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::connection::{ConnectionHandle, start_actor};
use crate::error::ClientError;
use crate::event::ClientEvent;
use crate::options::{ClientOptions, Endpoint};

/// The longest line read from an in-process server; a longer one is logged
/// and the connection treated as closed, never buffered further.
const MAX_IN_PROCESS_LINE_BYTES: usize = 64 << 20;

/// Start the server and the actor that owns it.
pub(crate) fn spawn(
    options: &ClientOptions,
    generation: u64,
    events: mpsc::UnboundedSender<ClientEvent>,
) -> Result<ConnectionHandle, ClientError> {
    let mut command = ProcessCommand::new(&options.program);
    command
        .args(&options.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(if options.inherit_stderr {
            Stdio::inherit()
        } else {
            Stdio::piped()
        })
        // Backstop only: the actor reaps the server itself.
        .kill_on_drop(true);
    for key in &options.env_remove {
        command.env_remove(key);
    }
    for (key, value) in &options.env {
        command.env(key, value);
    }
    if let Some(cwd) = &options.cwd {
        command.current_dir(cwd);
    }
    let mut child = command.spawn()?;
    let pid = child.id();
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(ClientError::Io(std::io::Error::other(
            "the server's stdin or stdout is not a pipe",
        )));
    };

    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(log_stderr(stderr, pid));
    }
    let (writer, lines) = mpsc::unbounded_channel();
    tokio::spawn(write_lines(stdin, lines));
    let (lines_tx, incoming) = mpsc::unbounded_channel();
    // A child's lines are read whole, however long, as they always were.
    tokio::spawn(read_lines(stdout, lines_tx, usize::MAX));
    Ok(start_actor(
        Some(child),
        writer,
        incoming,
        options,
        generation,
        events,
    ))
}

/// Connect to the server at `endpoint` (WebSocket over a unix socket or TCP,
/// or JSON lines over the streams of an in-process connector) and start the
/// actor that owns the connection.
pub(crate) async fn connect(
    endpoint: &Endpoint,
    options: &ClientOptions,
    generation: u64,
    events: mpsc::UnboundedSender<ClientEvent>,
) -> Result<ConnectionHandle, ClientError> {
    let refused = |e: tokio_tungstenite::tungstenite::Error| {
        ClientError::Io(std::io::Error::other(format!(
            "the WebSocket handshake failed: {e}"
        )))
    };
    let (writer, lines) = mpsc::unbounded_channel();
    let (lines_tx, incoming) = mpsc::unbounded_channel();
    match endpoint {
        Endpoint::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path).await?;
            let (websocket, _) = tokio_tungstenite::client_async("ws://localhost/", stream)
                .await
                .map_err(refused)?;
            let (sink, stream) = websocket.split();
            tokio::spawn(write_frames(sink, lines));
            tokio::spawn(read_frames(stream, lines_tx));
        }
        Endpoint::WebSocket { url, token } => {
            let address = url
                .strip_prefix("ws://")
                .map(|rest| rest.split('/').next().unwrap_or(rest))
                .ok_or_else(|| ClientError::Protocol(format!("not a ws:// URL: {url}")))?;
            let stream = tokio::net::TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            let mut request = url.as_str().into_client_request().map_err(refused)?;
            if let Some(token) = token {
                let value = format!("Bearer {token}")
                    .parse()
                    .map_err(|_| ClientError::Protocol("the token is not a header value".into()))?;
                request.headers_mut().insert("Authorization", value);
            }
            let (websocket, _) = tokio_tungstenite::client_async(request, stream)
                .await
                .map_err(refused)?;
            let (sink, stream) = websocket.split();
            tokio::spawn(write_frames(sink, lines));
            tokio::spawn(read_frames(stream, lines_tx));
        }
        Endpoint::InProcess(connector) => {
            let (reader, writer) = connector.open()?;
            tokio::spawn(write_lines(writer, lines));
            tokio::spawn(read_lines(reader, lines_tx, MAX_IN_PROCESS_LINE_BYTES));
        }
    }
    Ok(start_actor(
        None, writer, incoming, options, generation, events,
    ))
}

/// The server's output (a child's stdout, or an in-process stream), line by
/// line, to the actor, until it ends, fails, or sends a line longer than
/// `max_line_bytes`: all three look like the server closing its output.
async fn read_lines<R>(output: R, lines: mpsc::UnboundedSender<String>, max_line_bytes: usize)
where
    R: AsyncRead + Unpin,
{
    let mut reader = BufReader::new(output);
    // One byte more than a line may have, so that a line too long is told
    // apart from one just long enough.
    let limit = u64::try_from(max_line_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader).take(limit).read_until(b'\n', &mut buf).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("reading the app-server's output failed: {e}");
                return;
            }
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        } else if buf.len() > max_line_bytes {
            tracing::warn!(
                "the app-server sent a line longer than {max_line_bytes} bytes; closing the connection"
            );
            return;
        }
        // Otherwise the last line, without its newline: the output ended.
        let line = match String::from_utf8(std::mem::take(&mut buf)) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!("reading the app-server's output failed: {e}");
                return;
            }
        };
        if lines.send(line).is_err() {
            return;
        }
    }
}

/// The only writer of a WebSocket connection: one text frame per message;
/// when every sender is gone, a close frame.
async fn write_frames<S>(mut sink: S, mut lines: mpsc::UnboundedReceiver<String>)
where
    S: futures::Sink<Message> + Unpin,
{
    while let Some(line) = lines.recv().await {
        let text = line.trim_end_matches('\n').to_owned();
        if sink.send(Message::text(text)).await.is_err() {
            tracing::debug!("could not write to the app-server's socket");
            return;
        }
    }
    let _ = sink.close().await;
}

/// A WebSocket connection's text frames, to the actor, until it closes.
async fn read_frames<S>(mut stream: S, lines: mpsc::UnboundedSender<String>)
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(message) = stream.next().await {
        let line = match message {
            Ok(Message::Text(text)) => text.as_str().to_owned(),
            Ok(Message::Binary(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(Message::Close(frame)) => {
                if let Some(frame) = frame {
                    tracing::warn!(reason = %frame.reason, "the app-server closed the connection");
                }
                return;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!("the app-server's socket failed: {e}");
                return;
            }
        };
        if lines.send(line).is_err() {
            return;
        }
    }
}

/// The only writer of the server's input (a child's stdin, or an in-process
/// stream). Dropping every sender shuts it down, so the server sees EOF:
/// that is how it is asked to exit (a child) or to close (in process).
async fn write_lines<W>(mut input: W, mut lines: mpsc::UnboundedReceiver<String>)
where
    W: AsyncWrite + Unpin,
{
    while let Some(line) = lines.recv().await {
        if let Err(e) = async {
            input.write_all(line.as_bytes()).await?;
            input.flush().await
        }
        .await
        {
            // The server is going away; the actor notices on its output.
            tracing::debug!("could not write to the app-server: {e}");
            return;
        }
    }
    if let Err(e) = input.shutdown().await {
        tracing::debug!("could not close the app-server's input: {e}");
    }
}

async fn log_stderr(stderr: ChildStderr, pid: Option<u32>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "tiller_client::server", pid, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(mut lines: mpsc::UnboundedReceiver<String>) -> Vec<String> {
        let mut all = Vec::new();
        while let Ok(line) = lines.try_recv() {
            all.push(line);
        }
        all
    }

    #[tokio::test]
    async fn a_line_longer_than_the_limit_ends_the_connection() {
        let (mut server, client) = tokio::io::duplex(1024);
        let (tx, rx) = mpsc::unbounded_channel();
        let reading = tokio::spawn(read_lines(client, tx, 8));
        server
            .write_all(b"one\r\n12345678\nnine-long\nnever read\n")
            .await
            .unwrap();
        // It stops by itself, with the server's end still open.
        reading.await.unwrap();
        assert_eq!(received(rx), ["one", "12345678"]);
    }

    #[tokio::test]
    async fn a_last_line_without_its_newline_is_read_at_eof() {
        let (mut server, client) = tokio::io::duplex(1024);
        let (tx, rx) = mpsc::unbounded_channel();
        let reading = tokio::spawn(read_lines(client, tx, usize::MAX));
        server.write_all(b"a\n\nb").await.unwrap();
        drop(server);
        reading.await.unwrap();
        assert_eq!(received(rx), ["a", "", "b"]);
    }

    #[tokio::test]
    async fn the_writer_shuts_its_half_down_once_every_sender_is_gone() {
        let (mut server, client) = tokio::io::duplex(1024);
        // The read half lives on, so only a shutdown can end the stream.
        let (_read_half, write_half) = tokio::io::split(client);
        let (tx, rx) = mpsc::unbounded_channel();
        let writing = tokio::spawn(write_lines(write_half, rx));
        tx.send("{\"id\":1}\n".to_owned()).unwrap();
        drop(tx);
        let mut written = String::new();
        server.read_to_string(&mut written).await.unwrap();
        assert_eq!(written, "{\"id\":1}\n");
        writing.await.unwrap();
    }
}
