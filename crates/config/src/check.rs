//! The checked layer: walks the raw tree, turns each value tiller knows into
//! its typed setting, warns about keys it ignores, and picks the provider.

use std::collections::BTreeMap;
use std::time::Duration;

use super::raw::{Origin, RawNode, RawTable, RawValue};
use super::{ApprovalPolicy, ConfigError, ProviderConfig, WireApi};

/// The default `model`.
const DEFAULT_MODEL: &str = "gpt-5-codex";
/// The default `model_provider`: the built-in one.
const DEFAULT_PROVIDER: &str = "openai";
/// The built-in provider's base URL when `OPENAI_BASE_URL` is not set.
const OPENAI_DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The variable that overrides the built-in provider's base URL.
const OPENAI_BASE_URL_VAR: &str = "OPENAI_BASE_URL";
/// The most retries a provider may ask for (Codex's cap too).
const MAX_RETRIES: u32 = 100;

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
    "mcp_servers",
    "model_auto_compact_token_limit",
    "model_context_window",
    "model_max_output_tokens",
    "model_reasoning_effort",
    "model_reasoning_summary",
    "model_reasoning_summary_format",
    "model_supports_reasoning_summaries",
    "model_verbosity",
    "notice",
    "notify",
    "oss_provider",
    "otel",
    "preferred_auth_method",
    "profile",
    "profiles",
    "project_doc_fallback_filenames",
    "projects",
    "review_model",
    "sandbox_mode",
    "sandbox_workspace_write",
    "shell_environment_policy",
    "show_raw_agent_reasoning",
    "tool_output_token_limit",
    "tools",
    "tui",
    "windows_wsl_setup_acknowledged",
];

/// Keys of a Codex `[model_providers.<id>]` table that tiller does not use yet.
const CODEX_PROVIDER_KEYS: &[&str] = &[
    "env_http_headers",
    "env_key_instructions",
    "experimental_bearer_token",
    "http_headers",
    "query_params",
    "requires_openai_auth",
];

/// The settings the checker decides; [`super::Config`] adds the paths.
pub(super) struct Checked {
    pub(super) model: String,
    pub(super) approval_policy: ApprovalPolicy,
    pub(super) provider: ProviderConfig,
    pub(super) instructions: Option<String>,
    pub(super) project_doc_max_bytes: Option<usize>,
    pub(super) checkpoints: Option<bool>,
    pub(super) auto_approve_workspace_edits: Option<bool>,
    pub(super) freeform_apply_patch: Option<bool>,
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
    let mut instructions = None;
    let mut project_doc_max_bytes = None;
    let mut checkpoints = None;
    let mut auto_approve_workspace_edits = None;
    let mut freeform_apply_patch = None;
    let mut providers = BTreeMap::from([(DEFAULT_PROVIDER.to_owned(), builtin_openai(env))]);
    for (key, node) in root {
        match key.as_str() {
            "model" => model = Some(string(node, key)?),
            "model_provider" => model_provider = Some((string(node, key)?, node.origin.clone())),
            "approval_policy" => approval_policy = Some(approval(node, key, &mut warnings)?),
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
            _ => warnings.push(ignored(node, key, key, CODEX_TOP_LEVEL_KEYS)),
        }
    }

    let provider = match provider_override {
        Some(provider) => provider,
        None => select(providers, model_provider)?,
    };
    Ok(Checked {
        model: model.unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
        approval_policy: approval_policy.unwrap_or_default(),
        provider,
        instructions,
        project_doc_max_bytes,
        checkpoints,
        auto_approve_workspace_edits,
        freeform_apply_patch,
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

fn builtin_openai(env: &dyn Fn(&str) -> Option<String>) -> Candidate {
    let mut candidate = Candidate {
        config: ProviderConfig::with_defaults(
            DEFAULT_PROVIDER,
            "OpenAI",
            OPENAI_DEFAULT_BASE_URL,
            Some("OPENAI_API_KEY"),
        ),
        bad_base_url: None,
    };
    let url = env(OPENAI_BASE_URL_VAR).unwrap_or_default();
    let url = url.trim();
    if !url.is_empty() {
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
    candidate
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
                _ => warnings.push(ignored(value, &dotted, field, CODEX_PROVIDER_KEYS)),
            }
        }
        if is_new && candidate.config.base_url.is_empty() {
            let message = "missing: every provider except the built-in 'openai' needs a base_url";
            return Err(bad(provider_node, &format!("{prefix}.base_url"), message));
        }

        providers.insert(id.clone(), candidate);
    }
    Ok(())
}

/// Whether `url` is OpenAI's own API, which always needs a key.
fn is_openai(url: &str) -> bool {
    url.trim_end_matches('/') == OPENAI_DEFAULT_BASE_URL
        || url.starts_with("https://api.openai.com/")
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
    let known = providers.keys().cloned().collect::<Vec<_>>().join(", ");
    let Some(candidate) = providers.remove(&id) else {
        return Err(ConfigError::UnknownProvider {
            location: origin.map_or_else(|| "default".to_owned(), |origin| origin.location()),
            provider: id,
            known,
        });
    };

    candidate.into_config()
}

/// Reads `approval_policy`, accepting Codex's policies tiller lacks as `untrusted`.
fn approval(
    node: &RawNode,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<ApprovalPolicy, ConfigError> {
    match leaf_str(node) {
        Some(codex @ ("on-request" | "on-failure")) => {
            warnings.push(format!(
                "{}: {key} \"{codex}\" is read as \"untrusted\" (tiller has no \"{codex}\" policy)",
                node.origin.location()
            ));
            Ok(ApprovalPolicy::Untrusted)
        }
        Some(value) => value.parse().map_err(|_| {
            let found = describe(node);
            bad(
                node,
                key,
                format!("expected \"never\" or \"untrusted\", found {found}"),
            )
        }),
        None => {
            let found = describe(node);
            Err(bad(
                node,
                key,
                format!("expected \"never\" or \"untrusted\", found {found}"),
            ))
        }
    }
}

/// Reads `wire_api`.
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

fn table<'n>(node: &'n RawNode, key: &str) -> Result<&'n RawTable, ConfigError> {
    match &node.value {
        RawValue::Table(table) => Ok(table),
        RawValue::Leaf(_) => Err(bad(
            node,
            key,
            format!("expected a table, found {}", describe(node)),
        )),
    }
}

fn string(node: &RawNode, key: &str) -> Result<String, ConfigError> {
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

fn boolean(node: &RawNode, key: &str) -> Result<bool, ConfigError> {
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

fn leaf_str(node: &RawNode) -> Option<&str> {
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
fn describe(node: &RawNode) -> String {
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

fn bad(node: &RawNode, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::bad_value(&node.origin, key, message)
}

/// The warning for a key tiller ignores; `name` is the key's last part,
/// looked up in `codex_keys`, `dotted` the whole key.
fn ignored(node: &RawNode, dotted: &str, name: &str, codex_keys: &[&str]) -> String {
    let location = node.origin.location();
    if codex_keys.contains(&name) {
        format!("{location}: key '{dotted}' is not used by tiller (ignored)")
    } else {
        format!("{location}: unknown key '{dotted}' (ignored)")
    }
}
