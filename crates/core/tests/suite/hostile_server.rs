//! A model server that misbehaves on purpose: it keeps the connection alive
//! with comments and never sends an event, sends one enormous event, or answers
//! an error with an enormous body. tiller reports each in words, within its
//! limits, and the session stays usable.

use std::time::Duration;

use tiller_core::config::WireApi;
use tiller_mock_model::{Item, Step};
use tiller_protocol::EventMsg;
use tiller_test_support::{EngineSettings, TestEngine};

async fn a_stream_of_keep_alive_comments_is_idle(wire: WireApi) {
    let mut engine = TestEngine::start_with(
        vec![
            Step::text("one two three").with_keep_alive_after(1, 20),
            Step::text("after the comments"),
        ],
        EngineSettings {
            stream_idle_timeout: Duration::from_millis(400),
            ..EngineSettings::new(wire)
        },
    )
    .await;
    let turn = engine.start_turn("hi").await;
    let end = engine.wait_terminal(&turn).await;
    assert!(
        matches!(end, EventMsg::TurnCompleted { last_agent_message: Some(ref t), .. } if t == "after the comments"),
        "{end:?}"
    );
    let retried = engine
        .log
        .iter()
        .any(|e| matches!(&e.msg, EventMsg::StreamRetry { reason, .. } if reason.contains("idle")));
    assert!(
        retried,
        "the comments kept the stream alive: {:#?}",
        engine.log
    );
    engine.finish().await;
}

async fn a_huge_event_is_refused_in_words_and_a_large_one_is_read(wire: WireApi) {
    // 24 MB in one delta event: past the 16 MiB limit.
    let huge = "x".repeat(24 * 1024 * 1024);
    // 8 MB: a large event tiller reads.
    let large = "y".repeat(8 * 1024 * 1024);
    let mut engine = TestEngine::start(
        wire,
        vec![
            Step::response(vec![Item::text_deltas([huge])]),
            Step::response(vec![Item::text_deltas([large.clone()])]),
        ],
    )
    .await;
    let turn = engine.start_turn("hi").await;
    let end = engine.wait_terminal(&turn).await;
    let EventMsg::TurnFailed { error, .. } = end else {
        panic!("{end:?}")
    };
    assert!(
        error.message.contains("an event of more than 16 MiB"),
        "{}",
        error.message
    );
    let turn = engine.start_turn("again").await;
    let end = engine.wait_terminal(&turn).await;
    assert!(
        matches!(end, EventMsg::TurnCompleted { last_agent_message: Some(ref t), .. } if *t == large),
        "the 8 MB answer did not come through whole"
    );
    engine.finish().await;
}

async fn a_100_mb_error_body_is_cut_to_a_readable_message(wire: WireApi) {
    let body = format!(
        "{{\"error\":{{\"message\":\"{}\"}}}}",
        "e".repeat(100 * 1024 * 1024)
    );
    let mut engine =
        TestEngine::start(wire, vec![Step::http_error(400, body), Step::text("fine")]).await;
    let turn = engine.start_turn("hi").await;
    let end = engine.wait_terminal(&turn).await;
    let EventMsg::TurnFailed { error, .. } = end else {
        panic!("{end:?}")
    };
    assert!(
        error.message.len() < 4096,
        "the error message is {} bytes long",
        error.message.len()
    );
    assert!(
        error.message.contains("not shown"),
        "{}",
        &error.message[..200]
    );
    let turn = engine.start_turn("again").await;
    assert!(matches!(
        engine.wait_terminal(&turn).await,
        EventMsg::TurnCompleted { .. }
    ));
    engine.finish().await;
}

on_both_wires!(
    a_stream_of_keep_alive_comments_is_idle,
    a_huge_event_is_refused_in_words_and_a_large_one_is_read,
    a_100_mb_error_body_is_cut_to_a_readable_message,
);
