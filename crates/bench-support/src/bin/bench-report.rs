//! `bench-report`: the two steps of `scripts/bench` that need JSON.
//!
//! - `bench-report executables < build.json`: reads the messages of
//!   `cargo bench --no-run --message-format=json…` and prints one line per
//!   bench target built, `NAME<TAB>EXECUTABLE<TAB>PACKAGE_FOLDER`, so the
//!   script runs each binary as `cargo bench` would, without building again.
//! - `bench-report table SUMMARY.jsonl`: the summary file as the markdown
//!   table of `BENCHMARKS.md`.

use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

const USAGE: &str = "usage: bench-report executables < cargo-messages.json\n       bench-report table SUMMARY.jsonl";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["executables"] => executables(),
        ["table", path] => table(Path::new(path)),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-report: {error}");
            ExitCode::from(2)
        }
    }
}

/// Every `compiler-artifact` of a bench target that has an executable.
fn executables() -> Result<(), String> {
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut found = 0;
    for line in stdin.lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        // Cargo interleaves rendered diagnostics with the JSON messages.
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(row) = bench_executable(&message) {
            writeln!(stdout, "{row}").map_err(|e| format!("writing stdout: {e}"))?;
            found += 1;
        }
    }
    if found == 0 {
        return Err("no bench executable in cargo's messages".to_string());
    }
    Ok(())
}

/// `name\texecutable\tfolder` of a bench artifact message, else `None`.
fn bench_executable(message: &Value) -> Option<String> {
    if message["reason"] != "compiler-artifact" {
        return None;
    }
    let target = &message["target"];
    let is_bench = target["kind"]
        .as_array()?
        .iter()
        .any(|kind| kind == "bench");
    if !is_bench {
        return None;
    }
    let name = target["name"].as_str()?;
    let executable = message["executable"].as_str()?;
    let folder = Path::new(message["manifest_path"].as_str()?).parent()?;
    Some(format!("{name}\t{executable}\t{}", folder.display()))
}

fn table(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let markdown = tiller_bench_support::render::render(&text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    print!("{markdown}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bench_artifacts_with_an_executable_are_listed() {
        let bench = serde_json::json!({
            "reason": "compiler-artifact",
            "manifest_path": "/src/crates/core/Cargo.toml",
            "target": {"name": "lifecycle", "kind": ["bench"]},
            "executable": "/src/target/release/deps/lifecycle-abc",
        });
        assert_eq!(
            bench_executable(&bench).as_deref(),
            Some("lifecycle\t/src/target/release/deps/lifecycle-abc\t/src/crates/core")
        );
        let library = serde_json::json!({
            "reason": "compiler-artifact",
            "manifest_path": "/src/crates/core/Cargo.toml",
            "target": {"name": "tiller_core", "kind": ["lib"]},
            "executable": null,
        });
        assert_eq!(bench_executable(&library), None);
        let finished = serde_json::json!({"reason": "build-finished", "success": true});
        assert_eq!(bench_executable(&finished), None);
    }
}
