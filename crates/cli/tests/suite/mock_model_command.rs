//! `tiller mock-model`: the scripted model as a server of its own.

use serde_json::json;

use super::support::{MockModelProcess, Scratch, completed_items, only_event, run};

#[tokio::test]
async fn mock_model_subcommand_prints_its_url_and_serves() {
    let scratch = Scratch::new();
    let script = scratch.script(json!([
        {"type": "response", "items": [{"type": "text", "text": "served from another process"}]}
    ]));
    let mock = MockModelProcess::start(&scratch, &script).await;

    let port = mock
        .url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix("/v1"))
        .and_then(|port| port.parse::<u16>().ok());
    assert!(
        port.is_some_and(|port| port != 0),
        "not a loopback base URL: {:?}",
        mock.url
    );

    scratch.mock_config(&mock.url, "");
    let work = scratch.work();
    let finished =
        run(&mut scratch.tiller(&["exec", "--json", "--cd", work.to_str().unwrap(), "hi"])).await;
    finished.assert_exit(0);
    let events = finished.json();
    let answers = completed_items(&events, "agent_message");
    assert_eq!(answers.len(), 1, "{events:#?}");
    assert_eq!(answers[0].1["text"], "served from another process");
    only_event(&events, "turn.completed");

    let stopped = mock.stop().await;
    stopped.assert_exit(0);
}

/// Once the URL is out, a caller may stop the server at any moment; Ctrl+C must
/// then be a clean shutdown (exit 0), not death by the signal. A late signal
/// handler loses a race that is short, so the test runs it many times.
#[tokio::test]
async fn mock_model_exits_cleanly_on_ctrl_c_as_soon_as_its_url_is_printed() {
    let scratch = Scratch::new();
    let script = scratch.script(json!([
        {"type": "response", "items": [{"type": "text", "text": "unused"}]}
    ]));
    for attempt in 1..=20 {
        let mock = MockModelProcess::start(&scratch, &script).await;
        let stopped = mock.stop().await;
        assert_eq!(
            stopped.status.code(),
            Some(0),
            "attempt {attempt}: Ctrl+C right after the URL ended the mock model with {:?}\nstderr:\n{}",
            stopped.status,
            stopped.stderr
        );
    }
}
