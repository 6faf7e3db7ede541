//! `tiller exec` start-up: from spawning the release binary to its first
//! request at the model, and the peak resident memory of a whole run.
//!
//! `cargo bench -p tiller-cli --bench exec_startup`. The mock model runs in
//! this process on its own runtime thread; each run's `TILLER_HOME` holds a
//! `config.toml` whose provider points at it, so the binary takes the same path
//! as against a real provider (config file, provider table, HTTP client), not
//! the `--script` shortcut. The time is the mock's recorded arrival `Instant`
//! of the run's request minus an `Instant` taken just before the spawn.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tiller_core::client::ResponsesClient;
use tiller_core::config::ProviderConfig;
use tiller_mock_model::{MockModel, Script, Step};

const TILLER: &str = env!("CARGO_BIN_EXE_tiller");
const TIMED_RUNS: usize = 200;
const RSS_RUNS: usize = 100;
const TIME_BIN: &str = "/usr/bin/time";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("mock-model")
        .enable_all()
        .build()
        .unwrap();
    let mock = runtime
        .block_on(MockModel::start(Script::new(Vec::new())))
        .unwrap();
    let home = tempfile::TempDir::new().unwrap();
    let work = tempfile::TempDir::new().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "model_provider = \"bench\"\n\n[model_providers.bench]\nname = \"bench\"\nbase_url = \"{}\"\n",
            mock.base_url()
        ),
    )
    .unwrap();
    let mut table = Table::default();
    let other_load = OtherLoad::start();
    println!(
        "machine: {} CPUs; load average {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    // Warm the page cache so the first timed run is not a cold start from disk.
    run_exec(&mock, home.path(), work.path(), Mode::Timed);

    let mut to_request = Vec::with_capacity(TIMED_RUNS);
    let mut to_exit = Vec::with_capacity(TIMED_RUNS);
    let mut without_cert_vars = Vec::with_capacity(TIMED_RUNS);
    for _ in 0..TIMED_RUNS {
        let run = run_exec(&mock, home.path(), work.path(), Mode::Timed);
        to_request.push(run.to_request);
        to_exit.push(run.to_exit);
        let run = run_exec(&mock, home.path(), work.path(), Mode::WithoutCertVars);
        without_cert_vars.push(run.to_request);
    }
    table.row(
        "tiller exec: spawn -> first request at the mock",
        "<= 30 ms",
        &to_request,
        Some(Duration::from_millis(30)),
    );
    table.row("  spawn -> exit (whole one-turn run)", "-", &to_exit, None);
    table.row(
        "  spawn -> first request, SSL_CERT_FILE and SSL_CERT_DIR unset",
        "<= 30 ms",
        &without_cert_vars,
        Some(Duration::from_millis(30)),
    );

    // The HTTP client is built once per session; rustls-platform-verifier
    // loads the native root certificates then, even for an http:// provider.
    let provider = ProviderConfig::for_local_server(mock.base_url());
    let mut client_new = Vec::with_capacity(TIMED_RUNS);
    for _ in 0..TIMED_RUNS {
        let started = Instant::now();
        let client = ResponsesClient::new(&provider, None).unwrap();
        client_new.push(started.elapsed());
        drop(client);
    }
    table.row(
        "  in this process: ResponsesClient::new (loads root certificates)",
        "-",
        &client_new,
        None,
    );

    let mut version = Vec::with_capacity(TIMED_RUNS);
    for _ in 0..TIMED_RUNS {
        let started = Instant::now();
        let status = Command::new(TILLER)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        version.push(started.elapsed());
        assert!(status.success());
    }
    table.row(
        "  floor: spawn -> exit of `tiller --version`",
        "-",
        &version,
        None,
    );

    let mut rss = Vec::new();
    if Path::new(TIME_BIN).exists() {
        for _ in 0..RSS_RUNS {
            let run = run_exec(&mock, home.path(), work.path(), Mode::Rss);
            rss.push(run.peak_rss_kib.unwrap());
        }
    }
    // Not getrusage(RUSAGE_CHILDREN): a child forked from this process counts
    // this process's pages, copied at the fork, in its ru_maxrss until it execs.
    if rss.is_empty() {
        eprintln!("{TIME_BIN} is missing (apt package `time`): peak RSS not measured");
    } else {
        rss.sort_unstable();
        let p99 = percentile(&rss, 99.0);
        let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
        table.rows.push([
            "tiller exec: peak RSS (VmHWM via /usr/bin/time %M)".to_string(),
            "<= 20 MB".to_string(),
            rss.len().to_string(),
            mib(percentile(&rss, 50.0)),
            mib(p99),
            mib(rss.last().copied().unwrap_or(0)),
            // 20 MB, decimal: 20,000,000 bytes.
            yes_no(p99 * 1024 <= 20_000_000),
        ]);
    }

    drop(mock);
    drop(runtime);
    table.print();
    println!("{}", other_load.report());
}

