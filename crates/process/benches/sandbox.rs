//! What the sandbox adds to a tool command's spawn: spawn → exit of
//! `/bin/true` through `spawn_tool` with its own cgroup (as the shell tool
//! spawns), unconfined and under each policy.
//!
//! `cargo bench -p tiller-process --bench sandbox`; `TILLER_BENCH_QUICK=1`
//! runs a few samples. Each round runs the four spawns, in an order that
//! rotates from round to round, so each confined spawn is paired with the
//! unconfined one of its round and both see the same machine:
//!
//! - no sandbox;
//! - `WorkspaceWrite` (a temp folder and `/tmp`, no network), prepared once;
//! - the same policy prepared in each sample (its `prepare()` is timed);
//! - `ReadOnly`, prepared once.
//!
//! A sample is `spawn_tool` → `child.wait()` returns; the tree's kill and
//! release follow, untimed. The figures the target is on are the paired
//! differences, confined minus unconfined. On a kernel that cannot enforce
//! the sandbox, only the unconfined row is measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use tiller_bench_support::{Figure, Report, Unit, runtime, samples};
use tiller_process::{
    CallCgroup, Cgroup, PreparedSandbox, Sandbox, ToolMarker, become_subreaper, kill_tree,
    spawn_tool,
};
use tokio::process::Command;

/// Rounds run first and not counted: the first spawns pay for the
/// watchdog, the cgroup probe, the Landlock ABI query and cold caches.
const WARM_UP: usize = 10;

/// How a sample's process is confined.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    None,
    Prepared,
    PrepareEach,
    ReadOnly,
}

fn main() {
    let engine_runtime = runtime("engine", 2);
    let mut report = Report::start("sandbox");
    engine_runtime.block_on(async {
        become_subreaper().unwrap();
        bench(&mut report).await;
    });
    drop(engine_runtime);
    report.finish();
}

async fn bench(report: &mut Report) {
    let root = tempfile::tempdir().unwrap();
    let workspace_write = Sandbox::WorkspaceWrite {
        writable_roots: vec![root.path().to_path_buf(), "/tmp".into()],
        network: false,
    };
    let confined = match workspace_write.check() {
        Ok(()) => Some((
            workspace_write.prepare().unwrap(),
            Sandbox::ReadOnly.prepare().unwrap(),
        )),
        Err(why) => {
            report.note(format!(
                "the sandbox is not measured: this kernel cannot enforce it ({why})"
            ));
            None
        }
    };
    let cgroup = CallCgroup::create().is_some();
    report.note(format!(
        "each process {} a cgroup of its own",
        if cgroup {
            "has"
        } else {
            "cannot have (none can be made here)"
        }
    ));

    let variants: &[Variant] = if confined.is_some() {
        &[
            Variant::None,
            Variant::Prepared,
            Variant::PrepareEach,
            Variant::ReadOnly,
        ]
    } else {
        &[Variant::None]
    };
    let rounds = samples(300, 10);
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); variants.len()];
    eprint!("spawn → exit of /bin/true, {} variants: ", variants.len());
    for round in 0..WARM_UP + rounds {
        // Which goes first rotates: the first spawn of a round pays for
        // what the previous round left behind.
        for k in 0..variants.len() {
            let at = (round + k) % variants.len();
            let took = match (variants[at], &confined) {
                (Variant::None, _) => spawn_to_exit(None).await,
                (Variant::Prepared, Some((prepared, _))) => spawn_to_exit(Some(prepared)).await,
                (Variant::PrepareEach, Some(_)) => {
                    let started = Instant::now();
                    let prepared = workspace_write.prepare().unwrap();
                    let prepare = started.elapsed();
                    prepare + spawn_to_exit(Some(&prepared)).await
                }
                (Variant::ReadOnly, Some((_, read_only))) => spawn_to_exit(Some(read_only)).await,
                _ => unreachable!("confined variants run only when prepared"),
            };
            if round >= WARM_UP {
                times[at].push(took);
            }
        }
        if round % 30 == 0 {
            eprint!(".");
        }
    }
    eprintln!();

    let [none, rest @ ..] = times.as_slice() else {
        unreachable!("the unconfined variant always runs");
    };
    report.durations(
        Figure::detail(
            "sandbox/spawn/none",
            "spawn → exit of `/bin/true`, no sandbox",
        ),
        none,
    );
    let [prepared, prepare_each, read_only] = rest else {
        return;
    };
    for (id, name, confined) in [
        (
            "workspace-write",
            "`WorkspaceWrite` (2 roots, no network) prepared once",
            prepared,
        ),
        (
            "workspace-write-prepare-each",
            "`WorkspaceWrite` with `prepare()` in each spawn",
            prepare_each,
        ),
        ("read-only", "`ReadOnly` prepared once", read_only),
    ] {
        report.durations(
            Figure::detail(
                format!("sandbox/spawn/{id}"),
                format!("spawn → exit of `/bin/true`, {name}"),
            ),
            confined,
        );
        let extra: Vec<f64> = confined
            .iter()
            .zip(none)
            .map(|(confined, none)| (confined.as_secs_f64() - none.as_secs_f64()) * 1e3)
            .collect();
        report.values(
            Figure::new(
                format!("sandbox/extra/{id}"),
                format!("extra per spawn, {name} (paired with no sandbox)"),
            )
            .at_most(2.0, "≤ 2 ms p99"),
            Unit::Millis,
            &extra,
        );
    }
}

/// `spawn_tool` of `/bin/true` (stdio as the shell tool sets it) → its exit;
/// then its tree killed and released, untimed.
async fn spawn_to_exit(sandbox: Option<&PreparedSandbox>) -> Duration {
    let mut command = Command::new("/bin/true");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut process =
        spawn_tool(&mut command, ToolMarker::new(), Cgroup::Own, sandbox).expect("spawn /bin/true");
    let status = process.child.wait().await.expect("wait");
    let took = started.elapsed();
    assert!(status.success(), "/bin/true failed: {status}");
    assert!(kill_tree(&process.tree, None).await.complete);
    process.release();
    took
}
