//! The MCP handler: the three tools, the threads, the running calls.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, CancelledNotificationParam, ContentBlock, Implementation, ProtocolVersion,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{RoleServer, ServerHandler, tool, tool_handler, tool_router};
use tiller_core::config::ConfigOverrides;
use tiller_core::rollout::store::{SessionQuery, find_session, session_id_of};
use tiller_core::{OpenedSession, Resume, SessionBuilder, TurnEnd};
use tiller_protocol::Op;

use crate::McpServerOptions;
use crate::call::{ActiveCalls, error_result, run_turn_call};
use crate::codex::{CodexParams, CodexReplyParams, codex_content};
use crate::error::{McpServerError, Result};
use crate::params::{
    AbortReason, InterruptResult, TillerInterruptParams, TillerParams, TillerReplyParams,
    TurnStatus,
};
use crate::thread::McpThread;

/// The newest MCP revision this server implements. 2026-07-28 forbids
/// server-to-client requests, which approvals (elicitation) need.
const NEWEST_PROTOCOL: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// The tiller MCP server. Cheap to clone: clones share the threads.
#[derive(Debug, Clone)]
pub struct TillerMcpServer {
    inner: Arc<Inner>,
    tool_router: ToolRouter<TillerMcpServer>,
}

#[derive(Debug)]
struct Inner {
    options: McpServerOptions,
    threads: Mutex<HashMap<String, Arc<McpThread>>>,
    /// Resuming a saved thread is done one at a time, so two replies to the
    /// same saved thread do not open it twice.
    resuming: tokio::sync::Mutex<()>,
    calls: ActiveCalls,
}

impl TillerMcpServer {
    /// A server that keeps its sessions under `options.tiller_home`.
    pub fn new(options: McpServerOptions) -> TillerMcpServer {
        TillerMcpServer {
            inner: Arc::new(Inner {
                options,
                threads: Mutex::new(HashMap::new()),
                resuming: tokio::sync::Mutex::new(()),
                calls: ActiveCalls::default(),
            }),
            tool_router: Self::tool_router(),
        }
    }

    /// How many `tiller` / `tiller-reply` calls are running (the size of the
    /// request → thread map).
    pub fn active_calls(&self) -> usize {
        self.inner.calls.len()
    }

