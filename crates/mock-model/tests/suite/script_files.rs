//! Scripts read from JSON files.

use std::io::Write;

use tiller_mock_model::{MockModel, Script, ScriptError, Step};

use super::support::{parse_sse, post_text, request, user};

const STEPS: &str = r#"[
  {"type": "response", "items": [
    {"type": "function_call", "name": "shell", "call_id": "call_1", "arguments": {"command": ["ls"]}}]},
  {"type": "response", "delta_delay_ms": 0, "items": [
    {"type": "reasoning", "text": "Short listing."},
    {"type": "text", "text": "Two files.", "chunks": 2}]},
  {"type": "http_error", "status": 429, "headers": {"Retry-After": "1"}},
  {"type": "response", "drop_after_deltas": 1, "stall": {"after_deltas": 0, "ms": 1},
   "items": [{"type": "text", "deltas": ["a", "b"]}]},
  {"type": "failed", "message": "overloaded", "code": "server_error"},
  {"type": "hang"}
]"#;

fn write_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn a_bare_array_and_a_steps_object_load_the_same_script() {
    let bare = Script::from_file(write_file(STEPS).path()).unwrap();
    let wrapped = Script::from_file(write_file(&format!("{{\"steps\": {STEPS}}}")).path()).unwrap();

    assert_eq!(bare, wrapped);
    assert_eq!(
        bare.steps.iter().map(Step::kind).collect::<Vec<_>>(),
        [
            "response",
            "response",
            "http_error",
            "response",
            "failed",
            "hang"
        ]
    );
}

#[test]
fn a_bad_file_is_named_with_the_line_and_column() {
    let file =
        write_file("[\n  {\"type\": \"hang\"},\n  {\"type\": \"response\",\n   \"itemz\": []}\n]");
    let error = Script::from_file(file.path()).unwrap_err();

    assert!(
        matches!(error, ScriptError::Parse { step: Some(1), .. }),
        "{error}"
    );
    assert!(error.line().is_some_and(|line| line >= 4));
    let message = error.to_string();
    assert!(
        message.contains(&file.path().display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("steps[1]: unknown field `itemz`"),
        "{message}"
    );
    assert!(message.contains(" line "), "{message}");
    eprintln!("{message}");
}

#[test]
fn a_missing_file_is_named() {
    let error = Script::from_file(std::path::Path::new("/nonexistent/script.json")).unwrap_err();
    assert!(matches!(error, ScriptError::Read { .. }));
    assert!(error.to_string().contains("/nonexistent/script.json"));
}

#[tokio::test]
async fn a_loaded_script_plays() {
    let script = Script::from_json_str(STEPS).unwrap();
    let mock = MockModel::start(script).await.unwrap();

    let (_, body) = post_text(&mock, &request(vec![user("list")])).await;
    let events = parse_sse(&body);
    let done = events
        .iter()
        .find(|e| e.kind() == "response.function_call_arguments.done")
        .unwrap()
        .json();
    assert_eq!(done["arguments"], r#"{"command":["ls"]}"#);
}

#[tokio::test]
async fn a_rust_script_that_cannot_be_played_is_refused_at_start() {
    let step = Step::response(vec![tiller_mock_model::Item::Text(
        tiller_mock_model::StreamedText {
            text: "abc".into(),
            deltas: Some(vec!["x".into()]),
            chunks: None,
        },
    )]);
    let error = MockModel::start(Script::new(vec![step])).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("steps[0].items[0]"), "{error}");
}
