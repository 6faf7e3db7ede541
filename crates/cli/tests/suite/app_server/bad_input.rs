//! Bad input is answered with the right JSON-RPC error and the server keeps
//! serving: every test ends with a request that succeeds.

use serde_json::{Value, json};

use super::support::{AppServer, Fixture};

/// Prove the server still serves: a `thread/start` that succeeds, then a clean exit.
async fn still_serving(fixture: &Fixture, mut server: AppServer) {
    server.start_thread(&fixture.scratch).await;
    server.close().await.assert_success();
}

/// Write `line` (a newline is added) and read the error it is answered with.
async fn error_for_line(server: &mut AppServer, line: &[u8]) -> Value {
    let before = server.log.len();
    let mut bytes = line.to_vec();
    bytes.push(b'\n');
    server.write_raw(&bytes).await;
    let at = server
        .wait_for("the error for a bad line", |l| l.get("error").is_some())
        .await;
    assert_eq!(at, before, "lines before the error:\n{}", server.dump());
    server.log[at].clone()
}

async fn initialized() -> (Fixture, AppServer) {
    let fixture = Fixture::new(Vec::new()).await;
    let mut server = fixture.spawn();
    server.initialize().await;
    (fixture, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_that_is_not_json_gets_a_parse_error() {
    let (fixture, mut server) = initialized().await;
    let error = error_for_line(&mut server, b"this is {not json").await;
    assert_eq!(error["error"]["code"], -32700, "{error}");
    assert!(error["id"].is_null(), "{error}");
    still_serving(&fixture, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_that_is_not_an_object_gets_invalid_request() {
    let (fixture, mut server) = initialized().await;
    for line in [&b"[1, 2]"[..], b"42", b"\"initialize\"", b"null"] {
        let error = error_for_line(&mut server, line).await;
        assert_eq!(error["error"]["code"], -32600, "{error}");
    }
    still_serving(&fixture, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_method_gets_method_not_found() {
    let (fixture, mut server) = initialized().await;
    let id = server.send("thread/fly", json!({})).await;
    let error = server.response(id).await.unwrap_err();
    assert_eq!(error["code"], -32601, "{error}");
    still_serving(&fixture, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_of_the_wrong_type_get_invalid_params() {
    let (fixture, mut server) = initialized().await;
    let thread = server.start_thread(&fixture.scratch).await;
    let cases = [
        ("thread/start", json!({"cwd": 12})),
        ("thread/start", json!("not an object")),
        (
            "turn/start",
            json!({"threadId": 5, "input": [{"type": "text", "text": "x"}]}),
        ),
        (
            "turn/start",
            json!({"threadId": thread, "input": "just text"}),
        ),
        (
            "turn/start",
            json!({"threadId": thread, "input": [{"type": "hologram"}]}),
        ),
        (
            "turn/steer",
            json!({"threadId": thread, "expectedTurnId": 7, "input": []}),
        ),
        (
            "turn/interrupt",
            json!({"threadId": thread, "turnId": ["a"]}),
        ),
        (
            "thread/queue/delete",
            json!({"threadId": thread, "queuedSubmissionId": {}}),
        ),
    ];
    for (method, params) in cases {
        let error = server.call_err(method, params.clone()).await;
        assert_eq!(error["code"], -32602, "{method} {params}: {error}");
    }
    still_serving(&fixture, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_required_params_get_invalid_params() {
    let (fixture, mut server) = initialized().await;
    let thread = server.start_thread(&fixture.scratch).await;
    let cases = [
        ("thread/resume", json!({})),
        ("turn/start", json!({"threadId": thread})),
        (
            "turn/start",
            json!({"input": [{"type": "text", "text": "x"}]}),
        ),
        ("turn/start", Value::Null),
        (
            "turn/steer",
            json!({"threadId": thread, "input": [{"type": "text", "text": "x"}]}),
        ),
        ("turn/interrupt", json!({"threadId": thread})),
        ("thread/queue/add", json!({"threadId": thread})),
        ("thread/queue/delete", json!({"threadId": thread})),
    ];
    for (method, params) in cases {
        let error = server.call_err(method, params.clone()).await;
        assert_eq!(error["code"], -32602, "{method} {params}: {error}");
    }
    still_serving(&fixture, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_thread_id_gets_invalid_request() {
    let (fixture, mut server) = initialized().await;
    let unknown = "00000000-0000-7000-8000-000000000000";
    let input = json!([{"type": "text", "text": "x"}]);
    let cases = [
        ("turn/start", json!({"threadId": unknown, "input": input})),
        (
            "turn/steer",
            json!({"threadId": unknown, "expectedTurnId": "t", "input": input}),
        ),
        (
            "turn/interrupt",
            json!({"threadId": unknown, "turnId": "t"}),
        ),
        ("thread/interrupt", json!({"threadId": unknown})),
        ("thread/queue/list", json!({"threadId": unknown})),
        ("thread/resume", json!({"threadId": unknown})),
    ];
    for (method, params) in cases {
        let error = server.call_err(method, params.clone()).await;
        assert_eq!(error["code"], -32600, "{method} {params}: {error}");
    }
    still_serving(&fixture, server).await;
}

/// The peak resident set of `pid`, in bytes.
fn peak_rss(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_over_the_size_limit_gets_an_error_without_being_buffered_whole() {
    let (fixture, mut server) = initialized().await;
    // 11 MiB inside a JSON string, so only the length makes it bad.
    let mut line = br#"{"id":"big","method":"thread/start","params":{"cwd":""#.to_vec();
    line.resize(line.len() + 11 * 1024 * 1024, b'a');
    line.extend_from_slice(br#""}}"#);
    line.push(b'\n');
    let before = server.log.len();
    let written = server.try_write_raw(&line).await;
    let at = server
        .wait_for("the error for the long line", |l| l.get("error").is_some())
        .await;
    assert_eq!(at, before, "{}", server.dump());
    let error = &server.log[at];
    assert!(error["error"]["code"].is_i64(), "{error}");
    assert!(
        written.is_ok(),
        "the server stopped reading stdin in the middle of the long line ({:?}): it \
         quit instead of skipping the line; read so far:\n{}",
        written,
        server.dump()
    );
    let peak = peak_rss(server.pid());
    assert!(
        peak < 64 * 1024 * 1024,
        "the server's peak RSS is {} MiB after an 11 MiB line",
        peak / 1024 / 1024
    );
    still_serving(&fixture, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_before_initialize_get_invalid_request() {
    let fixture = Fixture::new(Vec::new()).await;
    let mut server = fixture.spawn();
    let work = fixture.scratch.work();
    let error = server
        .call_err("thread/start", json!({"cwd": work.to_str().unwrap()}))
        .await;
    assert_eq!(error["code"], -32600, "{error}");
    let error = server
        .call_err("thread/queue/list", json!({"threadId": "t"}))
        .await;
    assert_eq!(error["code"], -32600, "{error}");
    // A notification before `initialize` is not answered at all.
    server.write_raw(b"{\"method\":\"initialized\"}\n").await;
    server.initialize().await;
    let twice = server.call_err("initialize", json!({})).await;
    assert_eq!(twice["code"], -32600, "{twice}");
    still_serving(&fixture, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_to_a_request_the_server_never_sent_is_ignored() {
    let (fixture, mut server) = initialized().await;
    let before = server.log.len();
    server
        .write_raw(
            b"{\"id\":4242,\"result\":{}}\n\
              {\"id\":\"zz\",\"error\":{\"code\":-1,\"message\":\"no\"}}\n\
              {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":null}\n",
        )
        .await;
    let id = server.send("thread/start", json!({})).await;
    let at = server.response_at(id).await;
    assert_eq!(
        at,
        before,
        "the server answered a response:\n{}",
        server.dump()
    );
    still_serving(&fixture, server).await;
}
