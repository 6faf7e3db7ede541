//! The terminal UI as a person meets it: the release `tiller` in a
//! pseudo-terminal (test-support's `PtyChild`), keys written to the
//! terminal, against the mock model in this process.
//!
//! - keypress → frame: a character typed into the composer until the first
//!   byte of the frame that shows it comes back from the terminal;
//! - Esc → process tree gone: Esc pressed while a turn runs `sleep 60`,
//!   until the `sleep` process is no longer alive (polled in `/proc`);
//! - idle CPU: the UI's CPU time over 5 s with nothing happening;
//! - resident memory after a 10,000-line answer is on screen.
//!
//! `cargo bench -p tiller-cli --bench tui`; `TILLER_BENCH_QUICK=1` runs a
//! few samples of each.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tiller_bench_support::{Figure, Report, Unit, runtime, samples};
use tiller_mock_model::{MockModel, Script};
use tiller_test_support::PtyChild;

const TILLER: &str = env!("CARGO_BIN_EXE_tiller");
const LIMIT: Duration = Duration::from_secs(30);

fn main() {
    let mut report = Report::start("tui");
    let runtime = runtime("mock-model", 1);
    let esc_runs = samples(100, 10);

    // One `sleep 60` turn per Esc sample, then a 10,000-line answer.
    let mut steps: Vec<serde_json::Value> = (0..esc_runs)
        .map(|i| {
            json!({"type": "response", "items": [{"type": "function_call", "name": "shell",
            "call_id": format!("call_{i}"), "arguments": {"command": ["sleep", "60"]}}]})
        })
        .collect();
    // 5,000 one-line paragraphs: 10,000 lines on screen with their blank lines.
    let long: String = (0..5_000)
        .map(|i| format!("line {i} of a long answer\n\n"))
        .collect();
    steps.push(json!({"type": "response", "items": [{"type": "text", "text": long}]}));
    let script = Script::from_json_str(&serde_json::Value::Array(steps).to_string()).unwrap();
    let mock = runtime.block_on(MockModel::start(script)).unwrap();
    let home = tiller_test_support::mock_home(&mock.base_url());
    let work = tempfile::TempDir::new().unwrap();
    let mut ui = spawn(home.path(), work.path());
    ui.wait_screen("the UI ready", LIMIT, |s| {
        s.contains("ready") && s.contains("approvals:")
    });

    // Keypress → frame.
    let mut keypress = Vec::new();
    for i in 0..samples(500, 50) {
        let before = ui.output_len();
        let key = [b'a' + u8::try_from(i % 26).unwrap()];
        let sent = Instant::now();
        ui.send(&key);
        let shown = ui.wait_output_past(before, LIMIT);
        keypress.push(shown.saturating_duration_since(sent));
        if i % 60 == 59 {
            ui.send(b"\x15"); // Ctrl+U: keep the composer to one line.
        }
    }
    ui.send(b"\x15");
    report.durations(
        Figure::new(
            "tui/keypress",
            "TUI keypress → first byte of the frame that shows it (PTY)",
        )
        .at_most(16.0, "≤ 16 ms p99"),
        &keypress,
    );

    // Idle CPU, once the last frame is out.
    let pid = ui.pid();
    std::thread::sleep(Duration::from_secs(1));
    let before = cpu_ticks(pid);
    let idle = Duration::from_secs(if tiller_bench_support::quick() { 2 } else { 5 });
    std::thread::sleep(idle);
    let ticks = cpu_ticks(pid) - before;
    let hz = 100.0; // USER_HZ on Linux
    let percent = ticks as f64 / hz / idle.as_secs_f64() * 100.0;
    report.values(
        Figure::new(
            "tui/idle-cpu",
            "TUI CPU while idle (utime+stime over the wait ÷ wall time)",
        ),
        Unit::Percent,
        &[percent],
    );

    // Esc → the turn's process tree gone.
    let mut esc = Vec::with_capacity(esc_runs);
    for i in 0..esc_runs {
        ui.send(format!("wait {i}\r").as_bytes());
        let sleeper = wait_for_sleep(pid);
        let pressed = Instant::now();
        ui.send(b"\x1b");
        while alive(sleeper) {
            assert!(pressed.elapsed() < LIMIT, "sleep {sleeper} outlived Esc");
            std::hint::spin_loop();
        }
        esc.push(pressed.elapsed());
        ui.wait_screen("the UI idle again", LIMIT, |s| {
            s.lines().last().is_some_and(|l| l.contains("ready"))
                && s.matches("interrupted").count() >= 1
        });
    }
    report.durations(
        Figure::new(
            "tui/esc-tree-gone",
            "TUI Esc → the running command's process gone (PTY)",
        )
        .at_most(10.0, "≤ 10 ms p99"),
        &esc,
    );

    // Resident memory with a 10,000-line transcript.
    ui.send(b"a long answer please\r");
    ui.wait_screen("the long answer's end", LIMIT, |s| {
        s.contains("line 4999 of a long answer")
    });
    ui.wait_screen("the turn ended", LIMIT, |s| {
        s.lines().last().is_some_and(|l| l.contains("ready"))
    });
    let rss = status_kib(pid, "VmRSS:");
    let peak = status_kib(pid, "VmHWM:");
    report.values(
        Figure::detail(
            "tui/peak-rss-10k-lines",
            "TUI peak resident memory while the 10,000-line answer streamed (VmHWM)",
        ),
        Unit::MiB,
        &[peak as f64 / 1024.0],
    );
    report.values(
        Figure::new(
            "tui/rss-10k-lines",
            "TUI resident memory with a 10,000-line transcript (VmRSS, whole process)",
        )
        .at_most(30.0, "≤ 30 MB"),
        Unit::MiB,
        &[rss as f64 / 1024.0],
    );

    ui.send(b"\x03\x03");
    ui.wait_exit(LIMIT);
    report.finish();
}

fn spawn(home: &Path, work: &Path) -> PtyChild {
    let mut command = std::process::Command::new(TILLER);
    command
        .arg("--cd")
        .arg(work)
        .env("TILLER_HOME", home)
        .env("HOME", home)
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL");
    PtyChild::spawn(command, 100, 30)
}

/// The pid of a `sleep 60` below `root`, once it runs.
fn wait_for_sleep(root: u32) -> i32 {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(pid) = descendants(i32::try_from(root).unwrap())
            .into_iter()
            .find(|pid| cmdline(*pid) == "sleep 60" && alive(*pid))
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no sleep started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn descendants(root: i32) -> Vec<i32> {
    let all: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, parent(pid)?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(all.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found
}

fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_owned).collect())
}

fn parent(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|state| state != "Z" && state != "X"))
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .replace('\0', " ")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

fn cpu_ticks(pid: u32) -> u64 {
    let fields = stat_fields(i32::try_from(pid).unwrap()).unwrap();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}
