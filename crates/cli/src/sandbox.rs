//! `tiller sandbox -- CMD ARGS...`: run one command under the sandbox a
//! session would give it (the config's `sandbox_mode` and
//! `[sandbox_workspace_write]`, `-s`, `-c`, `--add-dir`, in the folder `-C`
//! names), to see what it allows, as `codex sandbox linux` does.
//!
//! tiller confines itself and `exec`s the command in its place, so the
//! command has the terminal, its signals and its exit status as if run
//! directly. A mode the machine cannot enforce is refused with the reason,
//! never run unconfined.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::Context;
use tiller_core::config::{Config, ConfigOverrides, default_tiller_home, parse_cli_override};

/// `tiller sandbox`.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// `read-only`, `workspace-write` or `danger-full-access` (default: the config's).
    #[arg(long, short = 's', value_name = "MODE")]
    sandbox: Option<String>,
    /// Override a config value: `-c key=value` (dotted keys for tables).
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// The folder the command runs in, writable under workspace-write
    /// (default: the current one).
    #[arg(long = "cd", short = 'C', value_name = "DIR")]
    cd: Option<PathBuf>,
    /// Another writable folder.
    #[arg(long, value_name = "DIR")]
    add_dir: Vec<PathBuf>,
    /// Print the policy on stderr before running.
    #[arg(long, short = 'v')]
    verbose: bool,
    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// The exit status when the command cannot be started, as a shell's.
const EXIT_CANNOT_RUN: i32 = 126;
/// The same, when it is not found.
const EXIT_NOT_FOUND: i32 = 127;

/// Runs `args.command` confined; returns only if it could not be.
pub fn run_sandbox(args: SandboxArgs) -> anyhow::Result<i32> {
    let overrides = ConfigOverrides {
        sandbox_mode: args.sandbox.as_deref().map(str::parse).transpose()?,
        writable_roots: args.add_dir,
        cwd: args.cd,
        cli_overrides: args
            .config
            .iter()
            .map(|kv| parse_cli_override(kv))
            .collect::<Result<_, _>>()?,
        ..ConfigOverrides::default()
    };
    let loaded = Config::load(&default_tiller_home()?, overrides)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let config = loaded.config;
    let policy = &config.sandbox;
    if let Err(why) = tiller_core::check_sandbox_support(policy) {
        eprintln!("tiller sandbox: {why}");
        return Ok(EXIT_CANNOT_RUN);
    }
    let sandbox = tiller_core::sandbox_for(policy, &config.cwd);
    if args.verbose {
        eprintln!(
            "tiller sandbox: {} in {}",
            policy.summary(),
            config.cwd.display()
        );
        if let tiller_core::process_tree::Sandbox::WorkspaceWrite { writable_roots, .. } = &sandbox
        {
            for root in writable_roots {
                eprintln!("tiller sandbox: writable: {}", root.display());
            }
        }
    }
    let prepared = sandbox
        .prepare()
        .with_context(|| format!("the sandbox ({}) could not be set up", policy.mode))?;
    let (program, rest) = args
        .command
        .split_first()
        .context("no command given after --")?;
    let mut command = std::process::Command::new(program);
    command.args(rest).current_dir(&config.cwd);
    prepared
        .confine(&mut command)
        .context("the sandbox could not be set up")?;
    // Returns only if the exec failed.
    let error = command.exec();
    eprintln!("tiller sandbox: cannot run {program}: {error}");
    Ok(if error.kind() == std::io::ErrorKind::NotFound {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_RUN
    })
}
