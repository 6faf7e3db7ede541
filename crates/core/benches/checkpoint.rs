//! Workspace checkpoint figures: the snapshot a turn takes, on a workspace of
//! 10,000 files and 200 MB, when nothing changed and when some files did; and
//! the undo (restore) of a turn that changed files.
//!
//! `cargo bench -p tiller-core --bench checkpoint` (`TILLER_BENCH_QUICK=1` for
//! a few samples of each). The rows also go to the summary file (see
//! `tiller-bench-support`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use tiller_bench_support::{Figure, Report, samples};
use tiller_core::checkpoint::Workspace;

const FOLDERS: usize = 100;
const FILES_PER_FOLDER: usize = 100;
const FILE_BYTES: usize = 20_000;

fn main() {
    let mut report = Report::start("checkpoint");
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    fill(root);
    let workspace = Workspace::open(home.path(), root).unwrap();

    let first = timed(|| {
        workspace.snapshot().unwrap();
    });
    report.durations(
        Figure::detail(
            "checkpoint/first",
            "first snapshot of a 10,000-file, 200 MB workspace (hashes every file)",
        ),
        &[first],
    );

    let unchanged: Vec<Duration> = (0..samples(30, 3))
        .map(|_| {
            timed(|| {
                workspace.snapshot().unwrap();
            })
        })
        .collect();
    report.durations(
        Figure::new(
            "checkpoint/unchanged",
            "snapshot before a turn, 10,000 files / 200 MB, nothing changed",
        )
        .at_most(50.0, "≤ 50 ms"),
        &unchanged,
    );

    let mut round = 0;
    for changed in [10, 1_000] {
        let runs = if changed >= 1_000 {
            samples(5, 2)
        } else {
            samples(20, 3)
        };
        let mut snapshots = Vec::new();
        let mut undos = Vec::new();
        for _ in 0..runs {
            round += 1;
            let before = workspace.snapshot().unwrap();
            touch(root, changed, round);
            let mut after = String::new();
            snapshots.push(timed(|| after = workspace.snapshot().unwrap()));
            undos.push(timed(|| {
                let restored = workspace.restore(&after, &before).unwrap();
                assert_eq!(restored.restored.len(), changed);
            }));
        }
        report.durations(
            Figure::detail(
                format!("checkpoint/changed/{changed}"),
                format!("snapshot after {changed} files (20 KB each) changed"),
            ),
            &snapshots,
        );
        report.durations(
            Figure::detail(
                format!("undo/{changed}"),
                format!(
                    "undo of a turn that changed {changed} files (snapshot now, diff, write back)"
                ),
            ),
            &undos,
        );
    }
    report.finish();
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// 10,000 files of 20 KB of text in 100 folders.
fn fill(root: &Path) {
    let mut rng = fastrand::Rng::with_seed(14);
    for folder in 0..FOLDERS {
        let dir = root.join(format!("d{folder:03}"));
        std::fs::create_dir(&dir).unwrap();
        for file in 0..FILES_PER_FOLDER {
            let text: String = (0..FILE_BYTES).map(|_| rng.alphanumeric()).collect();
            std::fs::write(dir.join(format!("f{file:03}.txt")), text).unwrap();
        }
    }
}

/// Append a line to `count` files, spread over the folders.
fn touch(root: &Path, count: usize, round: usize) {
    use std::io::Write;
    for i in 0..count {
        let n = (i * 7919 + round) % (FOLDERS * FILES_PER_FOLDER);
        let path = root
            .join(format!("d{:03}", n / FILES_PER_FOLDER))
            .join(format!("f{:03}.txt", n % FILES_PER_FOLDER));
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        writeln!(file, "round {round}").unwrap();
    }
}
