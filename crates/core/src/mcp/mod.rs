//! MCP servers' tools, offered to the model beside tiller's own.
//!
//! [`McpConnections`] holds a session's configured servers
//! (`[mcp_servers.<name>]`). They start in the background, all at once, when
//! the session starts: nothing waits for them, and each one's start is shown
//! as [`EventMsg::McpServerStatus`] (starting, then ready with its tools, or
//! failed and why). A server's tools join the next model request once it is
//! ready, named `mcp__<server>__<tool>` (Codex's scheme).
//!
//! A call of one of them is an [`McpTool`] run, like `shell`'s: an item, the
//! person asked where the settings say so, progress passed on, and the call's
//! token honoured. Interrupt, replace, an approval's Abort and
//! `tool_timeout_sec` send `notifications/cancelled` for the request and
//! return at once, without waiting for the server (which may ignore the
//! cancel); its late answer finds nobody waiting and is dropped.
//!
//! A stdio server is a process tree like a command's ([`process`]), and the
//! watchdog kills it if tiller dies. A server that exits mid-call fails that
//! call, and is started again when one of its tools is called next.

mod client;
mod elicitation;
mod process;
mod tool;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use tiller_config::{McpServerConfig, SandboxPolicy};
use tiller_protocol::{ElicitationAction, EventMsg, McpServerState};

use self::client::Connection;
use self::elicitation::Elicitations;
use self::tool::{McpTool, StartingTool, ToolInfo};
use crate::events::EventSink;
use crate::tools::Tool;

/// A session's MCP servers and their tools.
pub struct McpConnections {
    servers: Vec<Arc<ServerSlot>>,
    elicitations: Arc<Elicitations>,
    starts: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for McpConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.servers.iter().map(|s| &s.config.name))
            .finish()
    }
}

impl McpConnections {
    /// Start every enabled server of `servers` in the background; `None` when
    /// there is none. `hidden_env` are the variables no server may see; a
    /// server with a `sandbox_mode` runs in it, with the rest of `sandbox`
    /// (the session's policy: extra roots, network).
    pub(crate) fn start(
        servers: impl IntoIterator<Item = McpServerConfig>,
        cwd: PathBuf,
        hidden_env: Vec<String>,
        sandbox: &SandboxPolicy,
        events: &EventSink,
    ) -> Option<McpConnections> {
        let elicitations = Arc::new(Elicitations::new(events.clone()));
        let servers: Vec<Arc<ServerSlot>> = servers
            .into_iter()
            .filter(|config| config.enabled)
            .map(|config| {
                let confined = config.sandbox_mode.map(|mode| {
                    let policy = SandboxPolicy {
                        mode,
                        ..sandbox.clone()
                    };
                    crate::sandbox::process_sandbox(&policy, &cwd)
                });
                Arc::new(ServerSlot {
                    config,
                    sandbox: confined,
                    cwd: cwd.clone(),
                    hidden_env: hidden_env.clone(),
                    events: events.clone(),
                    elicitations: Arc::clone(&elicitations),
                    state: Mutex::new(SlotState::default()),
                    connecting: tokio::sync::Mutex::new(()),
                })
            })
            .collect();
        if servers.is_empty() {
            return None;
        }
        let starts = servers
            .iter()
            .map(|server| {
                let server = Arc::clone(server);
                tokio::spawn(async move {
                    let _ = server.connection().await;
                })
            })
            .collect();
        Some(McpConnections {
            servers,
            elicitations,
            starts,
        })
    }

    /// The specs of the tools of every ready server.
    pub(crate) fn specs(&self) -> Vec<serde_json::Value> {
        self.servers
            .iter()
            .flat_map(|server| server.tools().into_iter().map(|tool| tool.spec))
            .collect()
    }

    /// The tool named `name` (qualified), if a ready server offers it, or if
    /// it is named for a server that is not running (still starting, or it
    /// failed to start): a call then waits for the server to start (again,
    /// for at most its `startup_timeout_sec`) and looks again.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        let ready = self.servers.iter().find_map(|server| {
            let info = server.tools().into_iter().find(|t| t.qualified == name)?;
            Some(Arc::new(McpTool::new(Arc::clone(server), info)) as Arc<dyn Tool>)
        });
        ready.or_else(|| {
            let server = self
                .servers
                .iter()
                .find(|server| !server.is_connected() && name.starts_with(&server.tool_prefix()))?;
            Some(Arc::new(StartingTool::new(Arc::clone(server), name)) as Arc<dyn Tool>)
        })
    }

    /// The qualified names of the tools of every ready server.
    pub(crate) fn names(&self) -> Vec<String> {
        self.servers
            .iter()
            .flat_map(|server| server.tools().into_iter().map(|tool| tool.qualified))
            .collect()
    }

    /// Answer the elicitation `request_id`; false when none such waits.
    pub(crate) fn resolve_elicitation(
        &self,
        request_id: &str,
        action: ElicitationAction,
        content: Option<serde_json::Value>,
    ) -> bool {
        self.elicitations.resolve(request_id, action, content)
    }
}

