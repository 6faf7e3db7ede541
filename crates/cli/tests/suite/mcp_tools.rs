//! MCP servers' tools through the real `tiller exec`: configured in
//! `config.toml` (or `-c`), called by the model, shown in `--json`, and
//! cancelled on the server when the person presses Ctrl+C. The server is the
//! official Python SDK's FastMCP (see `tiller_test_support::mcp_servers`).

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tiller_test_support::mcp_servers::{
    python_mcp_site, slow_server_script, slow_server_toml, wait_for_record,
};

use tiller_mock_model::{MockModel, Script};
use tiller_test_support::PtyChild;

use super::support::{DEADLINE, PROMPT_EXIT, Running, Scratch, completed_items, run, text_step};

/// A script step calling the MCP tool `name` with `arguments`.
fn mcp_step(call_id: &str, name: &str, arguments: Value) -> Value {
    json!({"type": "response", "items": [{"type": "function_call", "name": name,
        "call_id": call_id, "arguments": arguments}]})
}

/// A scratch whose config has the FastMCP server as `slow`, recording into `record`.
async fn scratch_with_slow_server() -> (Scratch, std::path::PathBuf) {
    let scratch = Scratch::new();
    let site = python_mcp_site().await;
    let record = scratch.work_file("record");
    scratch.config(&slow_server_toml("slow", &site, &record, ""));
    (scratch, record)
}

#[tokio::test]
async fn exec_calls_an_mcp_tool_and_shows_the_call() {
    let (scratch, _record) = scratch_with_slow_server().await;
    let script = scratch.script(json!([
        mcp_step("call_1", "mcp__slow__add", json!({"a": 2, "b": 3})),
        text_step("five"),
    ]));
    let finished = run(&mut scratch.exec(&script, &["--json", "add them"])).await;
    finished.assert_exit(0);
    let events = finished.json();
    let started: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "item.started" && e["item"]["type"] == "mcp_tool_call")
        .collect();
    assert_eq!(started.len(), 1, "{events:#?}");
    assert_eq!(started[0]["item"]["status"], "in_progress");
    let calls = completed_items(&events, "mcp_tool_call");
    let [(_, call)] = calls.as_slice() else {
        panic!("one completed MCP call: {events:#?}");
    };
    assert_eq!(call["server"], "slow");
    assert_eq!(call["tool"], "add");
    assert_eq!(call["arguments"], json!({"a": 2, "b": 3}));
    assert_eq!(call["status"], "completed");
    assert_eq!(call["result"]["structured_content"], json!({"result": 5}));
    assert_eq!(call["error"], Value::Null);
    // The server's start is told on stderr, never on the JSON stream.
    assert!(
        finished.stderr.contains("MCP server slow: ready (7 tools)"),
        "{}",
        finished.stderr
    );
}

