//! `tiller-client` driving the real `tiller app-server`, against the mock model
//! in this process: a server killed mid-turn (pending requests and the turn fail
//! once, one disconnect notice, then reconnect + resume), a rejected steer handed
//! back and never retried, an interrupt racing a steer, a queued message
//! that is acknowledged only once the server has it and survives a restart,
//! approvals answered by the caller, and a server in this process.

use std::future::Future;
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use tiller_app_server::{AppServerOptions, run_app_server};
use tiller_client::protocol::{
    RequestId, ServerNotification, ThreadItem, ThreadStartParams, TurnCompletedNotification,
    TurnStatus, UserInput,
};
use tiller_client::{
    Client, ClientError, ClientEvent, ClientOptions, Connector, DISCONNECTED_TURN_MESSAGE,
    EventReceiver, Streams,
};
use tiller_mock_model::{MockModel, Script, Step};
use tokio::sync::mpsc::error::TryRecvError;

use super::app_server::support::shell;
use super::support::{DEADLINE, SCRATCH_TAG_ENV, Scratch, TILLER};

/// A server on a scratch home, pointed at an in-process mock model.
struct Harness {
    scratch: Scratch,
    mock: MockModel,
    client: Client,
    events: EventReceiver,
    /// Every event received so far, in order.
    log: Vec<ClientEvent>,
}

impl Harness {
    async fn start(steps: Vec<Step>) -> Harness {
        Harness::start_with(steps, |options| options).await
    }

    async fn start_with(
        steps: Vec<Step>,
        adjust: impl FnOnce(ClientOptions) -> ClientOptions,
    ) -> Harness {
        let scratch = Scratch::new();
        let mock = MockModel::start(Script::new(steps)).await.unwrap();
        scratch.mock_config(&mock.base_url(), "");
        let home = scratch.home();
        let options = ClientOptions::new(TILLER)
            .cwd(scratch.work())
            .env("TILLER_HOME", &home)
            .env("HOME", &home)
            .env(SCRATCH_TAG_ENV, home.parent().unwrap())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL");
        let (client, events) = Client::spawn(adjust(options)).await.unwrap();
        Harness {
            scratch,
            mock,
            client,
            events,
            log: Vec::new(),
        }
    }

    async fn thread_start(&self) -> String {
        self.thread_start_with_policy("never").await
    }

    async fn thread_start_with_policy(&self, approval_policy: &str) -> String {
        let params = ThreadStartParams {
            cwd: Some(self.scratch.work().display().to_string()),
            approval_policy: Some(json!(approval_policy)),
            ..ThreadStartParams::default()
        };
        self.client.thread_start(params).await.unwrap().thread.id
    }

    async fn turn_start(&self, thread: &str, prompt: &str) -> String {
        self.client
            .turn_start(thread, text(prompt), None)
            .await
            .unwrap()
            .turn
            .id
    }

