//! No orphans after a crash: a watchdog process that kills what a dead tiller
//! left running.
//!
//! A parent-death signal only reaches a direct child, and a SIGKILLed tiller
//! runs no clean-up code. So tiller starts one small watchdog (a `bash` loop in
//! its own process group, ignoring the terminal's signals, with no environment
//! but `PATH`) and keeps the write end of a pipe to its stdin. For every tool
//! call tiller writes `+ MARKER 0 CGROUP` before the spawn and `+ MARKER PGID
//! CGROUP` after it (`CGROUP` is the call's cgroup folder, `-` without one), and
//! `- MARKER` once the call's tree is dead. However tiller ends (exit, crash,
//! SIGKILL), the kernel closes the pipe; the watchdog reads EOF and kills, for
//! every call still registered, everything in its cgroup, its process group and
//! every process whose environment carries its `TILLER_TOOL_MARKER` (which finds
//! grandchildren that called `setsid`), three passes over, then removes the
//! cgroups.
//!
//! What can still escape: with no cgroup, a descendant that both left the tool's
//! process group and removed the marker from its environment (`env -i`, a daemon
//! that clears it); in any case one that changed user (setuid programs) or moved
//! itself to another cgroup. If the watchdog itself cannot start (no `bash`),
//! tools run without it and a warning is logged once.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::TOOL_MARKER_ENV;

/// The watchdog. `$1` is the marker variable's name.
const WATCHDOG: &str = r#"
trap '' INT TERM HUP QUIT PIPE
declare -A groups cgroups
while read -r op marker pgid cg; do
  case "$op" in
    +) groups[$marker]=${pgid:-0}; cgroups[$marker]=${cg:--} ;;
    -) unset "groups[$marker]" "cgroups[$marker]" ;;
  esac
done
for pass in 1 2 3; do
  for marker in "${!groups[@]}"; do
    cg=${cgroups[$marker]}
    if [ "$cg" != - ]; then
      echo 1 > "$cg/cgroup.kill" 2>/dev/null ||
        for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    fi
    pgid=${groups[$marker]}
    if [ "$pgid" != 0 ]; then kill -KILL -- "-$pgid" 2>/dev/null; fi
    for f in $(grep -lzx -- "$1=$marker" /proc/[0-9]*/environ 2>/dev/null); do
      p=${f#/proc/}; kill -KILL "${p%/environ}" 2>/dev/null
    done
  done
done
for cg in "${cgroups[@]}"; do
  if [ "$cg" != - ]; then
    for try in 1 2 3 4 5 6 7 8 9 10; do rmdir "$cg" 2>/dev/null && break; sleep 0.05; done
  fi
done
"#;

struct Watchdog {
    _child: Child,
    /// Keeps the watchdog out of what `kill_tree` takes for a call's orphans.
    _registration: crate::DirectChild,
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
        _registration: crate::register_helper(child.id()),
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
    cgroup: String,
}

/// Register the tool call with `marker` (and its cgroup folder, if it has
/// one) before its process is spawned.
pub fn guard(marker: &str, cgroup: Option<&std::path::Path>) -> Guarded {
    let cgroup = cgroup.map_or_else(|| "-".to_string(), |dir| dir.display().to_string());
    send(&format!("+ {marker} 0 {cgroup}"));
    Guarded {
        marker: marker.to_string(),
        cgroup,
    }
}

impl Guarded {
    /// The call's process group exists now.
    pub fn set_group(&self, pgid: u32) {
        send(&format!("+ {} {pgid} {}", self.marker, self.cgroup));
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        send(&format!("- {}", self.marker));
    }
}
