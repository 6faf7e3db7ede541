//! The flags of `tiller exec` and `tiller resume`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `tiller exec [FLAGS] PROMPT|-` and `tiller exec [FLAGS] resume <ID|--last> [PROMPT]`
#[derive(Debug, Clone, Default, Args)]
pub struct ExecArgs {
    /// Flags (they may also follow `resume`).
    #[command(flatten)]
    pub flags: ExecFlags,

    /// Continue a saved session instead of starting one.
    #[command(subcommand)]
    pub command: Option<ExecCommand>,

    /// The prompt; `-` or nothing reads it from standard input.
    #[arg(value_name = "PROMPT")]
    pub prompt: Option<String>,
}

/// Subcommands of `tiller exec`.
#[derive(Debug, Clone, Subcommand)]
pub enum ExecCommand {
    /// Continue a saved session: `resume <ID|--last> [PROMPT]`.
    Resume(ResumeArgs),
}

/// Which session to continue, and the prompt.
#[derive(Debug, Clone, Default, Args)]
pub struct ResumeArgs {
    /// The session id, or an unambiguous prefix of it (`tiller sessions` lists them).
    #[arg(value_name = "ID")]
    pub session_id: Option<String>,

    /// Continue the most recently active session.
    #[arg(long)]
    pub last: bool,

    /// If another tiller has the session open, wait until it closes it
    /// (instead of failing at once with its pid).
    #[arg(long)]
    pub wait: bool,

    /// The prompt; `-` or nothing reads it from standard input.
    #[arg(value_name = "PROMPT")]
    pub prompt: Option<String>,
}

impl ResumeArgs {
    /// With `--last`, a single positional word is the prompt, not an id.
    pub fn normalized(mut self) -> ResumeArgs {
        if self.last && self.prompt.is_none() {
            self.prompt = self.session_id.take();
        }
        self
    }
}

/// Flags shared by `tiller exec` and `tiller resume`.
#[derive(Debug, Clone, Default, Args)]
pub struct ExecFlags {
    /// Print one JSON event per line on stdout (Codex's `exec --json` format).
    #[arg(long, alias = "experimental-json", global = true)]
    pub json: bool,

    /// The model to use.
    #[arg(long, short = 'm', global = true)]
    pub model: Option<String>,

    /// The provider to use (a `[model_providers.NAME]` table, or a built-in
    /// one: `openai`, `ollama`, `lmstudio`, `vllm`, `openrouter`).
    #[arg(long, global = true)]
    pub provider: Option<String>,

    /// Use the local model server that is up: Ollama, LM Studio or vLLM
    /// (`oss_provider` says which to prefer), and a model it serves unless
    /// `-m` names one.
    // The binary resolves it into `provider` and `model` before the run.
    #[arg(long, global = true, conflicts_with_all = ["provider", "script"])]
    pub oss: bool,

    /// When to ask a person: `never` (the default), `on-failure` (when a
    /// command fails in the sandbox), `on-request` (also when the model asks
    /// to leave the sandbox) or `untrusted` (before any command not known to
    /// be read-only).
    #[arg(long, value_name = "POLICY", global = true)]
    pub approval: Option<String>,

    /// `--sandbox workspace-write --approval on-failure`.
    #[arg(long, global = true, conflicts_with_all = ["approval", "sandbox", "dangerously_bypass_approvals_and_sandbox"])]
    pub full_auto: bool,

    /// Run every command without a sandbox and without asking
    /// (`--sandbox danger-full-access --approval never`).
    #[arg(long, alias = "yolo", global = true, conflicts_with_all = ["approval", "sandbox"])]
    pub dangerously_bypass_approvals_and_sandbox: bool,

    /// The folder the agent works in (on resume: the session's folder by default).
    #[arg(long = "cd", short = 'C', value_name = "DIR", global = true)]
    pub cd: Option<PathBuf>,

    /// Run against the built-in mock model, driven by this script (offline).
    #[arg(long, value_name = "FILE", global = true)]
    pub script: Option<PathBuf>,

    /// Say more on stderr: which `AGENTS.md` files were loaded.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,

    /// Override a config value: `-c key=value` (dotted keys for tables).
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", global = true)]
    pub config: Vec<String>,

    /// Attach an image (accepted for compatibility; tiller does not send images yet).
    #[arg(long, short = 'i', value_name = "FILE", global = true)]
    pub image: Vec<PathBuf>,

    /// Accepted for compatibility with `codex exec`; has no effect.
    #[arg(long, global = true)]
    pub skip_git_repo_check: bool,

    /// What the model's commands may touch: `read-only`, `workspace-write`
    /// (the default: write the folder, `$TMPDIR` and `/tmp`, no network) or
    /// `danger-full-access` (no sandbox).
    #[arg(long, short = 's', value_name = "MODE", global = true)]
    pub sandbox: Option<String>,

    /// Accepted for compatibility with `codex exec`; not used yet.
    #[arg(long, value_name = "FILE", global = true)]
    pub output_schema: Option<PathBuf>,

    /// Accepted for compatibility with the Codex SDK; not used.
    #[arg(long, value_name = "SOURCE", hide = true, global = true)]
    pub thread_source: Option<String>,

    /// Another folder the sandbox lets commands write (as
    /// `sandbox_workspace_write.writable_roots`).
    #[arg(long, value_name = "DIR", global = true)]
    pub add_dir: Vec<PathBuf>,

    /// Accepted for compatibility with the Codex SDK; not used.
    #[arg(long, value_name = "PROGRAM", hide = true, global = true)]
    pub cyber_access_program: Option<String>,
}
