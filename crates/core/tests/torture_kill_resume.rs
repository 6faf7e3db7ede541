//! Kill and resume (I5), in the torture harness: seeded schedules where the
//! process running the session is SIGKILLed at a random instant and the session
//! is resumed from what it left on disk.
//!
//! Each schedule runs the real engine in a child process (this same binary,
//! started with [`CHILD_ENV`]), against the real mock model in this process over
//! HTTP, with the torture suite's random model steps and tool scripts
//! (`suite/torture/feeder.rs`: deltas with gaps, tool calls, 429/503, 400s,
//! drops, stalls, malformed lines; quick tools, long `sleep`s, output floods,
//! SIGTERM ignored, grandchildren, `setsid`). The child starts, repeats, steers
//! and interrupts turns at random moments and prints every reply and event.
//! This process SIGKILLs it at a random instant: after a random delay, at the
//! model's k-th request, or while a tool runs. Then:
//!
//! - **I3 after a crash**: no process of the schedule is alive (the engine's
//!   orphan watchdog kills them when the child dies);
//! - **I5**: every turn start and terminal event the child printed before it died
//!   is in the rollout; the file loads with at most the cut-off last line skipped;
//! - **resume**: a new session resumed from the file reports the cut-off turn as
//!   interrupted, its next request passes the mock's contract check with every
//!   call paired (I1), holds no user input twice and every input of a finished
//!   turn once, and its turn completes (I6); the file only grew (append-only), and
//!   reads back with every turn closed.
//!
//! A seed fixes the wire API the child and the resumed session speak
//! (Responses for an even seed, Chat for an odd one); a failure names it with
//! the seed, and the summary counts the schedules that passed on each wire.
//!
//! This is a test binary without the libtest harness (`harness = false`), so it
//! can run itself as the child. It understands `cargo test`'s name filter and
//! `--list`. `TILLER_KILL_SCHEDULES=<n>` sets how many schedules run (100 by
//! default), `TILLER_KILL_SEED=<seed>` runs that one only; a failure prints the
//! command that replays it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "suite/torture/checks.rs"]
#[allow(dead_code)]
mod checks;
#[path = "suite/torture/feeder.rs"]
#[allow(dead_code)]
mod feeder;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tempfile::TempDir;
use tiller_core::config::WireApi;
use tiller_core::rollout::{LastTurn, LoadedRollout};
use tiller_mock_model::{MockModel, Script, Step};
use tiller_protocol::{Event, EventMsg, Op, Reply, TurnItemKind};
use tiller_test_support::schedules::{Schedules, wire_for};
use tiller_test_support::{EngineSettings, Persistence, TestEngine};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use checks::{check_pairing, describe, tagged_alive, user_count};
use feeder::Feeder;

/// The one test in this binary, as `cargo test` lists it.
const NAME: &str = "kill_and_resume_at_random_instants";
/// Set on the child: its seed. [`URL_ENV`], [`HOME_ENV`] and [`WORK_ENV`] say
/// where the model is and where the session lives.
const CHILD_ENV: &str = "TILLER_KILL_CHILD";
const URL_ENV: &str = "TILLER_KILL_URL";
const HOME_ENV: &str = "TILLER_KILL_HOME";
const WORK_ENV: &str = "TILLER_KILL_WORKDIR";
/// The deadline for anything a schedule waits on.
const WAIT: Duration = Duration::from_secs(15);
/// How long after the kill the schedule's processes may take to die.
const PROCESS_GRACE: Duration = Duration::from_secs(3);
/// The latest a kill comes if the instant it waits for never does.
const KILL_BY: Duration = Duration::from_secs(3);

fn main() {
    if let Ok(seed) = std::env::var(CHILD_ENV) {
        child::run(seed.trim().parse().expect("the child's seed"));
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        // libtest's listing, for `cargo test -- --list` and nextest.
        if !args.iter().any(|a| a == "--ignored") {
            println!("{NAME}: test");
        }
        return;
    }
    if !selected(&args) {
        println!("running 0 tests (filtered out: {NAME})");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run_all());
}

