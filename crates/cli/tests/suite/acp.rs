//! `tiller acp` through raw lines, for what an SDK client cannot send: lines
//! that are not JSON, not UTF-8 or too long (each answered `-32700`, and the
//! agent keeps serving), a missing API key (authentication required, naming
//! the variable), and an editor that goes away mid-turn (nothing of the
//! turn keeps running).

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

use super::support::{DEADLINE, MockModelProcess, Scratch, shell_step};

/// `tiller acp` with its pipes.
struct Agent {
    child: tokio::process::Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Agent {
    fn start(scratch: &Scratch) -> Agent {
        let mut command = scratch.tiller(&["acp"]);
        command.stdin(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Agent {
            child,
            stdin,
            stdout,
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn send(&mut self, message: Value) {
        let mut line = message.to_string();
        line.push('\n');
        self.send_raw(line.as_bytes()).await;
    }

    /// The next message that is not a notification.
    async fn answer(&mut self) -> Value {
        loop {
            let line = tokio::time::timeout(DEADLINE, self.stdout.next_line())
                .await
                .expect("an answer within the deadline")
                .unwrap()
                .expect("tiller acp still serving");
            let message: Value = serde_json::from_str(&line).unwrap();
            if message.get("method").is_none() {
                return message;
            }
        }
    }

    async fn initialize(&mut self) {
        self.send(
            json!({"jsonrpc": "2.0", "id": "init", "method": "initialize",
            "params": {"protocolVersion": 1, "clientCapabilities": {}}}),
        )
        .await;
        let answer = self.answer().await;
        assert_eq!(answer["result"]["protocolVersion"], 1, "{answer}");
    }
}

#[tokio::test]
async fn bad_lines_get_parse_errors_and_the_agent_keeps_serving() {
    let scratch = Scratch::new();
    let mut agent = Agent::start(&scratch);
    agent.send_raw(b"this is not json\n").await;
    let answer = agent.answer().await;
    assert_eq!(answer["error"]["code"], -32700, "{answer}");

    agent
        .send_raw(b"{\"jsonrpc\": \"2.0\", \"id\": \xff}\n")
        .await;
    let answer = agent.answer().await;
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert!(answer.to_string().contains("not UTF-8"), "{answer}");

    // Longer than the limit (16 MiB), sent in pieces.
    let piece = vec![b'x'; 1024 * 1024];
    for _ in 0..17 {
        agent.send_raw(&piece).await;
    }
    agent.send_raw(b"\n").await;
    let answer = agent.answer().await;
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert!(answer.to_string().contains("longer than"), "{answer}");

    agent.initialize().await;
    drop(agent.stdin);
    let status = tokio::time::timeout(DEADLINE, agent.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_missing_api_key_asks_for_authentication_and_names_the_variable() {
    let scratch = Scratch::new();
    let mut agent = Agent::start(&scratch);
    agent.initialize().await;
    agent
        .send(
            json!({"jsonrpc": "2.0", "id": "new", "method": "session/new",
            "params": {"cwd": scratch.work(), "mcpServers": []}}),
        )
        .await;
    let answer = agent.answer().await;
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    assert!(answer.to_string().contains("OPENAI_API_KEY"), "{answer}");

    // `authenticate` checks the same, and says the same.
    agent
        .send(
            json!({"jsonrpc": "2.0", "id": "auth", "method": "authenticate",
            "params": {"methodId": "env-api-key"}}),
        )
        .await;
    let answer = agent.answer().await;
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    assert!(answer.to_string().contains("OPENAI_API_KEY"), "{answer}");
}

#[tokio::test]
async fn an_editor_that_goes_away_mid_turn_leaves_nothing_running() {
    let scratch = Scratch::new();
    let pid_file = scratch.work_file("sleep.pid");
    let script = scratch.script(json!([shell_step(
        "c1",
        &format!("echo $$ > {}; exec sleep 60", pid_file.display())
    )]));
    let mock = MockModelProcess::start(&scratch, &script).await;
    scratch.mock_config(&mock.url, "");
    let mut agent = Agent::start(&scratch);
    agent.initialize().await;
    agent
        .send(
            json!({"jsonrpc": "2.0", "id": "new", "method": "session/new",
            "params": {"cwd": scratch.work(), "mcpServers": []}}),
        )
        .await;
    let session = agent.answer().await;
    let session_id = session["result"]["sessionId"].clone();
    agent
        .send(
            json!({"jsonrpc": "2.0", "id": "p", "method": "session/prompt",
            "params": {"sessionId": session_id, "prompt": [{"type": "text", "text": "sleep"}]}}),
        )
        .await;
    let pids = tiller_test_support::read_pids_when_ready(&pid_file, 1, DEADLINE).await;
    drop(agent.stdin);
    let status = tokio::time::timeout(DEADLINE, agent.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    tiller_test_support::wait_until_dead(pids[0], DEADLINE).await;
    mock.stop().await;
    scratch.wait_no_process_left().await;
}
