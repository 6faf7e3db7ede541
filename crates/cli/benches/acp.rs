//! `session/cancel` → the `session/prompt` answered (`cancelled`).
//!
//! The release `tiller acp` as a child on pipes, a real mock model on
//! 127.0.0.1, raw JSON-RPC lines (ACP v1). Each sample: a prompt whose model
//! runs `sleep 60` (its pid written to a file); once the process exists, the
//! clock starts, `session/cancel` is written, and the clock stops when the
//! prompt's answer is read. The `sleep` must be dead by then. Prints median /
//! p99 (nearest-rank) / max; the row also goes to the summary file (see
//! `tiller-bench-support`).
//!
//! `cargo bench -p tiller-cli --bench acp` (200 samples; `TILLER_BENCH_QUICK=1`
//! for 20).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;
use tiller_bench_support::{Figure, Report, percentile, runtime, samples};
use tiller_mock_model::{MockModel, Script, Step};
use tiller_test_support::{pid_alive, read_pids_when_ready};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const DEADLINE: Duration = Duration::from_secs(20);
const TILLER: &str = env!("CARGO_BIN_EXE_tiller");

fn main() {
    let runtime = runtime("bench", 2);
    let mut report = Report::start("acp");
    let mut times = runtime.block_on(run(samples(200, 20)));
    report.durations(
        Figure::new(
            "acp/cancel",
            "`session/cancel` → `session/prompt` answered `cancelled` (`sleep 60` dead)",
        )
        .at_most(10.0, "≤ 10 ms p99"),
        &times,
    );
    times.sort();
    report.note(format!(
        "session/cancel -> prompt answered: p90 {:.2} ms",
        percentile(&times, 90.0).as_secs_f64() * 1e3
    ));
    report.finish();
}

fn line(message: &Value) -> String {
    let mut line = message.to_string();
    line.push('\n');
    line
}

async fn run(samples: usize) -> Vec<Duration> {
    let work = TempDir::new().unwrap();
    let steps = (0..samples)
        .map(|i| {
            let pid = work.path().join(format!("{i}.pid"));
            let script = format!("echo $$ > {}; exec sleep 60", pid.display());
            Step::function_call(
                format!("call_{i}"),
                "shell",
                json!({"command": ["bash", "-c", script]}),
            )
        })
        .collect();
    let mock = MockModel::start(Script::new(steps)).await.unwrap();
    let home = tiller_test_support::mock_home(&mock.base_url());
    let mut child = tokio::process::Command::new(TILLER)
        .arg("acp")
        .env("TILLER_HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut write = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Updates are read and dropped as they come, so tiller never blocks on the pipe.
    let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let message: Value = serde_json::from_str(&line).unwrap();
            if message.get("method").is_none() {
                let _ = answers_tx.send(message);
            }
        }
    });
    let mut answer = async |write: &mut tokio::process::ChildStdin, request: Value| {
        write.write_all(line(&request).as_bytes()).await.unwrap();
        tokio::time::timeout(DEADLINE, answers.recv())
            .await
            .unwrap()
            .unwrap()
    };
    answer(
        &mut write,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
               "params": {"protocolVersion": 1, "clientCapabilities": {}}}),
    )
    .await;
    let session = answer(
        &mut write,
        json!({"jsonrpc": "2.0", "id": 1, "method": "session/new",
               "params": {"cwd": work.path(), "mcpServers": []}}),
    )
    .await;
    let session_id = session["result"]["sessionId"].clone();
    assert!(session_id.is_string(), "{session}");

    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let id = format!("p{i}");
        let prompt = json!({"jsonrpc": "2.0", "id": id, "method": "session/prompt",
            "params": {"sessionId": session_id, "prompt": [{"type": "text", "text": "sleep"}]}});
        write.write_all(line(&prompt).as_bytes()).await.unwrap();
        let pids = read_pids_when_ready(&work.path().join(format!("{i}.pid")), 1, DEADLINE).await;
        let cancel = json!({"jsonrpc": "2.0", "method": "session/cancel",
            "params": {"sessionId": session_id}});
        let start = Instant::now();
        write.write_all(line(&cancel).as_bytes()).await.unwrap();
        let answered = tokio::time::timeout(DEADLINE, answers.recv())
            .await
            .unwrap()
            .unwrap();
        times.push(start.elapsed());
        assert_eq!(answered["id"], json!(id), "{answered}");
        assert_eq!(answered["result"]["stopReason"], "cancelled", "{answered}");
        assert!(!pid_alive(pids[0]), "the sleep outlived the answer");
    }
    drop(write);
    tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    reader.abort();
    mock.shutdown().await;
    times
}
