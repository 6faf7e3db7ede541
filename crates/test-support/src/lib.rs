//! Test harness shared by tiller's test suites.
//!
//! [`TestEngine`] is a real session talking HTTP to a real [`MockModel`] on
//! 127.0.0.1, with a scratch work folder. Every test ends with
//! [`TestEngine::finish`], which checks invariant I2 ([`assert_one_terminal_per_turn`])
//! on everything the session emitted and that the mock never had to reject a
//! request for breaking the API contract (I1).
//!
//! A test engine speaks one wire API ([`WireApi`]), chosen when it starts
//! ([`TestEngine::start`], [`EngineSettings::new`]) so no test can leave it out:
//! the mock answers the same [`Step`]s on `/responses` and on
//! `/chat/completions`, and [`RecordedRequest::input`] reads either request as
//! Responses input items, so a lifecycle test runs unchanged on both.
//!
//! Waiting is always on an event or a request, with a deadline; never a sleep.
#![deny(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod invariants;
#[cfg(target_arch = "x86_64")]
pub mod kernel;
mod line_child;
pub mod mcp_servers;
mod processes;
mod pty;
pub mod schedules;

use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;
use tiller_core::config::{ApprovalPolicy, Config, ConfigOverrides, ProviderConfig, WireApi};
use tiller_core::{EventStream, SessionHandle, SessionOptions, SessionSource, spawn_session};
use tiller_mock_model::{MockModel, RecordedRequest, Script, Step};
use tiller_protocol::{Event, EventMsg, Op, Reply, ResponseItem, UserInput};

pub use invariants::{TurnMark, assert_marks_one_terminal_per_turn, assert_one_terminal_per_turn};
pub use line_child::LineChild;
pub use processes::{pid_alive, read_pids, read_pids_when_ready, wait_until_dead};
pub use pty::PtyChild;

/// `config.toml` text that makes the model server at `base_url` the provider
/// (named `mock`), with `extra` lines (`key = value\n`) in its table.
pub fn mock_provider_config(base_url: &str, extra: &str) -> String {
    format!(
        "model_provider = \"mock\"\n\n[model_providers.mock]\nbase_url = \"{base_url}\"\n{extra}"
    )
}

/// A `$TILLER_HOME` in a temporary folder whose `config.toml` makes the
/// model server at `base_url` the provider.
pub fn mock_home(base_url: &str) -> TempDir {
    let home = TempDir::new().expect("a temporary home");
    std::fs::write(
        home.path().join("config.toml"),
        mock_provider_config(base_url, ""),
    )
    .expect("write config.toml");
    home
}

/// The deadline for anything a test waits on, unless it says otherwise.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A session wired to a mock model.
pub struct TestEngine {
    /// The model.
    pub mock: MockModel,
    /// The session.
    pub session: SessionHandle,
    events: EventStream,
    /// Every event received so far, in order.
    pub log: Vec<Event>,
    /// The folder tools run in.
    pub workdir: TempDir,
    _home: TempDir,
}

/// Settings a test may change before the session starts.
///
/// There is no `Default`: settings start from [`EngineSettings::new`], which
/// takes the wire API, so a test cannot fall back to one by omission.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// The API the session speaks to the mock.
    pub wire: WireApi,
    /// The approval policy.
    pub approval_policy: ApprovalPolicy,
    /// Retries of requests that got no good answer.
    pub request_max_retries: u32,
    /// Retries of broken streams.
    pub stream_max_retries: u32,
    /// How long a silent stream is given.
    pub stream_idle_timeout: Duration,
    /// The conversation the session starts with.
    pub history: Vec<ResponseItem>,
    /// Save the session under the engine's home, or resume a saved one.
    pub persistence: Persistence,
    /// The model's context window (`model_context_window`); `None`: unknown.
    pub context_window: Option<u64>,
    /// `model_reasoning_effort`.
    pub reasoning_effort: Option<String>,
    /// What the mock lists at `GET /models` from the start (none: a 404).
    pub model_list: Vec<serde_json::Value>,
    /// The MCP servers the session starts (`[mcp_servers]`).
    pub mcp_servers: Vec<tiller_core::config::McpServerConfig>,
    /// The sandbox commands run in: tiller's default (workspace-write, no
    /// network) unless a test says otherwise, so every suite runs confined.
    pub sandbox: tiller_core::config::SandboxPolicy,
}