/// Whether `cargo test`'s name filters (if any) select this test.
fn selected(args: &[String]) -> bool {
    const WITH_VALUE: &[&str] = &[
        "--test-threads",
        "--skip",
        "--color",
        "--format",
        "--logfile",
        "-Z",
        "--shuffle-seed",
    ];
    let exact = args.iter().any(|a| a == "--exact");
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if WITH_VALUE.contains(&arg.as_str()) {
            let value = args.next();
            if arg == "--skip" {
                skips.extend(value);
            }
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    let matches = |f: &String| {
        if exact {
            f == NAME
        } else {
            NAME.contains(f.as_str())
        }
    };
    let skipped = skips.iter().any(|s| {
        if exact {
            *s == NAME
        } else {
            NAME.contains(s.as_str())
        }
    });
    (filters.is_empty() || filters.iter().any(|f| matches(f))) && !skipped
}

async fn run_all() {
    let schedules = Schedules {
        seed_env: "TILLER_KILL_SEED",
        count_env: "TILLER_KILL_SCHEDULES",
        default_count: 100,
        parallel: 4,
        replay: "cargo test -p tiller-core --test torture_kill_resume",
    };
    println!(
        "running 1 test\n{NAME}: {} schedules",
        schedules.seeds().len()
    );
    match schedules.run_on_both_wires(run_schedule).await {
        Ok(passed) => {
            passed.print();
            println!("test {NAME} ... ok");
        }
        Err(failure) => {
            eprintln!("test {NAME} ... FAILED\n{failure}");
            std::process::exit(101);
        }
    }
}

/// What the child printed: the replies to its ops and its events.
#[derive(Default)]
struct ChildLog {
    events: Vec<Event>,
    /// (client_message_id, text, turn id) of every start the child sent.
    starts: Vec<(String, String, String)>,
    /// Texts of every steer the child sent (accepted or not).
    steers: Vec<String>,
}

impl ChildLog {
    fn take(&mut self, line: &str) {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "the child printed a line that is not JSON ({e}): {:.200}",
                line
            )
        });
        if let Some(event) = value.get("event") {
            self.events
                .push(serde_json::from_value(event.clone()).expect("an event"));
        } else if value["op"] == "start" {
            let field = |k: &str| value[k].as_str().unwrap_or_default().to_owned();
            self.starts
                .push((field("id"), field("text"), field("turn")));
        } else if value["op"] == "steer" {
            self.steers
                .push(value["text"].as_str().unwrap_or_default().to_owned());
        }
    }

    fn rollout_path(&self) -> Option<PathBuf> {
        self.events.iter().find_map(|e| match &e.msg {
            EventMsg::SessionConfigured { rollout_path, .. } => {
                rollout_path.as_ref().map(Into::into)
            }
            _ => None,
        })
    }
}

/// When the child is killed.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This long after it was started.
    Delay(u64),
    /// This long after the model received its `n`th request.
    Request(usize, u64),
    /// This long after the `n`th tool call began.
    Tool(usize, u64),
}

