//! Raw JSON-RPC lines: malformed input, and no response for a cancelled request.

use std::collections::HashSet;

use serde_json::{Value, json};
use tempfile::TempDir;
use tiller_mock_model::{MockModel, Step};
use tokio::io::{
    AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines, ReadHalf, WriteHalf,
};

use super::support::{DEADLINE, Served, read_pids_when_ready, serve, sleep_call, wait_gone};

struct Wire {
    mock: MockModel,
    writer: WriteHalf<DuplexStream>,
    lines: Lines<BufReader<ReadHalf<DuplexStream>>>,
    /// Ids of every response or error read so far.
    answered: HashSet<String>,
    work: TempDir,
    serving: tokio::task::JoinHandle<()>,
    _home: TempDir,
}

impl Wire {
    async fn start(steps: Vec<Step>) -> Wire {
        let Served {
            mock,
            client_io,
            serving,
            work,
            home,
            ..
        } = serve(steps).await;
        let (read, writer) = tokio::io::split(client_io);
        let mut wire = Wire {
            mock,
            writer,
            lines: BufReader::new(read).lines(),
            answered: HashSet::new(),
            work,
            serving,
            _home: home,
        };
        wire.send(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}),
        )
        .await;
        let init = wire.answer_to(&json!(0)).await;
        assert!(init.get("result").is_some(), "{init}");
        wire.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        wire
    }

    async fn send_line(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).await.unwrap();
        self.writer.write_all(b"\n").await.unwrap();
        self.writer.flush().await.unwrap();
    }

    async fn send(&mut self, message: &Value) {
        self.send_line(&message.to_string()).await;
    }

    /// Read lines until the answer (response or error) with `id`.
    async fn answer_to(&mut self, id: &Value) -> Value {
        self.answer_and_notifications(id).await.0
    }

    /// Read lines until the answer with `id`; also return the notifications read.
    async fn answer_and_notifications(&mut self, id: &Value) -> (Value, Vec<Value>) {
        let mut notifications = Vec::new();
        loop {
            let line = tokio::time::timeout(DEADLINE, self.lines.next_line())
                .await
                .expect("an answer within the deadline")
                .unwrap()
                .expect("the server is still writing");
            let message: Value = serde_json::from_str(&line).unwrap();
            if message.get("method").is_some() {
                notifications.push(message);
                continue;
            }
            self.answered.insert(message["id"].to_string());
            if &message["id"] == id {
                return (message, notifications);
            }
        }
    }

    async fn finish(mut self) {
        // EOF for the server: the read half keeps the pipe itself open.
        self.writer.shutdown().await.unwrap();
        tokio::time::timeout(DEADLINE, self.serving)
            .await
            .expect("the server stops at EOF")
            .unwrap();
        self.mock.shutdown().await;
    }
}

#[tokio::test]
async fn malformed_lines_are_answered_and_the_server_keeps_serving() {
    let mut wire = Wire::start(Vec::new()).await;

    wire.send_line("this is not json").await;
    let parse = wire.answer_to(&Value::Null).await;
    assert_eq!(parse["error"]["code"], -32700, "{parse}");

    wire.send_line(r#"{"jsonrpc": "2.0", "id": 7, "params": {}}"#)
        .await;
    let invalid = wire.answer_to(&json!(7)).await;
    assert_eq!(invalid["error"]["code"], -32600, "{invalid}");

    wire.send_line(r#"{"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "tiller", "arguments": {"prompt": 5}}}"#)
        .await;
    let bad_params = wire.answer_to(&json!(8)).await;
    let refused = bad_params.get("error").is_some() || bad_params["result"]["isError"] == true;
    assert!(refused, "{bad_params}");

    wire.send(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
        .await;
    let tools = wire.answer_to(&json!(9)).await;
    // tiller, tiller-reply, tiller-interrupt, and Codex's codex and codex-reply.
    assert_eq!(
        tools["result"]["tools"].as_array().unwrap().len(),
        5,
        "{tools}"
    );
    wire.finish().await;
}

#[tokio::test]
async fn a_cancelled_call_gets_no_response_and_its_process_is_gone() {
    let pid_dir = TempDir::new().unwrap();
    let pid_file = pid_dir.path().join("sleep.pid");
    let mut wire = Wire::start(vec![sleep_call("call_1", &pid_file)]).await;
    let cwd = wire.work.path().display().to_string();
    wire.send(
        &json!({"jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
        "params": {"name": "tiller", "arguments": {"prompt": "sleep", "cwd": cwd}}}),
    )
    .await;
    let pid = read_pids_when_ready(&pid_file, 1, DEADLINE).await[0];
    wire.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": "call-1", "reason": "test"}}),
    )
    .await;
    assert!(wait_gone(pid, std::time::Duration::from_secs(1)).await);
    // A later request is answered; the cancelled one never is.
    wire.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
        .await;
    wire.answer_to(&json!(2)).await;
    assert!(!wire.answered.contains("\"call-1\""), "{:?}", wire.answered);
    wire.finish().await;
    // Nothing arrived for the cancelled call before the server stopped either.
}

#[tokio::test]
async fn event_notifications_carry_the_request_and_thread_ids_in_meta() {
    let mut wire = Wire::start(vec![Step::text("hello")]).await;
    let cwd = wire.work.path().display().to_string();
    wire.send(
        &json!({"jsonrpc": "2.0", "id": "req-7", "method": "tools/call",
        "params": {"name": "tiller", "arguments": {"prompt": "hi", "cwd": cwd},
                   "_meta": {"progressToken": "tok"}}}),
    )
    .await;
    let (result, notifications) = wire.answer_and_notifications(&json!("req-7")).await;
    let thread_id = &result["result"]["structuredContent"]["threadId"];
    let events: Vec<&Value> = notifications
        .iter()
        .filter(|n| n["method"] == "tiller/event")
        .collect();
    assert!(!events.is_empty());
    for event in &events {
        assert_eq!(event["params"]["_meta"]["requestId"], "req-7", "{event}");
        assert_eq!(&event["params"]["_meta"]["threadId"], thread_id, "{event}");
    }
    let progress: Vec<&Value> = notifications
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), events.len());
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "tok")
    );
    wire.finish().await;
}