/// Whether a test session is saved.
#[derive(Debug, Clone, Default)]
pub enum Persistence {
    /// Not saved (`SessionSource::Ephemeral`).
    #[default]
    Off,
    /// Saved as a new session under the engine's home.
    New,
    /// Continue the rollout at this path (appended to where it is).
    Resume(std::path::PathBuf),
}

impl EngineSettings {
    /// The defaults, on `wire`: no approvals, a few retries, a long idle timeout,
    /// an empty unsaved conversation.
    pub fn new(wire: WireApi) -> Self {
        EngineSettings {
            wire,
            approval_policy: ApprovalPolicy::Never,
            request_max_retries: 4,
            stream_max_retries: 5,
            stream_idle_timeout: Duration::from_secs(300),
            history: Vec::new(),
            persistence: Persistence::Off,
            context_window: None,
            reasoning_effort: None,
            model_list: Vec::new(),
            mcp_servers: Vec::new(),
            sandbox: tiller_core::config::SandboxPolicy::default(),
        }
    }
}

impl TestEngine {
    /// A session on `wire` with default settings answering from `steps`.
    pub async fn start(wire: WireApi, steps: Vec<Step>) -> TestEngine {
        TestEngine::start_with(steps, EngineSettings::new(wire)).await
    }

    /// A session with `settings` answering from `steps`.
    pub async fn start_with(steps: Vec<Step>, settings: EngineSettings) -> TestEngine {
        tiller_core::process_tree::become_subreaper().expect("become a child subreaper");
        let mock = MockModel::start(Script::new(steps))
            .await
            .expect("start the mock model");
        mock.serve_model_entries(settings.model_list.clone());
        let home = TempDir::new().expect("temp home");
        let workdir = TempDir::new().expect("temp workdir");
        let mut provider = ProviderConfig::for_local_server(mock.base_url());
        provider.wire_api = settings.wire;
        provider.request_max_retries = settings.request_max_retries;
        provider.stream_max_retries = settings.stream_max_retries;
        provider.stream_idle_timeout = settings.stream_idle_timeout;
        let mut config = Config::load(
            home.path(),
            ConfigOverrides {
                approval_policy: Some(settings.approval_policy),
                cwd: Some(workdir.path().to_path_buf()),
                provider_override: Some(provider),
                ..ConfigOverrides::default()
            },
        )
        .expect("load config")
        .config;
        config.context_window = settings.context_window;
        config.sandbox = settings.sandbox;
        config.reasoning_effort = settings.reasoning_effort;
        config.mcp_servers = settings
            .mcp_servers
            .into_iter()
            .map(|server| (server.name.clone(), server))
            .collect();
        let (session, events) = spawn_session(SessionOptions {
            config,
            api_key: None,
            source: match settings.persistence {
                Persistence::Off => SessionSource::Ephemeral {
                    history: settings.history,
                },
                Persistence::New => SessionSource::New,
                Persistence::Resume(path) => SessionSource::Resume(Box::new(
                    tiller_core::rollout::open(&path, tiller_core::rollout::LockWait::No)
                        .expect("open the rollout"),
                )),
            },
        })
        .expect("spawn session");
        TestEngine {
            mock,
            session,
            events,
            log: Vec::new(),
            workdir,
            _home: home,
        }
    }

    /// The work folder's path.
    pub fn dir(&self) -> &Path {
        self.workdir.path()
    }

    /// `$TILLER_HOME` of this session.
    pub fn home(&self) -> &Path {
        self._home.path()
    }

