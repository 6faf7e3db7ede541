//! `tiller`: the one binary, with a subcommand per front end.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod config_edit;
mod mcp;
mod oss;
mod sandbox;
mod sessions;
mod tui;
mod undo;
use tiller_exec::{ExecArgs, ExecFlags, ResumeArgs};
use tiller_mock_model::{MockModel, Script};
use tokio::signal::unix::{SignalKind, signal};

/// A coding agent runtime you can interrupt, steer and resume. With no
/// command: the terminal UI.
#[derive(Debug, Parser)]
#[command(name = "tiller", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The terminal UI's flags (with no subcommand).
    #[command(flatten)]
    tui: tui::TuiArgs,
    /// A first message for the terminal UI to send.
    #[arg(value_name = "PROMPT")]
    prompt: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one turn headless: stream the answer, show the commands, Ctrl+C stops cleanly.
    Exec(Box<ExecArgs>),
    /// Continue a saved session in the terminal UI: a picker, `--last`, or ID [PROMPT].
    /// Without a terminal (or with --json) it runs headless, as `tiller exec resume`.
    Resume {
        /// Flags as for `tiller exec`.
        #[command(flatten)]
        flags: Box<ExecFlags>,
        /// Which session, and the prompt.
        #[command(flatten)]
        resume: ResumeArgs,
        /// Attach to a running `tiller app-server --listen URL` instead.
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
        /// The capability token file for a `--remote ws://` server.
        #[arg(long, value_name = "PATH", requires = "remote")]
        remote_token_file: Option<PathBuf>,
    },
    /// Serve Codex's app-server protocol: JSON lines on stdin/stdout, or WebSocket on a socket.
    AppServer(AppServerArgs),
    /// Serve MCP on stdin/stdout: tools `tiller`, `tiller-reply`, `tiller-interrupt`.
    McpServer,
    /// Serve the Agent Client Protocol on stdin/stdout, for editors (Zed, JetBrains, Neovim).
    Acp(AcpArgs),
    /// Manage the MCP servers whose tools sessions offer (`[mcp_servers]` in config.toml).
    Mcp(mcp::McpArgs),
    /// Run a command under the sandbox a session gives commands (-s MODE, -c, --add-dir), for debugging.
    Sandbox(sandbox::SandboxArgs),
    /// List saved sessions, newest first.
    Sessions {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Take turns back: the files they changed and the conversation (`--last`, or a session).
    Undo(undo::UndoArgs),
    /// Serve a scripted Responses API on 127.0.0.1 and print its base URL.
    MockModel {
        /// The script (JSON): one step per request.
        #[arg(long, value_name = "FILE")]
        script: PathBuf,
    },
}

/// `tiller acp` flags.
#[derive(Debug, clap::Args)]
struct AcpArgs {
    /// A prompt sent while a turn runs: `steer` it into the turn (the
    /// default) or `queue` it as the next turn.
    #[arg(long, value_name = "MODE", default_value = "steer", value_parser = ["steer", "queue"])]
    while_running: String,
    /// Override a config value for every session: `-c key=value`.
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    config: Vec<String>,
}

/// `tiller app-server` flags, as Codex 0.171's.
#[derive(Debug, clap::Args)]
struct AppServerArgs {
    /// Where to listen: stdio:// (default), unix:// (the default socket),
    /// unix://PATH, or ws://IP:PORT. Sockets speak WebSocket, to many clients.
    #[arg(long, value_name = "URL", default_value = "stdio://")]
    listen: String,
    /// The same as --listen stdio://.
    #[arg(long, conflicts_with = "listen")]
    stdio: bool,
    /// WebSocket authentication: capability-token (needs --ws-token-file).
    /// A non-loopback ws:// address is refused without it.
    #[arg(long = "ws-auth", value_name = "MODE")]
    ws_auth: Option<String>,
    /// The file holding the capability token clients present as `Authorization: Bearer TOKEN`.
    #[arg(long = "ws-token-file", value_name = "PATH")]
    ws_token_file: Option<PathBuf>,
    /// Override a config value for every thread: `-c key=value` (dotted keys for tables).
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    config: Vec<String>,
}

