//! One connection to an MCP server, through rmcp's client: started over stdio
//! (a [`ServerProcess`]) or streamable HTTP, initialized, its tools listed.
//! The handler routes what the server sends unasked: progress to the call
//! waiting for it, elicitations to the person.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::model::{
    ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationCapability,
    Implementation, ProgressNotificationParam, ProgressToken,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use tiller_config::{McpServerConfig, McpTransport};
use tokio::sync::mpsc;

use super::elicitation::Elicitations;
use super::process::{Launch, ServerProcess};

/// How many progress messages of one call may wait to be shown; more are dropped.
const PROGRESS_BACKLOG: usize = 64;

/// A live connection. Dropping it closes the session with the server and,
/// for stdio, kills the server's process tree.
pub(crate) struct Connection {
    pub(crate) service: RunningService<RoleClient, Handler>,
    pub(crate) process: Mutex<Option<ServerProcess>>,
    pub(crate) progress: Progress,
}

impl Connection {
    /// Whether the server is gone (its transport closed).
    pub(crate) fn is_closed(&self) -> bool {
        self.service.is_closed() || self.service.peer().is_transport_closed()
    }

    /// What the server wrote on stderr last (stdio servers), for an error message.
    pub(crate) fn stderr_tail(&self) -> String {
        self.process
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(ServerProcess::stderr_tail)
            .unwrap_or_default()
    }

    /// Kill the server's tree now and wait for it (stdio servers).
    pub(crate) async fn kill(&self) {
        let process = self
            .process
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(process) = process {
            process.kill().await;
        }
    }
}

/// Progress notifications, routed by token to the call that waits for them.
#[derive(Clone, Default)]
pub(crate) struct Progress {
    calls: Arc<Mutex<HashMap<ProgressToken, mpsc::Sender<String>>>>,
}

impl Progress {
    /// Route the progress of `token` to the returned receiver until [`Progress::forget`].
    pub(crate) fn watch(&self, token: ProgressToken) -> mpsc::Receiver<String> {
        let (tx, rx) = mpsc::channel(PROGRESS_BACKLOG);
        self.lock().insert(token, tx);
        rx
    }

    /// Stop routing `token`.
    pub(crate) fn forget(&self, token: &ProgressToken) {
        self.lock().remove(token);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProgressToken, mpsc::Sender<String>>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, params: &ProgressNotificationParam) {
        let Some(tx) = self.lock().get(&params.progress_token).cloned() else {
            return;
        };
        let message = match (&params.message, params.total) {
            (Some(message), _) => message.clone(),
            (None, Some(total)) => format!("{} of {total}", params.progress),
            (None, None) => format!("{}", params.progress),
        };
        // A full backlog drops the message: progress is a hint, never a reason to block.
        let _ = tx.try_send(message);
    }
}

/// What a server may ask of tiller.
pub(crate) struct Handler {
    server: String,
    progress: Progress,
    elicitations: Arc<Elicitations>,
}

impl ClientHandler for Handler {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.deliver(&params);
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        Ok(self.elicitations.ask(&self.server, request).await)
    }

    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        capabilities.elicitation = Some(ElicitationCapability::new());
        ClientConfig::new(
            capabilities,
            Implementation::new("tiller", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// Start (stdio) or reach (HTTP) the server of `config`, and initialize the session.
pub(crate) async fn connect(
    config: &McpServerConfig,
    cwd: &Path,
    hidden_env: &[String],
    sandbox: Option<tiller_process::Sandbox>,
    elicitations: Arc<Elicitations>,
) -> Result<Connection, String> {
    let progress = Progress::default();
    let handler = Handler {
        server: config.name.clone(),
        progress: progress.clone(),
        elicitations,
    };
    match &config.transport {
        McpTransport::Stdio {
            command,
            args,
            env,
            cwd: server_cwd,
        } => {
            let launch = Launch {
                command: command.clone(),
                args: args.clone(),
                env: env.clone(),
                cwd: server_cwd
                    .as_deref()
                    .map_or(cwd.to_path_buf(), |dir| cwd.join(dir)),
                hidden_env: hidden_env.to_vec(),
                sandbox,
            };
            let (process, stdout, stdin) = ServerProcess::start(launch).await?;
            match handler.serve((stdout, stdin)).await {
                Ok(service) => Ok(Connection {
                    service,
                    process: Mutex::new(Some(process)),
                    progress,
                }),
                Err(e) => {
                    let tail = process.stderr_tail();
                    process.kill().await;
                    Err(with_stderr(format!("initialization failed: {e}"), &tail))
                }
            }
        }
        McpTransport::Http {
            url,
            bearer_token_env_var,
            http_headers,
            env_http_headers,
        } => {
            let transport =
                http_transport(url, bearer_token_env_var, http_headers, env_http_headers)?;
            let service = handler
                .serve(transport)
                .await
                .map_err(|e| format!("initialization failed: {e}"))?;
            Ok(Connection {
                service,
                process: Mutex::new(None),
                progress,
            })
        }
    }
}

/// An error with what the server said on stderr, if anything.
pub(crate) fn with_stderr(error: String, tail: &str) -> String {
    if tail.is_empty() {
        error
    } else {
        format!("{error}; its stderr ends: {tail}")
    }
}

fn http_transport(
    url: &str,
    bearer_token_env_var: &Option<String>,
    http_headers: &std::collections::BTreeMap<String, String>,
    env_http_headers: &std::collections::BTreeMap<String, String>,
) -> Result<rmcp::transport::StreamableHttpClientTransport<reqwest::Client>, String> {
    use reqwest::header::{HeaderName, HeaderValue};
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(var) = bearer_token_env_var {
        let token = std::env::var(var)
            .ok()
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                format!("set {var}: it holds the server's bearer token (bearer_token_env_var)")
            })?;
        tiller_secrets::register(&token);
        config = config.auth_header(token);
    }
    let mut headers = HashMap::new();
    let from_env = env_http_headers.iter().filter_map(|(name, var)| {
        let value = std::env::var(var).ok().filter(|v| !v.is_empty())?;
        tiller_secrets::register(&value);
        Some((name.clone(), value))
    });
    for (name, value) in http_headers.clone().into_iter().chain(from_env) {
        let name =
            HeaderName::try_from(name.as_str()).map_err(|e| format!("header {name}: {e}"))?;
        let value = HeaderValue::try_from(value).map_err(|e| format!("header {name}: {e}"))?;
        headers.insert(name, value);
    }
    config = config.custom_headers(headers);
    let client = tiller_model::shared_http_client().map_err(|e| e.to_string())?;
    Ok(rmcp::transport::StreamableHttpClientTransport::with_client(
        client, config,
    ))
}
