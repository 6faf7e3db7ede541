//! `tiller acp`: tiller as an Agent Client Protocol agent over stdio, for
//! editors (Zed, JetBrains, Neovim's CodeCompanion and avante, Emacs).
//!
//! Built on the `agent-client-protocol` crate (protocol v1). Its dispatch
//! loop runs one handler at a time, so no handler waits for a turn: a
//! session's prompts and cancels go to that session's driver task
//! ([`driver`]), which owns the engine session, turns its events into
//! `session/update` notifications ([`translate`]), asks the client for
//! permissions ([`permission`]) and answers each `session/prompt` when its
//! turn ends. `session/load` replays a saved session ([`replay`]).
//!
//! The front end holds no engine state of its own: a session id is the
//! engine's, and everything shown comes from the engine's events.

mod driver;
mod input;
mod permission;
mod replay;
mod translate;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use agent_client_protocol::v1::schema as acp;
use agent_client_protocol::v1::{ConnectionTo, Responder};
use agent_client_protocol::{Agent, ByteStreams, Client, Error};
use tiller_core::config::{ConfigError, ConfigOverrides};
use tiller_core::{CoreError, OpenedSession, Resume, SessionBuilder};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

use crate::driver::Command;

pub use driver::{MAX_WAITING_PROMPTS, WhileRunning};

/// How `tiller acp` runs.
#[derive(Debug, Clone)]
pub struct AcpOptions {
    /// The tiller home (config, sessions).
    pub tiller_home: PathBuf,
    /// `-c key=value` overrides for every session.
    pub cli_overrides: Vec<(String, String)>,
    /// What a `session/prompt` sent while a turn runs does.
    pub while_running: WhileRunning,
}

/// The sessions of this connection, by id: each one's driver.
#[derive(Clone, Default)]
struct Sessions {
    drivers: Arc<Mutex<HashMap<String, tokio::sync::mpsc::UnboundedSender<Command>>>>,
}

impl Sessions {
    fn insert(&self, id: &str, driver: tokio::sync::mpsc::UnboundedSender<Command>) {
        self.lock().insert(id.to_string(), driver);
    }

