//! `[mcp_servers.<name>]`: the MCP servers whose tools a session offers the
//! model, with Codex's keys, checked as the rest of the config is (a bad value
//! names its file, line and dotted key).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::ConfigError;
use super::check::{
    bad, boolean, describe, env_header, header, ignored, leaf_str, string, string_table, table,
};
use super::raw::{RawNode, RawValue};
use super::sandbox::{self, SandboxMode};

/// How long a server may take to start and list its tools (`startup_timeout_sec`, Codex's default).
pub const DEFAULT_MCP_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one tool call may run (`tool_timeout_sec`, Codex's default).
pub const DEFAULT_MCP_TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest timeout accepted, so that a typo cannot mean "forever".
const MAX_TIMEOUT_SECS: f64 = 24.0 * 3600.0;

/// Keys of a Codex `[mcp_servers.<name>]` table that tiller reads past.
const CODEX_SERVER_KEYS: &[&str] = &[
    "env_vars",
    "oauth",
    "oauth_resource",
    "required",
    "scopes",
    "supports_parallel_tool_calls",
];

/// One configured MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServerConfig {
    /// Its name, the `<name>` of `[mcp_servers.<name>]`; the model sees its
    /// tools as `mcp__<name>__<tool>`.
    pub name: String,
    /// How to reach it.
    pub transport: McpTransport,
    /// Whether it is started at all (`enabled`, on unless `false`).
    pub enabled: bool,
    /// How long it may take to start and list its tools.
    pub startup_timeout: Duration,
    /// How long one call of its tools may run before it is cancelled.
    pub tool_timeout: Duration,
    /// Only these tools are offered (`enabled_tools`); `None`: all.
    pub enabled_tools: Option<Vec<String>>,
    /// These tools are never offered (`disabled_tools`).
    pub disabled_tools: Vec<String>,
    /// When a call of its tools asks the person first
    /// (`default_tools_approval_mode`).
    pub approval: McpApproval,
    /// Per tool, overriding `approval` (`[mcp_servers.<name>.tools.<tool>] approval_mode`).
    pub tool_approvals: BTreeMap<String, McpApproval>,
    /// A stdio server runs confined in this mode (`sandbox_mode`, with the
    /// session's `[sandbox_workspace_write]`); `None`: unconfined, as it is
    /// the user's own program and often needs the network.
    pub sandbox_mode: Option<SandboxMode>,
}

impl McpServerConfig {
    /// A stdio server running `command` with the defaults for everything else.
    pub fn stdio(name: &str, command: &str, args: Vec<String>) -> McpServerConfig {
        McpServerConfig::with_transport(
            name,
            McpTransport::Stdio {
                command: command.to_owned(),
                args,
                env: BTreeMap::new(),
                cwd: None,
            },
        )
    }

    fn with_transport(name: &str, transport: McpTransport) -> McpServerConfig {
        McpServerConfig {
            name: name.to_owned(),
            transport,
            enabled: true,
            startup_timeout: DEFAULT_MCP_STARTUP_TIMEOUT,
            tool_timeout: DEFAULT_MCP_TOOL_TIMEOUT,
            enabled_tools: None,
            disabled_tools: Vec::new(),
            approval: McpApproval::Auto,
            tool_approvals: BTreeMap::new(),
            sandbox_mode: None,
        }
    }

    /// Whether `tool` is offered, per `enabled_tools` and `disabled_tools`.
    pub fn offers(&self, tool: &str) -> bool {
        let enabled = self
            .enabled_tools
            .as_ref()
            .is_none_or(|tools| tools.iter().any(|t| t == tool));
        enabled && !self.disabled_tools.iter().any(|t| t == tool)
    }

    /// When a call of `tool` asks first.
    pub fn approval_for(&self, tool: &str) -> McpApproval {
        self.tool_approvals
            .get(tool)
            .copied()
            .unwrap_or(self.approval)
    }
}

/// How tiller reaches an MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpTransport {
    /// A program tiller starts, spoken to over its stdin and stdout.
    Stdio {
        /// The program (`command`).
        command: String,
        /// Its arguments (`args`).
        args: Vec<String>,
        /// Variables set for it on top of tiller's environment, less the
        /// provider's secrets (`env`).
        env: BTreeMap<String, String>,
        /// The folder it runs in (`cwd`); `None`: the session's.
        cwd: Option<PathBuf>,
    },
    /// A server already running, spoken to over streamable HTTP.
    Http {
        /// Its endpoint (`url`).
        url: String,
        /// The variable holding a bearer token sent as `Authorization`
        /// (`bearer_token_env_var`).
        bearer_token_env_var: Option<String>,
        /// Headers sent with every request (`http_headers`).
        http_headers: BTreeMap<String, String>,
        /// Headers whose values are read from these variables (`env_http_headers`).
        env_http_headers: BTreeMap<String, String>,
    },
}

