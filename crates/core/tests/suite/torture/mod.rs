//! Lifecycle torture: seeded random schedules against the real engine and the
//! real mock model over HTTP, with real tool processes.
//!
//! A schedule is a few client ops at random moments (start, replace, steer with
//! the right and stale ids and idempotent repeats, interrupt once, twice and
//! when idle, approval decisions including abort), while the mock answers each
//! request with a random step (text with random deltas and gaps, one or several
//! tool calls, 429/503 with and without `Retry-After`, a plain 400, a
//! missing-tool-output 400, a drop, a stall past the idle timeout, a malformed
//! line) and the tools do random things (quick, long `sleep`, an output flood
//! of megabytes, SIGTERM ignored, grandchildren, `setsid`, leftovers).
//!
//! After each schedule: I1 (no request refused by the mock, every call paired
//! with exactly one output after it), I2 (one terminal event per turn), I3 (at
//! each terminal event no process of that turn's tool calls is alive, and none
//! of the schedule's at the end), I4 (every accepted start and steer text
//! reaches the model exactly once or comes back in `unsent_input`, never both;
//! refused steer reaches nobody), I6 (after the random part, turns start again
//! and a final turn completes).
//!
//! A seed fixes the wire API (Responses for an even seed, Chat for an odd one),
//! the ops, the pauses, the decisions and the model's steps; the timing (which
//! op meets which state) is the machine's. A failure prints the seed, its wire
//! and the command that replays it; the summary counts the schedules that
//! passed on each wire. `TILLER_TORTURE_SCHEDULES=<n>` sets
//! how many schedules run (500 by default), `TILLER_TORTURE_SEED=<seed>` runs
//! that one only.
//!
//! The model's and tools' side lives in `feeder.rs` and the checks in
//! `checks.rs`; `tests/torture_kill_resume.rs` uses both for the kill-and-resume
//! loop (I5), where the session runs in a child process that is SIGKILLed.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use tiller_core::config::{ApprovalPolicy, WireApi};
use tiller_protocol::{
    Event, EventMsg, Op, OpError, Reply, ReviewDecision, TurnItem, TurnItemKind, UserInput,
};
use tiller_test_support::schedules::{Failure, Schedules};
use tiller_test_support::{EngineSettings, TestEngine, assert_one_terminal_per_turn};

mod checks;
mod feeder;

use checks::{check_nothing_lost, check_pairing, describe, tagged_alive};
use feeder::Feeder;

/// The deadline for anything a schedule waits on.
const WAIT: Duration = Duration::from_secs(15);
/// How long after the end an escaped process may take to die.
const PROCESS_GRACE: Duration = Duration::from_secs(2);
/// The longest an [`Action::AwaitEnd`] waits for the running turn to end.
const AWAIT_END: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_schedules_keep_the_lifecycle_invariants() -> Result<(), Failure> {
    let schedules = Schedules {
        seed_env: "TILLER_TORTURE_SEED",
        count_env: "TILLER_TORTURE_SCHEDULES",
        default_count: 500,
        parallel: 8,
        replay: "cargo test -p tiller-core --test all torture -- --nocapture",
    };
    schedules.run_on_both_wires(run_schedule).await?.print();
    Ok(())
}

/// One client op of a schedule.
#[derive(Debug, Clone, Copy)]
enum Action {
    Start,
    /// A `StartTurn` again with an earlier start's `client_message_id`.
    StartRepeat,
    SteerCurrent,
    /// An older turn's id, or one that never existed.
    SteerStale,
    /// A steer again with an earlier steer's `client_message_id` and text.
    SteerRepeat,
    SteerEmpty,
    Interrupt,
    InterruptTwice,
    /// An approval for a call nobody asked about.
    ApprovalUnknown,
    /// Handle events until the running turn ends, for at most [`AWAIT_END`].
    AwaitEnd,
}

/// The answer to the next approval request (`None`: leave it waiting).
type Decision = Option<ReviewDecision>;

fn random_action(rng: &mut fastrand::Rng) -> Action {
    match rng.u32(0..100) {
        0..18 => Action::Start,
        18..22 => Action::StartRepeat,
        22..40 => Action::SteerCurrent,
        40..47 => Action::SteerStale,
        47..53 => Action::SteerRepeat,
        53..56 => Action::SteerEmpty,
        56..66 => Action::Interrupt,
        66..72 => Action::InterruptTwice,
        72..76 => Action::ApprovalUnknown,
        _ => Action::AwaitEnd,
    }
}

