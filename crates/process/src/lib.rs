//! Killing everything a tool call started, and reaping it.
//!
//! Invariant I3 says that once a turn's terminal event is out, no process the
//! turn spawned is alive. Killing the direct child is not enough: a shell
//! script leaves background jobs behind, and a program can leave the tool's
//! process group with `setsid` or `setpgid` (daemons, `nohup setsid …`, test
//! runners that isolate their workers). This module finds such processes and
//! kills them.
//!
//! # How a tool's processes are found
//!
//! Every tool process is spawned
//! - in its own process group (`process_group(0)`), so one `killpg` reaches
//!   the leader and everything that stayed in its group;
//! - with an environment variable, [`TOOL_MARKER_ENV`], whose value is unique
//!   to the tool call ([`ToolMarker`]); descendants inherit it, so it survives
//!   `setsid`;
//! - through [`spawn_registered`], which records the child's pid in a small
//!   registry of the children tiller spawned itself (tokio owns those and reaps
//!   them; this module must never `waitpid` them).
//!
//! [`become_subreaper`] makes tiller a child subreaper (`PR_SET_CHILD_SUBREAPER`):
//! a descendant whose parent dies is re-parented to tiller instead of init, so
//! it can still be found (in `/proc/self/task/*/children`) and reaped.
//!
//! [`kill_tree`] then loops, about once a millisecond and whenever the leader
//! exits or a `SIGCHLD` arrives, until nothing is left:
//! 1. it collects the tree: the group leader, tiller's adopted children (not
//!    the registered ones) that are in the group or carry this call's marker,
//!    every process seen in an earlier pass (pid and start time match), and,
//!    recursively, the children of all of these, whatever their group or
//!    environment;
//! 2. it signals them: `SIGTERM` once to the group, to every escaped group
//!    whose leader belongs to the tree and to every other escaped process; after
//!    [`TERM_GRACE`], `SIGKILL` on every pass;
//! 3. it reaps, with `waitpid(pid, WNOHANG)` on that pid only (never
//!    `waitpid(-1)`: tokio reaps its own children), every zombie child of tiller
//!    that is neither registered nor in tiller's own process group;
//! 4. it stops when no process of the tree is alive and the group is empty
//!    (`killpg(pgid, 0)` fails with `ESRCH`; a zombie still counts as a member,
//!    which is why step 3 matters), or, after [`KILL_DEADLINE`], gives up and
//!    logs the survivors with `tracing::warn!`.
//!
//! The common case, a `sleep 60` alone in its group, takes one `SIGTERM`, one
//! wake-up when tokio sees the leader exit, and a few reads in `/proc`: well
//! under a millisecond on an idle machine.
//!
//! Without `/proc/<pid>/task/<tid>/children` (a kernel built without
//! `CONFIG_PROC_CHILDREN`) or when tiller is not a subreaper, every pass scans
//! all of `/proc` instead (and reads the environment of every process started
//! after the tool), which is slower but finds the same processes, orphans
//! re-parented to init included.
//!
//! # Cgroups, and orphans without them
//!
//! Where tiller can create cgroups ([`cgroup`]), every call runs in its own:
//! everything listed in it is the call's, whatever its group or environment,
//! and the SIGKILL passes use `cgroup.kill`. A call is over when its cgroup is
//! empty as well.
//!
//! Without one, a process that left the group *and* cleared the marker (`setsid
//! env -i …`) after its parent exited is tied to the call only by having been
//! adopted by tiller: such an orphan (a child of tiller that tiller did not
//! spawn, in no group of tiller's own calls, carrying no other call's marker)
//! is taken as the call's when it started after the call's first process. With
//! one call running (exec, a thread's turn) that is exact; with several running
//! at once, an orphan of that kind is taken by whichever of them ends first.
//!
//! # What can still escape
//!
//! - Without a cgroup: an orphan of the kind above that was adopted by another
//!   subreaper or by init rather than by tiller (tiller was not a subreaper).
//! - A process whose environment cannot be read and that cannot be signalled:
//!   one that changed credentials (a setuid program such as `sudo`).
//! - Work handed to a process outside the tree: a service started over IPC
//!   (`systemd-run`, `docker run`, an already-running `tmux` server, `at`).
//! - A tree that forks faster than it is killed for longer than
//!   [`KILL_DEADLINE`].
//!
//! # Who may reap what
//!
//! Zombie children of tiller are reaped here only if they are not in the
//! registry and not in tiller's own process group. Children that other code in
//! tiller spawns with default settings stay in tiller's group and are safe;
//! code that spawns a child into a new group or session must use
//! [`spawn_registered`] (or its `waitpid` may find the child already reaped).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fs;
use std::future::pending;
use std::io;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpgrp, getpid};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

pub mod cgroup;
pub mod orphan_guard;
pub mod sandbox;
mod spawn;

pub use cgroup::CallCgroup;
pub use sandbox::{PreparedSandbox, Sandbox, SandboxError};
pub use spawn::{Cgroup, SpawnError, ToolProcess, spawn_tool};

/// The environment variable that carries a tool call's [`ToolMarker`].
pub const TOOL_MARKER_ENV: &str = "TILLER_TOOL_MARKER";

