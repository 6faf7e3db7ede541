//! Tools the model can call, behind one trait.
//!
//! A [`Tool`] has a name, a JSON-schema spec the model is offered, and
//! [`Tool::run`], which gets the call ([`ToolCall`]) and a [`ToolContext`]: the
//! call's cancellation token, the session's folder and settings, a way to show
//! items (what runs, its output, how it ended) and a way to ask a person for
//! approval. A tool returns what the model reads ([`ToolOutput::Output`]) or, when
//! its token fired, an aborted output ([`ToolOutput::Aborted`]) once everything it
//! started is stopped: invariant I3 holds because the turn waits for `run` to
//! return before it ends.
//!
//! The [`ToolRegistry`] holds a session's tools by name; [`shell`] runs
//! commands and [`ShellTool`] is the first tool. To add one: implement [`Tool`],
//! show what it does as items through the context, honour the token, and
//! register it.

mod apply_patch_tool;
mod plan_tool;
pub mod shell;
mod shell_tool;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tiller_config::{ApprovalPolicy, SandboxPolicy};
use tiller_protocol::{CallKind, EventMsg, ExecOutputStream, ReviewDecision, TurnItem};
use tokio_util::sync::CancellationToken;

pub(crate) use apply_patch_tool::unified_diff;
pub use apply_patch_tool::{APPLY_PATCH_TOOL_NAME, ApplyPatchTool};
pub use plan_tool::{UPDATE_PLAN_TOOL_NAME, UpdatePlanTool};
pub use shell_tool::ShellTool;

use crate::conversation::Conversation;
use crate::events::TurnEmitter;
pub use crate::inbox::Cancelled;
use crate::inbox::TurnInbox;
use crate::items::TurnItems;
use crate::mcp::McpConnections;

/// A call the model made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The tool's name.
    pub name: String,
    /// The id that pairs the call with its output.
    pub call_id: String,
    /// The arguments as the model wrote them: a JSON document for a function
    /// tool, the raw input for a custom (freeform) one.
    pub arguments: String,
    /// A function call or a custom tool call.
    pub kind: CallKind,
}

/// What a tool call gives the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolOutput {
    /// The call ran (or could not); this is what the model reads.
    Output(String),
    /// The call's token fired: it stopped what it started, and this is what
    /// the model reads about how far it got.
    Aborted(String),
}

/// A future a tool returns.
pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = ToolOutput> + Send + 'a>>;

/// A tool the model can call.
pub trait Tool: Send + Sync {
    /// The name the model calls it by.
    fn name(&self) -> &str;
    /// Its definition as the model API takes it.
    fn spec(&self) -> serde_json::Value;
    /// Run `call`. Returns once everything the call started has stopped.
    fn run<'a>(&'a self, call: &'a ToolCall, ctx: &'a ToolContext<'a>) -> ToolFuture<'a>;
}

/// The tools of a session, by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
    /// The session's MCP servers, whose tools join as each is ready.
    mcp: Option<Arc<McpConnections>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl ToolRegistry {
    /// The tools every session has: `shell`, `apply_patch` (as a function tool)
    /// and `update_plan`.
    pub fn standard() -> ToolRegistry {
        ToolRegistry::with_freeform_patch(false)
    }

    /// The standard tools as `config` offers them: `apply_patch` freeform
    /// where the config or the provider says so.
    pub fn for_config(config: &tiller_config::Config) -> ToolRegistry {
        ToolRegistry::with_freeform_patch(config.uses_freeform_apply_patch())
    }

    fn with_freeform_patch(freeform: bool) -> ToolRegistry {
        let mut registry = ToolRegistry::default();
        registry.register(Arc::new(ShellTool));
        registry.register(Arc::new(ApplyPatchTool { freeform }));
        registry.register(Arc::new(UpdatePlanTool));
        registry
    }

    /// Add `tool` (replacing one of the same name).
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.name().to_string(), tool);
    }

    /// Offer the tools of `mcp`'s servers too, each once its server is ready.
    pub(crate) fn attach_mcp(&mut self, mcp: McpConnections) {
        self.mcp = Some(Arc::new(mcp));
    }

    /// The session's MCP servers, if it has any.
    pub(crate) fn mcp(&self) -> Option<&McpConnections> {
        self.mcp.as_deref()
    }

    /// The tool named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        match self.tools.get(name) {
            Some(tool) => Some(Arc::clone(tool)),
            None => self.mcp.as_ref().and_then(|mcp| mcp.get(name)),
        }
    }

    /// The specs of every tool, for a model request: tiller's own, then
    /// those of every MCP server ready now.
    pub fn specs(&self) -> Vec<serde_json::Value> {
        let own = self.tools.values().map(|tool| tool.spec());
        let mcp = self.mcp.iter().flat_map(|mcp| mcp.specs());
        own.chain(mcp).collect()
    }

    /// The names of every tool.
    pub fn names(&self) -> Vec<String> {
        let own = self.tools.keys().cloned();
        let mcp = self.mcp.iter().flat_map(|mcp| mcp.names());
        own.chain(mcp).collect()
    }
}

/// The environment variables no process tiller starts may see: the
/// provider's key, and the variables its `env_http_headers` read
/// (credentials, as Azure's `api-key` is).
pub(crate) fn secret_env(config: &tiller_config::Config) -> Vec<String> {
    let provider = &config.provider;
    provider
        .env_key
        .iter()
        .chain(provider.env_http_headers.values())
        .cloned()
        .collect()
}

