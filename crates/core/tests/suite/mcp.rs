//! MCP servers' tools, against real servers no one here wrote: a script on
//! the official Python SDK's FastMCP (`MCPServer`) and the reference
//! `@modelcontextprotocol/server-everything` from npm, both pinned and
//! installed by the tests. What the server saw is read from its side (the
//! script's record file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;
use tiller_core::config::{McpApproval, McpServerConfig, McpTransport, WireApi};
use tiller_mock_model::Step;
use tiller_protocol::{
    ElicitationAction, Event, EventMsg, McpServerState, McpToolCallStatus, Op, ReviewDecision,
    TurnAbortReason, TurnItem, TurnItemKind,
};
use tiller_test_support::mcp_servers::{
    python_mcp_site, recorded, server_everything, slow_server, wait_for_record,
};
use tiller_test_support::{
    EngineSettings, TestEngine, input_summary, pid_alive, read_pids_when_ready, wait_until_dead,
};

/// How long a server may take to be recorded doing something.
const SERVER_DEADLINE: Duration = Duration::from_secs(20);

/// A session with `servers`, answering from `steps`, on the Responses API
/// (MCP calls do not depend on the wire; the lifecycle suites run on both).
async fn engine_with(servers: Vec<McpServerConfig>, steps: Vec<Step>) -> TestEngine {
    let mut settings = EngineSettings::new(WireApi::Responses);
    settings.mcp_servers = servers;
    TestEngine::start_with(steps, settings).await
}

/// The FastMCP server as `slow`, recording into a file of `dir`.
async fn slow(dir: &TempDir) -> (McpServerConfig, PathBuf) {
    let site = python_mcp_site().await;
    let record = dir.path().join("record");
    (slow_server("slow", &site, &record), record)
}

/// A session with the FastMCP server as `slow` (changed by `configure`),
/// answering from `steps`, once the server is ready; and the server's record.
async fn slow_engine(
    dir: &TempDir,
    configure: impl FnOnce(&mut McpServerConfig),
    steps: Vec<Step>,
) -> (TestEngine, PathBuf) {
    let (mut server, record) = slow(dir).await;
    configure(&mut server);
    let mut engine = engine_with(vec![server], steps).await;
    ready(&mut engine, "slow").await;
    (engine, record)
}

/// Wait until `server` is ready; returns the tools it offers.
async fn ready(engine: &mut TestEngine, server: &str) -> Vec<String> {
    let name = server.to_owned();
    let event = engine
        .wait_for("the MCP server to be ready", move |e| {
            matches!(&e.msg, EventMsg::McpServerStatus { server, status, .. }
                if *server == name && *status == McpServerState::Ready)
        })
        .await;
    match event.msg {
        EventMsg::McpServerStatus { tools, .. } => tools,
        _ => unreachable!(),
    }
}

/// The completed MCP tool call items in the log.
fn completed_calls(log: &[Event]) -> Vec<TurnItemKind> {
    log.iter()
        .filter_map(|e| match &e.msg {
            EventMsg::ItemCompleted {
                item:
                    TurnItem {
                        kind: kind @ TurnItemKind::McpToolCall { .. },
                        ..
                    },
            } => Some(kind.clone()),
            _ => None,
        })
        .collect()
}

fn status_of(kind: &TurnItemKind) -> Option<McpToolCallStatus> {
    match kind {
        TurnItemKind::McpToolCall { status, .. } => *status,
        _ => None,
    }
}