/// How long [`kill_tree`] waits after `SIGTERM` before it sends `SIGKILL`.
pub const TERM_GRACE: Duration = Duration::from_millis(100);

/// How long [`kill_tree`] keeps trying before it gives up and logs a warning.
pub const KILL_DEADLINE: Duration = Duration::from_secs(2);

/// How often [`kill_tree`] looks again when nothing woke it up.
const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Makes tiller a child subreaper: orphaned descendants of tool processes are
/// re-parented to tiller instead of init, so [`kill_tree`] can find and reap
/// them. Call once at start-up; calling it again does no harm.
pub fn become_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

/// Whether tiller is a child subreaper (see [`become_subreaper`]).
pub fn is_subreaper() -> bool {
    nix::sys::prctl::get_child_subreaper().unwrap_or(false)
}

/// A value unique to one tool call, put in the environment of its process
/// (as [`TOOL_MARKER_ENV`]) so that descendants which left its process group
/// can still be recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolMarker {
    value: String,
}

impl ToolMarker {
    /// A marker no other tool call of this or another tiller process has.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let serial = NEXT.fetch_add(1, Ordering::Relaxed);
        let value = format!("{}-{serial}-{:016x}", std::process::id(), fastrand::u64(..));
        Self { value }
    }

    /// The environment variable to set on the tool's command: name and value.
    pub fn env(&self) -> (&'static str, &str) {
        (TOOL_MARKER_ENV, &self.value)
    }

    /// The marker's value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl Default for ToolMarker {
    fn default() -> Self {
        Self::new()
    }
}

/// Pids of the children tiller spawned itself (tokio reaps them).
static DIRECT_CHILDREN: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn direct_children() -> MutexGuard<'static, BTreeSet<i32>> {
    // The set stays consistent even if a holder panicked: every operation on
    // it is a single insert, remove or read.
    DIRECT_CHILDREN
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Threads of tiller that never spawn a process, by thread id: their
/// `/proc/self/task/<tid>/children` files are not read. A server runs one
/// rollout writer thread per session; with a hundred sessions, reading every
/// thread's file cost about 1 ms per pass of [`kill_tree`].
static CHILDLESS_THREADS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn childless_threads() -> MutexGuard<'static, BTreeSet<i32>> {
    // As for the registry of children: single inserts, removes and reads.
    CHILDLESS_THREADS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Declares that the calling thread never spawns a process, until the guard
/// is dropped (drop it on that thread, before the thread ends: thread ids are
/// reused). The children [`kill_tree`] looks for are then not looked for in
/// this thread's list. Orphans that tiller adopts are listed under its first
/// live thread, the main thread, so a thread that only does its own work
/// (a rollout writer) has no children.
///
/// Never use it on the main thread or on a runtime thread: tokio spawns tool
/// processes from its worker threads, and a child stays in the list of the
/// thread that forked it.
pub fn childless_thread() -> ChildlessThread {
    let tid = nix::unistd::gettid().as_raw();
    childless_threads().insert(tid);
    ChildlessThread { tid }
}

/// The registration made by [`childless_thread`].
#[derive(Debug)]
#[must_use = "the registration ends when the guard is dropped"]
pub struct ChildlessThread {
    tid: i32,
}

impl Drop for ChildlessThread {
    fn drop(&mut self) {
        childless_threads().remove(&self.tid);
    }
}

/// Keeps a spawned child's pid in the registry of tiller's own children until
/// it is dropped. Drop it once tokio has reaped the child (`wait` returned).
#[derive(Debug)]
#[must_use = "dropping the registration lets kill_tree reap the child under tokio"]
pub struct DirectChild {
    pid: i32,
}

impl DirectChild {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }
}

impl Drop for DirectChild {
    fn drop(&mut self) {
        direct_children().remove(&self.pid);
    }
}

/// Records the pid of a helper process tiller spawned itself (with
/// `std::process`, which reaps it): [`kill_tree`] must neither take it for an
/// orphan of a tool call nor reap it.
pub fn register_helper(pid: u32) -> DirectChild {
    let pid = i32::try_from(pid).unwrap_or(i32::MAX);
    direct_children().insert(pid);
    DirectChild { pid }
}

/// Spawns `command` and records the child's pid in the registry of tiller's
/// own children, holding the registry's lock across the spawn so that
/// [`kill_tree`] never mistakes the new child for an adopted orphan and reaps
/// it under tokio.
pub fn spawn_registered(command: &mut Command) -> io::Result<(Child, DirectChild)> {
    let mut registry = direct_children();
    let child = command.spawn()?;
    let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) else {
        return Err(io::Error::other("the spawned child has no pid"));
    };
    registry.insert(pid);
    drop(registry);
    Ok((child, DirectChild { pid }))
}

