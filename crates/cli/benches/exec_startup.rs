//! `tiller exec` start-up: from spawning the release binary to its first
//! request at the model, and the peak resident memory of a whole run.
//!
//! `cargo bench -p tiller-cli --bench exec_startup`. The mock model runs in
//! this process on its own runtime thread; each run's `TILLER_HOME` holds a
//! `config.toml` whose provider points at it, so the binary takes the same path
//! as against a real provider (config file, provider table, HTTP client), not
//! the `--script` shortcut. The time is the mock's recorded arrival `Instant`
//! of the run's request minus an `Instant` taken just before the spawn.
//! `TILLER_BENCH_QUICK=1` runs a few samples of each; the rows also go to the
//! summary file (see `tiller-bench-support`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tiller_bench_support::{Figure, Report, Unit, runtime, samples};
use tiller_core::client::ResponsesClient;
use tiller_core::config::ProviderConfig;
use tiller_mock_model::{MockModel, Script, Step};

const TILLER: &str = env!("CARGO_BIN_EXE_tiller");
const TIME_BIN: &str = "/usr/bin/time";

fn main() {
    let runtime = runtime("mock-model", 1);
    let mock = runtime
        .block_on(MockModel::start(Script::new(Vec::new())))
        .unwrap();
    let home = tiller_test_support::mock_home(&mock.base_url());
    let work = tempfile::TempDir::new().unwrap();
    let timed_runs = samples(200, 20);
    let rss_runs = samples(100, 10);
    let mut report = Report::start("exec_startup");

    // Warm the page cache so the first timed run is not a cold start from disk.
    run_exec(&mock, home.path(), work.path(), Mode::Timed);

    let mut to_request = Vec::with_capacity(timed_runs);
    let mut to_exit = Vec::with_capacity(timed_runs);
    let mut without_cert_vars = Vec::with_capacity(timed_runs);
    for _ in 0..timed_runs {
        let run = run_exec(&mock, home.path(), work.path(), Mode::Timed);
        to_request.push(run.to_request);
        to_exit.push(run.to_exit);
        let run = run_exec(&mock, home.path(), work.path(), Mode::WithoutCertVars);
        without_cert_vars.push(run.to_request);
    }
    report.durations(
        Figure::new(
            "exec/startup",
            "`tiller exec` spawn → first request at the model",
        )
        .at_most(30.0, "≤ 30 ms p99"),
        &to_request,
    );
    report.durations(
        Figure::detail(
            "exec/exit",
            "`tiller exec` spawn → exit (whole one-turn run)",
        ),
        &to_exit,
    );
    report.durations(
        Figure::detail(
            "exec/no-cert-vars",
            "`tiller exec` spawn → first request, `SSL_CERT_FILE` and `SSL_CERT_DIR` unset",
        ),
        &without_cert_vars,
    );

    // The HTTP client is built once per process, by the first
    // `ResponsesClient::new`; rustls-platform-verifier loads the native root
    // certificates then, even for an http:// provider. Later calls clone it.
    let provider = ProviderConfig::for_local_server(mock.base_url());
    let mut client_new = Vec::with_capacity(timed_runs);
    for _ in 0..timed_runs {
        let started = Instant::now();
        let client = ResponsesClient::new(&provider, None).unwrap();
        client_new.push(started.elapsed());
        drop(client);
    }
    report.durations(
        Figure::detail(
            "exec/client-new",
            "`ResponsesClient::new` in the bench process (the first call builds the shared HTTP client, later ones clone it)",
        ),
        &client_new,
    );

    let mut version = Vec::with_capacity(timed_runs);
    for _ in 0..timed_runs {
        let started = Instant::now();
        let status = Command::new(TILLER)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        version.push(started.elapsed());
        assert!(status.success());
    }
    report.durations(
        Figure::detail(
            "exec/version-floor",
            "process start floor: spawn → exit of `tiller --version`",
        ),
        &version,
    );

    let mut rss = Vec::new();
    if Path::new(TIME_BIN).exists() {
        for _ in 0..rss_runs {
            let run = run_exec(&mock, home.path(), work.path(), Mode::Rss);
            rss.push(run.peak_rss_kib.unwrap());
        }
    }
    // Not getrusage(RUSAGE_CHILDREN): a child forked from this process counts
    // this process's pages, copied at the fork, in its ru_maxrss until it execs.
    if rss.is_empty() {
        eprintln!("{TIME_BIN} is missing (apt package `time`): peak RSS not measured");
    } else {
        let mib: Vec<f64> = rss.iter().map(|&kib| kib as f64 / 1024.0).collect();
        report.values(
            Figure::new(
                "exec/rss",
                "`tiller exec` peak RSS (VmHWM via `/usr/bin/time %M`, whole one-turn run)",
            )
            // 20 MB, decimal: 20,000,000 bytes.
            .at_most(20e6 / 1024.0 / 1024.0, "≤ 20 MB p99"),
            Unit::MiB,
            &mib,
        );
    }

    drop(mock);
    drop(runtime);
    report.finish();
}

struct ExecRun {
    to_request: Duration,
    to_exit: Duration,
    peak_rss_kib: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The binary alone, with this process's environment.
    Timed,
    /// The same with `SSL_CERT_FILE` and `SSL_CERT_DIR` removed from the environment.
    WithoutCertVars,
    /// Under `/usr/bin/time -f %M`, which adds a process in front of the
    /// binary, so such runs are not timed.
    Rss,
}

/// One `tiller exec` run with a one-word prompt, answered by one text step.
fn run_exec(mock: &MockModel, home: &Path, work: &Path, mode: Mode) -> ExecRun {
    mock.push_step(Step::text("done"));
    let before = mock.requests().len();
    let rss_file = (mode == Mode::Rss).then(|| work.join("rss"));
    let mut command = match &rss_file {
        Some(file) => {
            let mut command = Command::new(TIME_BIN);
            command.arg("-f").arg("%M").arg("-o").arg(file).arg(TILLER);
            command
        }
        None => Command::new(TILLER),
    };
    command
        .args(["exec", "hello"])
        .env("TILLER_HOME", home)
        .env_remove("RUST_LOG")
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if mode == Mode::WithoutCertVars {
        command
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR");
    }
    let started = Instant::now();
    let output = command.spawn().unwrap().wait_with_output().unwrap();
    let to_exit = started.elapsed();
    assert!(
        output.status.success(),
        "tiller exec failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let requests = mock.requests();
    assert_eq!(requests.len(), before + 1, "one request per run");
    let request = &requests[before];
    assert_eq!(request.rejected, None);
    let peak_rss_kib = rss_file.map(|file| {
        std::fs::read_to_string(&file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    });
    ExecRun {
        to_request: request.arrived - started,
        to_exit,
        peak_rss_kib,
    }
}