async fn run_schedule(seed: u64, wire: WireApi) -> BTreeMap<String, usize> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mock = MockModel::start(Script::new(Vec::new()))
        .await
        .expect("start the mock model");
    let home = TempDir::new().expect("temp home");
    let workdir = TempDir::new().expect("temp workdir");
    let tag = format!("{}-k{seed}", std::process::id());
    let mut feeder = Feeder::new(seed, &tag, workdir.path());
    feeder.top_up(&mock);

    let mut child = tokio::process::Command::new(std::env::current_exe().expect("this binary"))
        .env(CHILD_ENV, seed.to_string())
        .env(URL_ENV, mock.base_url())
        .env(HOME_ENV, home.path())
        .env(WORK_ENV, workdir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the child");
    let pid = Pid::from_raw(child.id().expect("the child's pid") as i32);
    let (lines_tx, mut lines) = mpsc::unbounded_channel();
    let stdout = child.stdout.take().expect("the child's stdout");
    let reader = tokio::spawn(async move {
        // A line the kill cut short has no newline; it is dropped.
        let mut stdout = BufReader::new(stdout);
        let mut line = Vec::new();
        while let Ok(n) = stdout.read_until(b'\n', &mut line).await {
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            line.clear();
            if lines_tx.send(text).is_err() {
                break;
            }
        }
    });

    let kill_at = match rng.u32(0..3) {
        0 => KillAt::Delay(rng.u64(0..=800)),
        1 => KillAt::Request(rng.usize(1..=3), rng.u64(0..=40)),
        _ => KillAt::Tool(rng.usize(1..=2), rng.u64(0..=60)),
    };
    let mut log = ChildLog::default();
    let started = tokio::time::Instant::now();
    let deadline = started + KILL_BY;
    let mut reached = false;
    while !reached {
        let at = match kill_at {
            KillAt::Delay(ms) => Some(started + Duration::from_millis(ms)),
            _ => None,
        };
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(deadline) => break,
            () = sleep_until_opt(at) => reached = true,
            line = lines.recv() => match line {
                Some(line) => log.take(&line),
                None => panic!("the child ended before it was killed; it printed {} events", log.events.len()),
            },
            // Steps for every request while the child lives.
            _ = mock.wait_for_requests(mock.requests().len() + 1, WAIT) => feeder.top_up(&mock),
        }
        if let KillAt::Request(n, _) = kill_at {
            reached |= mock.requests().len() >= n;
        }
        if let KillAt::Tool(n, _) = kill_at {
            let begun = log
                .events
                .iter()
                .filter(|e| matches!(&e.msg, EventMsg::ItemStarted { item } if matches!(item.kind, TurnItemKind::CommandExecution { .. })))
                .count();
            reached |= begun >= n;
        }
    }
    let mut tally = BTreeMap::new();
    let mut count = |what: &str| *tally.entry(what.to_owned()).or_insert(0) += 1;
    count(&format!(
        "kill {}",
        match (kill_at, reached) {
            (_, false) => "at the deadline",
            (KillAt::Delay(_), _) => "after a delay",
            (KillAt::Request(..), _) => "at a request",
            (KillAt::Tool(..), _) => "during a tool",
        }
    ));
    let extra = match kill_at {
        KillAt::Request(_, ms) | KillAt::Tool(_, ms) if reached => ms,
        _ => 0,
    };
    // Events keep coming while the extra delay runs.
    let extra_until = tokio::time::Instant::now() + Duration::from_millis(extra);
    loop {
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(extra_until) => break,
            line = lines.recv() => match line {
                Some(line) => log.take(&line),
                None => panic!("the child ended before it was killed"),
            },
            _ = mock.wait_for_requests(mock.requests().len() + 1, WAIT) => feeder.top_up(&mock),
        }
    }

    kill(pid, Signal::SIGKILL).expect("SIGKILL the child");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the killed child is reaped")
        .expect("wait for the child");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the child died of something else: {status:?}"
    );
    // Everything it printed before it died is in the pipe.
    tokio::time::timeout(WAIT, reader)
        .await
        .expect("the child's stdout closes")
        .expect("the reader");
    while let Ok(line) = lines.try_recv() {
        log.take(&line);
    }
    for (what, n) in &feeder.tally {
        *tally.entry(what.clone()).or_default() += n;
    }
    for event in &log.events {
        let what = match &event.msg {
            EventMsg::TurnCompleted { .. } => "seen turn completed",
            EventMsg::TurnAborted { .. } => "seen turn aborted",
            EventMsg::TurnFailed { .. } => "seen turn failed",
            EventMsg::ItemStarted { item }
                if matches!(item.kind, TurnItemKind::CommandExecution { .. }) =>
            {
                "seen tool begin"
            }
            EventMsg::StreamRetry { .. } => "seen retry",
            _ => continue,
        };
        *tally.entry(what.to_owned()).or_default() += 1;
    }
    *tally
        .entry("requests before the kill".to_owned())
        .or_default() += mock.requests().len();
    for (n, request) in mock.requests().iter().enumerate() {
        check_pairing(n, request);
    }
    at_most_one_terminal_per_turn(&log.events);

    // I3 after a crash: the watchdog ends everything the child started.
    let until = Instant::now() + PROCESS_GRACE;
    loop {
        let alive = tagged_alive(&tag, workdir.path());
        if alive.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "I3: processes of the schedule alive {PROCESS_GRACE:?} after the kill: {}",
            describe(&alive)
        );
        // Not our children: /proc is all there is to watch.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // This process is a child subreaper (the resumed sessions run here), so the
    // killed child's orphans (its tools, its watchdog) became our zombies.
    let reaped = tiller_core::process_tree::reap_adopted_zombies();
    *tally.entry("orphans reaped".to_owned()).or_default() += reaped;
    mock.shutdown().await;

    let path = log
        .rollout_path()
        .or_else(|| tiller_core::rollout::store::rollout_files(home.path()).pop());
    let Some(path) = path else {
        assert!(log.events.is_empty(), "events without a rollout");
        *tally
            .entry("killed before the session existed".to_owned())
            .or_default() += 1;
        return tally;
    };
    let loaded = match tiller_core::rollout::load(&path) {
        Ok(loaded) => loaded,
        Err(e) => {
            // Only before the session was handed out: its first line is synced
            // before `SessionConfigured`.
            assert!(
                log.rollout_path().is_none(),
                "I5: the rollout of a session that was handed out does not load: {e}"
            );
            *tally
                .entry("killed while the session was created".to_owned())
                .or_default() += 1;
            return tally;
        }
    };
    let image = std::fs::read(&path).expect("read the rollout");
    check_on_disk(&log, &loaded, &image);
    *tally.entry("resumes".to_owned()).or_default() += 1;
    if loaded.open_turn.is_some() {
        *tally
            .entry("resumes of a cut-off turn".to_owned())
            .or_default() += 1;
    }
    if !image.ends_with(b"\n") {
        *tally
            .entry("resumes of a cut-off line".to_owned())
            .or_default() += 1;
    }
    resume(seed, wire, &log, &loaded, &image).await;
    tally
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// I2 for a log cut short: no turn ends twice.
fn at_most_one_terminal_per_turn(events: &[Event]) {
    let mut ended = Vec::new();
    for event in events.iter().filter(|e| e.is_terminal()) {
        let turn = event.turn_id.as_deref().unwrap_or_default().to_string();
        assert!(!ended.contains(&turn), "I2: turn {turn} ended twice");
        ended.push(turn);
    }
}

