//! Persistence figures: resume time by rollout size, and the cost of the
//! rollout on the hot path (CPU of a 20,000-delta turn with and without it).
//!
//! The turns alternate without and with the rollout, and the overhead is the
//! median of each pair's ratio, so that a change in the machine's load over
//! the run falls on both halves of a pair. The mock model runs on its own
//! one-thread runtime and its thread's CPU time is subtracted, as in the
//! `lifecycle` bench: what is left is the engine's (and the rollout writer's).
//!
//! `cargo bench -p tiller-core --bench rollout` (`TILLER_BENCH_QUICK=1` for a
//! few samples of each). The rows also go to the summary file (see
//! `tiller-bench-support`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use serde_json::json;
use tiller_bench_support::{Figure, Report, Stats, Unit, runtime, samples, thousands};
use tiller_core::config::{Config, ConfigOverrides, ProviderConfig};
use tiller_core::{SessionOptions, SessionSource, rollout, spawn_session};
use tiller_mock_model::{Item, MockModel, Script, Step};
use tiller_protocol::{EventMsg, Op, UserInput};
use tokio::runtime::Handle;

const SESSION: &str = "01a1fe00-0000-7000-8000-000000000000";

fn main() {
    let engine_runtime = runtime("engine", 2);
    let mut report = Report::start("rollout");
    for items in [1_000, 10_000, 100_000] {
        let runs = if items >= 100_000 {
            samples(5, 2)
        } else {
            samples(20, 3)
        };
        let times = engine_runtime.block_on(resume_times(items, runs));
        // The target is for 10,000 items; the other sizes show the growth.
        let figure = Figure::new(
            format!("resume/{items}"),
            format!("resume of a {}-item rollout to ready", thousands(items)),
        );
        report.durations(
            if items == 10_000 {
                figure.at_most(100.0, "≤ 100 ms p99")
            } else {
                figure
            },
            &times,
        );
    }
    let pairs = samples(30, 3);
    let mock_runtime = runtime("mock-model", 1);
    let (without, with) = engine_runtime.block_on(stream_cpu(mock_runtime.handle(), 20_000, pairs));
    drop(mock_runtime);
    report.durations(
        Figure::detail(
            "rollout/cpu/without",
            "engine CPU of a 20,000-delta turn, no rollout",
        ),
        &without,
    );
    report.durations(
        Figure::detail(
            "rollout/cpu/with",
            "engine CPU of a 20,000-delta turn, with the rollout",
        ),
        &with,
    );
    let ratios: Vec<f64> = without
        .iter()
        .zip(&with)
        .map(|(without, with)| with.as_secs_f64() / without.as_secs_f64())
        .collect();
    let overhead = (Stats::of(&ratios).median - 1.0) * 100.0;
    report.row(
        Figure::new(
            "rollout/overhead",
            format!(
                "rollout's CPU overhead on a 20,000-delta turn (median of {pairs} paired ratios)"
            ),
        )
        .at_most(5.0, "≤ +5 %"),
        Unit::Percent,
        Stats::derived(pairs, overhead),
    );
    report.finish();
}

/// Write a rollout of `items` response items (user, call, output, assistant
/// in turn), with the `item` lines tiller writes beside them (each shown item
/// started and completed), as a session of today's tiller is saved.
fn write_rollout(dir: &std::path::Path, items: usize) -> std::path::PathBuf {
    let path = dir.join(format!("rollout-2026-01-01T00-00-00-{SESSION}.jsonl"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let line = |kind: &str, payload: serde_json::Value| {
        json!({"timestamp": "2026-01-01T00:00:00.000Z", "type": kind, "payload": payload})
            .to_string()
    };
    writeln!(out, "{}", line("session_meta", json!({"id": SESSION, "created": "2026-01-01T00:00:00.000Z", "cwd": "/tmp", "model": "m", "provider": "p", "tiller_version": "0"}))).unwrap();
    let mut n = 0;
    let mut turn = 0;
    while n < items {
        turn += 1;
        let turn_id = format!("turn-{turn}");
        writeln!(
            out,
            "{}",
            line("event", json!({"type": "turn_started", "turn_id": turn_id}))
        )
        .unwrap();
        let call = format!("call_{turn}");
        let batch = [
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "please look at the failing test in src/lib.rs and fix it"}]}),
            json!({"type": "function_call", "name": "shell", "arguments": "{\"command\":[\"bash\",\"-lc\",\"cargo test 2>&1 | tail -20\"]}", "call_id": call}),
            json!({"type": "function_call_output", "call_id": call, "output": "Exit code: 0\nWall time: 1.2 seconds\nOutput:\ntest result: ok. 12 passed; 0 failed"}),
            json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "The test passes now: the off-by-one in the parser was the cause."}]}),
        ];
        let shown = [
            json!({"type": "user_message", "content": [{"type": "text", "text": "please look at the failing test in src/lib.rs and fix it"}]}),
            json!({"type": "command_execution", "call_id": call, "command": ["bash", "-lc", "cargo test 2>&1 | tail -20"], "cwd": "/tmp"}),
            json!({"type": "command_execution", "call_id": call, "command": ["bash", "-lc", "cargo test 2>&1 | tail -20"], "cwd": "/tmp", "status": "completed", "exit_code": 0, "duration_ms": 1200, "aggregated_output": "test result: ok. 12 passed; 0 failed"}),
            json!({"type": "agent_message", "text": "The test passes now: the off-by-one in the parser was the cause."}),
        ];
        let item_line = |n: usize, phase: &str, item: &serde_json::Value| {
            let mut item = item.clone();
            item["id"] = json!(format!("{turn_id}-item-{n}"));
            line(
                "item",
                json!({"turn_id": turn_id, "phase": phase, "item": item}),
            )
        };
        for (i, item) in batch.into_iter().enumerate() {
            if n >= items {
                break;
            }
            writeln!(out, "{}", line("response_item", item)).unwrap();
            n += 1;
            // What the turn showed of it: the input (one line: complete at
            // once), the command (started with the call, completed with its
            // output), the answer.
            let lines = match i {
                0 => vec![item_line(1, "completed", &shown[0])],
                1 => vec![item_line(2, "started", &shown[1])],
                2 => vec![item_line(2, "completed", &shown[2])],
                _ => vec![
                    item_line(3, "started", &json!({"type": "agent_message", "text": ""})),
                    item_line(3, "completed", &shown[3]),
                ],
            };
            for l in lines {
                writeln!(out, "{l}").unwrap();
            }
        }
        writeln!(out, "{}", line("event", json!({"type": "turn_completed", "turn_id": turn_id, "last_agent_message": null, "usage": {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0, "reasoning_output_tokens": 0}}))).unwrap();
    }
    out.flush().unwrap();
    path
}