    /// The rollout file, from `SessionConfigured` (saved sessions only).
    pub fn rollout_path(&self) -> Option<std::path::PathBuf> {
        self.log.iter().find_map(|e| match &e.msg {
            EventMsg::SessionConfigured { rollout_path, .. } => {
                rollout_path.as_ref().map(Into::into)
            }
            _ => None,
        })
    }

    /// Start a turn with `text` and return its id.
    pub async fn start_turn(&self, text: &str) -> String {
        match self
            .session
            .submit(Op::start_turn(vec![UserInput::text(text)]))
            .await
        {
            Ok(Reply::TurnStarted { turn_id }) => turn_id,
            other => panic!("StartTurn was answered with {other:?}"),
        }
    }

    /// Submit `op`.
    pub async fn submit(&self, op: Op) -> Result<Reply, tiller_protocol::OpError> {
        self.session.submit(op).await
    }

    /// The next event, within [`DEADLINE`].
    pub async fn next_event(&mut self) -> Event {
        let event = tokio::time::timeout(DEADLINE, self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no event within {DEADLINE:?}; so far: {:#?}", self.log))
            .expect("the session's event stream ended");
        self.log.push(event.clone());
        event
    }

    /// Read events until one matches `pred`, within [`DEADLINE`]; returns it.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let next = tokio::time::timeout_at(deadline, self.events.recv()).await;
            let Ok(event) = next else {
                panic!("waited {DEADLINE:?} for {what}; got: {:#?}", self.log);
            };
            let event = event.expect("the session's event stream ended");
            self.log.push(event.clone());
            if pred(&event) {
                return event;
            }
        }
    }

    /// Wait for the terminal event of `turn_id`.
    pub async fn wait_terminal(&mut self, turn_id: &str) -> EventMsg {
        let id = turn_id.to_string();
        self.wait_for("a terminal event", move |e| {
            e.is_terminal() && e.turn_id.as_deref() == Some(id.as_str())
        })
        .await
        .msg
    }

    /// Events already emitted, without waiting.
    pub fn drain_ready(&mut self) {
        while let Some(event) = self.events.try_recv() {
            self.log.push(event);
        }
    }

    /// Every request the mock received.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.mock.requests()
    }

    /// Wait until the mock has received `n` requests.
    pub async fn wait_requests(&self, n: usize) -> Vec<RecordedRequest> {
        self.mock
            .wait_for_requests(n, DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// End the test: the session is shut down, then I2 is checked on the whole
    /// event log and the mock must not have rejected any request for a broken
    /// history (I1).
    pub async fn finish(mut self) -> Vec<Event> {
        let _ = self.session.submit(Op::Shutdown).await;
        self.wait_for("shutdown", |e| matches!(e.msg, EventMsg::ShutdownComplete))
            .await;
        assert_one_terminal_per_turn(&self.log);
        for request in self.mock.requests() {
            if let Some(rejected) = &request.rejected {
                panic!("the mock rejected a request for breaking the API contract: {rejected}");
            }
        }
        self.log
    }
}

/// The text of every `input` item of a request, for asserting what the model saw.
pub fn input_summary(request: &RecordedRequest) -> Vec<String> {
    request
        .input()
        .iter()
        .map(|item| {
            let kind = item.get("type").and_then(|t| t.as_str()).unwrap_or("?");
            match kind {
                "message" => format!(
                    "{}: {}",
                    item.get("role").and_then(|r| r.as_str()).unwrap_or("?"),
                    item.pointer("/content/0/text")
                        .and_then(|t| t.as_str())
                        .unwrap_or("")
                ),
                "function_call" => format!(
                    "call {}",
                    item.get("call_id").and_then(|c| c.as_str()).unwrap_or("?")
                ),
                "function_call_output" => format!(
                    "output {}: {}",
                    item.get("call_id").and_then(|c| c.as_str()).unwrap_or("?"),
                    item.get("output").and_then(|o| o.as_str()).unwrap_or("")
                ),
                other => other.to_string(),
            }
        })
        .collect()
}
