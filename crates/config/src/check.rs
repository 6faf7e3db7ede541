//! The checked layer: walks the raw tree, turns each value tiller knows into
//! its typed setting, warns about keys it ignores, and picks the provider.

use std::collections::BTreeMap;
use std::time::Duration;

use super::builtin::{self, OPENAI, OPENAI_BASE_URL};
use super::mcp::{McpServerConfig, check_servers};
use super::raw::{Origin, RawNode, RawTable, RawValue};
use super::sandbox::{self, SandboxPolicy};
use super::{ApprovalPolicy, ConfigError, ProviderConfig, WireApi};

/// The default `model`.
const DEFAULT_MODEL: &str = "gpt-5-codex";
/// The default `model_provider`: the built-in OpenAI one.
const DEFAULT_PROVIDER: &str = OPENAI;
/// The variable that overrides the built-in OpenAI provider's base URL.
const OPENAI_BASE_URL_VAR: &str = "OPENAI_BASE_URL";
/// The most retries a provider may ask for (Codex's cap too).
const MAX_RETRIES: u32 = 100;
/// The values of `model_reasoning_effort` (OpenAI's, as Codex accepts them).
const REASONING_EFFORTS: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh"];
/// The values of `model_reasoning_summary`.
const REASONING_SUMMARIES: &[&str] = &["auto", "concise", "detailed", "none"];

/// Top-level keys of a Codex `config.toml` that tiller reads past with a
/// warning saying so, rather than calling them unknown.
const CODEX_TOP_LEVEL_KEYS: &[&str] = &[
    "chatgpt_base_url",
    "cli_auth_credentials_store",
    "compact_prompt",
    "developer_instructions",
    "disable_paste_burst",
    "disable_response_storage",
    "experimental_compact_prompt_file",
    "experimental_instructions_file",
    "experimental_use_exec_command_tool",
    "experimental_use_rmcp_client",
    "experimental_use_unified_exec_tool",
    "features",
    "file_opener",
    "forced_chatgpt_workspace_id",
    "forced_login_method",
    "hide_agent_reasoning",
    "history",
    "include_apply_patch_tool",
    "include_plan_tool",
    "mcp_oauth_credentials_store",
    "model_max_output_tokens",
    "model_reasoning_summary_format",
    "model_supports_reasoning_summaries",
    "model_verbosity",
    "notice",
    "notify",
    "otel",
    "preferred_auth_method",
    "profile",
    "profiles",
    "project_doc_fallback_filenames",
    "projects",
    "review_model",
    "shell_environment_policy",
    "show_raw_agent_reasoning",
    "tool_output_token_limit",
    "tools",
    "tui",
    "windows_wsl_setup_acknowledged",
];

/// Keys of a Codex `[model_providers.<id>]` table that tiller does not use yet.
const CODEX_PROVIDER_KEYS: &[&str] = &[
    "env_key_instructions",
    "experimental_bearer_token",
    "requires_openai_auth",
];

/// The settings the checker decides; [`super::Config`] adds the paths.
pub(super) struct Checked {
    pub(super) model: String,
    pub(super) approval_policy: ApprovalPolicy,
    pub(super) sandbox: SandboxPolicy,
    pub(super) provider: ProviderConfig,
    /// Every provider that checked out, by id (the chosen one included).
    pub(super) providers: BTreeMap<String, ProviderConfig>,
    pub(super) instructions: Option<String>,
    pub(super) project_doc_max_bytes: Option<usize>,
    pub(super) checkpoints: Option<bool>,
    pub(super) auto_approve_workspace_edits: Option<bool>,
    pub(super) freeform_apply_patch: Option<bool>,
    pub(super) reasoning_effort: Option<String>,
    pub(super) reasoning_summary: Option<String>,
    pub(super) context_window: Option<u64>,
    pub(super) auto_compact_token_limit: Option<u64>,
    pub(super) oss_provider: Option<String>,
    pub(super) mcp_servers: BTreeMap<String, McpServerConfig>,
    pub(super) warnings: Vec<String>,
}