    /// The next event that `wanted` picks, within [`DEADLINE`]; everything
    /// received on the way is logged.
    async fn wait_for<T>(&mut self, what: &str, wanted: impl Fn(&ClientEvent) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => panic!("the event stream ended before {what}: {:#?}", self.log),
                Err(_) => panic!("waited {DEADLINE:?} for {what}: {:#?}", self.log),
            };
            let found = wanted(&event);
            self.log.push(event);
            if let Some(found) = found {
                return found;
            }
        }
    }

    /// Move every event already received into the log.
    fn drain(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            self.log.push(event);
        }
    }

    async fn wait_turn_completed(&mut self, turn: &str) -> TurnCompletedNotification {
        self.wait_for(&format!("turn/completed of {turn}"), |event| {
            turn_completed(event).filter(|c| c.turn.id == turn).cloned()
        })
        .await
    }

    async fn wait_command_started(&mut self, turn: &str) {
        self.wait_for("the command's item/started", |event| match event {
            ClientEvent::Notification(ServerNotification::ItemStarted(started))
                if started.turn_id == turn
                    && matches!(started.item, ThreadItem::CommandExecution { .. }) =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    }

    /// Wait for the one `Disconnected` of the current server; nothing may come
    /// after it.
    async fn wait_disconnected(&mut self, expect_requested: bool) {
        let requested = self
            .wait_for("the disconnect notice", |event| match event {
                ClientEvent::Disconnected { requested, .. } => Some(*requested),
                _ => None,
            })
            .await;
        assert_eq!(requested, expect_requested, "{:#?}", self.log);
        assert!(
            matches!(self.events.try_recv(), Err(TryRecvError::Empty)),
            "events after the disconnect notice: {:#?}",
            self.log
        );
    }

    /// The server's pid, as nix wants it.
    fn server_pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.client.pid().unwrap()).unwrap())
    }

    /// Freeze the server (SIGSTOP): it can answer nothing until it is
    /// continued or killed, so a request made now is pending for sure.
    fn freeze_server(&self) -> Pid {
        let pid = self.server_pid();
        kill(pid, Signal::SIGSTOP).unwrap();
        pid
    }

    /// How many model requests contain `needle`.
    fn model_requests_with(&self, needle: &str) -> usize {
        self.mock
            .requests()
            .iter()
            .filter(|r| r.raw_body.contains(needle))
            .count()
    }

    /// Stop the server (one requested disconnect), check the mock never had to
    /// refuse a request, and that no process is left.
    async fn finish(mut self) {
        let status = self.client.shutdown().await;
        assert!(
            status.is_some_and(|s| s.success()),
            "the server did not exit cleanly: {status:?}"
        );
        self.wait_disconnected(true).await;
        let refused: Vec<_> = self
            .mock
            .requests()
            .into_iter()
            .filter_map(|r| r.rejected)
            .collect();
        assert!(
            refused.is_empty(),
            "the mock refused requests: {refused:#?}"
        );
        self.scratch.wait_no_process_left().await;
        self.mock.shutdown().await;
    }
}

fn text(text: &str) -> Vec<UserInput> {
    vec![UserInput::Text {
        text: text.to_owned(),
    }]
}

/// A `shell` call that runs until it is killed.
fn sleep_step(call_id: &str) -> Step {
    Step::function_call(
        call_id,
        "shell",
        json!({"command": ["bash", "-lc", "sleep 60"]}),
    )
}

fn turn_completed(event: &ClientEvent) -> Option<&TurnCompletedNotification> {
    match event {
        ClientEvent::Notification(ServerNotification::TurnCompleted(completed)) => Some(completed),
        _ => None,
    }
}

/// Poll `request` once, so that it has been handed to the client (requests go
/// out in call order, on their first poll), and return it to be awaited later.
async fn sent<F: Future>(request: F) -> std::pin::Pin<Box<F>> {
    let mut request = Box::pin(request);
    tokio::select! {
        biased;
        _ = &mut request => panic!("a request to a frozen server was answered"),
        () = std::future::ready(()) => {}
    }
    request
}

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {DEADLINE:?}"))
}

