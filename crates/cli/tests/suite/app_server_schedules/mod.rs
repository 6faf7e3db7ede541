//! Randomized lifecycle schedules against the real `tiller app-server`.
//!
//! A seeded PRNG interleaves `turn/start`, `turn/steer` and `turn/interrupt`
//! (with the current turn's id, with stale ones, and with the id `turn/start`
//! just returned), `thread/interrupt`, `thread/queue/add|list|delete`, repeats
//! of earlier requests with the same `clientUserMessageId`, SIGKILLs of the
//! server followed by `thread/resume` in a new one, and short pauses; an
//! in-process mock model answers each request with a random step: streamed
//! text, a quick `echo`, a long `sleep`, a call that leaves a background
//! grandchild, a 503, or a stream that drops (`model`).
//!
//! Checked on everything each server printed (`server`, `checks`): every line
//! against the Codex schemas; one response per request, `turn/start`'s before
//! its turn's notifications, one `turn/completed` per turn and nothing after
//! it, every `item/started` completed; what starts and interrupts each turn,
//! the order of an interrupt's `{}`, `idle` and `turn/completed`; steers and
//! interrupts naming the id just returned accepted; the queue replayed
//! against every list and delete, queued messages started only after a
//! completed turn, all of them, joined; repeated client ids answered as the
//! first time. Across a kill (`ledger`): the resumed thread has every turn,
//! ended ones as they ended, the one cut off `interrupted`; the queue keeps
//! every acknowledged entry; repeats after the restart still get the first
//! answer; no tool process survives. At the end: no model request refused for
//! breaking the API contract, each user text at most once per request, and in
//! the final history every turn input, delivered steer and queued message
//! exactly once and no deleted entry; a final turn that completes; exit 0 on
//! EOF; no process left.
//!
//! A seed replays the same actions and the same model steps; the timing (and so
//! which action meets which state) is the machine's. On failure the seed and the
//! command that replays it are printed. `TILLER_SCHEDULES=<n>` sets how many
//! schedules run; `TILLER_SCHEDULE_SEED=<seed>` runs that one only.

mod checks;
mod driver;
mod ledger;
mod model;
mod plan;
mod regressions;
mod server;

use std::collections::BTreeMap;
use std::time::Duration;

use tiller_test_support::schedules::{Failure, Schedules};

use driver::Schedule;

/// Tags the server and, through inheritance, every tool it runs.
const TAG_ENV: &str = "TILLER_SCHEDULE";
/// The engine's marker on every tool process (not on the orphan watchdog).
const TOOL_MARKER_ENV: &str = "TILLER_TOOL_MARKER";
/// The deadline for anything the schedule waits on that should be prompt.
const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_lifecycle_schedules_keep_the_protocol_invariants() -> Result<(), Failure> {
    let schedules = Schedules {
        seed_env: "TILLER_SCHEDULE_SEED",
        count_env: "TILLER_SCHEDULES",
        // About 0.45 s each in a debug build on 2 cores: under 20 s in all.
        default_count: 40,
        // One at a time: each schedule is a server and its tools.
        parallel: 1,
        replay: "cargo test -p tiller-cli --test all app_server_schedules::random -- --nocapture",
    };
    schedules.run(run_schedule).await?.print();
    Ok(())
}

async fn run_schedule(seed: u64) -> BTreeMap<String, usize> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let plan = plan::random_plan(&mut rng);
    let mut schedule = Schedule::new(seed).await;
    for (n, action) in plan.into_iter().enumerate() {
        schedule.act(n, action).await;
    }
    schedule.finish().await
}
