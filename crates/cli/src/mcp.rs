//! `tiller mcp list|get|add|remove`: the MCP servers whose tools sessions
//! offer, the `[mcp_servers.<name>]` tables of the config file, managed from
//! the command line as `codex mcp` does.
//!
//! `list` and `get` show the config as tiller loads it (`-c` overrides
//! included), so what they print is what a session would start; `add` and
//! `remove` edit the file itself through [`ConfigFile`], which keeps the
//! rest of the file as it was and writes nothing tiller would not load.
//!
//! `--env` values are written to the file as given (the person asked for
//! that), but never printed back: `list` and `get` show `KEY=*****`, as
//! Codex does, so a listing pasted into a bug report leaks no token. The
//! same goes for `http_headers` values.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Map, Value, json};
use tiller_core::config::{
    Config, ConfigOverrides, McpServerConfig, McpTransport, default_tiller_home,
    parse_cli_override, valid_mcp_server_name,
};
use toml_edit::{Array, InlineTable, Item, Table};

use crate::config_edit::ConfigFile;

/// The config key holding the servers.
const SERVERS_KEY: &str = "mcp_servers";
/// What a secret is shown as.
const MASK: &str = "*****";

/// `tiller mcp`.
#[derive(Debug, clap::Args)]
#[command(subcommand_required = true, arg_required_else_help = true)]
pub struct McpArgs {
    /// What to do.
    #[command(subcommand)]
    command: McpCommand,
}

/// The `tiller mcp` subcommands.
#[derive(Debug, Subcommand)]
enum McpCommand {
    /// List the configured MCP servers.
    List(ListArgs),
    /// Show one MCP server's settings.
    Get(GetArgs),
    /// Add an MCP server to the config file (replacing one of the same name):
    /// `NAME -- COMMAND [ARGS]...` for a program, `NAME --url URL` for streamable HTTP.
    Add(AddArgs),
    /// Remove an MCP server from the config file.
    Remove(RemoveArgs),
}

/// `tiller mcp list` flags.
#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Override a config value: `-c key=value` (dotted keys for tables).
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    config: Vec<String>,
}

/// `tiller mcp get` flags.
#[derive(Debug, clap::Args)]
struct GetArgs {
    /// The server's name.
    name: String,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Override a config value: `-c key=value` (dotted keys for tables).
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    config: Vec<String>,
}

/// `tiller mcp add` flags.
#[derive(Debug, clap::Args)]
struct AddArgs {
    /// The server's name: letters, digits, '-' and '_' (its tools are `mcp__NAME__TOOL`).
    #[arg(value_parser = server_name)]
    name: String,
    /// A variable to set for the program (repeatable). Stored in the config file as given.
    #[arg(long, value_name = "KEY=VALUE", value_parser = env_pair, conflicts_with = "url")]
    env: Vec<(String, String)>,
    /// The endpoint of a streamable HTTP server, instead of a command.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// The environment variable holding a bearer token for `--url`.
    // `requires` alone is not enough: clap stops requiring `url` once
    // `command`, which conflicts with it, is present.
    #[arg(long, value_name = "VAR", requires = "url", conflicts_with = "command")]
    bearer_token_env_var: Option<String>,
    /// The program to run and its arguments (after `--`).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        num_args = 1..,
        required_unless_present = "url",
        conflicts_with = "url"
    )]
    command: Vec<String>,
}

/// `tiller mcp remove` flags.
#[derive(Debug, clap::Args)]
struct RemoveArgs {
    /// The server's name.
    name: String,
}

/// Runs `tiller mcp`; a reader that stops early (`tiller mcp list | head -1`)
/// ends the output quietly.
pub fn run_mcp(args: McpArgs) -> anyhow::Result<i32> {
    let result = match args.command {
        McpCommand::List(args) => list(args),
        McpCommand::Get(args) => get(args),
        McpCommand::Add(args) => add(args),
        McpCommand::Remove(args) => remove(args),
    };
    match result {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(0)
        }
        other => other,
    }
}

