//! Where clients connect: stdio (one client, the process's stdin and stdout),
//! a unix socket or a TCP port (any number of clients, each speaking
//! WebSocket: one JSON-RPC message per text frame), as Codex 0.171's
//! `app-server --listen stdio://|unix://|unix://PATH|ws://IP:PORT`.
//!
//! A TCP listener on a non-loopback address needs `--ws-auth
//! capability-token --ws-token-file PATH`: a client then presents
//! `Authorization: Bearer <token>` in its WebSocket handshake or is refused
//! (HTTP 401) before it can send anything. A unix socket is created mode 0600
//! in a folder only its owner can enter.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{SignalKind, signal};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, http};

use crate::connection::Connection;
use crate::hub::{AppServerOptions, Hub};
use crate::outgoing::Outgoing;

/// The largest WebSocket message read; a larger one closes the connection.
/// Messages over [`crate::MAX_LINE_BYTES`] and up to this are answered with an
/// error, as a too-long line is on stdio.
const MAX_WS_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Where the server listens (`--listen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `stdio://`: the process's stdin and stdout, one client.
    Stdio,
    /// `unix://PATH` (`unix://` alone: `$TILLER_HOME/app-server-control/app-server-control.sock`).
    Unix(Option<PathBuf>),
    /// `ws://IP:PORT`.
    Tcp(SocketAddr),
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(url: &str) -> Result<Listen, String> {
        if url == "stdio://" || url == "stdio" {
            return Ok(Listen::Stdio);
        }
        if let Some(path) = url.strip_prefix("unix://") {
            return Ok(Listen::Unix(
                (!path.is_empty()).then(|| PathBuf::from(path)),
            ));
        }
        if let Some(address) = url.strip_prefix("ws://") {
            return address
                .trim_end_matches('/')
                .parse()
                .map(Listen::Tcp)
                .map_err(|_| format!("invalid --listen URL `{url}`: expected ws://IP:PORT"));
        }
        Err(format!(
            "unsupported --listen URL `{url}`: expected stdio://, unix://, unix://PATH or ws://IP:PORT"
        ))
    }
}

/// How WebSocket clients prove who they are (`--ws-auth`).
#[derive(Clone, Default)]
pub struct WsAuth {
    /// The capability token every TCP client presents as a bearer token.
    token: Option<Arc<str>>,
}

impl std::fmt::Debug for WsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsAuth")
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl WsAuth {
    /// No authentication (loopback and unix sockets only).
    pub fn none() -> WsAuth {
        WsAuth::default()
    }

    /// `--ws-auth capability-token --ws-token-file PATH`: the token is the
    /// file's content, trimmed; it must not be empty.
    pub fn capability_token_file(path: &Path) -> Result<WsAuth, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --ws-token-file {}: {e}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(format!("--ws-token-file {} is empty", path.display()));
        }
        tiller_core::secrets::register(token);
        Ok(WsAuth {
            token: Some(Arc::from(token)),
        })
    }

    /// Whether `request` may open a connection: it carries the token, if one
    /// is required.
    fn admits(&self, request: &Request) -> Result<(), &'static str> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let header = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .ok_or("missing websocket bearer token")?
            .to_str()
            .map_err(|_| "invalid authorization header")?;
        let Some((scheme, given)) = header.split_once(' ') else {
            return Err("invalid authorization header");
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err("invalid authorization header");
        }
        if constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
            Ok(())
        } else {
            Err("invalid websocket bearer token")
        }
    }
}