    /// Hand `command` to session `id`'s driver; `false` if there is none.
    fn send(&self, id: &str, command: Command) -> Result<(), Command> {
        match self.lock().get(id) {
            Some(driver) => driver.send(command).map_err(|e| e.0),
            None => Err(command),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, tokio::sync::mpsc::UnboundedSender<Command>>>
    {
        self.drivers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serve ACP on stdin and stdout until stdin closes. Every session's turn
/// is interrupted (its processes killed) when the connection ends.
pub async fn run_acp(options: AcpOptions) -> Result<(), String> {
    let sessions = Sessions::default();
    let options = Arc::new(options);
    let on_auth = Arc::clone(&options);
    let (on_new, on_load, on_prompt, on_cancel) = (
        (sessions.clone(), Arc::clone(&options)),
        (sessions.clone(), Arc::clone(&options)),
        sessions.clone(),
        sessions.clone(),
    );
    // The crate reads checked lines from a pipe fed from stdin.
    let (checked, reader) = tokio::io::duplex(64 * 1024);
    tokio::spawn(input::pump(tokio::io::stdin(), checked));
    let transport = ByteStreams::new(tokio::io::stdout().compat_write(), reader.compat());
    Agent
        .v1()
        .name("tiller")
        .on_receive_request(
            async |init: acp::InitializeRequest,
                   responder: Responder<acp::InitializeResponse>,
                   _cx| { responder.respond(initialize(&init)) },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |_: acp::AuthenticateRequest,
                        responder: Responder<acp::AuthenticateResponse>,
                        _cx| {
                // The key is read from the environment tiller was started
                // with: there is nothing to log in to, only to check, and
                // to say which variable to set.
                responder.respond_with_result(key_present(&on_auth))
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |req: acp::NewSessionRequest,
                        responder: Responder<acp::NewSessionResponse>,
                        cx: ConnectionTo<Client>| {
                let (sessions, options) = on_new.clone();
                // Opening a session reads files: off the dispatch loop.
                tokio::spawn(async move {
                    let result = new_session(&options, &sessions, req, cx).await;
                    let _ = responder.respond_with_result(result);
                });
                Ok(())
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |req: acp::LoadSessionRequest,
                        responder: Responder<acp::LoadSessionResponse>,
                        cx: ConnectionTo<Client>| {
                let (sessions, options) = on_load.clone();
                tokio::spawn(async move {
                    let result = load_session(&options, &sessions, req, cx).await;
                    let _ = responder.respond_with_result(result);
                });
                Ok(())
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |req: acp::PromptRequest, responder: Responder<acp::PromptResponse>, _cx| {
                let id = req.session_id.0.to_string();
                let input = translate::user_input(&req.prompt);
                if let Err(Command::Prompt { responder, .. }) =
                    on_prompt.send(&id, Command::Prompt { input, responder })
                {
                    return responder
                        .respond_with_error(acp::Error::session_not_found(req.session_id).into());
                }
                Ok(())
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_notification(
            async move |cancel: acp::CancelNotification, _cx: ConnectionTo<Client>| {
                let _ = on_cancel.send(&cancel.session_id.0, Command::Cancel);
                Ok(())
            },
            agent_client_protocol::on_receive_notification!(),
        )
        .connect_to(transport)
        .await
        .map_err(|e| format!("the ACP connection failed: {e:?}"))
}

/// What tiller can do, for the client.
fn initialize(init: &acp::InitializeRequest) -> acp::InitializeResponse {
    acp::InitializeResponse::new(init.protocol_version)
        .agent_capabilities(
            acp::AgentCapabilities::new()
                .load_session(true)
                // Images are not sent to the model yet; text, links and
                // embedded text resources are.
                .prompt_capabilities(acp::PromptCapabilities::new().embedded_context(true))
                .mcp_capabilities(acp::McpCapabilities::new().http(true)),
        )
        .auth_methods(vec![acp::AuthMethod::Agent(
            acp::AuthMethodAgent::new("env-api-key", "API key in the environment").description(
                "tiller reads the provider's API key (OPENAI_API_KEY, or the provider's env_key) \
                 from the environment the editor starts it with",
            ),
        )])
        .agent_info(acp::Implementation::new(
            "tiller",
            env!("CARGO_PKG_VERSION"),
        ))
}

/// Ok if the configured provider's API key is in the environment (or it
/// needs none); else "authentication required" naming the variable.
fn key_present(options: &AcpOptions) -> Result<acp::AuthenticateResponse, Error> {
    let overrides = ConfigOverrides {
        cli_overrides: options.cli_overrides.clone(),
        ..ConfigOverrides::default()
    };
    let loaded = tiller_core::config::Config::load(&options.tiller_home, overrides)
        .map_err(|e| Error::internal_error().data(e.to_string()))?;
    match loaded.config.provider.api_key() {
        Ok(_) => Ok(acp::AuthenticateResponse::new()),
        Err(missing) => Err(Error::auth_required().data(missing.to_string())),
    }
}

/// The config overrides of a session in `cwd` with the client's MCP servers.
fn overrides(
    options: &AcpOptions,
    cwd: &std::path::Path,
    mcp_servers: &[acp::McpServer],
) -> Result<ConfigOverrides, Error> {
    if !cwd.is_absolute() {
        return Err(
            Error::invalid_params().data(format!("cwd {} is not an absolute path", cwd.display()))
        );
    }
    let mut cli_overrides = options.cli_overrides.clone();
    for server in mcp_servers {
        cli_overrides.push(translate::mcp_server_override(server)?);
    }
    Ok(ConfigOverrides {
        cwd: Some(cwd.to_path_buf()),
        cli_overrides,
        ..ConfigOverrides::default()
    })
}

/// Why a session could not be opened, as an ACP error: a missing key is
/// "authentication required" and names the variable.
fn open_error(error: CoreError) -> Error {
    match error {
        CoreError::Config(missing @ ConfigError::MissingApiKey { .. }) => {
            Error::auth_required().data(missing.to_string())
        }
        other => Error::internal_error().data(other.to_string()),
    }
}

async fn new_session(
    options: &AcpOptions,
    sessions: &Sessions,
    req: acp::NewSessionRequest,
    cx: ConnectionTo<Client>,
) -> Result<acp::NewSessionResponse, Error> {
    let overrides = overrides(options, &req.cwd, &req.mcp_servers)?;
    let opened = SessionBuilder::new(&options.tiller_home)
        .overrides(overrides)
        .spawn()
        .await
        .map_err(open_error)?;
    let id = start(sessions, opened, options, cx);
    Ok(acp::NewSessionResponse::new(acp::SessionId::new(id)))
}

async fn load_session(
    options: &AcpOptions,
    sessions: &Sessions,
    req: acp::LoadSessionRequest,
    cx: ConnectionTo<Client>,
) -> Result<acp::LoadSessionResponse, Error> {
    let overrides = overrides(options, &req.cwd, &req.mcp_servers)?;
    let opened = SessionBuilder::new(&options.tiller_home)
        .overrides(overrides)
        .resume(Resume::Id(req.session_id.0.to_string()))
        .spawn()
        .await
        .map_err(|e| match e {
            CoreError::Lookup(_) => acp::Error::session_not_found(req.session_id.clone()).into(),
            other => open_error(other),
        })?;
    let turns = opened
        .resumed
        .as_ref()
        .map(|resumed| resumed.turns.clone())
        .unwrap_or_default();
    let session_id = acp::SessionId::new(opened.handle.session_id().to_string());
    // Sent before the answer, on the same ordered queue.
    for update in replay::updates(&turns, &opened.config.cwd) {
        cx.send_notification(acp::SessionNotification::new(session_id.clone(), update))?;
    }
    start(sessions, opened, options, cx);
    Ok(acp::LoadSessionResponse::new())
}

/// Start `opened`'s driver and register it; returns the session's id.
fn start(
    sessions: &Sessions,
    opened: OpenedSession,
    options: &AcpOptions,
    cx: ConnectionTo<Client>,
) -> String {
    for warning in &opened.warnings {
        tracing::warn!("{warning}");
    }
    let id = opened.handle.session_id().to_string();
    let driver = driver::spawn(opened, cx, options.while_running);
    sessions.insert(&id, driver);
    id
}
