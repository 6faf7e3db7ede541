//! The summary file (one JSON line per row and per bench run) as markdown:
//! the one table of figures, grouped, then the breakdown rows, then how much
//! else the machine did during each bench.

use std::fmt::Write as _;

use serde_json::Value;

use crate::report::Unit;

/// The groups of the figures table, in order, and their headings. A group
/// that is not listed comes after these, in the order it was measured.
const GROUPS: &[(&str, &str)] = &[
    (
        "interrupt",
        "Interrupt → `TurnAborted` (engine), by running tool processes",
    ),
    ("stream", "Engine CPU for one streamed response, by deltas"),
    (
        "stream-chat",
        "Chat Completions: the same 20,000 deltas (Responses runs interleaved)",
    ),
    (
        "compaction",
        "Context compaction: one turn on a 1,000-exchange history (about 250,000 tokens)",
    ),
    (
        "resume",
        "Resume of a saved session to ready, by rollout items",
    ),
    (
        "app-server",
        "`tiller app-server`, by concurrent threads (the others streaming)",
    ),
    ("exec", "`tiller exec`"),
    ("steer", "Steer (engine)"),
    (
        "mcp-tools",
        "MCP servers' tools (engine, the Python SDK's FastMCP server)",
    ),
    ("mcp", "`tiller mcp-server`"),
    ("acp", "`tiller acp` (the release binary, raw ACP v1 lines)"),
    ("rollout", "Cost of the rollout on the streaming path"),
    (
        "checkpoint",
        "Workspace checkpoint before a turn (10,000 files, 200 MB)",
    ),
    (
        "sandbox",
        "Sandbox: spawn → exit of `/bin/true` through `spawn_tool` (own cgroup)",
    ),
];

/// A line of the summary file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based.
    pub line: usize,
    /// What was wrong.
    pub error: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "summary line {}: {}", self.line, self.error)
    }
}

impl std::error::Error for BadLine {}

struct Row {
    id: String,
    figure: String,
    detail: bool,
    unit: Unit,
    n: u64,
    median: f64,
    p99: Option<f64>,
    max: Option<f64>,
    target: Option<String>,
    limit: Option<f64>,
    met: Option<bool>,
}

impl Row {
    fn read(value: &Value) -> Result<Row, String> {
        let text = |key: &str| {
            value[key]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("no `{key}`"))
        };
        let unit_key = text("unit")?;
        Ok(Row {
            id: text("id")?,
            figure: text("figure")?,
            detail: value["detail"].as_bool().unwrap_or(false),
            unit: Unit::from_key(&unit_key).ok_or_else(|| format!("unknown unit `{unit_key}`"))?,
            n: value["n"].as_u64().ok_or("no `n`")?,
            median: value["median"].as_f64().ok_or("no `median`")?,
            p99: value["p99"].as_f64(),
            max: value["max"].as_f64(),
            target: value["target"].as_str().map(str::to_string),
            limit: value["limit"].as_f64(),
            met: value["met"].as_bool(),
        })
    }

    fn group(&self) -> &str {
        self.id.split('/').next().unwrap_or_default()
    }

    /// The figure this row is one size of: its id without the last segment.
    fn family(&self) -> &str {
        self.id
            .rsplit_once('/')
            .map_or(&self.id, |(family, _)| family)
    }

    fn show(&self, value: Option<f64>) -> String {
        value.map_or_else(|| "–".to_string(), |v| self.unit.show(v))
    }

    /// `yes`, `**no** (+N %)` with how far over the target, or `–`.
    fn met(&self) -> String {
        match (self.met, self.limit) {
            (Some(true), _) => "yes".to_string(),
            (Some(false), Some(limit)) => {
                let judged = self.p99.unwrap_or(self.median);
                if self.unit == Unit::Percent {
                    format!("**no** (+{:.1} points)", judged - limit)
                } else {
                    format!("**no** (+{:.0} %)", (judged / limit - 1.0) * 100.0)
                }
            }
            (Some(false), None) => "**no**".to_string(),
            (None, _) => "–".to_string(),
        }
    }
}

struct Run {
    bench: String,
    secs: f64,
    other_cpus: f64,
    steal_cpus: f64,
    load_before: String,
    load_after: String,
    notes: Vec<String>,
}

