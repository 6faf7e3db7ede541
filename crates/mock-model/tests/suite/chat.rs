//! Chat Completions: the same steps streamed as chunks, its contract, and one
//! recorded view of both APIs.

use serde_json::{Value, json};
use tiller_mock_model::{Item, MockModel, Script, Step};

use super::support::{
    DEADLINE, chat_request, client, parse_sse, post, post_chat, post_chat_text, post_text,
    read_until_end_or_error, request, user,
};

fn user_message(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn assistant_calls(ids: &[&str]) -> Value {
    let calls: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "type": "function", "function": {"name": "shell", "arguments": "{\"command\":\"ls\"}"}}))
        .collect();
    json!({"role": "assistant", "content": null, "tool_calls": calls})
}

fn tool_message(id: &str) -> Value {
    json!({"role": "tool", "tool_call_id": id, "content": "a\nb"})
}

/// A chunk as the mock sends it for the request model `test-model`.
fn chunk(id: &str, delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": id, "object": "chat.completion.chunk", "created": 1_700_000_000u64,
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    })
}

/// The JSON of every `data:` event before `[DONE]`; checks that no event has
/// an `event:` line and that `[DONE]` ends the body.
fn chunks(body: &str) -> Vec<Value> {
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let events = parse_sse(body);
    assert!(events.iter().all(|e| e.event.is_none()), "{body}");
    let (done, chunks) = events.split_last().unwrap();
    assert_eq!(done.data, "[DONE]");
    chunks.iter().map(|e| e.json()).collect()
}

/// The `delta` of each chunk that has a choice.
fn deltas(chunks: &[Value]) -> Vec<Value> {
    chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .map(|choice| choice["delta"].clone())
        .collect()
}

fn role_delta() -> Value {
    json!({"role": "assistant", "content": ""})
}

/// Tool call arguments assembled by index, as a client must.
fn assemble_calls(deltas: &[Value]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for delta in deltas {
        for fragment in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = fragment["index"].as_u64().unwrap() as usize;
            if let Some(id) = fragment["id"].as_str() {
                assert_eq!(index, calls.len(), "a new call takes the next index");
                let name = fragment["function"]["name"].as_str().unwrap();
                calls.push((id.to_owned(), name.to_owned(), String::new()));
            }
            calls[index]
                .2
                .push_str(fragment["function"]["arguments"].as_str().unwrap());
        }
    }
    calls
}

#[tokio::test]
async fn a_text_response_streams_the_exact_chunks_then_done() {
    let mock = MockModel::start(Script::new(vec![Step::text("hello brave world")]))
        .await
        .unwrap();

    let response = post_chat(&mock, &chat_request(vec![user_message("hi")])).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let body = response.text().await.unwrap();

    let id = "chatcmpl-mock-1";
    assert_eq!(
        chunks(&body),
        [
            chunk(id, role_delta(), None),
            chunk(id, json!({"content": "hello "}), None),
            chunk(id, json!({"content": "brave "}), None),
            chunk(id, json!({"content": "world"}), None),
            chunk(id, json!({}), Some("stop")),
        ]
    );
    assert!(body.starts_with("data: {\"id\":\"chatcmpl-mock-1\",\"object\":"));
}

#[tokio::test]
async fn reasoning_streams_in_reasoning_content_or_the_field_the_step_names() {
    let items = vec![Item::reasoning("think first"), Item::text("done")];
    let mock = MockModel::start(Script::new(vec![
        Step::response(items.clone()).with_response_id("chatcmpl-x"),
        Step::response(items).with_reasoning_field("reasoning"),
    ]))
    .await
    .unwrap();

    let (_, body) = post_chat_text(&mock, &chat_request(vec![user_message("hi")])).await;
    let chunks_default = chunks(&body);
    assert_eq!(chunks_default[0]["id"], "chatcmpl-x");
    assert_eq!(
        deltas(&chunks_default),
        [
            role_delta(),
            json!({"reasoning_content": "think "}),
            json!({"reasoning_content": "first"}),
            json!({"content": "done"}),
            json!({}),
        ]
    );

    let (_, body) = post_chat_text(&mock, &chat_request(vec![user_message("hi")])).await;
    assert_eq!(
        deltas(&chunks(&body)),
        [
            role_delta(),
            json!({"reasoning": "think "}),
            json!({"reasoning": "first"}),
            json!({"content": "done"}),
            json!({}),
        ]
    );
}

