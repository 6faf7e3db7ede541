//! The model settings at the top level: `model_reasoning_effort`,
//! `model_reasoning_summary`, `model_context_window`,
//! `model_auto_compact_token_limit`, and `oss_provider`.

use super::*;

#[test]
fn model_settings_are_unset_by_default() {
    let config = load(&tempfile::tempdir().unwrap(), ConfigOverrides::default())
        .unwrap()
        .config;
    assert_eq!(config.reasoning_effort, None);
    assert_eq!(config.reasoning_summary, None);
    assert_eq!(config.context_window, None);
    assert_eq!(config.auto_compact_token_limit, None);
    assert_eq!(config.oss_provider, None);
}

#[test]
fn model_settings_are_read_from_the_file() {
    let home = home_with(
        r#"model_reasoning_effort = "high"
model_reasoning_summary = "detailed"
model_context_window = 131072
model_auto_compact_token_limit = 100000
oss_provider = "lmstudio"
"#,
    );
    let loaded = load(&home, ConfigOverrides::default()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let config = loaded.config;
    assert_eq!(config.reasoning_effort.as_deref(), Some("high"));
    assert_eq!(config.reasoning_summary.as_deref(), Some("detailed"));
    assert_eq!(config.context_window, Some(131_072));
    assert_eq!(config.auto_compact_token_limit, Some(100_000));
    assert_eq!(config.oss_provider.as_deref(), Some("lmstudio"));
}

#[test]
fn every_accepted_effort_and_summary_is_read() {
    for effort in ["none", "minimal", "low", "medium", "high", "xhigh"] {
        let home = home_with(&format!("model_reasoning_effort = \"{effort}\"\n"));
        let config = load(&home, ConfigOverrides::default()).unwrap().config;
        assert_eq!(config.reasoning_effort.as_deref(), Some(effort));
    }
    for summary in ["auto", "concise", "detailed", "none"] {
        let home = home_with(&format!("model_reasoning_summary = \"{summary}\"\n"));
        let config = load(&home, ConfigOverrides::default()).unwrap().config;
        assert_eq!(config.reasoning_summary.as_deref(), Some(summary));
    }
}

#[test]
fn model_settings_can_be_set_with_cli_overrides() {
    let home = home_with("model_reasoning_effort = \"low\"\n");
    let overrides = with_cli(&[
        ("model_reasoning_effort", "minimal"),
        ("model_reasoning_summary", "\"concise\""),
        ("model_context_window", "8192"),
        ("model_auto_compact_token_limit", "6000"),
        ("oss_provider", "vllm"),
    ]);
    let loaded = load(&home, overrides).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let config = loaded.config;
    assert_eq!(config.reasoning_effort.as_deref(), Some("minimal"));
    assert_eq!(config.reasoning_summary.as_deref(), Some("concise"));
    assert_eq!(config.context_window, Some(8192));
    assert_eq!(config.auto_compact_token_limit, Some(6000));
    assert_eq!(config.oss_provider.as_deref(), Some("vllm"));
}

#[test]
fn oss_provider_may_name_a_provider_of_the_file() {
    let home = home_with(&format!("oss_provider = \"local\"\n{LOCAL_PROVIDER}"));
    let config = load(&home, ConfigOverrides::default()).unwrap().config;
    assert_eq!(config.oss_provider.as_deref(), Some("local"));
}

#[test]
fn bad_model_settings_name_file_line_key_and_the_accepted_values() {
    let cases = [
        (
            "model_reasoning_effort = \"max\"",
            "model_reasoning_effort: expected one of \"none\", \"minimal\", \"low\", \"medium\", \"high\", \"xhigh\", found \"max\"",
        ),
        (
            "model_reasoning_effort = 3",
            "model_reasoning_effort: expected one of \"none\", \"minimal\", \"low\", \"medium\", \"high\", \"xhigh\", found 3",
        ),
        (
            "model_reasoning_summary = \"short\"",
            "model_reasoning_summary: expected one of \"auto\", \"concise\", \"detailed\", \"none\", found \"short\"",
        ),
        (
            "model_context_window = 0",
            "model_context_window: expected a positive integer, found 0",
        ),
        (
            "model_context_window = \"128k\"",
            "model_context_window: expected a positive integer, found \"128k\"",
        ),
        (
            "model_auto_compact_token_limit = -5",
            "model_auto_compact_token_limit: expected a positive integer, found -5",
        ),
        (
            "oss_provider = 1",
            "oss_provider: expected a string, found 1",
        ),
        (
            "oss_provider = \"llama\"",
            "oss_provider: unknown model provider 'llama' (known providers: lmstudio, ollama, openai, openrouter, vllm)",
        ),
    ];
    // Two comment lines first, so line 1 is never right by accident.
    assert_file_errors(
        cases
            .into_iter()
            .map(|(text, expected)| (format!("# tiller\n#\n{text}\n"), 3, expected)),
    );
}

#[test]
fn a_bad_model_setting_in_a_cli_override_names_the_override() {
    let home = tempfile::tempdir().unwrap();
    let error = load(&home, with_cli(&[("model_reasoning_effort", "max")])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "-c model_reasoning_effort=max: expected one of \"none\", \"minimal\", \"low\", \"medium\", \"high\", \"xhigh\", found \"max\""
    );
    let error = load(&home, with_cli(&[("model_context_window", "0")])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "-c model_context_window=0: expected a positive integer, found 0"
    );
    let error = load(&home, with_cli(&[("oss_provider", "nope")])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "-c oss_provider=nope: unknown model provider 'nope' (known providers: lmstudio, ollama, openai, openrouter, vllm)"
    );
}