fn random_decision(rng: &mut fastrand::Rng) -> Decision {
    match rng.u32(0..100) {
        0..40 => Some(ReviewDecision::Approved),
        40..50 => Some(ReviewDecision::ApprovedForSession),
        50..75 => Some(ReviewDecision::Denied),
        75..90 => Some(ReviewDecision::Abort),
        _ => None,
    }
}

/// What the client did and saw in one schedule.
struct Schedule {
    seed: u64,
    /// Choices made while acting (which id to repeat, which stale id).
    rng: fastrand::Rng,
    tag: String,
    engine: TestEngine,
    feeder: Feeder,
    decisions: Vec<Decision>,
    /// Events of `engine.log` already looked at.
    seen: usize,
    /// The turn the client last started (from the `StartTurn` reply).
    current: Option<String>,
    started: Vec<String>,
    /// The turn running according to the events.
    running: Option<String>,
    /// `client_message_id` → (text, reply) of every start.
    starts: Vec<(String, String, String)>,
    /// Every steer sent: `client_message_id`, text, and whether any
    /// submission of it was accepted.
    steers: Vec<(String, String, bool)>,
    /// Which turn each tool call belongs to.
    call_turn: HashMap<String, String>,
    approvals: usize,
    n: usize,
}

async fn run_schedule(seed: u64, wire: WireApi) -> BTreeMap<String, usize> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let policy = if rng.u32(0..10) < 3 {
        ApprovalPolicy::Untrusted
    } else {
        ApprovalPolicy::Never
    };
    let settings = EngineSettings {
        approval_policy: policy,
        request_max_retries: rng.u32(0..=2),
        stream_max_retries: rng.u32(0..=2),
        stream_idle_timeout: Duration::from_millis(200),
        ..EngineSettings::new(wire)
    };
    let engine = TestEngine::start_with(Vec::new(), settings).await;
    let tag = format!("{}-{seed}", std::process::id());
    let mut feeder = Feeder::new(seed, &tag, engine.dir());
    feeder.top_up(&engine.mock);
    let actions: Vec<(u64, Action)> = (0..rng.usize(3..12))
        .map(|_| (rng.u64(0..=20), random_action(&mut rng)))
        .collect();
    let decisions = (0..64).map(|_| random_decision(&mut rng)).collect();
    let mut s = Schedule {
        seed,
        rng,
        tag,
        engine,
        feeder,
        decisions,
        seen: 0,
        current: None,
        started: Vec::new(),
        running: None,
        starts: Vec::new(),
        steers: Vec::new(),
        call_turn: HashMap::new(),
        approvals: 0,
        n: 0,
    };
    s.count(if policy == ApprovalPolicy::Untrusted {
        "policy untrusted"
    } else {
        "policy never"
    });

    // The random part: a start first (most schedules), then the ops.
    if s.rng.u32(0..10) < 8 {
        s.act(Action::Start).await;
    }
    for (pause, action) in actions {
        s.events_for(Duration::from_millis(pause)).await;
        s.act(action).await;
    }
    let pause = s.rng.u64(0..=20);
    s.events_for(Duration::from_millis(pause)).await;

    // The end of the random part: whatever runs is interrupted.
    s.interrupt().await;
    s.wind_down().await;
    s.finish().await
}

impl Schedule {
    fn count(&mut self, what: &str) {
        self.feeder.count(what);
    }

    /// Handle events as they come for `pause`.
    async fn events_for(&mut self, pause: Duration) {
        let deadline = tokio::time::Instant::now() + pause;
        loop {
            self.process().await;
            let got = tokio::select! {
                biased;
                () = tokio::time::sleep_until(deadline) => false,
                _ = self.engine.next_event() => true,
            };
            if !got {
                break;
            }
        }
        self.process().await;
    }

    /// Handle every event received so far that was not handled yet.
    async fn process(&mut self) {
        self.engine.drain_ready();
        while self.seen < self.engine.log.len() {
            let event = self.engine.log[self.seen].clone();
            self.seen += 1;
            self.on_event(event).await;
        }
        self.feeder.top_up(&self.engine.mock);
    }