/// SIGKILL the process group of every tool process tiller spawned that is still
/// registered, without waiting. For a front end that must exit at once (a second
/// Ctrl+C): the groups die with it instead of outliving it. Escaped
/// grandchildren are not chased here; the per-call [`kill_tree`] does that.
pub fn kill_all_now() {
    let pids: Vec<i32> = direct_children().iter().copied().collect();
    for pid in pids {
        // Each tool is its own group leader, so its pid is its group id.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The processes of one tool call: its process group (led by the tool's
/// direct child) and every process that carries its marker.
#[derive(Debug)]
pub struct ProcessTree {
    pgid: i32,
    /// Start time of the leader (clock ticks since boot); nothing started
    /// before it can belong to the tree. 0 when unknown.
    leader_start: u64,
    marker: ToolMarker,
    /// `TILLER_TOOL_MARKER=<value>`, as it appears in `/proc/<pid>/environ`.
    environ_entry: Vec<u8>,
    /// The call's cgroup, when it has one.
    cgroup: Option<std::path::PathBuf>,
}

impl ProcessTree {
    /// The tree of a process spawned with `process_group(0)` (so its pid is
    /// its group id) and `marker` in its environment.
    pub fn new(leader_pid: u32, marker: ToolMarker) -> io::Result<Self> {
        let pgid = i32::try_from(leader_pid)
            .ok()
            .filter(|pid| *pid > 1)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{leader_pid} is not the pid of a tool process"),
                )
            })?;
        let leader_start = read_stat(pgid)
            .filter(|stat| stat.pgid == pgid)
            .map_or(0, |stat| stat.start);
        let (name, value) = marker.env();
        let environ_entry = format!("{name}={value}").into_bytes();
        Ok(Self {
            pgid,
            leader_start,
            marker,
            environ_entry,
            cgroup: None,
        })
    }

    /// The tree of a call whose processes run in the cgroup at `dir`.
    #[must_use]
    pub fn with_cgroup(mut self, dir: &Path) -> Self {
        self.cgroup = Some(dir.to_path_buf());
        self
    }

    /// The process group id (the leader's pid).
    pub fn pgid(&self) -> u32 {
        self.pgid.unsigned_abs()
    }

    /// The call's marker.
    pub fn marker(&self) -> &ToolMarker {
        &self.marker
    }
}

/// What [`kill_tree`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KillReport {
    /// How the leader ended, when it was passed to [`kill_tree`] and reaped.
    pub leader_status: Option<ExitStatus>,
    /// Everything was killed and reaped before [`KILL_DEADLINE`].
    pub complete: bool,
    /// How long it took.
    pub elapsed: Duration,
}

/// Kills every process of `tree` and reaps the ones that became tiller's
/// children: `SIGTERM`, then `SIGKILL` after [`TERM_GRACE`]; gives up after
/// [`KILL_DEADLINE`] with a warning. See the [module docs](self).
///
/// Pass the leader's `Child` when it may still be running: it is then waited
/// for (and so reaped by tokio) as part of the kill, and its status reported.
pub async fn kill_tree(tree: &ProcessTree, mut leader: Option<&mut Child>) -> KillReport {
    let started = Instant::now();
    let mut killer = Killer::new(tree);
    // Orphans that tiller adopted wake us up when they die.
    let mut sigchld = signal(SignalKind::child()).ok();
    let mut leader_status = None;
    let mut leader_waited = false;
    let complete = loop {
        if let Some(child) = leader.as_deref_mut()
            && !leader_waited
            && let Ok(Some(status)) = child.try_wait()
        {
            leader_status = Some(status);
            leader_waited = true;
        }
        let elapsed = started.elapsed();
        let signal = if elapsed < TERM_GRACE {
            Signal::SIGTERM
        } else {
            Signal::SIGKILL
        };
        let alive = match killer.pass(signal) {
            Pass::Done => match leader.as_deref_mut() {
                // The leader is a zombie tokio has not reaped yet.
                Some(child) if !leader_waited => match child.try_wait() {
                    Ok(Some(status)) => {
                        leader_status = Some(status);
                        break true;
                    }
                    Ok(None) => Vec::new(),
                    Err(_) => break true,
                },
                _ => break true,
            },
            Pass::Alive(pids) => pids,
        };
        if elapsed >= KILL_DEADLINE {
            tracing::warn!(
                pgid = tree.pgid,
                survivors = ?alive,
                "gave up killing a tool's process tree after {KILL_DEADLINE:?}"
            );
            break false;
        }
        tokio::select! {
            status = wait_leader(leader.as_deref_mut(), leader_waited) => {
                leader_waited = true;
                leader_status = status.ok();
            }
            () = recv_sigchld(&mut sigchld) => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    };
    if let Some(child) = leader
        && !leader_waited
    {
        leader_status = child.try_wait().ok().flatten();
    }
    KillReport {
        leader_status,
        complete,
        elapsed: started.elapsed(),
    }
}

/// One `SIGKILL` pass over `tree` without waiting: for `Drop` impls and other
/// places that cannot await [`kill_tree`].
pub fn kill_tree_now(tree: &ProcessTree) {
    let _ = Killer::new(tree).pass(Signal::SIGKILL);
}

/// Reaps the zombie children of tiller that it adopted (not the registered
/// ones, not the ones in tiller's own process group). Returns how many.
pub fn reap_adopted_zombies() -> usize {
    let me = getpid().as_raw();
    let my_pgrp = getpgrp().as_raw();
    let zombies: Vec<i32> = if children_files_supported() {
        let mut kids = Vec::new();
        children_of(me, &mut kids);
        kids.into_iter()
            .filter_map(read_stat)
            .filter(|stat| stat.is_zombie() && stat.pgid != my_pgrp)
            .map(|stat| stat.pid)
            .collect()
    } else {
        scan_all()
            .into_iter()
            .filter(|stat| stat.ppid == me && stat.is_zombie() && stat.pgid != my_pgrp)
            .map(|stat| stat.pid)
            .collect()
    };
    zombies.into_iter().filter(|pid| reap(*pid)).count()
}

async fn wait_leader(child: Option<&mut Child>, waited: bool) -> io::Result<ExitStatus> {
    match child {
        Some(child) if !waited => child.wait().await,
        _ => pending().await,
    }
}

async fn recv_sigchld(sigchld: &mut Option<tokio::signal::unix::Signal>) {
    let Some(stream) = sigchld else {
        return pending().await;
    };
    if stream.recv().await.is_none() {
        // The signal driver is gone: fall back to polling.
        *sigchld = None;
    }
}

/// The outcome of one pass of the kill loop.
enum Pass {
    /// Nothing of the tree is left.
    Done,
    /// These processes were alive (and have been signalled).
    Alive(Vec<i32>),
}

/// The processes of the tree one pass found.
struct Found {
    /// Alive (not zombies), attributed to the tree.
    live: Vec<ProcStat>,
    /// Zombie children of tiller it may reap.
    zombies: Vec<i32>,
}

/// The state of one [`kill_tree`] call across its passes.
struct Killer<'a> {
    tree: &'a ProcessTree,
    me: i32,
    my_pgrp: i32,
    /// Children files are there and tiller is a subreaper: walk the tree
    /// instead of scanning all of `/proc`.
    walk: bool,
    /// Every process attributed to the tree so far: pid → start time.
    known: HashMap<i32, u64>,
    /// Targets already sent `SIGTERM`: pids, and groups as negative ids.
    termed: HashSet<i32>,
}