/// Equal bytes, compared in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serve on `listen` until stdin's EOF (stdio) or SIGTERM/SIGINT (sockets),
/// then interrupt every running turn; returns the exit code.
pub async fn serve(listen: Listen, auth: WsAuth, options: AppServerOptions) -> Result<i32, String> {
    match listen {
        Listen::Stdio => {
            Ok(
                crate::server::run_app_server(tokio::io::stdin(), tokio::io::stdout(), options)
                    .await,
            )
        }
        Listen::Unix(path) => {
            let path = path.unwrap_or_else(|| {
                options
                    .tiller_home
                    .join("app-server-control")
                    .join("app-server-control.sock")
            });
            let listener = bind_private_socket(&path)?;
            announce(&format!("unix://{}", path.display()));
            let hub = Arc::new(Hub::new(options));
            let code = accept_loop(hub, |hub| {
                let listener = &listener;
                async move {
                    let (stream, _) = listener.accept().await?;
                    // A local socket of mode 0600: its owner needs no token.
                    tokio::spawn(websocket_connection(stream, hub, WsAuth::none()));
                    Ok(())
                }
            })
            .await;
            let _ = std::fs::remove_file(&path);
            Ok(code)
        }
        Listen::Tcp(address) => {
            if !address.ip().is_loopback() && auth.token.is_none() {
                return Err(format!(
                    "refusing to listen on {address} without authentication: a non-loopback address needs --ws-auth capability-token --ws-token-file PATH"
                ));
            }
            let listener = TcpListener::bind(address)
                .await
                .map_err(|e| format!("cannot listen on {address}: {e}"))?;
            let bound = listener
                .local_addr()
                .map_err(|e| format!("cannot listen on {address}: {e}"))?;
            announce(&format!("ws://{bound}"));
            let hub = Arc::new(Hub::new(options));
            let code = accept_loop(hub, |hub| {
                let listener = &listener;
                let auth = auth.clone();
                async move {
                    let (stream, _) = listener.accept().await?;
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(websocket_connection(stream, hub, auth));
                    Ok(())
                }
            })
            .await;
            Ok(code)
        }
    }
}

/// Say where the server listens, on stderr (stdout is not the protocol here).
fn announce(url: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "tiller app-server listening on {url}");
}

/// Accept connections until SIGTERM or SIGINT; then stop every thread.
async fn accept_loop<F, Fut>(hub: Arc<Hub>, accept: F) -> i32
where
    F: Fn(Arc<Hub>) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    let mut sigterm = signal(SignalKind::terminate()).ok();
    let mut sigint = signal(SignalKind::interrupt()).ok();
    loop {
        tokio::select! {
            accepted = accept(Arc::clone(&hub)) => {
                if let Err(e) = accepted {
                    tracing::warn!("could not accept a connection: {e}");
                    // A full file table must not spin the loop.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
            () = received(&mut sigterm) => break,
            () = received(&mut sigint) => break,
        }
    }
    hub.shutdown().await;
    0
}

async fn received(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Bind a unix socket at `path`, mode 0600, in a folder only its owner can
/// enter (created 0700 if missing). A stale socket left by a dead server is
/// replaced; a live one is not.
fn bind_private_socket(path: &Path) -> Result<UnixListener, String> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !folder.exists() {
        std::fs::create_dir_all(folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {} private: {e}", folder.display()))?;
    }
    let mode = std::fs::metadata(folder)
        .map_err(|e| format!("cannot read {}: {e}", folder.display()))?
        .permissions()
        .mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "{} is writable by others; put the socket in a private folder",
            folder.display()
        ));
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("{} is in use by a running server", path.display()));
        }
        let is_socket = std::fs::symlink_metadata(path)
            .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            .unwrap_or(false);
        if !is_socket {
            return Err(format!("{} exists and is not a socket", path.display()));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot make {} private: {e}", path.display()))?;
    Ok(listener)
}

/// One WebSocket client: the handshake (refused without the token, if one is
/// required), then text frames in, text frames out, until either side closes
/// or the client falls too far behind. Its threads run on.
async fn websocket_connection<S>(stream: S, hub: Arc<Hub>, auth: WsAuth)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // tungstenite's callback type returns the whole refusal by value.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        auth.admits(request).map(|()| response).map_err(|reason| {
            let mut refused = ErrorResponse::new(Some(reason.to_string()));
            *refused.status_mut() = StatusCode::UNAUTHORIZED;
            refused
        })
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_WS_MESSAGE_BYTES));
    let websocket =
        match tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config)).await {
            Ok(websocket) => websocket,
            Err(e) => return tracing::debug!("a websocket handshake failed: {e}"),
        };
    let (sink, mut incoming) = websocket.split();
    let (out, writer) = Outgoing::frames(sink);
    let writer = tokio::spawn(writer);
    let mut connection = Connection::new(hub, out.clone());
    loop {
        tokio::select! {
            message = incoming.next() => match message {
                Some(Ok(Message::Text(text))) => connection.bytes(text.as_bytes()).await,
                Some(Ok(Message::Binary(bytes))) => connection.bytes(&bytes).await,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            () = out.dropped() => break,
        }
    }
    connection.close();
    drop(out);
    let _ = writer.await;
}