/// Checks the merged raw settings. `provider_override`, when given, is the
/// provider used; `model_provider` is then not looked up.
pub(super) fn check(
    root: &RawTable,
    env: &dyn Fn(&str) -> Option<String>,
    provider_override: Option<ProviderConfig>,
) -> Result<Checked, ConfigError> {
    let mut warnings = Vec::new();
    let mut model = None;
    let mut model_provider = None;
    let mut approval_policy = None;
    let mut sandbox_mode = None;
    let mut sandbox = SandboxPolicy::default();
    let mut instructions = None;
    let mut project_doc_max_bytes = None;
    let mut checkpoints = None;
    let mut auto_approve_workspace_edits = None;
    let mut freeform_apply_patch = None;
    let mut reasoning_effort = None;
    let mut reasoning_summary = None;
    let mut context_window = None;
    let mut auto_compact_token_limit = None;
    let mut oss_provider = None;
    let mut mcp_servers = BTreeMap::new();
    let mut providers = builtin_providers(env);
    for (key, node) in root {
        match key.as_str() {
            "model" => model = Some(string(node, key)?),
            "model_provider" => model_provider = Some((string(node, key)?, node.origin.clone())),
            "approval_policy" => approval_policy = Some(approval(node, key)?),
            "sandbox_mode" => sandbox_mode = Some(sandbox::check_mode(node, key)?),
            "sandbox_workspace_write" => {
                sandbox::check_workspace_write(node, key, &mut sandbox, &mut warnings)?;
            }
            "model_providers" => check_providers(node, key, &mut providers, &mut warnings)?,
            "instructions" => instructions = Some(string(node, key)?),
            "project_doc_max_bytes" => project_doc_max_bytes = Some(byte_count(node, key)?),
            "checkpoints" => checkpoints = Some(boolean(node, key)?),
            "experimental_use_freeform_apply_patch" => {
                freeform_apply_patch = Some(boolean(node, key)?);
            }
            "auto_approve_workspace_edits" => {
                auto_approve_workspace_edits = Some(boolean(node, key)?);
            }
            "model_reasoning_effort" => {
                reasoning_effort = Some(one_of(node, key, REASONING_EFFORTS)?);
            }
            "model_reasoning_summary" => {
                reasoning_summary = Some(one_of(node, key, REASONING_SUMMARIES)?);
            }
            "model_context_window" => context_window = Some(positive(node, key)?),
            "model_auto_compact_token_limit" => {
                auto_compact_token_limit = Some(positive(node, key)?);
            }
            "oss_provider" => oss_provider = Some((string(node, key)?, node)),
            "mcp_servers" => mcp_servers = check_servers(node, key, &mut warnings)?,
            _ => warnings.push(ignored(node, key, key, CODEX_TOP_LEVEL_KEYS)),
        }
    }

    // Checked once every table is in: the provider may come from one.
    let oss_provider = match oss_provider {
        Some((id, _)) if providers.contains_key(&id) => Some(id),
        Some((id, node)) => {
            let known = known_ids(&providers);
            let message = format!("unknown model provider '{id}' (known providers: {known})");
            return Err(bad(node, "oss_provider", message));
        }
        None => None,
    };
    let usable = providers
        .iter()
        .filter(|(_, candidate)| candidate.bad_base_url.is_none())
        .map(|(id, candidate)| (id.clone(), candidate.config.clone()))
        .collect();
    let provider = match provider_override {
        Some(provider) => provider,
        None => select(providers, model_provider)?,
    };
    Ok(Checked {
        model: model.unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
        approval_policy: approval_policy.unwrap_or_default(),
        sandbox: SandboxPolicy {
            mode: sandbox_mode.unwrap_or_default(),
            ..sandbox
        },
        provider,
        providers: usable,
        instructions,
        project_doc_max_bytes,
        checkpoints,
        auto_approve_workspace_edits,
        freeform_apply_patch,
        reasoning_effort,
        reasoning_summary,
        context_window,
        auto_compact_token_limit,
        oss_provider,
        mcp_servers,
        warnings,
    })
}

/// A provider whose table checked out, before one is chosen.
struct Candidate {
    config: ProviderConfig,
    /// A bad `OPENAI_BASE_URL` (built-in provider only); reported only if
    /// this provider is chosen, and moot once the file sets `base_url`.
    bad_base_url: Option<ConfigError>,
}

