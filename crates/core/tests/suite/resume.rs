//! Persistence: the rollout is on disk before the terminal event (I5), and a
//! session resumed from it continues with the same history.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tiller_core::INTERRUPTED_MARKER;
use tiller_core::config::WireApi;
use tiller_mock_model::Step;
use tiller_protocol::{EventMsg, Op};
use tiller_test_support::{EngineSettings, Persistence, TestEngine, read_pids_when_ready};

use super::shell_call;

fn saved(wire: WireApi) -> EngineSettings {
    EngineSettings {
        persistence: Persistence::New,
        ..EngineSettings::new(wire)
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn events_of(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["type"] == "event")
        .map(|l| l["payload"]["type"].as_str().unwrap().to_string())
        .collect()
}

fn response_items(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l["type"] == "response_item")
        .map(|l| l["payload"].clone())
        .collect()
}

async fn the_terminal_line_is_on_disk_before_the_terminal_event(wire: WireApi) {
    let mut engine = TestEngine::start_with(
        vec![shell_call("call_1", "echo hi"), Step::text("done")],
        saved(wire),
    )
    .await;
    let turn = engine.start_turn("go").await;
    engine.wait_terminal(&turn).await;
    // Read the file the moment the event arrives: the line must already be there.
    let path = engine
        .rollout_path()
        .expect("a saved session names its rollout");
    let on_disk = lines(&path);
    assert_eq!(on_disk[0]["type"], "session_meta");
    assert_eq!(on_disk[1]["type"], "turn_context");
    assert_eq!(events_of(&on_disk), vec!["turn_started", "turn_completed"]);
    engine.finish().await;
}

async fn an_interrupt_is_recorded_with_the_aborted_output_and_the_marker(wire: WireApi) {
    let mut engine = TestEngine::start_with(
        vec![shell_call("call_1", "echo $$ > pids; sleep 60")],
        saved(wire),
    )
    .await;
    let turn = engine.start_turn("go").await;
    read_pids_when_ready(&engine.dir().join("pids"), 1, Duration::from_secs(10)).await;
    engine.submit(Op::Interrupt).await.unwrap();
    engine.wait_terminal(&turn).await;
    let on_disk = lines(&engine.rollout_path().unwrap());
    assert_eq!(events_of(&on_disk), vec!["turn_started", "turn_aborted"]);
    let items = response_items(&on_disk);
    let output = items
        .iter()
        .find(|i| i["type"] == "function_call_output")
        .expect("the aborted output is recorded");
    assert!(
        output["output"]
            .as_str()
            .unwrap()
            .contains("Aborted by the user")
    );
    assert_eq!(
        items.last().unwrap()["content"][0]["text"],
        INTERRUPTED_MARKER
    );
    engine.finish().await;
}

async fn resumed_history_equals_the_live_history(wire: WireApi) {
    let mut live = TestEngine::start_with(
        vec![
            shell_call("call_1", "echo one"),
            Step::text("first answer"),
            shell_call("call_2", "echo two; exit 2"),
            Step::text("second answer"),
        ],
        saved(wire),
    )
    .await;
    for prompt in ["first", "second"] {
        let turn = live.start_turn(prompt).await;
        live.wait_terminal(&turn).await;
    }
    let requests = live.wait_requests(4).await;
    // Keep the file past the live engine's temp home.
    let keep = tempfile::tempdir().unwrap();
    let live_path = live.rollout_path().unwrap();
    let path = keep.path().join(live_path.file_name().unwrap());
    std::fs::copy(&live_path, &path).unwrap();
    live.finish().await;
    // The live history: what the last request sent, plus the answer to it.
    let mut expected: Vec<Value> = requests[3].input().to_vec();
    expected.push(serde_json::json!({
        "type": "message", "role": "assistant",
        "content": [{"type": "output_text", "text": "second answer"}]
    }));

    let loaded = tiller_core::rollout::load(&path).unwrap();
    let resumed: Vec<Value> = loaded
        .items
        .iter()
        .map(|i| serde_json::to_value(i).unwrap())
        .collect();
    assert_eq!(resumed, expected);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    let mut again = TestEngine::start_with(
        vec![Step::text("third answer")],
        EngineSettings {
            persistence: Persistence::Resume(path),
            ..EngineSettings::new(wire)
        },
    )
    .await;
    let turn = again.start_turn("third").await;
    again.wait_terminal(&turn).await;
    let sent = again.wait_requests(1).await;
    let input = sent[0].input();
    assert_eq!(
        &input[..expected.len()],
        &expected[..],
        "the resumed request starts with the live history"
    );
    again.finish().await;
}

