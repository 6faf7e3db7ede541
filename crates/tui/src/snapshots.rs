//! Every screen state, drawn by ratatui's `TestBackend` and compared with
//! its snapshot (`src/snapshots/`). The states are reached as the UI reaches
//! them: keys into [`App::key`], protocol notifications into
//! [`App::notification`], call outcomes into [`App::outcome`].

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::{Value, json};
use tiller_client::protocol::RequestId;

use crate::app::{App, Overlay, Picker};
use crate::effect::{Effect, Outcome, SessionRow};
use crate::fixtures::{note, opened_app};
use crate::view::{Clock, draw};

const THREAD: &str = "019a0000-0000-7000-8000-000000000001";
const TURN: &str = "019a0000-0000-7000-8000-0000000000t1";

fn app() -> App {
    opened_app(THREAD, "/work/project", "untrusted", json!([]))
}

fn turn(status: &str) -> Value {
    json!({"id": TURN, "items": [], "status": status, "error": null,
           "startedAt": null, "completedAt": null, "durationMs": 1500})
}

/// Type `text` and press Enter: the turn starts as the server says it does.
fn start_turn(app: &mut App, text: &str) {
    type_text(app, text);
    press(app, KeyCode::Enter);
    app.take_effects();
    app.outcome(Outcome::TurnStarted {
        turn_id: TURN.into(),
    });
    app.notification(note(
        "turn/started",
        json!({"threadId": THREAD, "turn": turn("inProgress")}),
    ));
    app.notification(note(
        "item/completed",
        json!({"threadId": THREAD, "turnId": TURN, "completedAtMs": 0,
               "item": {"type": "userMessage", "id": "u1",
                        "content": [{"type": "text", "text": text}]}}),
    ));
}

fn type_text(app: &mut App, text: &str) {
    for ch in text.chars() {
        app.key(KeyEvent::new(KeyCode::Char(ch), KeyModifiers::NONE));
    }
}