#[tokio::test]
async fn server_killed_mid_turn_fails_each_pending_request_and_the_turn_once_then_reconnect_resumes()
 {
    let mut h = Harness::start(vec![sleep_step("c1"), Step::text("back again")]).await;
    let thread = h.thread_start().await;
    let turn = h.turn_start(&thread, "run the long command").await;
    h.wait_command_started(&turn).await;

    let server = h.freeze_server();
    let listed = sent(h.client.queue_list(&thread)).await;
    let interrupted = sent(h.client.thread_interrupt(&thread)).await;
    let steered = sent(h.client.turn_steer(
        &thread,
        &turn,
        text("steer lost with the server"),
        Some("s1".to_owned()),
    ))
    .await;
    kill(server, Signal::SIGKILL).unwrap();

    assert!(matches!(
        within("queue_list", listed).await,
        Err(ClientError::Disconnected)
    ));
    assert!(matches!(
        within("thread_interrupt", interrupted).await,
        Err(ClientError::Disconnected)
    ));
    let rejected = within("turn_steer", steered).await.unwrap_err();
    assert!(matches!(rejected.error, ClientError::Disconnected));
    assert_eq!(rejected.input, text("steer lost with the server"));
    h.wait_disconnected(false).await;

    // The turn was reported failed, once, by the client; nothing else ended it.
    let ends: Vec<&TurnCompletedNotification> = h.log.iter().filter_map(turn_completed).collect();
    assert_eq!(ends.len(), 1, "{:#?}", h.log);
    assert_eq!(ends[0].turn.id, turn);
    assert_eq!(ends[0].turn.status, TurnStatus::Failed);
    assert_eq!(
        ends[0].turn.error.as_ref().map(|e| e.message.as_str()),
        Some(DISCONNECTED_TURN_MESSAGE)
    );
    let notices = h
        .log
        .iter()
        .filter(|e| matches!(e, ClientEvent::Disconnected { .. }))
        .count();
    assert_eq!(notices, 1, "{:#?}", h.log);
    assert!(!h.client.is_connected());
    assert!(matches!(
        h.client.queue_list(&thread).await,
        Err(ClientError::Disconnected)
    ));
    // The orphan watchdog kills the `sleep 60` the dead server left behind.
    h.scratch.wait_no_process_left().await;

    let resumed = h.client.reconnect().await.unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].thread.id, thread);
    let last = resumed[0].thread.turns.last().expect("the killed turn");
    assert_eq!(last.id, turn);
    assert_ne!(last.status, TurnStatus::InProgress, "{last:#?}");
    assert_eq!(h.client.generation(), 2);
    assert!(h.client.is_connected());

    let next = h.turn_start(&thread, "carry on").await;
    let completed = h.wait_turn_completed(&next).await;
    assert_eq!(
        completed.turn.status,
        TurnStatus::Completed,
        "{completed:#?}"
    );
    let requests = h.mock.requests();
    let last_request = requests.last().unwrap();
    assert!(last_request.raw_body.contains("run the long command"));
    assert!(last_request.raw_body.contains("carry on"));
    h.finish().await;
}

#[tokio::test]
async fn rejected_steer_is_handed_back_to_the_caller_and_never_retried() {
    let mut h = Harness::start(vec![sleep_step("c1"), Step::text("fine")]).await;
    let thread = h.thread_start().await;

    // No turn running.
    let rejected = h
        .client
        .turn_steer(
            &thread,
            "no-such-turn",
            text("STEER-WITHOUT-TURN"),
            Some("s1".to_owned()),
        )
        .await
        .unwrap_err();
    assert!(rejected.error.is_invalid_request(), "{rejected:?}");
    assert_eq!(rejected.input, text("STEER-WITHOUT-TURN"));
    assert_eq!(rejected.client_user_message_id.as_deref(), Some("s1"));

    // A turn running, but not the one the caller believes.
    let turn = h.turn_start(&thread, "run the long command").await;
    h.wait_command_started(&turn).await;
    let rejected = h
        .client
        .turn_steer(
            &thread,
            "stale-turn",
            text("STEER-STALE-TURN"),
            Some("s2".to_owned()),
        )
        .await
        .unwrap_err();
    assert!(rejected.error.is_invalid_request(), "{rejected:?}");
    assert_eq!(rejected.input, text("STEER-STALE-TURN"));

    h.client.thread_interrupt(&thread).await.unwrap();
    let interrupted = h.wait_turn_completed(&turn).await;
    assert_eq!(interrupted.turn.status, TurnStatus::Interrupted);
    assert!(interrupted.unsent_input.is_empty(), "{interrupted:#?}");
    let next = h.turn_start(&thread, "go on").await;
    let completed = h.wait_turn_completed(&next).await;
    assert_eq!(completed.turn.status, TurnStatus::Completed);

    // Neither text ever reached the model, nor showed up as a message.
    assert_eq!(h.mock.requests().len(), 2);
    for steer in ["STEER-WITHOUT-TURN", "STEER-STALE-TURN"] {
        assert_eq!(h.model_requests_with(steer), 0, "{steer} reached the model");
    }
    h.drain();
    let shown = h
        .log
        .iter()
        .filter(|e| format!("{e:?}").contains("STEER-"))
        .count();
    assert_eq!(shown, 0, "a rejected steer was shown: {:#?}", h.log);
    h.finish().await;
}