impl<'a> Killer<'a> {
    fn new(tree: &'a ProcessTree) -> Self {
        Self {
            tree,
            me: getpid().as_raw(),
            my_pgrp: getpgrp().as_raw(),
            walk: children_files_supported() && is_subreaper() && !scan_forced(),
            known: HashMap::new(),
            termed: HashSet::new(),
        }
    }

    fn pass(&mut self, signal: Signal) -> Pass {
        let pgid = self.tree.pgid;
        let group_alive = group_exists(pgid);
        let found = self.discover(group_alive);

        // Signal whole groups where we can: the tool's group, and every group
        // led by a process of the tree. Everything else one by one.
        let mut groups = BTreeSet::new();
        if group_alive {
            groups.insert(pgid);
        }
        for stat in &found.live {
            if stat.pgid == stat.pid && stat.pgid != self.my_pgrp {
                groups.insert(stat.pid);
            }
        }
        let resend = signal == Signal::SIGKILL;
        for &group in &groups {
            if resend || self.termed.insert(-group) {
                let _ = killpg(Pid::from_raw(group), signal);
            }
        }
        for stat in &found.live {
            if !groups.contains(&stat.pgid) && (resend || self.termed.insert(stat.pid)) {
                let _ = kill(Pid::from_raw(stat.pid), signal);
            }
        }

        if resend && let Some(dir) = &self.tree.cgroup {
            cgroup::kill_all(dir);
        }

        for zombie in found.zombies {
            reap(zombie);
        }
        if !found.live.is_empty() {
            return Pass::Alive(found.live.iter().map(|stat| stat.pid).collect());
        }
        let cgroup_empty = self
            .tree
            .cgroup
            .as_deref()
            .is_none_or(|dir| cgroup::pids(dir).is_empty());
        if cgroup_empty && (!group_exists(pgid) || self.group_holds_only_unreapable_zombies()) {
            return Pass::Done;
        }
        Pass::Alive(Vec::new())
    }