async fn a_cut_off_turn_is_closed_as_interrupted_on_resume_by_appending_only(wire: WireApi) {
    let home = tempfile::tempdir().unwrap();
    let path = home
        .path()
        .join("rollout-2026-01-01T00-00-00-01a1fe00-0000-7000-8000-000000000000.jsonl");
    let original = concat!(
        r#"{"timestamp":"t","type":"session_meta","payload":{"id":"01a1fe00-0000-7000-8000-000000000000","created":"t","cwd":"/","model":"m","provider":"p","tiller_version":"0"}}"#,
        "\n",
        r#"{"timestamp":"t","type":"event","payload":{"type":"turn_started","turn_id":"t1"}}"#,
        "\n",
        r#"{"timestamp":"t","type":"response_item","payload":{"type":"message","role":"user","content":[{"type":"input_text","text":"go"}]}}"#,
        "\n",
        r#"{"timestamp":"t","type":"response_item","payload":{"type":"function_call","name":"shell","arguments":"{}","call_id":"call_cut"}}"#,
        "\n",
        r#"{"timestamp":"t","type":"response_item","payload":{"type":"message","role":"assis"#,
    );
    std::fs::write(&path, original).unwrap();

    let mut engine = TestEngine::start_with(
        vec![Step::text("fine")],
        EngineSettings {
            persistence: Persistence::Resume(path.clone()),
            ..EngineSettings::new(wire)
        },
    )
    .await;
    let configured = engine
        .wait_for("SessionConfigured", |e| {
            matches!(e.msg, EventMsg::SessionConfigured { .. })
        })
        .await;
    assert!(matches!(
        configured.msg,
        EventMsg::SessionConfigured { interrupted_turn_id: Some(ref t), .. } if t == "t1"
    ));
    let turn = engine.start_turn("continue").await;
    engine.wait_terminal(&turn).await;
    let request = &engine.wait_requests(1).await[0];
    assert!(request.rejected.is_none());
    engine.finish().await;

    let after = std::fs::read_to_string(&path).unwrap();
    assert!(
        after.starts_with(original),
        "the original bytes are untouched"
    );
    let loaded = tiller_core::rollout::load(&path).unwrap();
    // Once resume has appended after it, the cut-off line is an unreadable line 5.
    assert!(
        loaded.warnings.iter().any(|w| w.contains(":5:")),
        "{:?}",
        loaded.warnings
    );
    assert_eq!(loaded.open_turn, None);
    let tail: Vec<Value> = response_items(&lines_lossy(&after));
    assert!(
        tail.iter()
            .any(|i| i["type"] == "function_call_output" && i["call_id"] == "call_cut")
    );
    assert!(
        tail.iter()
            .any(|i| i["content"][0]["text"] == INTERRUPTED_MARKER)
    );
}

fn lines_lossy(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

async fn client_message_id_stays_idempotent_across_a_restart(wire: WireApi) {
    let mut live = TestEngine::start_with(vec![Step::text("once")], saved(wire)).await;
    let start = || Op::StartTurn {
        input: vec![tiller_protocol::UserMessage::new(vec![
            tiller_protocol::UserInput::text("hello"),
        ])],
        client_message_id: Some("m-restart".into()),
    };
    let first = live.submit(start()).await.unwrap();
    let tiller_protocol::Reply::TurnStarted { turn_id } = first.clone() else {
        panic!("{first:?}")
    };
    live.wait_terminal(&turn_id).await;
    let keep = tempfile::tempdir().unwrap();
    let live_path = live.rollout_path().unwrap();
    let path = keep.path().join(live_path.file_name().unwrap());
    std::fs::copy(&live_path, &path).unwrap();
    live.finish().await;

    let mut resumed = TestEngine::start_with(
        vec![Step::text("must not be asked for")],
        EngineSettings {
            persistence: Persistence::Resume(path),
            ..EngineSettings::new(wire)
        },
    )
    .await;
    assert_eq!(
        resumed.submit(start()).await.unwrap(),
        first,
        "the original answer"
    );
    resumed.drain_ready();
    assert!(
        !resumed
            .log
            .iter()
            .any(|e| matches!(e.msg, EventMsg::TurnStarted { .. }))
    );
    assert!(resumed.requests().is_empty(), "nothing reached the model");
    resumed.finish().await;
}

on_both_wires!(
    the_terminal_line_is_on_disk_before_the_terminal_event,
    an_interrupt_is_recorded_with_the_aborted_output_and_the_marker,
    resumed_history_equals_the_live_history,
    a_cut_off_turn_is_closed_as_interrupted_on_resume_by_appending_only,
    client_message_id_stays_idempotent_across_a_restart,
);
