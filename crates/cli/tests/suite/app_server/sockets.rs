//! `tiller app-server --listen ws://…|unix://…`: many clients at once, each a
//! WebSocket connection (tokio-tungstenite, a real client library), every
//! message schema-checked.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tiller_mock_model::{Item, Step};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::schema::check_line;
use super::support::{Fixture, check_protocol, is_response_to, shell, text_input, turn_of};
use crate::suite::support::{DEADLINE, Listening};

/// One WebSocket client connection.
struct Client {
    name: &'static str,
    out: mpsc::UnboundedSender<Message>,
    lines: mpsc::UnboundedReceiver<Value>,
    log: Vec<Value>,
    sent: HashMap<i64, String>,
    next_id: i64,
    scan: usize,
    /// Set when the server closed the connection: its close reason.
    closed: Option<String>,
}

impl Client {
    /// Connect over TCP to `ws://ADDR`, with `token` as a bearer token if given.
    async fn tcp(
        name: &'static str,
        url: &str,
        token: Option<&str>,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let address = url.trim_start_matches("ws://");
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let mut request = url.into_client_request().unwrap();
        if let Some(token) = token {
            request
                .headers_mut()
                .insert("Authorization", format!("Bearer {token}").parse().unwrap());
        }
        let (websocket, _) = tokio_tungstenite::client_async(request, stream).await?;
        Ok(Client::over(name, websocket))
    }

    /// Connect to the unix socket at `path`.
    async fn unix(name: &'static str, path: &str) -> Client {
        let stream = tokio::net::UnixStream::connect(path).await.unwrap();
        let (websocket, _) = tokio_tungstenite::client_async("ws://localhost/", stream)
            .await
            .unwrap();
        Client::over(name, websocket)
    }

