//! The model side of a schedule: random steps fed to the mock as requests
//! arrive, and the tool processes those steps start.
//!
//! Every `shell` step that leaves a process running appends the pids of its
//! processes to `work/pids`, so that after a kill of the server the test can
//! check them one by one, besides scanning `/proc` for anything tagged with the
//! schedule.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tiller_mock_model::{Item, MockModel, Step};
use tiller_test_support::pid_alive;
use tokio::task::JoinHandle;

use super::{TAG_ENV, TOOL_MARKER_ENV};
use crate::suite::support::describe_processes;

/// How many unused steps the feeder keeps queued at the mock, so a request that
/// follows another within microseconds (a steer cuts the stream) still finds one.
pub const STEPS_AHEAD: usize = 3;
/// The file in `work/` the tools append their pids to.
pub const PID_FILE: &str = "pids";

/// Keeps [`STEPS_AHEAD`] random steps queued at the mock as requests arrive;
/// once told the schedule is over, plain text only.
pub struct Feeder {
    state: Arc<Mutex<FeedState>>,
    task: JoinHandle<()>,
}

struct FeedState {
    rng: fastrand::Rng,
    random_only: bool,
    /// How many steps were pushed.
    pushed: usize,
    next_call: u64,
}

impl Feeder {
    pub fn start(mock: &Arc<MockModel>, seed: u64) -> Feeder {
        let state = Arc::new(Mutex::new(FeedState {
            rng: fastrand::Rng::with_seed(seed ^ 0x5eed_f00d),
            random_only: true,
            pushed: 0,
            next_call: 0,
        }));
        top_up(mock, &state);
        let task = tokio::spawn({
            let mock = Arc::clone(mock);
            let state = Arc::clone(&state);
            async move {
                let mut seen = 0;
                while let Ok(requests) = mock
                    .wait_for_requests(seen + 1, Duration::from_secs(3600))
                    .await
                {
                    seen = requests.len();
                    top_up(&mock, &state);
                }
            }
        });
        Feeder { state, task }
    }

    /// From now on the mock answers with text; returns how many random steps
    /// were pushed before (the ones a drain must use up).
    pub fn text_from_now(&self) -> usize {
        let mut state = self.state.lock().unwrap();
        state.random_only = false;
        state.pushed
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn top_up(mock: &MockModel, state: &Mutex<FeedState>) {
    let mut state = state.lock().unwrap();
    while mock.remaining_steps() < STEPS_AHEAD {
        let step = if state.random_only {
            random_step(&mut state)
        } else {
            Step::text("done")
        };
        state.pushed += 1;
        mock.push_step(step);
    }
}

/// Streamed text (sometimes stalling), a quick `echo`, a long `sleep`, a call
/// that leaves a background grandchild, a 503, or a stream that drops.
fn random_step(state: &mut FeedState) -> Step {
    state.next_call += 1;
    let call_id = format!("call_{}", state.next_call);
    let rng = &mut state.rng;
    let shell = |script: &str| {
        Step::function_call(
            call_id.clone(),
            "shell",
            json!({"command": ["bash", "-lc", script]}),
        )
    };
    match rng.u32(0..100) {
        0..30 => {
            let deltas: Vec<String> = (0..rng.usize(1..8))
                .map(|i| format!("w{i}{} ", rng.alphanumeric()))
                .collect();
            let mut step =
                Step::response(vec![Item::text_deltas(deltas)]).with_delta_delay(rng.u64(0..15));
            if rng.bool() {
                step = step.with_stall(rng.usize(0..4), rng.u64(1..30));
            }
            step
        }
        30..50 => shell("echo hi"),
        50..65 => shell(&format!("echo $$ >> {PID_FILE}; sleep 30")),
        65..75 => shell(&format!(
            "sh -c 'sleep 62 & echo $! >> {PID_FILE}; echo $$ >> {PID_FILE}; sleep 63'"
        )),
        75..85 => Step::http_status(503),
        _ => {
            let deltas: Vec<String> = (0..6).map(|i| format!("d{i} ")).collect();
            Step::response(vec![Item::text_deltas(deltas)])
                .with_delta_delay(rng.u64(0..10))
                .with_drop_after(rng.usize(0..5))
        }
    }
}

/// Live tool processes (and their descendants) of the schedule tagged `tag`:
/// every process in `/proc` carrying the tag and the engine's tool marker, and
/// every pid the tools wrote to `pid_file` that is still alive and tagged (a
/// pid reused by someone else's process carries no tag).
fn tools_left(tag: &str, pid_file: &Path) -> Vec<i32> {
    let tagged = |pid: i32, with_marker: bool| {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            return false;
        };
        let entry = format!("{TAG_ENV}={tag}");
        let marker = format!("{TOOL_MARKER_ENV}=");
        let mut vars = environ.split(|b| *b == 0);
        vars.clone().any(|e| e == entry.as_bytes())
            && (!with_marker || vars.any(|e| e.starts_with(marker.as_bytes())))
            && pid_alive(pid)
    };
    let mut alive: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| tagged(*pid, true))
        .collect();
    let written = std::fs::read_to_string(pid_file).unwrap_or_default();
    for pid in written.split_whitespace().filter_map(|p| p.parse().ok()) {
        if !alive.contains(&pid) && tagged(pid, false) {
            alive.push(pid);
        }
    }
    alive
}

/// Wait until no tool process of the schedule is alive; panic at `deadline`.
pub async fn wait_no_tool_left(tag: &str, pid_file: &Path, deadline: Instant, when: &str) {
    loop {
        let alive = tools_left(tag, pid_file);
        if alive.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "tool processes still alive {when}: {}",
            describe_processes(&alive)
        );
        // Not our children: /proc is all there is to watch.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
