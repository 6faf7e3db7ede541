//! `notifications/cancelled` and `tiller-interrupt`.

use std::time::Duration;

use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientNotification, RequestId,
};
use serde_json::json;
use tiller_mock_model::Step;

use super::support::{
    DEADLINE, Harness, Seen, answer, args, pid_alive, read_pids_when_ready, sleep_call, structured,
    text, wait_gone,
};

/// How long a killed tool may take to be gone (the engine's SIGTERM grace is 100 ms).
const GONE: Duration = Duration::from_secs(1);

#[tokio::test]
async fn cancelling_one_session_leaves_the_other_running() {
    let work = tempfile::TempDir::new().unwrap();
    let (pid_a, pid_b) = (work.path().join("a.pid"), work.path().join("b.pid"));
    let mut h = Harness::start(vec![
        sleep_call("call_a", &pid_a),
        sleep_call("call_b", &pid_b),
    ])
    .await;

    let call_a = h.start_call("tiller", h.tiller_args("run a")).await;
    let a = read_pids_when_ready(&pid_a, 1, DEADLINE).await[0];
    let thread_a = thread_of_seen(&mut h).await;
    let call_b = h.start_call("tiller", h.tiller_args("run b")).await;
    let b = read_pids_when_ready(&pid_b, 1, DEADLINE).await[0];
    assert_eq!(h.server.active_calls(), 2);

    call_a.cancel(Some("test".into())).await.unwrap();
    assert!(wait_gone(a, GONE).await, "a's process is killed");
    assert!(pid_alive(b), "b's process keeps running");

    // The cancelled call leaves the map; the other is still in it.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while h.server.active_calls() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cancelled call left the map"
        );
        tokio::task::yield_now().await;
    }

    // Find b's thread from its events, interrupt it, and check both answers.
    let thread_b = next_event(&mut h, |params| params["threadId"] != thread_a.as_str()).await;
    let interrupt = h
        .call("tiller-interrupt", args(json!({"threadId": thread_b})))
        .await;
    assert_eq!(structured(&interrupt)["abortReason"], "interrupted");
    assert!(
        !pid_alive(b),
        "b's process is gone when the interrupt answers"
    );
    let b_result = answer(call_b).await;
    assert_eq!(structured(&b_result)["status"], "interrupted");
    assert_eq!(h.server.active_calls(), 0);
    h.finish().await;
}

#[tokio::test]
async fn a_cancelled_call_leaves_its_thread_usable() {
    let work = tempfile::TempDir::new().unwrap();
    let pid_file = work.path().join("sleep.pid");
    let mut h = Harness::start(vec![
        sleep_call("call_1", &pid_file),
        Step::text("still here"),
    ])
    .await;
    let call = h.start_call("tiller", h.tiller_args("sleep")).await;
    let pid = read_pids_when_ready(&pid_file, 1, DEADLINE).await[0];
    let thread_id = thread_of_seen(&mut h).await;
    call.cancel(None).await.unwrap();
    assert!(wait_gone(pid, GONE).await, "the process is killed");

    let reply = h
        .call(
            "tiller-reply",
            args(json!({"threadId": thread_id, "prompt": "continue"})),
        )
        .await;
    assert_eq!(text(&reply), "still here");
    assert_eq!(structured(&reply)["status"], "completed");
    assert_eq!(h.server.active_calls(), 0);
    h.finish().await;
}

#[tokio::test]
async fn cancel_for_an_unknown_request_id_is_ignored() {
    let work = tempfile::TempDir::new().unwrap();
    let pid_file = work.path().join("sleep.pid");
    let mut h = Harness::start(vec![sleep_call("call_1", &pid_file)]).await;
    let call = h.start_call("tiller", h.tiller_args("sleep")).await;
    let pid = read_pids_when_ready(&pid_file, 1, DEADLINE).await[0];
    let thread_id = thread_of_seen(&mut h).await;

    let unknown = CancelledNotification::new(CancelledNotificationParam::new(
        Some(RequestId::Number(987_654)),
        Some("no such request".into()),
    ));
    h.client
        .send_notification(ClientNotification::CancelledNotification(unknown))
        .await
        .unwrap();
    // A round trip after the notification: the server has read it by then.
    h.client.list_all_tools().await.unwrap();
    assert!(pid_alive(pid), "the running call was not touched");
    assert_eq!(h.server.active_calls(), 1);

    let interrupt = h
        .call("tiller-interrupt", args(json!({"threadId": thread_id})))
        .await;
    assert_eq!(structured(&interrupt)["abortReason"], "interrupted");
    // The call is answered (it was not cancelled), as interrupted.
    assert_eq!(structured(&answer(call).await)["status"], "interrupted");
    h.finish().await;
}

#[tokio::test]
async fn concurrent_interrupts_of_the_same_turn_all_get_the_abort_reason() {
    let work = tempfile::TempDir::new().unwrap();
    let pid_file = work.path().join("sleep.pid");
    let mut h = Harness::start(vec![sleep_call("call_1", &pid_file)]).await;
    let call = h.start_call("tiller", h.tiller_args("sleep")).await;
    let pid = read_pids_when_ready(&pid_file, 1, DEADLINE).await[0];
    let thread_id = thread_of_seen(&mut h).await;
    let first = h
        .start_call("tiller-interrupt", args(json!({"threadId": thread_id})))
        .await;
    let second = h
        .start_call("tiller-interrupt", args(json!({"threadId": thread_id})))
        .await;
    for interrupt in [answer(first).await, answer(second).await] {
        assert_eq!(structured(&interrupt)["abortReason"], "interrupted");
    }
    assert!(!pid_alive(pid));
    assert_eq!(structured(&answer(call).await)["status"], "interrupted");
    h.finish().await;
}

/// The thread id of the first `tiller/event` seen.
async fn thread_of_seen(h: &mut Harness) -> String {
    next_event(h, |_| true).await
}

/// The thread id of the next `tiller/event` that `wanted` accepts.
async fn next_event(h: &mut Harness, wanted: impl Fn(&serde_json::Value) -> bool) -> String {
    loop {
        let seen = tokio::time::timeout(DEADLINE, h.seen.recv())
            .await
            .expect("an event within the deadline")
            .expect("the client is running");
        if let Seen::Event(params) = seen
            && wanted(&params)
        {
            return params["threadId"].as_str().unwrap().to_string();
        }
    }
}
