//! Configuration: `$TILLER_HOME/config.toml`, `-c key=value` overrides and
//! typed command-line options, merged into one checked [`Config`].
//!
//! The keys are those of a Codex `config.toml`, so a user's
//! `[model_providers.*]` tables can be copied over as they are. Codex keys
//! tiller does not use, and unknown keys, are warnings; a bad value is an
//! error naming the file, line and dotted key (or the override).
//!
//! Loading happens in two passes, like ripgrep's `LowArgs` and `HiArgs`: the
//! file and the overrides are first read into one raw tree of TOML values that
//! remembers where each value came from (`raw`), then that tree is checked
//! into typed settings (`check`). Keeping the origin on every value is what
//! lets an error in a `-c` override name the override instead of a line.
//!
//! Besides `openai`, the local servers `ollama`, `lmstudio` and `vllm` and the
//! `openrouter` gateway are built in (see `builtin`); a table of the same id
//! adjusts only the fields it sets.
//!
//! Precedence, lowest first: built-in defaults, `OPENAI_BASE_URL` (built-in
//! provider's base URL only), the file, `-c` overrides, typed options, and
//! finally [`ConfigOverrides::provider_override`], which replaces the provider.

mod builtin;
mod check;
mod error;
mod mcp;
mod raw;
mod sandbox;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use builtin::OSS_PROVIDERS;
pub use error::ConfigError;
pub use mcp::{
    DEFAULT_MCP_STARTUP_TIMEOUT, DEFAULT_MCP_TOOL_TIMEOUT, McpApproval, McpServerConfig,
    McpTransport, valid_name as valid_mcp_server_name,
};
pub use sandbox::{SandboxMode, SandboxPolicy, absolute_roots};

/// The config file's name inside the tiller home.
const CONFIG_FILE_NAME: &str = "config.toml";
/// The default for a provider's `request_max_retries`.
const DEFAULT_REQUEST_MAX_RETRIES: u32 = 4;
/// The default for a provider's `stream_max_retries`.
const DEFAULT_STREAM_MAX_RETRIES: u32 = 5;
/// The default for a provider's `stream_idle_timeout_ms`.
const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_millis(300_000);

/// The checked configuration of one tiller run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The model to ask for, e.g. `gpt-5-codex`.
    pub model: String,
    /// The provider serving the model.
    pub provider: ProviderConfig,
    /// When to ask before running a command.
    pub approval_policy: ApprovalPolicy,
    /// What the model's commands may touch (`sandbox_mode`,
    /// `[sandbox_workspace_write]`).
    pub sandbox: SandboxPolicy,
    /// The working directory of the session (absolute).
    pub cwd: PathBuf,
    /// The tiller home directory.
    pub tiller_home: PathBuf,
    /// The config file read (it may not exist).
    pub config_file: PathBuf,
    /// Replaces tiller's system instructions (set by a front end, e.g. the
    /// app-server's `baseInstructions`; not read from the file).
    pub base_instructions: Option<String>,
    /// Added after the system instructions (the app-server's `developerInstructions`).
    pub developer_instructions: Option<String>,
    /// The project's `AGENTS.md` files as one message, sent before the
    /// conversation (set by the session builder; not read from the file).
    pub user_instructions: Option<String>,
    /// The file's `instructions`: replaces tiller's built-in base prompt
    /// (a front end's `base_instructions` wins over it).
    pub instructions: Option<String>,
    /// The most of the project's `AGENTS.md` files sent, in bytes
    /// (`project_doc_max_bytes`; [`DEFAULT_PROJECT_DOC_MAX_BYTES`]).
    pub project_doc_max_bytes: usize,
    /// Whether each turn snapshots the workspace first, so it can be undone
    /// (`checkpoints`, on unless set to `false`).
    pub checkpoints: bool,
    /// Under `untrusted`, edits (patches) inside the workspace go ahead
    /// without asking (`auto_approve_workspace_edits`, off unless set); an
    /// edit outside it always asks.
    pub auto_approve_workspace_edits: bool,
    /// Whether `apply_patch` is offered as a freeform (custom) tool, whose
    /// input is the patch itself, instead of a function tool with JSON
    /// arguments (`experimental_use_freeform_apply_patch`, as Codex names it).
    /// `None`: freeform for GPT-5 models on OpenAI's own API, which takes
    /// custom tools; a function everywhere else.
    pub freeform_apply_patch: Option<bool>,
    /// How hard the model reasons (`model_reasoning_effort`: `minimal`,
    /// `low`, `medium`, `high`, …); `None` sends nothing (the provider's default).
    pub reasoning_effort: Option<String>,
    /// How the model summarizes its reasoning (`model_reasoning_summary`:
    /// `auto`, `concise`, `detailed` or `none`); `None` sends nothing.
    pub reasoning_summary: Option<String>,
    /// The model's context window in tokens (`model_context_window`); `None`:
    /// taken from the provider's model list when it says, else unknown.
    pub context_window: Option<u64>,
    /// Compact the conversation before a request whose input would pass this
    /// many tokens (`model_auto_compact_token_limit`); `None`: 90 % of the
    /// context window, when that is known.
    pub auto_compact_token_limit: Option<u64>,
    /// The provider `--oss` prefers when it answers (`oss_provider`, the id
    /// of a known provider); `None`: the first of [`OSS_PROVIDERS`] that answers.
    pub oss_provider: Option<String>,
    /// The MCP servers whose tools are offered, by name (`[mcp_servers.<name>]`).
    pub mcp_servers: BTreeMap<String, McpServerConfig>,
}

