//! `tiller app-server --listen ws://127.0.0.1:0` with two WebSocket
//! connections subscribed to one thread (the first starts it, the second
//! resumes it): interrupt → `turn/completed` (read on both connections) and
//! steer (sent on the second) → the next model request; and what an idle
//! connection costs the server in memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tiller_bench_support::samples;
use tiller_mock_model::{Item, Step};
use tiller_test_support::{pid_alive, read_pids_when_ready};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::server::{DEADLINE, Home, Models, status_kib};

const TILLER: &str = env!("CARGO_BIN_EXE_tiller");
/// Idle connections opened for the memory figure.
pub(super) const IDLE_CONNECTIONS: usize = 100;

/// The server, listening on a loopback port.
pub(super) struct WsServer {
    models: Models,
    child: Child,
    url: String,
    home: Home,
}

impl WsServer {
    pub(super) async fn start() -> WsServer {
        let models = Models::start().await;
        let home = Home::new(&models);
        let mut child = Command::new(TILLER)
            .args(["app-server", "--listen", "ws://127.0.0.1:0"])
            .env("TILLER_HOME", home.home.path())
            .env("HOME", home.home.path())
            .env_remove("RUST_LOG")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(DEADLINE, async {
            while let Some(line) = stderr.next_line().await.unwrap() {
                if let Some(url) = line.split("listening on ").nth(1) {
                    return url.trim().to_string();
                }
            }
            panic!("the server exited without listening");
        })
        .await
        .unwrap();
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        WsServer {
            models,
            child,
            url,
            home,
        }
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    pub(super) async fn connect(&self) -> Client {
        let address = self.url.trim_start_matches("ws://");
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (websocket, _) = tokio_tungstenite::client_async(self.url.as_str(), stream)
            .await
            .unwrap();
        let (mut sink, mut stream) = websocket.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(text) = outgoing.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message {
                    let at = Instant::now();
                    let value: Value = serde_json::from_str(text.as_str()).unwrap();
                    if tx.send((at, value)).is_err() {
                        break;
                    }
                }
            }
        });
        let mut client = Client {
            out,
            lines,
            next_id: 0,
        };
        client
            .call(
                "initialize",
                json!({"clientInfo": {"name": "bench", "version": "1"}}),
            )
            .await;
        client
    }

    pub(super) async fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = tokio::time::timeout(DEADLINE, self.child.wait()).await;
        drop(self.home);
        drop(self.models);
    }
}

/// One WebSocket connection.
pub(super) struct Client {
    out: mpsc::UnboundedSender<String>,
    lines: mpsc::UnboundedReceiver<(Instant, Value)>,
    next_id: u64,
}

impl Client {
    pub(super) fn send(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let line = json!({"id": self.next_id, "method": method, "params": params});
        self.out.send(line.to_string()).unwrap();
        self.next_id
    }

    /// The next message matching `pred`, and when it was read.
    pub(super) async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> (Instant, Value) {
        loop {
            let (at, message) = tokio::time::timeout(DEADLINE, self.lines.recv())
                .await
                .expect("the server answers")
                .expect("the connection is open");
            if pred(&message) {
                return (at, message);
            }
        }
    }

    pub(super) async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params);
        let (_, message) = self
            .until(|m| m["id"].as_u64() == Some(id) && m.get("method").is_none())
            .await;
        assert!(message.get("error").is_none(), "{method}: {message}");
        message["result"].clone()
    }
}

/// A thread started on `first` and resumed on `second`.
async fn shared_thread(server: &WsServer, first: &mut Client, second: &mut Client) -> String {
    let work = server.home.work.path().display().to_string();
    let thread = first
        .call(
            "thread/start",
            json!({"cwd": work, "approvalPolicy": "never"}),
        )
        .await["thread"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    second
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    thread
}

fn ended(turn: &str) -> impl Fn(&Value) -> bool + '_ {
    move |m| m["method"] == "turn/completed" && m["params"]["turn"]["id"] == turn
}

/// `turn/interrupt` (on the first connection) → `turn/completed` read on
/// both: the later of the two.
pub(super) async fn interrupt(server: &WsServer) -> Vec<Duration> {
    let runs = samples(200, 20);
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    let mut samples = Vec::with_capacity(runs);
    let mut thread = String::new();
    for run in 0..=runs {
        if run % 20 == 0 {
            thread = shared_thread(server, &mut first, &mut second).await;
        }
        let pidfile = server.home.work.path().join(format!("ws-sleep-{run}.pid"));
        let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
        server.models.mock.push_step(Step::function_call(
            format!("call_{run}"),
            "shell",
            json!({"command": ["bash", "-lc", script]}),
        ));
        let turn = first
            .call(
                "turn/start",
                json!({"threadId": thread, "input": [{"type": "text", "text": "sleep"}]}),
            )
            .await["turn"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let pid = read_pids_when_ready(&pidfile, 1, DEADLINE).await[0];
        let asked = Instant::now();
        first.send(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
        );
        let (at_first, done) = first.until(ended(&turn)).await;
        let (at_second, _) = second.until(ended(&turn)).await;
        assert_eq!(done["params"]["turn"]["status"], "interrupted");
        assert!(
            !pid_alive(pid),
            "run {run}: the sleep is alive at turn/completed"
        );
        if run > 0 {
            samples.push(at_first.max(at_second) - asked);
        }
    }
    samples
}

/// `turn/steer` sent on the second connection while the first's turn
/// streams → the next request's arrival at the model.
pub(super) async fn steer(server: &WsServer) -> Vec<Duration> {
    let runs = samples(200, 20);
    let mock = &server.models.mock;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    let mut before = mock.requests().len();
    let mut samples = Vec::with_capacity(runs);
    let mut thread = String::new();
    for run in 0..=runs {
        if run % 20 == 0 {
            thread = shared_thread(server, &mut first, &mut second).await;
        }
        let words: Vec<String> = (0..400).map(|i| format!("w{i} ")).collect();
        mock.push_step(Step::response(vec![Item::text_deltas(words)]).with_delta_delay(5));
        mock.push_step(Step::text("steered"));
        let turn = first
            .call(
                "turn/start",
                json!({"threadId": thread, "input": [{"type": "text", "text": "stream"}]}),
            )
            .await["turn"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        second
            .until(|m| m["method"] == "item/agentMessage/delta")
            .await;
        let asked = Instant::now();
        second.send(
            "turn/steer",
            json!({"threadId": thread, "expectedTurnId": turn,
                   "input": [{"type": "text", "text": "change of plan"}]}),
        );
        let requests = mock.wait_for_requests(before + 2, DEADLINE).await.unwrap();
        let next = &requests[before + 1];
        assert!(next.rejected.is_none(), "{:?}", next.rejected);
        first.until(ended(&turn)).await;
        second.until(ended(&turn)).await;
        if run > 0 {
            samples.push(next.arrived - asked);
        }
        before += 2;
    }
    samples
}

/// The server's resident memory with [`IDLE_CONNECTIONS`] idle connections
/// (each initialized) over what it held before, per connection, in KiB.
pub(super) async fn idle_connection_kib(server: &WsServer) -> f64 {
    // One connection first: the listener's first accept and its buffers.
    let warm = server.connect().await;
    let before = status_kib(server.pid(), "VmRSS");
    let mut clients = Vec::with_capacity(IDLE_CONNECTIONS);
    for _ in 0..IDLE_CONNECTIONS {
        clients.push(server.connect().await);
    }
    let after = status_kib(server.pid(), "VmRSS");
    drop(clients);
    drop(warm);
    after.saturating_sub(before) as f64 / IDLE_CONNECTIONS as f64
}
