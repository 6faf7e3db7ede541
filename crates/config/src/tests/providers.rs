//! Built-in providers and a provider's `http_headers`, `env_http_headers`
//! and `query_params`.

use super::*;

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn local_servers_and_openrouter_are_built_in() {
    let home = tempfile::tempdir().unwrap();
    let loaded = load(&home, ConfigOverrides::default()).unwrap();
    let ids: Vec<&str> = loaded.providers.keys().map(String::as_str).collect();
    assert_eq!(ids, ["lmstudio", "ollama", "openai", "openrouter", "vllm"]);
    let expected = [
        ("ollama", "Ollama", "http://localhost:11434/v1", None),
        ("lmstudio", "LM Studio", "http://localhost:1234/v1", None),
        ("vllm", "vLLM", "http://localhost:8000/v1", None),
        (
            "openrouter",
            "OpenRouter",
            "https://openrouter.ai/api/v1",
            Some("OPENROUTER_API_KEY"),
        ),
    ];
    for (id, name, base_url, env_key) in expected {
        let provider = &loaded.providers[id];
        assert_eq!(
            provider,
            &ProviderConfig {
                wire_api: WireApi::Chat,
                ..ProviderConfig::with_defaults(id, name, base_url, env_key)
            }
        );
    }
    assert_eq!(loaded.providers["openai"], loaded.config.provider);
    for id in OSS_PROVIDERS {
        assert!(loaded.providers.contains_key(id), "{id} is not built in");
    }
}