    async fn on_event(&mut self, event: Event) {
        let turn = event.turn_id.as_deref().unwrap_or_default().to_string();
        match &event.msg {
            EventMsg::TurnStarted { .. } => self.running = Some(turn),
            EventMsg::ItemStarted {
                item:
                    TurnItem {
                        kind: TurnItemKind::CommandExecution { call_id, .. },
                        ..
                    },
            } => {
                self.call_turn.insert(call_id.clone(), turn);
            }
            EventMsg::ExecApprovalRequest { call_id, .. } => {
                self.call_turn.insert(call_id.clone(), turn);
                let decision = self.decisions[self.approvals % self.decisions.len()];
                self.approvals += 1;
                let Some(decision) = decision else {
                    self.count("approval left waiting");
                    return;
                };
                self.count(&format!("approval {decision:?}"));
                let reply = self
                    .engine
                    .submit(Op::Approval {
                        call_id: call_id.clone(),
                        decision,
                    })
                    .await;
                // The turn may have ended since the request was emitted.
                assert!(
                    matches!(
                        reply,
                        Ok(Reply::Done) | Err(OpError::UnknownApproval { .. })
                    ),
                    "approval {decision:?} for {call_id}: {reply:?}"
                );
            }
            EventMsg::ItemCompleted {
                item:
                    TurnItem {
                        kind:
                            TurnItemKind::CommandExecution {
                                call_id,
                                status: Some(status),
                                ..
                            },
                        ..
                    },
            } => {
                let kind = self.feeder.call_kind.get(call_id).copied().unwrap_or("?");
                self.count(&format!("tool {kind} {status:?}"));
            }
            EventMsg::StreamRetry { .. } => self.count("event retry"),
            EventMsg::SteerDelivered { .. } => self.count("event steer delivered"),
            EventMsg::BackgroundEvent { .. } => self.count("event background"),
            EventMsg::TurnCompleted { .. } => self.ended(&turn, "turn completed"),
            EventMsg::TurnAborted {
                reason,
                unsent_input,
            } => {
                if !unsent_input.is_empty() {
                    self.count("steer handed back");
                }
                self.ended(&turn, &format!("turn aborted {reason:?}"));
            }
            EventMsg::TurnFailed { unsent_input, .. } => {
                if !unsent_input.is_empty() {
                    self.count("steer handed back");
                }
                self.ended(&turn, "turn failed");
            }
            _ => {}
        }
    }

    /// A terminal event of `turn`: no process of its tool calls may be alive (I3).
    fn ended(&mut self, turn: &str, what: &str) {
        self.count(what);
        if self.running.as_deref() == Some(turn) {
            self.running = None;
        }
        let calls: Vec<String> = self
            .call_turn
            .iter()
            .filter(|(_, t)| t.as_str() == turn)
            .map(|(c, _)| c.clone())
            .collect();
        let mut alive = Vec::new();
        for call in &calls {
            let tag = format!("{}/{call}", self.tag);
            alive.extend(tagged_alive(
                &tag,
                &self.engine.dir().join(format!("pids.{call}")),
            ));
        }
        assert!(
            alive.is_empty(),
            "I3: processes of turn {turn} alive at its terminal event ({what}): {}",
            describe(&alive)
        );
    }

