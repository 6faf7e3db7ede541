//! A bench's rows: printed as its own table, and appended to the summary file.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::machine::{OtherLoad, cpu_model, load_average};
use crate::stats::Stats;

/// The environment variable naming the summary file rows are appended to.
pub const SUMMARY_ENV: &str = "TILLER_BENCH_SUMMARY";
/// The environment variable that asks for the small sample counts.
pub const QUICK_ENV: &str = "TILLER_BENCH_QUICK";

/// Whether `TILLER_BENCH_QUICK` asks for a smoke test (set, and not `0`).
pub fn quick() -> bool {
    std::env::var_os(QUICK_ENV).is_some_and(|value| value != "0" && !value.is_empty())
}

/// `full` samples, or `quick` ones in a smoke test.
pub fn samples(full: usize, quick: usize) -> usize {
    if self::quick() { quick } else { full }
}

/// `n` with a comma between thousands (`20,000`), as the tables write sizes.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The unit of a row's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds (of wall time or of CPU time).
    Millis,
    /// Mebibytes.
    MiB,
    /// Kibibytes.
    KiB,
    /// A relative change, in percent.
    Percent,
}

impl Unit {
    /// Its name in the summary file.
    pub fn key(self) -> &'static str {
        match self {
            Unit::Millis => "ms",
            Unit::MiB => "MiB",
            Unit::KiB => "KiB",
            Unit::Percent => "%",
        }
    }

    /// The unit named `key` in the summary file.
    pub fn from_key(key: &str) -> Option<Unit> {
        match key {
            "ms" => Some(Unit::Millis),
            "MiB" => Some(Unit::MiB),
            "KiB" => Some(Unit::KiB),
            "%" => Some(Unit::Percent),
            _ => None,
        }
    }

    /// A value of this unit as a table shows it: three significant figures
    /// for times and KiB, one decimal for MiB, a sign for changes.
    pub fn show(self, value: f64) -> String {
        match self {
            Unit::Millis if value.abs() < 10.0 => format!("{value:.2} ms"),
            Unit::Millis if value.abs() < 100.0 => format!("{value:.1} ms"),
            Unit::Millis => format!("{value:.0} ms"),
            Unit::MiB => format!("{value:.1} MiB"),
            Unit::KiB if value.abs() < 100.0 => format!("{value:.1} KiB"),
            Unit::KiB => format!("{value:.0} KiB"),
            Unit::Percent => format!("{value:+.1} %"),
        }
    }
}

/// What a row is: a stable id, a name, a target, and whether it is a
/// breakdown row rather than a figure.
///
/// The id is `group/…/size`: the part before the first `/` is the group the
/// summary table puts the row in (`interrupt`, `app-server`), and rows whose
/// ids differ only after the last `/` are one figure at several sizes, kept
/// together in the order they were measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    id: String,
    name: String,
    target: Option<(f64, String)>,
    detail: bool,
}

impl Figure {
    /// A figure of the summary table.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Figure {
        Figure {
            id: id.into(),
            name: name.into(),
            target: None,
            detail: false,
        }
    }

    /// A breakdown or reference row: printed, and kept in the summary's second table.
    pub fn detail(id: impl Into<String>, name: impl Into<String>) -> Figure {
        Figure {
            detail: true,
            ..Figure::new(id, name)
        }
    }

    /// The target: the p99 (or the one derived value) at most `limit`, in
    /// the row's unit; `text` is how the table states it (`≤ 10 ms p99`).
    pub fn at_most(mut self, limit: f64, text: impl Into<String>) -> Figure {
        self.target = Some((limit, text.into()));
        self
    }
}

/// One bench's rows, its printed table, and its lines in the summary file.
pub struct Report {
    bench: String,
    rows: Vec<[String; 7]>,
    notes: Vec<String>,
    other: OtherLoad,
    summary: Option<PathBuf>,
}

