//! Starting a process as a tool's: the one sequence every process tree of
//! tiller's begins with, for a command the model runs and for an MCP server
//! alike.
//!
//! The child gets its own process group and the call's [`ToolMarker`] in its
//! environment, enters its own cgroup where tiller can make one, and is
//! registered with the orphan watchdog *before* the spawn, so a tiller killed
//! at any instant leaves nothing behind; it is spawned through
//! [`spawn_registered`], and its [`ProcessTree`] is ready for [`kill_tree`].
//!
//! Under a [`PreparedSandbox`], the child confines itself after entering its
//! cgroup and before `exec`: `no_new_privs`, then Landlock, then the seccomp
//! filter (see [`crate::sandbox`]). If any of that fails, the spawn fails.

use std::io;

use tokio::process::{Child, Command};

use crate::{
    CallCgroup, DirectChild, PreparedSandbox, ProcessTree, ToolMarker, orphan_guard,
    spawn_registered,
};

/// A process started by [`spawn_tool`], and what keeps its tree tracked.
///
/// Dropping it drops the child (killed, as `kill_on_drop` is set) but not
/// its tree: kill that with [`crate::kill_tree`] or [`crate::kill_tree_now`]
/// first. The fields are dropped in order: the watchdog forgets the call and
/// its cgroup is removed only after the child.
#[derive(Debug)]
pub struct ToolProcess {
    /// The direct child.
    pub child: Child,
    /// Its tree: the group, the marker, the cgroup.
    pub tree: ProcessTree,
    registration: DirectChild,
    guarded: orphan_guard::Guarded,
    cgroup: Option<CallCgroup>,
}

impl ToolProcess {
    /// Stop tracking the call (the watchdog forgets it, its cgroup is
    /// removed) once its tree is dead.
    pub fn release(self) -> Child {
        let ToolProcess {
            child,
            registration,
            guarded,
            cgroup,
            ..
        } = self;
        drop(registration);
        drop(guarded);
        drop(cgroup);
        child
    }
}

/// Why [`spawn_tool`] failed.
#[derive(Debug)]
pub enum SpawnError {
    /// The program could not be started (or could not confine itself in its
    /// sandbox: the errno of the call that failed).
    Spawn(io::Error),
    /// It started but cannot be tracked (it was killed).
    Track(String),
}

/// Whether a tool process gets a cgroup of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cgroup {
    /// Its own cgroup where tiller can make one: nothing it starts can leave
    /// the call. For short-lived calls (a command).
    Own,
    /// None: its group and marker find it. Moving a process into a cgroup
    /// takes a lock that every fork and thread creation of tiller waits on;
    /// for long-lived processes started in numbers (MCP servers), that cost
    /// falls on whatever else tiller does at that moment.
    None,
}

/// Spawn `command` as a tool process with `marker` (see the module's doc),
/// confined by `sandbox` if there is one.
/// The caller sets the program, arguments, environment, folder and stdio.
pub fn spawn_tool(
    command: &mut Command,
    marker: ToolMarker,
    cgroup: Cgroup,
    sandbox: Option<&PreparedSandbox>,
) -> Result<ToolProcess, SpawnError> {
    let (marker_name, marker_value) = marker.env();
    command
        .env(marker_name, marker_value)
        .process_group(0)
        .kill_on_drop(true);
    // Its own cgroup where tiller can make one: then nothing the process
    // starts can leave the call, whatever it does with its group or
    // environment (see `cgroup`).
    let cgroup = match cgroup {
        Cgroup::Own => CallCgroup::create(),
        Cgroup::None => None,
    };
    if let Some(cgroup) = &cgroup
        && let Ok(enter) = cgroup.enter_hook()
    {
        // SAFETY: the hook only calls write(2) on a file opened before the
        // fork: async-signal-safe, no allocation, no lock.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(enter);
        }
    }
    // After the cgroup hook: the child moves itself into its cgroup, then
    // confines itself (a seccomp filter or Landlock domain does not stop that
    // write, but doing it first keeps it out of the sandbox's way).
    if let Some(confine) = sandbox
        .map(PreparedSandbox::child_hook)
        .transpose()
        .map_err(SpawnError::Spawn)?
        .flatten()
    {
        // SAFETY: the hook makes three system calls (prctl,
        // landlock_restrict_self, prctl) on a descriptor and a program built
        // before the fork: async-signal-safe, no allocation, no lock.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(confine);
        }
    }
    // Registered before the spawn, so a tiller killed at any instant leaves no orphan.
    let guarded = orphan_guard::guard(marker_value, cgroup.as_ref().map(CallCgroup::path));
    let (mut child, registration) = spawn_registered(command).map_err(SpawnError::Spawn)?;
    let Some(pid) = child.id() else {
        return Err(SpawnError::Track(
            "it exited before it could be tracked".to_owned(),
        ));
    };
    guarded.set_group(pid);
    let tree = match ProcessTree::new(pid, marker) {
        Ok(tree) => tree,
        Err(err) => {
            let _ = child.start_kill();
            return Err(SpawnError::Track(err.to_string()));
        }
    };
    let tree = match &cgroup {
        Some(cgroup) => tree.with_cgroup(cgroup.path()),
        None => tree,
    };
    Ok(ToolProcess {
        child,
        tree,
        registration,
        guarded,
        cgroup,
    })
}
