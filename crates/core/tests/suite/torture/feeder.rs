//! The model's and the tools' side of a schedule: random steps for the mock,
//! and tool scripts whose processes carry the schedule's tag.
//!
//! Shared by the torture schedules and the kill-and-resume loop
//! (`tests/torture_kill_resume.rs`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::json;
use tiller_mock_model::{Item, MockModel, Step};

/// Set on every tool process (by `env`, so all its descendants inherit it):
/// `<schedule>/<call id>`.
pub const TAG_ENV: &str = "TILLER_TORTURE_TAG";
/// Unused steps kept queued at the mock, so a request that follows another
/// within microseconds (a retry, a steer cutting the stream) still finds one.
pub const STEPS_AHEAD: usize = 4;

/// Keeps [`STEPS_AHEAD`] steps queued at the mock: random ones during the
/// schedule, plain text once it is over.
pub struct Feeder {
    pub rng: fastrand::Rng,
    pub random: bool,
    /// How many random steps were pushed (the first steps of the script).
    pub random_pushed: usize,
    pub next_call: u32,
    pub tag: String,
    pub dir: PathBuf,
    pub tally: BTreeMap<String, usize>,
    /// What each call's script does.
    pub call_kind: HashMap<String, &'static str>,
}

impl Feeder {
    /// Random steps from `seed` for tools running in `dir`, tagged `tag`.
    pub fn new(seed: u64, tag: &str, dir: &Path) -> Feeder {
        Feeder {
            rng: fastrand::Rng::with_seed(seed ^ 0x7041_7e11),
            random: true,
            random_pushed: 0,
            next_call: 0,
            tag: tag.to_owned(),
            dir: dir.to_path_buf(),
            tally: BTreeMap::new(),
            call_kind: HashMap::new(),
        }
    }

    pub fn top_up(&mut self, mock: &MockModel) {
        while mock.remaining_steps() < STEPS_AHEAD {
            let step = if self.random {
                self.random_pushed += 1;
                self.random_step()
            } else {
                Step::text("done")
            };
            mock.push_step(step);
        }
    }

    pub fn count(&mut self, what: &str) {
        *self.tally.entry(what.to_owned()).or_default() += 1;
    }

    fn random_step(&mut self) -> Step {
        match self.rng.u32(0..100) {
            0..25 => {
                self.count("step text");
                Step::response(vec![self.text_item()]).with_delta_delay(self.rng.u64(0..4))
            }
            25..55 => {
                let calls = if self.rng.u32(0..4) == 0 {
                    self.rng.usize(2..4)
                } else {
                    1
                };
                self.count(if calls > 1 { "step calls" } else { "step call" });
                let mut items = Vec::new();
                if self.rng.bool() {
                    items.push(self.text_item());
                }
                for _ in 0..calls {
                    items.push(self.shell_call());
                }
                Step::response(items).with_delta_delay(self.rng.u64(0..3))
            }
            55..62 => {
                let status = if self.rng.bool() { 429 } else { 503 };
                if self.rng.u32(0..4) == 0 {
                    // No `Retry-After`: the engine's own backoff (200 ms).
                    self.count("step 429/503 backoff");
                    Step::http_status(status)
                } else {
                    self.count("step 429/503 retry-after");
                    Step::http_status(status).with_header("Retry-After", "0")
                }
            }
            62..65 => {
                self.count("step 400");
                Step::http_error(
                    400,
                    json!({"error": {"message": "torture: this request is refused",
                                      "type": "invalid_request_error", "param": null, "code": null}}),
                )
            }
            65..70 => {
                self.count("step 400 missing output");
                let call = if self.next_call > 0 {
                    format!("call_{}", self.rng.u32(1..=self.next_call))
                } else {
                    "call_none".to_owned()
                };
                Step::http_error(
                    400,
                    json!({"error": {"message": format!("No tool output found for function call {call}."),
                                      "type": "invalid_request_error", "param": "input", "code": null}}),
                )
            }
            70..80 => {
                self.count("step drop");
                let first = self.text_item();
                let mut items = vec![first];
                if self.rng.bool() {
                    items.push(self.shell_call());
                }
                Step::response(items)
                    .with_delta_delay(self.rng.u64(0..3))
                    .with_drop_after(self.rng.usize(0..8))
            }
            80..90 => {
                self.count("step stall");
                let after = self.rng.usize(0..6);
                Step::response(vec![self.text_item()]).with_stall(after, 400)
            }
            _ => {
                self.count("step malformed");
                let after = self.rng.usize(0..6);
                Step::response(vec![self.text_item()]).with_malformed_after(after)
            }
        }
    }

    fn text_item(&mut self) -> Item {
        let deltas: Vec<String> = (0..self.rng.usize(1..16))
            .map(|i| format!("w{i}{} ", self.rng.alphanumeric()))
            .collect();
        Item::text_deltas(deltas)
    }

    /// A `shell` call whose processes all carry the schedule's tag and write
    /// their pids to `pids.<call id>` in the work folder.
    fn shell_call(&mut self) -> Item {
        self.next_call += 1;
        let call_id = format!("call_{}", self.next_call);
        let pids = self.dir.join(format!("pids.{call_id}"));
        let p = pids.display();
        let (kind, script) = match self.rng.u32(0..100) {
            0..30 => ("quick", format!("echo $$ >> {p}; echo done")),
            30..45 => ("sleep", format!("echo $$ >> {p}; sleep 30")),
            45..55 => {
                let bytes = self.rng.usize(1_000_000..4_000_000);
                (
                    "flood",
                    format!("echo $$ >> {p}; head -c {bytes} /dev/zero | tr '\\0' x"),
                )
            }
            55..68 => (
                "ignores SIGTERM",
                format!("trap '' TERM; echo $$ >> {p}; sleep 30 & echo $! >> {p}; wait"),
            ),
            68..80 => (
                "grandchildren",
                format!(
                    "echo $$ >> {p}; (sleep 30 & echo $! >> {p}; sleep 31) & echo $! >> {p}; wait"
                ),
            ),
            80..90 => (
                "setsid",
                format!(
                    "echo $$ >> {p}; setsid bash -c 'trap \"\" TERM; echo $$ >> {p}; exec sleep 30' & wait"
                ),
            ),
            _ => (
                "leftover",
                format!("echo $$ >> {p}; sleep 30 & echo $! >> {p}; echo left"),
            ),
        };
        self.call_kind.insert(call_id.clone(), kind);
        let tag = format!("{TAG_ENV}={}/{call_id}", self.tag);
        Item::function_call(
            call_id,
            "shell",
            json!({"command": ["env", tag, "bash", "-c", script]}),
        )
    }
}