impl Report {
    /// Start a bench called `bench`: print the machine, start watching its load.
    pub fn start(bench: &str) -> Report {
        println!(
            "{bench}: {} CPUs ({}); load average {}{}",
            std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model(),
            load_average(),
            if quick() {
                "; QUICK run (small sample counts)"
            } else {
                ""
            }
        );
        Report {
            bench: bench.to_string(),
            rows: Vec::new(),
            notes: Vec::new(),
            other: OtherLoad::start(),
            summary: std::env::var_os(SUMMARY_ENV).map(PathBuf::from),
        }
    }

    /// A row of durations, shown in milliseconds.
    pub fn durations(&mut self, figure: Figure, samples: &[Duration]) {
        self.row(figure, Unit::Millis, Stats::of_millis(samples));
    }

    /// A row of samples in `unit`.
    pub fn values(&mut self, figure: Figure, unit: Unit, samples: &[f64]) {
        self.row(figure, unit, Stats::of(samples));
    }

    /// A row of already computed statistics.
    pub fn row(&mut self, figure: Figure, unit: Unit, stats: Stats) {
        let met = figure
            .target
            .as_ref()
            .map(|(limit, _)| stats.judged() <= *limit);
        let dash = || "-".to_string();
        self.rows.push([
            figure.name.clone(),
            figure
                .target
                .as_ref()
                .map_or_else(dash, |(_, text)| text.clone()),
            stats.n.to_string(),
            unit.show(stats.median),
            stats.p99.map_or_else(dash, |v| unit.show(v)),
            stats.max.map_or_else(dash, |v| unit.show(v)),
            match met {
                None => dash(),
                Some(true) => "yes".to_string(),
                Some(false) => "NO".to_string(),
            },
        ]);
        self.append(json!({
            "kind": "row",
            "bench": self.bench,
            "id": figure.id,
            "figure": figure.name,
            "detail": figure.detail,
            "unit": unit.key(),
            "n": stats.n,
            "median": stats.median,
            "p99": stats.p99,
            "max": stats.max,
            "target": figure.target.as_ref().map(|(_, text)| text),
            "limit": figure.target.as_ref().map(|(limit, _)| limit),
            "met": met,
            "quick": quick(),
        }));
    }

    /// A sentence printed under the table and kept in the summary.
    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("{text}");
        self.notes.push(text);
    }

    /// Print the table, the notes and the other load; close the bench's
    /// entry in the summary.
    pub fn finish(self) {
        print_table(&self.rows);
        for note in &self.notes {
            println!("{note}");
        }
        let reading = self.other.measure();
        println!("{reading}");
        self.append(json!({
            "kind": "run",
            "bench": self.bench,
            "secs": reading.secs,
            "other_cpus": reading.other_cpus,
            "steal_cpus": reading.steal_cpus,
            "load_before": reading.load_before,
            "load_after": reading.load_after,
            "notes": self.notes,
            "quick": quick(),
        }));
    }

    /// One line appended to the summary file, if there is one. A bench that
    /// cannot write its summary fails: a table with missing rows would
    /// otherwise look complete.
    fn append(&self, line: Value) {
        let Some(path) = &self.summary else {
            return;
        };

        let mut text = line.to_string();
        text.push('\n');
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(text.as_bytes()));
        if let Err(error) = written {
            panic!("cannot append to {}: {error}", path.display());
        }
    }
}

fn print_table(rows: &[[String; 7]]) {
    let header = ["figure", "target", "n", "median", "p99", "max", "met"].map(str::to_string);
    let mut widths = [0; 7];
    for row in std::iter::once(&header).chain(rows) {
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
    for row in rows {
        line(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_show_three_significant_figures_for_times() {
        assert_eq!(Unit::Millis.show(0.634), "0.63 ms");
        assert_eq!(Unit::Millis.show(11.24), "11.2 ms");
        assert_eq!(Unit::Millis.show(476.4), "476 ms");
        assert_eq!(Unit::MiB.show(8.84), "8.8 MiB");
        assert_eq!(Unit::Percent.show(-7.46), "-7.5 %");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(20_000), "20,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
        for unit in [Unit::Millis, Unit::MiB, Unit::KiB, Unit::Percent] {
            assert_eq!(Unit::from_key(unit.key()), Some(unit));
        }
    }
}