fn three_calls() -> Vec<Item> {
    vec![
        Item::function_call("call_a", "shell", json!({"command": ["ls", "-la", "/tmp"]})),
        Item::function_call("call_b", "read", json!({"path": "/etc/hosts"})),
        Item::function_call("call_c", "noop", json!({})),
    ]
}

#[tokio::test]
async fn function_calls_are_cut_exactly_as_on_responses_with_index_per_call() {
    let mock = MockModel::start(Script::new(vec![
        Step::response(three_calls()),
        Step::response(three_calls()),
    ]))
    .await
    .unwrap();

    let (_, responses_body) = post_text(&mock, &request(vec![user("go")])).await;
    let pieces_of = |index: u64| -> Vec<String> {
        parse_sse(&responses_body)
            .iter()
            .filter(|e| e.kind() == "response.function_call_arguments.delta")
            .map(|e| e.json())
            .filter(|data| data["output_index"] == index)
            .map(|data| data["delta"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, body) = post_chat_text(&mock, &chat_request(vec![user_message("go")])).await;

    let mut expected = vec![role_delta()];
    for (index, (id, name)) in [("call_a", "shell"), ("call_b", "read"), ("call_c", "noop")]
        .into_iter()
        .enumerate()
    {
        expected.push(
            json!({"tool_calls": [{"index": index, "id": id, "type": "function",
            "function": {"name": name, "arguments": ""}}]}),
        );
        for piece in pieces_of(index as u64) {
            expected
                .push(json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}));
        }
    }
    expected.push(json!({}));
    let chunks = chunks(&body);
    assert_eq!(deltas(&chunks), expected);
    assert!(
        pieces_of(0).len() > 1,
        "the first call needs several pieces"
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn interleaved_calls_arrive_round_robin_and_assemble_by_index() {
    // 1, 3 and 2 argument pieces of 16 characters at most.
    let items = vec![
        Item::function_call("call_0", "f", Value::String("x".repeat(10))),
        Item::function_call("call_1", "g", Value::String("y".repeat(40))),
        Item::function_call("call_2", "h", Value::String("z".repeat(20))),
    ];
    let mock = MockModel::start(Script::new(vec![
        Step::response(items).with_interleaved_tool_calls(),
    ]))
    .await
    .unwrap();

    let (_, body) = post_chat_text(&mock, &chat_request(vec![user_message("go")])).await;
    let deltas = deltas(&chunks(&body));

    let order: Vec<String> = deltas[1..deltas.len() - 1]
        .iter()
        .map(|delta| {
            let call = &delta["tool_calls"][0];
            let kind = if call.get("id").is_some() {
                "head"
            } else {
                "args"
            };
            format!("{kind}{}", call["index"])
        })
        .collect();
    assert_eq!(
        order,
        [
            "head0", "head1", "head2", "args0", "args1", "args2", "args1", "args2", "args1"
        ]
    );
    assert_eq!(
        assemble_calls(&deltas),
        [
            ("call_0".into(), "f".into(), "x".repeat(10)),
            ("call_1".into(), "g".into(), "y".repeat(40)),
            ("call_2".into(), "h".into(), "z".repeat(20)),
        ]
    );
}

#[tokio::test]
async fn a_custom_tool_call_is_a_function_call_with_its_input_wrapped() {
    let mock = MockModel::start(Script::new(vec![Step::custom_tool_call(
        "call_p",
        "apply_patch",
        "*** Begin Patch\n*** End Patch",
    )]))
    .await
    .unwrap();

    let (_, body) = post_chat_text(&mock, &chat_request(vec![user_message("go")])).await;
    let chunks = chunks(&body);
    let calls = assemble_calls(&deltas(&chunks));
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].0.as_str(), calls[0].1.as_str()),
        ("call_p", "apply_patch")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].2).unwrap(),
        json!({"input": "*** Begin Patch\n*** End Patch"})
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn finish_reason_length_ends_both_apis_as_truncated() {
    let step = Step::text("cut off here").with_finish_reason("length");
    let mock = MockModel::start(Script::new(vec![step.clone(), step]))
        .await
        .unwrap();

    let (_, body) = post_text(&mock, &request(vec![user("go")])).await;
    let events = parse_sse(&body);
    assert!(events.iter().all(|e| e.kind() != "response.completed"));
    let last = events.last().unwrap();
    assert_eq!(last.kind(), "response.incomplete");
    let response = &last.json()["response"];
    assert_eq!(response["status"], "incomplete");
    assert_eq!(
        response["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(response["output"][0]["status"], "incomplete");
    assert_eq!(response["output"][0]["content"][0]["text"], "cut off here");
    assert!(response["usage"]["output_tokens"].as_u64().unwrap() > 0);

    let (_, body) = post_chat_text(&mock, &chat_request(vec![user_message("go")])).await;
    let chunks = chunks(&body);
    assert_eq!(
        chunks.last().unwrap(),
        &chunk("chatcmpl-mock-2", json!({}), Some("length"))
    );
}

#[tokio::test]
async fn usage_comes_in_its_own_chunk_only_when_the_request_asks() {
    let mock = MockModel::start(Script::new(vec![
        Step::text("hello world"),
        Step::text("hello world"),
        Step::text("hi").with_usage(7, 2),
    ]))
    .await
    .unwrap();

    let (_, body) = post_chat_text(&mock, &chat_request(vec![user_message("hi")])).await;
    assert!(!body.contains("usage"), "{body}");
    assert!(chunks(&body).iter().all(|c| c["choices"].get(0).is_some()));

    let mut with_usage = chat_request(vec![user_message("hi")]);
    with_usage["stream_options"] = json!({"include_usage": true});
    let (_, body) = post_chat_text(&mock, &with_usage).await;
    let chunks_with = chunks(&body);
    let (usage_chunk, rest) = chunks_with.split_last().unwrap();
    assert!(
        rest.iter()
            .all(|c| c["usage"].is_null() && c.get("usage").is_some())
    );
    assert_eq!(rest.last().unwrap()["choices"][0]["finish_reason"], "stop");
    let prompt_tokens = mock.requests()[1].input_tokens;
    assert!(prompt_tokens > 0);
    assert_eq!(
        usage_chunk,
        &json!({
            "id": "chatcmpl-mock-2", "object": "chat.completion.chunk",
            "created": 1_700_000_000u64, "model": "test-model", "choices": [],
            "usage": {
                "prompt_tokens": prompt_tokens, "completion_tokens": 3,
                "total_tokens": prompt_tokens + 3,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        })
    );

    let (_, body) = post_chat_text(&mock, &with_usage).await;
    let usage = chunks(&body).last().unwrap()["usage"].clone();
    assert_eq!(
        (&usage["prompt_tokens"], &usage["completion_tokens"]),
        (&json!(7), &json!(2))
    );
}

#[tokio::test]
async fn a_drop_cuts_the_chat_stream_after_the_same_deltas() {
    let arguments = json!({"command": ["bash", "-lc", "ls -la /tmp && echo done"]});
    let call = Step::function_call("call_1", "shell", arguments).with_drop_after(2);
    let mock = MockModel::start(Script::new(vec![
        Step::text("one two three four").with_drop_after(2),
        call.clone(),
        call,
    ]))
    .await
    .unwrap();

    let response = post_chat(&mock, &chat_request(vec![user_message("go")])).await;
    assert_eq!(response.status(), 200);
    let (body, error) = read_until_end_or_error(response).await;
    assert!(error.is_some(), "the body should fail, got: {body}");
    assert!(!body.contains("[DONE]") && !body.contains("finish_reason\":\"stop"));
    let events = parse_sse(&body);
    let text: String = events
        .iter()
        .filter_map(|e| {
            e.json()["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "one two ");

    let (responses_body, error) =
        read_until_end_or_error(post(&mock, &request(vec![user("go")])).await).await;
    assert!(error.is_some());
    let responses_arguments = super::support::deltas(
        &parse_sse(&responses_body),
        "response.function_call_arguments.delta",
    );
    let (chat_body, error) =
        read_until_end_or_error(post_chat(&mock, &chat_request(vec![user_message("go")])).await)
            .await;
    assert!(error.is_some());
    let chat_deltas: Vec<Value> = parse_sse(&chat_body)
        .iter()
        .map(|e| e.json()["choices"][0]["delta"].clone())
        .collect();
    let calls = assemble_calls(&chat_deltas);
    assert_eq!(calls.len(), 1);
    assert!(!responses_arguments.is_empty());
    assert_eq!(calls[0].2, responses_arguments);
}

#[tokio::test]
async fn a_failed_step_sends_an_error_event_and_no_done() {
    let mock = MockModel::start(Script::new(vec![Step::failed("overloaded")]))
        .await
        .unwrap();

    let (status, body) = post_chat_text(&mock, &chat_request(vec![user_message("hi")])).await;
    assert_eq!(status, 200);
    assert!(!body.contains("[DONE]"));
    let events = parse_sse(&body);
    assert_eq!(events.len(), 2, "{body}");
    assert_eq!(
        events[0].json(),
        chunk("chatcmpl-mock-1", role_delta(), None)
    );
    assert_eq!(
        events[1].data,
        r#"{"error":{"message":"overloaded","type":"server_error","code":"server_error"}}"#
    );
}

#[tokio::test]
async fn http_errors_answer_chat_requests_too() {
    let mock = MockModel::start(Script::new(vec![
        Step::http_status(429).with_header("Retry-After", "1"),
    ]))
    .await
    .unwrap();

    let response = post_chat(&mock, &chat_request(vec![user_message("hi")])).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
}

#[tokio::test]
async fn one_script_answers_both_apis_in_order() {
    let mock = MockModel::start(Script::new(vec![Step::text("first"), Step::text("second")]))
        .await
        .unwrap();

    let (_, body) = post_text(&mock, &request(vec![user("1")])).await;
    assert!(body.contains("first"));
    let (_, body) = post_chat_text(&mock, &chat_request(vec![user_message("2")])).await;
    assert_eq!(deltas(&chunks(&body))[1], json!({"content": "second"}));

    let requests = mock.wait_for_requests(2, DEADLINE).await.unwrap();
    assert_eq!(
        requests
            .iter()
            .map(|r| (r.wire(), r.step_index))
            .collect::<Vec<_>>(),
        [("responses", Some(0)), ("chat", Some(1))]
    );
}

#[tokio::test]
async fn contract_violations_get_the_api_400_and_keep_the_step() {
    let mock = MockModel::start(Script::new(vec![Step::text("answer")]))
        .await
        .unwrap();
    let cases = [
        (
            json!({"model": "m", "stream": true}),
            r#"{"error":{"message":"Missing required parameter: 'messages'.","type":"invalid_request_error","param":"messages","code":null}}"#,
        ),
        (
            chat_request(vec![
                user_message("hi"),
                assistant_calls(&["call_a", "call_b", "call_c"]),
                tool_message("call_b"),
                user_message("steer"),
            ]),
            r#"{"error":{"message":"An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: call_a, call_c","type":"invalid_request_error","param":"messages.[3].role","code":null}}"#,
        ),
        (
            chat_request(vec![
                user_message("hi"),
                assistant_calls(&["call_a"]),
                tool_message("call_a"),
                user_message("again"),
                tool_message("call_a"),
            ]),
            r#"{"error":{"message":"Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.","type":"invalid_request_error","param":"messages.[4].role","code":null}}"#,
        ),
        (
            json!({"model": "m", "messages": [user_message("hi")], "stream_options": {"include_usage": true}}),
            r#"{"error":{"message":"The 'stream_options' parameter is only allowed when 'stream' is enabled.","type":"invalid_request_error","param":"stream_options","code":null}}"#,
        ),
        (
            json!({"model": "m", "messages": [user_message("hi")], "stream": true,
                "tools": [{"type": "function", "function": {"parameters": {}}}]}),
            r#"{"error":{"message":"Missing required parameter: 'tools[0].function.name'.","type":"invalid_request_error","param":"tools[0].function.name","code":null}}"#,
        ),
        (
            json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}),
            r#"{"error":{"message":"Invalid value: 'robot'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'.","type":"invalid_request_error","param":"messages[0].role","code":"invalid_value"}}"#,
        ),
        (
            json!({"model": "m", "messages": []}),
            r#"{"error":{"message":"Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.","type":"invalid_request_error","param":"messages","code":"empty_array"}}"#,
        ),
        (
            json!({"messages": [user_message("hi")]}),
            r#"{"error":{"message":"Missing required parameter: 'model'.","type":"invalid_request_error","param":"model","code":null}}"#,
        ),
    ];

    for (body, expected) in &cases {
        let (status, text) = post_chat_text(&mock, body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(text, *expected, "{body}");
    }
    assert_eq!(mock.remaining_steps(), 1);
    let requests = mock.requests();
    assert_eq!(requests.len(), cases.len());
    for (request, (_, expected)) in requests.iter().zip(&cases) {
        let message = serde_json::from_str::<Value>(expected).unwrap()["error"]["message"].clone();
        assert_eq!(request.rejected.as_deref(), message.as_str());
        assert_eq!(request.step_index, None);
    }

    let answered = chat_request(vec![
        user_message("hi"),
        assistant_calls(&["call_a", "call_b"]),
        tool_message("call_b"),
        tool_message("call_a"),
        user_message("steer"),
    ]);
    let (status, _) = post_chat_text(&mock, &answered).await;
    assert_eq!(status, 200);
    assert_eq!(mock.remaining_steps(), 0);
}

#[tokio::test]
async fn the_context_window_refuses_oversized_requests_on_both_apis() {
    let mock = MockModel::start(Script::new(vec![Step::text("a"), Step::text("b")]))
        .await
        .unwrap();
    let big = "many words ".repeat(100);
    let responses_body = request(vec![user(&big)]);
    let mut chat_body = chat_request(vec![user_message(&big)]);
    chat_body["stream_options"] = json!({"include_usage": true});

    mock.set_context_window(Some(100));
    let (status, body) = post_text(&mock, &responses_body).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"error":{"message":"Your input exceeds the context window of this model. Please adjust your input and try again.","type":"invalid_request_error","param":"input","code":"context_length_exceeded"}}"#
    );
    let (status, body) = post_chat_text(&mock, &chat_body).await;
    assert_eq!(status, 400);
    let requests = mock.requests();
    let (responses_tokens, chat_tokens) = (requests[0].input_tokens, requests[1].input_tokens);
    assert!(responses_tokens > 100 && chat_tokens > 100);
    let message = format!(
        "This model's maximum context length is 100 tokens. However, your messages resulted in {chat_tokens} tokens. Please reduce the length of the messages."
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": {"message": message, "type": "invalid_request_error",
            "param": "messages", "code": "context_length_exceeded"}})
    );
    assert!(requests.iter().all(|r| {
        r.rejected
            .as_deref()
            .unwrap()
            .starts_with("context_length_exceeded:")
            && r.step_index.is_none()
    }));
    assert_eq!(mock.remaining_steps(), 2);

    // One token short of the request still refuses it; exactly its size fits,
    // and the usage reported is the very estimate the window was checked with.
    mock.set_context_window(Some(chat_tokens - 1));
    assert_eq!(post_chat_text(&mock, &chat_body).await.0, 400);
    mock.set_context_window(Some(chat_tokens));
    let (status, body) = post_chat_text(&mock, &chat_body).await;
    assert_eq!(status, 200);
    let usage = chunks(&body).last().unwrap()["usage"].clone();
    assert_eq!(usage["prompt_tokens"], chat_tokens);

    mock.set_context_window(Some(responses_tokens));
    let (status, body) = post_text(&mock, &responses_body).await;
    assert_eq!(status, 200);
    let completed = parse_sse(&body).last().unwrap().json();
    assert_eq!(
        completed["response"]["usage"]["input_tokens"],
        responses_tokens
    );

    mock.set_context_window(None);
    let accepted: Vec<u64> = mock
        .requests()
        .iter()
        .filter(|r| r.step_index.is_some())
        .map(|r| r.input_tokens)
        .collect();
    assert_eq!(accepted, [chat_tokens, responses_tokens]);
}

