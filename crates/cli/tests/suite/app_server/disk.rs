//! A full disk over the app-server: `turn/start` is answered with an error
//! when the turn's start cannot be saved, a turn whose end cannot be saved
//! ends `failed` with the reason, a queue change that cannot be saved is
//! refused, and once the disk has room again the thread goes on with a
//! rollout that loses nothing.

use serde_json::json;
use tiller_mock_model::Step;

use super::support::{Fixture, shell, text_input};
use crate::suite::durability::rollout_seen_by;
use crate::suite::support::{assert_one_terminal_per_turn_in_rollout, assert_valid_history};

#[tokio::test]
async fn a_full_disk_fails_the_turn_and_refuses_the_next_start_until_there_is_room() {
    let fixture = Fixture::new(vec![
        shell(
            "call_fill",
            // Its output (30 kB) needs more room than the rollout's last page has.
            "head -c 8000000 /dev/zero > \"$TILLER_HOME/sessions/fill\" 2>/dev/null; \
             head -c 30000 /dev/zero | tr '\\0' x",
        ),
        Step::text("the disk is full"),
        Step::text("saved again"),
    ])
    .await;
    let mut server = fixture.spawn_on_small_disk(512, false);
    server.initialize().await;
    let thread = server.start_thread(&fixture.scratch).await;

    let turn = server.start_turn(&thread, "fill the disk", None).await;
    let completed = server.wait_completed(&turn).await;
    assert_eq!(completed["turn"]["status"], "failed", "{completed}");
    let message = completed["turn"]["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("could not save the session") && message.contains("No space left"),
        "{message}"
    );

    // The next turn cannot be saved: refused, with the reason, and nothing runs.
    let error = server
        .call_err(
            "turn/start",
            json!({"threadId": thread, "input": [text_input("refused")]}),
        )
        .await;
    let refused = error["message"].as_str().unwrap();
    assert!(
        refused.contains("No space left") && refused.contains("not started"),
        "{error}"
    );
    let queue = server
        .call_err(
            "thread/queue/add",
            json!({"threadId": thread, "input": [text_input("queued")]}),
        )
        .await;
    assert!(
        queue["message"].as_str().unwrap().contains("No space left"),
        "{queue}"
    );
    let listed = server
        .call("thread/queue/list", json!({"threadId": thread}))
        .await;
    assert_eq!(listed["data"], json!([]), "a refused add was queued");

    // Room again: the thread goes on, and the file has every line, whole.
    let root = format!("/proc/{}/root", server.pid());
    let fill = fixture.scratch.home().join("sessions/fill");
    std::fs::remove_file(format!("{root}{}", fill.display())).unwrap();
    let turn = server.start_turn(&thread, "after", None).await;
    let completed = server.wait_completed(&turn).await;
    assert_eq!(completed["turn"]["status"], "completed", "{completed}");

    let lines = rollout_seen_by(server.pid(), &fixture.scratch, &thread);
    assert_valid_history(&lines);
    assert_one_terminal_per_turn_in_rollout(&lines);
    let failed: Vec<_> = lines
        .iter()
        .filter(|l| l["payload"]["type"] == "turn_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{lines:#?}");
    assert!(
        failed[0]["payload"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("No space left")
    );
    assert!(
        !lines.iter().any(|l| l.to_string().contains("refused")),
        "the refused turn's input reached the file"
    );
    let requests = fixture.requests();
    assert_eq!(requests.len(), 3, "a refused turn reached the model");
    server.close().await.assert_success();
    fixture.finish().await;
}

#[tokio::test]
async fn thread_start_on_a_full_disk_is_an_error_and_the_server_keeps_serving() {
    let fixture = Fixture::new(vec![]).await;
    let mut server = fixture.spawn_on_small_disk(256, true);
    server.initialize().await;
    let error = server
        .call_err(
            "thread/start",
            json!({"cwd": fixture.scratch.work().to_str().unwrap()}),
        )
        .await;
    assert!(
        error["message"].as_str().unwrap().contains("No space left"),
        "{error}"
    );
    let again = server
        .call_err(
            "thread/start",
            json!({"cwd": fixture.scratch.work().to_str().unwrap()}),
        )
        .await;
    assert!(again["message"].as_str().unwrap().contains("No space left"));
    server.close().await.assert_success();
    fixture.finish().await;
}