fn config(home: &std::path::Path, base_url: String) -> Config {
    Config::load(
        home,
        ConfigOverrides {
            cwd: Some(home.to_path_buf()),
            provider_override: Some(ProviderConfig::for_local_server(base_url)),
            // The rollout's cost alone (the checkpoint bench has theirs).
            cli_overrides: vec![("checkpoints".into(), "false".into())],
            ..ConfigOverrides::default()
        },
    )
    .unwrap()
    .config
}

/// From reading the file to the session's `SessionConfigured` event.
async fn resume_times(items: usize, runs: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let path = write_rollout(dir.path(), items);
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let opened = rollout::open(&path, rollout::LockWait::No).unwrap();
        assert_eq!(opened.loaded.items.len(), items);
        let (session, mut events) = spawn_session(SessionOptions {
            config: config(dir.path(), "http://127.0.0.1:9/v1".into()),
            api_key: None,
            source: SessionSource::Resume(Box::new(opened)),
        })
        .unwrap();
        let first = events.recv().await.unwrap();
        assert!(matches!(first.msg, EventMsg::SessionConfigured { .. }));
        times.push(start.elapsed());
        session.submit(Op::Shutdown).await.unwrap();
    }
    times
}

fn cpu_now() -> Duration {
    cpu(UsageWho::RUSAGE_SELF)
}

fn cpu(who: UsageWho) -> Duration {
    let usage = getrusage(who).unwrap();
    let t =
        |tv: nix::sys::time::TimeVal| Duration::new(tv.tv_sec() as u64, tv.tv_usec() as u32 * 1000);
    t(usage.user_time()) + t(usage.system_time())
}

/// Engine CPU (the process's minus the mock's thread) of one turn streaming
/// `deltas` deltas, alternating runs without and with the rollout.
async fn stream_cpu(
    mock_runtime: &Handle,
    deltas: usize,
    runs: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let words: Vec<String> = (0..deltas).map(|i| format!("w{i} ")).collect();
    let step = || Step::response(vec![Item::text_deltas(words.clone())]);
    let mock = mock_runtime
        .spawn(MockModel::start(Script::new(vec![])))
        .await
        .unwrap()
        .unwrap();
    let mock_cpu = || async {
        mock_runtime
            .spawn(async { cpu(UsageWho::RUSAGE_THREAD) })
            .await
            .unwrap()
    };
    let mut without = Vec::new();
    let mut with = Vec::new();
    for run in 0..runs * 2 {
        let persist = run % 2 == 1;
        let home = tempfile::tempdir().unwrap();
        mock.push_step(step());
        let source = if persist {
            SessionSource::New
        } else {
            SessionSource::Ephemeral {
                history: Vec::new(),
            }
        };
        let (session, mut events) = spawn_session(SessionOptions {
            config: config(home.path(), mock.base_url()),
            api_key: None,
            source,
        })
        .unwrap();
        let mock_start = mock_cpu().await;
        let start = cpu_now();
        session
            .submit(Op::start_turn(vec![UserInput::text("stream")]))
            .await
            .unwrap();
        loop {
            let event = events.recv().await.unwrap();
            if event.is_terminal() {
                assert!(
                    matches!(event.msg, EventMsg::TurnCompleted { .. }),
                    "{event:?}"
                );
                break;
            }
        }
        let spent = cpu_now() - start;
        let spent = spent.saturating_sub(mock_cpu().await - mock_start);
        if persist {
            with.push(spent)
        } else {
            without.push(spent)
        }
        session.submit(Op::Shutdown).await.unwrap();
    }
    (without, with)
}
