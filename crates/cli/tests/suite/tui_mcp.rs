//! MCP in `tiller` as a person uses it: the real binary in a pseudo-terminal
//! with a real MCP server (the official Python SDK's FastMCP, see
//! `tiller_test_support::mcp_servers`) configured, and the mock model
//! calling its tools. The server's start shows as a line; its question
//! (`ask_name`, an elicitation) opens a form over the screen, and what is
//! typed there reaches the server, which records how it was answered; the
//! completed call shows with its result.

use std::path::PathBuf;

use serde_json::{Value, json};
use tiller_mock_model::{MockModel, Script};
use tiller_test_support::PtyChild;
use tiller_test_support::mcp_servers::{python_mcp_site, slow_server_toml, wait_for_record};

use super::support::{DEADLINE, PROMPT_EXIT, Scratch, text_step};

const COLS: u16 = 100;
const ROWS: u16 = 30;

/// A script step calling `slow`'s `ask_name` (no arguments).
fn ask_name_step(call_id: &str) -> Value {
    json!({"type": "response", "items": [{"type": "function_call",
        "name": "mcp__slow__ask_name", "call_id": call_id, "arguments": {}}]})
}

/// The mock model serving `steps`, and `slow` configured beside it,
/// recording into the returned file.
async fn model_and_server(scratch: &Scratch, steps: Value) -> (MockModel, PathBuf) {
    let script = Script::from_json_str(&steps.to_string()).unwrap();
    let mock = MockModel::start(script).await.unwrap();
    let site = python_mcp_site().await;
    let record = scratch.work_file("record");
    // The provider's top-level key goes before any table.
    let provider = tiller_test_support::mock_provider_config(&mock.base_url(), "");
    let server = slow_server_toml("slow", &site, &record, "");
    scratch.config(&format!("{provider}\n{server}"));
    (mock, record)
}

/// `tiller` in a pseudo-terminal, working in the scratch folder, idle with
/// the session open and `slow` ready.
fn open_ui(scratch: &Scratch) -> PtyChild {
    let work = scratch.work();
    let command = scratch.tiller_for_pty(&["--cd", work.to_str().unwrap()], "xterm-256color");
    let ui = PtyChild::spawn(command, COLS, ROWS);
    ui.wait_screen("the UI ready with slow started", DEADLINE, |screen| {
        screen.contains("MCP server slow ready")
            && screen
                .lines()
                .last()
                .is_some_and(super::tui::ready_with_a_session)
    });
    ui
}

/// Type `text` and press Enter.
fn submit(ui: &mut PtyChild, text: &str) {
    ui.send(text.as_bytes());
    ui.send(b"\r");
}

/// Wait for `slow`'s question over the screen, the status line saying the
/// turn waits for the person. (A frame is written cell by cell: everything
/// a test checks is in the predicate it waits on.)
fn wait_question(ui: &PtyChild) -> String {
    ui.wait_screen("slow's question", DEADLINE, |screen| {
        screen.contains("slow asks")
            && screen.contains("What is your name?")
            && screen.contains("ctrl+d decline")
            && screen
                .lines()
                .last()
                .is_some_and(|status| status.contains("waiting for you"))
    })
}

/// Ctrl+C twice on the idle UI: it quits with 0.
fn quit(ui: &mut PtyChild) {
    ui.send(b"\x03");
    ui.wait_screen_shows("press ctrl+c again to quit", DEADLINE);
    ui.send(b"\x03");
    let status = ui.wait_exit(PROMPT_EXIT);
    assert_eq!(status.code(), Some(0), "{}", ui.screen());
}

/// Everything the model was sent, as text, to look for a tool's output.
fn sent(mock: &MockModel) -> Vec<String> {
    mock.requests()
        .iter()
        .map(|request| request.body.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_typed_into_the_servers_question_reaches_it_and_the_call_completes() {
    let scratch = Scratch::new();
    let (mock, record) = model_and_server(
        &scratch,
        json!([ask_name_step("call_ask"), text_step("Hello, Ada.")]),
    )
    .await;
    let mut ui = open_ui(&scratch);
    submit(&mut ui, "ask me my name");
    let screen = wait_question(&ui);
    assert!(screen.contains("• Calling slow.ask_name()"), "{screen}");

    ui.send(b"Ada");
    ui.wait_screen_shows("› Name* Ada", DEADLINE);
    ui.send(b"\r");
    let recorded = wait_for_record(&record, "elicited", DEADLINE).await;
    assert_eq!(recorded, "elicited accept Ada");
    // The question closed; the call completed with the server's answer.
    ui.wait_screen("the completed call and the answer", DEADLINE, |screen| {
        screen.contains("✓ Called slow.ask_name()")
            && screen.contains("│ accept: Ada")
            && screen.contains("Hello, Ada.")
            && screen.contains("─ completed")
            && !screen.contains("slow asks")
    });
    assert!(
        sent(&mock).iter().any(|body| body.contains("accept: Ada")),
        "the model never read the call's result"
    );
    quit(&mut ui);
    scratch.wait_no_process_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esc_cancels_the_servers_question_and_ctrl_d_declines_it() {
    let scratch = Scratch::new();
    let (_mock, record) = model_and_server(
        &scratch,
        json!([
            ask_name_step("call_first"),
            ask_name_step("call_second"),
            text_step("Fine, no names."),
        ]),
    )
    .await;
    let mut ui = open_ui(&scratch);
    submit(&mut ui, "ask me twice");

    wait_question(&ui);
    ui.send(b"\x1b");
    let recorded = wait_for_record(&record, "elicited", DEADLINE).await;
    assert_eq!(recorded, "elicited cancel -");
    ui.wait_screen_shows("│ cancel: -", DEADLINE);

    // The second call asks again: Ctrl+D says no.
    wait_question(&ui);
    ui.send(b"\x04");
    let recorded = wait_for_record(&record, "elicited decline", DEADLINE).await;
    assert_eq!(recorded, "elicited decline -");
    // Neither answer stopped the turn: it ends as completed.
    let screen = ui.wait_screen("the declined call and the answer", DEADLINE, |screen| {
        screen.contains("│ decline: -")
            && screen.contains("Fine, no names.")
            && screen.contains("─ completed")
    });
    assert!(!screen.contains("interrupted"), "{screen}");
    quit(&mut ui);
    scratch.wait_no_process_left().await;
}
