//! Injected faults: drops, stalls, malformed lines, hangs, and shutdown.

use std::time::{Duration, Instant};

use tiller_mock_model::{MockModel, Script, Step};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::support::{
    DEADLINE, deltas, parse_sse, post, post_text, read_until_end_or_error, request, user,
};

/// Send one request over a raw socket and read until the server closes it.
async fn raw_exchange(mock: &MockModel, body: &serde_json::Value) -> String {
    let mut stream = TcpStream::connect(mock.local_addr()).await.unwrap();
    let body = body.to_string();
    let head = format!(
        "POST /v1/responses HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    // A reset is as good as an orderly close here: both end the body early.
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut received))
        .await
        .unwrap();
    String::from_utf8(received).unwrap()
}

#[tokio::test]
async fn a_drop_gives_the_client_a_body_error_after_the_first_deltas() {
    let mock = MockModel::start(Script::new(vec![
        Step::text("one two three four").with_drop_after(2),
    ]))
    .await
    .unwrap();

    let response = post(&mock, &request(vec![user("go")])).await;
    assert_eq!(response.status(), 200);
    let (body, error) = read_until_end_or_error(response).await;

    assert!(error.is_some(), "the body should fail, got: {body}");
    let events = parse_sse(&body);
    assert_eq!(deltas(&events, "response.output_text.delta"), "one two ");
    assert!(!body.contains("response.completed"));
}

#[tokio::test]
async fn a_drop_closes_the_socket_before_the_chunked_body_ends() {
    let mock = MockModel::start(Script::new(vec![
        Step::text("one two three").with_drop_after(1),
    ]))
    .await
    .unwrap();

    let received = raw_exchange(&mock, &request(vec![user("go")])).await;

    assert!(received.starts_with("HTTP/1.1 200 OK\r\n"), "{received}");
    assert!(
        received
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
    );
    assert!(received.contains("response.created"));
    assert_eq!(
        received.matches("response.output_text.delta").count(),
        2,
        "event line and type"
    );
    assert!(!received.contains("response.completed"));
    assert!(
        !received.ends_with("0\r\n\r\n"),
        "the chunked body must not be terminated"
    );
}

#[tokio::test]
async fn a_drop_after_zero_deltas_comes_right_after_created() {
    let mock = MockModel::start(Script::new(vec![
        Step::text("never sent").with_drop_after(0),
    ]))
    .await
    .unwrap();

    let (body, error) =
        read_until_end_or_error(post(&mock, &request(vec![user("go")])).await).await;
    assert!(error.is_some());
    let kinds: Vec<String> = parse_sse(&body)
        .iter()
        .map(|e| e.kind().to_owned())
        .collect();
    assert_eq!(kinds, ["response.created"]);
}

#[tokio::test]
async fn a_malformed_line_appears_and_the_stream_carries_on() {
    let mock = MockModel::start(Script::new(vec![
        Step::text("a b c").with_malformed_after(1),
    ]))
    .await
    .unwrap();

    let (status, body) = post_text(&mock, &request(vec![user("go")])).await;
    assert_eq!(status, 200);
    let first_delta = body.find("\"delta\":\"a \"").unwrap();
    let malformed = body.find("\n\ndata: {this is not json\n\n").unwrap();
    let second_delta = body.find("\"delta\":\"b \"").unwrap();
    assert!(first_delta < malformed && malformed < second_delta);
    assert!(body.ends_with("\n\n") && body.contains("response.completed"));
}

#[tokio::test]
async fn a_stall_pauses_then_the_response_completes() {
    let mock = MockModel::start(Script::new(vec![Step::text("a b").with_stall(1, 150)]))
        .await
        .unwrap();

    let started = Instant::now();
    let (_, body) = post_text(&mock, &request(vec![user("go")])).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(
        deltas(&parse_sse(&body), "response.output_text.delta"),
        "a b"
    );
    assert!(body.contains("response.completed"));
}

#[tokio::test]
async fn hang_after_deltas_sends_the_first_deltas_then_nothing() {
    let mock = MockModel::start(Script::new(vec![Step::text("a b c").with_hang_after(1)]))
        .await
        .unwrap();

    let mut response = post(&mock, &request(vec![user("go")])).await;
    let mut body = Vec::new();
    while !String::from_utf8_lossy(&body).contains("response.output_text.delta") {
        let chunk = tokio::time::timeout(DEADLINE, response.chunk())
            .await
            .unwrap()
            .unwrap();
        body.extend_from_slice(&chunk.unwrap());
    }
    // Asserting silence needs a bounded wait; nothing else can be awaited.
    let next = tokio::time::timeout(Duration::from_millis(200), response.chunk()).await;
    assert!(next.is_err(), "the stream should stay silent");
}

#[tokio::test]
async fn shutdown_ends_hanging_responses() {
    let mock = MockModel::start(Script::new(vec![
        Step::hang(),
        Step::text("a b").with_hang_after(1),
    ]))
    .await
    .unwrap();

    let url = format!("{}/responses", mock.base_url());
    let client = super::support::client();
    let hanging_head = tokio::spawn(client.post(&url).json(&request(vec![user("1")])).send());
    mock.wait_for_requests(1, DEADLINE).await.unwrap();
    let mut hanging_body = post(&mock, &request(vec![user("2")])).await;

    tokio::time::timeout(DEADLINE, mock.shutdown())
        .await
        .unwrap();

    let head = tokio::time::timeout(DEADLINE, hanging_head)
        .await
        .unwrap()
        .unwrap();
    assert!(head.is_err(), "the unanswered request should fail");
    let end = async {
        loop {
            match hanging_body.chunk().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    };
    let ended = tokio::time::timeout(DEADLINE, end).await.unwrap();
    assert!(ended.is_err(), "the silent body should fail");
}

#[tokio::test]
async fn dropping_the_mock_ends_hanging_responses() {
    let mock = MockModel::start(Script::new(vec![Step::hang()]))
        .await
        .unwrap();
    let url = format!("{}/responses", mock.base_url());
    let hanging = tokio::spawn(
        super::support::client()
            .post(&url)
            .json(&request(vec![user("1")]))
            .send(),
    );
    mock.wait_for_requests(1, DEADLINE).await.unwrap();

    drop(mock);

    let result = tokio::time::timeout(DEADLINE, hanging)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_err(), "the unanswered request should fail");
}