/// The listen address, authentication and options `args` ask for, or why not.
fn app_server_setup(
    args: AppServerArgs,
) -> anyhow::Result<(
    tiller_app_server::Listen,
    tiller_app_server::WsAuth,
    tiller_app_server::AppServerOptions,
)> {
    let listen: tiller_app_server::Listen = if args.stdio {
        tiller_app_server::Listen::Stdio
    } else {
        args.listen.parse().map_err(anyhow::Error::msg)?
    };
    let auth = match (args.ws_auth.as_deref(), &args.ws_token_file) {
        (None, None) => tiller_app_server::WsAuth::none(),
        (Some("capability-token"), Some(path)) => {
            tiller_app_server::WsAuth::capability_token_file(path).map_err(anyhow::Error::msg)?
        }
        (Some("capability-token"), None) => {
            anyhow::bail!("--ws-token-file is required with --ws-auth capability-token")
        }
        (Some(other), _) => {
            anyhow::bail!("unsupported --ws-auth mode `{other}`: tiller supports capability-token")
        }
        (None, Some(_)) => anyhow::bail!("--ws-token-file needs --ws-auth capability-token"),
    };
    let cli_overrides = args
        .config
        .iter()
        .map(|pair| tiller_core::config::parse_cli_override(pair))
        .collect::<Result<Vec<_>, _>>()?;
    let options = app_server_options(cli_overrides)?;
    Ok((listen, auth, options))
}

/// The options of an app-server (listening, or in this process for the
/// terminal UI) with `cli_overrides` for every thread. The config is read
/// now, so a bad file or override is reported at once, naming file, line and
/// key, not on the first thread; its warnings go to stderr.
fn app_server_options(
    cli_overrides: Vec<(String, String)>,
) -> anyhow::Result<tiller_app_server::AppServerOptions> {
    let tiller_home = tiller_core::config::default_tiller_home()?;
    let loaded = tiller_core::config::Config::load(
        &tiller_home,
        tiller_core::config::ConfigOverrides {
            cli_overrides: cli_overrides.clone(),
            ..tiller_core::config::ConfigOverrides::default()
        },
    )?;
    for warning in &loaded.warnings {
        let _ = writeln!(std::io::stderr(), "warning: {warning}");
    }
    let mut options = tiller_app_server::AppServerOptions::new(tiller_home);
    options.cli_overrides = cli_overrides;
    Ok(options)
}