#[tokio::test]
async fn interrupt_while_a_steer_is_in_flight_never_replays_the_steer() {
    let mut h = Harness::start(vec![sleep_step("c1"), Step::text("second answer")]).await;
    let thread = h.thread_start().await;
    let turn = h.turn_start(&thread, "run the long command").await;
    h.wait_command_started(&turn).await;

    // The steer goes out first, the interrupt right behind it, before any answer.
    let (steered, interrupted) = tokio::join!(
        h.client.turn_steer(
            &thread,
            &turn,
            text("STEER-IN-FLIGHT"),
            Some("s1".to_owned())
        ),
        h.client.turn_interrupt(&thread, &turn),
    );
    interrupted.unwrap();
    let completed = h.wait_turn_completed(&turn).await;
    assert_eq!(completed.turn.status, TurnStatus::Interrupted);
    // The text comes back to the caller exactly one way: refused, or unsent.
    match steered {
        Ok(_) => assert_eq!(completed.unsent_input, text("STEER-IN-FLIGHT")),
        Err(rejected) => {
            assert_eq!(rejected.input, text("STEER-IN-FLIGHT"));
            assert!(completed.unsent_input.is_empty(), "{completed:#?}");
        }
    }

    let next = h.turn_start(&thread, "second prompt").await;
    let completed = h.wait_turn_completed(&next).await;
    assert_eq!(completed.turn.status, TurnStatus::Completed);
    assert_eq!(h.mock.requests().len(), 2);
    assert_eq!(
        h.model_requests_with("STEER-IN-FLIGHT"),
        0,
        "the interrupted steer reached the model: {:#?}",
        h.mock.requests().last().map(|r| &r.body)
    );
    h.finish().await;
}

#[tokio::test]
async fn queued_message_is_acknowledged_only_once_the_server_has_it_and_survives_a_restart() {
    let mut h = Harness::start(vec![
        sleep_step("c1"),
        Step::text("second turn done"),
        Step::text("queued turn done"),
    ])
    .await;
    let thread = h.thread_start().await;
    let turn = h.turn_start(&thread, "run the long command").await;
    h.wait_command_started(&turn).await;

    let entry = h
        .client
        .queue_add(&thread, text("QUEUED-ONE"), Some("q1".to_owned()))
        .await
        .unwrap();
    // The server announced the change (after saving it) before it answered.
    h.drain();
    assert!(
        h.log.iter().any(|e| matches!(
            e,
            ClientEvent::Notification(ServerNotification::QueueChanged(c)) if c.thread_id == thread
        )),
        "{:#?}",
        h.log
    );
    assert_eq!(entry.client_user_message_id, "q1");
    assert_eq!(
        h.client.queue_list(&thread).await.unwrap(),
        vec![entry.clone()]
    );

    // A message the server never answered for is never acknowledged.
    let server = h.freeze_server();
    let lost = sent(
        h.client
            .queue_add(&thread, text("QUEUED-LOST"), Some("q2".to_owned())),
    )
    .await;
    kill(server, Signal::SIGKILL).unwrap();
    assert!(matches!(
        within("queue_add", lost).await,
        Err(ClientError::Disconnected)
    ));
    h.wait_disconnected(false).await;
    h.scratch.wait_no_process_left().await;

    h.client.reconnect().await.unwrap();
    let queue = h.client.queue_list(&thread).await.unwrap();
    assert_eq!(queue.len(), 1, "{queue:#?}");
    assert_eq!(queue[0].id, entry.id);
    assert_eq!(queue[0].client_user_message_id, "q1");
    assert_eq!(queue[0].input, text("QUEUED-ONE"));

    // The next turn completes, and the queued message starts the one after it.
    let next = h.turn_start(&thread, "second prompt").await;
    let completed = h.wait_turn_completed(&next).await;
    assert_eq!(completed.turn.status, TurnStatus::Completed);
    let queued = h
        .wait_for("the queued turn's turn/completed", |event| {
            turn_completed(event)
                .filter(|c| c.turn.id != next && c.turn.id != turn)
                .cloned()
        })
        .await;
    assert_eq!(queued.turn.status, TurnStatus::Completed, "{queued:#?}");
    assert_eq!(h.mock.requests().len(), 3);
    let last = h.mock.requests().pop().unwrap();
    assert!(last.raw_body.contains("QUEUED-ONE"), "{:#}", last.body);
    assert_eq!(h.model_requests_with("QUEUED-LOST"), 0);
    assert!(h.client.queue_list(&thread).await.unwrap().is_empty());
    h.finish().await;
}