impl Run {
    fn read(value: &Value) -> Result<Run, String> {
        let text = |key: &str| value[key].as_str().unwrap_or_default().to_string();
        Ok(Run {
            bench: value["bench"].as_str().ok_or("no `bench`")?.to_string(),
            secs: value["secs"].as_f64().unwrap_or_default(),
            other_cpus: value["other_cpus"].as_f64().unwrap_or_default(),
            steal_cpus: value["steal_cpus"].as_f64().unwrap_or_default(),
            load_before: text("load_before"),
            load_after: text("load_after"),
            notes: value["notes"]
                .as_array()
                .map(|notes| {
                    notes
                        .iter()
                        .filter_map(|note| note.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// The summary file `jsonl` as markdown.
pub fn render(jsonl: &str) -> Result<String, BadLine> {
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    let mut quick = false;
    for (i, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |error: String| BadLine { line: i + 1, error };
        let value: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        quick |= value["quick"].as_bool().unwrap_or(false);
        match value["kind"].as_str() {
            Some("row") => rows.push(Row::read(&value).map_err(bad)?),
            Some("run") => runs.push(Run::read(&value).map_err(bad)?),
            _ => return Err(bad("neither a row nor a run".to_string())),
        }
    }
    let rows = ordered(rows);

    let mut out = String::new();
    if quick {
        out.push_str(
            "**QUICK run (small sample counts): a smoke test of the pipeline, not figures to quote.**\n\n",
        );
    }
    out.push_str("| figure | target | n | median | p99 | met? |\n");
    out.push_str("|---|---|---:|---:|---:|---|\n");
    let mut group = None;
    for row in rows.iter().filter(|row| !row.detail) {
        if group != Some(row.group()) {
            group = Some(row.group());
            let title = GROUPS
                .iter()
                .find(|(key, _)| *key == row.group())
                .map_or(row.group(), |(_, title)| title);
            let _ = writeln!(out, "| **{title}** | | | | | |");
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.figure,
            row.target.as_deref().unwrap_or("–"),
            row.n,
            row.show(Some(row.median)),
            row.show(row.p99),
            row.met()
        );
    }

    if rows.iter().any(|row| row.detail) {
        out.push_str("\nBreakdown and reference rows:\n\n");
        out.push_str("| row | n | median | p99 | max |\n");
        out.push_str("|---|---:|---:|---:|---:|\n");
        for row in rows.iter().filter(|row| row.detail) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                row.figure,
                row.n,
                row.show(Some(row.median)),
                row.show(row.p99),
                row.show(row.max)
            );
        }
    }

    if !runs.is_empty() {
        out.push_str("\nWhat else the machine did while each bench ran:\n\n");
        out.push_str(
            "| bench | wall | other processes | hypervisor steal | load average before → after |\n",
        );
        out.push_str("|---|---:|---:|---:|---|\n");
        for run in &runs {
            let _ = writeln!(
                out,
                "| {} | {:.0} s | {:.2} CPUs | {:.2} CPUs | {} → {} |",
                run.bench,
                run.secs,
                run.other_cpus,
                run.steal_cpus,
                run.load_before,
                run.load_after
            );
        }
        let notes: Vec<(&str, &str)> = runs
            .iter()
            .flat_map(|run| {
                run.notes
                    .iter()
                    .map(|note| (run.bench.as_str(), note.as_str()))
            })
            .collect();
        if !notes.is_empty() {
            out.push('\n');
            for (bench, note) in notes {
                let _ = writeln!(out, "- {bench}: {note}");
            }
        }
    }
    Ok(out)
}

/// Rows by group (in [`GROUPS`] order, then unknown groups as measured),
/// then by figure (as first measured), then as measured.
fn ordered(rows: Vec<Row>) -> Vec<Row> {
    let mut groups: Vec<String> = GROUPS.iter().map(|(key, _)| key.to_string()).collect();
    let mut families: Vec<String> = Vec::new();
    for row in &rows {
        if !groups.iter().any(|group| group == row.group()) {
            groups.push(row.group().to_string());
        }
        if !families.iter().any(|family| family == row.family()) {
            families.push(row.family().to_string());
        }
    }
    let rank = |list: &[String], key: &str| list.iter().position(|item| item == key);
    let mut keyed: Vec<(Option<usize>, Option<usize>, usize, Row)> = rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            (
                rank(&groups, row.group()),
                rank(&families, row.family()),
                i,
                row,
            )
        })
        .collect();
    keyed.sort_by_key(|(group, family, i, _)| (*group, *family, *i));
    keyed.into_iter().map(|(_, _, _, row)| row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, median: f64, p99: f64, limit: Option<f64>) -> String {
        serde_json::json!({
            "kind": "row", "bench": "b", "id": id, "figure": id, "detail": false,
            "unit": "ms", "n": 200, "median": median, "p99": p99, "max": p99,
            "target": limit.map(|l| format!("≤ {l} ms p99")), "limit": limit,
            "met": limit.map(|l| p99 <= l), "quick": false,
        })
        .to_string()
    }

    #[test]
    fn rows_are_grouped_in_table_order_and_sizes_stay_together() {
        let lines = [
            row("steer/engine", 0.5, 1.2, Some(10.0)),
            row("app-server/interrupt/1", 1.0, 2.0, Some(10.0)),
            row("app-server/steer/1", 1.0, 2.0, Some(10.0)),
            row("app-server/interrupt/10", 1.5, 3.0, Some(10.0)),
            row("interrupt/101", 11.2, 20.6, Some(10.0)),
            row("interrupt/1", 0.6, 1.8, Some(10.0)),
        ]
        .join("\n");
        let table = render(&lines).unwrap();
        let order: Vec<usize> = [
            "| interrupt/101 ",
            "| interrupt/1 ",
            "| app-server/interrupt/1 ",
            "| app-server/interrupt/10 ",
            "| app-server/steer/1 ",
            "| steer/engine ",
        ]
        .iter()
        .map(|needle| table.find(needle).unwrap())
        .collect();
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{table}");
        assert!(table.contains("| **Steer (engine)** |"));
    }

    #[test]
    fn a_missed_target_says_by_how_much() {
        let table = render(&row("interrupt/101", 11.2, 20.6, Some(10.0))).unwrap();
        assert!(table.contains("| 20.6 ms | **no** (+106 %) |"), "{table}");
        let table = render(&row("interrupt/1", 0.6, 1.8, Some(10.0))).unwrap();
        assert!(table.contains("| 1.80 ms | yes |"), "{table}");
    }

    #[test]
    fn a_bad_line_is_named() {
        let error = render("{\"kind\": \"row\"}\n").unwrap_err();
        assert_eq!(error.line, 1);
        assert!(render("not json").is_err());
    }
}