#[allow(unsafe_code)]
fn main() -> ExitCode {
    // SAFETY: the first statement of `main`: no other thread exists yet.
    unsafe { tiller_core::secrets::seal_environment() };
    let cli = Cli::parse();
    init_logging(is_tui(&cli));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Don't wait for blocked reads of stdin: a server told to stop (SIGTERM)
    // exits now, not when its client closes the pipe.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `cli` runs the terminal UI (which owns the screen: logs go elsewhere).
fn is_tui(cli: &Cli) -> bool {
    match &cli.command {
        None => true,
        Some(Command::Resume { flags, .. }) => resume_in_tui(flags),
        Some(_) => false,
    }
}

/// `tiller resume` opens the UI in a terminal; piped or with `--json`, it
/// runs headless as it always did.
fn resume_in_tui(flags: &ExecFlags) -> bool {
    use std::io::IsTerminal;
    !flags.json && std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let Some(command) = cli.command else {
        return tui::run_tui(cli.tui, tiller_tui::Open::New, cli.prompt).await;
    };
    match command {
        Command::Resume {
            flags,
            resume,
            remote,
            remote_token_file,
        } if resume_in_tui(&flags) => {
            let resume = resume.normalized();
            let open = match (&resume.session_id, resume.last) {
                (Some(id), _) => tiller_tui::Open::Thread(id.clone()),
                (None, true) => tiller_tui::Open::Last,
                (None, false) => tiller_tui::Open::Picker,
            };
            let args = tui::TuiArgs {
                remote,
                remote_token_file,
                model: flags.model.clone(),
                provider: flags.provider.clone(),
                oss: flags.oss,
                approval: flags.approval.clone(),
                sandbox: flags.sandbox.clone(),
                cd: flags.cd.clone(),
                config: flags.config.clone(),
                script: flags.script.clone(),
            };
            tui::run_tui(args, open, resume.prompt).await
        }
        Command::Exec(mut args) => {
            resolve_oss(&mut args.flags).await?;
            // The mock lives as long as the run: it is the model for `--script`.
            let (_mock, setup) = script_model(args.flags.script.as_deref()).await?;
            Ok(tiller_exec::run_exec(*args, setup).await?)
        }
        Command::Resume {
            mut flags, resume, ..
        } => {
            resolve_oss(&mut flags).await?;
            let (_mock, setup) = script_model(flags.script.as_deref()).await?;
            Ok(tiller_exec::run_resume(*flags, resume, setup).await?)
        }
        Command::Sessions { json } => sessions::print_sessions(json),
        Command::Undo(args) => undo::run_undo(args).await,
        Command::AppServer(args) => {
            let (listen, auth, options) = app_server_setup(args)?;
            tiller_app_server::serve(listen, auth, options)
                .await
                .map_err(anyhow::Error::msg)
        }
        Command::Acp(args) => {
            let options = tiller_acp::AcpOptions {
                tiller_home: tiller_core::config::default_tiller_home()?,
                cli_overrides: args
                    .config
                    .iter()
                    .map(|kv| tiller_core::config::parse_cli_override(kv))
                    .collect::<Result<_, _>>()?,
                while_running: if args.while_running == "queue" {
                    tiller_acp::WhileRunning::Queue
                } else {
                    tiller_acp::WhileRunning::Steer
                },
            };
            tiller_acp::run_acp(options)
                .await
                .map_err(anyhow::Error::msg)?;
            Ok(0)
        }
        Command::McpServer => {
            let options = tiller_mcp_server::McpServerOptions {
                tiller_home: tiller_core::config::default_tiller_home()?,
            };
            tiller_mcp_server::run_mcp_server(options).await?;
            Ok(0)
        }
        Command::Mcp(args) => mcp::run_mcp(args),
        Command::Sandbox(args) => sandbox::run_sandbox(args),
        Command::MockModel { script } => {
            let script = Script::from_file(&script)?;
            let mock = MockModel::start(script)
                .await
                .context("could not start the mock model")?;
            // Listen before printing: a caller may send SIGINT as soon as it reads the URL.
            let mut sigint = signal(SignalKind::interrupt())?;
            let mut sigterm = signal(SignalKind::terminate())?;
            let _ = writeln!(std::io::stdout(), "{}", mock.base_url());
            tokio::select! {
                _ = sigint.recv() => {}
                _ = sigterm.recv() => {}
            }
            mock.shutdown().await;
            Ok(0)
        }
    }
}

/// `--oss`: the local server that is up becomes `--provider`, and the
/// model it serves `-m` (see [`oss`]).
async fn resolve_oss(flags: &mut ExecFlags) -> anyhow::Result<()> {
    if !flags.oss {
        return Ok(());
    }

    let choice = oss::choose(oss::OssRequest {
        config: &flags.config,
        model: flags.model.as_deref(),
        cwd: flags.cd.as_deref(),
    })
    .await?;
    flags.provider = Some(choice.provider);
    flags.model = Some(choice.model);
    Ok(())
}

/// `--script FILE`: the built-in mock model serving that script, and the
/// setup that makes exec talk to it.
async fn script_model(
    script: Option<&std::path::Path>,
) -> anyhow::Result<(Option<MockModel>, tiller_exec::ExecSetup)> {
    let Some(path) = script else {
        return Ok((None, tiller_exec::ExecSetup::default()));
    };
    let script = Script::from_file(path)?;
    let mock = MockModel::start(script)
        .await
        .context("could not start the mock model")?;
    let setup = tiller_exec::ExecSetup {
        provider_override: Some(tiller_core::config::ProviderConfig::for_local_server(
            mock.base_url(),
        )),
    };
    Ok((Some(mock), setup))
}

/// Logs go to stderr (stdout is the answer or the protocol); `RUST_LOG` sets
/// the level. Colour only on a terminal, and never with `NO_COLOR` set. The
/// terminal UI owns the screen: its logs go to `$TILLER_HOME/log/tui.log`
/// when `RUST_LOG` asks for them, and nowhere otherwise (what a person must
/// know reaches the UI as the server's warnings and errors).
fn init_logging(tui: bool) {
    use std::io::IsTerminal;
    if tui {
        let file = std::env::var_os("RUST_LOG")
            .and_then(|_| tiller_core::config::default_tiller_home().ok())
            .and_then(|home| {
                let dir = home.join("log");
                std::fs::create_dir_all(&dir).ok()?;
                std::fs::File::create(dir.join("tui.log")).ok()
            });
        if let (Some(file), Ok(filter)) =
            (file, tracing_subscriber::EnvFilter::try_from_default_env())
        {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .init();
        }
        return;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .init();
}