#[tokio::test]
async fn a_request_not_answered_in_time_fails_with_timeout_and_the_client_goes_on() {
    let h = Harness::start_with(vec![], |options| {
        options.timeout("thread/queue/list", std::time::Duration::from_millis(200))
    })
    .await;
    let thread = h.thread_start().await;

    let server = h.freeze_server();
    let late = h.client.queue_list(&thread).await;
    kill(server, Signal::SIGCONT).unwrap();
    match late {
        Err(ClientError::Timeout { method }) => assert_eq!(method, "thread/queue/list"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The late answer to the first request is not mistaken for this one's.
    assert!(h.client.queue_list(&thread).await.unwrap().is_empty());
    assert!(h.client.is_connected());
    h.finish().await;
}

/// `tiller app-server --listen URL` in `scratch`; the URL it listens on.
async fn listening(scratch: &Scratch, listen: &str) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut command = scratch.tiller(&["app-server", "--listen", listen]);
    command
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if let Some(url) = line.split("listening on ").nth(1) {
                return url.trim().to_owned();
            }
        }
        panic!("the server exited without listening");
    })
    .await
    .expect("the server says where it listens");
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    (child, url)
}

/// The next event on `events` that `wanted` picks, within [`DEADLINE`].
async fn next_event<T>(
    events: &mut EventReceiver,
    what: &str,
    wanted: impl Fn(&ClientEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match events.recv().await {
                Some(event) => {
                    if let Some(found) = wanted(&event) {
                        return found;
                    }
                }
                None => panic!("the event stream ended before {what}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waited {DEADLINE:?} for {what}"))
}

/// Wait for `turn`'s `turn/completed` on `events`.
async fn completed(events: &mut EventReceiver, turn: &str) -> TurnCompletedNotification {
    next_event(events, &format!("turn/completed of {turn}"), |event| {
        turn_completed(event).filter(|c| c.turn.id == turn).cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_speaks_websocket_and_unix_sockets_to_a_listening_server() {
    let scratch = Scratch::new();
    let mock = MockModel::start(Script::new(vec![
        Step::text("over ws"),
        Step::text("over unix"),
    ]))
    .await
    .unwrap();
    scratch.mock_config(&mock.base_url(), "");
    let params = || ThreadStartParams {
        cwd: Some(scratch.work().display().to_string()),
        approval_policy: Some(json!("never")),
        ..ThreadStartParams::default()
    };
    for (listen, answer) in [
        ("ws://127.0.0.1:0".to_owned(), "over ws"),
        (
            format!("unix://{}", scratch.work().join("control.sock").display()),
            "over unix",
        ),
    ] {
        let (mut server, url) = listening(&scratch, &listen).await;
        let (client, mut events) = Client::spawn(ClientOptions::connect(&url).unwrap())
            .await
            .unwrap();
        assert_eq!(client.pid(), None, "no process of the client's");
        let thread = client.thread_start(params()).await.unwrap().thread.id;
        let turn = client
            .turn_start(&thread, text("hello"), None)
            .await
            .unwrap()
            .turn
            .id;
        let done = completed(&mut events, &turn).await;
        assert_eq!(done.turn.status, TurnStatus::Completed);
        // Closing the connection leaves the server and the thread: a
        // reconnect resumes it on a new connection.
        assert_eq!(client.shutdown().await, None);
        let resumed = client.reconnect().await.unwrap();
        assert_eq!(resumed.len(), 1);
        let turns = &resumed[0].thread.turns;
        assert_eq!(turns.len(), 1);
        assert!(
            turns[0].items.iter().any(
                |item| matches!(item, ThreadItem::AgentMessage { text, .. } if text == answer)
            ),
            "{turns:?}"
        );
        client.shutdown().await;
        let pid = Pid::from_raw(i32::try_from(server.id().unwrap()).unwrap());
        kill(pid, Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(DEADLINE, server.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status:?}");
    }
    let refused = ClientOptions::connect("http://127.0.0.1:1").err().unwrap();
    assert!(refused.to_string().contains("ws://"), "{refused}");
}

/// What a shell command that asks for approval leaves behind when it runs:
/// a file, and output that is not in the command's text (so only output
/// that ran can carry it to the model).
const APPROVED_FILE: &str = "made-after-approval";
const APPROVED_OUTPUT: &str = "RAN-AFTER-APPROVAL-42";

fn approval_steps() -> Vec<Step> {
    vec![
        shell(
            "call_make",
            &format!("touch {APPROVED_FILE} && echo RAN-AFTER-APPROVAL-$((40 + 2))"),
        ),
        Step::text("done"),
    ]
}

impl Harness {
    /// Under `untrusted`, a turn whose command asks for approval; the thread
    /// and the turn.
    async fn start_approval_turn(&self) -> (String, String) {
        let thread = self.thread_start_with_policy("untrusted").await;
        let turn = self.turn_start(&thread, "make the file").await;
        (thread, turn)
    }

    /// The command's approval request, handed to the caller; its id.
    async fn approval_request(&mut self, thread: &str, turn: &str) -> RequestId {
        let (id, params) = self
            .wait_for("the approval request", |event| match event {
                ClientEvent::ServerRequest { id, method, params }
                    if method == "item/commandExecution/requestApproval" =>
                {
                    Some((id.clone(), params.clone()))
                }
                _ => None,
            })
            .await;
        assert_eq!(params["threadId"], thread, "{params}");
        assert_eq!(params["turnId"], turn, "{params}");
        assert!(
            params["command"].as_str().unwrap().contains(APPROVED_FILE),
            "{params}"
        );
        assert!(
            !self.scratch.work().join(APPROVED_FILE).exists(),
            "the command ran before the answer"
        );
        id
    }

    /// Whether the server said the request `id` of `thread` needs no more answer.
    fn resolved(&self, thread: &str, id: &RequestId) -> bool {
        self.log.iter().any(|event| {
            matches!(
                event,
                ClientEvent::Notification(ServerNotification::ServerRequestResolved(r))
                    if &r.request_id == id && r.thread_id == thread
            )
        })
    }

    /// The one command of `turn`, as it completed: its status and output.
    fn completed_command(&self, turn: &str) -> (String, Option<String>) {
        let commands: Vec<(String, Option<String>)> = self
            .log
            .iter()
            .filter_map(|event| match event {
                ClientEvent::Notification(ServerNotification::ItemCompleted(done))
                    if done.turn_id == turn =>
                {
                    match &done.item {
                        ThreadItem::CommandExecution {
                            status,
                            aggregated_output,
                            ..
                        } => Some((status.clone(), aggregated_output.clone())),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect();
        assert_eq!(commands.len(), 1, "{:#?}", self.log);
        commands[0].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_comes_to_the_caller_and_accepting_it_runs_the_command() {
    let mut h =
        Harness::start_with(approval_steps(), |options| options.server_requests(true)).await;
    let (thread, turn) = h.start_approval_turn().await;
    let id = h.approval_request(&thread, &turn).await;
    h.client
        .respond(id.clone(), Ok(json!({"decision": "accept"})))
        .unwrap();
    let completed = h.wait_turn_completed(&turn).await;
    assert_eq!(
        completed.turn.status,
        TurnStatus::Completed,
        "{completed:#?}"
    );
    assert!(h.resolved(&thread, &id), "{:#?}", h.log);
    let (status, output) = h.completed_command(&turn);
    assert_eq!(status, "completed");
    assert!(
        output
            .as_deref()
            .is_some_and(|o| o.contains(APPROVED_OUTPUT)),
        "{output:?}"
    );
    assert!(h.scratch.work().join(APPROVED_FILE).exists());
    // The model saw what the command printed.
    assert_eq!(h.mock.requests().len(), 2);
    assert_eq!(h.model_requests_with(APPROVED_OUTPUT), 1);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_approval_leaves_the_command_unrun_and_the_turn_goes_on() {
    let mut h =
        Harness::start_with(approval_steps(), |options| options.server_requests(true)).await;
    let (thread, turn) = h.start_approval_turn().await;
    let id = h.approval_request(&thread, &turn).await;
    h.client
        .respond(id.clone(), Ok(json!({"decision": "decline"})))
        .unwrap();
    let completed = h.wait_turn_completed(&turn).await;
    assert_eq!(
        completed.turn.status,
        TurnStatus::Completed,
        "{completed:#?}"
    );
    assert!(h.resolved(&thread, &id), "{:#?}", h.log);
    assert_eq!(h.completed_command(&turn).0, "declined");
    assert!(!h.scratch.work().join(APPROVED_FILE).exists());
    assert_eq!(h.mock.requests().len(), 2);
    assert_eq!(h.model_requests_with(APPROVED_OUTPUT), 0);

    // A second answer, to a request already resolved, changes nothing; the
    // server reads lines in order, so once the next call is answered, it
    // has seen the answer.
    h.client
        .respond(id, Ok(json!({"decision": "accept"})))
        .unwrap();
    assert!(h.client.queue_list(&thread).await.unwrap().is_empty());
    assert!(!h.scratch.work().join(APPROVED_FILE).exists());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_server_requests_an_approval_is_refused_and_its_command_declined() {
    let mut h = Harness::start(approval_steps()).await;
    let (_, turn) = h.start_approval_turn().await;
    let completed = h.wait_turn_completed(&turn).await;
    assert_eq!(
        completed.turn.status,
        TurnStatus::Completed,
        "{completed:#?}"
    );
    assert!(
        !h.log
            .iter()
            .any(|e| matches!(e, ClientEvent::ServerRequest { .. })),
        "{:#?}",
        h.log
    );
    assert_eq!(h.completed_command(&turn).0, "declined");
    assert!(!h.scratch.work().join(APPROVED_FILE).exists());
    h.finish().await;
}

/// A connector that starts a new in-process app-server on `home` for each
/// connection, over a duplex pair; the servers' exit codes, as they end.
fn in_process_servers(
    home: std::path::PathBuf,
) -> (Connector, Arc<Mutex<Vec<tokio::task::JoinHandle<i32>>>>) {
    let servers = Arc::new(Mutex::new(Vec::new()));
    let started = Arc::clone(&servers);
    let connector = Connector::new(move || {
        let (client_end, server_end) = tokio::io::duplex(1 << 20);
        let (input, output) = tokio::io::split(server_end);
        let serving = tokio::spawn(run_app_server(
            input,
            output,
            AppServerOptions::new(home.clone()),
        ));
        started.lock().unwrap().push(serving);
        let (reader, writer) = tokio::io::split(client_end);
        let streams: Streams = (Box::pin(reader), Box::pin(writer));
        Ok(streams)
    });
    (connector, servers)
}

/// Shut the client down: one requested disconnect of `generation`, and the
/// in-process server saw EOF and ended cleanly.
async fn shutdown_in_process(
    client: &Client,
    events: &mut EventReceiver,
    servers: &Mutex<Vec<tokio::task::JoinHandle<i32>>>,
    generation: u64,
) {
    assert_eq!(client.shutdown().await, None, "no process to report on");
    let (ended, requested) = next_event(events, "the disconnect notice", |event| match event {
        ClientEvent::Disconnected {
            generation,
            requested,
            ..
        } => Some((*generation, *requested)),
        _ => None,
    })
    .await;
    assert_eq!((ended, requested), (generation, true));
    assert!(matches!(events.try_recv(), Err(TryRecvError::Empty)));
    let server = servers
        .lock()
        .unwrap()
        .pop()
        .expect("a server per connection");
    let code = within("the in-process server", server).await.unwrap();
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_server_serves_turns_and_a_reconnect_resumes_the_thread() {
    let scratch = Scratch::new();
    let mock = MockModel::start(Script::new(vec![
        Step::text("in process"),
        Step::text("in process again"),
    ]))
    .await
    .unwrap();
    scratch.mock_config(&mock.base_url(), "");
    let (connector, servers) = in_process_servers(scratch.home());
    let mut options = ClientOptions::in_process(connector);
    // Longer than any wait here: a disconnect seen in time is the server
    // closing its end, never the client giving up on it.
    options.shutdown_grace = 3 * DEADLINE;
    let (client, mut events) = Client::spawn(options).await.unwrap();
    assert_eq!(client.pid(), None, "no process of the client's");
    assert_eq!(client.generation(), 1);
    assert!(client.server_info().is_some());
    let params = ThreadStartParams {
        cwd: Some(scratch.work().display().to_string()),
        approval_policy: Some(json!("never")),
        ..ThreadStartParams::default()
    };
    let thread = client.thread_start(params).await.unwrap().thread.id;
    let turn = client
        .turn_start(&thread, text("hello"), None)
        .await
        .unwrap()
        .turn
        .id;
    let done = completed(&mut events, &turn).await;
    assert_eq!(done.turn.status, TurnStatus::Completed, "{done:#?}");

    shutdown_in_process(&client, &mut events, &servers, 1).await;
    assert!(!client.is_connected());
    assert!(matches!(
        client.queue_list(&thread).await,
        Err(ClientError::Disconnected)
    ));

    // A new connection, so a new server on the same home: the thread comes
    // back from its rollout.
    let resumed = client.reconnect().await.unwrap();
    assert_eq!(client.generation(), 2);
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].thread.id, thread);
    let turns = &resumed[0].thread.turns;
    assert_eq!(turns.len(), 1, "{turns:#?}");
    assert!(
        turns[0].items.iter().any(
            |item| matches!(item, ThreadItem::AgentMessage { text, .. } if text == "in process")
        ),
        "{turns:#?}"
    );
    let next = client
        .turn_start(&thread, text("and again"), None)
        .await
        .unwrap()
        .turn
        .id;
    let done = completed(&mut events, &next).await;
    assert_eq!(done.turn.status, TurnStatus::Completed, "{done:#?}");
    let last = mock.requests().pop().unwrap();
    assert!(last.raw_body.contains("hello"), "{:#}", last.body);
    assert!(last.raw_body.contains("and again"), "{:#}", last.body);

    shutdown_in_process(&client, &mut events, &servers, 2).await;
    mock.shutdown().await;
}
