//! No orphans after a crash: a watchdog process that kills what a dead tiller
//! left running.
//!
//! A parent-death signal only reaches a direct child, and a SIGKILLed tiller
//! runs no clean-up code. So tiller starts one small watchdog (a `bash` loop in
//! its own process group, ignoring the terminal's signals) and keeps the write
//! end of a pipe to its stdin. For every tool call tiller writes `+ MARKER` before
//! the spawn and `+ MARKER PGID` after it, and `- MARKER` once the call's tree is
//! dead. However tiller ends (exit, crash, SIGKILL), the kernel closes the pipe;
//! the watchdog reads EOF and kills, for every call still registered, its process
//! group and every process whose environment carries its `TILLER_TOOL_MARKER`
//! (which finds grandchildren that called `setsid`), three passes over.
//!
//! What can still escape: a descendant that both left the tool's process group
//! and removed the marker from its environment (`env -i`, a daemon that clears
//! it), or that changed user (setuid programs). If the watchdog itself cannot
//! start (no `bash`), tools run without it and a warning is logged once.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::process_tree::TOOL_MARKER_ENV;

/// The watchdog. `$1` is the marker variable's name.
const WATCHDOG: &str = r#"
trap '' INT TERM HUP QUIT PIPE
declare -A groups
while read -r op marker pgid; do
  case "$op" in
    +) groups[$marker]=${pgid:-0} ;;
    -) unset "groups[$marker]" ;;
  esac
done
for pass in 1 2 3; do
  for marker in "${!groups[@]}"; do
    pgid=${groups[$marker]}
    if [ "$pgid" != 0 ]; then kill -KILL -- "-$pgid" 2>/dev/null; fi
    for f in $(grep -lzx -- "$1=$marker" /proc/[0-9]*/environ 2>/dev/null); do
      p=${f#/proc/}; kill -KILL "${p%/environ}" 2>/dev/null
    done
  done
done
"#;

struct Watchdog {
    _child: Child,
    stdin: ChildStdin,
}

static WATCHDOG_STATE: Mutex<Option<Watchdog>> = Mutex::new(None);
static START_FAILED: std::sync::Once = std::sync::Once::new();

fn state() -> MutexGuard<'static, Option<Watchdog>> {
    WATCHDOG_STATE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn start() -> std::io::Result<Watchdog> {
    // The watchdog lives as long as tiller and any tool can read its
    // environment: it gets none of tiller's (no API key), only a PATH.
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("tiller-watchdog")
        .arg(TOOL_MARKER_ENV)
        .env_clear()
        .env("PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("the watchdog has no stdin"))?;
    Ok(Watchdog {
        _child: child,
        stdin,
    })
}

/// Send one line, starting (or restarting) the watchdog as needed.
fn send(line: &str) {
    let mut state = state();
    for _ in 0..2 {
        if state.is_none() {
            match start() {
                Ok(watchdog) => *state = Some(watchdog),
                Err(e) => {
                    START_FAILED.call_once(|| {
                        tracing::warn!("could not start the orphan watchdog: {e}; tool processes may outlive a crash of tiller");
                    });
                    return;
                }
            }
        }
        if let Some(watchdog) = state.as_mut()
            && writeln!(watchdog.stdin, "{line}").is_ok()
        {
            return;
        }
        // The watchdog died (someone killed it): start a new one. Calls
        // registered with the old one are not guarded any more.
        *state = None;
    }
}

/// A tool call registered with the watchdog; unregistered when dropped.
#[derive(Debug)]
pub struct Guarded {
    marker: String,
}

/// Register the tool call with `marker` before its process is spawned.
pub fn guard(marker: &str) -> Guarded {
    send(&format!("+ {marker}"));
    Guarded {
        marker: marker.to_string(),
    }
}

impl Guarded {
    /// The call's process group exists now.
    pub fn set_group(&self, pgid: u32) {
        send(&format!("+ {} {pgid}", self.marker));
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        send(&format!("- {}", self.marker));
    }
}