/// I5: what the child reported is on disk, and the file is whole up to its
/// last line.
fn check_on_disk(log: &ChildLog, loaded: &LoadedRollout, image: &[u8]) {
    let cut_off_line = !image.ends_with(b"\n");
    assert!(
        loaded.warnings.len() <= usize::from(cut_off_line),
        "only a cut-off last line may be skipped: {:?}",
        loaded.warnings
    );
    for event in &log.events {
        let Some(turn) = event.turn_id.as_deref() else {
            continue;
        };
        let on_disk = loaded.turns.iter().find(|t| t.id == turn);
        let expected = match &event.msg {
            EventMsg::TurnStarted { .. } => {
                assert!(
                    on_disk.is_some(),
                    "I5: turn {turn} started and is not on disk"
                );
                continue;
            }
            EventMsg::TurnCompleted { .. } => &[LastTurn::Completed][..],
            EventMsg::TurnAborted { .. } => &[LastTurn::Interrupted, LastTurn::Replaced][..],
            EventMsg::TurnFailed { .. } => &[LastTurn::Failed][..],
            _ => continue,
        };
        let status = on_disk.map(|t| t.status);
        assert!(
            status.is_some_and(|s| expected.contains(&s)),
            "I5: turn {turn} ended with {:?} but is {status:?} on disk",
            event.msg
        );
    }
}

/// A session resumed from the file continues with a valid conversation.
async fn resume(seed: u64, wire: WireApi, log: &ChildLog, loaded: &LoadedRollout, image: &[u8]) {
    let mut engine = TestEngine::start_with(
        vec![Step::text("resumed")],
        EngineSettings {
            persistence: Persistence::Resume(loaded.path.clone()),
            ..EngineSettings::new(wire)
        },
    )
    .await;
    let configured = engine
        .wait_for("SessionConfigured", |e| {
            matches!(e.msg, EventMsg::SessionConfigured { .. })
        })
        .await;
    let EventMsg::SessionConfigured {
        interrupted_turn_id,
        ..
    } = configured.msg
    else {
        unreachable!()
    };
    assert_eq!(
        interrupted_turn_id, loaded.open_turn,
        "the cut-off turn is reported as interrupted"
    );
    let text = format!("after the kill {seed}");
    let turn = engine.start_turn(&text).await;
    let ended = engine.wait_terminal(&turn).await;
    assert!(
        matches!(ended, EventMsg::TurnCompleted { .. }),
        "I6: the first turn after the resume did not complete: {ended:?}"
    );
    let requests = engine.requests();
    assert_eq!(requests.len(), 1, "one request for one text step");
    check_pairing(0, &requests[0]);
    let input = requests[0].input();
    assert_eq!(user_count(input, &text), 1);
    for (id, start, turn) in &log.starts {
        let times = user_count(input, start);
        let finished = loaded
            .turns
            .iter()
            .any(|t| t.id == *turn && t.status != LastTurn::CutOff);
        if finished {
            assert_eq!(
                times, 1,
                "start {id} ({start:?}) of finished turn {turn} is in the resumed history {times} times"
            );
        } else {
            assert!(
                times <= 1,
                "start {id} ({start:?}) is in the resumed history {times} times"
            );
        }
    }
    for steer in &log.steers {
        let times = user_count(input, steer);
        assert!(
            times <= 1,
            "steer {steer:?} is in the resumed history {times} times"
        );
    }
    engine.finish().await;

    // Append-only, and every turn closed.
    let after = std::fs::read(&loaded.path).expect("read the rollout again");
    assert!(
        after.starts_with(image),
        "the resume rewrote the file: its first {} bytes changed",
        image.len()
    );
    let reloaded = tiller_core::rollout::load(&loaded.path).expect("load the resumed rollout");
    assert_eq!(
        reloaded.open_turn, None,
        "a turn is still open after the resume"
    );
    assert_eq!(reloaded.last_turn, Some(LastTurn::Completed));
    if let Some(cut) = &loaded.open_turn {
        let status = reloaded
            .turns
            .iter()
            .find(|t| t.id == *cut)
            .map(|t| t.status);
        assert_eq!(
            status,
            Some(LastTurn::Interrupted),
            "the cut-off turn {cut} was closed"
        );
    }
}

