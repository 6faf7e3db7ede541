//! One cgroup per tool call, where tiller may create them.
//!
//! A process can leave the tool's process group (`setsid`) and clear its
//! environment (`env -i`); once its parent has exited, nothing in `/proc` ties
//! it to the call that started it. A cgroup does: a process stays in its
//! cgroup, and its children are born there, whatever it does with its group,
//! session or environment (only a process allowed to write another cgroup's
//! `cgroup.procs` can move out). So when tiller can, it creates a cgroup v2
//! below its own for each call, the call's first process moves itself into it
//! between `fork` and `exec` (before any code of the tool runs), and killing
//! the call kills everything listed in it, with `cgroup.kill` once the grace
//! is over, until it is empty.
//!
//! tiller can when the cgroup v2 hierarchy is mounted and its own cgroup is
//! writable by it (root, or a cgroup delegated to the user, as systemd does for
//! user sessions). Otherwise calls run without one, said once at debug level,
//! and [`super::kill_tree`] attributes orphans by their start time instead.
//! The cgroups are named `tiller-<pid>-<n>` and removed when the call ends; the
//! orphan watchdog removes those of a tiller that died.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A tool call's cgroup, removed when dropped (once it is empty).
#[derive(Debug)]
pub struct CallCgroup {
    dir: PathBuf,
    /// `cgroup.procs`, open for writing: the child writes `0` to it to move
    /// itself in.
    procs: File,
}

/// tiller's own cgroup v2 directory, if there is one.
fn own_cgroup() -> Option<&'static Path> {
    static OWN: OnceLock<Option<PathBuf>> = OnceLock::new();
    OWN.get_or_init(|| {
        let relative = std::fs::read_to_string("/proc/self/cgroup")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("0::").map(str::to_string))?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        // `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE OPTIONS`
        let (root, mount) = mountinfo.lines().find_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            if after.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            let fields: Vec<&str> = before.split_whitespace().collect();
            Some((fields.get(3)?.to_string(), fields.get(4)?.to_string()))
        })?;
        let inside = relative.strip_prefix(&root).unwrap_or(&relative);
        Some(Path::new(&mount).join(inside.trim_start_matches('/')))
    })
    .as_deref()
}

/// Set once creating a cgroup has failed: the others would fail too.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

impl CallCgroup {
    /// A new cgroup for one call, or `None` where tiller cannot create one.
    pub fn create() -> Option<CallCgroup> {
        if UNAVAILABLE.load(Ordering::Relaxed) {
            return None;
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let Some(own) = own_cgroup() else {
            unavailable("no cgroup v2 hierarchy");
            return None;
        };
        let dir = own.join(format!(
            "tiller-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(e) = std::fs::create_dir(&dir) {
            unavailable(&format!("cannot create {}: {e}", dir.display()));
            return None;
        }
        match OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
        {
            Ok(procs) => Some(CallCgroup { dir, procs }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                unavailable(&format!("cannot open {}/cgroup.procs: {e}", dir.display()));
                None
            }
        }
    }

    /// The cgroup's folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// What the child runs between `fork` and `exec` to move itself into the
    /// cgroup: one `write(2)` of `0` on a file opened before the fork, which
    /// allocates nothing. A failure leaves the child where it is (the call
    /// still runs, tracked without a cgroup) rather than failing the spawn.
    pub fn enter_hook(&self) -> io::Result<impl FnMut() -> io::Result<()> + Send + Sync + 'static> {
        let procs = self.procs.try_clone()?;
        Ok(move || {
            let _ = (&procs).write(b"0");
            Ok(())
        })
    }
}

/// The live pids listed in the cgroup at `dir`.
pub fn pids(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|text| {
            text.split_ascii_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `SIGKILL` everything in the cgroup at `dir` at once (`cgroup.kill`, Linux
/// 5.14); without it, the listed pids one by one.
pub fn kill_all(dir: &Path) {
    let killed = OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))
        .and_then(|mut file| file.write_all(b"1"));
    if killed.is_err() {
        for pid in pids(dir) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for CallCgroup {
    fn drop(&mut self) {
        // Empty once the call's tree was killed; if not, the watchdog's or
        // a later sweep's business.
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            tracing::debug!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

fn unavailable(why: &str) {
    if !UNAVAILABLE.swap(true, Ordering::Relaxed) {
        tracing::debug!(
            "tool calls run without a cgroup of their own ({why}); escaped orphans are attributed by start time"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_cgroup_is_created_below_tillers_own_and_removed_when_dropped() {
        let Some(cgroup) = CallCgroup::create() else {
            // The machine the tests run on has cgroup v2 and root; a machine
            // without it runs the fallback, tested in the parent module.
            assert!(own_cgroup().is_none() || UNAVAILABLE.load(Ordering::Relaxed));
            return;
        };
        let dir = cgroup.path().to_path_buf();
        assert!(dir.join("cgroup.procs").exists());
        assert!(pids(&dir).is_empty());
        drop(cgroup);
        assert!(!dir.exists());
    }
}