#[test]
fn model_provider_can_name_a_built_in_local_server_which_needs_no_key() {
    let home = home_with("model_provider = \"ollama\"\n");
    let loaded = load(&home, ConfigOverrides::default()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let provider = loaded.config.provider;
    assert_eq!(provider.id, "ollama");
    assert_eq!(provider.base_url, "http://localhost:11434/v1");
    assert_eq!(provider.wire_api, WireApi::Chat);
    assert_eq!(provider.api_key_from(&no_env).unwrap(), None);

    let overrides = ConfigOverrides {
        provider: Some("openrouter".to_owned()),
        ..ConfigOverrides::default()
    };
    let provider = load(&tempfile::tempdir().unwrap(), overrides)
        .unwrap()
        .config
        .provider;
    assert_eq!(
        provider.api_key_from(&no_env).unwrap_err().to_string(),
        "the provider 'openrouter' needs an API key: set the environment variable OPENROUTER_API_KEY"
    );
}

#[test]
fn a_table_for_a_built_in_local_server_adjusts_only_what_it_sets() {
    let home = home_with(
        "model_provider = \"lmstudio\"\n[model_providers.lmstudio]\nbase_url = \"http://gpu-box:1234/v1\"\n",
    );
    let loaded = load(
        &home,
        with_cli(&[("model_providers.vllm.wire_api", "responses")]),
    )
    .unwrap();
    assert_eq!(
        loaded.config.provider,
        ProviderConfig {
            wire_api: WireApi::Chat,
            ..ProviderConfig::with_defaults("lmstudio", "LM Studio", "http://gpu-box:1234/v1", None)
        }
    );
    let vllm = &loaded.providers["vllm"];
    assert_eq!(vllm.wire_api, WireApi::Responses);
    assert_eq!(vllm.base_url, "http://localhost:8000/v1");
    assert_eq!(vllm.name, "vLLM");
}

#[test]
fn headers_and_query_params_are_read_from_the_file() {
    let home = home_with(
        r#"model_provider = "azure"

[model_providers.azure]
base_url = "https://example.openai.azure.com/openai"
http_headers = { "X-Team" = "tiller", "User-Agent" = "tiller test" }
env_http_headers = { "api-key" = "AZURE_OPENAI_API_KEY" }

[model_providers.azure.query_params]
api-version = "2025-04-01-preview"
"#,
    );
    let loaded = load(&home, ConfigOverrides::default()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let provider = loaded.config.provider;
    assert_eq!(
        provider.http_headers,
        strings(&[("User-Agent", "tiller test"), ("X-Team", "tiller")])
    );
    assert_eq!(
        provider.env_http_headers,
        strings(&[("api-key", "AZURE_OPENAI_API_KEY")])
    );
    assert_eq!(
        provider.query_params,
        strings(&[("api-version", "2025-04-01-preview")])
    );
}

#[test]
fn headers_and_query_params_can_be_set_with_cli_overrides() {
    let home = home_with(LOCAL_PROVIDER);
    let overrides = with_cli(&[
        ("model_providers.local.http_headers", "{ \"X-A\" = \"b\" }"),
        (
            "model_providers.local.env_http_headers.api-key",
            "LOCAL_KEY",
        ),
        (
            "model_providers.local.query_params",
            "{ api-version = \"1\" }",
        ),
        ("model_providers.ollama.http_headers.X-Ollama", "yes"),
    ]);
    let loaded = load(&home, overrides).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let provider = loaded.config.provider;
    assert_eq!(provider.http_headers, strings(&[("X-A", "b")]));
    assert_eq!(
        provider.env_http_headers,
        strings(&[("api-key", "LOCAL_KEY")])
    );
    assert_eq!(provider.query_params, strings(&[("api-version", "1")]));
    assert_eq!(
        loaded.providers["ollama"].http_headers,
        strings(&[("X-Ollama", "yes")])
    );
}

#[test]
fn a_cli_override_of_a_header_table_replaces_the_files() {
    let home = home_with(&format!(
        "{LOCAL_PROVIDER}http_headers = {{ \"X-Old\" = \"1\" }}\n"
    ));
    let overrides = with_cli(&[(
        "model_providers.local.http_headers",
        "{ \"X-New\" = \"2\" }",
    )]);
    let provider = load(&home, overrides).unwrap().config.provider;
    assert_eq!(provider.http_headers, strings(&[("X-New", "2")]));
}

#[test]
fn bad_headers_and_query_params_name_file_line_and_dotted_key() {
    // Each text follows the provider's table (lines 1-5), so it starts on line 6.
    let cases = [
        (
            "http_headers = 5",
            6,
            "model_providers.local.http_headers: expected a table of strings, found 5",
        ),
        (
            "http_headers = { \"X-A\" = 1 }",
            6,
            "model_providers.local.http_headers.X-A: expected a string, found 1",
        ),
        (
            "http_headers = { \"X A\" = \"b\" }",
            6,
            "model_providers.local.http_headers.X A: \"X A\" is not an HTTP header name",
        ),
        (
            "[model_providers.local.http_headers]\n\"X-A\" = \"ok\"\n\"X-B\" = \"line\\nbreak\"",
            8,
            "model_providers.local.http_headers.X-B: expected a header value of printable ASCII characters, found \"line\\nbreak\"",
        ),
        (
            "env_http_headers = { \"api-key\" = \"\" }",
            6,
            "model_providers.local.env_http_headers.api-key: expected the name of an environment variable, found \"\"",
        ),
        (
            "env_http_headers = [\"api-key\"]",
            6,
            "model_providers.local.env_http_headers: expected a table of strings, found [\"api-key\"]",
        ),
        (
            "[model_providers.local.query_params]\napi-version = 2025",
            7,
            "model_providers.local.query_params.api-version: expected a string, found 2025",
        ),
    ];
    assert_file_errors(
        cases
            .into_iter()
            .map(|(text, line, expected)| (format!("{LOCAL_PROVIDER}{text}\n"), line, expected)),
    );
}

#[test]
fn a_bad_header_in_a_cli_override_names_the_override_and_the_key() {
    let home = home_with(LOCAL_PROVIDER);
    let error = load(
        &home,
        with_cli(&[("model_providers.local.http_headers", "{ \"X-A\" = 1 }")]),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "-c model_providers.local.http_headers={ \"X-A\" = 1 }: model_providers.local.http_headers.X-A: expected a string, found 1"
    );
}

#[test]
fn a_bad_openai_base_url_leaves_openai_out_of_the_providers_only() {
    let env = |var: &str| (var == "OPENAI_BASE_URL").then(|| "proxy:8080".to_owned());
    let home = home_with("model_provider = \"vllm\"\n");
    let loaded = Config::load_with_env(home.path(), ConfigOverrides::default(), &env).unwrap();
    assert_eq!(loaded.config.provider.id, "vllm");
    assert!(!loaded.providers.contains_key("openai"));
    assert!(loaded.providers.contains_key("ollama"));
}