/// What a tool call can use of its turn and session.
pub struct ToolContext<'a> {
    pub(crate) conversation: &'a Conversation,
    pub(crate) inbox: &'a TurnInbox,
    pub(crate) items: &'a TurnItems,
    pub(crate) emitter: &'a TurnEmitter,
    pub(crate) cancel: &'a CancellationToken,
    pub(crate) call_id: &'a str,
}

impl ToolContext<'_> {
    /// The call's id.
    pub fn call_id(&self) -> &str {
        self.call_id
    }

    /// Fires when the turn is aborted: stop, then return [`ToolOutput::Aborted`].
    pub fn cancel(&self) -> &CancellationToken {
        self.cancel
    }

    /// The folder the turn works in.
    pub fn cwd(&self) -> PathBuf {
        self.conversation.settings().cwd
    }

    /// How long a command may run when the model gives no timeout.
    pub fn default_timeout(&self) -> Duration {
        crate::DEFAULT_TOOL_TIMEOUT
    }

    /// Environment variables a spawned process must not see: the provider's
    /// key, and the variables its `env_http_headers` read (credentials, as
    /// Azure's `api-key` is).
    pub fn hidden_env(&self) -> Vec<String> {
        secret_env(&self.conversation.config)
    }

    /// When the person is asked before something runs.
    pub fn approval_policy(&self) -> ApprovalPolicy {
        self.conversation.settings().approval_policy
    }

    /// What the model's commands may touch, for this turn.
    pub fn sandbox_policy(&self) -> SandboxPolicy {
        self.conversation.settings().sandbox
    }

    /// The rules a command run in `cwd` under `policy` is confined by
    /// (`None`: unconfined), or why it cannot run.
    pub(crate) fn sandbox_rules(
        &self,
        policy: &SandboxPolicy,
        cwd: &Path,
    ) -> Result<Option<Arc<tiller_process::PreparedSandbox>>, String> {
        self.conversation.sandbox_rules.get(policy, cwd)
    }

    /// A new item id, unique in the session.
    pub fn new_item_id(&self) -> String {
        self.items.new_id()
    }

    /// Show `item` as started (and record it).
    pub fn item_started(&self, item: TurnItem) {
        self.items.started(item);
    }

    /// Show `item` as complete (and record it).
    pub fn item_completed(&self, item: TurnItem) {
        self.items.completed(item);
    }

    /// Take in changes a patch just wrote, and show the turn's whole diff.
    pub(crate) fn files_changed(&self, changes: &[crate::patch::Change]) {
        let diff = self.items.diff().record(changes, &self.cwd());
        self.emitter.emit(EventMsg::TurnDiff { diff });
    }

    /// Output of a running command item.
    pub fn output_delta(&self, item_id: &str, stream: ExecOutputStream, chunk: &str) {
        self.emitter.emit(EventMsg::ExecCommandOutputDelta {
            item_id: item_id.to_string(),
            call_id: self.call_id.to_string(),
            stream,
            chunk: chunk.to_string(),
        });
    }

    /// Show `msg` as part of the turn.
    pub(crate) fn emit(&self, msg: EventMsg) {
        self.emitter.emit(msg);
    }

    /// Whether `key` (a command, say) was approved for the rest of the session.
    pub fn approved_for_session(&self, key: &[String]) -> bool {
        self.conversation.is_approved(key)
    }

    /// Whether edits inside the workspace go ahead without asking.
    pub fn auto_approve_workspace_edits(&self) -> bool {
        self.conversation.config.auto_approve_workspace_edits
    }

    /// Ask the person whether an edit of `paths` (file change item
    /// `item_id`, already started) may be written, and why they are asked.
    /// `ApprovedForSession` is remembered for `key`. `Err` when the turn is
    /// aborted meanwhile (also by an `Abort` answer).
    pub(crate) async fn ask_edit_approval(
        &self,
        item_id: &str,
        paths: Vec<String>,
        key: &[String],
        approval: crate::approval::EditApproval,
    ) -> Result<ReviewDecision, Cancelled> {
        let decision = self
            .inbox
            .ask_approval(
                self.call_id,
                EventMsg::PatchApprovalRequest {
                    call_id: self.call_id.to_string(),
                    item_id: item_id.to_string(),
                    paths,
                    reason: approval.reason,
                    outside: approval.outside.map(|p| p.display().to_string()),
                },
                self.emitter,
                self.cancel,
            )
            .await?;
        if decision == ReviewDecision::ApprovedForSession {
            self.conversation.approve_for_session(key.to_vec());
        }
        Ok(decision)
    }

    /// Ask the person whether `command` may run in `cwd` (as item `item_id`),
    /// saying `reason` when there is more to say than the policy. An
    /// `ApprovedForSession` answer is remembered for `key`. `Err` when the
    /// turn is aborted meanwhile (also by an `Abort` answer).
    pub async fn ask_exec_approval(
        &self,
        item_id: &str,
        command: &[String],
        cwd: &Path,
        reason: Option<String>,
        key: &[String],
    ) -> Result<ReviewDecision, Cancelled> {
        let decision = self
            .inbox
            .ask_approval(
                self.call_id,
                EventMsg::ExecApprovalRequest {
                    call_id: self.call_id.to_string(),
                    item_id: item_id.to_string(),
                    command: command.to_vec(),
                    cwd: cwd.display().to_string(),
                    reason,
                },
                self.emitter,
                self.cancel,
            )
            .await?;
        if decision == ReviewDecision::ApprovedForSession {
            self.conversation.approve_for_session(key.to_vec());
        }
        Ok(decision)
    }
}
