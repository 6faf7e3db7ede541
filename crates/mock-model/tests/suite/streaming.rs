//! Successful responses: the events, their fields, and the text they carry.

use std::time::{Duration, Instant};

use serde_json::json;
use tiller_mock_model::{Item, MockModel, Script, Step};

use super::support::{DEADLINE, deltas, parse_sse, post, post_text, request, user};

#[tokio::test]
async fn a_text_response_streams_the_exact_events_and_its_deltas_make_the_text() {
    let mock = MockModel::start(Script::new(vec![Step::text("hello brave new world")]))
        .await
        .unwrap();

    let response = post(&mock, &request(vec![user("hi")])).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let events = parse_sse(&text);

    let kinds: Vec<&str> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (index, event) in events.iter().enumerate() {
        let data = event.json();
        assert_eq!(data["type"], event.kind(), "{}", event.data);
        assert_eq!(data["sequence_number"], index as u64);
    }

    let deltas: Vec<String> = events
        .iter()
        .filter(|e| e.kind() == "response.output_text.delta")
        .map(|e| e.json()["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deltas, ["hello ", "brave ", "new ", "world"]);

    let delta = events[3].json();
    assert_eq!(delta["item_id"], "msg_mock_1_0");
    assert_eq!(delta["output_index"], 0);
    assert_eq!(delta["content_index"], 0);

    let done = events[9].json();
    assert_eq!(
        done["item"],
        json!({
            "type": "message", "id": "msg_mock_1_0", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "hello brave new world", "annotations": []}],
        })
    );

    let completed = events[10].json();
    let response = &completed["response"];
    assert_eq!(response["id"], "resp_mock_1");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["model"], "test-model");
    assert_eq!(response["output"], json!([done["item"]]));
    let usage = &response["usage"];
    assert_eq!(usage["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 0);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn function_call_arguments_reassemble_from_their_deltas() {
    let arguments =
        json!({"command": ["bash", "-lc", "ls -la /tmp && echo done"], "timeout_ms": 5000});
    let mock = MockModel::start(Script::new(vec![Step::function_call(
        "call_1",
        "shell",
        arguments.clone(),
    )]))
    .await
    .unwrap();

    let (status, text) = post_text(&mock, &request(vec![user("list")])).await;
    assert_eq!(status, 200);
    let events = parse_sse(&text);

    let delta_count = events
        .iter()
        .filter(|e| e.kind() == "response.function_call_arguments.delta")
        .count();
    assert!(delta_count > 1, "arguments should arrive in several deltas");
    let streamed = deltas(&events, "response.function_call_arguments.delta");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&streamed).unwrap(),
        arguments
    );

    let args_done = events
        .iter()
        .find(|e| e.kind() == "response.function_call_arguments.done")
        .unwrap()
        .json();
    assert_eq!(args_done["arguments"], streamed);
    assert_eq!(args_done["item_id"], "fc_mock_1_0");

    let added = events[1].json();
    assert_eq!(added["item"]["status"], "in_progress");
    assert_eq!(added["item"]["arguments"], "");
    let item = events
        .iter()
        .find(|e| e.kind() == "response.output_item.done")
        .unwrap()
        .json()["item"]
        .clone();
    assert_eq!(
        item,
        json!({
            "type": "function_call", "id": "fc_mock_1_0", "call_id": "call_1", "name": "shell",
            "arguments": streamed, "status": "completed",
        })
    );
}

