//! Bytes no protocol allows, on the real binaries' stdin: a byte that is not
//! UTF-8 and an 11 MiB line get a JSON-RPC error each, and `tiller app-server`
//! and `tiller mcp-server` keep serving (a running turn goes on untouched).

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tiller_mock_model::Step;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::app_server::support::{Fixture, shell};
use super::support::DEADLINE;

/// 11 MiB of JSON-looking bytes with no newline until the end.
fn overlong_line() -> Vec<u8> {
    let mut line = b"{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"x\",\"params\":\"".to_vec();
    line.resize(11 * 1024 * 1024, b'a');
    line.extend_from_slice(b"\"}\n");
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_server_answers_bad_bytes_and_its_running_turn_goes_on() {
    let fixture = Fixture::new(vec![
        shell("call_sleep", "sleep 0.5; echo slept"),
        Step::text("done after the bad bytes"),
    ])
    .await;
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "sleep a little", None).await;

    let before = server.log.len();
    server.write_raw(b"\xff\xfe\xfd\n").await;
    let at = server
        .wait_for("the parse error", |l| l.get("error").is_some())
        .await;
    assert!(at >= before);
    assert_eq!(
        server.log[at]["error"]["code"], -32700,
        "{}",
        server.log[at]
    );
    assert!(server.log[at]["id"].is_null());

    server.write_raw(&overlong_line()).await;
    server
        .wait_for("the too-long error", |l| {
            l["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("longer than"))
        })
        .await;
    // Invalid UTF-8 inside an otherwise fine request.
    server
        .write_raw(b"{\"id\": 500, \"method\": \"thread/interrupt\", \"params\": {\"threadId\": \"\xc3\x28\"}}\n")
        .await;
    server
        .wait_for("the third error", |l| {
            l["error"]["code"] == -32700
                && l["id"].is_null()
                && l["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("UTF-8"))
        })
        .await;

    let completed = server.wait_completed(&turn).await;
    assert_eq!(completed["turn"]["status"], "completed", "{completed}");
    server.close().await.assert_success();
    fixture.finish().await;
}

/// A line from the mcp server's stdout, parsed, within the deadline.
async fn read_message(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> Value {
    let line = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("a line within the deadline")
        .unwrap()
        .expect("the server is still writing");
    serde_json::from_str(&line).unwrap()
}

#[tokio::test]
async fn the_mcp_server_answers_bad_bytes_and_an_11_mib_line_and_keeps_serving() {
    let fixture = Fixture::new(Vec::new()).await;
    let mut command = fixture.scratch.tiller(&["mcp-server"]);
    command.stdin(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    let send = |message: Value| format!("{message}\n").into_bytes();
    stdin
        .write_all(&send(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}),
        ))
        .await
        .unwrap();
    assert!(read_message(&mut lines).await.get("result").is_some());
    stdin
        .write_all(&send(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ))
        .await
        .unwrap();

    stdin.write_all(b"\xff\n").await.unwrap();
    let error = read_message(&mut lines).await;
    assert_eq!(error["error"]["code"], -32700, "{error}");

    stdin.write_all(&overlong_line()).await.unwrap();
    let error = read_message(&mut lines).await;
    assert_eq!(error["error"]["code"], -32600, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("longer than"),
        "{error}"
    );

    stdin
        .write_all(&send(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        ))
        .await
        .unwrap();
    let tools = read_message(&mut lines).await;
    assert_eq!(tools["id"], 1, "{tools}");
    assert!(
        tools["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );

    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("the server exits at EOF")
        .unwrap();
    assert!(status.success(), "{status:?}");
    fixture.finish().await;
}
