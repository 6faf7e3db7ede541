//! `thread/resume` of a saved thread: its turns come from the rollout, and the
//! resumed thread goes on (the model gets a history it accepts).

use serde_json::{Value, json};
use tiller_mock_model::{Item, Step};

use super::support::{Fixture, shell, text_input, texts_seen, turn_of};

/// The items of `turn` of type `kind`.
fn items_of<'a>(turn: &'a Value, kind: &str) -> Vec<&'a Value> {
    turn["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_resume_returns_the_saved_turns_and_the_thread_goes_on() {
    let fixture = Fixture::new(vec![
        Step::text("the first answer"),
        shell("call_echo", "echo resumed-output"),
        Step::text("ran it"),
        Step::text("the third answer"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let first = server.start_turn(&thread, "the first question", None).await;
    server.wait_completed(&first).await;
    let second = server.start_turn(&thread, "run a command", None).await;
    server.wait_completed(&second).await;
    server.close().await.assert_success();

    let mut server = fixture.spawn();
    server.initialize().await;
    let resumed = server
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    assert_eq!(resumed["thread"]["id"], thread.as_str());
    let turns = resumed["thread"]["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2, "{resumed:#}");
    assert_eq!(turns[0]["id"], first.as_str(), "{resumed:#}");
    assert_eq!(turns[1]["id"], second.as_str(), "{resumed:#}");
    for turn in turns {
        assert_eq!(turn["status"], "completed", "{turn:#}");
    }
    let users = items_of(&turns[0], "userMessage");
    assert_eq!(users.len(), 1, "{resumed:#}");
    assert_eq!(users[0]["content"][0]["text"], "the first question");
    let agents = items_of(&turns[0], "agentMessage");
    assert_eq!(agents.len(), 1, "{resumed:#}");
    assert_eq!(agents[0]["text"], "the first answer");
    let commands = items_of(&turns[1], "commandExecution");
    assert_eq!(commands.len(), 1, "{resumed:#}");
    assert!(
        commands[0]["command"]
            .as_str()
            .unwrap()
            .contains("echo resumed-output"),
        "{resumed:#}"
    );

    let third = server.start_turn(&thread, "the third question", None).await;
    let done = server.wait_completed(&third).await;
    assert_eq!(done["turn"]["status"], "completed", "{}", server.dump());
    server.close().await.assert_success();

    let requests = fixture.requests();
    assert_eq!(requests.len(), 4);
    let seen = texts_seen(&requests[3]);
    for text in [
        "the first question",
        "the first answer",
        "run a command",
        "the third question",
    ] {
        assert!(
            seen.iter().any(|t| t.contains(text)),
            "the resumed turn's request lacks {text:?}: {seen:?}"
        );
    }
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_spelling_of_a_loaded_threads_id_names_the_same_live_thread() {
    let fixture = Fixture::new(vec![
        shell("call_sleep", "sleep 60"),
        Step::text("never reached"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "sleep", None).await;
    server
        .wait_for("the command to start", |l| {
            l["method"] == "item/started" && l["params"]["item"]["type"] == "commandExecution"
        })
        .await;

    // Upper case and a prefix both find the loaded thread: its running turn
    // is not touched and no second session opens the file.
    for spelling in [thread.to_ascii_uppercase(), thread[..13].to_string()] {
        let resumed = server
            .call("thread/resume", json!({"threadId": spelling}))
            .await;
        assert_eq!(resumed["thread"]["id"], thread.as_str(), "{resumed}");
        assert_ne!(resumed["thread"]["status"]["type"], "idle", "{resumed}");
    }
    assert!(
        server.notifications("turn/completed").is_empty(),
        "a resume ended the running turn:\n{}",
        server.dump()
    );
    // An upper-case id works for the thread's requests too.
    server
        .call(
            "turn/interrupt",
            json!({"threadId": thread.to_ascii_uppercase(), "turnId": turn}),
        )
        .await;
    let completed = server.wait_completed(&turn).await;
    assert_eq!(completed["turn"]["status"], "interrupted");

    // A second server cannot open the thread while the first has it.
    let mut second = fixture.spawn();
    second.initialize().await;
    let error = second
        .call_err("thread/resume", json!({"threadId": thread}))
        .await;
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "in use by another tiller process (pid {})",
            server.pid()
        )),
        "{error}"
    );
    second.close().await.assert_success();
    server.close().await.assert_success();
    assert_eq!(
        fixture.scratch.rollout_files().len(),
        1,
        "one thread, one rollout"
    );
    fixture.finish().await;
}

#[tokio::test]
async fn a_fifo_named_like_a_rollout_is_refused_and_the_server_still_stops_on_sigterm() {
    let fixture = Fixture::new(vec![]).await;
    let dir = fixture.scratch.home().join("sessions/2026/01/02");
    std::fs::create_dir_all(&dir).unwrap();
    let id = "01a1fdef-1111-7000-8000-000000000001";
    let fifo = dir.join(format!("rollout-2026-01-02T03-04-05-{id}.jsonl"));
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let mut server = fixture.spawn();
    server.initialize().await;
    let error = server
        .call_err("thread/resume", json!({"threadId": id}))
        .await;
    // Only regular files are sessions: the FIFO is not one.
    assert!(error["message"].as_str().unwrap().contains(id), "{error}");
    // Still serving, and still listening to signals.
    server
        .call_err("thread/resume", json!({"threadId": id}))
        .await;
    server.signal(nix::sys::signal::Signal::SIGTERM);
    server
        .wait_exit(super::support::EXIT_LIMIT)
        .await
        .assert_success();
    fixture.finish().await;
}

/// What the live server showed of `turn`: every item as its `item/completed`
/// gave it, in the order the items started.
fn live_items(log: &[Value], turn: &str) -> Vec<Value> {
    let of_turn = |method: &str| {
        log.iter()
            .filter(move |l| l["method"] == method && turn_of(l) == Some(turn))
            .map(|l| l["params"]["item"].clone())
            .collect::<Vec<Value>>()
    };
    let completed = of_turn("item/completed");
    of_turn("item/started")
        .iter()
        .map(|started| {
            completed
                .iter()
                .find(|done| done["id"] == started["id"])
                .unwrap_or_else(|| panic!("item {} never completed", started["id"]))
                .clone()
        })
        .collect()
}

/// `thread/resume` in a new server shows every turn exactly as the live
/// server did: the same items, in the same order, with the same ids and text,
/// also for turns cut short: a steered and then interrupted stream (its two
/// partial messages and the steer), and a command killed by an interrupt. The
/// marker the model reads after an interrupt is never shown as a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_thread_shows_the_same_items_ids_and_text_as_the_live_one() {
    let slow = |prefix: &str| {
        let deltas: Vec<String> = (0..400).map(|i| format!("{prefix}{i} ")).collect();
        Step::response(vec![Item::text_deltas(deltas)]).with_delta_delay(10)
    };
    let fixture = Fixture::new(vec![
        Step::response(vec![
            Item::reasoning("thinking it over"),
            Item::text("the first answer"),
        ]),
        shell("call_echo", "echo from-the-tool"),
        Step::text("ran it"),
        slow("a"),
        slow("b"),
        shell("call_sleep", "sleep 60"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let mut turns = Vec::new();

    let first = server
        .start_turn(&thread, "the first question", Some("client-1"))
        .await;
    server.wait_completed(&first).await;
    turns.push(first);

    let second = server.start_turn(&thread, "run a command", None).await;
    server.wait_completed(&second).await;
    turns.push(second);

    // Steered while it streams, then interrupted while the second stream runs.
    let third = server.start_turn(&thread, "write a lot", None).await;
    let at = server
        .wait_turn_event("item/agentMessage/delta", &third)
        .await;
    let cut_item = server.log[at]["params"]["itemId"].clone();
    server
        .call(
            "turn/steer",
            json!({"threadId": thread, "expectedTurnId": third,
                   "input": [text_input("be brief")], "clientUserMessageId": "steer-1"}),
        )
        .await;
    let turn = third.clone();
    server
        .wait_for("a delta of the steered stream", move |l| {
            l["method"] == "item/agentMessage/delta"
                && turn_of(l) == Some(turn.as_str())
                && l["params"]["itemId"] != cut_item
        })
        .await;
    server
        .call(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": third}),
        )
        .await;
    server.wait_completed(&third).await;
    turns.push(third);

    // A command killed by the interrupt.
    let fourth = server.start_turn(&thread, "sleep a while", None).await;
    server.wait_item_started(&fourth, "commandExecution").await;
    server
        .call(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": fourth}),
        )
        .await;
    server.wait_completed(&fourth).await;
    turns.push(fourth);
    let live_log = server.close().await.log;

    let mut server = fixture.spawn();
    server.initialize().await;
    let resumed = server
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    let resumed_turns = resumed["thread"]["turns"].as_array().unwrap();
    let ids: Vec<&str> = resumed_turns
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, turns, "{resumed:#}");
    let statuses: Vec<&str> = resumed_turns
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["completed", "completed", "interrupted", "interrupted"]
    );
    for (turn, saved) in turns.iter().zip(resumed_turns) {
        let live = live_items(&live_log, turn);
        assert!(!live.is_empty(), "turn {turn} showed no items");
        assert_eq!(
            saved["items"].as_array().unwrap(),
            &live,
            "turn {turn}: the resumed items differ from the live ones"
        );
    }

    // What the cut-short turns hold, as a person saw it.
    let kinds = |turn: &Value| -> Vec<String> {
        turn["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        kinds(&resumed_turns[0]),
        ["userMessage", "reasoning", "agentMessage"]
    );
    assert_eq!(resumed_turns[0]["items"][0]["clientId"], "client-1");
    assert_eq!(
        kinds(&resumed_turns[2]),
        ["userMessage", "agentMessage", "userMessage", "agentMessage"]
    );
    let steered = &resumed_turns[2]["items"];
    assert_eq!(steered[2]["content"][0]["text"], "be brief");
    assert_eq!(steered[2]["clientId"], "steer-1");
    for partial in [&steered[1], &steered[3]] {
        let text = partial["text"].as_str().unwrap();
        assert!(!text.is_empty(), "a partial message lost its text");
    }
    let killed = items_of(&resumed_turns[3], "commandExecution");
    assert_eq!(killed.len(), 1, "{resumed:#}");
    assert_ne!(killed[0]["status"], "inProgress", "{resumed:#}");
    // Only what a person sent is shown as a user message.
    let sent = [
        "the first question",
        "run a command",
        "write a lot",
        "be brief",
        "sleep a while",
    ];
    for turn in resumed_turns {
        for user in items_of(turn, "userMessage") {
            let text = user["content"][0]["text"].as_str().unwrap();
            assert!(sent.contains(&text), "shown as a user message: {text:?}");
        }
    }
    server.close().await.assert_success();
    fixture.finish().await;
}