    fn over<S>(name: &'static str, websocket: tokio_tungstenite::WebSocketStream<S>) -> Client
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut stream) = websocket.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let value = match message {
                    Message::Text(text) => serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("a frame that is not JSON ({e}): {text}")),
                    Message::Close(frame) => json!({"closed": frame.map(|f| f.reason.to_string())}),
                    _ => continue,
                };
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Client {
            name,
            out,
            lines,
            log: Vec::new(),
            sent: HashMap::new(),
            next_id: 1,
            scan: 0,
            closed: None,
        }
    }

    fn send(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.sent.insert(id, method.to_string());
        let line = json!({"id": id, "method": method, "params": params});
        self.out.send(Message::text(line.to_string())).unwrap();
        id
    }

    /// Answer a request of the server's.
    fn answer(&mut self, id: &Value, result: Value) {
        let line = json!({"id": id, "result": result});
        self.out.send(Message::text(line.to_string())).unwrap();
    }

    /// Read one more message within `deadline`, schema-check it, log it.
    async fn read(&mut self, deadline: tokio::time::Instant, what: &str) -> bool {
        let Ok(next) = tokio::time::timeout_at(deadline, self.lines.recv()).await else {
            panic!(
                "{}: waited for {what}; read so far:\n{}",
                self.name,
                self.dump()
            );
        };
        let Some(value) = next else { return false };
        if let Some(reason) = value.get("closed") {
            self.closed = Some(reason.as_str().unwrap_or_default().to_string());
            return false;
        }
        let sent = value["id"]
            .as_i64()
            .and_then(|id| self.sent.get(&id))
            .map(String::as_str);
        check_line(&value, sent);
        self.log.push(value);
        true
    }

    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> usize {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(at) = self.log[self.scan..].iter().position(&pred) {
                let at = self.scan + at;
                self.scan = at + 1;
                return at;
            }
            self.scan = self.log.len();
            assert!(
                self.read(deadline, what).await,
                "{}: closed before {what}:\n{}",
                self.name,
                self.dump()
            );
        }
    }

    async fn response(&mut self, id: i64) -> Result<Value, Value> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(line) = self.log.iter().find(|l| is_response_to(l, id)) {
                return match line.get("result") {
                    Some(result) => Ok(result.clone()),
                    None => Err(line["error"].clone()),
                };
            }
            assert!(
                self.read(deadline, &format!("the response to {id}")).await,
                "{}: closed before the response to {id}:\n{}",
                self.name,
                self.dump()
            );
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params.clone());
        self.response(id).await.unwrap_or_else(|e| {
            panic!(
                "{}: {method} {params} failed: {e}\n{}",
                self.name,
                self.dump()
            )
        })
    }

    async fn initialize(&mut self) {
        self.call(
            "initialize",
            json!({"clientInfo": {"name": self.name, "version": "1"}}),
        )
        .await;
    }

    /// `thread/start` in the fixture's folder; the thread's id.
    async fn start_thread(&mut self, fixture: &Fixture) -> String {
        let work = fixture.scratch.work();
        self.call("thread/start", json!({"cwd": work.to_str().unwrap()}))
            .await["thread"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn count(&self, method: &str, turn: &str) -> usize {
        self.log
            .iter()
            .filter(|l| l["method"] == method && turn_of(l) == Some(turn))
            .count()
    }

    fn dump(&self) -> String {
        self.log
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let text = l.to_string();
                format!("{i:4} {}", &text[..text.len().min(300)])
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn slow_text(prefix: &str) -> Step {
    let deltas: Vec<String> = (0..400).map(|i| format!("{prefix}{i} ")).collect();
    Step::response(vec![Item::text_deltas(deltas)]).with_delta_delay(10)
}

/// Two WebSocket clients on one thread: started on the first, resumed on the
/// second (which gets the running turn as it stands), steered from the second
/// while the first streams, interrupted from the first. Both see the same one
/// `turn/completed`; every message validates against the 0.171 schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_websocket_clients_share_a_thread_and_see_one_end() {
    let fixture = Fixture::new(vec![slow_text("a"), slow_text("b")]).await;
    let server = Listening::start(&fixture.scratch, &["--listen", "ws://127.0.0.1:0"]).await;
    assert!(server.url.starts_with("ws://127.0.0.1:"), "{}", server.url);
    let mut first = Client::tcp("first", &server.url, None).await.unwrap();
    let mut second = Client::tcp("second", &server.url, None).await.unwrap();
    first.initialize().await;
    second.initialize().await;

    let work = fixture.scratch.work();
    let started = first
        .call("thread/start", json!({"cwd": work.to_str().unwrap()}))
        .await;
    let thread = started["thread"]["id"].as_str().unwrap().to_string();
    let turn = first
        .call(
            "turn/start",
            json!({"threadId": thread, "input": [text_input("write a lot")]}),
        )
        .await["turn"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    first
        .wait_for("a delta on the first client", |l| {
            l["method"] == "item/agentMessage/delta"
        })
        .await;

    // The second client joins the running turn.
    let resumed = second
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    let turns = resumed["thread"]["turns"].as_array().unwrap();
    assert_eq!(turns.last().unwrap()["id"], turn.as_str(), "{resumed:#}");
    assert_eq!(turns.last().unwrap()["status"], "inProgress", "{resumed:#}");
    assert_eq!(resumed["thread"]["status"]["type"], "active", "{resumed:#}");
    second
        .wait_for("a delta on the second client", |l| {
            l["method"] == "item/agentMessage/delta"
        })
        .await;

    // Steered from the second while the first streams.
    let steered = second
        .call(
            "turn/steer",
            json!({"threadId": thread, "expectedTurnId": turn,
                   "input": [text_input("be brief")]}),
        )
        .await;
    assert_eq!(steered["turnId"], turn.as_str());
    for client in [&mut first, &mut second] {
        client
            .wait_for("the steer shown", |l| {
                l["method"] == "item/completed"
                    && l["params"]["item"]["type"] == "userMessage"
                    && l["params"]["item"]["content"][0]["text"] == "be brief"
            })
            .await;
    }
    let cut = fixture.mock.wait_for_requests(2, DEADLINE).await.unwrap();
    assert_eq!(
        cut.len(),
        2,
        "the steer cut the stream into a second request"
    );

    // Interrupted from the first.
    first
        .call(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
        )
        .await;
    for client in [&mut first, &mut second] {
        let at = client
            .wait_for("turn/completed", |l| l["method"] == "turn/completed")
            .await;
        assert_eq!(client.log[at]["params"]["turn"]["status"], "interrupted");
    }
    // Nothing more of the turn comes: a round trip on each, then count.
    for client in [&mut first, &mut second] {
        client
            .call("thread/queue/list", json!({"threadId": thread}))
            .await;
        assert_eq!(
            client.count("turn/completed", &turn),
            1,
            "{}: {}",
            client.name,
            client.dump()
        );
    }
    // The first saw the whole turn: every protocol invariant holds on it.
    check_protocol(&first.log, &first.sent, true);
    let status = server.stop().await;
    assert!(status.success(), "{status:?}");
    fixture.finish().await;
}

/// A connection that drops loses nothing: the turn runs on, and a new
/// connection resumes it and sees its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_leaves_its_turn_running_for_the_next() {
    let fixture = Fixture::new(vec![slow_text("a")]).await;
    let server = Listening::start(&fixture.scratch, &["--listen", "ws://127.0.0.1:0"]).await;
    let mut first = Client::tcp("first", &server.url, None).await.unwrap();
    first.initialize().await;
    let thread = first.start_thread(&fixture).await;
    let turn = first
        .call(
            "turn/start",
            json!({"threadId": thread, "input": [text_input("write a lot")]}),
        )
        .await["turn"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    first
        .wait_for("a delta", |l| l["method"] == "item/agentMessage/delta")
        .await;
    drop(first);

    let mut second = Client::tcp("second", &server.url, None).await.unwrap();
    second.initialize().await;
    let resumed = second
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    assert_eq!(
        resumed["thread"]["turns"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["id"],
        turn.as_str()
    );
    let at = second
        .wait_for("turn/completed", |l| l["method"] == "turn/completed")
        .await;
    assert_eq!(second.log[at]["params"]["turn"]["status"], "completed");
    let status = server.stop().await;
    assert!(status.success(), "{status:?}");
    fixture.finish().await;
}

/// `--ws-auth capability-token`: a client without the token (or with another)
/// is refused at the handshake, before `initialize`; with it, served. A
/// non-loopback address is refused without authentication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_need_the_capability_token_when_one_is_set() {
    let fixture = Fixture::new(Vec::new()).await;
    let token_file = fixture.scratch.work().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let open = fixture
        .scratch
        .tiller(&["app-server", "--listen", "ws://0.0.0.0:0"]);
    let refused = crate::suite::support::run(&mut { open }).await;
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        refused.stderr.contains("--ws-auth capability-token"),
        "{}",
        refused.stderr
    );

    let server = Listening::start(
        &fixture.scratch,
        &[
            "--listen",
            "ws://127.0.0.1:0",
            "--ws-auth",
            "capability-token",
            "--ws-token-file",
            token_file.to_str().unwrap(),
        ],
    )
    .await;
    for token in [None, Some("wrong")] {
        match Client::tcp("stranger", &server.url, token).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{token:?}");
            }
            Err(other) => panic!("{token:?}: refused with {other}"),
            Ok(_) => panic!("{token:?}: a client without the token was served"),
        }
    }
    let mut client = Client::tcp("owner", &server.url, Some("s3cret-token"))
        .await
        .unwrap();
    client.initialize().await;
    let status = server.stop().await;
    assert!(status.success(), "{status:?}");
}

