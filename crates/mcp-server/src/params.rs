//! The tools' parameters and results. The input schemas the client sees are
//! generated from these types (`schemars`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tiller_core::config::{ApprovalPolicy, SandboxMode};

/// Parameters of the `tiller` tool.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TillerParams {
    /// The task for the agent: the first user message of the session.
    pub prompt: String,
    /// The folder the agent works in (absolute, or relative to the server's
    /// folder). Defaults to the server's working folder.
    #[serde(default)]
    pub cwd: Option<String>,
    /// The model to use, e.g. `gpt-5-codex`. Defaults to the config file's.
    #[serde(default)]
    pub model: Option<String>,
    /// When to ask (through elicitation when the client supports it, else
    /// the answer is no): `never`; `on-failure`, when a command fails in the
    /// sandbox, to run it again outside; `on-request`, also when the model
    /// asks to leave the sandbox; `untrusted`, also before any command off
    /// a small read-only allowlist.
    #[serde(default)]
    pub approval_policy: Option<ApprovalPolicyArg>,
    /// What commands may touch: `read-only`, `workspace-write` (the
    /// default: the folder, `$TMPDIR` and `/tmp`, no network) or
    /// `danger-full-access` (no sandbox).
    #[serde(default)]
    pub sandbox: Option<SandboxModeArg>,
    /// Replaces tiller's system instructions.
    #[serde(default)]
    pub base_instructions: Option<String>,
}

/// An approval policy, as the tools take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalPolicyArg {
    /// Never ask; what the sandbox denies is the model's to deal with.
    Never,
    /// Ask when a command fails in the sandbox.
    OnFailure,
    /// Ask when the model asks to leave the sandbox, or a command fails in it.
    OnRequest,
    /// Ask before any command not known to be read-only.
    Untrusted,
}

impl From<ApprovalPolicyArg> for ApprovalPolicy {
    fn from(arg: ApprovalPolicyArg) -> ApprovalPolicy {
        match arg {
            ApprovalPolicyArg::Never => ApprovalPolicy::Never,
            ApprovalPolicyArg::OnFailure => ApprovalPolicy::OnFailure,
            ApprovalPolicyArg::OnRequest => ApprovalPolicy::OnRequest,
            ApprovalPolicyArg::Untrusted => ApprovalPolicy::Untrusted,
        }
    }
}

/// A sandbox mode, as the tools take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxModeArg {
    /// Read anything, write nothing, no network.
    ReadOnly,
    /// Write the folder and the temporary folders; no network.
    WorkspaceWrite,
    /// No sandbox.
    DangerFullAccess,
}

impl From<SandboxModeArg> for SandboxMode {
    fn from(arg: SandboxModeArg) -> SandboxMode {
        match arg {
            SandboxModeArg::ReadOnly => SandboxMode::ReadOnly,
            SandboxModeArg::WorkspaceWrite => SandboxMode::WorkspaceWrite,
            SandboxModeArg::DangerFullAccess => SandboxMode::DangerFullAccess,
        }
    }
}

/// Parameters of the `tiller-reply` tool.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TillerReplyParams {
    /// The thread to continue: the `threadId` a `tiller` call returned (a
    /// saved session is resumed from disk).
    pub thread_id: String,
    /// The next user message.
    pub prompt: String,
}

/// Parameters of the `tiller-interrupt` tool.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TillerInterruptParams {
    /// The thread whose running turn to end.
    pub thread_id: String,
}

/// How a turn ended, as the tools report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TurnStatus {
    /// The model finished.
    Completed,
    /// `tiller-interrupt`, a cancelled call, or a denied-and-aborted approval ended it.
    Interrupted,
    /// A newer `tiller-reply` on the same thread replaced it.
    Replaced,
    /// The model or the engine failed.
    Failed,
}

/// `structuredContent` of a `tiller` / `tiller-reply` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnResult {
    /// The thread, for `tiller-reply` and `tiller-interrupt`.
    pub thread_id: String,
    /// How the turn ended.
    pub status: TurnStatus,
    /// The last thing the agent said, if anything.
    pub last_agent_message: Option<String>,
    /// The failure, for `status: "failed"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a turn was aborted (`abortReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AbortReason {
    /// Interrupted.
    Interrupted,
    /// Replaced by a newer turn.
    Replaced,
}

/// `structuredContent` of a `tiller-interrupt` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InterruptResult {
    /// The thread.
    pub thread_id: String,
    /// The turn that was running, or `None` when none was.
    pub turn_id: Option<String>,
    /// Why the turn ended: `interrupted` when this interrupt (or another one
    /// of the same turn) ended it; `None` when no turn was running, or when
    /// the turn ended another way first (see `status`).
    pub abort_reason: Option<AbortReason>,
    /// How the turn ended; `None` when no turn was running.
    pub status: Option<TurnStatus>,
    /// A sentence saying what happened.
    pub message: String,
}
