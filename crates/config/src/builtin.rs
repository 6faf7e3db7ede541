//! The providers tiller knows without a `[model_providers]` table: OpenAI,
//! the local servers `--oss` looks for, and OpenRouter.
//!
//! They are data, not code paths: a built-in provider is a
//! [`ProviderConfig`] like any other, and a user table of the same id
//! adjusts only the fields it sets (so `[model_providers.ollama]` with just
//! `base_url` moves Ollama and keeps the rest). The local servers need no
//! key: they name no `env_key`, so none is sent.

use super::{ProviderConfig, WireApi};

/// The id of the built-in OpenAI provider, the default `model_provider`.
pub(super) const OPENAI: &str = "openai";
/// OpenAI's API, the built-in provider's base URL unless `OPENAI_BASE_URL` says otherwise.
pub(super) const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// The local model servers `--oss` looks for, in the order it prefers them
/// when `oss_provider` names none of them (or the one named does not answer).
pub const OSS_PROVIDERS: [&str; 3] = ["ollama", "lmstudio", "vllm"];

/// One built-in provider, as written in the table below.
struct Builtin {
    id: &'static str,
    name: &'static str,
    base_url: &'static str,
    wire_api: WireApi,
    env_key: Option<&'static str>,
}

/// Every built-in provider. The local servers' URLs are their own defaults
/// (`ollama serve`, LM Studio's server, `vllm serve`); each speaks Chat
/// Completions, the API all of them serve.
const BUILTINS: [Builtin; 5] = [
    Builtin {
        id: OPENAI,
        name: "OpenAI",
        base_url: OPENAI_BASE_URL,
        wire_api: WireApi::Responses,
        env_key: Some("OPENAI_API_KEY"),
    },
    Builtin {
        id: "ollama",
        name: "Ollama",
        base_url: "http://localhost:11434/v1",
        wire_api: WireApi::Chat,
        env_key: None,
    },
    Builtin {
        id: "lmstudio",
        name: "LM Studio",
        base_url: "http://localhost:1234/v1",
        wire_api: WireApi::Chat,
        env_key: None,
    },
    Builtin {
        id: "vllm",
        name: "vLLM",
        base_url: "http://localhost:8000/v1",
        wire_api: WireApi::Chat,
        env_key: None,
    },
    Builtin {
        id: "openrouter",
        name: "OpenRouter",
        base_url: "https://openrouter.ai/api/v1",
        wire_api: WireApi::Chat,
        env_key: Some("OPENROUTER_API_KEY"),
    },
];

/// The built-in providers with their default settings.
pub(super) fn providers() -> impl Iterator<Item = ProviderConfig> {
    BUILTINS.iter().map(|builtin| ProviderConfig {
        wire_api: builtin.wire_api,
        ..ProviderConfig::with_defaults(builtin.id, builtin.name, builtin.base_url, builtin.env_key)
    })
}
