//! How to start the server, and how long to wait for its answers.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

/// How long each method may take before the request fails with
/// [`ClientError::Timeout`](crate::ClientError::Timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// For methods without an entry of their own.
    pub default: Duration,
    per_method: HashMap<String, Duration>,
}

impl Default for Timeouts {
    /// Generous limits for a local server: starting or resuming a thread reads
    /// config and rollout files, an interrupt waits for tool processes to die.
    fn default() -> Timeouts {
        let seconds = [
            ("initialize", 10),
            ("thread/start", 30),
            ("thread/resume", 30),
            ("turn/start", 30),
            ("turn/steer", 10),
            ("turn/interrupt", 30),
            ("thread/interrupt", 30),
            ("thread/queue/add", 10),
            ("thread/queue/list", 10),
            ("thread/queue/delete", 10),
        ];
        Timeouts {
            default: Duration::from_secs(30),
            per_method: seconds
                .into_iter()
                .map(|(method, s)| (method.to_owned(), Duration::from_secs(s)))
                .collect(),
        }
    }
}

impl Timeouts {
    /// The limit for `method`.
    pub fn get(&self, method: &str) -> Duration {
        self.per_method.get(method).copied().unwrap_or(self.default)
    }

    /// Set the limit for `method`.
    pub fn set(&mut self, method: impl Into<String>, limit: Duration) {
        self.per_method.insert(method.into(), limit);
    }
}

/// Opens a new in-process connection: the client's read half and write half.
pub type Streams = (
    Pin<Box<dyn AsyncRead + Send>>,
    Pin<Box<dyn AsyncWrite + Send>>,
);

/// How to open a connection to a server running in this process (over a
/// `tokio::io::duplex` pair, say): called once per connection, so on every
/// [`Client::reconnect`](crate::Client::reconnect) too. The server reads
/// and writes the same JSON lines as on stdio.
#[derive(Clone)]
pub struct Connector(Arc<dyn Fn() -> std::io::Result<Streams> + Send + Sync>);

impl Connector {
    /// A connector that opens each connection with `f`.
    pub fn new(f: impl Fn() -> std::io::Result<Streams> + Send + Sync + 'static) -> Connector {
        Connector(Arc::new(f))
    }

    /// Open a connection.
    pub(crate) fn open(&self) -> std::io::Result<Streams> {
        (self.0)()
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Connector")
    }
}

/// Two connectors are equal when they are clones of one another.
impl PartialEq for Connector {
    fn eq(&self, other: &Connector) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Connector {}

/// A server that is already running: `tiller app-server --listen …`, or one
/// in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// WebSocket over the unix socket at this path (`unix://PATH`).
    Unix(PathBuf),
    /// WebSocket over TCP (`ws://IP:PORT`), with the capability token if the
    /// server asks for one (`--ws-auth capability-token`).
    WebSocket {
        /// The URL.
        url: String,
        /// Sent as `Authorization: Bearer …`.
        token: Option<String>,
    },
    /// The server in this process.
    InProcess(Connector),
}

/// How to start an app-server: `tiller app-server` or any compatible binary;
/// or, with [`ClientOptions::connect`], how to reach one that listens; or,
/// with [`ClientOptions::in_process`], how to reach one in this process.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The binary.
    pub program: PathBuf,
    /// Its arguments (`["app-server"]` from [`ClientOptions::new`]).
    pub args: Vec<OsString>,
    /// Variables added to the environment the server inherits.
    pub env: Vec<(OsString, OsString)>,
    /// Variables removed from the environment the server inherits.
    pub env_remove: Vec<OsString>,
    /// Its working folder; the client's when `None`.
    pub cwd: Option<PathBuf>,
    /// Per-method limits.
    pub timeouts: Timeouts,
    /// The `clientInfo.name` sent in `initialize`.
    pub client_name: String,
    /// Let the server's stderr (its logs) through to the client's stderr;
    /// otherwise each line is logged with `tracing` at debug level.
    pub inherit_stderr: bool,
    /// How long a server that was asked to stop (stdin closed) may take to
    /// exit before it is killed, and how long a server that closed its output
    /// may take to exit before it is killed.
    pub shutdown_grace: Duration,
    /// Connect to this server instead of starting one.
    pub endpoint: Option<Endpoint>,
    /// Hand the server's requests (approvals, elicitations) to the caller as
    /// [`ClientEvent::ServerRequest`](crate::ClientEvent::ServerRequest), to
    /// be answered with [`Client::respond`](crate::Client::respond); when
    /// false, each is refused at once (method not found).
    pub server_requests: bool,
}