#[tokio::test]
async fn a_chat_history_is_recorded_as_responses_input() {
    let mock = MockModel::start(Script::new(vec![Step::text("ok"), Step::text("ok")]))
        .await
        .unwrap();
    let mut assistant = assistant_calls(&["call_a", "call_b"]);
    assistant["content"] = json!("Let me look.");
    let messages = vec![
        json!({"role": "system", "content": "You are terse."}),
        json!({"role": "user", "content": [{"type": "text", "text": "list "}, {"type": "text", "text": "files"}]}),
        assistant,
        tool_message("call_a"),
        tool_message("call_b"),
        json!({"role": "assistant", "content": "Two files."}),
        json!({"role": "developer", "content": "Be brief."}),
        user_message("thanks"),
    ];
    let mut body = chat_request(messages);
    body["tools"] = json!([
        {"type": "function", "function": {"name": "shell", "parameters": {}}},
        {"type": "function", "function": {"name": "read"}},
    ]);
    let (status, _) = post_chat_text(&mock, &body).await;
    assert_eq!(status, 200);

    let mut responses_body = request(vec![user("hi")]);
    responses_body["instructions"] = json!("You are terse.");
    responses_body["tools"] =
        json!([{"type": "function", "name": "shell", "parameters": {}}, {"type": "web_search"}]);
    post_text(&mock, &responses_body).await;

    let requests = mock.wait_for_requests(2, DEADLINE).await.unwrap();
    let chat = &requests[0];
    assert_eq!(chat.wire(), "chat");
    assert_eq!(chat.instructions().as_deref(), Some("You are terse."));
    assert_eq!(chat.tool_names(), ["shell", "read"]);
    let arguments = "{\"command\":\"ls\"}";
    assert_eq!(
        chat.input(),
        [
            user("list files"),
            json!({"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": "Let me look."}]}),
            json!({"type": "function_call", "name": "shell", "arguments": arguments, "call_id": "call_a"}),
            json!({"type": "function_call", "name": "shell", "arguments": arguments, "call_id": "call_b"}),
            json!({"type": "function_call_output", "call_id": "call_a", "output": "a\nb"}),
            json!({"type": "function_call_output", "call_id": "call_b", "output": "a\nb"}),
            json!({"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": "Two files."}]}),
            json!({"type": "message", "role": "developer",
                "content": [{"type": "input_text", "text": "Be brief."}]}),
            user("thanks"),
        ]
    );

    let responses = &requests[1];
    assert_eq!(responses.wire(), "responses");
    assert_eq!(responses.instructions().as_deref(), Some("You are terse."));
    assert_eq!(responses.tool_names(), ["shell"]);
    assert_eq!(responses.input(), [user("hi")]);
}

#[tokio::test]
async fn model_entries_are_listed_as_given() {
    let mock = MockModel::start(Script::new(vec![])).await.unwrap();
    let url = format!("{}/models", mock.base_url());

    mock.serve_model_entries(vec![json!({"id": "m", "context_length": 8192})]);
    let listed: Value = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed,
        json!({"object": "list", "data": [{"id": "m", "context_length": 8192}]})
    );

    mock.serve_models(vec!["a".into()]);
    let listed: Value = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["data"],
        json!([{"id": "a", "object": "model", "created": 0, "owned_by": "tiller-mock-model"}])
    );
    assert!(mock.requests().is_empty());
}