#[tokio::test]
async fn several_items_stream_in_order_with_their_own_output_index() {
    let step = Step::response(vec![
        Item::reasoning("Look first."),
        Item::text_deltas(["Let me ", "check."]),
        Item::function_call("call_9", "shell", json!("{\"command\":\"pwd\"}")),
    ])
    .with_usage(11, 22)
    .with_response_id("resp_custom");
    let mock = MockModel::start(Script::new(vec![step])).await.unwrap();

    let (_, text) = post_text(&mock, &request(vec![user("go")])).await;
    let events = parse_sse(&text);

    assert_eq!(
        deltas(&events, "response.reasoning_summary_text.delta"),
        "Look first."
    );
    assert_eq!(
        deltas(&events, "response.output_text.delta"),
        "Let me check."
    );
    assert_eq!(
        deltas(&events, "response.function_call_arguments.delta"),
        "{\"command\":\"pwd\"}"
    );

    let added: Vec<(u64, String)> = events
        .iter()
        .filter(|e| e.kind() == "response.output_item.added")
        .map(|e| {
            let data = e.json();
            (
                data["output_index"].as_u64().unwrap(),
                data["item"]["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        added,
        [
            (0, "reasoning".to_owned()),
            (1, "message".to_owned()),
            (2, "function_call".to_owned())
        ]
    );

    let completed = events.last().unwrap().json();
    assert_eq!(completed["response"]["id"], "resp_custom");
    assert_eq!(
        completed["response"]["output"][0],
        json!({"type": "reasoning", "id": "rs_mock_1_0", "summary": [{"type": "summary_text", "text": "Look first."}]})
    );
    assert_eq!(completed["response"]["usage"]["input_tokens"], 11);
    assert_eq!(completed["response"]["usage"]["output_tokens"], 22);
    assert_eq!(completed["response"]["usage"]["total_tokens"], 33);
}

#[tokio::test]
async fn chunks_cut_the_text_into_that_many_deltas() {
    let mock = MockModel::start(Script::new(vec![Step::response(vec![
        Item::text("abcdefghij").with_chunks(3),
    ])]))
    .await
    .unwrap();

    let (_, text) = post_text(&mock, &request(vec![user("go")])).await;
    let events = parse_sse(&text);
    let pieces: Vec<String> = events
        .iter()
        .filter(|e| e.kind() == "response.output_text.delta")
        .map(|e| e.json()["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pieces, ["abc", "def", "ghij"]);
}

#[tokio::test]
async fn twenty_thousand_deltas_arrive_complete_and_in_order() {
    let text: String = (0..20_000).map(|i| format!("w{i} ")).collect();
    let mock = MockModel::start(Script::new(vec![Step::text(text.clone())]))
        .await
        .unwrap();

    let started = Instant::now();
    let (status, body) = post_text(&mock, &request(vec![user("go")])).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    let events = parse_sse(&body);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind() == "response.output_text.delta")
            .count(),
        20_000
    );
    assert_eq!(deltas(&events, "response.output_text.delta"), text);
    // Speed is measured by the benchmarks; this only reports it.
    eprintln!("20,000 deltas streamed and parsed in {elapsed:?}");
}

#[tokio::test]
async fn delta_delay_spaces_the_deltas_out() {
    let mock = MockModel::start(Script::new(vec![Step::text("a b c").with_delta_delay(30)]))
        .await
        .unwrap();

    let started = Instant::now();
    let (_, body) = post_text(&mock, &request(vec![user("go")])).await;
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(
        deltas(&parse_sse(&body), "response.output_text.delta"),
        "a b c"
    );
}

#[tokio::test]
async fn a_request_is_served_while_another_still_streams() {
    let mock = MockModel::start(Script::new(vec![Step::hang(), Step::text("second")]))
        .await
        .unwrap();

    let base = mock.base_url();
    let first = tokio::spawn(async move {
        super::support::client()
            .post(format!("{base}/responses"))
            .json(&request(vec![user("one")]))
            .send()
            .await
    });
    mock.wait_for_requests(1, DEADLINE).await.unwrap();

    let (status, body) = post_text(&mock, &request(vec![user("two")])).await;
    assert_eq!(status, 200);
    assert_eq!(
        deltas(&parse_sse(&body), "response.output_text.delta"),
        "second"
    );
    let requests = mock.requests();
    assert_eq!(requests[0].step_index, Some(0));
    assert_eq!(requests[1].step_index, Some(1));
    assert!(!first.is_finished());
    first.abort();
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_does_not_disturb_the_server() {
    let mock = MockModel::start(Script::new(vec![
        Step::text("one two three four five six").with_delta_delay(50),
        Step::text("next"),
    ]))
    .await
    .unwrap();

    let mut response = post(&mock, &request(vec![user("go")])).await;
    let first_chunk = tokio::time::timeout(DEADLINE, response.chunk())
        .await
        .unwrap()
        .unwrap();
    assert!(first_chunk.is_some());
    drop(response);

    let (status, body) = post_text(&mock, &request(vec![user("again")])).await;
    assert_eq!(status, 200);
    assert_eq!(
        deltas(&parse_sse(&body), "response.output_text.delta"),
        "next"
    );
}