impl ClientOptions {
    /// `program app-server` with the default timeouts.
    pub fn new(program: impl Into<PathBuf>) -> ClientOptions {
        ClientOptions {
            program: program.into(),
            args: vec!["app-server".into()],
            env: Vec::new(),
            env_remove: Vec::new(),
            cwd: None,
            timeouts: Timeouts::default(),
            client_name: "tiller-client".to_owned(),
            inherit_stderr: false,
            shutdown_grace: Duration::from_secs(5),
            endpoint: None,
            server_requests: false,
        }
    }

    /// Connect to a server listening at `url` (`unix://PATH` or
    /// `ws://IP:PORT`) instead of starting one. Shutting the client down
    /// closes the connection; the server and its threads go on, and
    /// [`Client::reconnect`](crate::Client::reconnect) connects again and
    /// resumes them.
    pub fn connect(url: &str) -> Result<ClientOptions, crate::ClientError> {
        let endpoint = if let Some(path) = url.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(crate::ClientError::Protocol(
                    "unix:// needs the socket's path".to_owned(),
                ));
            }
            Endpoint::Unix(PathBuf::from(path))
        } else if url.starts_with("ws://") {
            Endpoint::WebSocket {
                url: url.to_owned(),
                token: None,
            }
        } else {
            return Err(crate::ClientError::Protocol(format!(
                "{url} is neither unix://PATH nor ws://IP:PORT"
            )));
        };
        let mut options = ClientOptions::new(PathBuf::new());
        options.endpoint = Some(endpoint);
        Ok(options)
    }

    /// Talk to a server in this process, over the streams `connector` opens
    /// (one pair per connection). Shutting the client down closes its write
    /// half, as for a socket: the server sees EOF.
    pub fn in_process(connector: Connector) -> ClientOptions {
        let mut options = ClientOptions::new(PathBuf::new());
        options.endpoint = Some(Endpoint::InProcess(connector));
        options
    }

    /// Whether the server's requests (approvals, elicitations) come to the caller as
    /// [`ClientEvent::ServerRequest`](crate::ClientEvent::ServerRequest),
    /// to be answered with [`Client::respond`](crate::Client::respond),
    /// instead of being refused.
    pub fn server_requests(mut self, server_requests: bool) -> ClientOptions {
        self.server_requests = server_requests;
        self
    }

    /// Send `token` as the capability token (ws:// only).
    pub fn token(mut self, token: impl Into<String>) -> ClientOptions {
        if let Some(Endpoint::WebSocket { token: slot, .. }) = &mut self.endpoint {
            *slot = Some(token.into());
        }
        self
    }

    /// Replace the arguments.
    pub fn args<I, S>(mut self, args: I) -> ClientOptions
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Add a variable to the server's environment.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> ClientOptions {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Remove a variable from the server's environment.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> ClientOptions {
        self.env_remove.push(key.into());
        self
    }

    /// Set the server's working folder.
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> ClientOptions {
        self.cwd = Some(cwd.into());
        self
    }

    /// Set the limit for one method.
    pub fn timeout(mut self, method: impl Into<String>, limit: Duration) -> ClientOptions {
        self.timeouts.set(method, limit);
        self
    }
}