    /// Finds the live processes of the tree and the zombies to reap.
    fn discover(&mut self, group_alive: bool) -> Found {
        let registered = direct_children().clone();
        let mut roots = Vec::new();
        let mut zombies = Vec::new();
        let scan = (!self.walk).then(scan_all);
        match &scan {
            None => {
                if group_alive
                    && let Some(leader) = read_stat(self.tree.pgid)
                    && leader.pgid == self.tree.pgid
                    && leader.start >= self.tree.leader_start
                {
                    roots.push(leader);
                }
                let mut kids = Vec::new();
                children_of(self.me, &mut kids);
                for stat in kids.into_iter().filter_map(read_stat) {
                    if registered.contains(&stat.pid) {
                        continue;
                    }
                    if stat.is_zombie() {
                        if stat.pgid != self.my_pgrp {
                            zombies.push(stat.pid);
                        }
                    } else if self.belongs(&stat) || self.is_orphan_of_this_call(&stat, &registered)
                    {
                        roots.push(stat);
                    }
                }
                // Processes seen before that are no longer reachable (their
                // parent died and another subreaper adopted them).
                roots.extend(
                    self.known
                        .iter()
                        .filter_map(|(&pid, &start)| read_stat(pid).filter(|s| s.start == start)),
                );
            }
            Some(all) => {
                for stat in all {
                    // Registered children are other calls' leaders (or
                    // this call's, which `belongs` through its group).
                    if (registered.contains(&stat.pid) && stat.pid != self.tree.pgid)
                        || stat.pid == self.me
                    {
                        continue;
                    }
                    if stat.is_zombie() {
                        if stat.ppid == self.me && stat.pgid != self.my_pgrp {
                            zombies.push(stat.pid);
                        }
                    } else if self.belongs(stat)
                        || (stat.ppid == self.me && self.is_orphan_of_this_call(stat, &registered))
                    {
                        roots.push(*stat);
                    }
                }
            }
        }

        // Everything in the call's cgroup is the call's.
        if let Some(dir) = &self.tree.cgroup {
            roots.extend(cgroup::pids(dir).into_iter().filter_map(read_stat));
        }

        // Everything below a process of the tree is part of it, whatever its
        // group or environment.
        let children_by_parent = scan.map(|all| {
            let mut map: HashMap<i32, Vec<ProcStat>> = HashMap::new();
            for stat in all {
                map.entry(stat.ppid).or_default().push(stat);
            }
            map
        });
        let mut live = Vec::new();
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from(roots);
        while let Some(stat) = queue.pop_front() {
            if !seen.insert(stat.pid) || stat.pid <= 1 || stat.pid == self.me || stat.is_zombie() {
                continue;
            }
            self.known.insert(stat.pid, stat.start);
            live.push(stat);
            match &children_by_parent {
                Some(map) => queue.extend(map.get(&stat.pid).into_iter().flatten().copied()),
                None => {
                    let mut kids = Vec::new();
                    children_of(stat.pid, &mut kids);
                    queue.extend(kids.into_iter().filter_map(read_stat));
                }
            }
        }
        Found { live, zombies }
    }

    /// Whether a live process that is not reachable from the leader belongs
    /// to the tree: in its group, seen before, or carrying its marker.
    fn belongs(&self, stat: &ProcStat) -> bool {
        stat.start >= self.tree.leader_start
            && (stat.pgid == self.tree.pgid
                || self.known.get(&stat.pid) == Some(&stat.start)
                || has_marker(stat.pid, &self.tree.environ_entry))
    }

    /// Without a cgroup: whether `stat`, a live child of tiller that tiller
    /// did not spawn, is an orphan of this call that lost every other tie to
    /// it (see the module docs): started after the call's first process, in
    /// no group of tiller's own calls or of tiller itself, carrying no marker
    /// of another call.
    fn is_orphan_of_this_call(&self, stat: &ProcStat, registered: &BTreeSet<i32>) -> bool {
        self.tree.cgroup.is_none()
            && self.tree.leader_start > 0
            && stat.start >= self.tree.leader_start
            && stat.pgid != self.my_pgrp
            && (stat.pgid == self.tree.pgid || !registered.contains(&stat.pgid))
            && !carries_other_marker(stat.pid, &self.tree.environ_entry)
            && !in_a_call_cgroup(stat.pid)
    }

    /// The group still exists but no live member was found: look at every
    /// member. Zombies that are tiller's registered children are their
    /// owner's to reap and do not hold the kill up; other zombie children of
    /// tiller are reaped; a live member or a zombie whose parent is elsewhere
    /// is remembered for the next pass.
    fn group_holds_only_unreapable_zombies(&mut self) -> bool {
        let registered = direct_children().clone();
        let mut settled = true;
        for stat in scan_all().into_iter().filter(|s| s.pgid == self.tree.pgid) {
            if !stat.is_zombie() {
                self.known.insert(stat.pid, stat.start);
                settled = false;
            } else if stat.ppid == self.me {
                if !registered.contains(&stat.pid) {
                    reap(stat.pid);
                }
            } else {
                if let Some(parent) = read_stat(stat.ppid)
                    && parent.pid > 1
                    && parent.start >= self.tree.leader_start
                {
                    self.known.insert(parent.pid, parent.start);
                }
                settled = false;
            }
        }
        settled
    }
}

/// Whether any process (zombies included) is in group `pgid`.
fn group_exists(pgid: i32) -> bool {
    // EPERM: members exist that we may not signal.
    !matches!(killpg(Pid::from_raw(pgid), None), Err(Errno::ESRCH))
}

/// Reaps `pid` if it is a zombie child of tiller that tokio does not own.
fn reap(pid: i32) -> bool {
    // Hold the registry across the check and the wait, so a child being
    // spawned (and registered) right now cannot be reaped in between.
    let registry = direct_children();
    let reaped = !registry.contains(&pid)
        && matches!(
            waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
            Ok(status) if status != WaitStatus::StillAlive
        );
    drop(registry);
    reaped
}

/// The fields of `/proc/<pid>/stat` this module needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    pid: i32,
    state: u8,
    ppid: i32,
    pgid: i32,
    /// Start time in clock ticks since boot: with the pid, identifies a
    /// process across pid reuse.
    start: u64,
}

impl ProcStat {
    fn is_zombie(&self) -> bool {
        matches!(self.state, b'Z' | b'X')
    }
}

