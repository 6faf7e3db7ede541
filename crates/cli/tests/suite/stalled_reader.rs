//! A client that stops reading while a tool prints a gigabyte: the server's
//! memory stays bounded (it drops command output deltas, never anything else),
//! and when the client reads again it gets every response and exactly one end
//! of the turn.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tiller_mock_model::Step;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::app_server::support::{Fixture, shell};
use super::support::{DEADLINE, wait_for_file_within};

/// How long a gigabyte may take through a debug build on two busy cores (it
/// takes about 15 s alone).
const FLOOD_DEADLINE: Duration = Duration::from_secs(180);

/// The most memory a server may hold (its peak resident set).
const MAX_RSS_KIB: u64 = 64 * 1024;

/// A command that prints 1 GB, then leaves `done` beside its folder.
fn gigabyte_then(done: &std::path::Path) -> String {
    format!(
        "head -c 1000000000 /dev/zero | tr '\\0' x; echo; touch {}",
        done.display()
    )
}

/// `VmHWM` of `pid`: the peak resident set, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

struct Raw {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Raw {
    fn spawn(fixture: &Fixture, args: &[&str]) -> Raw {
        let mut command = fixture.scratch.tiller(args);
        command.stdin(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Raw {
            child,
            stdin,
            lines,
        }
    }

    async fn send(&mut self, message: Value) {
        self.stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
    }

    /// Read lines until one satisfies `pred`; every line read is returned.
    async fn read_until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let line = tokio::time::timeout(DEADLINE, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("waited {DEADLINE:?} for {what}"))
                .unwrap()
                .unwrap_or_else(|| panic!("stdout closed before {what}"));
            let value: Value = serde_json::from_str(&line).unwrap();
            let done = pred(&value);
            seen.push(value);
            if done {
                return seen;
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    async fn close(mut self) {
        drop(self.stdin);
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the server exits at EOF")
            .unwrap();
        assert!(status.success(), "{status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_server_client_that_stops_reading_costs_bounded_memory_and_loses_no_end() {
    let done = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    std::fs::remove_file(&done).unwrap();
    let fixture = Fixture::new(vec![
        shell("call_flood", &gigabyte_then(&done)),
        Step::text("printed a gigabyte"),
    ])
    .await;
    let mut server = Raw::spawn(&fixture, &["app-server"]);
    server
        .send(json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "t", "version": "1"}}}))
        .await;
    server
        .send(json!({"id": 2, "method": "thread/start", "params": {"cwd": fixture.scratch.work()}}))
        .await;
    let started = server
        .read_until("thread/start's answer", |l| l["id"] == 2)
        .await;
    let thread = started.last().unwrap()["result"]["thread"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    server
        .send(json!({"id": 3, "method": "turn/start", "params": {"threadId": thread, "input": [{"type": "text", "text": "flood"}]}}))
        .await;
    // Not reading: the tool prints its gigabyte into a server whose client
    // is stalled.
    wait_for_file_within(&done, FLOOD_DEADLINE).await;
    let peak = peak_rss_kib(server.pid());
    assert!(
        peak <= MAX_RSS_KIB,
        "the server grew to {peak} KiB with a stalled client"
    );

    // Reading again: the answer, and the turn's one end.
    let lines = server
        .read_until("turn/completed", |l| l["method"] == "turn/completed")
        .await;
    assert!(
        lines
            .iter()
            .any(|l| l["id"] == 3 && l.get("result").is_some())
    );
    let command = lines
        .iter()
        .find(|l| {
            l["method"] == "item/completed" && l["params"]["item"]["type"] == "commandExecution"
        })
        .expect("the command's item/completed");
    let output = command["params"]["item"]["aggregatedOutput"]
        .as_str()
        .unwrap();
    assert!(
        output.len() > 1000 && output.len() < 2 * 1024 * 1024,
        "{}",
        output.len()
    );
    assert_eq!(
        lines.last().unwrap()["params"]["turn"]["status"],
        "completed"
    );
    server
        .send(json!({"id": 4, "method": "thread/interrupt", "params": {"threadId": thread}}))
        .await;
    let rest = server.read_until("the last answer", |l| l["id"] == 4).await;
    assert!(
        rest.iter().all(|l| l["method"] != "turn/completed"),
        "a second end of the turn: {rest:#?}"
    );
    server.close().await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_client_that_stops_reading_costs_bounded_memory_and_gets_its_answer() {
    let done = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    std::fs::remove_file(&done).unwrap();
    let fixture = Fixture::new(vec![
        shell("call_flood", &gigabyte_then(&done)),
        Step::text("printed a gigabyte"),
    ])
    .await;
    let mut server = Raw::spawn(&fixture, &["mcp-server"]);
    server
        .send(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}),
        )
        .await;
    server.read_until("initialize", |l| l["id"] == 0).await;
    server
        .send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    server
        .send(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "tiller", "arguments": {"prompt": "flood", "cwd": fixture.scratch.work()},
            "_meta": {"progressToken": "p"}}}),
        )
        .await;
    wait_for_file_within(&done, FLOOD_DEADLINE).await;
    let peak = peak_rss_kib(server.pid());
    assert!(
        peak <= MAX_RSS_KIB,
        "the server grew to {peak} KiB with a stalled client"
    );
    let lines = server
        .read_until("the call's answer", |l| l["id"] == 1)
        .await;
    let answer = lines.last().unwrap();
    assert_eq!(
        answer["result"]["structuredContent"]["status"], "completed",
        "{answer}"
    );
    server.close().await;
    fixture.finish().await;
}