/// When a call of an MCP tool asks the person first (Codex's `approval_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum McpApproval {
    /// As the approval policy says: under `untrusted`, a tool that does not
    /// declare itself read-only (`readOnlyHint`) asks; under `never`, none does.
    #[default]
    Auto,
    /// Every call asks, whatever the policy (`prompt`).
    Prompt,
    /// No call asks (`approve`).
    Approve,
}

impl McpApproval {
    const NAMES: &[(&str, McpApproval)] = &[
        ("auto", McpApproval::Auto),
        ("prompt", McpApproval::Prompt),
        ("approve", McpApproval::Approve),
    ];

    /// Its name in the config.
    pub fn as_str(self) -> &'static str {
        McpApproval::NAMES
            .iter()
            .find(|(_, mode)| *mode == self)
            .map_or("auto", |(name, _)| name)
    }
}

/// Checks `[mcp_servers]`.
pub(super) fn check_servers(
    node: &RawNode,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, McpServerConfig>, ConfigError> {
    let mut servers = BTreeMap::new();
    for (name, server) in table(node, key)? {
        let prefix = format!("{key}.{name}");
        if !valid_name(name) {
            let message = format!(
                "{name:?} is not a server name: use letters, digits, '-' and '_' (the model sees its tools as mcp__{name}__<tool>)"
            );
            return Err(bad(server, &prefix, message));
        }
        servers.insert(name.clone(), check_server(name, server, &prefix, warnings)?);
    }
    Ok(servers)
}

/// Whether `name` can be a server's name: it becomes part of tool names,
/// which model APIs limit to `[a-zA-Z0-9_-]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_server(
    name: &str,
    node: &RawNode,
    prefix: &str,
    warnings: &mut Vec<String>,
) -> Result<McpServerConfig, ConfigError> {
    let fields = table(node, prefix)?;
    let mut config = McpServerConfig::stdio(name, "", Vec::new());
    let (mut command, mut args, mut env, mut cwd) = (None, None, None, None);
    let (mut url, mut bearer, mut headers, mut env_headers) = (None, None, None, None);
    for (field, value) in fields {
        let dotted = format!("{prefix}.{field}");
        match field.as_str() {
            "command" => command = Some(string(value, &dotted)?),
            "args" => args = Some(strings(value, &dotted)?),
            "env" => env = Some(string_table(value, &dotted, env_var)?),
            "cwd" => cwd = Some(PathBuf::from(string(value, &dotted)?)),
            "url" => url = Some(http_url(value, &dotted)?),
            "bearer_token_env_var" => bearer = Some(string(value, &dotted)?),
            "http_headers" => headers = Some(string_table(value, &dotted, header)?),
            "env_http_headers" => env_headers = Some(string_table(value, &dotted, env_header)?),
            "enabled" => config.enabled = boolean(value, &dotted)?,
            "startup_timeout_sec" => config.startup_timeout = seconds(value, &dotted)?,
            "startup_timeout_ms" => {
                config.startup_timeout = Duration::from_millis(positive_ms(value, &dotted)?);
            }
            "tool_timeout_sec" => config.tool_timeout = seconds(value, &dotted)?,
            "enabled_tools" => config.enabled_tools = Some(strings(value, &dotted)?),
            "disabled_tools" => config.disabled_tools = strings(value, &dotted)?,
            "default_tools_approval_mode" => config.approval = approval(value, &dotted)?,
            "tools" => config.tool_approvals = tool_approvals(value, &dotted, warnings)?,
            "sandbox_mode" => config.sandbox_mode = Some(sandbox::check_mode(value, &dotted)?),
            _ => warnings.push(ignored(value, &dotted, field, CODEX_SERVER_KEYS)),
        }
    }
    config.transport = match (command, url) {
        (Some(_), Some(_)) => {
            let message =
                "a server has either a command (stdio) or a url (streamable HTTP), not both";
            return Err(bad(node, prefix, message));
        }
        (None, None) => {
            let message = "missing: a server needs a command (stdio) or a url (streamable HTTP)";
            return Err(bad(node, prefix, message));
        }
        (Some(command), None) => {
            for (unused, set) in [
                ("bearer_token_env_var", bearer.is_some()),
                ("http_headers", headers.is_some()),
                ("env_http_headers", env_headers.is_some()),
            ] {
                if set {
                    warnings.push(format!(
                        "{}: key '{prefix}.{unused}' is for a url server; this one has a command (ignored)",
                        node.origin.location()
                    ));
                }
            }
            McpTransport::Stdio {
                command,
                args: args.unwrap_or_default(),
                env: env.unwrap_or_default(),
                cwd,
            }
        }
        (None, Some(url)) => {
            for (unused, set) in [
                ("args", args.is_some()),
                ("env", env.is_some()),
                ("cwd", cwd.is_some()),
                ("sandbox_mode", config.sandbox_mode.is_some()),
            ] {
                if set {
                    warnings.push(format!(
                        "{}: key '{prefix}.{unused}' is for a command server; this one has a url (ignored)",
                        node.origin.location()
                    ));
                }
            }
            McpTransport::Http {
                url,
                bearer_token_env_var: bearer,
                http_headers: headers.unwrap_or_default(),
                env_http_headers: env_headers.unwrap_or_default(),
            }
        }
    };
    Ok(config)
}

