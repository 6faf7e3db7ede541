//! One test's world: a scratch home whose `config.toml` points at an
//! in-process [`MockModel`], the app-server run in this process on one end
//! of a unix socket pair, and the real client (`tiller-client`) on the
//! other, with the server's requests handed to the test. Every wait has a
//! deadline; [`Harness::finish`] shuts the client down, waits for the server
//! to end cleanly, checks every line it wrote against the Codex schema, and
//! waits for the MCP servers it started to be gone.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use tiller_app_server::{AppServerOptions, run_app_server};
use tiller_client::protocol::{
    McpServerStartupState, McpServerStatusUpdatedNotification, RequestId, ServerNotification,
    ThreadItem, ThreadStartParams, TurnCompletedNotification, UserInput,
};
use tiller_client::{Client, ClientEvent, ClientOptions, Connector, EventReceiver, Streams};
use tiller_mock_model::{MockModel, RecordedRequest, Script, Step};
use tiller_test_support::mcp_servers::{python_mcp_site, slow_server_script};
use tiller_test_support::{DEADLINE, mock_provider_config, wait_until_dead};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

use crate::wire::{Tap, Wire};

/// How long the app-server may take to end once the client is gone.
const SERVER_EXIT: Duration = Duration::from_secs(5);

/// A test's server, client and model.
pub struct Harness {
    dir: TempDir,
    pub mock: MockModel,
    pub client: Client,
    events: EventReceiver,
    /// Everything the client reported, in order.
    pub log: Vec<ClientEvent>,
    wire: Wire,
    server: JoinHandle<i32>,
    /// Files the MCP servers write their pid to (`up PID` lines, or a pid).
    pid_files: Vec<PathBuf>,
}

impl Harness {
    /// A model answering from `steps`, a server, and a client connected to it.
    pub async fn start(steps: Vec<Step>) -> Harness {
        let mock = MockModel::start(Script::new(steps)).await.unwrap();
        let dir = TempDir::new().unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        // A failed request or a broken stream is retried once, quickly, so
        // a test that does not ask for retries fails fast when one happens.
        std::fs::write(
            dir.path().join("home/config.toml"),
            mock_provider_config(
                &mock.base_url(),
                "request_max_retries = 0\nstream_max_retries = 1\n",
            ),
        )
        .unwrap();
        let (client_end, server_end) = UnixStream::pair().unwrap();
        let (input, output) = server_end.into_split();
        let server = tokio::spawn(run_app_server(
            input,
            output,
            AppServerOptions::new(dir.path().join("home")),
        ));
        let (read, write) = client_end.into_split();
        let (tap, wire) = Tap::new(read);
        // One connection: the client never reconnects here.
        let streams: Mutex<Option<Streams>> = Mutex::new(Some((Box::pin(tap), Box::pin(write))));
        let connector = Connector::new(move || {
            streams
                .lock()
                .unwrap()
                .take()
                .ok_or_else(|| std::io::Error::other("the test's server takes one connection"))
        });
        let options = ClientOptions::in_process(connector).server_requests(true);
        let (client, events) = Client::spawn(options).await.unwrap();
        Harness {
            dir,
            mock,
            client,
            events,
            log: Vec::new(),
            wire,
            server,
            pid_files: Vec::new(),
        }
    }

    /// The folder the thread works in.
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// A path in the test's scratch folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `[mcp_servers.<name>]` as `thread/start`'s `config` gives it: the
    /// FastMCP test server, recording what it sees in the returned file.
    pub async fn slow_server(&mut self, name: &str) -> (Value, PathBuf) {
        let site = python_mcp_site().await;
        let record = self.path(&format!("{name}.record"));
        self.pid_files.push(record.clone());
        let server = json!({
            "command": "python3",
            "args": [slow_server_script().display().to_string()],
            "env": {
                "PYTHONPATH": site.display().to_string(),
                "MCP_RECORD": record.display().to_string(),
            },
        });
        (server, record)
    }

    /// A "server" that writes its pid and then never says a word, given
    /// `startup_timeout_sec` to start.
    pub fn mute_server(&mut self, name: &str, startup_timeout_sec: f64) -> Value {
        let pid_file = self.path(&format!("{name}.pid"));
        self.pid_files.push(pid_file.clone());
        json!({
            "command": "sh",
            "args": ["-c", format!("echo \"up $$\" > '{}'; exec sleep 600", pid_file.display())],
            "startup_timeout_sec": startup_timeout_sec,
        })
    }

    /// `thread/start` in `work/` with these `mcp_servers`; the thread's id.
    pub async fn start_thread(&mut self, mcp_servers: Value) -> String {
        let mut config = serde_json::Map::new();
        config.insert("mcp_servers".to_owned(), mcp_servers);
        let params = ThreadStartParams {
            cwd: Some(self.work().display().to_string()),
            approval_policy: Some(json!("never")),
            config: Some(config),
            ..ThreadStartParams::default()
        };
        let started = self.client.thread_start(params).await.unwrap();
        started.thread.id
    }

    /// `turn/start` with `text`; the turn's id.
    pub async fn start_turn(&mut self, thread: &str, text: &str) -> String {
        let input = vec![UserInput::Text {
            text: text.to_owned(),
        }];
        let started = self.client.turn_start(thread, input, None).await.unwrap();
        started.turn.id
    }