impl Candidate {
    fn into_config(self) -> Result<ProviderConfig, ConfigError> {
        match self.bad_base_url {
            Some(error) => Err(error),
            None => Ok(self.config),
        }
    }
}

/// The built-in providers, the OpenAI one pointed where `OPENAI_BASE_URL` says.
fn builtin_providers(env: &dyn Fn(&str) -> Option<String>) -> BTreeMap<String, Candidate> {
    builtin::providers()
        .map(|config| {
            let mut candidate = Candidate {
                config,
                bad_base_url: None,
            };
            if candidate.config.id == OPENAI {
                apply_openai_base_url(&mut candidate, env);
            }
            (candidate.config.id.clone(), candidate)
        })
        .collect()
}

/// Points the built-in OpenAI provider at `OPENAI_BASE_URL`, when set. A
/// server other than OpenAI's may need no key, so the key becomes optional.
fn apply_openai_base_url(candidate: &mut Candidate, env: &dyn Fn(&str) -> Option<String>) {
    let url = env(OPENAI_BASE_URL_VAR).unwrap_or_default();
    let url = url.trim();
    if url.is_empty() {
        return;
    }

    match check_base_url(url) {
        Ok(()) => {
            candidate.config.key_optional = !is_openai(url);
            candidate.config.base_url = url.to_owned();
        }
        Err(message) => {
            candidate.bad_base_url = Some(ConfigError::BadEnvVar {
                var: OPENAI_BASE_URL_VAR.to_owned(),
                message,
            });
        }
    }
}

/// Checks `[model_providers]`: each table either adjusts the built-in
/// provider of its id or defines a new one.
fn check_providers(
    node: &RawNode,
    key: &str,
    providers: &mut BTreeMap<String, Candidate>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for (id, provider_node) in table(node, key)? {
        let prefix = format!("{key}.{id}");
        let base = providers.remove(id);
        let is_new = base.is_none();
        let mut candidate = base.unwrap_or_else(|| Candidate {
            // No base URL yet: a new provider must set one.
            config: ProviderConfig::with_defaults(id, id, "", None),
            bad_base_url: None,
        });
        for (field, value) in table(provider_node, &prefix)? {
            let dotted = format!("{prefix}.{field}");
            let config = &mut candidate.config;
            match field.as_str() {
                "name" => config.name = string(value, &dotted)?,
                "base_url" => {
                    let url = string(value, &dotted)?;
                    check_base_url(&url).map_err(|message| bad(value, &dotted, message))?;
                    config.base_url = url;
                    candidate.bad_base_url = None;
                }
                "env_key" => config.env_key = Some(string(value, &dotted)?),
                "wire_api" => config.wire_api = wire_api(value, &dotted)?,
                "request_max_retries" => config.request_max_retries = retries(value, &dotted)?,
                "stream_max_retries" => config.stream_max_retries = retries(value, &dotted)?,
                "stream_idle_timeout_ms" => config.stream_idle_timeout = millis(value, &dotted)?,
                "http_headers" => config.http_headers = string_table(value, &dotted, header)?,
                "env_http_headers" => {
                    config.env_http_headers = string_table(value, &dotted, env_header)?;
                }
                "query_params" => {
                    config.query_params = string_table(value, &dotted, |_, _| Ok(()))?
                }
                _ => warnings.push(ignored(value, &dotted, field, CODEX_PROVIDER_KEYS)),
            }
        }
        if is_new && candidate.config.base_url.is_empty() {
            let message = "missing: a provider that is not built in needs a base_url";
            return Err(bad(provider_node, &format!("{prefix}.base_url"), message));
        }

        providers.insert(id.clone(), candidate);
    }
    Ok(())
}

/// Whether `url` is OpenAI's own API, which always needs a key.
fn is_openai(url: &str) -> bool {
    url.trim_end_matches('/') == OPENAI_BASE_URL || url.starts_with("https://api.openai.com/")
}

/// Picks the provider `model_provider` names (by default the built-in one).
fn select(
    mut providers: BTreeMap<String, Candidate>,
    choice: Option<(String, Origin)>,
) -> Result<ProviderConfig, ConfigError> {
    let (id, origin) = match choice {
        Some((id, origin)) => (id, Some(origin)),
        None => (DEFAULT_PROVIDER.to_owned(), None),
    };
    let known = known_ids(&providers);
    let Some(candidate) = providers.remove(&id) else {
        return Err(ConfigError::UnknownProvider {
            location: origin.map_or_else(|| "default".to_owned(), |origin| origin.location()),
            provider: id,
            known,
        });
    };

    candidate.into_config()
}

