//! What the random schedules found, pinned where it can be without a race:
//! a turn answered just before a SIGKILL is resumed with its input; a
//! `thread/queue/add` repeated after a restart is answered with its entry
//! while that is queued, and queues a new one once it was deleted; and a process
//! that died between starting a queued turn and saving the emptied queue does
//! not run those messages again.

use serde_json::{Value, json};
use tiller_mock_model::{Item, Step};

use crate::suite::app_server::support::{AppServer, Fixture, shell, text_input, times_seen};

async fn resume(fixture: &Fixture, thread: &str) -> (AppServer, Value) {
    let mut server = fixture.spawn();
    server.initialize().await;
    let resumed = server
        .call(
            "thread/resume",
            json!({"threadId": thread, "approvalPolicy": "never"}),
        )
        .await;
    (server, resumed)
}

fn queue_add_params(thread: &str, client_id: &str, text: &str) -> Value {
    json!({"threadId": thread, "clientUserMessageId": client_id, "input": [text_input(text)]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_answered_just_before_a_kill_is_resumed_with_its_input() {
    let fixture = Fixture::new(vec![shell("call_sleep", "sleep 60")]).await;
    let (mut server, thread) = fixture.started().await;
    let turn = server
        .start_turn(&thread, "keep this turn", Some("m-1"))
        .await;
    // At once: nothing else of the turn is waited for.
    server.kill().await;

    let (mut server, resumed) = resume(&fixture, &thread).await;
    let turns = resumed["thread"]["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 1, "{resumed:#}");
    assert_eq!(turns[0]["id"], turn.as_str(), "{resumed:#}");
    assert_eq!(turns[0]["status"], "interrupted", "{resumed:#}");
    let input: Vec<&Value> = turns[0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "userMessage")
        .collect();
    assert_eq!(input.len(), 1, "{resumed:#}");
    assert_eq!(input[0]["content"][0]["text"], "keep this turn");
    // The client resends what it may not have seen answered: the same turn.
    let again = server
        .call(
            "turn/start",
            json!({"threadId": thread, "clientUserMessageId": "m-1",
                   "input": [text_input("keep this turn")]}),
        )
        .await;
    assert_eq!(again["turn"]["id"], turn.as_str());
    server.barrier(&thread).await;
    assert!(server.notifications("turn/started").is_empty());
    server.close().await.assert_success();
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_add_repeated_after_a_restart_gets_its_entry_while_it_is_queued() {
    let fixture = Fixture::new(vec![shell("call_sleep", "sleep 60")]).await;
    let (mut server, thread) = fixture.started().await;
    server.start_turn(&thread, "sleep", None).await;
    let kept = server
        .call(
            "thread/queue/add",
            queue_add_params(&thread, "q-kept", "kept"),
        )
        .await;
    // Queued, then deleted: its id is free again.
    let deleted = server
        .call(
            "thread/queue/add",
            queue_add_params(&thread, "q-deleted", "deleted"),
        )
        .await;
    let result = server
        .call(
            "thread/queue/delete",
            json!({"threadId": thread, "queuedSubmissionId": deleted["queuedSubmission"]["id"]}),
        )
        .await;
    assert_eq!(result, json!({"deleted": true}));
    server.kill().await;

    let (mut server, _) = resume(&fixture, &thread).await;
    let again = server
        .call(
            "thread/queue/add",
            queue_add_params(&thread, "q-kept", "kept"),
        )
        .await;
    assert_eq!(again, kept, "the queued entry, as first answered");
    let readded = server
        .call(
            "thread/queue/add",
            queue_add_params(&thread, "q-deleted", "deleted"),
        )
        .await;
    assert_ne!(
        readded["queuedSubmission"]["id"], deleted["queuedSubmission"]["id"],
        "a deleted entry is not brought back"
    );
    let listed = server
        .call("thread/queue/list", json!({"threadId": thread}))
        .await;
    assert_eq!(
        listed,
        json!({"data": [kept["queuedSubmission"], readded["queuedSubmission"]], "nextCursor": null})
    );
    // The resumed thread is idle and its queue waits (nothing starts by itself).
    server.barrier(&thread).await;
    assert!(server.notifications("turn/started").is_empty());
    server.close().await.assert_success();
    assert_eq!(fixture.requests().len(), 1);
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_turn_cut_off_before_the_queue_was_saved_does_not_run_its_messages_again() {
    let words: Vec<String> = (0..20).map(|i| format!("w{i} ")).collect();
    let slow = Step::response(vec![Item::text_deltas(words)]).with_delta_delay(25);
    let fixture = Fixture::new(vec![slow, Step::text("queued"), Step::text("after")]).await;
    let (mut server, thread) = fixture.started().await;
    let first = server.start_turn(&thread, "first", None).await;
    server
        .call(
            "thread/queue/add",
            queue_add_params(&thread, "q-1", "queued once"),
        )
        .await;
    server.wait_completed(&first).await;
    let started = server
        .wait_for("the queued turn", |l| {
            l["method"] == "turn/started" && l["params"]["turn"]["id"] != first.as_str()
        })
        .await;
    let queued = server.log[started]["params"]["turn"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.wait_completed(&queued).await;
    server.close().await.assert_success();

    // The rollout as a SIGKILL right after the queued turn's start left it:
    // its input is there, the emptied queue is not. (The queue is saved once
    // the turn has started; a fast turn may run on before it is.)
    let path = fixture.scratch.rollout_of(&thread);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let input = lines
        .iter()
        .position(|l| l.contains(r#""type":"user_message""#) && l.contains("queued once"))
        .unwrap();
    let emptied = lines
        .iter()
        .rposition(|l| l.contains(r#""type":"queue""#))
        .unwrap();
    assert!(emptied > input, "{text}");
    std::fs::write(&path, format!("{}\n", lines[..=input].join("\n"))).unwrap();

    let (mut server, resumed) = resume(&fixture, &thread).await;
    let turns = resumed["thread"]["turns"].as_array().unwrap();
    assert_eq!(turns.last().unwrap()["id"], queued.as_str(), "{resumed:#}");
    assert_eq!(
        turns.last().unwrap()["status"],
        "interrupted",
        "{resumed:#}"
    );
    let listed = server
        .call("thread/queue/list", json!({"threadId": thread}))
        .await;
    assert_eq!(listed, json!({"data": [], "nextCursor": null}));
    let next = server.start_turn(&thread, "next", None).await;
    let done = server.wait_completed(&next).await;
    assert_eq!(done["turn"]["status"], "completed");
    server.close().await.assert_success();
    let requests = fixture.requests();
    assert_eq!(times_seen(requests.last().unwrap(), "queued once"), 1);
    fixture.finish().await;
}