/// Whether `pid` is a live process (a zombie is not: it has exited and
/// closed its files, only its parent's wait is missing).
pub fn is_alive(pid: i32) -> bool {
    read_stat(pid).is_some_and(|stat| !stat.is_zombie())
}

fn read_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &text)
}

fn parse_stat(pid: i32, text: &str) -> Option<ProcStat> {
    // The command name (field 2) is in parentheses and may contain spaces
    // and parentheses itself: the fields that follow start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    // Fields 3 to 5 are read; `nth(16)` is field 22, the start time.
    let start = fields.nth(16)?.parse().ok()?;
    Some(ProcStat {
        pid,
        state,
        ppid,
        pgid,
        start,
    })
}

/// Whether `/proc/<pid>/task/<tid>/children` exists on this kernel.
fn children_files_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let pid = std::process::id();
        Path::new(&format!("/proc/{pid}/task/{pid}/children")).exists()
    })
}

/// Appends the pids of `pid`'s children (of all its threads) to `out`.
/// For tiller itself, the threads declared [`childless_thread`] are skipped.
fn children_of(pid: i32, out: &mut Vec<i32>) {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    let skip = if pid == getpid().as_raw() {
        childless_threads().clone()
    } else {
        BTreeSet::new()
    };
    for task in tasks.flatten() {
        let childless = task
            .file_name()
            .to_str()
            .and_then(|tid| tid.parse::<i32>().ok())
            .is_some_and(|tid| skip.contains(&tid));
        if childless {
            continue;
        }
        let path = task.path().join("children");
        if let Ok(text) = fs::read_to_string(path) {
            out.extend(
                text.split_ascii_whitespace()
                    .filter_map(|s| s.parse::<i32>().ok()),
            );
        }
    }
}

/// Every process on the machine.
fn scan_all() -> Vec<ProcStat> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read_stat)
        .collect()
}

/// Whether `/proc/<pid>/environ` holds exactly `entry` (`NAME=value`).
fn has_marker(pid: i32, entry: &[u8]) -> bool {
    fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|environ| environ.split(|byte| *byte == 0).any(|item| item == entry))
}

/// Whether `pid`'s environment holds a tool marker other than `ours`, or
/// cannot be read (then it is not known to be this call's).
fn carries_other_marker(pid: i32, ours: &[u8]) -> bool {
    let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
        return true;
    };
    let prefix = format!("{TOOL_MARKER_ENV}=");
    environ
        .split(|byte| *byte == 0)
        .any(|item| item.starts_with(prefix.as_bytes()) && item != ours)
}

/// Whether `pid` runs in the cgroup of a tool call (which then owns it).
fn in_a_call_cgroup(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|text| {
        text.lines()
            .filter_map(|line| line.strip_prefix("0::"))
            .any(|path| {
                path.rsplit('/')
                    .next()
                    .is_some_and(|name| name.starts_with("tiller-"))
            })
    })
}

/// Only tests make [`kill_tree`] scan `/proc` where it would walk the tree.
#[cfg(not(test))]
const fn scan_forced() -> bool {
    false
}

