//! `tiller` with no subcommand, and `tiller resume` in a terminal: the
//! terminal UI, wired to an app-server in this process (over an in-memory
//! pipe) or to one listening elsewhere (`--remote`).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use tiller_client::protocol::ThreadStartParams;
use tiller_client::{ClientOptions, Connector, Streams};
use tiller_mock_model::{MockModel, Script};
use tiller_tui::{Open, TuiOptions};

/// The flags of the terminal UI.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TuiArgs {
    /// Attach to a running `tiller app-server --listen URL` (unix://PATH or
    /// ws://HOST:PORT) instead of running one in this process.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// The file holding the capability token for a `--remote ws://` server.
    #[arg(long, value_name = "PATH", requires = "remote")]
    pub remote_token_file: Option<PathBuf>,
    /// The model to use.
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// The provider to use (a `[model_providers.NAME]` table, or a built-in
    /// one: `openai`, `ollama`, `lmstudio`, `vllm`, `openrouter`).
    #[arg(long)]
    pub provider: Option<String>,
    /// Use the local model server that is up: Ollama, LM Studio or vLLM
    /// (`oss_provider` says which to prefer), and a model it serves unless
    /// `-m` names one.
    #[arg(long, conflicts_with_all = ["provider", "script", "remote"])]
    pub oss: bool,
    /// When to ask before running a command.
    #[arg(
        long,
        short = 'a',
        alias = "ask-for-approval",
        value_name = "POLICY",
        value_parser = ["untrusted", "on-request", "on-failure", "never"]
    )]
    pub approval: Option<String>,
    /// What the model's commands may touch (default: `sandbox_mode` in
    /// config.toml, else workspace-write).
    #[arg(
        long,
        short = 's',
        value_name = "MODE",
        value_parser = ["read-only", "workspace-write", "danger-full-access"]
    )]
    pub sandbox: Option<String>,
    /// The folder the agent works in.
    #[arg(long = "cd", short = 'C', value_name = "DIR")]
    pub cd: Option<PathBuf>,
    /// Override a config value: `-c key=value` (dotted keys for tables).
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// Run against the built-in mock model, driven by this script (offline).
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
}

/// Run the UI: `open` says which session, `prompt` is sent first.
pub async fn run_tui(mut args: TuiArgs, open: Open, prompt: Option<String>) -> anyhow::Result<i32> {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "the terminal UI needs a terminal on stdin and stdout; for a run without one use `tiller exec PROMPT`"
        );
    }
    if args.oss && args.remote.is_some() {
        // `tiller resume --oss --remote`: clap sees only exec's flags there.
        anyhow::bail!("--oss cannot be used with --remote: the remote server uses its own config");
    }
    if args.oss {
        // Before the screen is taken over, so a server that is not up is said in words.
        let choice = crate::oss::choose(crate::oss::OssRequest {
            config: &args.config,
            model: args.model.as_deref(),
            cwd: args.cd.as_deref(),
        })
        .await?;
        args.provider = Some(choice.provider);
        args.model = Some(choice.model);
    }
    let mut cli_overrides = args
        .config
        .iter()
        .map(|pair| tiller_core::config::parse_cli_override(pair))
        .collect::<Result<Vec<_>, _>>()?;
    // The mock lives as long as the UI: it is the model for `--script`.
    let mut _mock = None;
    if let Some(path) = &args.script {
        let mock = MockModel::start(Script::from_file(path)?)
            .await
            .context("could not start the mock model")?;
        cli_overrides.push(("model_provider".into(), "\"script\"".into()));
        cli_overrides.push((
            "model_providers.script.base_url".into(),
            format!("\"{}\"", mock.base_url()),
        ));
        _mock = Some(mock);
    }

    let client = match &args.remote {
        Some(url) => {
            let mut options = ClientOptions::connect(url)?;
            if let Some(path) = &args.remote_token_file {
                let token = std::fs::read_to_string(path)
                    .with_context(|| format!("could not read {}", path.display()))?;
                options = options.token(token.trim());
            }
            options
        }
        // Read before the screen is taken over, so a bad config is said in words.
        None => ClientOptions::in_process(in_process(crate::app_server_options(cli_overrides)?)),
    };
    let cwd = match &args.cd {
        Some(dir) => Some(
            std::fs::canonicalize(dir)
                .with_context(|| format!("--cd {}: no such folder", dir.display()))?,
        ),
        None => None,
    };
    let open = match (open, args.remote.is_some()) {
        (Open::New, true) => Open::Attach,
        (open, _) => open,
    };
    let thread = ThreadStartParams {
        cwd: cwd.map(|dir| dir.to_string_lossy().into_owned()),
        model: args.model.clone(),
        model_provider: args.provider.clone(),
        approval_policy: args.approval.clone().map(serde_json::Value::String),
        sandbox: args.sandbox.clone().map(serde_json::Value::String),
        ..ThreadStartParams::default()
    };
    let options = TuiOptions {
        client,
        open,
        prompt,
        thread,
    };
    Ok(tiller_tui::run(options).await?)
}

/// A connector that starts a new app-server in this process for each
/// connection, over an in-memory pipe.
fn in_process(options: tiller_app_server::AppServerOptions) -> Connector {
    Connector::new(move || {
        let (client_side, server_side) = tokio::io::duplex(1 << 20);
        let (server_read, server_write) = tokio::io::split(server_side);
        let options = options.clone();
        tokio::spawn(async move {
            tiller_app_server::run_app_server(server_read, server_write, options).await
        });
        let (read, write) = tokio::io::split(client_side);
        let streams: Streams = (Box::pin(read), Box::pin(write));
        Ok(streams)
    })
}
