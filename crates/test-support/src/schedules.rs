//! Seeded schedule suites: run many randomized schedules, each from its own
//! seed, a few at a time; on a failure, name the seed and the command that
//! replays it.
//!
//! A suite is a function from a seed to a tally of what the schedule
//! exercised (`"op steer accepted" → 3`). The seeds come from the
//! environment: `<seed_env>=<seed>` replays one schedule, `<count_env>=<n>`
//! sets how many run, else `default_count` from a random base.
//!
//! An engine suite runs each schedule on one wire API, fixed by its seed
//! ([`wire_for`], [`Schedules::run_on_both_wires`]): replaying a seed replays
//! its wire, and a run of consecutive seeds covers both halves equally.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use tiller_core::config::WireApi;
use tokio::task::JoinSet;

/// What the schedules of one run exercised, summed.
pub type Tally = BTreeMap<String, usize>;

/// How a suite's schedules are chosen and run.
#[derive(Debug, Clone, Copy)]
pub struct Schedules {
    /// The variable that replays one seed.
    pub seed_env: &'static str,
    /// The variable that sets how many schedules run.
    pub count_env: &'static str,
    /// How many run by default.
    pub default_count: u64,
    /// How many run at the same time.
    pub parallel: usize,
    /// The command that runs the suite (the seed variable is put before it).
    pub replay: &'static str,
}

/// A run that passed.
#[derive(Debug)]
pub struct Passed {
    /// The seeds that ran, in order.
    pub seeds: Vec<u64>,
    /// What they exercised.
    pub tally: Tally,
    /// How long the run took.
    pub elapsed: Duration,
}

impl Passed {
    /// Print the summary: how many schedules, the seeds, what they exercised.
    pub fn print(&self) {
        println!(
            "{} schedules passed in {:.1?} (seeds {}..={})",
            self.seeds.len(),
            self.elapsed,
            self.seeds.first().copied().unwrap_or_default(),
            self.seeds.last().copied().unwrap_or_default()
        );
        for (what, n) in &self.tally {
            println!("  {n:6}  {what}");
        }
    }
}

/// A run that failed: the first failure, its seed and the command that
/// replays it. Its `Debug` is its text, so a test that returns it ends with
/// the words (libtest prints `Error: {:?}`), not with a panic's backtrace
/// that a log's tail would show instead.
pub struct Failure(pub String);

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The wire API the schedule of `seed` speaks: Responses for an even seed,
/// Chat for an odd one.
pub fn wire_for(seed: u64) -> WireApi {
    if seed.is_multiple_of(2) {
        WireApi::Responses
    } else {
        WireApi::Chat
    }
}

impl Schedules {
    /// The seeds this run takes from the environment.
    pub fn seeds(&self) -> Vec<u64> {
        let seed_env = self.seed_env;
        match std::env::var(seed_env) {
            Ok(seed) => vec![
                seed.trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("{seed_env}={seed}: {e}")),
            ],
            Err(_) => {
                let count = std::env::var(self.count_env)
                    .ok()
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(self.default_count);
                let base = fastrand::u64(..u64::MAX / 2);
                (base..base + count).collect()
            }
        }
    }

    /// Run `schedule` for every seed, [`Schedules::parallel`] at a time, each
    /// in a task of its own so a failed assertion comes back with its seed.
    /// After a failure no new schedule starts; the running ones finish. The
    /// error is the first failure, with the command that replays it.
    pub async fn run<F, Fut>(&self, schedule: F) -> Result<Passed, Failure>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Tally> + Send + 'static,
    {
        self.run_labelled(schedule, |_| String::new()).await
    }

    /// [`Schedules::run`], each schedule on the wire API its seed gives
    /// ([`wire_for`]): a failure names the wire with the seed, and the tally
    /// counts the schedules that passed on each wire.
    pub async fn run_on_both_wires<F, Fut>(&self, schedule: F) -> Result<Passed, Failure>
    where
        F: Fn(u64, WireApi) -> Fut,
        Fut: Future<Output = Tally> + Send + 'static,
    {
        let on_its_wire = |seed| {
            let wire = wire_for(seed);
            let run = schedule(seed, wire);
            async move {
                let mut tally = run.await;
                *tally
                    .entry(format!("schedules on the {} wire", wire.as_str()))
                    .or_default() += 1;
                tally
            }
        };
        self.run_labelled(on_its_wire, |seed| {
            format!(" on the {} wire", wire_for(seed).as_str())
        })
        .await
    }

    /// [`Schedules::run`], with `label(seed)` after the seed in a failure.
    async fn run_labelled<F, Fut>(
        &self,
        schedule: F,
        label: impl Fn(u64) -> String,
    ) -> Result<Passed, Failure>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Tally> + Send + 'static,
    {
        let seeds = self.seeds();
        let started = Instant::now();
        let mut tally = Tally::new();
        let mut running = JoinSet::new();
        let mut next = seeds.iter().copied();
        let mut failures = Vec::new();
        loop {
            while running.len() < self.parallel.max(1) && failures.is_empty() {
                let Some(seed) = next.next() else { break };
                let handle = tokio::spawn(schedule(seed));
                running.spawn(async move { (seed, handle.await) });
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            let (seed, outcome) = done.expect("the schedule wrapper");
            match outcome {
                Ok(seen) => {
                    for (what, n) in seen {
                        *tally.entry(what).or_default() += n;
                    }
                }
                Err(error) => failures.push((seed, panic_message(error))),
            }
        }
        if let Some((seed, why)) = failures.first() {
            let mut by_label = BTreeMap::<String, usize>::new();
            for (seed, _) in &failures {
                *by_label.entry(label(*seed)).or_default() += 1;
            }
            let by_label: Vec<String> = by_label
                .into_iter()
                .filter(|(label, _)| !label.is_empty())
                .map(|(label, n)| format!(", {n}{label}"))
                .collect();
            return Err(Failure(format!(
                "schedule {seed}{} failed ({} failed in all{}): {why}\nreplay it with:\n  {}={seed} {}",
                label(*seed),
                failures.len(),
                by_label.concat(),
                self.seed_env,
                self.replay
            )));
        }
        Ok(Passed {
            seeds,
            tally,
            elapsed: started.elapsed(),
        })
    }
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(panic) => panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".to_owned()),
        Err(error) => error.to_string(),
    }
}