/// The output the model got for `call_id` in `request`.
fn output_for(request: &tiller_mock_model::RecordedRequest, call_id: &str) -> String {
    input_summary(request)
        .into_iter()
        .find_map(|line| {
            line.strip_prefix(&format!("output {call_id}: "))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no output for {call_id} in {:?}", input_summary(request)))
}

/// Offered on both wire APIs (Chat Completions takes the tool as a function).
async fn tools_join_when_ready_and_a_call_returns_its_structured_result(wire: WireApi) {
    let dir = TempDir::new().unwrap();
    let (server, _record) = slow(&dir).await;
    let mut settings = EngineSettings::new(wire);
    settings.mcp_servers = vec![server];
    let mut engine = TestEngine::start_with(
        vec![
            Step::function_call("call_1", "mcp__slow__add", json!({"a": 2, "b": 3})),
            Step::text("five"),
        ],
        settings,
    )
    .await;
    let tools = ready(&mut engine, "slow").await;
    assert!(tools.contains(&"mcp__slow__add".to_owned()), "{tools:?}");

    let turn = engine.start_turn("add").await;
    let terminal = engine.wait_terminal(&turn).await;
    assert!(
        matches!(terminal, EventMsg::TurnCompleted { .. }),
        "{terminal:?}"
    );
    let requests = engine.wait_requests(2).await;
    // The tool is offered with its input schema, made an object schema.
    let spec = requests[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        // Responses names the tool at the top; chat inside `function`.
        .map(|t| {
            if t["function"].is_object() {
                t["function"].clone()
            } else {
                t.clone()
            }
        })
        .find(|t| t["name"] == "mcp__slow__add")
        .expect("mcp__slow__add offered");
    assert_eq!(spec["parameters"]["type"], "object");
    assert!(spec["parameters"]["properties"]["a"].is_object(), "{spec}");
    assert_eq!(output_for(&requests[1], "call_1"), "5");
    let calls = completed_calls(&engine.log);
    let [
        TurnItemKind::McpToolCall {
            server,
            tool,
            arguments,
            status,
            result: Some(result),
            ..
        },
    ] = calls.as_slice()
    else {
        panic!("one completed MCP call with a result: {calls:?}");
    };
    assert_eq!((server.as_str(), tool.as_str()), ("slow", "add"));
    assert_eq!(arguments.0, json!({"a": 2, "b": 3}));
    assert_eq!(*status, Some(McpToolCallStatus::Completed));
    assert_eq!(
        result.structured_content.as_ref().map(|s| s.0.clone()),
        Some(json!({"result": 5}))
    );
    engine.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_during_a_long_call_sends_the_cancel_and_aborts_at_once() {
    let dir = TempDir::new().unwrap();
    let (mut engine, record) = slow_engine(
        &dir,
        |_| {},
        vec![
            Step::function_call("call_1", "mcp__slow__sleep", json!({"seconds": 60})),
            Step::text("after"),
        ],
    )
    .await;
    let turn = engine.start_turn("sleep").await;
    // Progress from the server is passed on while the call runs.
    engine
        .wait_for("progress", |e| {
            matches!(&e.msg, EventMsg::McpToolCallProgress { message, .. } if message.starts_with("slept"))
        })
        .await;

    engine.submit(Op::Interrupt).await.unwrap();
    let terminal = engine.wait_terminal(&turn).await;
    assert_eq!(
        terminal,
        EventMsg::TurnAborted {
            reason: TurnAbortReason::Interrupted,
            unsent_input: vec![]
        }
    );
    let calls = completed_calls(&engine.log);
    assert_eq!(
        calls.iter().map(status_of).collect::<Vec<_>>(),
        [Some(McpToolCallStatus::Aborted)]
    );
    // The server got notifications/cancelled for the call.
    wait_for_record(&record, "cancelled", SERVER_DEADLINE).await;
    assert!(!recorded(&record).contains(&"finished".to_owned()));

    // The conversation stays valid: the next turn carries the aborted output.
    let next = engine.start_turn("again").await;
    engine.wait_terminal(&next).await;
    let requests = engine.wait_requests(2).await;
    assert!(
        output_for(&requests[1], "call_1").contains("aborted by the user"),
        "{:?}",
        input_summary(&requests[1])
    );
    engine.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_the_cancel_does_not_hold_the_turn() {
    let dir = TempDir::new().unwrap();
    let (server, record) = slow(&dir).await;
    let mut engine = engine_with(
        vec![server],
        vec![Step::function_call(
            "call_1",
            "mcp__slow__stubborn",
            json!({"seconds": 60}),
        )],
    )
    .await;
    ready(&mut engine, "slow").await;
    let turn = engine.start_turn("wait").await;
    wait_for_record(&record, "stubborn started", SERVER_DEADLINE).await;
    engine.submit(Op::Interrupt).await.unwrap();
    let terminal = engine.wait_terminal(&turn).await;
    assert!(
        matches!(terminal, EventMsg::TurnAborted { .. }),
        "{terminal:?}"
    );
    // Still sleeping on the server: the turn did not wait for it.
    assert!(!recorded(&record).contains(&"stubborn finished".to_owned()));
    engine.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_timeout_cancels_the_call_and_tells_the_model() {
    let dir = TempDir::new().unwrap();
    let (mut engine, record) = slow_engine(
        &dir,
        |server| {
            server.tool_timeout = Duration::from_millis(500);
        },
        vec![
            Step::function_call("call_1", "mcp__slow__sleep", json!({"seconds": 60})),
            Step::text("it timed out"),
        ],
    )
    .await;
    let turn = engine.start_turn("sleep").await;
    let terminal = engine.wait_terminal(&turn).await;
    assert!(
        matches!(terminal, EventMsg::TurnCompleted { .. }),
        "{terminal:?}"
    );
    let requests = engine.wait_requests(2).await;
    let output = output_for(&requests[1], "call_1");
    assert!(output.contains("tool_timeout_sec"), "{output}");
    wait_for_record(&record, "cancelled", SERVER_DEADLINE).await;
    assert_eq!(
        completed_calls(&engine.log)
            .iter()
            .map(status_of)
            .collect::<Vec<_>>(),
        [Some(McpToolCallStatus::Failed)]
    );
    engine.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_dies_mid_call_fails_the_call_and_the_next_call_restarts_it() {
    let dir = TempDir::new().unwrap();
    let (mut engine, record) = slow_engine(
        &dir,
        |_| {},
        vec![
            Step::function_call("call_1", "mcp__slow__crash", json!({})),
            Step::function_call("call_2", "mcp__slow__add", json!({"a": 1, "b": 1})),
            Step::text("two"),
        ],
    )
    .await;
    let turn = engine.start_turn("crash, then add").await;
    let terminal = engine.wait_terminal(&turn).await;
    assert!(
        matches!(terminal, EventMsg::TurnCompleted { .. }),
        "{terminal:?}"
    );
    let requests = engine.wait_requests(3).await;
    let crashed = output_for(&requests[1], "call_1");
    assert!(crashed.contains("exited during the call"), "{crashed}");
    assert_eq!(output_for(&requests[2], "call_2"), "2");
    // Two processes served the session: the first exited, the second was started for call_2.
    let ups: Vec<String> = recorded(&record)
        .into_iter()
        .filter(|line| line.starts_with("up "))
        .collect();
    assert_eq!(ups.len(), 2, "{ups:?}");
    assert_ne!(ups[0], ups[1]);
    assert_eq!(
        completed_calls(&engine.log)
            .iter()
            .map(status_of)
            .collect::<Vec<_>>(),
        [
            Some(McpToolCallStatus::Failed),
            Some(McpToolCallStatus::Completed)
        ]
    );
    engine.finish().await;
}

/// A "server" that writes its pid and then never says a word.
fn silent_server(dir: &Path, startup: Duration) -> McpServerConfig {
    let pidfile = dir.join("silent.pid");
    let mut config = McpServerConfig::stdio(
        "silent",
        "sh",
        vec![
            "-c".to_owned(),
            format!("echo $$ > '{}'; exec sleep 600", pidfile.display()),
        ],
    );
    config.startup_timeout = startup;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_starts_does_not_delay_the_first_request_and_dies_with_the_session() {
    let dir = TempDir::new().unwrap();
    let mut engine = engine_with(
        vec![silent_server(dir.path(), Duration::from_secs(60))],
        vec![Step::text("hello")],
    )
    .await;
    let turn = engine.start_turn("hi").await;
    let terminal = engine.wait_terminal(&turn).await;
    assert!(
        matches!(terminal, EventMsg::TurnCompleted { .. }),
        "{terminal:?}"
    );
    // The turn ran while the server was still starting: it neither became
    // ready nor failed, and the request offered none of its tools.
    engine.drain_ready();
    assert!(
        !engine.log.iter().any(|e| matches!(&e.msg,
            EventMsg::McpServerStatus { status, .. } if *status != McpServerState::Starting)),
        "{:#?}",
        engine.log
    );
    let requests = engine.wait_requests(1).await;
    assert!(
        !requests[0].body.to_string().contains("mcp__silent"),
        "no tool of a server that is not ready is offered"
    );
    let pid = read_pids_when_ready(&dir.path().join("silent.pid"), 1, SERVER_DEADLINE).await[0];
    assert!(pid_alive(pid));
    engine.finish().await;
    // The session is gone, and its server with it.
    wait_until_dead(pid, SERVER_DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_misses_its_startup_timeout_is_reported_failed_and_killed() {
    let dir = TempDir::new().unwrap();
    let mut engine = engine_with(
        vec![silent_server(dir.path(), Duration::from_millis(300))],
        vec![
            Step::function_call("call_1", "mcp__silent__x", json!({})),
            Step::text("ok"),
        ],
    )
    .await;
    let event = engine
        .wait_for("the failure", |e| {
            matches!(&e.msg, EventMsg::McpServerStatus { status, .. } if *status == McpServerState::Failed)
        })
        .await;
    let EventMsg::McpServerStatus {
        error: Some(error), ..
    } = event.msg
    else {
        panic!("a failure says why");
    };
    assert!(error.contains("startup_timeout_sec"), "{error}");
    let pid = read_pids_when_ready(&dir.path().join("silent.pid"), 1, SERVER_DEADLINE).await[0];
    wait_until_dead(pid, SERVER_DEADLINE).await;
    // A call of one of its tools tries to start it again, and says why it cannot.
    let turn = engine.start_turn("call it").await;
    engine.wait_terminal(&turn).await;
    let requests = engine.wait_requests(2).await;
    let output = output_for(&requests[1], "call_1");
    assert!(
        output.contains("the MCP server silent is not available")
            && output.contains("startup_timeout_sec"),
        "{output}"
    );
    engine.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_mode_asks_before_a_call_and_a_denial_reaches_the_model() {
    let dir = TempDir::new().unwrap();
    let (mut engine, record) = slow_engine(
        &dir,
        |server| {
            server.approval = McpApproval::Prompt;
        },
        vec![
            Step::function_call("call_1", "mcp__slow__add", json!({"a": 1, "b": 2})),
            Step::text("ok"),
        ],
    )
    .await;
    let turn = engine.start_turn("add").await;
    let asked = engine
        .wait_for("the approval request", |e| {
            matches!(e.msg, EventMsg::ExecApprovalRequest { .. })
        })
        .await;
    let EventMsg::ExecApprovalRequest {
        call_id, command, ..
    } = asked.msg
    else {
        unreachable!()
    };
    assert_eq!(command[0], "mcp__slow__add");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&command[1]).unwrap(),
        json!({"a": 1, "b": 2})
    );
    engine
        .submit(Op::Approval {
            call_id,
            decision: ReviewDecision::Denied,
        })
        .await
        .unwrap();
    engine.wait_terminal(&turn).await;
    let requests = engine.wait_requests(2).await;
    assert!(output_for(&requests[1], "call_1").contains("declined"));
    assert!(!recorded(&record).iter().any(|l| l == "started"));
    engine.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elicitation_reaches_the_person_and_their_answer_the_server() {
    let dir = TempDir::new().unwrap();
    let (mut engine, record) = slow_engine(
        &dir,
        |_| {},
        vec![
            Step::function_call("call_1", "mcp__slow__ask_name", json!({})),
            Step::text("hello Ada"),
        ],
    )
    .await;
    let turn = engine.start_turn("ask me").await;
    let asked = engine
        .wait_for("the elicitation", |e| {
            matches!(e.msg, EventMsg::ElicitationRequest { .. })
        })
        .await;
    let EventMsg::ElicitationRequest {
        server,
        request_id,
        message,
        requested_schema,
    } = asked.msg
    else {
        unreachable!()
    };
    assert_eq!(server, "slow");
    assert_eq!(message, "What is your name?");
    assert!(
        requested_schema["properties"]["name"].is_object(),
        "{requested_schema}"
    );
    assert!(engine.session.resolve_elicitation(
        &request_id,
        ElicitationAction::Accept,
        Some(json!({"name": "Ada"}))
    ));
    // Answered once only.
    assert!(
        !engine
            .session
            .resolve_elicitation(&request_id, ElicitationAction::Decline, None)
    );
    engine.wait_terminal(&turn).await;
    wait_for_record(&record, "elicited accept Ada", SERVER_DEADLINE).await;
    let requests = engine.wait_requests(2).await;
    assert_eq!(output_for(&requests[1], "call_1"), "accept: Ada");
    engine.finish().await;
}

/// The reference server, run with node.
async fn everything() -> McpServerConfig {
    let entry = server_everything().await;
    McpServerConfig::stdio(
        "everything",
        "node",
        vec![entry.display().to_string(), "stdio".to_owned()],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_everything_answers_images_and_is_cancelled_mid_operation() {
    let server = everything().await;
    assert!(matches!(server.transport, McpTransport::Stdio { .. }));
    let mut engine = engine_with(
        vec![server],
        vec![
            Step::function_call("call_1", "mcp__everything__get-tiny-image", json!({})),
            Step::function_call(
                "call_2",
                "mcp__everything__trigger-long-running-operation",
                json!({"duration": 60, "steps": 600}),
            ),
            Step::text("after"),
        ],
    )
    .await;
    let tools = ready(&mut engine, "everything").await;
    assert!(
        tools.contains(&"mcp__everything__echo".to_owned()),
        "{tools:?}"
    );
    let turn = engine.start_turn("image, then wait").await;
    engine
        .wait_for("progress", |e| {
            matches!(e.msg, EventMsg::McpToolCallProgress { .. })
        })
        .await;
    engine.submit(Op::Interrupt).await.unwrap();
    let terminal = engine.wait_terminal(&turn).await;
    assert!(
        matches!(terminal, EventMsg::TurnAborted { .. }),
        "{terminal:?}"
    );
    let requests = engine.wait_requests(2).await;
    let image = output_for(&requests[1], "call_1");
    assert!(image.contains("[image: image/png"), "{image}");
    assert_eq!(
        completed_calls(&engine.log)
            .iter()
            .map(status_of)
            .collect::<Vec<_>>(),
        [
            Some(McpToolCallStatus::Completed),
            Some(McpToolCallStatus::Aborted)
        ]
    );
    engine.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_made_while_its_server_starts_waits_for_it() {
    let dir = TempDir::new().unwrap();
    let (server, _record) = slow(&dir).await;
    let mut engine = engine_with(
        vec![server],
        vec![
            Step::function_call("call_1", "mcp__slow__add", json!({"a": 20, "b": 22})),
            Step::text("42"),
        ],
    )
    .await;
    // At once: the server (a Python process) is still starting.
    let turn = engine.start_turn("add").await;
    engine.wait_terminal(&turn).await;
    let requests = engine.wait_requests(2).await;
    assert!(
        !requests[0]
            .tool_names()
            .iter()
            .any(|name| name.starts_with("mcp__")),
        "the first request went before the server was ready"
    );
    assert_eq!(output_for(&requests[1], "call_1"), "42");
    engine.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_task_replacing_the_turn_cancels_its_mcp_call() {
    let dir = TempDir::new().unwrap();
    let (mut engine, record) = slow_engine(
        &dir,
        |_| {},
        vec![
            Step::function_call("call_1", "mcp__slow__sleep", json!({"seconds": 60})),
            Step::text("the new task's answer"),
        ],
    )
    .await;
    let old = engine.start_turn("sleep").await;
    wait_for_record(&record, "started", SERVER_DEADLINE).await;
    let new = engine.start_turn("something else").await;
    assert_eq!(
        engine.wait_terminal(&old).await,
        EventMsg::TurnAborted {
            reason: TurnAbortReason::Replaced,
            unsent_input: vec![]
        }
    );
    let end = engine.wait_terminal(&new).await;
    assert!(matches!(end, EventMsg::TurnCompleted { .. }), "{end:?}");
    wait_for_record(&record, "cancelled", SERVER_DEADLINE).await;
    let requests = engine.wait_requests(2).await;
    assert!(output_for(&requests[1], "call_1").contains("aborted"));
    engine.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_at_the_approval_stops_the_turn_before_the_server_is_called() {
    let dir = TempDir::new().unwrap();
    let (mut engine, record) = slow_engine(
        &dir,
        |server| {
            server
                .tool_approvals
                .insert("sleep".to_owned(), McpApproval::Prompt);
        },
        vec![
            Step::function_call("call_1", "mcp__slow__sleep", json!({"seconds": 60})),
            Step::text("after"),
        ],
    )
    .await;
    let turn = engine.start_turn("sleep").await;
    let asked = engine
        .wait_for("the approval request", |e| {
            matches!(e.msg, EventMsg::ExecApprovalRequest { .. })
        })
        .await;
    let EventMsg::ExecApprovalRequest { call_id, .. } = asked.msg else {
        unreachable!()
    };
    engine
        .submit(Op::Approval {
            call_id,
            decision: ReviewDecision::Abort,
        })
        .await
        .unwrap();
    let end = engine.wait_terminal(&turn).await;
    assert!(matches!(end, EventMsg::TurnAborted { .. }), "{end:?}");
    assert!(!recorded(&record).iter().any(|l| l == "started"));
    // A tool not named in `tools` keeps the server's mode (auto, never asking here).
    engine.finish().await;
}

/// The FastMCP server over streamable HTTP on a free loopback port.
struct HttpServer {
    child: tokio::process::Child,
    url: String,
}

impl HttpServer {
    async fn start(site: &Path, record: &Path, dir: &Path) -> HttpServer {
        let port_file = dir.join("port");
        let child = tokio::process::Command::new("python3")
            .arg(tiller_test_support::mcp_servers::slow_server_script())
            .arg("--http")
            .arg(&port_file)
            .env("PYTHONPATH", site)
            .env("MCP_RECORD", record)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let port = read_pids_when_ready(&port_file, 1, SERVER_DEADLINE).await[0];
        // The port is chosen before the server listens on it.
        let deadline = tokio::time::Instant::now() + SERVER_DEADLINE;
        while tokio::net::TcpStream::connect(("127.0.0.1", port as u16))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the HTTP server never listened"
            );
            // Nothing to wait on but the port itself.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        HttpServer {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamable_http_server_is_called_and_cancelled() {
    let dir = TempDir::new().unwrap();
    let site = python_mcp_site().await;
    let record = dir.path().join("record");
    let mut http = HttpServer::start(&site, &record, dir.path()).await;
    let mut server = McpServerConfig::stdio("web", "unused", Vec::new());
    server.transport = McpTransport::Http {
        url: http.url.clone(),
        bearer_token_env_var: None,
        http_headers: [("X-Tiller-Test".to_owned(), "1".to_owned())].into(),
        env_http_headers: Default::default(),
    };
    let mut engine = engine_with(
        vec![server],
        vec![
            Step::function_call("call_1", "mcp__web__add", json!({"a": 4, "b": 5})),
            Step::function_call("call_2", "mcp__web__sleep", json!({"seconds": 60})),
            Step::text("after"),
        ],
    )
    .await;
    let turn = engine.start_turn("add, then sleep").await;
    wait_for_record(&record, "started", SERVER_DEADLINE).await;
    engine.submit(Op::Interrupt).await.unwrap();
    let end = engine.wait_terminal(&turn).await;
    assert!(matches!(end, EventMsg::TurnAborted { .. }), "{end:?}");
    wait_for_record(&record, "cancelled", SERVER_DEADLINE).await;
    let requests = engine.wait_requests(2).await;
    assert_eq!(output_for(&requests[1], "call_1"), "9");
    engine.finish().await;
    http.child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_speaks_garbage_fails_its_start_and_the_session_goes_on() {
    let mut server = McpServerConfig::stdio(
        "junk",
        "sh",
        vec![
            "-c".to_owned(),
            "echo 'this is not JSON-RPC' >&2; head -c 100000 /dev/urandom; sleep 600".to_owned(),
        ],
    );
    server.startup_timeout = Duration::from_secs(2);
    let mut engine = engine_with(vec![server], vec![Step::text("still here")]).await;
    let failed = engine
        .wait_for("the failure", |e| {
            matches!(&e.msg, EventMsg::McpServerStatus { status, .. } if *status == McpServerState::Failed)
        })
        .await;
    let EventMsg::McpServerStatus {
        error: Some(error), ..
    } = failed.msg
    else {
        panic!("a failure says why");
    };
    assert!(!error.is_empty());
    let turn = engine.start_turn("hi").await;
    let end = engine.wait_terminal(&turn).await;
    assert!(matches!(end, EventMsg::TurnCompleted { .. }), "{end:?}");
    engine.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_configured_with_a_sandbox_runs_confined_and_one_without_does_not() {
    let dir = TempDir::new().unwrap();
    // With the temporary folders excluded, only the session's folder is
    // writable: a temporary folder is outside, wherever the tests run.
    let outside = TempDir::new().unwrap();
    let site = python_mcp_site().await;
    let mut confined = slow_server("boxed", &site, &dir.path().join("boxed-record"));
    confined.sandbox_mode = Some(tiller_core::config::SandboxMode::WorkspaceWrite);
    // It could not write its record there.
    if let McpTransport::Stdio { env, .. } = &mut confined.transport {
        env.remove("MCP_RECORD");
    }
    let free = slow_server("free", &site, &dir.path().join("free-record"));
    let write = |call_id: &str, server: &str, name: &str| {
        let path = outside.path().join(name).display().to_string();
        Step::function_call(
            call_id,
            format!("mcp__{server}__write"),
            json!({"path": path, "text": "hi"}),
        )
    };
    let mut settings = EngineSettings::new(WireApi::Responses);
    settings.mcp_servers = vec![confined, free];
    settings.sandbox.exclude_slash_tmp = true;
    settings.sandbox.exclude_tmpdir_env_var = true;
    let mut engine = TestEngine::start_with(
        vec![
            write("call_1", "boxed", "from-boxed"),
            write("call_2", "free", "from-free"),
            Step::text("done"),
        ],
        settings,
    )
    .await;
    // Both ready, in whichever order.
    let mut waiting = vec!["boxed", "free"];
    while !waiting.is_empty() {
        let event = engine
            .wait_for("the MCP servers to be ready", |e| {
                matches!(&e.msg, EventMsg::McpServerStatus { status, .. }
                    if *status == McpServerState::Ready)
            })
            .await;
        if let EventMsg::McpServerStatus { server, .. } = event.msg {
            waiting.retain(|name| *name != server);
        }
    }
    let turn = engine.start_turn("write").await;
    engine.wait_terminal(&turn).await;
    let requests = engine.wait_requests(3).await;
    let boxed = output_for(&requests[1], "call_1");
    assert!(boxed.contains("Permission denied"), "{boxed}");
    assert!(!outside.path().join("from-boxed").exists());
    assert_eq!(output_for(&requests[2], "call_2"), "written");
    assert!(outside.path().join("from-free").exists());
    engine.finish().await;
}

on_both_wires!(tools_join_when_ready_and_a_call_returns_its_structured_result);