/// `--listen unix://PATH`: the socket is mode 0600 in a folder only its owner
/// enters; two clients on it share a thread; the socket is removed at exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_serves_two_clients_privately() {
    let fixture = Fixture::new(vec![Step::text("over the socket")]).await;
    let socket = fixture.scratch.work().join("private").join("tiller.sock");
    let url = format!("unix://{}", socket.display());
    let server = Listening::start(&fixture.scratch, &["--listen", &url]).await;
    assert_eq!(server.url, url);
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);

    let path = socket.to_str().unwrap();
    let mut first = Client::unix("first", path).await;
    let mut second = Client::unix("second", path).await;
    first.initialize().await;
    second.initialize().await;
    let thread = first.start_thread(&fixture).await;
    second
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    let turn = second
        .call(
            "turn/start",
            json!({"threadId": thread, "input": [text_input("hello")]}),
        )
        .await["turn"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for client in [&mut first, &mut second] {
        let at = client
            .wait_for("turn/completed", |l| l["method"] == "turn/completed")
            .await;
        assert_eq!(client.log[at]["params"]["turn"]["status"], "completed");
        assert_eq!(client.count("turn/started", &turn), 1, "{}", client.dump());
    }
    let status = server.stop().await;
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the socket is removed at exit");
    fixture.finish().await;
}