/// How much of the `AGENTS.md` files is sent when the config says nothing (Codex's default).
pub const DEFAULT_PROJECT_DOC_MAX_BYTES: usize = 32 * 1024;

/// A model provider: where to send requests and how hard to retry.
///
/// It holds the *name* of the API key's variable, never the key; get the key
/// with [`ProviderConfig::api_key`] when building the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    /// The id in `[model_providers.<id>]`, e.g. `openai`.
    pub id: String,
    /// A display name, e.g. `OpenAI`.
    pub name: String,
    /// The API base URL, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The environment variable holding the API key; `None` sends no key.
    pub env_key: Option<String>,
    /// The server may need no key: when `env_key` is unset, no key is sent
    /// instead of failing. True for the built-in `openai` provider pointed
    /// away from OpenAI by `OPENAI_BASE_URL` (a local server or a gateway,
    /// which may or may not want one). A provider of the config file sends a
    /// key exactly when it names an `env_key`.
    pub key_optional: bool,
    /// The API the provider speaks.
    pub wire_api: WireApi,
    /// How many times to retry a request that failed before streaming.
    pub request_max_retries: u32,
    /// How many times to retry a response stream that broke off.
    pub stream_max_retries: u32,
    /// How long a response stream may be silent before it counts as broken.
    pub stream_idle_timeout: Duration,
    /// Headers sent with every request, as given (`http_headers`).
    pub http_headers: BTreeMap<String, String>,
    /// Headers sent with every request, each value read from the named
    /// environment variable when the client is built; an unset variable
    /// sends no header (`env_http_headers`).
    pub env_http_headers: BTreeMap<String, String>,
    /// Query parameters added to every request URL (`query_params`, e.g.
    /// Azure's `api-version`).
    pub query_params: BTreeMap<String, String>,
}

impl ProviderConfig {
    /// A provider for a server on `base_url` that needs no API key, with the
    /// default retry settings; for mock servers and tests.
    pub fn for_local_server(base_url: String) -> ProviderConfig {
        ProviderConfig {
            base_url,
            ..ProviderConfig::with_defaults("local", "Local server", "", None)
        }
    }

    /// The API key from the environment: `Ok(None)` when the provider names
    /// no `env_key`, an error naming the variable when it is unset or empty.
    ///
    /// The key is registered as a secret (redacted from everything tiller
    /// records or prints) and its variable is concealed in the environment
    /// block other processes can read (see [`crate::secrets`]). So are the
    /// variables of `env_http_headers`, which carry keys too (Azure's
    /// `api-key`); the model client registers their values when it reads them.
    pub fn api_key(&self) -> Result<Option<String>, ConfigError> {
        let key = self.api_key_from(&|var| std::env::var(var).ok())?;
        if let (Some(key), Some(var)) = (&key, &self.env_key) {
            tiller_secrets::register(key);
            tiller_secrets::conceal_env_var(var);
        }
        for var in self.env_http_headers.values() {
            tiller_secrets::conceal_env_var(var);
        }
        Ok(key)
    }

    /// [`ProviderConfig::api_key`] with the environment given as a lookup function.
    pub fn api_key_from(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(var) = &self.env_key else {
            return Ok(None);
        };

        match env(var) {
            Some(key) if !key.trim().is_empty() => Ok(Some(key.trim().to_owned())),
            Some(_) | None if self.key_optional => Ok(None),
            Some(_) | None => Err(ConfigError::MissingApiKey {
                var: var.clone(),
                provider: self.id.clone(),
            }),
        }
    }

    /// A provider with the default wire API and retry settings.
    fn with_defaults(
        id: &str,
        name: &str,
        base_url: &str,
        env_key: Option<&str>,
    ) -> ProviderConfig {
        ProviderConfig {
            id: id.to_owned(),
            name: name.to_owned(),
            base_url: base_url.to_owned(),
            env_key: env_key.map(str::to_owned),
            key_optional: false,
            wire_api: WireApi::Responses,
            request_max_retries: DEFAULT_REQUEST_MAX_RETRIES,
            stream_max_retries: DEFAULT_STREAM_MAX_RETRIES,
            stream_idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
            http_headers: BTreeMap::new(),
            env_http_headers: BTreeMap::new(),
            query_params: BTreeMap::new(),
        }
    }
}

/// The API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WireApi {
    /// The OpenAI Responses API (`POST {base_url}/responses`).
    #[default]
    Responses,
    /// The Chat Completions API (`POST {base_url}/chat/completions`), which
    /// local servers and most gateways speak.
    Chat,
}

impl WireApi {
    /// The name in config (`wire_api = "…"`).
    pub fn as_str(self) -> &'static str {
        match self {
            WireApi::Responses => "responses",
            WireApi::Chat => "chat",
        }
    }
}

/// When the engine asks the front end before running a command.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalPolicy {
    /// Never ask: every command runs (in the sandbox), and what the sandbox
    /// denies is reported to the model.
    #[default]
    Never,
    /// Run every command in the sandbox without asking; when one fails
    /// there, ask whether to run it again without the sandbox.
    OnFailure,
    /// Run every command in the sandbox without asking; the model may ask
    /// to run one outside it (the person decides), and a command the
    /// sandbox denied is offered to run again outside it.
    OnRequest,
    /// Ask before any command not known to be read-only; a command the
    /// sandbox denied is offered to run again outside it.
    Untrusted,
}

impl ApprovalPolicy {
    /// What a bad policy name is told it should be.
    pub const EXPECTED: &str =
        "expected \"never\", \"on-failure\", \"on-request\" or \"untrusted\"";

