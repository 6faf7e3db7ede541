//! What `tiller exec` says about `$TILLER_HOME/config.toml`.

use serde_json::json;

use super::support::{Scratch, run};

#[tokio::test]
async fn bad_config_value_names_file_line_and_key() {
    let scratch = Scratch::new();
    let config = scratch.config(
        "[model_providers.local]\n\
         base_url = \"http://127.0.0.1:9/v1\"\n\
         request_max_retries = \"x\"\n",
    );
    let script = scratch.script(json!([
        {"type": "response", "items": [{"type": "text", "text": "should not run"}]}
    ]));
    let finished = run(&mut scratch.exec(&script, &["hi"])).await;
    assert!(
        finished.status.code().is_some_and(|code| code != 0),
        "expected a failure exit code, got {:?}\nstderr:\n{}",
        finished.status,
        finished.stderr
    );
    let location = format!("{}:3:", config.display());
    assert!(
        finished
            .stderr
            .lines()
            .any(|l| l.contains(&location)
                && l.contains("model_providers.local.request_max_retries")),
        "stderr does not name {location} and the dotted key:\n{}",
        finished.stderr
    );
    assert!(
        !finished.stdout.contains("should not run"),
        "the turn ran:\n{}",
        finished.stdout
    );
}

#[tokio::test]
async fn unknown_config_key_is_a_warning_not_an_error() {
    let scratch = Scratch::new();
    let config = scratch.config("model = \"gpt-5-codex\"\nfrobnicate_widgets = true\n");
    let script = scratch.script(json!([
        {"type": "response", "items": [{"type": "text", "text": "ran anyway"}]}
    ]));
    let finished = run(&mut scratch.exec(&script, &["hi"])).await;
    finished.assert_exit(0);
    assert!(
        finished.stdout.contains("ran anyway"),
        "{}",
        finished.stdout
    );
    let location = format!("{}:2", config.display());
    assert!(
        finished.stderr.lines().any(|l| l.starts_with("warning:")
            && l.contains(&location)
            && l.contains("frobnicate_widgets")),
        "no warning naming {location} and the key:\n{}",
        finished.stderr
    );
}

#[tokio::test]
async fn bad_reasoning_effort_names_file_line_key_and_the_accepted_values() {
    let scratch = Scratch::new();
    let config = scratch.config("model = \"gpt-5\"\nmodel_reasoning_effort = \"max\"\n");
    let script = scratch.script(json!([
        {"type": "response", "items": [{"type": "text", "text": "should not run"}]}
    ]));
    let finished = run(&mut scratch.exec(&script, &["hi"])).await;
    assert!(
        finished.status.code().is_some_and(|code| code != 0),
        "expected a failure exit code, got {:?}\nstderr:\n{}",
        finished.status,
        finished.stderr
    );
    let expected = format!(
        "{}:2: model_reasoning_effort: expected one of \"none\", \"minimal\", \"low\", \"medium\", \"high\", \"xhigh\", found \"max\"",
        config.display()
    );
    assert!(
        finished.stderr.contains(&expected),
        "stderr does not say {expected}:\n{}",
        finished.stderr
    );
    assert!(
        !finished.stdout.contains("should not run"),
        "the turn ran:\n{}",
        finished.stdout
    );
}

#[tokio::test]
async fn model_settings_and_provider_tables_are_read_without_warnings() {
    let scratch = Scratch::new();
    scratch.config(
        "model_reasoning_effort = \"low\"\n\
         model_reasoning_summary = \"concise\"\n\
         model_context_window = 200000\n\
         model_auto_compact_token_limit = 150000\n\
         oss_provider = \"ollama\"\n\
         [model_providers.ollama]\n\
         http_headers = { \"X-Team\" = \"tiller\" }\n\
         env_http_headers = { \"api-key\" = \"OLLAMA_PROXY_KEY\" }\n\
         query_params = { api-version = \"1\" }\n",
    );
    let script = scratch.script(json!([
        {"type": "response", "items": [{"type": "text", "text": "ran"}]}
    ]));
    let finished = run(&mut scratch.exec(&script, &["hi"])).await;
    finished.assert_exit(0);
    assert!(
        !finished.stderr.contains("warning"),
        "a key read was warned about:\n{}",
        finished.stderr
    );
}