/// Reads `[mcp_servers.<name>.tools]`: per tool, `approval_mode`.
fn tool_approvals(
    node: &RawNode,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, McpApproval>, ConfigError> {
    let mut approvals = BTreeMap::new();
    for (tool, settings) in table(node, key)? {
        let prefix = format!("{key}.{tool}");
        for (field, value) in table(settings, &prefix)? {
            let dotted = format!("{prefix}.{field}");
            match field.as_str() {
                "approval_mode" => {
                    approvals.insert(tool.clone(), approval(value, &dotted)?);
                }
                _ => warnings.push(ignored(value, &dotted, field, &[])),
            }
        }
    }
    Ok(approvals)
}

fn approval(node: &RawNode, key: &str) -> Result<McpApproval, ConfigError> {
    let found = leaf_str(node).and_then(|value| {
        McpApproval::NAMES
            .iter()
            .find(|(name, _)| *name == value)
            .map(|(_, mode)| *mode)
    });
    found.ok_or_else(|| {
        let found = describe(node);
        bad(
            node,
            key,
            format!("expected \"auto\", \"prompt\" or \"approve\", found {found}"),
        )
    })
}

/// Reads an array of strings.
fn strings(node: &RawNode, key: &str) -> Result<Vec<String>, ConfigError> {
    let RawValue::Leaf(toml::Value::Array(items)) = &node.value else {
        let found = describe(node);
        return Err(bad(
            node,
            key,
            format!("expected an array of strings, found {found}"),
        ));
    };
    items
        .iter()
        .map(|item| match item {
            toml::Value::String(s) => Ok(s.clone()),
            other => Err(bad(
                node,
                key,
                format!("expected an array of strings, found an element {other}"),
            )),
        })
        .collect()
}

/// Reads a timeout in seconds (an integer or a float), positive and at most a day.
fn seconds(node: &RawNode, key: &str) -> Result<Duration, ConfigError> {
    let secs = match &node.value {
        RawValue::Leaf(toml::Value::Integer(n)) => Some(*n as f64),
        RawValue::Leaf(toml::Value::Float(x)) => Some(*x),
        RawValue::Leaf(_) | RawValue::Table(_) => None,
    };
    match secs {
        Some(secs) if secs > 0.0 && secs <= MAX_TIMEOUT_SECS => Ok(Duration::from_secs_f64(secs)),
        Some(_) | None => {
            let found = describe(node);
            Err(bad(
                node,
                key,
                format!("expected a positive number of seconds (at most a day), found {found}"),
            ))
        }
    }
}

fn positive_ms(node: &RawNode, key: &str) -> Result<u64, ConfigError> {
    match &node.value {
        RawValue::Leaf(toml::Value::Integer(n))
            if *n > 0 && (*n as f64) <= MAX_TIMEOUT_SECS * 1000.0 =>
        {
            Ok(*n as u64)
        }
        _ => {
            let found = describe(node);
            Err(bad(
                node,
                key,
                format!("expected a positive number of milliseconds, found {found}"),
            ))
        }
    }
}

fn http_url(node: &RawNode, key: &str) -> Result<String, ConfigError> {
    let url = string(node, key)?;
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() => Ok(url),
        Some(_) | None => Err(bad(
            node,
            key,
            format!("expected a URL starting with http:// or https://, found {url:?}"),
        )),
    }
}

/// Checks an `env` entry: a variable name and any value without NUL.
fn env_var(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(format!(
            "expected the name of an environment variable, found {name:?}"
        ));
    }
    if value.contains('\0') {
        Err(format!("the value of {name} contains a NUL byte"))
    } else {
        Ok(())
    }
}