/// Checks a server name as the config does, so a bad one is a usage error.
fn server_name(name: &str) -> Result<String, String> {
    if valid_mcp_server_name(name) {
        Ok(name.to_owned())
    } else {
        Err("use 1 to 32 letters, digits, '-' and '_' (the model sees the server's tools as mcp__NAME__TOOL)".to_owned())
    }
}

/// Splits `--env KEY=VALUE` at its first `=`.
fn env_pair(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        Some(_) | None => Err("expected KEY=VALUE, e.g. --env API_TOKEN=abc123".to_owned()),
    }
}

/// The config as tiller loads it, with `-c` overrides; warnings go to stderr.
fn load(overrides: &[String]) -> anyhow::Result<Config> {
    let cli_overrides = overrides
        .iter()
        .map(|pair| parse_cli_override(pair))
        .collect::<Result<Vec<_>, _>>()?;
    let home = default_tiller_home()?;
    let loaded = Config::load(
        &home,
        ConfigOverrides {
            cli_overrides,
            ..ConfigOverrides::default()
        },
    )?;
    for warning in &loaded.warnings {
        let _ = writeln!(std::io::stderr(), "warning: {warning}");
    }
    Ok(loaded.config)
}

/// `tiller mcp list`.
fn list(args: ListArgs) -> anyhow::Result<i32> {
    let config = load(&args.config)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let servers: Vec<Value> = config.mcp_servers.values().map(server_json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&servers)?)?;
        return Ok(0);
    }
    if config.mcp_servers.is_empty() {
        writeln!(
            out,
            "No MCP servers configured in {}. Add one with\n  tiller mcp add NAME -- COMMAND [ARGS]...\n  tiller mcp add NAME --url URL",
            config.config_file.display()
        )?;
        return Ok(0);
    }

    let mut rows = vec![[
        "NAME".to_owned(),
        "ENABLED".to_owned(),
        "TRANSPORT".to_owned(),
        "COMMAND / URL".to_owned(),
        "ENV".to_owned(),
    ]];
    for server in config.mcp_servers.values() {
        let (transport, target, env) = match &server.transport {
            McpTransport::Stdio {
                command, args, env, ..
            } => ("stdio", command_line(command, args), masked_env(env)),
            McpTransport::Http { url, .. } => ("http", url.clone(), String::new()),
        };
        rows.push([
            server.name.clone(),
            yes_no(server.enabled).to_owned(),
            transport.to_owned(),
            target,
            if env.is_empty() { "-".to_owned() } else { env },
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(0)
}

/// `tiller mcp get`.
fn get(args: GetArgs) -> anyhow::Result<i32> {
    let config = load(&args.config)?;
    let Some(server) = config.mcp_servers.get(&args.name) else {
        anyhow::bail!(
            "no MCP server '{}' in {}; {}",
            args.name,
            config.config_file.display(),
            configured(config.mcp_servers.keys())
        );
    };

    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&server_json(server))?
        )?;
        return Ok(0);
    }
    let mut lines = vec![
        server.name.clone(),
        format!("  enabled: {}", yes_no(server.enabled)),
    ];
    match &server.transport {
        McpTransport::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            lines.push("  transport: stdio".to_owned());
            lines.push(format!("  command: {}", shell_word(command)));
            let args: Vec<String> = args.iter().map(|arg| shell_word(arg)).collect();
            lines.push(format!("  args: {}", or_dash(args.join(" "))));
            lines.push(format!("  env: {}", or_dash(masked_env(env))));
            let cwd = cwd.as_ref().map(|cwd| cwd.display().to_string());
            lines.push(format!("  cwd: {}", or_dash(cwd.unwrap_or_default())));
        }
        McpTransport::Http {
            url,
            bearer_token_env_var,
            http_headers,
            env_http_headers,
        } => {
            lines.push("  transport: streamable_http".to_owned());
            lines.push(format!("  url: {url}"));
            let bearer = bearer_token_env_var.clone().unwrap_or_default();
            lines.push(format!("  bearer_token_env_var: {}", or_dash(bearer)));
            if !http_headers.is_empty() {
                lines.push(format!("  http_headers: {}", masked_env(http_headers)));
            }
            if !env_http_headers.is_empty() {
                let headers: Vec<String> = env_http_headers
                    .iter()
                    .map(|(header, var)| format!("{header}=${var}"))
                    .collect();
                lines.push(format!("  env_http_headers: {}", headers.join(", ")));
            }
        }
    }
    lines.push(format!(
        "  startup_timeout_sec: {}",
        server.startup_timeout.as_secs_f64()
    ));
    lines.push(format!(
        "  tool_timeout_sec: {}",
        server.tool_timeout.as_secs_f64()
    ));
    if let Some(tools) = &server.enabled_tools {
        lines.push(format!("  enabled_tools: {}", tools.join(", ")));
    }
    if !server.disabled_tools.is_empty() {
        lines.push(format!(
            "  disabled_tools: {}",
            server.disabled_tools.join(", ")
        ));
    }
    lines.push(format!("  remove: tiller mcp remove {}", server.name));
    writeln!(out, "{}", lines.join("\n"))?;
    Ok(0)
}