    /// The first event, of all the client reported, that `pick` takes,
    /// reading more until one comes, within [`DEADLINE`]; what `pick` gave.
    /// (Each test waits for events it sees once, or for the first of their
    /// kind, so it never needs to say where to look from.)
    pub async fn wait_for<T>(&mut self, what: &str, pick: impl Fn(&ClientEvent) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut looked = 0;
        loop {
            if let Some(found) = self.log[looked..].iter().find_map(&pick) {
                return found;
            }
            looked = self.log.len();
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => self.log.push(event),
                Ok(None) => panic!("the client's events ended before {what}:\n{:#?}", self.log),
                Err(_) => panic!("waited {DEADLINE:?} for {what}; got:\n{:#?}", self.log),
            }
        }
    }

    /// Wait for a notification that `pick` takes.
    pub async fn wait_notification<T>(
        &mut self,
        what: &str,
        pick: impl Fn(&ServerNotification) -> Option<T>,
    ) -> T {
        self.wait_for(what, |event| match event {
            ClientEvent::Notification(notification) => pick(notification),
            _ => None,
        })
        .await
    }

    /// Wait for `server`'s `mcpServer/startupStatus/updated` saying `status`.
    pub async fn wait_status(
        &mut self,
        server: &str,
        status: McpServerStartupState,
    ) -> McpServerStatusUpdatedNotification {
        self.wait_notification(&format!("{server} {status:?}"), |n| match n {
            ServerNotification::McpServerStatusUpdated(update)
                if update.name == server && update.status == status =>
            {
                Some(update.clone())
            }
            _ => None,
        })
        .await
    }

    /// The statuses said so far of `server`, in order.
    pub fn statuses(&self, server: &str) -> Vec<McpServerStartupState> {
        self.log
            .iter()
            .filter_map(|event| match event {
                ClientEvent::Notification(ServerNotification::McpServerStatusUpdated(update))
                    if update.name == server =>
                {
                    Some(update.status)
                }
                _ => None,
            })
            .collect()
    }

    /// Wait for `turn/completed` of `turn`.
    pub async fn wait_turn_completed(&mut self, turn: &str) -> TurnCompletedNotification {
        self.wait_notification(&format!("turn/completed of {turn}"), |n| match n {
            ServerNotification::TurnCompleted(done) if done.turn.id == turn => Some(done.clone()),
            _ => None,
        })
        .await
    }

    /// Wait for a request of the server's with `method`: its id and params.
    pub async fn wait_server_request(&mut self, method: &str) -> (RequestId, Value) {
        self.wait_for(method, |event| match event {
            ClientEvent::ServerRequest {
                id,
                method: asked,
                params,
            } if asked == method => Some((id.clone(), params.clone())),
            _ => None,
        })
        .await
    }

    /// Wait for `serverRequest/resolved` of request `id`.
    pub async fn wait_resolved(&mut self, id: &RequestId) {
        self.wait_notification("serverRequest/resolved", |n| match n {
            ServerNotification::ServerRequestResolved(resolved) if &resolved.request_id == id => {
                Some(())
            }
            _ => None,
        })
        .await;
    }

    /// The MCP tool call items of `turn` that `item/started` (`started`) or
    /// `item/completed` reported, in order.
    pub fn mcp_items(&self, turn: &str, started: bool) -> Vec<ThreadItem> {
        self.log
            .iter()
            .filter_map(|event| match event {
                ClientEvent::Notification(ServerNotification::ItemStarted(n))
                    if started && n.turn_id == turn =>
                {
                    Some(&n.item)
                }
                ClientEvent::Notification(ServerNotification::ItemCompleted(n))
                    if !started && n.turn_id == turn =>
                {
                    Some(&n.item)
                }
                _ => None,
            })
            .filter(|item| matches!(item, ThreadItem::McpToolCall { .. }))
            .cloned()
            .collect()
    }

    /// Wait until the model has received `n` requests; all of them.
    pub async fn wait_requests(&self, n: usize) -> Vec<RecordedRequest> {
        self.mock
            .wait_for_requests(n, DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The lines the server wrote so far.
    pub fn wire_lines(&mut self) -> Vec<Value> {
        self.wire.lines().to_vec()
    }

    /// The end of every test: the client shuts down, the server sees EOF and
    /// ends cleanly, every line it wrote fits the Codex schema, the model
    /// never refused a request for breaking the API contract, and every MCP
    /// server process the thread started is gone.
    pub async fn finish(mut self) {
        assert_eq!(
            self.client.shutdown().await,
            None,
            "no process to report on"
        );
        self.wait_for("the disconnect", |event| {
            matches!(
                event,
                ClientEvent::Disconnected {
                    requested: true,
                    ..
                }
            )
            .then_some(())
        })
        .await;
        let code = tokio::time::timeout(SERVER_EXIT, &mut self.server)
            .await
            .unwrap_or_else(|_| panic!("the app-server did not end within {SERVER_EXIT:?}"))
            .unwrap();
        assert_eq!(code, 0);
        self.wire.check();
        for request in self.mock.requests() {
            if let Some(rejected) = &request.rejected {
                panic!("the mock refused a request for breaking the API contract: {rejected}");
            }
        }
        for pid in self.pid_files.iter().flat_map(|file| pids_in(file)) {
            wait_until_dead(pid, DEADLINE).await;
        }
    }
}

/// The pids in `file`'s `up PID` lines (none if it was never written).
fn pids_in(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.strip_prefix("up ")?.trim().parse().ok())
        .collect()
}

/// The output the model got for `call_id` in `request`.
pub fn output_for(request: &RecordedRequest, call_id: &str) -> String {
    request
        .input()
        .iter()
        .find(|item| item["type"] == "function_call_output" && item["call_id"] == call_id)
        .and_then(|item| item["output"].as_str())
        .unwrap_or_else(|| panic!("no output for {call_id} in {:?}", request.input()))
        .to_owned()
}
