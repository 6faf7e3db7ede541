//! `tiller acp` through raw lines, for what an SDK client cannot send: lines
//! that are not JSON, not UTF-8 or too long (each answered `-32700`, and the
//! agent keeps serving), a missing API key (authentication required, naming
//! the variable), an editor that goes away mid-turn (nothing of the turn
//! keeps running), and prompts past the limit of those that may wait on a
//! session (refused; the others end with the turn).

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

    /// Send request `method` with `params` under `id`.
    async fn request(&mut self, id: &str, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
    }

    /// Send request `method` and read its answer.
    async fn call(&mut self, id: &str, method: &str, params: Value) -> Value {
        self.request(id, method, params).await;
        self.answer().await
    }

    async fn initialize(&mut self) {
        let answer = self
            .call(
                "init",
                "initialize",
                json!({"protocolVersion": 1, "clientCapabilities": {}}),
            )
            .await;
        assert_eq!(answer["result"]["protocolVersion"], 1, "{answer}");
    }

    /// Close its stdin, as an editor that goes away does; how it exited.
    async fn close(mut self) -> std::process::ExitStatus {
        drop(self.stdin);
        tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("tiller acp exits within the deadline")
            .unwrap()
    }
}

/// `session/new`'s params: the scratch folder, no MCP servers.
fn new_session(scratch: &Scratch) -> Value {
    json!({"cwd": scratch.work(), "mcpServers": []})
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
    let status = agent.close().await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_missing_api_key_asks_for_authentication_and_names_the_variable() {
    let scratch = Scratch::new();
    let mut agent = Agent::start(&scratch);
    agent.initialize().await;
    let answer = agent
        .call("new", "session/new", new_session(&scratch))
        .await;
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    assert!(answer.to_string().contains("OPENAI_API_KEY"), "{answer}");

    // `authenticate` checks the same, and says the same.
    let answer = agent
        .call("auth", "authenticate", json!({"methodId": "env-api-key"}))
        .await;
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
    let session = agent
        .call("new", "session/new", new_session(&scratch))
        .await;
    let session_id = session["result"]["sessionId"].clone();
    agent
        .request(
            "p",
            "session/prompt",
            json!({"sessionId": session_id, "prompt": [{"type": "text", "text": "sleep"}]}),
        )
        .await;
    let pids = tiller_test_support::read_pids_when_ready(&pid_file, 1, DEADLINE).await;
    let status = agent.close().await;
    assert!(status.success(), "{status}");
    tiller_test_support::wait_until_dead(pids[0], DEADLINE).await;
    mock.stop().await;
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn prompts_past_the_limit_are_refused_and_the_rest_end_with_the_turn() {
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
    let session = agent
        .call("new", "session/new", new_session(&scratch))
        .await;
    let session_id = session["result"]["sessionId"].clone();
    let prompt =
        |text: &str| json!({"sessionId": session_id, "prompt": [{"type": "text", "text": text}]});
    agent.request("p0", "session/prompt", prompt("sleep")).await;
    let pids = tiller_test_support::read_pids_when_ready(&pid_file, 1, DEADLINE).await;
    // The running prompt and the ones steered in wait; one more is refused.
    let limit = tiller_acp::MAX_WAITING_PROMPTS;
    for n in 1..=limit {
        agent
            .request(
                &format!("p{n}"),
                "session/prompt",
                prompt(&format!("more {n}")),
            )
            .await;
    }
    let refused = agent.answer().await;
    assert_eq!(refused["id"], format!("p{limit}"), "{refused}");
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("prompts already wait on this session"),
        "{refused}"
    );
    agent
        .send(json!({"jsonrpc": "2.0", "method": "session/cancel",
                     "params": {"sessionId": session_id}}))
        .await;
    let mut cancelled = Vec::new();
    for _ in 0..limit {
        let answer = agent.answer().await;
        assert_eq!(answer["result"]["stopReason"], "cancelled", "{answer}");
        cancelled.push(answer["id"].as_str().unwrap().to_owned());
    }
    cancelled.sort_by_key(|id| id[1..].parse::<usize>().unwrap());
    let expected: Vec<String> = (0..limit).map(|n| format!("p{n}")).collect();
    assert_eq!(cancelled, expected);
    tiller_test_support::wait_until_dead(pids[0], DEADLINE).await;
    let status = agent.close().await;
    assert!(status.success(), "{status}");
    mock.stop().await;
    scratch.wait_no_process_left().await;
}