/// `tiller mcp add`.
fn add(args: AddArgs) -> anyhow::Result<i32> {
    let mut file = ConfigFile::open(&default_tiller_home()?)?;
    let path = file.path().display().to_string();
    let replaced = put_server(file.document_mut(), &args.name, new_server(&args))
        .map_err(|message| anyhow::anyhow!("{path}: {message}"))?;
    file.save()?;
    let mut out = std::io::stdout().lock();
    if replaced {
        writeln!(
            out,
            "Replaced MCP server '{}' in {path} (its previous settings are gone).",
            args.name
        )?;
    } else {
        writeln!(out, "Added MCP server '{}' to {path}.", args.name)?;
    }
    Ok(0)
}

/// `tiller mcp remove`.
fn remove(args: RemoveArgs) -> anyhow::Result<i32> {
    let mut file = ConfigFile::open(&default_tiller_home()?)?;
    let path = file.path().display().to_string();
    let servers = file
        .document_mut()
        .get_mut(SERVERS_KEY)
        .and_then(Item::as_table_like_mut);
    if servers
        .and_then(|servers| servers.remove(&args.name))
        .is_none()
    {
        let names = file
            .document()
            .get(SERVERS_KEY)
            .and_then(Item::as_table_like)
            .map(|servers| {
                servers
                    .iter()
                    .map(|(name, _)| name.to_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        anyhow::bail!(
            "no MCP server '{}' in {path}; {}",
            args.name,
            configured(names.iter())
        );
    }

    file.save()
        .with_context(|| format!("MCP server '{}' was not removed", args.name))?;
    writeln!(
        std::io::stdout(),
        "Removed MCP server '{}' from {path}.",
        args.name
    )?;
    Ok(0)
}

/// The table `add` writes: only what was asked for, so that everything
/// else keeps tiller's defaults.
fn new_server(args: &AddArgs) -> Table {
    let mut table = Table::new();
    if let Some(url) = &args.url {
        table.insert("url", toml_edit::value(url.as_str()));
        if let Some(var) = &args.bearer_token_env_var {
            table.insert("bearer_token_env_var", toml_edit::value(var.as_str()));
        }
        return table;
    }

    let (command, command_args) = args.command.split_first().unzip();
    table.insert(
        "command",
        toml_edit::value(command.map_or("", String::as_str)),
    );
    if let Some(command_args) = command_args.filter(|rest| !rest.is_empty()) {
        let array: Array = command_args.iter().map(String::as_str).collect();
        table.insert("args", toml_edit::value(array));
    }
    if !args.env.is_empty() {
        // Sorted and deduplicated, the last `--env` of a key winning.
        let env: BTreeMap<&str, &str> = args
            .env
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        let env: InlineTable = env.into_iter().collect();
        table.insert("env", toml_edit::value(env));
    }
    table
}

/// Puts `server` in the document as `[mcp_servers.<name>]`; whether it
/// replaced a server of that name. A replaced server keeps its place (and
/// the comments above it), and its style: a table stays a table, an inline
/// table an inline table. A new one goes after the other servers, or at the
/// end of the file when it is the first.
fn put_server(
    document: &mut toml_edit::DocumentMut,
    name: &str,
    mut server: Table,
) -> Result<bool, String> {
    let end = last_position(document.as_table()).saturating_add(1);
    let root = document.as_table_mut();
    let first = !root.contains_key(SERVERS_KEY);
    let servers = root.entry(SERVERS_KEY).or_insert_with(|| {
        let mut servers = Table::new();
        // No `[mcp_servers]` line of its own: `[mcp_servers.<name>]` says it.
        servers.set_implicit(true);
        Item::Table(servers)
    });
    let Some(servers) = servers.as_table_like_mut() else {
        return Err(format!(
            "`{SERVERS_KEY}` is {}, not a table of servers: fix it by hand",
            servers.type_name()
        ));
    };

    if let Some(Item::Table(old)) = servers.get_mut(name) {
        old.clear();
        old.set_implicit(false);
        for (key, item) in server {
            old.insert(&key, item);
        }
        return Ok(true);
    }
    let item = match servers.get(name) {
        Some(Item::Value(_)) => {
            Item::Value(toml_edit::Value::InlineTable(server.into_inline_table()))
        }
        Some(Item::None | Item::Table(_) | Item::ArrayOfTables(_)) | None => {
            if first {
                server.set_position(end);
            }
            Item::Table(server)
        }
    };
    Ok(servers.insert(name, item).is_some())
}

/// The largest document position of `table` and the tables inside it.
fn last_position(table: &Table) -> isize {
    let nested = table.iter().map(|(_, item)| match item {
        Item::Table(table) => last_position(table),
        Item::ArrayOfTables(tables) => tables.iter().map(last_position).max().unwrap_or(0),
        Item::None | Item::Value(_) => 0,
    });
    nested.chain(table.position()).max().unwrap_or(0)
}

/// A server as `--json` prints it, secrets masked.
fn server_json(server: &McpServerConfig) -> Value {
    let mut transport = Map::new();
    match &server.transport {
        McpTransport::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            transport.insert("type".into(), json!("stdio"));
            transport.insert("command".into(), json!(command));
            transport.insert("args".into(), json!(args));
            if !env.is_empty() {
                transport.insert("env".into(), masked_map(env));
            }
            if let Some(cwd) = cwd {
                transport.insert("cwd".into(), json!(cwd.display().to_string()));
            }
        }
        McpTransport::Http {
            url,
            bearer_token_env_var,
            http_headers,
            env_http_headers,
        } => {
            transport.insert("type".into(), json!("streamable_http"));
            transport.insert("url".into(), json!(url));
            if let Some(var) = bearer_token_env_var {
                transport.insert("bearer_token_env_var".into(), json!(var));
            }
            if !http_headers.is_empty() {
                transport.insert("http_headers".into(), masked_map(http_headers));
            }
            if !env_http_headers.is_empty() {
                transport.insert("env_http_headers".into(), json!(env_http_headers));
            }
        }
    }
    let mut object = json!({
        "name": server.name,
        "enabled": server.enabled,
        "transport": transport,
        "startup_timeout_sec": server.startup_timeout.as_secs_f64(),
        "tool_timeout_sec": server.tool_timeout.as_secs_f64(),
    });
    if let Some(tools) = &server.enabled_tools {
        object["enabled_tools"] = json!(tools);
    }
    if !server.disabled_tools.is_empty() {
        object["disabled_tools"] = json!(server.disabled_tools);
    }
    object
}

/// `map`'s keys with every value masked, as JSON.
fn masked_map(map: &BTreeMap<String, String>) -> Value {
    map.keys()
        .map(|key| (key.clone(), json!(MASK)))
        .collect::<Map<_, _>>()
        .into()
}

/// `KEY=*****, …` for `map`; empty when it is.
fn masked_env(map: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = map.keys().map(|key| format!("{key}={MASK}")).collect();
    pairs.join(", ")
}

/// `command` and `args` as one line a shell would read back the same.
fn command_line(command: &str, args: &[String]) -> String {
    std::iter::once(command)
        .chain(args.iter().map(String::as_str))
        .map(shell_word)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word`, single-quoted if a shell would otherwise split or expand it.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// "configured: a, b", or that none is, with how to add one.
fn configured<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "no MCP server is configured (add one with `tiller mcp add`)".to_owned()
    } else {
        format!("configured: {}", names.join(", "))
    }
}

/// "yes" or "no", as the listing shows a flag.
fn yes_no(yes: bool) -> &'static str {
    if yes { "yes" } else { "no" }
}

/// `text`, or "-" when there is nothing to show.
fn or_dash(text: String) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
// The workspace denies unwrap/expect; tests are meant to be exempt.
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The table `tiller mcp add NAME --env K=V... -- COMMAND...` writes.
    fn stdio(name: &str, command: &[&str], env: &[(&str, &str)]) -> Table {
        let args = AddArgs {
            name: name.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            url: None,
            bearer_token_env_var: None,
            command: command.iter().map(|s| (*s).to_owned()).collect(),
        };
        new_server(&args)
    }

    /// `text` with `server` put in as `name`, and whether it replaced one.
    fn edited(text: &str, name: &str, server: Table) -> (String, bool) {
        let mut document: toml_edit::DocumentMut = text.parse().unwrap();
        let replaced = put_server(&mut document, name, server).unwrap();
        (document.to_string(), replaced)
    }

    #[test]
    fn the_first_server_goes_at_the_end_and_keeps_the_rest() {
        let text = "# mine\nmodel = \"gpt-5\" # why\n\n[model_providers.local]\nbase_url = \"http://x/v1\"\n";
        let (out, replaced) = edited(text, "docs", stdio("docs", &["srv", "-v"], &[("T", "1")]));
        assert!(!replaced);
        assert_eq!(
            out,
            format!(
                "{text}\n[mcp_servers.docs]\ncommand = \"srv\"\nargs = [\"-v\"]\nenv = {{ T = \"1\" }}\n"
            )
        );
    }

    #[test]
    fn a_new_server_follows_the_other_servers() {
        let text = "[mcp_servers.a]\ncommand = \"a\"\n\n[other]\nkey = 1\n";
        let (out, _) = edited(text, "b", stdio("b", &["b"], &[]));
        assert_eq!(
            out,
            "[mcp_servers.a]\ncommand = \"a\"\n\n[mcp_servers.b]\ncommand = \"b\"\n\n[other]\nkey = 1\n"
        );
    }

    #[test]
    fn a_replaced_server_keeps_its_place_and_comment() {
        let text = "# docs server\n[mcp_servers.docs]\ncommand = \"old\"\nenabled = false\n\n[mcp_servers.docs.env]\nA = \"1\"\n\n[other]\nkey = 1\n";
        let (out, replaced) = edited(text, "docs", stdio("docs", &["new"], &[]));
        assert!(replaced);
        assert_eq!(
            out,
            "# docs server\n[mcp_servers.docs]\ncommand = \"new\"\n\n[other]\nkey = 1\n"
        );
    }

    #[test]
    fn an_inline_server_table_stays_inline() {
        let text = "mcp_servers = { docs = { command = \"old\" } }\n";
        let (out, replaced) = edited(text, "docs", stdio("docs", &["new"], &[]));
        assert!(replaced);
        assert_eq!(out, "mcp_servers = { docs = { command = \"new\" } }\n");
    }

    #[test]
    fn mcp_servers_that_is_not_a_table_is_refused() {
        let mut document: toml_edit::DocumentMut = "mcp_servers = 3\n".parse().unwrap();
        let error = put_server(&mut document, "x", stdio("x", &["x"], &[])).unwrap_err();
        assert!(error.contains("not a table"), "{error}");
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(
            command_line("npx", &["-y".into(), "a b".into(), "it's".into()]),
            r"npx -y 'a b' 'it'\''s'"
        );
    }
}