/// The ids of `providers`, comma-separated, for "known providers: …".
fn known_ids(providers: &BTreeMap<String, Candidate>) -> String {
    providers.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// Reads `approval_policy`: `never`, `on-failure`, `on-request` or `untrusted`.
fn approval(node: &RawNode, key: &str) -> Result<ApprovalPolicy, ConfigError> {
    leaf_str(node)
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| {
            let found = describe(node);
            bad(
                node,
                key,
                format!("{}, found {found}", ApprovalPolicy::EXPECTED),
            )
        })
}

fn wire_api(node: &RawNode, key: &str) -> Result<WireApi, ConfigError> {
    match leaf_str(node) {
        Some("responses") => Ok(WireApi::Responses),
        Some("chat") => Ok(WireApi::Chat),
        _ => {
            let found = describe(node);
            Err(bad(
                node,
                key,
                format!("expected \"responses\" or \"chat\", found {found}"),
            ))
        }
    }
}

/// Reads a string that must be one of `accepted`.
fn one_of(node: &RawNode, key: &str, accepted: &[&str]) -> Result<String, ConfigError> {
    match leaf_str(node) {
        Some(value) if accepted.contains(&value) => Ok(value.to_owned()),
        Some(_) | None => {
            let accepted = accepted
                .iter()
                .map(|value| format!("\"{value}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let found = describe(node);
            Err(bad(
                node,
                key,
                format!("expected one of {accepted}, found {found}"),
            ))
        }
    }
}

/// Reads a table whose values are strings (`http_headers`, `query_params`,
/// `env_http_headers`); `vet` checks each name and value, and what it says
/// is reported against that entry's own line and dotted key.
pub(super) fn string_table(
    node: &RawNode,
    key: &str,
    vet: fn(&str, &str) -> Result<(), String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let RawValue::Table(entries) = &node.value else {
        let found = describe(node);
        return Err(bad(
            node,
            key,
            format!("expected a table of strings, found {found}"),
        ));
    };

    let mut strings = BTreeMap::new();
    for (name, value) in entries {
        let dotted = format!("{key}.{name}");
        let Some(text) = leaf_str(value) else {
            let found = describe(value);
            return Err(bad(
                value,
                &dotted,
                format!("expected a string, found {found}"),
            ));
        };

        vet(name, text).map_err(|message| bad(value, &dotted, message))?;
        strings.insert(name.clone(), text.to_owned());
    }
    Ok(strings)
}

/// Checks an `http_headers` entry: a header name and a value HTTP can carry
/// (visible ASCII, spaces and tabs), so a bad one is reported here, with
/// its line, rather than when the first request is built.
pub(super) fn header(name: &str, value: &str) -> Result<(), String> {
    header_name(name)?;
    if value.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
        Ok(())
    } else {
        // Debug quoting keeps a line break in the value on the error's one line.
        Err(format!(
            "expected a header value of printable ASCII characters, found {value:?}"
        ))
    }
}

/// Checks an `env_http_headers` entry: a header name and the name of an
/// environment variable (whose value is read when the client is built).
pub(super) fn env_header(name: &str, var: &str) -> Result<(), String> {
    header_name(name)?;
    if var.is_empty() || var.contains(['=', '\0']) {
        Err(format!(
            "expected the name of an environment variable, found {var:?}"
        ))
    } else {
        Ok(())
    }
}

/// Checks that `name` is an HTTP header name (an RFC 9110 token).
fn header_name(name: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !name.is_empty() && name.chars().all(token) {
        Ok(())
    } else {
        Err(format!("{name:?} is not an HTTP header name"))
    }
}

pub(super) fn table<'n>(node: &'n RawNode, key: &str) -> Result<&'n RawTable, ConfigError> {
    match &node.value {
        RawValue::Table(table) => Ok(table),
        RawValue::Leaf(_) => Err(bad(
            node,
            key,
            format!("expected a table, found {}", describe(node)),
        )),
    }
}

