//! An in-process `TillerMcpServer` on a duplex pipe, driven by the rmcp
//! client, against a real mock model on 127.0.0.1.

use std::path::Path;
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig,
    ClientRequest, CustomNotification, ElicitRequestParams, ElicitResult, ElicitationAction,
    ElicitationCapability, GetMeta, Implementation, ProgressNotificationParam, ServerResult,
};
use rmcp::service::{
    NotificationContext, PeerRequestOptions, RequestContext, RequestHandle, RunningService,
};
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{Map, Value, json};
use tempfile::TempDir;
use tiller_mcp_server::{McpServerOptions, TillerMcpServer, serve_mcp_server};
use tiller_mock_model::{MockModel, Script, Step};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use tiller_test_support::{DEADLINE, pid_alive, read_pids_when_ready};

/// An in-process server on one end of a duplex pipe, answering from a mock
/// model that a fresh home's config names, with a work folder.
pub struct Served {
    pub mock: MockModel,
    pub server: TillerMcpServer,
    /// The client's end of the pipe.
    pub client_io: DuplexStream,
    /// The serving task; it ends when the client closes its end.
    pub serving: JoinHandle<()>,
    pub work: TempDir,
    pub home: TempDir,
}

/// Start a [`Served`] server whose model answers from `steps`.
pub async fn serve(steps: Vec<Step>) -> Served {
    tiller_core::process_tree::become_subreaper().unwrap();
    let mock = MockModel::start(Script::new(steps)).await.unwrap();
    let home = tiller_test_support::mock_home(&mock.base_url());
    let work = TempDir::new().unwrap();
    let server = TillerMcpServer::new(McpServerOptions {
        tiller_home: home.path().to_path_buf(),
    });
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (server_read, server_write) = tokio::io::split(server_io);
    let serving = tokio::spawn({
        let server = server.clone();
        async move {
            serve_mcp_server(server, server_read, server_write)
                .await
                .unwrap();
        }
    });
    Served {
        mock,
        server,
        client_io,
        serving,
        work,
        home,
    }
}

/// What the test client saw besides responses.
#[derive(Debug, Clone)]
pub enum Seen {
    /// A `tiller/event` notification's params.
    Event(Value),
    /// A progress notification.
    Progress(#[allow(dead_code)] ProgressNotificationParam),
    /// An elicitation request's message.
    Elicitation(String),
}

/// The test's MCP client.
#[derive(Clone)]
pub struct TestClient {
    seen: mpsc::UnboundedSender<Seen>,
    /// `Some(action)`: declare elicitation and answer every request with it.
    elicitation: Option<ElicitationAction>,
}

impl ClientHandler for TestClient {
    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleClient>,
    ) {
        if notification.method == "tiller/event" {
            // rmcp moves `_meta` out of the params (into the context or the
            // notification's extensions); put it back.
            let meta = if context.meta.0.0.is_empty() {
                notification.get_meta().clone()
            } else {
                context.meta
            };
            let mut params = notification.params.unwrap_or(Value::Null);
            if let Value::Object(map) = &mut params {
                map.insert("_meta".into(), serde_json::to_value(&meta).unwrap());
            }
            let _ = self.seen.send(Seen::Event(params));
        }
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.seen.send(Seen::Progress(params));
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        if let ElicitRequestParams::FormElicitationParams { message, .. } = &request {
            let _ = self.seen.send(Seen::Elicitation(message.clone()));
        }
        let action = self
            .elicitation
            .clone()
            .unwrap_or(ElicitationAction::Decline);
        Ok(ElicitResult::new(action))
    }

    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        if self.elicitation.is_some() {
            capabilities.elicitation = Some(ElicitationCapability::new());
        }
        ClientConfig::new(capabilities, Implementation::new("tiller-tests", "0"))
    }
}

/// A server, its model, and a client.
pub struct Harness {
    pub mock: MockModel,
    pub server: TillerMcpServer,
    pub client: RunningService<RoleClient, TestClient>,
    pub seen: mpsc::UnboundedReceiver<Seen>,
    pub work: TempDir,
    serving: JoinHandle<()>,
    _home: TempDir,
}

/// How a harness is set up.
#[derive(Debug, Clone, Default)]
pub struct HarnessOptions {
    /// Declare elicitation and answer every approval with this.
    pub elicitation: Option<ElicitationAction>,
}

impl Harness {
    pub async fn start(steps: Vec<Step>) -> Harness {
        Harness::start_with(steps, HarnessOptions::default()).await
    }

    pub async fn start_with(steps: Vec<Step>, options: HarnessOptions) -> Harness {
        let Served {
            mock,
            server,
            client_io,
            serving,
            work,
            home,
        } = serve(steps).await;
        let (tx, seen) = mpsc::unbounded_channel();
        let client = TestClient {
            seen: tx,
            elicitation: options.elicitation,
        }
        .serve(client_io)
        .await
        .unwrap();
        Harness {
            mock,
            server,
            client,
            seen,
            work,
            serving,
            _home: home,
        }
    }

    /// Arguments for `tiller` in the harness's work folder.
    pub fn tiller_args(&self, prompt: &str) -> Map<String, Value> {
        args(json!({"prompt": prompt, "cwd": self.work.path()}))
    }

    /// Send a tool call without waiting for the answer.
    pub async fn start_call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
    ) -> RequestHandle<RoleClient> {
        let params = CallToolRequestParams::new(name.to_string()).with_arguments(arguments);
        self.client
            .send_cancellable_request(
                ClientRequest::CallToolRequest(CallToolRequest::new(params)),
                PeerRequestOptions::no_options(),
            )
            .await
            .unwrap()
    }

    /// Call a tool and wait (with a deadline) for its result.
    pub async fn call(&self, name: &str, arguments: Map<String, Value>) -> CallToolResult {
        let handle = self.start_call(name, arguments).await;
        answer(handle).await
    }

    /// Stop the client, wait for the server to finish, stop the model.
    pub async fn finish(self) {
        let Harness {
            mock,
            client,
            serving,
            ..
        } = self;
        client.cancel().await.unwrap();
        tokio::time::timeout(DEADLINE, serving)
            .await
            .expect("the server stops when the client goes")
            .unwrap();
        mock.shutdown().await;
    }
}

/// The result of a call, within the deadline.
pub async fn answer(handle: RequestHandle<RoleClient>) -> CallToolResult {
    let response = tokio::time::timeout(DEADLINE, handle.await_response())
        .await
        .expect("the call is answered within the deadline")
        .expect("the call succeeds at the protocol level");
    match response {
        ServerResult::CallToolResult(result) => result,
        other => panic!("not a tool result: {other:?}"),
    }
}

pub fn args(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments must be an object: {other}"),
    }
}

/// A shell call that writes its pid to `pid_file` and sleeps for a minute.
pub fn sleep_call(call_id: &str, pid_file: &Path) -> Step {
    Step::function_call(
        call_id,
        "shell",
        json!({"command": ["bash", "-c", format!("echo $$ > {}; exec sleep 60", pid_file.display())]}),
    )
}

/// The `structuredContent` of `result`.
pub fn structured(result: &CallToolResult) -> &Value {
    result
        .structured_content
        .as_ref()
        .expect("the result has structuredContent")
}

/// The text of `result`'s first content block.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

/// Wait until `pid` is gone, within `timeout`.
pub async fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while pid_alive(pid) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        // Polling /proc: a process's death is not an event this test can await.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}
