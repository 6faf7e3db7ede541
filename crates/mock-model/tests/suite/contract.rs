//! The request contract: what the real API refuses, the mock refuses too.

use serde_json::json;
use tiller_mock_model::{MockModel, Script, Step};

use super::support::{DEADLINE, call, client, output, post_text, request, user};

#[tokio::test]
async fn a_call_without_its_output_is_refused_with_the_api_body() {
    let mock = MockModel::start(Script::new(vec![Step::text("never")]))
        .await
        .unwrap();

    let input = vec![
        user("hi"),
        call("call_1"),
        output("call_1"),
        call("call_2"),
        user("more"),
    ];
    let (status, body) = post_text(&mock, &request(input)).await;

    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"error":{"message":"No tool output found for function call call_2.","type":"invalid_request_error","param":"input","code":null}}"#
    );
}

#[tokio::test]
async fn an_output_without_an_earlier_call_is_refused_with_the_api_body() {
    let mock = MockModel::start(Script::new(vec![Step::text("never")]))
        .await
        .unwrap();

    let input = vec![user("hi"), output("call_x"), call("call_x")];
    let (status, body) = post_text(&mock, &request(input)).await;

    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"error":{"message":"No tool call found for function call output with call_id call_x.","type":"invalid_request_error","param":"input","code":null}}"#
    );
}

#[tokio::test]
async fn refused_requests_are_recorded_and_keep_the_step_for_the_next_request() {
    let mock = MockModel::start(Script::new(vec![Step::text("answer")]))
        .await
        .unwrap();

    let (status, _) = post_text(&mock, &request(vec![user("hi"), call("c")])).await;
    assert_eq!(status, 400);
    let (status, body) = post_text(&mock, &request(vec![user("hi"), call("c"), output("c")])).await;
    assert_eq!(status, 200);
    assert!(body.contains("answer"));

    let requests = mock.wait_for_requests(2, DEADLINE).await.unwrap();
    assert_eq!(
        requests[0].rejected.as_deref(),
        Some("No tool output found for function call c.")
    );
    assert_eq!(requests[0].step_index, None);
    assert_eq!(requests[0].input().len(), 2);
    assert_eq!(requests[1].rejected, None);
    assert_eq!(requests[1].step_index, Some(0));
    assert_eq!(mock.remaining_steps(), 0);
}

#[tokio::test]
async fn bodies_that_are_not_requests_are_refused() {
    let mock = MockModel::start(Script::new(vec![Step::text("never")]))
        .await
        .unwrap();
    let url = format!("{}/responses", mock.base_url());

    let not_json = client().post(&url).body("{oops").send().await.unwrap();
    assert_eq!(not_json.status(), 400);
    let error: serde_json::Value = not_json.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");

    let (status, body) = post_text(&mock, &json!({"input": []})).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("Missing required parameter: 'model'."),
        "{body}"
    );

    let (status, body) = post_text(&mock, &json!({"model": "m", "input": "hello"})).await;
    assert_eq!(status, 400);
    assert!(body.contains("'input'"), "{body}");

    let requests = mock.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests
            .iter()
            .all(|r| r.rejected.is_some() && r.step_index.is_none())
    );
    assert_eq!(requests[0].body, serde_json::Value::Null);
    assert_eq!(requests[0].raw_body, "{oops");
    assert_eq!(mock.remaining_steps(), 1);
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let mock = MockModel::start(Script::new(vec![Step::text("never")]))
        .await
        .unwrap();

    let response = client()
        .post(format!("{}/completions", mock.base_url()))
        .json(&request(vec![user("hi")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(mock.remaining_steps(), 1);
    assert_eq!(mock.requests()[0].path, "/v1/completions");

    let response = client()
        .get(format!("{}/chat/completions", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(mock.remaining_steps(), 1);
}
