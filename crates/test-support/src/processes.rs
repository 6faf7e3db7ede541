//! Looking at processes a test started, by pid.

use std::path::Path;
use std::time::Duration;

pub use tiller_core::process_tree::is_alive as pid_alive;

/// Wait until `path` holds a whole line of whitespace-separated pids (a
/// script writes it to a temporary file and renames it), within
/// [`DEADLINE`](crate::DEADLINE).
pub async fn read_pids(path: &Path) -> Vec<i32> {
    let deadline = tokio::time::Instant::now() + crate::DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text
                .split_ascii_whitespace()
                .map(|pid| pid.parse().expect("a pid"))
                .collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no pids in {}",
            path.display()
        );
        // Polling a file the tool writes: there is no event to wait on.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Wait until `path` holds `count` whitespace-separated pids (a tool's script
/// writes them), within `timeout`.
pub async fn read_pids_when_ready(path: &Path, count: usize, timeout: Duration) -> Vec<i32> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let pids: Vec<i32> = text
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            if pids.len() >= count {
                return pids;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} did not list {count} pids within {timeout:?}",
            path.display()
        );
        // Polling a file the tool writes: there is no event to wait on.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Wait until process `pid` (not a child of the caller: an MCP server, a
/// tool's process) is gone, within `timeout`.
pub async fn wait_until_dead(pid: i32, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while pid_alive(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "process {pid} was still alive after {timeout:?}"
        );
        // Polling /proc: there is no event to wait on for another process's death.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
