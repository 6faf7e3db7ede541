//! MCP in the state machine: a server's questions (answered, declined,
//! cancelled, or voided by the turn's end or another client), its start
//! reported once per change (even before the thread's answer is in), and
//! the running call's progress.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::{Value, json};
use tiller_client::protocol::{McpServerElicitationAction, McpServerStartupState, RequestId};

use super::{THREAD, app, completed, end_lines, run_turn};
use crate::app::{App, Overlay};
use crate::cell::{CellKind, Tone, TurnOutcome};
use crate::effect::Effect;
use crate::fixtures::{note, opened};

fn ask(app: &mut App, id: i64, thread: &str, turn: Option<&str>) {
    app.server_request(
        RequestId::Integer(id),
        "mcpServer/elicitation/request",
        &json!({"threadId": thread, "turnId": turn, "serverName": "slow", "environmentId": null,
                "mode": "form", "_meta": null, "message": "What is your name?",
                "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}},
                                    "required": ["name"]}}),
    );
}

fn press(app: &mut App, code: KeyCode) {
    app.key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

/// The one answer to an elicitation among the effects.
fn answer(app: &mut App) -> (RequestId, McpServerElicitationAction, Option<Value>) {
    match &app.take_effects()[..] {
        [
            Effect::AnswerElicitation {
                request_id,
                action,
                content,
            },
        ] => (request_id.clone(), *action, content.clone()),
        other => panic!("not one answer: {other:?}"),
    }
}

fn notices(app: &App) -> Vec<(String, Tone)> {
    app.transcript
        .cells()
        .filter_map(|c| match &c.kind {
            CellKind::Notice { text, tone } => Some((text.clone(), *tone)),
            _ => None,
        })
        .collect()
}

fn status(app: &mut App, thread: &str, name: &str, status: &str, error: Option<&str>) {
    app.notification(note(
        "mcpServer/startupStatus/updated",
        json!({"threadId": thread, "name": name, "environmentId": null, "status": status,
               "error": error, "failureReason": null}),
    ));
}

#[test]
fn a_typed_name_and_enter_accept_with_the_content() {
    let mut app = app();
    run_turn(&mut app, "ask me", "u1");
    ask(&mut app, 3, THREAD, Some("u1"));
    assert!(matches!(app.overlay, Some(Overlay::Elicitation(_))));
    // A required field left empty keeps the form open.
    press(&mut app, KeyCode::Enter);
    assert!(app.take_effects().is_empty());
    assert!(matches!(app.overlay, Some(Overlay::Elicitation(_))));
    type_text(&mut app, "Ada");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        answer(&mut app),
        (
            RequestId::Integer(3),
            McpServerElicitationAction::Accept,
            Some(json!({"name": "Ada"}))
        )
    );
    assert!(app.overlay.is_none());
}

#[test]
fn esc_cancels_ctrl_d_declines_and_neither_stops_the_turn() {
    let mut app = app();
    run_turn(&mut app, "ask me", "u1");
    ask(&mut app, 3, THREAD, Some("u1"));
    press(&mut app, KeyCode::Esc);
    assert_eq!(answer(&mut app).1, McpServerElicitationAction::Cancel);
    ask(&mut app, 4, THREAD, Some("u1"));
    app.key(KeyEvent::new(KeyCode::Char('d'), KeyModifiers::CONTROL));
    assert_eq!(
        answer(&mut app),
        (
            RequestId::Integer(4),
            McpServerElicitationAction::Decline,
            None
        )
    );
    assert!(app.running_turn().is_some());
}

#[test]
fn ctrl_c_at_a_question_cancels_it_and_interrupts_the_turn() {
    let mut app = app();
    run_turn(&mut app, "ask me", "u1");
    ask(&mut app, 3, THREAD, Some("u1"));
    app.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    let effects = app.take_effects();
    assert!(
        matches!(
            &effects[..],
            [
                Effect::AnswerElicitation {
                    action: McpServerElicitationAction::Cancel,
                    ..
                },
                Effect::Interrupt { .. }
            ]
        ),
        "{effects:?}"
    );
    completed(&mut app, "u1", "interrupted", &[]);
    assert!(matches!(
        &end_lines(&app)[..],
        [TurnOutcome::Interrupted(why)] if why == "ctrl+c at the MCP server's question"
    ));
}