    /// The policy's name in config and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalPolicy::Never => "never",
            ApprovalPolicy::OnFailure => "on-failure",
            ApprovalPolicy::OnRequest => "on-request",
            ApprovalPolicy::Untrusted => "untrusted",
        }
    }

    /// Whether a command the sandbox denied may be offered to a person to
    /// run again outside it.
    pub fn asks_after_denial(self) -> bool {
        self != ApprovalPolicy::Never
    }
}

impl fmt::Display for ApprovalPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApprovalPolicy {
    type Err = ConfigError;

    /// Parses a policy's name, as the config file and the command line give it.
    fn from_str(s: &str) -> Result<ApprovalPolicy, ConfigError> {
        match s {
            "never" => Ok(ApprovalPolicy::Never),
            "on-failure" => Ok(ApprovalPolicy::OnFailure),
            "on-request" => Ok(ApprovalPolicy::OnRequest),
            "untrusted" => Ok(ApprovalPolicy::Untrusted),
            _ => Err(ConfigError::BadOption {
                key: "approval_policy".to_owned(),
                message: format!(
                    "{}, found {}",
                    ApprovalPolicy::EXPECTED,
                    toml::Value::String(s.to_owned())
                ),
            }),
        }
    }
}

/// What the command line overrides, applied after the config file.
#[derive(Debug, Clone, Default)]
pub struct ConfigOverrides {
    /// `model`, from a model option.
    pub model: Option<String>,
    /// `model_provider`, from a provider option.
    pub provider: Option<String>,
    /// `approval_policy`, from `--approval`.
    pub approval_policy: Option<ApprovalPolicy>,
    /// `sandbox_mode`, from `--sandbox`.
    pub sandbox_mode: Option<SandboxMode>,
    /// More writable roots (`--add-dir`), added to the config's; relative
    /// paths are taken from the working directory.
    pub writable_roots: Vec<PathBuf>,
    /// The working directory; relative paths are taken from the current one.
    /// Defaults to the current directory.
    pub cwd: Option<PathBuf>,
    /// `-c key=value` pairs, in order (see [`parse_cli_override`]).
    pub cli_overrides: Vec<(String, String)>,
    /// A provider injected by the front end (e.g. a local mock server); when
    /// set it is the provider used and `model_provider` is not looked up.
    pub provider_override: Option<ProviderConfig>,
}

/// A loaded config and the warnings to show the user.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The checked config.
    pub config: Config,
    /// Things the user should know, each naming where it comes from, e.g.
    /// `/home/u/.tiller/config.toml:3: unknown key 'foo' (ignored)`; print
    /// them to stderr with a `warning: ` prefix.
    pub warnings: Vec<String>,
    /// Every provider `model_provider` could name, by id, as configured:
    /// the built-in ones and the config's tables (what `--oss` probes). The
    /// built-in `openai` is left out when `OPENAI_BASE_URL` is bad.
    pub providers: BTreeMap<String, ProviderConfig>,
}

impl Config {
    /// Whether `apply_patch` is offered as a freeform tool (see
    /// [`Config::freeform_apply_patch`]).
    pub fn uses_freeform_apply_patch(&self) -> bool {
        // Chat Completions has no custom tools; the Chat client would offer
        // it as a function anyway.
        self.freeform_apply_patch.unwrap_or_else(|| {
            self.provider.wire_api == WireApi::Responses
                && self.provider.base_url.trim_end_matches('/') == "https://api.openai.com/v1"
                && self.model.starts_with("gpt-5")
        })
    }

    /// Loads `tiller_home/config.toml` (a missing file means defaults),
    /// applies `overrides`, and checks the result.
    pub fn load(tiller_home: &Path, overrides: ConfigOverrides) -> Result<Loaded, ConfigError> {
        Config::load_with_env(tiller_home, overrides, &|var| std::env::var(var).ok())
    }

    /// [`Config::load`] with the environment given as a lookup function, so
    /// tests need not change the process environment.
    pub fn load_with_env(
        tiller_home: &Path,
        overrides: ConfigOverrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Loaded, ConfigError> {
        let config_file = tiller_home.join(CONFIG_FILE_NAME);
        let mut settings = raw::read_file(&config_file)?;
        for (key, value) in &overrides.cli_overrides {
            raw::apply_override(&mut settings, key, value)?;
        }
        if let Some(model) = overrides.model {
            raw::apply_option(&mut settings, "model", model);
        }
        if let Some(provider) = overrides.provider {
            raw::apply_option(&mut settings, "model_provider", provider);
        }
        if let Some(policy) = overrides.approval_policy {
            raw::apply_option(&mut settings, "approval_policy", policy.to_string());
        }
        if let Some(mode) = overrides.sandbox_mode {
            raw::apply_option(&mut settings, "sandbox_mode", mode.to_string());
        }

        let checked = check::check(&settings, env, overrides.provider_override)?;
        let cwd = resolve_cwd(overrides.cwd)?;
        let mut sandbox = checked.sandbox;
        sandbox
            .writable_roots
            .extend(overrides.writable_roots.iter().map(|root| cwd.join(root)));
        let config = Config {
            model: checked.model,
            provider: checked.provider,
            approval_policy: checked.approval_policy,
            sandbox,
            cwd,
            tiller_home: tiller_home.to_owned(),
            config_file,
            base_instructions: None,
            developer_instructions: None,
            user_instructions: None,
            instructions: checked.instructions,
            project_doc_max_bytes: checked
                .project_doc_max_bytes
                .unwrap_or(DEFAULT_PROJECT_DOC_MAX_BYTES),
            checkpoints: checked.checkpoints.unwrap_or(true),
            auto_approve_workspace_edits: checked.auto_approve_workspace_edits.unwrap_or(false),
            freeform_apply_patch: checked.freeform_apply_patch,
            reasoning_effort: checked.reasoning_effort,
            reasoning_summary: checked.reasoning_summary,
            context_window: checked.context_window,
            auto_compact_token_limit: checked.auto_compact_token_limit,
            oss_provider: checked.oss_provider,
            mcp_servers: checked.mcp_servers,
        };
        Ok(Loaded {
            config,
            warnings: checked.warnings,
            providers: checked.providers,
        })
    }
}

/// Splits a `-c key=value` argument at its first `=`.
pub fn parse_cli_override(s: &str) -> Result<(String, String), ConfigError> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        Some(_) | None => Err(ConfigError::BadOverride {
            text: s.to_owned(),
            message: "expected key=value, e.g. model=gpt-5-codex".to_owned(),
        }),
    }
}

