//! `notifications/cancelled` → the tool's process tree is gone.
//!
//! An in-process `TillerMcpServer` on a pipe, a real mock model on 127.0.0.1,
//! raw JSON-RPC lines. Each sample: a `tiller` call whose model runs a shell
//! command that starts a background `sleep` and then sleeps itself (a tree of
//! two processes, both pids written to a file); once both exist, the clock
//! starts, `notifications/cancelled` is written, and the clock stops when
//! neither pid is alive (polled every 50 µs through `/proc`). Prints
//! median / p99 (nearest-rank) / max over the samples and the p90 in a note,
//! and how much else the machine did meanwhile; the row also goes to the
//! summary file (see `tiller-bench-support`).
//!
//! `cargo bench -p tiller-mcp-server --bench cancel` (200 samples;
//! `TILLER_BENCH_QUICK=1` for 20).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;
use tiller_bench_support::{Figure, Report, percentile, runtime, samples};
use tiller_mcp_server::{McpServerOptions, TillerMcpServer, serve_mcp_server};
use tiller_mock_model::{MockModel, Script, Step};
use tiller_test_support::{pid_alive, read_pids_when_ready};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const DEADLINE: Duration = Duration::from_secs(20);

fn main() {
    let runtime = runtime("bench", 2);
    let mut report = Report::start("cancel");
    let mut times = runtime.block_on(run(samples(200, 20)));
    report.durations(
        Figure::new(
            "mcp/cancel",
            "`notifications/cancelled` → tool process tree (2 processes) gone",
        )
        .at_most(20.0, "≤ 20 ms p99"),
        &times,
    );
    times.sort();
    report.note(format!(
        "notifications/cancelled -> process tree gone: p90 {:.2} ms",
        percentile(&times, 90.0).as_secs_f64() * 1e3
    ));
    report.finish();
}

fn tree_call(call_id: &str, pid_file: &Path) -> Step {
    let script = format!(
        "sleep 60 & echo $! > {f}.tmp; echo $$ >> {f}.tmp; mv {f}.tmp {f}; wait",
        f = pid_file.display()
    );
    Step::function_call(call_id, "shell", json!({"command": ["bash", "-c", script]}))
}

async fn run(samples: usize) -> Vec<Duration> {
    tiller_core::process_tree::become_subreaper().unwrap();
    let work = TempDir::new().unwrap();
    let steps = (0..samples)
        .map(|i| tree_call(&format!("call_{i}"), &work.path().join(format!("{i}.pid"))))
        .collect();
    let mock = MockModel::start(Script::new(steps)).await.unwrap();
    let home = tiller_test_support::mock_home(&mock.base_url());
    let server = TillerMcpServer::new(McpServerOptions {
        tiller_home: home.path().to_path_buf(),
    });
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (server_read, server_write) = tokio::io::split(server_io);
    let serving = tokio::spawn(serve_mcp_server(server, server_read, server_write));
    let (read, mut write) = tokio::io::split(client_io);
    let mut lines = BufReader::new(read).lines();
    // Notifications are read and dropped as they come, so the server never blocks on the pipe.
    let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let message: Value = serde_json::from_str(&line).unwrap();
            if message.get("method").is_none() {
                let _ = answers_tx.send(message);
            }
        }
    });
    let send = |message: Value| {
        let mut line = message.to_string();
        line.push('\n');
        line
    };
    write
        .write_all(
            send(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"}}}),
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, answers.recv())
        .await
        .unwrap();
    write
        .write_all(
            send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).as_bytes(),
        )
        .await
        .unwrap();

    let mut times = Vec::with_capacity(samples);
    let mut thread_id: Option<String> = None;
    for i in 0..samples {
        let pid_file = work.path().join(format!("{i}.pid"));
        let request = match &thread_id {
            None => json!({"jsonrpc": "2.0", "id": format!("c{i}"), "method": "tools/call",
                "params": {"name": "tiller", "arguments": {"prompt": "run", "cwd": work.path()}}}),
            Some(thread) => json!({"jsonrpc": "2.0", "id": format!("c{i}"), "method": "tools/call",
                "params": {"name": "tiller-reply", "arguments": {"prompt": "run", "threadId": thread}}}),
        };
        write.write_all(send(request).as_bytes()).await.unwrap();
        let pids = read_pids_when_ready(&pid_file, 2, DEADLINE).await;
        if thread_id.is_none() {
            thread_id = Some(first_thread(home.path()));
        }
        let start = Instant::now();
        write
            .write_all(
                send(
                    json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": format!("c{i}")}}),
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        while pids.iter().any(|&pid| pid_alive(pid)) {
            assert!(start.elapsed() < DEADLINE, "the tree outlived the deadline");
            std::thread::sleep(Duration::from_micros(50));
        }
        times.push(start.elapsed());
        // The turn is over before the next call (the engine answers the interrupt
        // only then); a ping round trip keeps the samples from overlapping.
        write
            .write_all(
                send(json!({"jsonrpc": "2.0", "id": format!("p{i}"), "method": "ping"})).as_bytes(),
            )
            .await
            .unwrap();
        loop {
            let answer = tokio::time::timeout(DEADLINE, answers.recv())
                .await
                .unwrap()
                .unwrap();
            assert_ne!(
                answer["id"],
                json!(format!("c{i}")),
                "a cancelled call got a response"
            );
            if answer["id"] == json!(format!("p{i}")) {
                break;
            }
        }
    }
    write.shutdown().await.unwrap();
    drop(write);
    tokio::time::timeout(DEADLINE, serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    reader.abort();
    mock.shutdown().await;
    times
}

/// The only session's id: the rollout file name ends with it.
fn first_thread(home: &Path) -> String {
    let files = tiller_core::rollout::store::rollout_files(home);
    let path = files.first().expect("one session");
    tiller_core::rollout::store::session_id_of(path)
        .expect("a rollout file name")
        .to_string()
}
