//! The ordering guarantees of the wire: responses before the notifications
//! they cause, one `turn/completed` per turn with nothing of the turn after it,
//! every started item completed (also on interrupt), and requests naming the
//! turn `turn/start` just returned accepted at once.

use serde_json::{Value, json};
use tiller_mock_model::{Item, Step};
use tiller_test_support::pid_alive;

use super::support::{
    Fixture, check_protocol, completed_items, positions, shell, text_input, turn_of,
};
use crate::suite::support::{DEADLINE, read_pids_when_ready};

/// A tool that writes its shell's pid and a `sleep 60` child's pid to `pids`.
const SLEEPING_TOOL: &str = "echo $$ > pids; sleep 60 & echo $! >> pids; wait";

/// A tool that prints a number every 10 ms for 10 s.
const COUNTING_TOOL: &str = "for i in $(seq 1000); do echo $i; sleep 0.01; done";

/// A long answer streamed slowly: 200 words, 20 ms apart.
fn slow_text() -> Step {
    let words: Vec<String> = (0..200).map(|i| format!("word{i} ")).collect();
    Step::response(vec![Item::text_deltas(words)]).with_delta_delay(20)
}

/// The reference order on an interrupt: the response `{}` (at `response`),
/// then `thread/status/changed idle`, then `turn/completed interrupted`.
fn assert_interrupt_order(log: &[Value], response: usize, thread: &str, turn: &str) {
    let dump = || {
        log.iter()
            .enumerate()
            .map(|(i, l)| format!("{i:4} {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(log[response]["result"], json!({}), "{}", dump());
    let idle = log
        .iter()
        .enumerate()
        .skip(response + 1)
        .find(|(_, l)| {
            l["method"] == "thread/status/changed"
                && l["params"]["threadId"] == thread
                && l["params"]["status"]["type"] == "idle"
        })
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no idle status after the interrupt:\n{}", dump()));
    let completed = positions(log, "turn/completed", turn);
    assert_eq!(completed.len(), 1, "{}", dump());
    assert!(
        response < idle && idle < completed[0],
        "expected response (line {response}) → idle (line {idle}) → turn/completed \
         (line {}):\n{}",
        completed[0],
        dump()
    );
    assert_eq!(
        log[completed[0]]["params"]["turn"]["status"],
        "interrupted",
        "{}",
        dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_start_response_comes_before_any_notification_of_its_turn() {
    let fixture = Fixture::new((0..5).map(|i| Step::text(format!("answer {i}"))).collect()).await;
    let (mut server, thread) = fixture.started().await;
    for i in 0..5 {
        let id = server
            .send(
                "turn/start",
                json!({"threadId": thread, "input": [text_input(&format!("question {i}"))]}),
            )
            .await;
        let at = server.response_at(id).await;
        let turn = server.log[at]["result"]["turn"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(server.log[at]["result"]["turn"]["status"], "inProgress");
        server.wait_completed(&turn).await;
        let first = server
            .log
            .iter()
            .position(|l| l.get("method").is_some() && turn_of(l) == Some(turn.as_str()))
            .unwrap();
        assert!(at < first, "{}", server.dump());
    }
    server.close().await.assert_success();
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_started_turn_completes_exactly_once_however_it_ends() {
    let fixture = Fixture::new(vec![
        Step::text("done"),
        Step::http_status(400),
        shell("call_sleep", "sleep 60"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let completed = server.start_turn(&thread, "complete", None).await;
    server.wait_completed(&completed).await;
    let failed = server.start_turn(&thread, "fail", None).await;
    server.wait_completed(&failed).await;
    let interrupted = server.start_turn(&thread, "interrupt", None).await;
    server
        .wait_item_started(&interrupted, "commandExecution")
        .await;
    server
        .call("thread/interrupt", json!({"threadId": thread}))
        .await;
    server.wait_completed(&interrupted).await;
    server.barrier(&thread).await;
    let ended = server.close().await;
    ended.assert_success();
    for (turn, status) in [
        (&completed, "completed"),
        (&failed, "failed"),
        (&interrupted, "interrupted"),
    ] {
        let at = positions(&ended.log, "turn/completed", turn);
        assert_eq!(at.len(), 1);
        assert_eq!(ended.log[at[0]]["params"]["turn"]["status"], status);
    }
    assert_eq!(
        ended
            .log
            .iter()
            .filter(|l| l["method"] == "turn/started")
            .count(),
        3
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_during_a_sleeping_command_completes_its_item_and_kills_it() {
    let fixture = Fixture::new(vec![shell("call_sleep", SLEEPING_TOOL)]).await;
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "sleep", None).await;
    server.wait_item_started(&turn, "commandExecution").await;
    let pids = read_pids_when_ready(&fixture.scratch.work_file("pids"), 2, DEADLINE).await;

    let id = server
        .send(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
        )
        .await;
    let response = server.response_at(id).await;
    server.wait_completed(&turn).await;
    let alive: Vec<i32> = pids.iter().copied().filter(|p| pid_alive(*p)).collect();
    assert!(
        alive.is_empty(),
        "the tool's processes outlived turn/completed: {alive:?}"
    );
    assert_interrupt_order(&server.log, response, &thread, &turn);
    let commands = completed_items(&server.log, &turn, "commandExecution");
    assert_eq!(commands.len(), 1, "{}", server.dump());
    assert_ne!(commands[0]["status"], "inProgress", "{}", server.dump());
    server.close().await.assert_success();
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_during_streaming_text_completes_the_agent_message() {
    let fixture = Fixture::new(vec![slow_text()]).await;
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "talk", None).await;
    server
        .wait_turn_event("item/agentMessage/delta", &turn)
        .await;
    let id = server
        .send(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
        )
        .await;
    let response = server.response_at(id).await;
    server.wait_completed(&turn).await;
    assert_interrupt_order(&server.log, response, &thread, &turn);
    let messages = completed_items(&server.log, &turn, "agentMessage");
    assert_eq!(messages.len(), 1, "{}", server.dump());
    let text = messages[0]["text"].as_str().unwrap();
    assert!(text.starts_with("word0 "), "{}", server.dump());
    assert!(
        !text.contains("word199"),
        "the whole answer streamed: {text}"
    );
    server.close().await.assert_success();
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_a_turn_follows_its_turn_completed_not_even_a_killed_tool_s_output() {
    let fixture = Fixture::new(vec![
        shell("call_count", COUNTING_TOOL),
        Step::text("second turn"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "count", None).await;
    // Mid-way: some output has streamed.
    for _ in 0..5 {
        server
            .wait_turn_event("item/commandExecution/outputDelta", &turn)
            .await;
    }
    server
        .call(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
        )
        .await;
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "interrupted");
    // Keep reading: a whole second turn, then a round trip.
    let second = server.start_turn(&thread, "again", None).await;
    server.wait_completed(&second).await;
    server.barrier(&thread).await;
    let end = positions(&server.log, "turn/completed", &turn)[0];
    let late: Vec<&Value> = server.log[end + 1..]
        .iter()
        .filter(|l| turn_of(l) == Some(turn.as_str()))
        .collect();
    assert!(late.is_empty(), "after turn/completed: {late:#?}");
    server.close().await.assert_success();
    fixture.finish().await;
}

/// 50 turns that never end by themselves (the model never answers).
fn hanging_turns() -> Vec<Step> {
    (0..200).map(|_| Step::hang()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steer_pipelined_right_after_turn_start_is_never_refused() {
    let fixture = Fixture::new(hanging_turns()).await;
    let (mut server, thread) = fixture.started().await;
    for round in 0..50 {
        let turn = server
            .start_turn(&thread, &format!("round {round}"), None)
            .await;
        let client_id = format!("steer-{round}");
        let (steer, mut lines) = server.request_line(
            "turn/steer",
            json!({"threadId": thread, "expectedTurnId": turn,
                   "input": [text_input(&format!("steer {round}"))],
                   "clientUserMessageId": client_id}),
        );
        let (interrupt, line) = server.request_line(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
        );
        lines.push_str(&line);
        server.write_raw(lines.as_bytes()).await;
        let steered = server.response(steer).await;
        assert_eq!(
            steered,
            Ok(json!({"turnId": turn})),
            "round {round}: the steer was refused:\n{}",
            server.dump()
        );
        let interrupted = server.response(interrupt).await;
        assert_eq!(
            interrupted,
            Ok(json!({})),
            "round {round}:\n{}",
            server.dump()
        );
        let done = server.wait_completed(&turn).await;
        assert_eq!(done["turn"]["status"], "interrupted", "round {round}");
        let steers: Vec<&Value> = completed_items(&server.log, &turn, "userMessage")
            .into_iter()
            .filter(|item| item["clientId"] == client_id.as_str())
            .collect();
        assert_eq!(
            steers.len(),
            1,
            "round {round}: the accepted steer has no userMessage item:\n{}",
            server.dump()
        );
    }
    server.close().await.assert_success();
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_pipelined_right_after_turn_start_is_never_refused() {
    let fixture = Fixture::new(hanging_turns()).await;
    let (mut server, thread) = fixture.started().await;
    for round in 0..50 {
        let turn = server
            .start_turn(&thread, &format!("round {round}"), None)
            .await;
        let (interrupt, mut lines) = server.request_line(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
        );
        let (list, line) = server.request_line("thread/queue/list", json!({"threadId": thread}));
        lines.push_str(&line);
        server.write_raw(lines.as_bytes()).await;
        let interrupted = server.response(interrupt).await;
        assert_eq!(
            interrupted,
            Ok(json!({})),
            "round {round}: the interrupt was refused:\n{}",
            server.dump()
        );
        assert!(server.response(list).await.is_ok());
        let done = server.wait_completed(&turn).await;
        assert_eq!(done["turn"]["status"], "interrupted", "round {round}");
    }
    server.close().await.assert_success();
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steer_is_answered_then_shown_as_a_user_message_then_the_turn_completes_once() {
    let fixture = Fixture::new(vec![
        slow_text(),
        Step::text("steered answer"),
        Step::text("spare answer"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "talk", None).await;
    server
        .wait_turn_event("item/agentMessage/delta", &turn)
        .await;
    let id = server
        .send(
            "turn/steer",
            json!({"threadId": thread, "expectedTurnId": turn,
                   "input": [text_input("also mention the weather")],
                   "clientUserMessageId": "steer-1"}),
        )
        .await;
    let response = server.response_at(id).await;
    assert_eq!(server.log[response]["result"], json!({"turnId": turn}));
    let done = server.wait_completed(&turn).await;
    assert_eq!(done["turn"]["status"], "completed", "{}", server.dump());

    let is_steer = |l: &Value, method: &str| {
        l["method"] == method
            && l["params"]["item"]["type"] == "userMessage"
            && l["params"]["item"]["clientId"] == "steer-1"
    };
    let started: Vec<usize> = (0..server.log.len())
        .filter(|i| is_steer(&server.log[*i], "item/started"))
        .collect();
    let completed: Vec<usize> = (0..server.log.len())
        .filter(|i| is_steer(&server.log[*i], "item/completed"))
        .collect();
    assert_eq!(
        (started.len(), completed.len()),
        (1, 1),
        "{}",
        server.dump()
    );
    let end = positions(&server.log, "turn/completed", &turn)[0];
    assert!(
        response < started[0] && started[0] < completed[0] && completed[0] < end,
        "{}",
        server.dump()
    );
    let item = &server.log[completed[0]]["params"]["item"];
    assert_eq!(
        item["content"],
        json!([text_input("also mention the weather")])
    );
    assert_eq!(server.log[completed[0]]["params"]["turnId"], turn.as_str());

    let last = fixture.requests().pop().unwrap();
    assert_eq!(
        super::support::times_seen(&last, "also mention the weather"),
        1,
        "{:?}",
        super::support::texts_seen(&last)
    );
    server.close().await.assert_success();
    fixture.finish().await;
}

/// The checks every test ends with are not vacuous: each violation is caught.
#[test]
fn the_protocol_checks_catch_each_violation() {
    let sent: std::collections::HashMap<i64, String> = [(1, "turn/start".to_string())].into();
    let response =
        json!({"id": 1, "result": {"turn": {"id": "t", "items": [], "status": "inProgress"}}});
    let started =
        json!({"method": "turn/started", "params": {"threadId": "a", "turn": {"id": "t"}}});
    let completed =
        json!({"method": "turn/completed", "params": {"threadId": "a", "turn": {"id": "t"}}});
    let item =
        |method: &str| json!({"method": method, "params": {"turnId": "t", "item": {"id": "i"}}});
    let good = vec![
        response.clone(),
        started.clone(),
        item("item/started"),
        item("item/completed"),
        completed.clone(),
    ];
    check_protocol(&good, &sent, true);
    let bad = [
        // The response after a notification of its turn.
        vec![started.clone(), response.clone(), completed.clone()],
        // Two turn/completed.
        vec![
            response.clone(),
            started.clone(),
            completed.clone(),
            completed.clone(),
        ],
        // None.
        vec![response.clone(), started.clone()],
        // An item never completed.
        vec![
            response.clone(),
            started.clone(),
            item("item/started"),
            completed.clone(),
        ],
        // Something of the turn after its turn/completed.
        vec![
            response.clone(),
            started.clone(),
            completed.clone(),
            json!({"method": "item/commandExecution/outputDelta",
                   "params": {"turnId": "t", "itemId": "i", "delta": "late"}}),
        ],
        // A request never answered.
        vec![started.clone(), completed.clone()],
        // A request answered twice.
        vec![response.clone(), started, completed, response],
    ];
    for (n, log) in bad.into_iter().enumerate() {
        let caught = std::panic::catch_unwind(|| check_protocol(&log, &sent, true));
        assert!(caught.is_err(), "violation {n} was not caught: {log:#?}");
    }
}
