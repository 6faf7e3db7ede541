//! HTTP errors, `response.failed`, and running out of script.

use serde_json::json;
use tiller_mock_model::{MockModel, Script, Step};

use super::support::{parse_sse, post, post_text, request, user};

#[tokio::test]
async fn an_http_error_carries_its_status_headers_and_an_api_style_body() {
    let mock = MockModel::start(Script::new(vec![
        Step::http_status(429).with_header("Retry-After", "1"),
    ]))
    .await
    .unwrap();

    let response = post(&mock, &request(vec![user("hi")])).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn an_http_error_body_is_sent_as_given() {
    let mock = MockModel::start(Script::new(vec![
        Step::http_error(503, "upstream unavailable"),
        Step::http_error(500, json!({"error": {"message": "custom"}})),
    ]))
    .await
    .unwrap();

    let response = post(&mock, &request(vec![user("hi")])).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(response.text().await.unwrap(), "upstream unavailable");

    let (status, body) = post_text(&mock, &request(vec![user("hi")])).await;
    assert_eq!(status, 500);
    assert_eq!(body, r#"{"error":{"message":"custom"}}"#);
}

#[tokio::test]
async fn a_failed_step_streams_created_then_failed() {
    let mock = MockModel::start(Script::new(vec![Step::failed("overloaded")]))
        .await
        .unwrap();

    let (status, body) = post_text(&mock, &request(vec![user("hi")])).await;
    assert_eq!(status, 200);
    let events = parse_sse(&body);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, ["response.created", "response.failed"]);
    let failed = events[1].json();
    assert_eq!(failed["sequence_number"], 1);
    assert_eq!(failed["response"]["status"], "failed");
    assert_eq!(
        failed["response"]["error"],
        json!({"code": "server_error", "message": "overloaded"})
    );
}

#[tokio::test]
async fn an_exhausted_script_answers_400_until_a_step_is_pushed() {
    let mock = MockModel::start(Script::new(vec![Step::text("only")]))
        .await
        .unwrap();

    let (status, _) = post_text(&mock, &request(vec![user("1")])).await;
    assert_eq!(status, 200);
    let (status, body) = post_text(&mock, &request(vec![user("2")])).await;
    assert_eq!(status, 400);
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        error["error"]["message"],
        "tiller-mock-model: the script has no step for request 2"
    );
    assert_eq!(error["error"]["type"], "invalid_request_error");

    mock.push_step(Step::text("pushed"));
    let (status, body) = post_text(&mock, &request(vec![user("3")])).await;
    assert_eq!(status, 200);
    assert!(body.contains("pushed"));

    let requests = mock.requests();
    assert_eq!(
        requests.iter().map(|r| r.step_index).collect::<Vec<_>>(),
        [Some(0), None, Some(1)]
    );
}
