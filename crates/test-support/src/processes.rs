//! Looking at processes a test started, by pid.

use std::path::Path;
use std::time::Duration;

/// Whether `pid` is a live process (a zombie counts as dead).
pub fn pid_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state is the first field after the parenthesised command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
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