/// The child: one session saved under [`HOME_ENV`], on its seed's wire API,
/// doing seeded ops at random moments until it is killed, printing every reply
/// and event as a JSON line.
mod child {
    use super::*;
    use std::io::Write;
    use tiller_core::config::{ApprovalPolicy, Config, ConfigOverrides, ProviderConfig};
    use tiller_core::{SessionOptions, SessionSource, spawn_session};
    use tiller_protocol::UserInput;

    pub fn run(seed: u64) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(session(seed));
    }

    fn print(value: &Value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }

    async fn session(seed: u64) {
        tiller_core::process_tree::become_subreaper().expect("become a child subreaper");
        let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name}"));
        let mut rng = fastrand::Rng::with_seed(seed ^ 0xc41d);
        let mut provider = ProviderConfig::for_local_server(var(URL_ENV));
        provider.wire_api = wire_for(seed);
        provider.request_max_retries = rng.u32(0..=2);
        provider.stream_max_retries = rng.u32(0..=2);
        provider.stream_idle_timeout = Duration::from_millis(200);
        let config = Config::load(
            Path::new(&var(HOME_ENV)),
            ConfigOverrides {
                approval_policy: Some(ApprovalPolicy::Never),
                cwd: Some(PathBuf::from(var(WORK_ENV))),
                provider_override: Some(provider),
                ..ConfigOverrides::default()
            },
        )
        .expect("load config")
        .config;
        let (session, mut events) = spawn_session(SessionOptions {
            config,
            api_key: None,
            source: SessionSource::New,
        })
        .expect("spawn session");
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                // Deltas are not needed by the checks; a flood prints megabytes.
                if matches!(
                    event.msg,
                    EventMsg::AgentMessageDelta { .. } | EventMsg::ExecCommandOutputDelta { .. }
                ) {
                    continue;
                }
                print(&json!({ "event": event }));
            }
        });

        let mut current = String::new();
        let mut starts: Vec<(String, String)> = Vec::new();
        for n in 0..rng.usize(3..15) {
            if n > 0 {
                // A random moment: this is the schedule, not a wait.
                tokio::time::sleep(Duration::from_millis(rng.u64(0..=150))).await;
            }
            match if n == 0 { 0 } else { rng.u32(0..10) } {
                0..4 => {
                    let (id, text) = if rng.u32(0..4) == 0 && !starts.is_empty() {
                        starts[rng.usize(..starts.len())].clone()
                    } else {
                        (format!("start-{n}"), format!("start {seed} {n}"))
                    };
                    let reply = session
                        .submit(Op::start_turn_with_id(
                            vec![UserInput::text(&text)],
                            id.clone(),
                        ))
                        .await;
                    let Ok(Reply::TurnStarted { turn_id }) = reply else {
                        panic!("StartTurn {id}: {reply:?}");
                    };
                    print(&json!({"op": "start", "id": id, "text": text, "turn": turn_id}));
                    starts.push((id, text));
                    current = turn_id;
                }
                4..7 => {
                    let text = format!("steer {seed} {n}");
                    let reply = session
                        .submit(Op::Steer {
                            items: vec![UserInput::text(&text)],
                            expected_turn_id: current.clone(),
                            client_message_id: Some(format!("steer-{n}")),
                        })
                        .await;
                    let accepted = matches!(reply, Ok(Reply::Steered { .. }));
                    print(&json!({"op": "steer", "text": text, "accepted": accepted}));
                }
                _ => {
                    let reply = session.submit(Op::Interrupt).await;
                    print(&json!({"op": "interrupt", "reply": format!("{reply:?}")}));
                }
            }
        }
        // Idle until the kill.
        std::future::pending::<()>().await;
    }
}
