//! What the mock records and how tests wait for it.

use std::time::{Duration, Instant};

use tiller_mock_model::{MockModel, Script, Step, WaitTimeout};

use super::support::{DEADLINE, client, post_text, request, user};

#[tokio::test]
async fn wait_for_requests_wakes_when_the_request_arrives_not_at_its_timeout() {
    let mock = MockModel::start(Script::new(vec![Step::text("hi")]))
        .await
        .unwrap();
    let url = format!("{}/responses", mock.base_url());

    let started = Instant::now();
    let waiting = mock.wait_for_requests(1, Duration::from_secs(600));
    let sending = async {
        client()
            .post(&url)
            .json(&request(vec![user("hello")]))
            .send()
            .await
            .unwrap()
    };
    let (requests, _) = tokio::time::timeout(DEADLINE, async { tokio::join!(waiting, sending) })
        .await
        .unwrap();

    let requests = requests.unwrap();
    assert_eq!(requests.len(), 1);
    assert!(started.elapsed() < DEADLINE);
}

#[tokio::test]
async fn wait_for_requests_reports_how_many_arrived_when_it_times_out() {
    let mock = MockModel::start(Script::new(vec![Step::text("hi")]))
        .await
        .unwrap();
    post_text(&mock, &request(vec![user("one")])).await;

    let error = mock
        .wait_for_requests(2, Duration::from_millis(20))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        WaitTimeout {
            wanted: 2,
            received: 1,
            timeout: Duration::from_millis(20)
        }
    );
}

#[tokio::test]
async fn a_recorded_request_keeps_body_headers_path_and_timing() {
    let mock = MockModel::start(Script::new(vec![Step::text("hi")]))
        .await
        .unwrap();
    let before = Instant::now();

    let response = client()
        .post(format!("{}/responses", mock.base_url()))
        .header("Authorization", "Bearer test-key")
        .json(&request(vec![user("hello")]))
        .send()
        .await
        .unwrap();
    response.text().await.unwrap();

    let requests = mock.wait_for_requests(1, DEADLINE).await.unwrap();
    let recorded = &requests[0];
    assert_eq!(recorded.path, "/v1/responses");
    assert_eq!(recorded.method, "POST");
    assert_eq!(recorded.header("authorization"), Some("Bearer test-key"));
    assert!(
        recorded
            .headers
            .iter()
            .any(|(name, _)| name == "content-type")
    );
    assert_eq!(recorded.body["model"], "test-model");
    assert_eq!(recorded.input(), [user("hello")]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&recorded.raw_body).unwrap(),
        recorded.body
    );
    assert!(recorded.arrived >= before);
    assert!(recorded.since_start > Duration::ZERO);
    assert_eq!(recorded.step_index, Some(0));
}