    async fn act(&mut self, action: Action) {
        self.n += 1;
        let n = self.n;
        let seed = self.seed;
        match action {
            Action::Start | Action::StartRepeat => {
                let repeat = matches!(action, Action::StartRepeat) && !self.starts.is_empty();
                let (id, text) = if repeat {
                    let i = self.rng.usize(..self.starts.len());
                    let (id, text, _) = &self.starts[i];
                    (id.clone(), text.clone())
                } else {
                    (format!("start-{n}"), format!("start {seed} {n}"))
                };
                let reply = self
                    .engine
                    .submit(Op::start_turn_with_id(
                        vec![UserInput::text(&text)],
                        id.clone(),
                    ))
                    .await;
                let Ok(Reply::TurnStarted { turn_id }) = reply else {
                    panic!("StartTurn {id} was answered {reply:?}");
                };
                if repeat {
                    self.count("op start repeat");
                    let first = self.starts.iter().find(|(i, _, _)| *i == id);
                    assert_eq!(
                        first.map(|(_, _, t)| t.as_str()),
                        Some(turn_id.as_str()),
                        "a repeated StartTurn {id} must get the first answer"
                    );
                } else {
                    self.count("op start");
                    assert!(
                        !self.started.contains(&turn_id),
                        "a new StartTurn got an old turn id {turn_id}"
                    );
                    self.starts.push((id, text, turn_id.clone()));
                    self.started.push(turn_id.clone());
                    self.current = Some(turn_id);
                }
            }
            Action::SteerCurrent | Action::SteerStale | Action::SteerEmpty => {
                let stale = matches!(action, Action::SteerStale);
                let expected = if stale {
                    let old = self.started.len().saturating_sub(1);
                    if old > 0 && self.rng.bool() {
                        self.started[self.rng.usize(..old)].clone()
                    } else {
                        "turn-that-never-was".to_owned()
                    }
                } else {
                    self.current
                        .clone()
                        .unwrap_or_else(|| "no-turn-yet".to_owned())
                };
                let id = format!("steer-{n}");
                let text = if matches!(action, Action::SteerEmpty) {
                    String::new()
                } else {
                    format!("steer {seed} {n}")
                };
                let reply = self
                    .engine
                    .submit(Op::Steer {
                        items: vec![UserInput::text(&text)],
                        expected_turn_id: expected.clone(),
                        client_message_id: Some(id.clone()),
                    })
                    .await;
                let accepted = match &reply {
                    Ok(Reply::Steered { turn_id }) => {
                        assert_eq!(turn_id, &expected, "steer {id} went to another turn");
                        true
                    }
                    Err(OpError::NoActiveTurn | OpError::TurnMismatch { .. }) => false,
                    Err(OpError::EmptyInput) if text.is_empty() => false,
                    other => panic!("Steer {id} was answered {other:?}"),
                };
                assert!(
                    !(accepted && (stale || text.is_empty())),
                    "a stale or empty steer {id} ({expected}) was accepted"
                );
                let kind = match action {
                    Action::SteerStale => "stale",
                    Action::SteerEmpty => "empty",
                    _ => "current",
                };
                self.count(&format!(
                    "op steer {kind} {}",
                    if accepted { "accepted" } else { "refused" }
                ));
                if !text.is_empty() {
                    self.steers.push((id, text, accepted));
                }
            }
            Action::SteerRepeat => {
                if self.steers.is_empty() {
                    return;
                }
                let i = self.rng.usize(..self.steers.len());
                let (id, text, _) = self.steers[i].clone();
                let expected = self.current.clone().unwrap_or_default();
                let reply = self
                    .engine
                    .submit(Op::Steer {
                        items: vec![UserInput::text(&text)],
                        expected_turn_id: expected,
                        client_message_id: Some(id.clone()),
                    })
                    .await;
                let accepted = match &reply {
                    Ok(Reply::Steered { .. }) => true,
                    Err(OpError::NoActiveTurn | OpError::TurnMismatch { .. }) => false,
                    other => panic!("repeated Steer {id} was answered {other:?}"),
                };
                let was = self.steers[i].2;
                assert!(
                    !was || accepted,
                    "an accepted steer {id} repeated was refused: {reply:?}"
                );
                self.steers[i].2 |= accepted;
                self.count("op steer repeat");
            }
            Action::Interrupt => {
                self.count(if self.running.is_some() {
                    "op interrupt"
                } else {
                    "op interrupt idle"
                });
                self.interrupt().await;
            }
            Action::InterruptTwice => {
                self.count("op interrupt twice");
                self.interrupt().await;
                self.interrupt().await;
            }
            Action::AwaitEnd => {
                self.count("op await end");
                let deadline = tokio::time::Instant::now() + AWAIT_END;
                loop {
                    self.process().await;
                    if self.running.is_none() {
                        break;
                    }
                    let got = tokio::select! {
                        biased;
                        () = tokio::time::sleep_until(deadline) => false,
                        _ = self.engine.next_event() => true,
                    };
                    if !got {
                        break;
                    }
                }
            }
            Action::ApprovalUnknown => {
                self.count("op approval unknown");
                let reply = self
                    .engine
                    .submit(Op::Approval {
                        call_id: "call_nobody_asked".to_owned(),
                        decision: ReviewDecision::Approved,
                    })
                    .await;
                assert!(
                    matches!(reply, Err(OpError::UnknownApproval { .. })),
                    "{reply:?}"
                );
            }
        }
        self.process().await;
    }