    /// End every thread: running turns are interrupted (processes killed,
    /// rollouts flushed), within `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        let threads: Vec<Arc<McpThread>> = self.threads().drain().map(|(_, t)| t).collect();
        let mut shutdowns = tokio::task::JoinSet::new();
        for thread in threads {
            shutdowns.spawn(async move { thread.session().submit(Op::Shutdown).await });
        }
        let all = async { while shutdowns.join_next().await.is_some() {} };
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!("some threads did not shut down in time");
        }
    }

    fn threads(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<McpThread>>> {
        self.inner
            .threads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn home(&self) -> &PathBuf {
        &self.inner.options.tiller_home
    }

    async fn start_thread(&self, start: ThreadStart) -> Result<Arc<McpThread>> {
        let overrides = ConfigOverrides {
            model: start.model,
            approval_policy: start.approval_policy,
            sandbox_mode: start.sandbox_mode,
            cwd: start.cwd.map(PathBuf::from),
            cli_overrides: start.cli_overrides,
            ..ConfigOverrides::default()
        };
        let opened = SessionBuilder::new(self.home())
            .overrides(overrides)
            .base_instructions(start.base_instructions)
            .developer_instructions(start.developer_instructions)
            .spawn()
            .await?;
        Ok(self.add_thread(opened))
    }

    fn add_thread(&self, opened: OpenedSession) -> Arc<McpThread> {
        for warning in &opened.warnings {
            tracing::warn!("{warning}");
        }
        // Calls read their own turns' events; the session-wide stream is
        // dropped, so nothing is queued for it.
        drop(opened.events);
        let thread = McpThread::new(opened.handle, opened.config.approval_policy);
        self.threads()
            .insert(thread.id().to_string(), Arc::clone(&thread));
        thread
    }

    /// A thread of this process, or a saved one resumed from its rollout.
    /// `thread_id` may be in any case or a prefix: it is resolved to the
    /// session's own id before any lookup, so one session is never loaded twice.
    async fn find_thread(&self, thread_id: &str) -> Result<Arc<McpThread>> {
        let asked = thread_id.trim().to_ascii_lowercase();
        if let Some(thread) = self.threads().get(&asked) {
            return Ok(Arc::clone(thread));
        }
        let _one_at_a_time = self.inner.resuming.lock().await;
        // Finding the file is blocking work.
        let home = self.home().clone();
        let path = tokio::task::spawn_blocking(move || {
            find_session(&home, &SessionQuery::Id(asked)).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| McpServerError::Session(e.to_string()))?
        .map_err(McpServerError::Session)?;
        if let Some(id) = session_id_of(&path)
            && let Some(thread) = self.threads().get(id)
        {
            return Ok(Arc::clone(thread));
        }
        let opened = SessionBuilder::new(self.home())
            .resume(Resume::Path(path))
            .spawn()
            .await
            .map_err(|e| McpServerError::Session(e.to_string()))?;
        Ok(self.add_thread(opened))
    }
}

/// The session a `tiller` or `codex` call starts.
#[derive(Debug, Clone, Default)]
pub struct ThreadStart {
    /// The model; the config's when `None`.
    pub model: Option<String>,
    /// The working folder; the server's when `None`.
    pub cwd: Option<String>,
    /// When to ask before running a command.
    pub approval_policy: Option<tiller_core::config::ApprovalPolicy>,
    /// What commands may touch; the config's when `None`.
    pub sandbox_mode: Option<tiller_core::config::SandboxMode>,
    /// Replaces the system instructions.
    pub base_instructions: Option<String>,
    /// Added after the system instructions.
    pub developer_instructions: Option<String>,
    /// `-c key=value` overrides.
    pub cli_overrides: Vec<(String, String)>,
}

#[tool_router]
impl TillerMcpServer {
    /// Start a tiller session with a prompt; answers when the turn ends.
    #[tool(
        name = "tiller",
        description = "Start a tiller coding-agent session with a prompt and run one turn. \
                       Answers when the turn ends: the text is the agent's last message; \
                       structuredContent is {threadId, status, lastAgentMessage}. Continue \
                       with `tiller-reply`, stop a running turn with `tiller-interrupt` or by \
                       cancelling the call."
    )]
    async fn tiller(
        &self,
        Parameters(params): Parameters<TillerParams>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let start = ThreadStart {
            model: params.model,
            cwd: params.cwd,
            approval_policy: params.approval_policy.map(Into::into),
            sandbox_mode: params.sandbox.map(Into::into),
            base_instructions: params.base_instructions,
            developer_instructions: None,
            cli_overrides: Vec::new(),
        };
        let thread = match self.start_thread(start).await {
            Ok(thread) => thread,
            Err(e) => return error_result("", e.to_string()),
        };
        run_turn_call(thread, params.prompt, context, &self.inner.calls).await
    }

    /// Codex's `codex` tool: `tiller` with Codex's parameter names.
    #[tool(
        name = "codex",
        description = "Codex's `codex` tool, for clients written against `codex mcp-server`: \
                       start a session with a prompt (Codex's parameter names) and run one \
                       turn. Answers like `tiller`, with structuredContent {threadId, content, \
                       status, lastAgentMessage}. Continue with `codex-reply`."
    )]
    async fn codex(
        &self,
        Parameters(params): Parameters<CodexParams>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let start = match params.thread_start() {
            Ok(start) => start,
            Err(e) => return error_result("", e),
        };
        let thread = match self.start_thread(start).await {
            Ok(thread) => thread,
            Err(e) => return error_result("", e.to_string()),
        };
        let mut result = run_turn_call(thread, params.prompt, context, &self.inner.calls).await;
        codex_content(&mut result.structured_content);
        result
    }

    /// Codex's `codex-reply` tool: `tiller-reply` with Codex's parameter names.
    #[tool(
        name = "codex-reply",
        description = "Codex's `codex-reply` tool: continue a session (`threadId`, or \
                       Codex's older `conversationId`) with the next prompt. Answers like `codex`."
    )]
    async fn codex_reply(
        &self,
        Parameters(params): Parameters<CodexReplyParams>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let thread_id = match params.thread() {
            Ok(id) => id.to_string(),
            Err(e) => return error_result("", e.to_string()),
        };
        let thread = match self.find_thread(&thread_id).await {
            Ok(thread) => thread,
            Err(e) => return error_result(&thread_id, e.to_string()),
        };
        let mut result = run_turn_call(thread, params.prompt, context, &self.inner.calls).await;
        codex_content(&mut result.structured_content);
        result
    }

    /// Continue a session with the next prompt; answers when the turn ends.
    #[tool(
        name = "tiller-reply",
        description = "Continue a tiller session (the threadId a `tiller` call returned) with \
                       the next prompt and run one turn. Answers like `tiller`."
    )]
    async fn tiller_reply(
        &self,
        Parameters(params): Parameters<TillerReplyParams>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let thread = match self.find_thread(&params.thread_id).await {
            Ok(thread) => thread,
            Err(e) => return error_result(&params.thread_id, e.to_string()),
        };
        run_turn_call(thread, params.prompt, context, &self.inner.calls).await
    }

    /// Interrupt a session's running turn; answers once it has really ended.
    #[tool(
        name = "tiller-interrupt",
        description = "Interrupt the running turn of a tiller session. Answers only once the \
                       turn has really ended (its processes killed, the session saved), with \
                       {threadId, turnId, abortReason, status}; with no running turn it \
                       answers at once and says so."
    )]
    async fn tiller_interrupt(
        &self,
        Parameters(params): Parameters<TillerInterruptParams>,
    ) -> CallToolResult {
        let thread_id = params.thread_id;
        let Some(thread) = self
            .threads()
            .get(&thread_id.trim().to_ascii_lowercase())
            .cloned()
        else {
            let mut result = CallToolResult::error(vec![ContentBlock::text(format!(
                "unknown thread {thread_id}: no session with this id is open in this server"
            ))]);
            result.structured_content = serde_json::to_value(InterruptResult {
                thread_id,
                turn_id: None,
                abort_reason: None,
                status: None,
                message: "unknown thread".to_string(),
            })
            .ok();
            return result;
        };
        let Some(mut watch) = thread.running_turn() else {
            return interrupt_result(InterruptResult {
                thread_id,
                turn_id: None,
                abort_reason: None,
                status: None,
                message: "no turn is running; nothing to interrupt".to_string(),
            });
        };
        // Answered after the process tree is dead and the rollout flushed;
        // idempotent, so concurrent interrupts of the same turn are harmless.
        if let Err(e) = thread.session().submit(Op::Interrupt).await {
            tracing::warn!("interrupt not taken: {e}");
        }
        let turn_id = watch.id.clone();
        let ended = watch.end().await;
        let (abort_reason, status, message) = match ended {
            TurnEnd::Aborted { reason } => {
                let (abort, status) = match reason {
                    tiller_protocol::TurnAbortReason::Interrupted => {
                        (AbortReason::Interrupted, TurnStatus::Interrupted)
                    }
                    tiller_protocol::TurnAbortReason::Replaced => {
                        (AbortReason::Replaced, TurnStatus::Replaced)
                    }
                };
                (
                    Some(abort),
                    status,
                    "the turn has ended; its processes are gone".to_string(),
                )
            }
            TurnEnd::Completed { .. } => (
                None,
                TurnStatus::Completed,
                "the turn completed before the interrupt reached it".to_string(),
            ),
            TurnEnd::Failed { message } => (
                None,
                TurnStatus::Failed,
                format!("the turn failed before the interrupt reached it: {message}"),
            ),
        };
        interrupt_result(InterruptResult {
            thread_id,
            turn_id: Some(turn_id),
            abort_reason,
            status: Some(status),
            message,
        })
    }
}

fn interrupt_result(result: InterruptResult) -> CallToolResult {
    let mut answer = CallToolResult::success(vec![ContentBlock::text(result.message.clone())]);
    answer.structured_content = serde_json::to_value(&result).ok();
    answer
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TillerMcpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_protocol_version(NEWEST_PROTOCOL)
            .with_server_info(Implementation::new("tiller", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "tiller is a coding agent. Call `tiller` with a prompt to start a session, \
                 `tiller-reply` with its threadId to continue it, and `tiller-interrupt` (or \
                 cancel the call) to stop a running turn.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&NEWEST_PROTOCOL))
    }

    async fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        _context: NotificationContext<RoleServer>,
    ) {
        // rmcp has already cancelled the request's token (the call interrupts its
        // own turn); this only records what happened.
        let Some(request_id) = notification.request_id else {
            return;
        };

        match self.inner.calls.thread_of(&request_id) {
            Some(thread) => tracing::info!(%request_id, thread, "client cancelled a running call"),
            None => {
                tracing::debug!(%request_id, "cancel for a request that is not a running call; ignored")
            }
        }
    }
}