/// 14 MB of agent message, streamed in 7000 deltas.
fn big_text() -> Step {
    Step::response(vec![Item::text_deltas(
        (0..7_000)
            .map(|i| format!("{i:0>2000}"))
            .collect::<Vec<_>>(),
    )])
}

/// A client that stops reading is closed with the reason once it is far
/// behind; the thread is unharmed and the other client is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_too_far_behind_is_closed_and_the_others_go_on() {
    let fixture = Fixture::new(vec![
        // Three turns of 14 MB (each also in its `item/completed`): about
        // 90 MB for a client that does not read, past the 64 MiB limit and
        // what the kernel's socket buffers hold.
        big_text(),
        big_text(),
        big_text(),
        Step::text("still here"),
    ])
    .await;
    let server = Listening::start(&fixture.scratch, &["--listen", "ws://127.0.0.1:0"]).await;
    let mut reader = Client::tcp("reader", &server.url, None).await.unwrap();
    reader.initialize().await;
    // The stalled client: a raw socket that completes the handshake and
    // never reads again.
    let address = server.url.trim_start_matches("ws://").to_string();
    let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(server.url.as_str(), stream)
        .await
        .unwrap();
    stalled
        .send(Message::text(
            json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "stalled", "version": "1"}}}).to_string(),
        ))
        .await
        .unwrap();
    let thread = reader.start_thread(&fixture).await;
    stalled
        .send(Message::text(
            json!({"id": 2, "method": "thread/resume", "params": {"threadId": thread}}).to_string(),
        ))
        .await
        .unwrap();
    // The stalled client is subscribed once its resume is answered; the
    // reader's round trip after it orders the two.
    tokio::time::timeout(DEADLINE, async {
        loop {
            let loaded = reader
                .call("thread/queue/list", json!({"threadId": thread}))
                .await;
            if loaded.is_object() {
                break;
            }
        }
    })
    .await
    .unwrap();
    for n in 0..3 {
        let turn = reader
            .call(
                "turn/start",
                json!({"threadId": thread, "input": [text_input("14 MB please")]}),
            )
            .await["turn"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let id = turn.clone();
        let at = reader
            .wait_for("turn/completed", move |l| {
                l["method"] == "turn/completed" && l["params"]["turn"]["id"] == id.as_str()
            })
            .await;
        assert_eq!(
            reader.log[at]["params"]["turn"]["status"], "completed",
            "turn {n}: {}",
            reader.log[at]
        );
    }
    // The stalled connection was closed with the reason.
    let closed = tokio::time::timeout(DEADLINE, async {
        while let Some(message) = stalled.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| f.reason.to_string()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the stalled connection is closed");
    assert!(
        closed
            .as_deref()
            .is_some_and(|r| r.contains("too far behind")),
        "{closed:?}"
    );
    // The thread goes on.
    let again = reader
        .call(
            "turn/start",
            json!({"threadId": thread, "input": [text_input("again")]}),
        )
        .await["turn"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    reader
        .wait_for("the last turn's end", move |l| {
            l["method"] == "turn/completed" && turn_of(l) == Some(again.as_str())
        })
        .await;
    let status = server.stop().await;
    assert!(status.success(), "{status:?}");
}

/// `thread/unsubscribe`: the connection gets nothing more of the thread
/// while another connection goes on; `notSubscribed` the second time,
/// `notLoaded` for a thread not loaded; `thread/resume` subscribes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribed_connection_hears_nothing_until_it_resumes() {
    let fixture = Fixture::new(vec![Step::text("unheard"), Step::text("heard")]).await;
    let server = Listening::start(&fixture.scratch, &["--listen", "ws://127.0.0.1:0"]).await;
    let mut first = Client::tcp("first", &server.url, None).await.unwrap();
    let mut second = Client::tcp("second", &server.url, None).await.unwrap();
    first.initialize().await;
    second.initialize().await;
    let thread = first.start_thread(&fixture).await;
    second
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    let status = |v: Value| v["status"].as_str().unwrap().to_owned();
    let unsubscribe = json!({"threadId": thread});
    assert_eq!(
        status(first.call("thread/unsubscribe", unsubscribe.clone()).await),
        "unsubscribed"
    );
    assert_eq!(
        status(first.call("thread/unsubscribe", unsubscribe).await),
        "notSubscribed"
    );
    let dummy = json!({"threadId": "00000000-0000-0000-0000-000000000000"});
    assert_eq!(
        status(first.call("thread/unsubscribe", dummy).await),
        "notLoaded"
    );

    let start = |text: &str| json!({"threadId": thread, "input": [text_input(text)]});
    let unheard = second.call("turn/start", start("unheard")).await["turn"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    second
        .wait_for("the first turn's end", |l| l["method"] == "turn/completed")
        .await;
    // A request after the turn ended: everything before its answer is in.
    let loaded = first.call("thread/loaded/list", json!({})).await;
    assert_eq!(loaded["data"], json!([thread]), "the thread stays loaded");
    assert_eq!(first.count("turn/started", &unheard), 0, "{}", first.dump());
    assert_eq!(
        first.count("turn/completed", &unheard),
        0,
        "{}",
        first.dump()
    );

    first
        .call("thread/resume", json!({"threadId": thread}))
        .await;
    let heard = second.call("turn/start", start("heard")).await["turn"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let heard_id = heard.clone();
    first
        .wait_for("the second turn's end", move |l| {
            l["method"] == "turn/completed" && l["params"]["turn"]["id"] == heard_id.as_str()
        })
        .await;
    assert_eq!(first.count("turn/started", &heard), 1);
    let status = server.stop().await;
    assert!(status.success(), "{status:?}");
    fixture.finish().await;
}

/// An approval goes only to the connections subscribed to its thread; an
/// answer from another connection is ignored, the subscriber's is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_asked_of_subscribers_only() {
    let fixture = Fixture::new(vec![
        shell("call_make", "touch approved-file"),
        Step::text("done"),
    ])
    .await;
    let server = Listening::start(&fixture.scratch, &["--listen", "ws://127.0.0.1:0"]).await;
    let mut owner = Client::tcp("owner", &server.url, None).await.unwrap();
    let mut stranger = Client::tcp("stranger", &server.url, None).await.unwrap();
    owner.initialize().await;
    stranger.initialize().await;
    let work = fixture.scratch.work();
    let thread = owner
        .call(
            "thread/start",
            json!({"cwd": work.to_str().unwrap(), "approvalPolicy": "untrusted"}),
        )
        .await["thread"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let turn = owner
        .call(
            "turn/start",
            json!({"threadId": thread, "input": [text_input("make it")]}),
        )
        .await["turn"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let at = owner
        .wait_for("the approval request", |l| {
            l["method"] == "item/commandExecution/requestApproval"
        })
        .await;
    let id = owner.log[at]["id"].clone();
    // The stranger answers a request it was never sent: ignored.
    stranger.answer(&id, json!({"decision": "accept"}));
    stranger.call("thread/loaded/list", json!({})).await;
    assert!(
        stranger.log.iter().all(|l| l.get("method").is_none()),
        "the stranger was told something: {}",
        stranger.dump()
    );
    owner.call("thread/loaded/list", json!({})).await;
    assert!(!work.join("approved-file").exists());
    assert!(
        owner
            .log
            .iter()
            .all(|l| l["method"] != "serverRequest/resolved"),
        "{}",
        owner.dump()
    );
    owner.answer(&id, json!({"decision": "accept"}));
    let turn_id = turn.clone();
    owner
        .wait_for("turn/completed", move |l| {
            l["method"] == "turn/completed" && l["params"]["turn"]["id"] == turn_id.as_str()
        })
        .await;
    assert!(work.join("approved-file").exists());
    assert_eq!(
        owner
            .log
            .iter()
            .filter(|l| l["method"] == "serverRequest/resolved")
            .count(),
        1
    );
    let status = server.stop().await;
    assert!(status.success(), "{status:?}");
    fixture.finish().await;
}
