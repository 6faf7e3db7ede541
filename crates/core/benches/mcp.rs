//! MCP benchmarks: interrupt latency with an MCP tool call running on a real
//! server (the Python SDK's FastMCP script of `tiller_test_support`), and what
//! ten configured servers cost the time to the first model request.
//!
//! `cargo bench -p tiller-core --bench mcp [-- FILTER...]` runs `interrupt`
//! (`interrupt-honours`, `interrupt-ignores`) and `startup`, or all of them.
//! `TILLER_BENCH_QUICK=1` runs a few samples of each.
//!
//! As in `lifecycle`, the mock model runs on its own one-thread runtime and
//! the engine on a two-worker one; the servers are real Python processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use tempfile::TempDir;
use tiller_bench_support::{Figure, Report, runtime, samples};
use tiller_core::config::{
    ApprovalPolicy, Config, ConfigOverrides, McpServerConfig, ProviderConfig,
};
use tiller_core::{EventStream, SessionHandle, SessionOptions, SessionSource, spawn_session};
use tiller_mock_model::{MockModel, Script, Step};
use tiller_protocol::{Event, EventMsg, McpServerState, Op, Reply, UserInput};
use tiller_test_support::mcp_servers::{python_mcp_site, slow_server, wait_for_record};
use tiller_test_support::pid_alive;

/// The longest anything is waited for before the bench gives up.
const DEADLINE: Duration = Duration::from_secs(60);

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let wants = |id: &str| {
        filter.is_empty()
            || filter
                .iter()
                .any(|f| f == id || id.starts_with(&format!("{f}-")))
    };
    let mock_runtime = runtime("mock-model", 1);
    let engine_runtime = runtime("engine", 2);
    let mock_handle = mock_runtime.handle().clone();
    let mut report = Report::start("mcp");
    engine_runtime.block_on(async {
        tiller_core::process_tree::become_subreaper().unwrap();
        let mock = mock_handle
            .spawn(MockModel::start(Script::new(Vec::new())))
            .await
            .unwrap()
            .unwrap();
        let bench = Bench {
            mock,
            site: python_mcp_site().await,
            home: TempDir::new().unwrap(),
            work: TempDir::new().unwrap(),
        };
        for (id, tool, honours) in [
            ("interrupt-honours", "sleep", true),
            ("interrupt-ignores", "stubborn", false),
        ] {
            if wants(id) {
                interrupt_bench(&bench, tool, honours, &mut report).await;
            }
        }
        if wants("startup") {
            // A mock of its own: `wait_for_requests` copies every request the
            // mock recorded, and the interrupt benches' requests carry
            // hundreds of turns each.
            let mock = mock_handle
                .spawn(MockModel::start(Script::new(Vec::new())))
                .await
                .unwrap()
                .unwrap();
            let bench = Bench { mock, ..bench };
            startup_bench(&bench, &mut report).await;
        }
    });
    drop(engine_runtime);
    drop(mock_runtime);
    report.finish();
}

struct Bench {
    mock: MockModel,
    site: PathBuf,
    home: TempDir,
    work: TempDir,
}

impl Bench {
    /// A new session talking to the mock, with `servers`.
    fn session(&self, servers: Vec<McpServerConfig>) -> (SessionHandle, EventStream) {
        let provider = ProviderConfig::for_local_server(self.mock.base_url());
        let mut config = Config::load(
            self.home.path(),
            ConfigOverrides {
                approval_policy: Some(ApprovalPolicy::Never),
                cwd: Some(self.work.path().to_path_buf()),
                provider_override: Some(provider),
                ..ConfigOverrides::default()
            },
        )
        .unwrap()
        .config;
        config.mcp_servers = servers.into_iter().map(|s| (s.name.clone(), s)).collect();
        spawn_session(SessionOptions {
            config,
            api_key: None,
            source: SessionSource::Ephemeral {
                history: Vec::new(),
            },
        })
        .unwrap()
    }
}