/// How much other work shared the machine while the bench ran: the machine's
/// busy CPU time (`/proc/stat`) minus this process's and its reaped children's
/// (`/proc/self/stat`), both in clock ticks of 10 ms (`USER_HZ` is 100 on x86-64).
struct OtherLoad {
    started: Instant,
    machine: [u64; 2],
    own: u64,
}

impl OtherLoad {
    fn start() -> OtherLoad {
        OtherLoad {
            started: Instant::now(),
            machine: machine_ticks(),
            own: own_ticks(),
        }
    }

    fn report(&self) -> String {
        let [busy, steal] = machine_ticks();
        let other = (busy - self.machine[0]).saturating_sub(own_ticks() - self.own);
        let secs = self.started.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let cpus = |ticks: u64| ticks as f64 / 100.0 / secs;
        format!(
            "other processes used {:.2} CPUs on average during the {secs:.0} s run (hypervisor steal {:.2} CPUs); load average now {}",
            cpus(other),
            cpus(steal - self.machine[1]),
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        )
    }
}

/// Busy (user, nice, system, irq, softirq) and steal ticks of all CPUs.
fn machine_ticks() -> [u64; 2] {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    [
        field(0) + field(1) + field(2) + field(5) + field(6),
        field(7),
    ]
}

/// utime + stime + cutime + cstime of this process.
fn own_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    // Fields 14 to 17 of the whole line are 12 to 15 after the name.
    after_name
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum()
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

#[derive(Default)]
struct Table {
    rows: Vec<[String; 7]>,
}

impl Table {
    fn row(&mut self, name: &str, target: &str, samples: &[Duration], p99_limit: Option<Duration>) {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let p99 = percentile(&sorted, 99.0);
        let show = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        self.rows.push([
            name.to_string(),
            target.to_string(),
            sorted.len().to_string(),
            show(percentile(&sorted, 50.0)),
            show(p99),
            show(sorted.last().copied().unwrap_or_default()),
            p99_limit.map_or_else(|| "-".to_string(), |limit| yes_no(p99 <= limit)),
        ]);
    }

    fn print(&self) {
        let header = ["figure", "target", "n", "median", "p99", "max", "met"].map(str::to_string);
        let mut widths = [0; 7];
        for row in std::iter::once(&header).chain(&self.rows) {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: &[String; 7]| {
            let cells: Vec<String> = cells
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(i, (cell, width))| {
                    if i == 0 {
                        format!("{cell:<width$}")
                    } else {
                        format!("{cell:>width$}")
                    }
                })
                .collect();
            println!("| {} |", cells.join(" | "));
        };
        line(&header);
        let rule: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if i == 0 {
                    format!(":{}", "-".repeat(w + 1))
                } else {
                    format!("{}:", "-".repeat(w + 1))
                }
            })
            .collect();
        println!("|{}|", rule.join("|"));
        for row in &self.rows {
            line(row);
        }
    }
}

fn yes_no(met: bool) -> String {
    if met { "yes" } else { "NO" }.to_string()
}

/// Nearest-rank percentile of sorted samples.
fn percentile<T: Copy + Default>(sorted: &[T], pct: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