fn press(app: &mut App, code: KeyCode) {
    app.key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn ctrl(app: &mut App, ch: char) {
    app.key(KeyEvent::new(KeyCode::Char(ch), KeyModifiers::CONTROL));
}

fn agent_says(app: &mut App, id: &str, text: &str) {
    app.notification(note(
        "item/started",
        json!({"threadId": THREAD, "turnId": TURN, "startedAtMs": 0,
               "item": {"type": "agentMessage", "id": id, "text": ""}}),
    ));
    app.notification(note(
        "item/agentMessage/delta",
        json!({"threadId": THREAD, "turnId": TURN, "itemId": id, "delta": text}),
    ));
}

fn command_starts(app: &mut App, id: &str, command: &str) {
    app.notification(note(
        "item/started",
        json!({"threadId": THREAD, "turnId": TURN, "startedAtMs": 0,
               "item": {"type": "commandExecution", "id": id, "command": command,
                        "cwd": "/work/project", "status": "inProgress", "commandActions": []}}),
    ));
}

fn output(app: &mut App, id: &str, delta: &str) {
    app.notification(note(
        "item/commandExecution/outputDelta",
        json!({"threadId": THREAD, "turnId": TURN, "itemId": id, "delta": delta}),
    ));
}

fn turn_ends(app: &mut App, status: &str, error: Option<&str>) {
    let mut ended = turn(status);
    if let Some(message) = error {
        ended["error"] = json!({"message": message});
    }
    app.notification(note(
        "turn/completed",
        json!({"threadId": THREAD, "turn": ended}),
    ));
}

fn screen(app: &mut App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let clock = Clock {
        now: Instant::now() + Duration::from_secs(12),
        unix: 1_000_000,
    };
    terminal
        .draw(|frame| draw(frame, app, clock, false))
        .unwrap();
    terminal.backend().to_string()
}

#[test]
fn welcome() {
    let mut app = app();
    insta::assert_snapshot!(screen(&mut app, 80, 12));
}

#[test]
fn streaming_markdown_answer() {
    let mut app = app();
    start_turn(&mut app, "explain the parser");
    agent_says(
        &mut app,
        "a1",
        "The parser has **two** stages:\n\n1. `lex` splits the input\n2. `parse` builds the tree\n\n```rust\nfn parse(input: &str) -> Tree {\n    // TODO\n",
    );
    insta::assert_snapshot!(screen(&mut app, 80, 20));
}

#[test]
fn command_running_with_live_output() {
    let mut app = app();
    start_turn(&mut app, "run the tests");
    command_starts(&mut app, "c1", "cargo test --workspace");
    output(
        &mut app,
        "c1",
        "running 8 tests\ntest a ... ok\ntest b ... ok\ntest c ... ok\ntest d ... ok\ntest e ... ok\ntest f ...",
    );
    insta::assert_snapshot!(screen(&mut app, 80, 16));
}

#[test]
fn command_approval_overlay() {
    let mut app = app();
    start_turn(&mut app, "clean up");
    app.server_request(
        RequestId::String("approval:t:1".into()),
        "item/commandExecution/requestApproval",
        &json!({"kind": "command", "threadId": THREAD, "turnId": TURN, "itemId": "c1",
                "startedAtMs": 0, "approvalId": null, "environmentId": null,
                "reason": "`rm` is not on the read-only list", "command": "rm -rf build/",
                "cwd": "/work/project", "availableDecisions": ["accept", "acceptForSession", "decline", "cancel"]}),
    );
    insta::assert_snapshot!(screen(&mut app, 80, 16));
    press(&mut app, KeyCode::Char('n'));
    type_text(&mut app, "keep the build");
    insta::assert_snapshot!("command_approval_overlay_note", screen(&mut app, 80, 16));
}

/// A command the sandbox denied, and the question whether to run it again
/// outside: the reason says so under the command.
#[test]
fn command_approval_after_a_sandbox_denial() {
    let mut app = app();
    start_turn(&mut app, "install the hook");
    command_starts(&mut app, "c1", "cp hook.sh ~/.git-hooks/");
    output(
        &mut app,
        "c1",
        "cp: cannot create regular file '/home/me/.git-hooks/hook.sh': Permission denied\n",
    );
    item_event(
        &mut app,
        "item/completed",
        json!({"type": "commandExecution", "id": "c1", "command": "cp hook.sh ~/.git-hooks/",
               "cwd": "/work/project", "status": "failed", "commandActions": [], "exitCode": 1,
               "aggregatedOutput": "cp: cannot create regular file '/home/me/.git-hooks/hook.sh': Permission denied\n",
               "durationMs": 4}),
    );
    app.server_request(
        RequestId::String("approval:t:3".into()),
        "item/commandExecution/requestApproval",
        &json!({"kind": "command", "threadId": THREAD, "turnId": TURN, "itemId": "c2",
                "startedAtMs": 0, "approvalId": null, "environmentId": null,
                "reason": "it failed in the sandbox (workspace-write (network off)), likely denied a write outside the workspace or network access; allowing runs it again without the sandbox",
                "command": "cp hook.sh ~/.git-hooks/", "cwd": "/work/project",
                "availableDecisions": ["accept", "acceptForSession", "decline", "cancel"]}),
    );
    insta::assert_snapshot!(screen(&mut app, 80, 20));
}

#[test]
fn steer_pending_and_queued_messages() {
    let mut app = app();
    start_turn(&mut app, "refactor the module");
    agent_says(&mut app, "a1", "Looking at the module first.");
    type_text(&mut app, "also keep the public API");
    press(&mut app, KeyCode::Enter);
    type_text(&mut app, "then update the docs");
    press(&mut app, KeyCode::Tab);
    let effects = app.take_effects();
    assert!(
        matches!(&effects[0], Effect::Steer { text, .. } if text == "also keep the public API")
    );
    assert!(matches!(&effects[1], Effect::QueueAdd { text, .. } if text == "then update the docs"));
    app.outcome(Outcome::Queue(vec![
        serde_json::from_value(json!({"id": "q1", "input": [{"type": "text", "text": "then update the docs"}],
                                      "clientUserMessageId": "q1", "responsesapiClientMetadata": null}))
        .unwrap(),
    ]));
    insta::assert_snapshot!(screen(&mut app, 80, 16));
}

#[test]
fn interrupted_turn() {
    let mut app = app();
    start_turn(&mut app, "run it");
    command_starts(&mut app, "c1", "sleep 60");
    press(&mut app, KeyCode::Esc);
    assert!(matches!(
        &app.take_effects()[..],
        [Effect::Interrupt { .. }]
    ));
    app.notification(note(
        "item/completed",
        json!({"threadId": THREAD, "turnId": TURN, "completedAtMs": 0,
               "item": {"type": "commandExecution", "id": "c1", "command": "sleep 60",
                        "cwd": "/work/project", "status": "failed", "commandActions": [],
                        "exitCode": -1, "durationMs": 2300, "aggregatedOutput": ""}}),
    ));
    turn_ends(&mut app, "interrupted", None);
    insta::assert_snapshot!(screen(&mut app, 80, 12));
}

#[test]
fn failed_turn() {
    let mut app = app();
    start_turn(&mut app, "hello");
    turn_ends(
        &mut app,
        "failed",
        Some("the model server said 401 Unauthorized: invalid API key"),
    );
    insta::assert_snapshot!(screen(&mut app, 80, 10));
}

#[test]
fn retrying() {
    let mut app = app();
    start_turn(&mut app, "hello");
    app.notification(note(
        "error",
        json!({"threadId": THREAD, "turnId": TURN, "willRetry": true,
               "error": {"message": "the model server said 503; retrying in 400 ms (attempt 1/5)"}}),
    ));
    app.notification(note(
        "error",
        json!({"threadId": THREAD, "turnId": TURN, "willRetry": true,
               "error": {"message": "the model server said 503; retrying in 800 ms (attempt 2/5)"}}),
    ));
    insta::assert_snapshot!(screen(&mut app, 80, 10));
}

#[test]
fn plan_updates() {
    let mut app = app();
    start_turn(&mut app, "fix the flaky test");
    app.notification(note(
        "turn/plan/updated",
        json!({"threadId": THREAD, "turnId": TURN, "explanation": "It fails one run in ten.",
               "plan": [{"step": "find what the test waits on", "status": "inProgress"},
                        {"step": "wait on an event instead of a sleep", "status": "pending"}]}),
    ));
    command_starts(&mut app, "c1", "rg -n sleep tests/");
    app.notification(note(
        "turn/plan/updated",
        json!({"threadId": THREAD, "turnId": TURN, "explanation": null,
               "plan": [{"step": "find what the test waits on", "status": "completed"},
                        {"step": "wait on an event instead of a sleep", "status": "inProgress"}]}),
    ));
    insta::assert_snapshot!(screen(&mut app, 60, 18));
}

#[test]
fn file_change_diff() {
    let mut app = app();
    start_turn(&mut app, "fix the typo");
    app.notification(note(
        "item/completed",
        json!({"threadId": THREAD, "turnId": TURN, "completedAtMs": 0,
               "item": {"type": "fileChange", "id": "f1", "status": "completed",
                        "changes": [{"path": "README.md", "kind": {"type": "update", "move_path": null},
                                     "diff": "--- a/README.md\n+++ b/README.md\n@@ -1,2 +1,2 @@\n # tiller\n-A codign agent\n+A coding agent\n"}]}}),
    ));
    turn_ends(&mut app, "completed", None);
    insta::assert_snapshot!(screen(&mut app, 80, 14));
}

#[test]
fn slash_command_menu() {
    let mut app = app();
    type_text(&mut app, "/");
    insta::assert_snapshot!(screen(&mut app, 80, 16));
}

#[test]
fn resume_picker() {
    let mut app = app();
    app.overlay = Some(Overlay::Picker(Picker::default()));
    app.outcome(Outcome::Sessions(vec![
        SessionRow {
            id: "a".into(),
            updated_at: 1_000_000 - 120,
            preview: "fix the flaky test in the parser".into(),
            cwd: "/work/parser".into(),
            ended: None,
        },
        SessionRow {
            id: "b".into(),
            updated_at: 1_000_000 - 7200,
            preview: "add a --json flag".into(),
            cwd: "/work/cli".into(),
            ended: None,
        },
    ]));
    app.outcome(Outcome::SessionEnded {
        id: "a".into(),
        ended: "interrupted".into(),
    });
    app.outcome(Outcome::SessionEnded {
        id: "b".into(),
        ended: "completed".into(),
    });
    insta::assert_snapshot!(screen(&mut app, 90, 8));
    // Narrow: the age and the first prompt only.
    insta::assert_snapshot!("resume_picker_narrow", screen(&mut app, 50, 8));
}

#[test]
fn transcript_pager() {
    let mut app = app();
    start_turn(&mut app, "count");
    command_starts(&mut app, "c1", "seq 1 9");
    output(&mut app, "c1", "1\n2\n3\n4\n5\n6\n7\n8\n9\n");
    ctrl(&mut app, 't');
    insta::assert_snapshot!(screen(&mut app, 60, 24));
}

#[test]
fn resizing_reflows_the_transcript() {
    let mut app = app();
    start_turn(&mut app, "describe");
    agent_says(
        &mut app,
        "a1",
        "A long answer that wraps differently when the terminal becomes narrower than it was.",
    );
    let wide = screen(&mut app, 80, 10);
    let narrow = screen(&mut app, 40, 12);
    insta::assert_snapshot!("resize_wide", wide);
    insta::assert_snapshot!("resize_narrow", narrow);
}

#[test]
fn edit_approval_overlay() {
    let mut app = app();
    start_turn(&mut app, "fix the config");
    app.notification(note(
        "item/started",
        json!({"threadId": THREAD, "turnId": TURN, "startedAtMs": 0,
               "item": {"type": "fileChange", "id": "f1", "status": "inProgress",
                        "changes": [{"path": "/etc/app.toml", "kind": {"type": "update", "move_path": null},
                                     "diff": "--- a/etc/app.toml\n+++ b/etc/app.toml\n@@ -1 +1 @@\n-port = 80\n+port = 8080\n"}]}}),
    ));
    app.server_request(
        RequestId::String("approval:t:2".into()),
        "item/fileChange/requestApproval",
        &json!({"threadId": THREAD, "turnId": TURN, "itemId": "f1", "startedAtMs": 0,
                "reason": "the edit writes outside the workspace", "grantRoot": "/etc"}),
    );
    insta::assert_snapshot!(screen(&mut app, 80, 18));
}

fn mcp_call(id: &str, tool: &str, arguments: Value) -> Value {
    json!({"type": "mcpToolCall", "id": id, "server": "docs", "environmentId": null,
           "tool": tool, "status": "inProgress", "arguments": arguments, "appContext": null,
           "mcpAppUi": null, "pluginId": null, "readOnlyHint": null, "result": null,
           "error": null, "durationMs": null})
}

fn item_event(app: &mut App, method: &str, item: Value) {
    app.notification(note(
        method,
        json!({"threadId": THREAD, "turnId": TURN, "startedAtMs": 0, "completedAtMs": 0,
               "item": item}),
    ));
}

fn mcp_status(app: &mut App, name: &str, status: &str, error: Option<&str>) {
    app.notification(note(
        "mcpServer/startupStatus/updated",
        json!({"threadId": THREAD, "name": name, "environmentId": null, "status": status,
               "error": error, "failureReason": null}),
    ));
}

#[test]
fn mcp_tool_call_running_with_progress() {
    let mut app = app();
    start_turn(&mut app, "find the docs on wrapping");
    item_event(
        &mut app,
        "item/started",
        mcp_call(
            "m1",
            "search",
            // Keys in sorted order: JSON objects keep their order in some builds
            // (serde_json `preserve_order`, turned on by the ACP crate).
            json!({"limit": 5, "query": "ratatui paragraph wrapping"}),
        ),
    );
    app.notification(note(
        "item/mcpToolCall/progress",
        json!({"threadId": THREAD, "turnId": TURN, "itemId": "m1",
               "message": "searched 120 of 400 pages"}),
    ));
    insta::assert_snapshot!(screen(&mut app, 90, 10));
}

#[test]
fn mcp_tool_calls_completed_and_failed() {
    let mut app = app();
    start_turn(&mut app, "look it up");
    let mut search = mcp_call("m1", "search", json!({"query": "wrap"}));
    item_event(&mut app, "item/started", search.clone());
    search["status"] = json!("completed");
    search["durationMs"] = json!(420);
    search["result"] = json!({"content": [{"type": "text",
        "text": "Paragraph::wrap(Wrap { trim: true })\nwraps at word boundaries\nsee also: Line::width\nexample in examples/paragraph.rs\nand two\nmore lines"}],
        "structuredContent": null, "_meta": null});
    item_event(&mut app, "item/completed", search);
    let mut shot = mcp_call("m2", "screenshot", json!({}));
    shot["status"] = json!("completed");
    shot["durationMs"] = json!(1300);
    shot["result"] = json!({"content": [{"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"}],
                            "structuredContent": null, "_meta": null});
    item_event(&mut app, "item/completed", shot);
    let mut add = mcp_call("m3", "add", json!({"a": 2, "b": 3}));
    add["status"] = json!("completed");
    add["durationMs"] = json!(8);
    add["result"] = json!({"content": [], "structuredContent": {"result": 5}, "_meta": null});
    item_event(&mut app, "item/completed", add);
    let mut fetch = mcp_call(
        "m4",
        "fetch",
        json!({"url": "https://example.com/a/very/long/path/that/goes/on/and/on/and/on/until/it/is/cut"}),
    );
    fetch["status"] = json!("failed");
    fetch["durationMs"] = json!(30_000);
    fetch["error"] = json!({"message": "the MCP tool did not answer within 30 s (tool_timeout_sec); the call was cancelled"});
    item_event(&mut app, "item/completed", fetch);
    turn_ends(&mut app, "completed", None);
    insta::assert_snapshot!(screen(&mut app, 90, 24));
}

#[test]
fn mcp_servers_starting_ready_and_failed() {
    let mut app = app();
    mcp_status(&mut app, "docs", "starting", None);
    mcp_status(&mut app, "github", "starting", None);
    mcp_status(&mut app, "broken", "starting", None);
    mcp_status(&mut app, "docs", "ready", None);
    // The same state again says nothing more.
    mcp_status(&mut app, "docs", "ready", None);
    mcp_status(
        &mut app,
        "broken",
        "failed",
        Some("it did not start and list its tools within 10 s (startup_timeout_sec)"),
    );
    insta::assert_snapshot!(screen(&mut app, 90, 14));
    mcp_status(&mut app, "github", "ready", None);
    type_text(&mut app, "/mcp");
    press(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("mcp_command", screen(&mut app, 90, 16));
}

fn elicitation(app: &mut App, schema: Value) {
    app.server_request(
        RequestId::String("elicitation:t:1".into()),
        "mcpServer/elicitation/request",
        &json!({"threadId": THREAD, "turnId": TURN, "serverName": "shop", "environmentId": null,
                "mode": "form", "_meta": null,
                "message": "Where should the order go? It ships tomorrow.",
                "requestedSchema": schema}),
    );
}

#[test]
fn elicitation_overlay() {
    let mut app = app();
    start_turn(&mut app, "order more paper");
    item_event(
        &mut app,
        "item/started",
        mcp_call("m1", "order", json!({"item": "paper"})),
    );
    // Named so that the order the parsed JSON keeps is the order shown.
    elicitation(
        &mut app,
        json!({"type": "object", "properties": {
            "a_name": {"type": "string", "title": "Name"},
            "b_count": {"type": "integer", "title": "Boxes", "description": "500 sheets a box"},
            "c_express": {"type": "boolean", "title": "Express", "default": false},
            "d_size": {"type": "string", "title": "Size", "enum": ["a4", "letter"],
                       "enumNames": ["A4", "US Letter"]},
        }, "required": ["a_name", "b_count"]}),
    );
    type_text(&mut app, "Ada Lovelace");
    press(&mut app, KeyCode::Tab);
    insta::assert_snapshot!(screen(&mut app, 90, 24));
    type_text(&mut app, "two");
    press(&mut app, KeyCode::Enter);
    assert!(app.take_effects().is_empty(), "a bad number sent an answer");
    insta::assert_snapshot!("elicitation_overlay_problem", screen(&mut app, 90, 24));
}