#[cfg(test)]
fn scan_forced() -> bool {
    tests::FORCE_SCAN.get()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::path::PathBuf;
    use std::process::Stdio;

    use tiller_test_support::read_pids;

    use super::*;

    /// Tests that start process trees run one at a time. Without a cgroup,
    /// an orphan tiller adopts while a call runs is taken as that call's, so
    /// one test's `kill_tree` would take another test's orphan.
    static TREES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    thread_local! {
        /// Set by tests that exercise the full `/proc` scan. A
        /// `#[tokio::test]` runs on its test's own thread.
        pub(super) static FORCE_SCAN: Cell<bool> = const { Cell::new(false) };
    }

    /// Spawns `bash -c script` the way the shell tool does.
    fn spawn_tool(script: &str) -> (Child, DirectChild, ProcessTree) {
        let marker = ToolMarker::new();
        let (name, value) = marker.env();
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(script)
            .env(name, value)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let (child, registration) = spawn_registered(&mut command).expect("spawn bash");
        let pid = child.id().expect("pid");
        let tree = ProcessTree::new(pid, marker).expect("tree");
        (child, registration, tree)
    }

    /// [`spawn_tool`] in `cgroup`, as the shell tool spawns.
    fn spawn_tool_in(script: &str, cgroup: &CallCgroup) -> (Child, DirectChild, ProcessTree) {
        let marker = ToolMarker::new();
        let (name, value) = marker.env();
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(script)
            .env(name, value)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let enter = cgroup.enter_hook().expect("hook");
        // SAFETY: as in the shell tool: one write(2) between fork and exec.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(enter);
        }
        let (child, registration) = spawn_registered(&mut command).expect("spawn bash");
        let pid = child.id().expect("pid");
        let tree = ProcessTree::new(pid, marker)
            .expect("tree")
            .with_cgroup(cgroup.path());
        (child, registration, tree)
    }

    /// Waits (with a deadline) until `check` holds.
    async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn is_gone(pid: i32) -> bool {
        !Path::new(&format!("/proc/{pid}")).exists()
    }

    fn pidfile(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("pids")
    }

    /// Shell snippet that writes `$pids` to the pid file atomically.
    fn write_pids(path: &Path, pids: &str) -> String {
        let path = path.display();
        format!("echo {pids} > {path}.tmp && mv {path}.tmp {path}")
    }

    #[test]
    fn every_tool_call_gets_its_own_marker() {
        let first = ToolMarker::new();
        let second = ToolMarker::new();
        assert_ne!(first, second);
        assert_eq!(first.env().0, TOOL_MARKER_ENV);
        assert_eq!(first.env().1, first.value());
    }

    #[test]
    fn stat_lines_with_odd_command_names_are_parsed() {
        let line = "4538 (a) b (c) S 4537 4530 4538 0 -1 4194560 2184 33727 0 33 1 0 27 10 20 0 1 0 25798 5124096";
        let stat = parse_stat(4538, line).expect("parsed");
        assert_eq!(
            stat,
            ProcStat {
                pid: 4538,
                state: b'S',
                ppid: 4537,
                pgid: 4530,
                start: 25798,
            }
        );
    }

    /// The contract of `childless_thread` broken on purpose: a child forked
    /// by a thread declared childless is not listed while the declaration
    /// holds, and is listed again once its guard is dropped.
    #[test]
    fn a_childless_threads_list_is_skipped_until_its_guard_drops() {
        let me = getpid().as_raw();
        let (forked, dropped) = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let guard = childless_thread();
                    let guard_tid = guard.tid;
                    let mut child = std::process::Command::new("sleep")
                        .arg("60")
                        .spawn()
                        .expect("spawn sleep");
                    let pid = i32::try_from(child.id()).expect("pid");
                    let mut while_declared = Vec::new();
                    children_of(me, &mut while_declared);
                    drop(guard);
                    let mut after = Vec::new();
                    children_of(me, &mut after);
                    child.kill().expect("kill sleep");
                    child.wait().expect("reap sleep");
                    (
                        while_declared.contains(&pid),
                        after.contains(&pid) && !childless_threads().contains(&guard_tid),
                    )
                })
                .join()
                .expect("the thread")
        });
        assert!(!forked, "the childless thread's child was listed");
        assert!(dropped, "the child was not listed after the guard dropped");
    }

    #[tokio::test]
    async fn kill_tree_kills_and_reaps_every_member_of_the_group() {
        let _trees = TREES.lock().await;
        become_subreaper().expect("subreaper");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = pidfile(&dir);
        let script = format!(
            "sleep 60 & a=$!; sleep 60 & b=$!; {}; wait",
            write_pids(&path, "$$ $a $b")
        );
        let (mut child, _registration, tree) = spawn_tool(&script);
        let pids = read_pids(&path).await;

        let report = kill_tree(&tree, Some(&mut child)).await;

        assert!(report.complete);
        assert!(report.leader_status.is_some());
        for pid in pids {
            assert!(is_gone(pid), "{pid} is still there");
        }
        assert!(!group_exists(tree.pgid));
    }

    #[tokio::test]
    async fn grandchild_that_called_setsid_is_killed() {
        let _trees = TREES.lock().await;
        become_subreaper().expect("subreaper");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = pidfile(&dir);
        let script = format!("setsid sleep 60 & {}; sleep 60", write_pids(&path, "$!"));
        let (mut child, _registration, tree) = spawn_tool(&script);
        let pids = read_pids(&path).await;
        wait_until("the grandchild has left the group", || {
            read_stat(pids[0]).is_some_and(|s| s.pgid == pids[0])
        })
        .await;

        let report = kill_tree(&tree, Some(&mut child)).await;

        assert!(report.complete);
        assert!(is_gone(pids[0]));
    }

    #[tokio::test]
    async fn escaped_grandchild_without_marker_is_found_through_its_live_parent() {
        let _trees = TREES.lock().await;
        escaped_grandchild_without_marker_is_killed().await;
    }

    #[tokio::test]
    async fn escaped_grandchild_without_marker_is_found_by_a_full_proc_scan() {
        let _trees = TREES.lock().await;
        FORCE_SCAN.set(true);
        escaped_grandchild_without_marker_is_killed().await;
    }

    async fn escaped_grandchild_without_marker_is_killed() {
        become_subreaper().expect("subreaper");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = pidfile(&dir);
        let script = format!("setsid env -i sleep 60 & {}; wait", write_pids(&path, "$!"));
        let (mut child, _registration, tree) = spawn_tool(&script);
        let pids = read_pids(&path).await;
        wait_until(
            "the grandchild has left the group and cleared its environment",
            || {
                read_stat(pids[0]).is_some_and(|s| s.pgid == pids[0])
                    && !has_marker(pids[0], &tree.environ_entry)
                    && fs::read(format!("/proc/{}/environ", pids[0])).is_ok()
            },
        )
        .await;

        let report = kill_tree(&tree, Some(&mut child)).await;

        assert!(report.complete);
        assert!(is_gone(pids[0]), "the escaped grandchild survived");
    }

    #[tokio::test]
    async fn adopted_orphan_with_the_marker_is_killed_and_reaped() {
        let _trees = TREES.lock().await;
        adopted_orphan_with_the_marker_is_killed().await;
    }

    #[tokio::test]
    async fn adopted_orphan_with_the_marker_is_found_by_a_full_proc_scan() {
        let _trees = TREES.lock().await;
        FORCE_SCAN.set(true);
        adopted_orphan_with_the_marker_is_killed().await;
    }

    async fn adopted_orphan_with_the_marker_is_killed() {
        become_subreaper().expect("subreaper");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = pidfile(&dir);
        // The subshell exits at once: its setsid'd child becomes an orphan
        // that tiller adopts before kill_tree runs.
        let script = format!("(setsid sleep 60 & {}); sleep 60", write_pids(&path, "$!"));
        let (mut child, _registration, tree) = spawn_tool(&script);
        let pids = read_pids(&path).await;
        let me = getpid().as_raw();
        wait_until("tiller has adopted the orphan", || {
            read_stat(pids[0]).is_some_and(|s| s.ppid == me && s.pgid == pids[0])
        })
        .await;

        let report = kill_tree(&tree, Some(&mut child)).await;

        assert!(report.complete);
        assert!(is_gone(pids[0]), "the orphan is alive or a zombie");
    }

    /// `setsid env -i sleep 60 &` from a subshell that exits at once: the
    /// sleep leaves the group, clears the marker, and its parent is gone
    /// before anything looks. It is still the call's.
    async fn orphan_without_group_or_marker_is_killed(cgroup: Option<&CallCgroup>) {
        become_subreaper().expect("subreaper");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = pidfile(&dir);
        let script = format!(
            "(setsid env -i sleep 60 & {}); sleep 60",
            write_pids(&path, "$!")
        );
        let (mut child, _registration, tree) = match cgroup {
            None => spawn_tool(&script),
            Some(cgroup) => spawn_tool_in(&script, cgroup),
        };
        let pids = read_pids(&path).await;
        let me = getpid().as_raw();
        wait_until(
            "tiller has adopted the orphan and it cleared its environment",
            || {
                read_stat(pids[0]).is_some_and(|s| s.ppid == me && s.pgid == pids[0])
                    && fs::read(format!("/proc/{}/environ", pids[0])).is_ok_and(|env| {
                        !env.windows(TOOL_MARKER_ENV.len())
                            .any(|w| w == TOOL_MARKER_ENV.as_bytes())
                    })
            },
        )
        .await;

        let report = kill_tree(&tree, Some(&mut child)).await;

        assert!(report.complete);
        assert!(
            is_gone(pids[0]),
            "the orphan without group or marker survived"
        );
    }

    #[tokio::test]
    async fn an_orphan_that_cleared_group_and_marker_is_killed_through_the_calls_cgroup() {
        let _trees = TREES.lock().await;
        let cgroup = CallCgroup::create().expect("this machine lets tiller create cgroups");
        orphan_without_group_or_marker_is_killed(Some(&cgroup)).await;
        assert!(cgroup::pids(cgroup.path()).is_empty());
    }

    #[tokio::test]
    async fn an_orphan_that_cleared_group_and_marker_is_killed_without_a_cgroup() {
        let _trees = TREES.lock().await;
        orphan_without_group_or_marker_is_killed(None).await;
    }

    #[tokio::test]
    async fn process_that_ignores_sigterm_is_killed_after_the_grace() {
        let _trees = TREES.lock().await;
        become_subreaper().expect("subreaper");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = pidfile(&dir);
        let script = format!(
            "trap '' TERM; sleep 60 & {}; wait",
            write_pids(&path, "$$ $!")
        );
        let (mut child, _registration, tree) = spawn_tool(&script);
        let pids = read_pids(&path).await;

        let report = kill_tree(&tree, Some(&mut child)).await;

        assert!(report.complete);
        assert!(
            report.elapsed >= TERM_GRACE,
            "killed before the grace: {report:?}"
        );
        let status = report.leader_status.expect("leader reaped");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(Signal::SIGKILL as i32)
        );
        for pid in pids {
            assert!(is_gone(pid), "{pid} is still there");
        }
    }

    #[tokio::test]
    async fn adopted_zombies_are_reaped_but_registered_children_are_left_to_tokio() {
        let _trees = TREES.lock().await;
        become_subreaper().expect("subreaper");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = pidfile(&dir);
        // A short-lived orphan that tiller adopts and that then dies, and a
        // registered child that exits on its own.
        let script = format!("(true & {}); exit 7", write_pids(&path, "$!"));
        let (mut child, _registration, _tree) = spawn_tool(&script);
        let orphan = read_pids(&path).await[0];
        let leader = i32::try_from(child.id().expect("pid")).expect("pid fits");
        wait_until("the orphan and the leader are zombies", || {
            let zombie = |pid| read_stat(pid).is_none_or(|s| s.is_zombie());
            zombie(orphan) && zombie(leader)
        })
        .await;

        reap_adopted_zombies();

        assert!(is_gone(orphan), "the adopted zombie was not reaped");
        let status = child.wait().await.expect("tokio still owns its child");
        assert_eq!(status.code(), Some(7));
    }
}