#[test]
fn a_question_resolved_elsewhere_or_outlived_by_its_turn_closes() {
    let mut app = app();
    run_turn(&mut app, "ask me", "u1");
    ask(&mut app, 3, THREAD, Some("u1"));
    // An approval waits behind the question.
    app.server_request(
        RequestId::Integer(4),
        "item/commandExecution/requestApproval",
        &json!({"threadId": THREAD, "turnId": "u1", "itemId": "c", "command": "ls", "cwd": "/w"}),
    );
    assert!(matches!(app.overlay, Some(Overlay::Elicitation(_))));
    assert_eq!(app.requests.len(), 1);
    app.notification(note(
        "serverRequest/resolved",
        json!({"threadId": THREAD, "requestId": 3}),
    ));
    assert!(matches!(app.overlay, Some(Overlay::Approval(_))));

    ask(&mut app, 5, THREAD, Some("u1"));
    completed(&mut app, "u1", "completed", &[]);
    assert!(app.overlay.is_none(), "a request outlived its turn");
    assert!(app.requests.is_empty());
    assert!(app.take_effects().is_empty(), "nothing to answer any more");
}

#[test]
fn another_threads_question_is_left_and_a_malformed_one_refused() {
    let mut app = app();
    ask(&mut app, 3, "other", None);
    assert!(app.overlay.is_none());
    assert!(app.take_effects().is_empty());
    app.server_request(
        RequestId::Integer(4),
        "mcpServer/elicitation/request",
        &json!({"threadId": THREAD, "message": 7}),
    );
    assert!(matches!(&app.take_effects()[..], [Effect::Refuse { .. }]));
}

#[test]
fn each_server_start_says_one_line_per_change() {
    let mut app = app();
    status(&mut app, THREAD, "slow", "starting", None);
    assert_eq!(app.mcp_starting(), ["slow"]);
    status(&mut app, THREAD, "slow", "ready", None);
    status(&mut app, THREAD, "slow", "ready", None);
    status(&mut app, THREAD, "bad", "failed", Some("no such command"));
    status(&mut app, "other", "elsewhere", "failed", Some("not ours"));
    assert_eq!(
        notices(&app),
        [
            ("MCP server slow ready".to_owned(), Tone::Quiet),
            (
                "MCP server bad could not start: no such command".to_owned(),
                Tone::Warning
            ),
        ]
    );
    assert!(app.mcp_starting().is_empty());
    let servers: Vec<(&str, McpServerStartupState)> = app
        .mcp_servers
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        servers,
        [
            ("slow", McpServerStartupState::Ready),
            ("bad", McpServerStartupState::Failed)
        ]
    );
}

#[test]
fn a_start_reported_before_the_threads_answer_shows_once_it_opens() {
    let mut app = App::new("test");
    status(&mut app, "t2", "slow", "ready", None);
    assert!(notices(&app).is_empty());
    app.outcome(opened("t2", "/w", "never", json!([])));
    assert_eq!(
        notices(&app),
        [("MCP server slow ready".to_owned(), Tone::Quiet)]
    );
    // A new thread's servers are its own.
    status(&mut app, "t3", "docs", "starting", None);
    app.outcome(opened("t3", "/w", "never", json!([])));
    assert_eq!(app.mcp_starting(), ["docs"]);
    assert_eq!(app.mcp_servers.len(), 1);
}

#[test]
fn progress_shows_while_the_call_runs() {
    let mut app = app();
    run_turn(&mut app, "sleep", "u1");
    let call = json!({"type": "mcpToolCall", "id": "m1", "server": "slow", "environmentId": null,
        "tool": "sleep", "status": "inProgress", "arguments": {"seconds": 1}, "appContext": null,
        "mcpAppUi": null, "pluginId": null, "readOnlyHint": null, "result": null, "error": null,
        "durationMs": null});
    app.notification(note(
        "item/started",
        json!({"threadId": THREAD, "turnId": "u1", "startedAtMs": 0, "item": call}),
    ));
    app.notification(note(
        "item/mcpToolCall/progress",
        json!({"threadId": THREAD, "turnId": "u1", "itemId": "m1", "message": "slept 0.3 s"}),
    ));
    let progress = app.mcp_progress.clone().map(|p| (p.call, p.message));
    assert_eq!(
        progress,
        Some(("slow.sleep".to_owned(), "slept 0.3 s".to_owned()))
    );
    let mut done = call;
    done["status"] = json!("completed");
    app.notification(note(
        "item/completed",
        json!({"threadId": THREAD, "turnId": "u1", "completedAtMs": 0, "item": done}),
    ));
    assert_eq!(app.mcp_progress, None);
    assert!(
        app.transcript
            .cells()
            .any(|c| matches!(&c.kind, CellKind::McpCall(call) if call.status == "completed"))
    );
}