/// The tiller home: `$TILLER_HOME`, else `$HOME/.tiller`.
pub fn default_tiller_home() -> Result<PathBuf, ConfigError> {
    tiller_home_from(&|var| std::env::var_os(var).and_then(|v| v.into_string().ok()))
}

fn tiller_home_from(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, ConfigError> {
    let set = |var| env(var).filter(|value| !value.is_empty());
    if let Some(home) = set("TILLER_HOME") {
        return Ok(PathBuf::from(home));
    }

    set("HOME")
        .map(|home| Path::new(&home).join(".tiller"))
        .ok_or(ConfigError::NoHome)
}

/// The session's working directory: `cwd` made absolute, or the current one.
fn resolve_cwd(cwd: Option<PathBuf>) -> Result<PathBuf, ConfigError> {
    let cwd = cwd.unwrap_or_else(|| PathBuf::from("."));
    // `absolute` resolves against the current directory without following
    // symlinks, so the session sees the path the user gave.
    let absolute = std::path::absolute(&cwd).map_err(|error| ConfigError::BadCwd {
        path: cwd.clone(),
        message: error.to_string(),
    })?;
    if !absolute.is_dir() {
        return Err(ConfigError::BadCwd {
            path: absolute,
            message: "not a directory".to_owned(),
        });
    }

    Ok(absolute)
}

#[cfg(test)]
// The workspace denies unwrap/expect; tests are meant to be exempt.
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A tiller home holding `config` as its config file.
    fn home_with(config: &str) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(CONFIG_FILE_NAME), config).unwrap();
        home
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load(home: &tempfile::TempDir, overrides: ConfigOverrides) -> Result<Loaded, ConfigError> {
        Config::load_with_env(home.path(), overrides, &no_env)
    }

    fn with_cli(pairs: &[(&str, &str)]) -> ConfigOverrides {
        ConfigOverrides {
            cli_overrides: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..ConfigOverrides::default()
        }
    }

    fn file_of(home: &tempfile::TempDir) -> String {
        home.path().join(CONFIG_FILE_NAME).display().to_string()
    }

    /// Each config file `text` fails to load with `file:line: expected`.
    fn assert_file_errors<'a>(cases: impl IntoIterator<Item = (String, usize, &'a str)>) {
        for (text, line, expected) in cases {
            let home = home_with(&text);
            let error = load(&home, ConfigOverrides::default()).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("{}:{line}: {expected}", file_of(&home)),
                "for {text:?}"
            );
        }
    }

    const LOCAL_PROVIDER: &str = r#"model_provider = "local"