    /// Interrupt: answered `Done`, and by then the turn's terminal event is out.
    async fn interrupt(&mut self) {
        let reply = self.engine.submit(Op::Interrupt).await;
        assert_eq!(reply, Ok(Reply::Done), "Interrupt");
        self.process().await;
        assert!(
            self.running.is_none(),
            "turn {:?} still running after Interrupt was answered",
            self.running
        );
    }

    /// Use up the random steps still queued at the mock (each turn is
    /// interrupted once it made a request), then a final turn must complete (I6).
    async fn wind_down(&mut self) {
        self.feeder.random = false;
        let random = self.feeder.random_pushed;
        let mut drains = 0;
        while self.engine.mock.used_steps() < random {
            drains += 1;
            assert!(drains <= random + 2, "the drain does not use up the steps");
            let before = self.engine.mock.requests().len();
            let turn = self.start_plain(&format!("drain {drains}")).await;
            if let Err(e) = self.engine.mock.wait_for_requests(before + 1, WAIT).await {
                panic!("I6: drain turn {turn} sent no request: {e}");
            }
            self.count("drain turn");
            // Let it run a little: tools start, approvals are answered.
            let pause = self.rng.u64(0..=20);
            self.events_for(Duration::from_millis(pause)).await;
            // Shows that the I3 scan sees the processes it must see die.
            let alive = tagged_alive(&self.tag, self.engine.dir()).len();
            *self
                .feeder
                .tally
                .entry("processes alive before an interrupt".to_owned())
                .or_default() += alive;
            self.interrupt().await;
        }

        let turn = self.start_plain("final").await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.process().await;
            let ended = self
                .engine
                .log
                .iter()
                .find(|e| e.turn_id.as_deref() == Some(turn.as_str()) && e.is_terminal());
            if let Some(ended) = ended {
                assert!(
                    matches!(ended.msg, EventMsg::TurnCompleted { .. }),
                    "I6: the final turn did not complete: {:?}",
                    ended.msg
                );
                break;
            }
            let got = tokio::select! {
                () = tokio::time::sleep_until(deadline) => false,
                _ = self.engine.next_event() => true,
            };
            assert!(got, "I6: the final turn did not end within {WAIT:?}");
        }
        self.process().await;
    }

    async fn start_plain(&mut self, text: &str) -> String {
        let text = format!("{text} {}", self.seed);
        let reply = self
            .engine
            .submit(Op::start_turn(vec![UserInput::text(&text)]))
            .await;
        let Ok(Reply::TurnStarted { turn_id }) = reply else {
            panic!("I6: StartTurn after the schedule was answered {reply:?}");
        };
        self.starts.push((String::new(), text, turn_id.clone()));
        self.started.push(turn_id.clone());
        self.current = Some(turn_id.clone());
        self.process().await;
        turn_id
    }

    async fn finish(mut self) -> BTreeMap<String, usize> {
        // I3 at the end: nothing of the schedule alive (an escaped process
        // may take the engine's kill loop a moment).
        let deadline = Instant::now() + PROCESS_GRACE;
        loop {
            let alive = tagged_alive(&self.tag, self.engine.dir());
            if alive.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "I3: processes of the schedule alive {PROCESS_GRACE:?} after its end: {}",
                describe(&alive)
            );
            // Not our children: /proc is all there is to watch.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let requests = self.engine.mock.requests();
        let mut tally = std::mem::take(&mut self.feeder.tally);
        *tally.entry("requests".to_owned()).or_default() += requests.len();
        *tally
            .entry("requests without a step".to_owned())
            .or_default() += requests.iter().filter(|r| r.step_index.is_none()).count();
        // I2, and no request refused for breaking the contract (I1).
        let log = self.engine.finish().await;
        assert_one_terminal_per_turn(&log);
        for (n, request) in requests.iter().enumerate() {
            check_pairing(n, request);
        }
        check_nothing_lost(&log, &requests, &self.starts, &self.steers);
        tally
    }
}