pub(super) fn string(node: &RawNode, key: &str) -> Result<String, ConfigError> {
    match leaf_str(node) {
        Some("") => Err(bad(node, key, "expected a non-empty string")),
        Some(value) => Ok(value.to_owned()),
        None => Err(bad(
            node,
            key,
            format!("expected a string, found {}", describe(node)),
        )),
    }
}

pub(super) fn boolean(node: &RawNode, key: &str) -> Result<bool, ConfigError> {
    match &node.value {
        RawValue::Leaf(toml::Value::Boolean(b)) => Ok(*b),
        RawValue::Leaf(_) | RawValue::Table(_) => Err(bad(
            node,
            key,
            format!("expected true or false, found {}", describe(node)),
        )),
    }
}

fn byte_count(node: &RawNode, key: &str) -> Result<usize, ConfigError> {
    leaf_integer(node)
        .filter(|n| *n >= 0)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            bad(
                node,
                key,
                format!("expected a non-negative integer, found {}", describe(node)),
            )
        })
}

fn retries(node: &RawNode, key: &str) -> Result<u32, ConfigError> {
    let Some(n) = leaf_integer(node).filter(|n| *n >= 0) else {
        let found = describe(node);
        return Err(bad(
            node,
            key,
            format!("expected a non-negative integer, found {found}"),
        ));
    };

    match u32::try_from(n) {
        Ok(n) if n <= MAX_RETRIES => Ok(n),
        Ok(_) | Err(_) => Err(bad(
            node,
            key,
            format!("expected at most {MAX_RETRIES}, found {n}"),
        )),
    }
}

/// Reads a count of tokens, which must be positive.
fn positive(node: &RawNode, key: &str) -> Result<u64, ConfigError> {
    match leaf_integer(node).and_then(|n| u64::try_from(n).ok()) {
        Some(n) if n > 0 => Ok(n),
        Some(_) | None => {
            let found = describe(node);
            Err(bad(
                node,
                key,
                format!("expected a positive integer, found {found}"),
            ))
        }
    }
}

fn millis(node: &RawNode, key: &str) -> Result<Duration, ConfigError> {
    match leaf_integer(node).and_then(|n| u64::try_from(n).ok()) {
        Some(n) if n > 0 => Ok(Duration::from_millis(n)),
        Some(_) | None => {
            let found = describe(node);
            Err(bad(
                node,
                key,
                format!("expected a positive integer (milliseconds), found {found}"),
            ))
        }
    }
}

/// Checks that `url` can be a provider's base URL.
fn check_base_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() => Ok(()),
        Some(_) | None => Err(format!(
            "expected a URL starting with http:// or https://, found {}",
            toml::Value::String(url.to_owned())
        )),
    }
}

pub(super) fn leaf_str(node: &RawNode) -> Option<&str> {
    match &node.value {
        RawValue::Leaf(toml::Value::String(s)) => Some(s),
        RawValue::Leaf(_) | RawValue::Table(_) => None,
    }
}

fn leaf_integer(node: &RawNode) -> Option<i64> {
    match &node.value {
        RawValue::Leaf(toml::Value::Integer(n)) => Some(*n),
        RawValue::Leaf(_) | RawValue::Table(_) => None,
    }
}

/// The value as TOML would write it, shortened, for "found ..." in errors.
pub(super) fn describe(node: &RawNode) -> String {
    const MAX_CHARS: usize = 60;
    let text = match &node.value {
        RawValue::Table(_) => return "a table".to_owned(),
        RawValue::Leaf(value) => value.to_string(),
    };
    if text.chars().count() <= MAX_CHARS {
        text
    } else {
        let short: String = text.chars().take(MAX_CHARS).collect();
        format!("{short}...")
    }
}

pub(super) fn bad(node: &RawNode, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::bad_value(&node.origin, key, message)
}

/// The warning for a key tiller ignores; `name` is the key's last part,
/// looked up in `codex_keys`, `dotted` the whole key.
pub(super) fn ignored(node: &RawNode, dotted: &str, name: &str, codex_keys: &[&str]) -> String {
    let location = node.origin.location();
    if codex_keys.contains(&name) {
        format!("{location}: key '{dotted}' is not used by tiller (ignored)")
    } else {
        format!("{location}: unknown key '{dotted}' (ignored)")
    }
}