/// Interrupt → `TurnAborted` while the model's call of `tool` (60 s) runs on
/// the server: one session, one server, a turn per sample. `honours`: the
/// tool stops on `notifications/cancelled` (checked on the server once);
/// otherwise it ignores it, and the turn must not wait for it.
async fn interrupt_bench(bench: &Bench, tool: &str, honours: bool, report: &mut Report) {
    let record = bench.work.path().join(format!("record-{tool}"));
    let server = slow_server("slow", &bench.site, &record);
    let (session, mut events) = bench.session(vec![server]);
    wait_for(&mut events, |msg| {
        matches!(
            msg,
            EventMsg::McpServerStatus {
                status: McpServerState::Ready,
                ..
            }
        )
    })
    .await;
    let name = if honours {
        "interrupt → `TurnAborted`, an MCP call running (the server stops on the cancel)"
    } else {
        "interrupt → `TurnAborted`, an MCP call running (the server ignores the cancel)"
    };
    eprint!("{name}: ");
    let iterations = samples(200, 10);
    let mut to_aborted = Vec::with_capacity(iterations);
    for i in 0..iterations {
        bench.mock.push_step(Step::function_call(
            format!("call_{i}"),
            format!("mcp__slow__{tool}"),
            json!({"seconds": 60}),
        ));
        start_turn(&session, "call it").await;
        // Running on the server: its progress (sleep) or its record (stubborn).
        if honours {
            wait_for(&mut events, |msg| {
                matches!(msg, EventMsg::McpToolCallProgress { .. })
            })
            .await;
        } else {
            wait_for_started(&record, i + 1).await;
        }
        let started = Instant::now();
        let (reply, aborted) = tokio::join!(
            session.submit(Op::Interrupt),
            wait_for(&mut events, |msg| matches!(
                msg,
                EventMsg::TurnAborted { .. }
            ))
        );
        to_aborted.push(aborted - started);
        assert_eq!(reply, Ok(Reply::Done));
        if i % 20 == 0 {
            eprint!(".");
        }
    }
    eprintln!();
    if honours {
        // Every cancel reached the server (the first one, at least, by now).
        wait_for_record(&record, "cancelled", DEADLINE).await;
    }
    report.durations(
        Figure::new(format!("mcp-tools/interrupt/{tool}"), name).at_most(10.0, "≤ 10 ms p99"),
        &to_aborted,
    );
    let _ = session.submit(Op::Shutdown).await;
}

/// Wait until the server recorded `n` starts of the stubborn tool.
async fn wait_for_started(record: &std::path::Path, n: usize) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let started = std::fs::read_to_string(record)
            .unwrap_or_default()
            .lines()
            .filter(|line| *line == "stubborn started")
            .count();
        if started >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server never started the call"
        );
        // Polling a file the server writes: there is no event to wait on.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Session start → the mock has the turn's first request, with no MCP server
/// and with ten (each a Python process), alternating.
async fn startup_bench(bench: &Bench, report: &mut Report) {
    let iterations = samples(20, 3);
    let mut none = Vec::with_capacity(iterations);
    let mut ten = Vec::with_capacity(iterations);
    eprint!("first model request, 0 and 10 MCP servers: ");
    // The first pair warms up (the shared HTTP client, the watchdog) and is not counted.
    for i in 0..(iterations + 1) * 2 {
        let with_servers = i % 2 == 1;
        let servers: Vec<McpServerConfig> = if with_servers {
            (0..10)
                .map(|n| {
                    let record = bench.work.path().join(format!("startup-{n}"));
                    slow_server(&format!("s{n}"), &bench.site, &record)
                })
                .collect()
        } else {
            Vec::new()
        };
        bench.mock.push_step(Step::text("hello"));
        let before = bench.mock.requests().len();
        let started = Instant::now();
        let (session, mut events) = bench.session(servers);
        start_turn(&session, "hi").await;
        bench
            .mock
            .wait_for_requests(before + 1, DEADLINE)
            .await
            .unwrap();
        let took = started.elapsed();
        if i < 2 {
            // Warming up.
        } else if with_servers {
            ten.push(took);
        } else {
            none.push(took);
        }
        wait_for(&mut events, |msg| msg.is_terminal()).await;
        let _ = session.submit(Op::Shutdown).await;
        wait_for(&mut events, |msg| matches!(msg, EventMsg::ShutdownComplete)).await;
        drop((session, events));
        // The next sample starts on a quiet machine: every server of this one gone.
        wait_servers_gone().await;
        eprint!(".");
    }
    eprintln!();
    report.durations(
        Figure::new(
            "mcp-tools/startup/0",
            "session start → first model request, no MCP server",
        ),
        &none,
    );
    report.durations(
        Figure::new(
            "mcp-tools/startup/10",
            "session start → first model request, 10 MCP servers starting (Python)",
        ),
        &ten,
    );
}

/// Wait until no MCP server of the last sample is left: no child of this
/// process runs Python (a server killed before it wrote anything included),
/// twice in a row, so the next sample starts on a quiet machine.
async fn wait_servers_gone() {
    let deadline = Instant::now() + DEADLINE;
    let mut quiet = 0;
    while quiet < 2 {
        quiet = if python_children() == 0 { quiet + 1 } else { 0 };
        assert!(
            Instant::now() < deadline,
            "MCP servers outlived their session"
        );
        // Other processes' ends: nothing to wait on but /proc.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How many live children of this process (of any of its threads) run Python.
fn python_children() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|pid| pid.parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .filter(|pid| {
            pid_alive(*pid)
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.starts_with("python"))
        })
        .count()
}

async fn start_turn(session: &SessionHandle, text: &str) -> String {
    match session
        .submit(Op::start_turn(vec![UserInput::text(text)]))
        .await
    {
        Ok(Reply::TurnStarted { turn_id }) => turn_id,
        other => panic!("StartTurn was answered with {other:?}"),
    }
}

/// The next event matching `pred`; returns when it arrived.
async fn wait_for(events: &mut EventStream, pred: impl Fn(&EventMsg) -> bool) -> Instant {
    loop {
        let event: Event = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .expect("an event within the deadline")
            .expect("the session's events");
        if pred(&event.msg) {
            return Instant::now();
        }
    }
}
