//! The state machine on its own: what reaches the screen, what goes to the
//! server, and what is never lost, for the orders of events a server and
//! other clients can produce.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::{Value, json};
use tiller_client::protocol::RequestId;

use super::{App, Overlay, TurnState};
use crate::cell::{CellKind, TurnOutcome};
use crate::effect::{Effect, Outcome};
use crate::fixtures::{note, opened, opened_app};

const THREAD: &str = "t1";

fn app() -> App {
    opened_app(THREAD, "/w", "never", json!([]))
}

fn turn_json(id: &str, status: &str) -> Value {
    json!({"id": id, "items": [], "status": status, "error": null,
           "startedAt": null, "completedAt": null, "durationMs": null})
}

fn started(app: &mut App, id: &str) {
    app.notification(note(
        "turn/started",
        json!({"threadId": THREAD, "turn": turn_json(id, "inProgress")}),
    ));
}

fn completed(app: &mut App, id: &str, status: &str, unsent: &[&str]) {
    let unsent: Vec<Value> = unsent
        .iter()
        .map(|t| json!({"type": "text", "text": t}))
        .collect();
    app.notification(note(
        "turn/completed",
        json!({"threadId": THREAD, "turn": turn_json(id, status), "unsentInput": unsent}),
    ));
}

fn type_and(app: &mut App, text: &str, code: KeyCode) {
    for ch in text.chars() {
        app.key(KeyEvent::new(KeyCode::Char(ch), KeyModifiers::NONE));
    }
    app.key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn end_lines(app: &App) -> Vec<TurnOutcome> {
    app.transcript
        .cells()
        .filter_map(|c| match &c.kind {
            CellKind::TurnEnd(outcome) => Some(outcome.clone()),
            _ => None,
        })
        .collect()
}

/// Enter, with the server answering `turn/start` with `id`.
fn run_turn(app: &mut App, text: &str, id: &str) {
    type_and(app, text, KeyCode::Enter);
    assert!(matches!(
        &app.take_effects()[..],
        [Effect::StartTurn { .. }]
    ));
    app.outcome(Outcome::TurnStarted { turn_id: id.into() });
    started(app, id);
}

#[test]
fn a_turn_ends_with_exactly_one_line_whatever_repeats_or_comes_late() {
    let mut app = app();
    run_turn(&mut app, "go", "u1");
    completed(&mut app, "u1", "completed", &[]);
    completed(&mut app, "u1", "completed", &[]);
    // A late event of the ended turn is dropped.
    app.notification(note(
        "item/agentMessage/delta",
        json!({"threadId": THREAD, "turnId": "u1", "itemId": "late", "delta": "late words"}),
    ));
    // A late answer to turn/start does not make it run again.
    app.outcome(Outcome::TurnStarted {
        turn_id: "u1".into(),
    });
    assert_eq!(end_lines(&app).len(), 1);
    assert_eq!(app.turn, TurnState::Idle);
    assert!(!app.transcript.has_item("late"));
}

#[test]
fn events_of_another_thread_are_not_shown() {
    let mut app = app();
    app.notification(note(
        "turn/started",
        json!({"threadId": "other", "turn": turn_json("x", "inProgress")}),
    ));
    assert_eq!(app.turn, TurnState::Idle);
}

#[test]
fn a_rejected_steer_goes_to_the_queue_never_dropped() {
    let mut app = app();
    run_turn(&mut app, "go", "u1");
    type_and(&mut app, "and this", KeyCode::Enter);
    let Some(Effect::Steer {
        client_id, text, ..
    }) = app.take_effects().pop()
    else {
        panic!("no steer");
    };
    assert_eq!(app.pending_steers.len(), 1);
    app.outcome(Outcome::SteerRejected { text, client_id });
    assert!(app.pending_steers.is_empty());
    assert!(
        matches!(&app.take_effects()[..], [Effect::QueueAdd { text, .. }] if text == "and this")
    );
}

#[test]
fn unsent_steer_text_starts_the_next_turn_once() {
    let mut app = app();
    run_turn(&mut app, "go", "u1");
    type_and(&mut app, "steer me", KeyCode::Enter);
    app.take_effects();
    app.key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    assert!(matches!(&app.take_effects()[..], [Effect::Interrupt { turn_id }] if turn_id == "u1"));
    completed(&mut app, "u1", "interrupted", &["steer me"]);
    let effects = app.take_effects();
    assert!(
        matches!(&effects[..], [Effect::StartTurn { text, .. }] if text == "steer me"),
        "{effects:?}"
    );
    assert!(app.pending_steers.is_empty());
    assert!(matches!(
        &end_lines(&app)[..],
        [TurnOutcome::Interrupted(why)] if why == "esc pressed"
    ));
}

#[test]
fn another_clients_unsent_text_is_not_sent_by_this_ui() {
    let mut app = app();
    started(&mut app, "u1");
    completed(&mut app, "u1", "interrupted", &["someone else's steer"]);
    assert!(app.take_effects().is_empty());
}

#[test]
fn text_typed_before_the_turn_id_is_known_waits_for_it() {
    let mut app = app();
    type_and(&mut app, "go", KeyCode::Enter);
    app.take_effects();
    type_and(&mut app, "early steer", KeyCode::Enter);
    app.key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    assert!(
        app.take_effects().is_empty(),
        "nothing can go before the turn's id"
    );
    app.outcome(Outcome::TurnStarted {
        turn_id: "u1".into(),
    });
    let effects = app.take_effects();
    assert!(
        matches!(&effects[0], Effect::Interrupt { turn_id } if turn_id == "u1"),
        "{effects:?}"
    );
    assert!(
        matches!(&effects[1], Effect::Steer { text, .. } if text == "early steer"),
        "{effects:?}"
    );
}

#[test]
fn a_failed_turn_start_gives_the_text_back() {
    let mut app = app();
    type_and(&mut app, "important words", KeyCode::Enter);
    app.take_effects();
    app.outcome(Outcome::TurnNotStarted {
        text: "important words".into(),
        error: "disk full".into(),
    });
    assert_eq!(app.composer.text(), "important words");
    assert_eq!(app.turn, TurnState::Idle);
}

#[test]
fn an_approval_of_an_ended_turn_closes_and_ctrl_c_aborts_one() {
    let mut app = app();
    run_turn(&mut app, "go", "u1");
    let params =
        json!({"threadId": THREAD, "turnId": "u1", "itemId": "c", "command": "rm x", "cwd": "/w"});
    app.server_request(
        RequestId::Integer(7),
        "item/commandExecution/requestApproval",
        &params,
    );
    assert!(matches!(app.overlay, Some(Overlay::Approval(_))));
    app.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(matches!(
        &app.take_effects()[..],
        [Effect::Answer {
            decision: "cancel",
            ..
        }]
    ));
    assert!(app.overlay.is_none());

    app.server_request(
        RequestId::Integer(8),
        "item/commandExecution/requestApproval",
        &params,
    );
    completed(&mut app, "u1", "interrupted", &[]);
    assert!(app.overlay.is_none(), "the approval outlived its turn");
    assert!(matches!(
        &end_lines(&app)[..],
        [TurnOutcome::Interrupted(why)] if why == "ctrl+c at the approval"
    ));
}

#[test]
fn an_unknown_server_request_is_refused() {
    let mut app = app();
    app.server_request(
        RequestId::Integer(1),
        "account/login",
        &json!({"threadId": THREAD}),
    );
    assert!(matches!(&app.take_effects()[..], [Effect::Refuse { .. }]));
}

#[test]
fn alt_up_takes_the_last_queued_message_back() {
    let mut app = app();
    app.outcome(Outcome::Queue(vec![
        serde_json::from_value(json!({
            "id": "q1", "input": [{"type": "text", "text": "later"}],
            "clientUserMessageId": "q1", "responsesapiClientMetadata": null
        }))
        .unwrap(),
    ]));
    app.key(KeyEvent::new(KeyCode::Up, KeyModifiers::ALT));
    assert!(matches!(&app.take_effects()[..], [Effect::QueueTake { id, .. }] if id == "q1"));
    app.outcome(Outcome::QueueTaken {
        text: "later".into(),
        deleted: true,
    });
    assert_eq!(app.composer.text(), "later");
}

#[test]
fn ctrl_c_interrupts_then_clears_then_asks_then_quits() {
    let mut app = app();
    run_turn(&mut app, "go", "u1");
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    app.key(ctrl_c);
    assert!(matches!(
        &app.take_effects()[..],
        [Effect::Interrupt { .. }]
    ));
    completed(&mut app, "u1", "interrupted", &[]);
    app.composer.set("draft");
    app.key(ctrl_c);
    assert_eq!(app.composer.text(), "");
    assert_eq!(app.exit, None);
    app.key(ctrl_c);
    assert_eq!(app.exit, None);
    assert!(app.quit_armed);
    app.key(ctrl_c);
    assert_eq!(app.exit, Some(0));
}

#[test]
fn a_resumed_running_turn_is_the_running_turn() {
    let turns = json!([
        {"id": "u0", "items": [{"type": "userMessage", "id": "i0", "content": [{"type": "text", "text": "old"}]}],
         "status": "completed", "error": null, "startedAt": null, "completedAt": null, "durationMs": 10},
        {"id": "u1", "items": [{"type": "agentMessage", "id": "i1", "text": "half"}],
         "status": "inProgress", "error": null, "startedAt": null, "completedAt": null, "durationMs": null}
    ]);
    let mut app = opened_app(THREAD, "/w", "never", turns);
    assert_eq!(app.running_turn(), Some("u1"));
    app.notification(note(
        "item/agentMessage/delta",
        json!({"threadId": THREAD, "turnId": "u1", "itemId": "i1", "delta": " more"}),
    ));
    assert!(app.transcript.cells().any(|c| c.kind
        == CellKind::Agent {
            text: "half more".into()
        }));
    assert_eq!(end_lines(&app).len(), 1);
}

/// A steer typed and accepted: its client id, after the server showed its item.
fn accepted_steer(app: &mut App, text: &str) -> String {
    type_and(app, text, KeyCode::Enter);
    let Some(Effect::Steer { client_id, .. }) = app.take_effects().pop() else {
        panic!("no steer");
    };
    app.notification(note(
        "item/started",
        json!({"threadId": THREAD, "turnId": "u1", "startedAtMs": 0,
               "item": {"type": "userMessage", "id": "s1", "clientId": client_id,
                        "content": [{"type": "text", "text": text}]}}),
    ));
    client_id
}

#[test]
fn a_steer_the_server_showed_but_the_model_never_saw_is_sent_as_the_next_turn() {
    let mut app = app();
    run_turn(&mut app, "go", "u1");
    accepted_steer(&mut app, "use the fast path");
    assert_eq!(
        app.pending_steers.len(),
        1,
        "shown as pending until the model has it"
    );
    assert!(!app.transcript.has_item("s1"));
    app.key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    app.take_effects();
    completed(&mut app, "u1", "interrupted", &["use the fast path"]);
    let effects = app.take_effects();
    assert!(
        matches!(&effects[..], [Effect::StartTurn { text, .. }] if text == "use the fast path"),
        "{effects:?}"
    );
    assert!(
        !app.transcript.has_item("s1"),
        "a resent steer is shown once, in its new turn"
    );
}

#[test]
fn a_steer_joins_the_transcript_when_the_model_answers_it() {
    let mut app = app();
    run_turn(&mut app, "go", "u1");
    accepted_steer(&mut app, "and this");
    app.notification(note(
        "item/started",
        json!({"threadId": THREAD, "turnId": "u1", "startedAtMs": 0,
               "item": {"type": "agentMessage", "id": "a2", "text": ""}}),
    ));
    assert!(app.pending_steers.is_empty());
    let ids: Vec<&str> = app
        .transcript
        .cells()
        .filter_map(|c| c.item_id.as_deref())
        .collect();
    assert_eq!(ids, ["s1", "a2"]);
    completed(&mut app, "u1", "completed", &[]);
    assert!(app.take_effects().is_empty());
}

#[test]
fn a_first_prompt_is_sent_once_the_session_opens() {
    let mut app = App::new("test");
    app.first_prompt = Some("from the command line".into());
    app.outcome(opened(THREAD, "/w", "never", json!([])));
    let effects = app.take_effects();
    assert!(
        matches!(&effects[..], [Effect::QueueRefresh, Effect::StartTurn { text, .. }] if text == "from the command line"),
        "{effects:?}"
    );
    assert!(app.first_prompt.is_none());
}

mod mcp;

#[test]
fn the_sandbox_the_server_reports_is_named_by_its_mode() {
    use super::sandbox_label;
    use tiller_client::protocol::{NetworkAccess, SandboxPolicy};

    let app = app();
    assert_eq!(app.thread.unwrap().sandbox, "workspace-write");
    let write = |network_access| SandboxPolicy::WorkspaceWrite {
        writable_roots: vec!["/srv/cache".to_owned()],
        network_access,
        exclude_tmpdir_env_var: false,
        exclude_slash_tmp: true,
    };
    for (policy, label) in [
        (write(false), "workspace-write"),
        (write(true), "workspace-write + network"),
        (
            SandboxPolicy::ReadOnly {
                network_access: false,
            },
            "read-only",
        ),
        (SandboxPolicy::DangerFullAccess, "danger-full-access"),
        (
            SandboxPolicy::ExternalSandbox {
                network_access: NetworkAccess::Enabled,
            },
            "external",
        ),
    ] {
        assert_eq!(sandbox_label(&policy), label);
    }
}
