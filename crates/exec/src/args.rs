//! The flags of `tiller exec`.

use std::path::PathBuf;

use clap::Args;

/// `tiller exec [FLAGS] PROMPT|-`
#[derive(Debug, Clone, Default, Args)]
pub struct ExecArgs {
    /// Print one JSON event per line on stdout (Codex's `exec --json` format).
    #[arg(long, alias = "experimental-json")]
    pub json: bool,

    /// The model to use.
    #[arg(long, short = 'm')]
    pub model: Option<String>,

    /// The provider to use (a `[model_providers.NAME]` table, or `openai`).
    #[arg(long)]
    pub provider: Option<String>,

    /// When to ask before running a command: `never` or `untrusted`.
    #[arg(long, value_name = "POLICY")]
    pub approval: Option<String>,

    /// The folder the agent works in.
    #[arg(long = "cd", short = 'C', value_name = "DIR")]
    pub cd: Option<PathBuf>,

    /// Run against the built-in mock model, driven by this script (offline).
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,

    /// Override a config value: `-c key=value` (dotted keys for tables).
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    pub config: Vec<String>,

    /// Attach an image (accepted for compatibility; tiller does not send images yet).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub image: Vec<PathBuf>,

    /// Accepted for compatibility with `codex exec`; has no effect.
    #[arg(long)]
    pub skip_git_repo_check: bool,

    /// Accepted for compatibility with `codex exec`; tiller has no sandbox yet.
    #[arg(long, short = 's', value_name = "MODE")]
    pub sandbox: Option<String>,

    /// Accepted for compatibility with `codex exec`; not used yet.
    #[arg(long, value_name = "FILE")]
    pub output_schema: Option<PathBuf>,

    /// Accepted for compatibility with the Codex SDK; not used.
    #[arg(long, value_name = "SOURCE", hide = true)]
    pub thread_source: Option<String>,

    /// Accepted for compatibility with the Codex SDK; tiller has no sandbox yet.
    #[arg(long, value_name = "DIR", hide = true)]
    pub add_dir: Vec<PathBuf>,

    /// Accepted for compatibility with the Codex SDK; not used.
    #[arg(long, value_name = "PROGRAM", hide = true)]
    pub cyber_access_program: Option<String>,

    /// The prompt; `-` or nothing reads it from standard input.
    #[arg(value_name = "PROMPT")]
    pub prompt: Option<String>,
}