impl Drop for McpConnections {
    fn drop(&mut self) {
        // A start still running is dropped with what it spawned (killed).
        for start in &self.starts {
            start.abort();
        }
    }
}

/// The most tools a server's list is read for: past that, the rest of its
/// list is not read (a server that pages forever cannot hold its start up
/// longer than its startup timeout, nor fill memory).
const MAX_LISTED_TOOLS: usize = 512;

/// The server's tools, page by page, up to [`MAX_LISTED_TOOLS`].
async fn list_tools(connection: &Connection) -> Result<Vec<rmcp::model::Tool>, rmcp::ServiceError> {
    let peer = connection.service.peer();
    let mut tools = Vec::new();
    let mut cursor = None;
    loop {
        let params = rmcp::model::PaginatedRequestParams::default().with_cursor(cursor);
        let page = peer.list_tools(Some(params)).await?;
        tools.extend(page.tools);
        cursor = page.next_cursor;
        if cursor.is_none() || tools.len() >= MAX_LISTED_TOOLS {
            tools.truncate(MAX_LISTED_TOOLS);
            return Ok(tools);
        }
    }
}

/// One configured server: its connection (once started) and its tools.
pub(crate) struct ServerSlot {
    pub(crate) config: McpServerConfig,
    /// The sandbox a stdio server runs in, if its config asks for one.
    sandbox: Option<tiller_process::Sandbox>,
    cwd: PathBuf,
    hidden_env: Vec<String>,
    events: EventSink,
    pub(crate) elicitations: Arc<Elicitations>,
    state: Mutex<SlotState>,
    /// Held while the server is being started, so one start serves every caller.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct SlotState {
    connection: Option<Arc<Connection>>,
    /// The tools it listed when it last started; kept when it exits, so a
    /// call of one starts it again.
    tools: Vec<ToolInfo>,
}

impl ServerSlot {
    /// Its tools, as last listed.
    pub(crate) fn tools(&self) -> Vec<ToolInfo> {
        self.lock().tools.clone()
    }

    /// Whether it is running now (started, and not exited since).
    fn is_connected(&self) -> bool {
        self.lock()
            .connection
            .as_ref()
            .is_some_and(|connection| !connection.is_closed())
    }

    /// What its tools' qualified names begin with.
    fn tool_prefix(&self) -> String {
        tool::qualified_name(&self.config.name, "")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live connection, starting the server first when it is not running
    /// (the first time, or after it exited).
    pub(crate) async fn connection(&self) -> Result<Arc<Connection>, String> {
        let _starting = self.connecting.lock().await;
        let current = self.lock().connection.clone();
        if let Some(connection) = current {
            if !connection.is_closed() {
                return Ok(connection);
            }
            self.lock().connection = None;
            connection.kill().await;
        }
        self.status(McpServerState::Starting, None, Vec::new());
        let timeout = self.config.startup_timeout;
        let started = tokio::time::timeout(timeout, self.open()).await;
        let opened = started.unwrap_or_else(|_| {
            Err(format!(
                "it did not start and list its tools within {} s (startup_timeout_sec)",
                timeout.as_secs_f64()
            ))
        });
        match opened {
            Ok((connection, tools)) => {
                let names = tools.iter().map(|tool| tool.qualified.clone()).collect();
                let connection = Arc::new(connection);
                {
                    let mut state = self.lock();
                    state.connection = Some(Arc::clone(&connection));
                    state.tools = tools;
                }
                self.status(McpServerState::Ready, None, names);
                Ok(connection)
            }
            Err(error) => {
                self.status(McpServerState::Failed, Some(error.clone()), Vec::new());
                Err(error)
            }
        }
    }

    /// Connect and list the tools.
    async fn open(&self) -> Result<(Connection, Vec<ToolInfo>), String> {
        let connection = client::connect(
            &self.config,
            &self.cwd,
            &self.hidden_env,
            self.sandbox.clone(),
            Arc::clone(&self.elicitations),
        )
        .await?;
        match list_tools(&connection).await {
            Ok(listed) => {
                let tools = tool::offered(&self.config, listed);
                Ok((connection, tools))
            }
            Err(e) => {
                let error = client::with_stderr(
                    format!("listing its tools failed: {e}"),
                    &connection.stderr_tail(),
                );
                connection.kill().await;
                Err(error)
            }
        }
    }

    /// Forget `connection` if it is still the current one (it closed).
    pub(crate) fn lost(&self, connection: &Arc<Connection>) {
        let mut state = self.lock();
        if state
            .connection
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, connection))
        {
            state.connection = None;
        }
    }

    fn status(&self, status: McpServerState, error: Option<String>, tools: Vec<String>) {
        self.events.emit(
            None,
            EventMsg::McpServerStatus {
                server: self.config.name.clone(),
                status,
                error,
                tools,
            },
        );
    }
}