#[tokio::test]
async fn ctrl_c_during_an_mcp_call_cancels_it_on_the_server_and_leaves_nothing_running() {
    let scratch = Scratch::new();
    let site = python_mcp_site().await;
    let record = scratch.work_file("record");
    // Configured with -c alone, as a client or a script would.
    let server = format!(
        "mcp_servers.slow={{command = \"python3\", args = [{:?}], env = {{ PYTHONPATH = {:?}, MCP_RECORD = {:?} }}}}",
        slow_server_script().display().to_string(),
        site.display().to_string(),
        record.display().to_string(),
    );
    let script = scratch.script(json!([
        mcp_step("call_1", "mcp__slow__sleep", json!({"seconds": 60})),
        text_step("slept"),
    ]));
    let exec = Running::spawn(&mut scratch.exec(&script, &["-c", &server, "sleep"]));
    wait_for_record(&record, "started", DEADLINE).await;
    exec.signal(Signal::SIGINT);
    let interrupted = exec.finish(PROMPT_EXIT).await;
    interrupted.assert_exit(130);
    wait_for_record(&record, "cancelled", DEADLINE).await;
    assert!(
        interrupted.stderr.contains("slow.sleep aborted"),
        "{}",
        interrupted.stderr
    );
    // The server is gone with tiller.
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn tiller_killed_mid_call_takes_its_mcp_server_with_it() {
    let (scratch, record) = scratch_with_slow_server().await;
    let script = scratch.script(json!([
        mcp_step("call_1", "mcp__slow__stubborn", json!({"seconds": 60})),
        text_step("done"),
    ]));
    let exec = Running::spawn(&mut scratch.exec(&script, &["wait"]));
    wait_for_record(&record, "stubborn started", DEADLINE).await;
    exec.signal(Signal::SIGKILL);
    exec.finish(PROMPT_EXIT).await;
    // No clean-up code ran: the watchdog killed the server's tree.
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn exec_asks_an_elicitation_on_the_terminal() {
    let (scratch, record) = scratch_with_slow_server().await;
    let script = scratch.script(json!([
        mcp_step("call_1", "mcp__slow__ask_name", json!({})),
        text_step("hello"),
    ]));
    let work = scratch.work();
    let command = scratch.tiller_for_pty(
        &[
            "exec",
            "--cd",
            work.to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
            "ask me",
        ],
        "xterm",
    );
    let mut tiller = PtyChild::spawn(command, 100, 30);
    tiller.wait_for("slow asks: What is your name?", DEADLINE);
    tiller.wait_for("[y]es / [n]o / [c]ancel", DEADLINE);
    tiller.send(b"y\r");
    tiller.wait_for("name (string):", DEADLINE);
    tiller.send(b"Ada\r");
    let status = tiller.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{}", tiller.output());
    wait_for_record(&record, "elicited accept Ada", DEADLINE).await;
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn exec_without_a_terminal_declines_an_elicitation_and_says_so() {
    let (scratch, record) = scratch_with_slow_server().await;
    let script = scratch.script(json!([
        mcp_step("call_1", "mcp__slow__ask_name", json!({})),
        text_step("no name then"),
    ]));
    let finished = run(&mut scratch.exec(&script, &["ask me"])).await;
    finished.assert_exit(0);
    wait_for_record(&record, "elicited decline -", DEADLINE).await;
    assert!(
        finished
            .stderr
            .contains("declined: slow asks \"What is your name?\""),
        "{}",
        finished.stderr
    );
}

#[tokio::test]
async fn an_mcp_server_never_sees_the_providers_secrets() {
    let secret = format!("mcp-secret-{}-{:x}", std::process::id(), fastrand::u64(..));
    let scratch = Scratch::new();
    let site = python_mcp_site().await;
    let steps = json!([
        mcp_step(
            "call_1",
            "mcp__slow__env",
            json!({"name": "TILLER_TEST_MCP_KEY"})
        ),
        text_step("done"),
    ]);
    let mock = MockModel::start(Script::from_json_str(&steps.to_string()).unwrap())
        .await
        .unwrap();
    // The provider's credential is read from a variable; the server is started
    // from the same process and must not find it.
    let provider = tiller_test_support::mock_provider_config(
        &mock.base_url(),
        "env_http_headers = { \"api-key\" = \"TILLER_TEST_MCP_KEY\" }\n",
    );
    let record = scratch.work_file("record");
    scratch.config(&format!(
        "{provider}\n{}",
        slow_server_toml("slow", &site, &record, "")
    ));
    let work = scratch.work();
    let mut exec = scratch.tiller(&["exec", "--json", "--cd", work.to_str().unwrap(), "look"]);
    exec.env("TILLER_TEST_MCP_KEY", &secret);
    let finished = run(&mut exec).await;
    finished.assert_exit(0);
    assert!(
        mock.requests()
            .iter()
            .all(|r| r.header("api-key") == Some(secret.as_str()))
    );
    let events = finished.json();
    let calls = completed_items(&events, "mcp_tool_call");
    assert_eq!(
        calls[0].1["result"]["content"][0]["text"], "unset",
        "{events:#?}"
    );
    assert!(!finished.stdout.contains(&secret));
    scratch.wait_no_process_left().await;
}