[model_providers.local]
name = "Local vLLM"
base_url = "http://localhost:8000/v1"
"#;

    mod mcp;
    mod providers;
    mod reasoning;

    #[test]
    fn defaults_apply_when_there_is_no_config_file() {
        let home = tempfile::tempdir().unwrap();
        let loaded = load(&home, ConfigOverrides::default()).unwrap();
        let config = loaded.config;
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(config.model, "gpt-5-codex");
        assert_eq!(config.approval_policy, ApprovalPolicy::Never);
        assert_eq!(
            config.provider,
            ProviderConfig {
                id: "openai".to_owned(),
                name: "OpenAI".to_owned(),
                base_url: "https://api.openai.com/v1".to_owned(),
                env_key: Some("OPENAI_API_KEY".to_owned()),
                key_optional: false,
                wire_api: WireApi::Responses,
                request_max_retries: 4,
                stream_max_retries: 5,
                stream_idle_timeout: Duration::from_millis(300_000),
                http_headers: BTreeMap::new(),
                env_http_headers: BTreeMap::new(),
                query_params: BTreeMap::new(),
            }
        );
        assert_eq!(config.cwd, std::env::current_dir().unwrap());
        assert_eq!(config.tiller_home, home.path());
        assert_eq!(config.config_file, home.path().join("config.toml"));
    }

    #[test]
    fn codex_provider_table_is_read_and_its_extra_codex_keys_only_warn() {
        let home = home_with(
            r#"model = "qwen3-coder"
model_provider = "local"
approval_policy = "untrusted"
sandbox_mode = "workspace-write"

[model_providers.local]
name = "Local vLLM"
base_url = "http://localhost:8000/v1"
env_key = "LOCAL_API_KEY"
wire_api = "responses"
query_params = { api-version = "2025-04-01-preview" }
http_headers = { "X-Example" = "value" }
env_http_headers = { "OpenAI-Organization" = "OPENAI_ORGANIZATION" }
requires_openai_auth = false
request_max_retries = 2
stream_max_retries = 3
stream_idle_timeout_ms = 60000

[mcp_servers.docs]
command = "docs-server"
"#,
        );
        let loaded = load(&home, ConfigOverrides::default()).unwrap();
        let config = loaded.config;
        assert_eq!(config.model, "qwen3-coder");
        assert_eq!(config.approval_policy, ApprovalPolicy::Untrusted);
        assert_eq!(
            config.provider,
            ProviderConfig {
                id: "local".to_owned(),
                name: "Local vLLM".to_owned(),
                base_url: "http://localhost:8000/v1".to_owned(),
                env_key: Some("LOCAL_API_KEY".to_owned()),
                key_optional: false,
                wire_api: WireApi::Responses,
                request_max_retries: 2,
                stream_max_retries: 3,
                stream_idle_timeout: Duration::from_secs(60),
                http_headers: BTreeMap::from([("X-Example".to_owned(), "value".to_owned())]),
                env_http_headers: BTreeMap::from([(
                    "OpenAI-Organization".to_owned(),
                    "OPENAI_ORGANIZATION".to_owned()
                )]),
                query_params: BTreeMap::from([(
                    "api-version".to_owned(),
                    "2025-04-01-preview".to_owned()
                )]),
            }
        );
        assert_eq!(
            config.mcp_servers["docs"].transport,
            McpTransport::Stdio {
                command: "docs-server".to_owned(),
                args: Vec::new(),
                env: BTreeMap::new(),
                cwd: None,
            }
        );
        let file = file_of(&home);
        assert_eq!(
            loaded.warnings,
            [format!(
                "{file}:14: key 'model_providers.local.requires_openai_auth' is not used by tiller (ignored)"
            ),]
        );
        assert_eq!(config.sandbox, SandboxPolicy::default());
    }

    #[test]
    fn bad_value_error_names_file_line_and_dotted_key() {
        let home = home_with(
            r#"model_provider = "local"

[model_providers.local]
name = "Local vLLM"
base_url = "http://localhost:8000/v1"

request_max_retries = "x"
"#,
        );
        let error = load(&home, ConfigOverrides::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}:7: model_providers.local.request_max_retries: expected a non-negative integer, found \"x\"",
                file_of(&home)
            )
        );
    }

    #[test]
    fn bad_values_are_errors_at_their_line() {
        // Each text follows two comment lines, so line 1 is never right by accident.
        let cases = [
            ("model = 5", 3, "model: expected a string, found 5"),
            ("model = \"\"", 3, "model: expected a non-empty string"),
            (
                "approval_policy = \"sometimes\"",
                3,
                "approval_policy: expected \"never\", \"on-failure\", \"on-request\" or \"untrusted\", found \"sometimes\"",
            ),
            (
                "model_providers = 3",
                3,
                "model_providers: expected a table, found 3",
            ),
            (
                "[model_providers.openai]\nstream_max_retries = -1",
                4,
                "model_providers.openai.stream_max_retries: expected a non-negative integer, found -1",
            ),
            (
                "[model_providers.openai]\nrequest_max_retries = 1000",
                4,
                "model_providers.openai.request_max_retries: expected at most 100, found 1000",
            ),
            (
                "[model_providers.openai]\nstream_idle_timeout_ms = 0",
                4,
                "model_providers.openai.stream_idle_timeout_ms: expected a positive integer (milliseconds), found 0",
            ),
            (
                "[model_providers.openai]\nwire_api = \"grpc\"",
                4,
                "model_providers.openai.wire_api: expected \"responses\" or \"chat\", found \"grpc\"",
            ),
            (
                "[model_providers.openai]\nbase_url = \"localhost:8000/v1\"",
                4,
                "model_providers.openai.base_url: expected a URL starting with http:// or https://, found \"localhost:8000/v1\"",
            ),
            (
                "[model_providers.local]\nname = \"no url\"",
                3,
                "model_providers.local.base_url: missing: a provider that is not built in needs a base_url",
            ),
            (
                "[model_providers.openai]\nrequest_max_retries = 99999999999999999999",
                4,
                "model_providers.openai.request_max_retries: integer 99999999999999999999 is out of range",
            ),
        ];
        assert_file_errors(
            cases
                .into_iter()
                .map(|(text, line, expected)| (format!("# tiller\n#\n{text}\n"), line, expected)),
        );
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let home = home_with("model = \"gpt-5\"\n\n[model_providers.local\nname = \"x\"\n");
        let error = load(&home, ConfigOverrides::default()).unwrap_err();
        let ConfigError::Syntax { file, line, .. } = &error else {
            panic!("not a syntax error: {error}");
        };
        assert_eq!(file, &home.path().join(CONFIG_FILE_NAME));
        assert_eq!(*line, 3);
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}:3: invalid TOML: ", file_of(&home))),
            "{error}"
        );
    }

    #[test]
    fn unknown_key_warns_with_file_and_key() {
        let home = home_with("model = \"gpt-5\"\nfoo = 1\n[model_providers.openai]\nbar = true\n");
        let loaded = load(&home, ConfigOverrides::default()).unwrap();
        let file = file_of(&home);
        assert_eq!(
            loaded.warnings,
            [
                format!("{file}:2: unknown key 'foo' (ignored)"),
                format!("{file}:4: unknown key 'model_providers.openai.bar' (ignored)"),
            ]
        );
        assert_eq!(loaded.config.model, "gpt-5");
    }

    #[test]
    fn unknown_model_provider_is_an_error_listing_known_ones() {
        let home = home_with(
            &LOCAL_PROVIDER.replace("model_provider = \"local\"", "model_provider = \"olama\""),
        );
        let error = load(&home, ConfigOverrides::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}:1: model_provider: unknown model provider 'olama' (known providers: lmstudio, local, ollama, openai, openrouter, vllm)",
                file_of(&home)
            )
        );

        let home = tempfile::tempdir().unwrap();
        let overrides = ConfigOverrides {
            provider: Some("nope".to_owned()),
            ..ConfigOverrides::default()
        };
        let error = load(&home, overrides).unwrap_err();
        assert_eq!(
            error.to_string(),
            "command line: model_provider: unknown model provider 'nope' (known providers: lmstudio, ollama, openai, openrouter, vllm)"
        );
    }

    #[test]
    fn chat_wire_api_is_read_for_a_provider() {
        let home = home_with(
            "[model_providers.mine]\nname = \"Mine\"\nbase_url = \"http://localhost:11434/v1\"\nwire_api = \"chat\"\n",
        );
        let loaded = load(&home, with_cli(&[("model_provider", "mine")])).unwrap();
        assert_eq!(loaded.config.provider.wire_api, WireApi::Chat);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn user_openai_table_overrides_only_the_fields_it_sets() {
        let home =
            home_with("[model_providers.openai]\nrequest_max_retries = 9\nname = \"Proxy\"\n");
        let provider = load(&home, ConfigOverrides::default())
            .unwrap()
            .config
            .provider;
        assert_eq!(provider.name, "Proxy");
        assert_eq!(provider.request_max_retries, 9);
        assert_eq!(provider.base_url, "https://api.openai.com/v1");
        assert_eq!(provider.env_key.as_deref(), Some("OPENAI_API_KEY"));
        assert_eq!(provider.stream_max_retries, 5);
    }

    #[test]
    fn cli_overrides_set_strings_numbers_and_dotted_provider_keys() {
        let home = home_with(LOCAL_PROVIDER);
        let overrides = with_cli(&[
            ("model", "o3"),
            ("approval_policy", "untrusted"),
            ("model_providers.local.request_max_retries", "7"),
            ("model_providers.local.base_url", "http://x:9/v1"),
            ("model_providers.local.env_key", "\"LOCAL_KEY\""),
        ]);
        let loaded = load(&home, overrides).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let config = loaded.config;
        assert_eq!(config.model, "o3");
        assert_eq!(config.approval_policy, ApprovalPolicy::Untrusted);
        assert_eq!(config.provider.id, "local");
        assert_eq!(config.provider.request_max_retries, 7);
        assert_eq!(config.provider.base_url, "http://x:9/v1");
        assert_eq!(config.provider.env_key.as_deref(), Some("LOCAL_KEY"));
    }

    #[test]
    fn cli_override_can_define_a_whole_provider_as_an_inline_table() {
        let home = tempfile::tempdir().unwrap();
        let overrides = with_cli(&[
            (
                "model_providers.mock",
                "{ name = \"Mock\", base_url = \"http://127.0.0.1:1\" }",
            ),
            ("model_provider", "mock"),
        ]);
        let provider = load(&home, overrides).unwrap().config.provider;
        assert_eq!(provider.id, "mock");
        assert_eq!(provider.name, "Mock");
        assert_eq!(provider.base_url, "http://127.0.0.1:1");
        assert_eq!(provider.env_key, None);
    }

    #[test]
    fn bad_cli_override_names_the_override() {
        let home = tempfile::tempdir().unwrap();
        let error = load(
            &home,
            with_cli(&[("model_providers.openai.request_max_retries", "x")]),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "-c model_providers.openai.request_max_retries=x: expected a non-negative integer, found \"x\""
        );

        let error = load(
            &home,
            with_cli(&[("model_providers.y", "{ base_url = 5 }")]),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "-c model_providers.y={ base_url = 5 }: model_providers.y.base_url: expected a string, found 5"
        );

        let error = load(&home, with_cli(&[("model..x", "1")])).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("-c model..x=1: expected key=value"),
            "{error}"
        );

        let loaded = load(&home, with_cli(&[("foo", "1")])).unwrap();
        assert_eq!(loaded.warnings, ["-c foo=1: unknown key 'foo' (ignored)"]);
    }

    #[test]
    fn parse_cli_override_splits_at_the_first_equals_sign() {
        assert_eq!(
            parse_cli_override("model_providers.local.base_url=http://x/?a=b").unwrap(),
            (
                "model_providers.local.base_url".to_owned(),
                "http://x/?a=b".to_owned()
            )
        );
        let error = parse_cli_override("model").unwrap_err();
        assert_eq!(
            error.to_string(),
            "-c model: expected key=value, e.g. model=gpt-5-codex"
        );
        assert!(parse_cli_override("=x").is_err());
    }

    #[test]
    fn typed_options_beat_cli_overrides_and_the_file() {
        let home = home_with(&format!(
            "model = \"from-file\"\napproval_policy = \"untrusted\"\n{LOCAL_PROVIDER}"
        ));
        let overrides = ConfigOverrides {
            model: Some("from-flag".to_owned()),
            provider: Some("openai".to_owned()),
            approval_policy: Some(ApprovalPolicy::Never),
            ..with_cli(&[("model", "from-c")])
        };
        let config = load(&home, overrides).unwrap().config;
        assert_eq!(config.model, "from-flag");
        assert_eq!(config.provider.id, "openai");
        assert_eq!(config.approval_policy, ApprovalPolicy::Never);
    }

    #[test]
    fn provider_override_is_used_whatever_model_provider_says() {
        let home = home_with("model_provider = \"does-not-exist\"\n");
        let overrides = ConfigOverrides {
            provider_override: Some(ProviderConfig::for_local_server(
                "http://127.0.0.1:4000/v1".to_owned(),
            )),
            ..ConfigOverrides::default()
        };
        let provider = load(&home, overrides).unwrap().config.provider;
        assert_eq!(provider.base_url, "http://127.0.0.1:4000/v1");
        assert_eq!(provider.env_key, None);
        assert_eq!(provider.api_key_from(&no_env).unwrap(), None);
    }

    #[test]
    fn missing_api_key_names_the_variable_to_set() {
        let provider = load(&tempfile::tempdir().unwrap(), ConfigOverrides::default())
            .unwrap()
            .config
            .provider;
        let error = provider.api_key_from(&no_env).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the provider 'openai' needs an API key: set the environment variable OPENAI_API_KEY"
        );
        let empty = |_: &str| Some(String::new());
        assert!(matches!(
            provider.api_key_from(&empty),
            Err(ConfigError::MissingApiKey { var, provider }) if var == "OPENAI_API_KEY" && provider == "openai"
        ));
        let set = |var: &str| (var == "OPENAI_API_KEY").then(|| "sk-test".to_owned());
        assert_eq!(
            provider.api_key_from(&set).unwrap().as_deref(),
            Some("sk-test")
        );
    }

    #[test]
    fn openai_base_url_env_var_overrides_the_builtin_base_url() {
        let home = tempfile::tempdir().unwrap();
        let env = |var: &str| (var == "OPENAI_BASE_URL").then(|| "http://proxy:8080/v1".to_owned());
        let config = Config::load_with_env(home.path(), ConfigOverrides::default(), &env)
            .unwrap()
            .config;
        assert_eq!(config.provider.base_url, "http://proxy:8080/v1");

        let empty = |_: &str| Some(String::new());
        let config = Config::load_with_env(home.path(), ConfigOverrides::default(), &empty)
            .unwrap()
            .config;
        assert_eq!(config.provider.base_url, "https://api.openai.com/v1");

        // The file's own base_url for openai is more specific than the variable.
        let home = home_with("[model_providers.openai]\nbase_url = \"https://file.example/v1\"\n");
        let config = Config::load_with_env(home.path(), ConfigOverrides::default(), &env)
            .unwrap()
            .config;
        assert_eq!(config.provider.base_url, "https://file.example/v1");
    }

    #[test]
    fn openai_base_url_for_a_local_server_needs_no_key_but_sends_one_if_set() {
        let home = tempfile::tempdir().unwrap();
        let env =
            |var: &str| (var == "OPENAI_BASE_URL").then(|| "http://localhost:8000/v1".to_owned());
        let provider = Config::load_with_env(home.path(), ConfigOverrides::default(), &env)
            .unwrap()
            .config
            .provider;
        assert!(provider.key_optional);
        assert_eq!(provider.api_key_from(&no_env).unwrap(), None);
        let with_key = |var: &str| (var == "OPENAI_API_KEY").then(|| "sk-local".to_owned());
        assert_eq!(
            provider.api_key_from(&with_key).unwrap().as_deref(),
            Some("sk-local")
        );
        // Pointed at OpenAI itself, the key is required as before.
        let default = Config::load_with_env(home.path(), ConfigOverrides::default(), &no_env)
            .unwrap()
            .config
            .provider;
        assert!(!default.key_optional);
        assert!(default.api_key_from(&no_env).is_err());
    }

    #[test]
    fn bad_openai_base_url_env_var_is_an_error_only_when_openai_is_used() {
        let env = |var: &str| (var == "OPENAI_BASE_URL").then(|| "proxy:8080".to_owned());
        let home = tempfile::tempdir().unwrap();
        let error =
            Config::load_with_env(home.path(), ConfigOverrides::default(), &env).unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable OPENAI_BASE_URL: expected a URL starting with http:// or https://, found \"proxy:8080\""
        );

        let home = home_with(LOCAL_PROVIDER);
        let config = Config::load_with_env(home.path(), ConfigOverrides::default(), &env)
            .unwrap()
            .config;
        assert_eq!(config.provider.id, "local");
    }

    #[test]
    fn every_codex_approval_policy_is_its_own_policy() {
        for (name, policy) in [
            ("never", ApprovalPolicy::Never),
            ("on-failure", ApprovalPolicy::OnFailure),
            ("on-request", ApprovalPolicy::OnRequest),
            ("untrusted", ApprovalPolicy::Untrusted),
        ] {
            let home = home_with(&format!("approval_policy = \"{name}\"\n"));
            let loaded = load(&home, ConfigOverrides::default()).unwrap();
            assert_eq!(loaded.config.approval_policy, policy);
            assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        }
    }

    #[test]
    fn the_sandbox_defaults_to_workspace_write_without_network() {
        let home = home_with("");
        let config = load(&home, ConfigOverrides::default()).unwrap().config;
        assert_eq!(config.sandbox.mode, SandboxMode::WorkspaceWrite);
        assert!(!config.sandbox.allows_network());
        assert!(config.sandbox.writable_roots.is_empty());
    }

    #[test]
    fn sandbox_keys_are_read_and_the_command_line_wins() {
        let home = home_with(
            r#"sandbox_mode = "read-only"

[sandbox_workspace_write]
writable_roots = ["/srv/cache", "~/shared"]
network_access = true
exclude_tmpdir_env_var = true
exclude_slash_tmp = true
"#,
        );
        let config = load(&home, ConfigOverrides::default()).unwrap().config;
        assert_eq!(config.sandbox.mode, SandboxMode::ReadOnly);
        assert_eq!(
            config.sandbox.writable_roots[0],
            PathBuf::from("/srv/cache")
        );
        assert!(config.sandbox.writable_roots[1].ends_with("shared"));
        assert!(config.sandbox.writable_roots[1].is_absolute());
        assert!(config.sandbox.network_access);
        assert!(config.sandbox.exclude_tmpdir_env_var && config.sandbox.exclude_slash_tmp);
        // Read-only has no network, whatever the table says.
        assert!(!config.sandbox.allows_network());

        let overridden = load(
            &home,
            ConfigOverrides {
                sandbox_mode: Some(SandboxMode::WorkspaceWrite),
                writable_roots: vec![PathBuf::from("extra")],
                cwd: Some(home.path().to_path_buf()),
                ..ConfigOverrides::default()
            },
        )
        .unwrap()
        .config;
        assert_eq!(overridden.sandbox.mode, SandboxMode::WorkspaceWrite);
        assert!(overridden.sandbox.allows_network());
        assert_eq!(
            overridden.sandbox.writable_roots.last(),
            Some(&home.path().join("extra"))
        );
    }

    #[test]
    fn bad_sandbox_values_name_their_line_and_key() {
        for (text, expected) in [
            (
                "sandbox_mode = \"open\"\n",
                ":1: sandbox_mode: expected \"read-only\", \"workspace-write\" or \"danger-full-access\", found \"open\"",
            ),
            (
                "[sandbox_workspace_write]\nwritable_roots = [\"relative/path\"]\n",
                ":2: sandbox_workspace_write.writable_roots: expected an absolute path, found \"relative/path\"",
            ),
            (
                "[sandbox_workspace_write]\nnetwork_access = \"yes\"\n",
                ":2: sandbox_workspace_write.network_access: expected true or false, found \"yes\"",
            ),
        ] {
            let home = home_with(text);
            let error = load(&home, ConfigOverrides::default()).unwrap_err();
            assert_eq!(error.to_string(), format!("{}{expected}", file_of(&home)));
        }
        let home = home_with("[sandbox_workspace_write]\nallow_everything = true\n");
        let loaded = load(&home, ConfigOverrides::default()).unwrap();
        assert_eq!(
            loaded.warnings,
            [format!(
                "{}:2: unknown key 'sandbox_workspace_write.allow_everything' (ignored)",
                file_of(&home)
            )]
        );
    }

    #[test]
    fn approval_policy_parses_and_displays_its_names() {
        for policy in [
            ApprovalPolicy::Never,
            ApprovalPolicy::OnFailure,
            ApprovalPolicy::OnRequest,
            ApprovalPolicy::Untrusted,
        ] {
            assert_eq!(
                policy.to_string().parse::<ApprovalPolicy>().unwrap(),
                policy
            );
        }
        assert_eq!(
            "untrusted".parse::<ApprovalPolicy>().unwrap(),
            ApprovalPolicy::Untrusted
        );
        let error = "sometimes".parse::<ApprovalPolicy>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "command line: approval_policy: expected \"never\", \"on-failure\", \"on-request\" or \"untrusted\", found \"sometimes\""
        );
    }

    #[test]
    fn tiller_home_comes_from_tiller_home_then_home() {
        let both = |var: &str| match var {
            "TILLER_HOME" => Some("/opt/tiller".to_owned()),
            "HOME" => Some("/home/u".to_owned()),
            _ => None,
        };
        assert_eq!(
            tiller_home_from(&both).unwrap(),
            PathBuf::from("/opt/tiller")
        );
        let home_only = |var: &str| (var == "HOME").then(|| "/home/u".to_owned());
        assert_eq!(
            tiller_home_from(&home_only).unwrap(),
            PathBuf::from("/home/u/.tiller")
        );
        assert!(matches!(
            tiller_home_from(&no_env),
            Err(ConfigError::NoHome)
        ));
    }

    #[test]
    fn cwd_must_be_a_directory_and_is_made_absolute() {
        let home = tempfile::tempdir().unwrap();
        let overrides = ConfigOverrides {
            cwd: Some(home.path().to_owned()),
            ..ConfigOverrides::default()
        };
        assert_eq!(load(&home, overrides).unwrap().config.cwd, home.path());

        let overrides = ConfigOverrides {
            cwd: Some(PathBuf::from(".")),
            ..ConfigOverrides::default()
        };
        let cwd = load(&home, overrides).unwrap().config.cwd;
        assert_eq!(cwd, std::env::current_dir().unwrap());

        let missing = home.path().join("missing");
        let overrides = ConfigOverrides {
            cwd: Some(missing.clone()),
            ..ConfigOverrides::default()
        };
        let error = load(&home, overrides).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("working directory {}: not a directory", missing.display())
        );
    }

    #[test]
    fn unreadable_config_file_is_an_io_error_naming_it() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(CONFIG_FILE_NAME)).unwrap();
        let error = load(&home, ConfigOverrides::default()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot read {}: ", file_of(&home))),
            "{error}"
        );
    }

    #[test]
    fn a_fifo_huge_or_non_utf8_config_file_is_an_error_not_a_hang() {
        let home = tempfile::tempdir().unwrap();
        let file = home.path().join(CONFIG_FILE_NAME);
        nix::unistd::mkfifo(&file, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let error = load(&home, ConfigOverrides::default()).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
        std::fs::remove_file(&file).unwrap();

        std::fs::write(&file, vec![b'#'; 2 * 1024 * 1024]).unwrap();
        let error = load(&home, ConfigOverrides::default()).unwrap_err();
        assert!(error.to_string().contains("at most 1 MiB"), "{error}");

        std::fs::write(&file, b"model = \"\xff\"\n").unwrap();
        let error = load(&home, ConfigOverrides::default()).unwrap_err();
        assert!(error.to_string().contains("not UTF-8"), "{error}");
    }
}
