//! Workspace checkpoints: a snapshot of the workspace before each turn, so a
//! turn's file changes can be taken back.
//!
//! A snapshot is a git tree in a shadow repository under
//! `$TILLER_HOME/checkpoints/<folder key>/`, with its own index, built with
//! `git --git-dir=SHADOW --work-tree=FOLDER add -A` and `write-tree`. Why git:
//! - **cheap when nothing changed**: the shadow index remembers each file's
//!   stat, so an unchanged workspace costs a `stat` per file (about 30 ms for
//!   10,000 files), and a changed one costs hashing what changed;
//! - **content-addressed**: snapshots share every unchanged file, so a turn
//!   costs the disk only what it changed;
//! - **`.gitignore` honoured** as the user's own git honours it (build output
//!   and dependencies stay out), also in a folder that is not a repository;
//! - **the user's git state is never touched**: the shadow has its own
//!   objects, index and config (the user's `.git` is always skipped by git
//!   itself; no hook, ref, stash or index of theirs is read or written);
//! - git is on every machine where code is edited. Where it is not, turns run
//!   without checkpoints and the session says so once.
//!
//! Restoring from tree `expected` (how the turns left the workspace) to tree
//! `target` (how it was before them) puts back only the paths that differ
//! between the two, and only where the file is still as the turns left it: a
//! file changed since by someone else is a conflict, reported and left alone.
//! The same restore, the other way round, takes an undo back.
//!
//! Every git call runs with an environment of `PATH` alone (no `GIT_*`
//! variable of the caller's, no key) and no system or global config, hooks
//! off, under a lock on the shadow repository (two sessions in one folder take
//! turns).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};
use tiller_protocol::FilesReport;

/// Folders left out of snapshots even when no `.gitignore` names them:
/// dependencies and caches that tools rebuild, which are large and many.
const DEFAULT_EXCLUDES: &str = "\
# written by tiller: left out of workspace checkpoints
.git/
node_modules/
.venv/
__pycache__/
.mypy_cache/
.pytest_cache/
.tox/
";

/// How much lower than tiller's the priority of its git processes is.
const SNAPSHOT_NICENESS: i32 = 10;

/// Why a checkpoint could not be taken or used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The folder is too broad to snapshot (the file system root or the home folder).
    #[error(
        "{folder} is {what}; workspace checkpoints are off for it (run tiller in a project folder to have turns you can undo)"
    )]
    TooBroad {
        /// The folder.
        folder: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// git is not installed.
    #[error("git was not found ({0}); workspace checkpoints need it and are off")]
    NoGit(std::io::Error),
    /// A git command failed.
    #[error("git {command} failed: {message}")]
    Git {
        /// The git subcommand.
        command: String,
        /// What git said.
        message: String,
    },
    /// Reading or writing the workspace or the shadow repository failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// One workspace and its shadow repository.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    git_dir: PathBuf,
}

/// The folder a session in `cwd` snapshots: the root of the git repository
/// `cwd` is in, or `cwd` itself.
pub fn workspace_root(cwd: &Path) -> PathBuf {
    cwd.ancestors()
        .find(|dir| dir.join(".git").exists())
        .unwrap_or(cwd)
        .to_path_buf()
}

impl Workspace {
    /// The workspace at `root`, its shadow repository under
    /// `home/checkpoints` (made on first use).
    pub fn open(home: &Path, root: &Path) -> Result<Workspace, CheckpointError> {
        let root = std::fs::canonicalize(root).map_err(|source| CheckpointError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        if root.parent().is_none() {
            return Err(CheckpointError::TooBroad {
                folder: root,
                what: "the file system's root",
            });
        }
        if std::env::var_os("HOME")
            .and_then(|home| std::fs::canonicalize(home).ok())
            .is_some_and(|home| home == root)
        {
            return Err(CheckpointError::TooBroad {
                folder: root,
                what: "your home folder",
            });
        }
        let git_dir = home.join("checkpoints").join(folder_key(&root));
        let workspace = Workspace { root, git_dir };
        if !workspace.git_dir.join("HEAD").exists() {
            workspace.init()?;
        }
        Ok(workspace)
    }

    /// The folder snapshotted.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn init(&self) -> Result<(), CheckpointError> {
        std::fs::create_dir_all(&self.git_dir).map_err(|source| self.io(&self.git_dir, source))?;
        let dir = self.git_dir.to_string_lossy().into_owned();
        self.run(&["init", "--quiet", "--bare", &dir], None)?;
        let info = self.git_dir.join("info");
        std::fs::create_dir_all(&info).map_err(|source| self.io(&info, source))?;
        let exclude = info.join("exclude");
        std::fs::write(&exclude, DEFAULT_EXCLUDES).map_err(|source| self.io(&exclude, source))?;
        let note = self.git_dir.join("tiller-workspace");
        std::fs::write(&note, self.root.as_os_str().as_encoded_bytes())
            .map_err(|source| self.io(&note, source))
    }

    /// Snapshot the workspace; returns the tree's id.
    pub fn snapshot(&self) -> Result<String, CheckpointError> {
        let _lock = self.lock()?;
        self.snapshot_locked()
    }

    fn snapshot_locked(&self) -> Result<String, CheckpointError> {
        match self.run(&["add", "--all", "--ignore-errors", "--", "."], None) {
            Ok(_) => {}
            // A file that vanished or could not be read mid-walk is skipped
            // (`--ignore-errors`) but fails the command: the snapshot is what
            // could be read. Anything fatal fails the snapshot.
            Err(CheckpointError::Git { message, .. }) if !message.contains("fatal:") => {
                tracing::warn!("checkpoint: files skipped: {message}");
            }
            Err(e) => return Err(e),
        }
        Ok(self.run(&["write-tree"], None)?.trim().to_string())
    }

    /// Put back the paths that differ between `expected` and `target` to
    /// what `target` has, where the workspace still has what `expected` has.
    /// The workspace is snapshotted first (the report's `checkpoint`), so the
    /// restore can itself be taken back.
    pub fn restore(&self, expected: &str, target: &str) -> Result<FilesReport, CheckpointError> {
        let _lock = self.lock()?;
        let current = self.snapshot_locked()?;
        let wanted = self.changes(expected, target)?;
        let moved = self.changes(expected, &current)?;
        let already = self.changes(target, &current)?;
        let mut restored = FilesReport {
            root: self.root.display().to_string(),
            checkpoint: current,
            ..FilesReport::default()
        };
        let mut checkout = Vec::new();
        let mut remove = Vec::new();
        for (path, in_target) in wanted {
            if !moved.contains_key(&path) {
                match in_target {
                    Side::Absent => remove.push(path),
                    Side::Blob => checkout.push(path),
                    Side::Other => {}
                }
            } else if already.contains_key(&path) {
                restored.conflicts.push(shown(&path));
            }
        }
        for path in &remove {
            let full = self.root.join(std::ffi::OsStr::from_bytes(path));
            match std::fs::remove_file(&full) {
                Ok(()) => remove_empty_parents(&self.root, &full),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(self.io(&full, source)),
            }
        }
        if !checkout.is_empty() {
            // A throwaway index holding `target`, checked out path by path.
            let index = self.git_dir.join("restore-index");
            let env = [("GIT_INDEX_FILE", index.as_os_str())];
            self.run_env(&["read-tree", target], None, &env)?;
            let mut paths = Vec::new();
            for path in &checkout {
                // A file in the way of a folder the target needs.
                self.clear_file_ancestors(path)?;
                paths.extend_from_slice(path);
                paths.push(0);
            }
            self.run_env(
                &["checkout-index", "--force", "-z", "--stdin"],
                Some(&paths),
                &env,
            )?;
            let _ = std::fs::remove_file(&index);
        }
        restored.restored = checkout.iter().map(|p| shown(p)).collect();
        restored.removed = remove.iter().map(|p| shown(p)).collect();
        Ok(restored)
    }

    /// Remove a file where `path` needs one of its folders.
    fn clear_file_ancestors(&self, path: &[u8]) -> Result<(), CheckpointError> {
        let mut dir = self.root.clone();
        let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            dir.push(std::ffi::OsStr::from_bytes(part));
            match std::fs::symlink_metadata(&dir) {
                Ok(meta) if !meta.is_dir() => {
                    std::fs::remove_file(&dir).map_err(|source| self.io(&dir, source))?;
                    return Ok(());
                }
                Ok(_) => {}
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }

    /// The paths (as git has them: bytes, not necessarily UTF-8) that differ
    /// from tree `a` to tree `b`, each with what `b` has there.
    fn changes(&self, a: &str, b: &str) -> Result<HashMap<Vec<u8>, Side>, CheckpointError> {
        let out = self.run_bytes(&["diff-tree", "-r", "-z", "--no-renames", a, b], None, &[])?;
        let mut changes = HashMap::new();
        let mut fields = out.split(|&b| b == 0);
        while let Some(meta) = fields.next() {
            let Some(path) = fields.next() else { break };
            if meta.is_empty() {
                continue;
            }
            // `:OLDMODE NEWMODE OLDID NEWID STATUS`
            let new_mode = meta.split(|&b| b == b' ').nth(1).unwrap_or(b"");
            let side = match new_mode {
                b"000000" => Side::Absent,
                b"100644" | b"100755" | b"120000" => Side::Blob,
                _ => Side::Other,
            };
            changes.insert(path.to_vec(), side);
        }
        Ok(changes)
    }

    /// Hold the shadow repository's lock. A git lock file left by a process
    /// that died mid-command is stale once the lock is held: every user of
    /// the shadow takes the lock first.
    fn lock(&self) -> Result<Flock<File>, CheckpointError> {
        let path = self.git_dir.join("tiller.lock");
        let file = File::create(&path).map_err(|source| self.io(&path, source))?;
        let locked = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| self.io(&path, std::io::Error::from(errno)))?;
        for stale in ["index.lock", "restore-index.lock"] {
            let _ = std::fs::remove_file(self.git_dir.join(stale));
        }
        Ok(locked)
    }

    fn run(&self, args: &[&str], input: Option<&[u8]>) -> Result<String, CheckpointError> {
        self.run_env(args, input, &[])
    }

    fn run_env(
        &self,
        args: &[&str],
        input: Option<&[u8]>,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Result<String, CheckpointError> {
        let out = self.run_bytes(args, input, env)?;
        String::from_utf8(out).map_err(|e| CheckpointError::Git {
            command: args.first().copied().unwrap_or("").to_string(),
            message: format!("output is not UTF-8: {e}"),
        })
    }

    fn run_bytes(
        &self,
        args: &[&str],
        input: Option<&[u8]>,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Result<Vec<u8>, CheckpointError> {
        let mut command = Command::new("git");
        // Nothing of tiller's environment (the provider's key among it) but
        // where to find programs; no config but the shadow's own.
        command.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .envs(env.iter().copied());
        if args.first() != Some(&"init") {
            command
                .arg("--git-dir")
                .arg(&self.git_dir)
                .arg("--work-tree")
                .arg(&self.root);
        }
        command
            .args([
                "-c",
                "core.bare=false",
                "-c",
                "core.autocrlf=false",
                "-c",
                "core.safecrlf=false",
                "-c",
                "core.quotepath=false",
                "-c",
                "core.fsmonitor=false",
                "-c",
                "core.hooksPath=/dev/null",
                "-c",
                "core.untrackedCache=true",
                "-c",
                "core.looseCompression=1",
                "-c",
                "gc.auto=0",
                "-c",
                "advice.addEmbeddedRepo=false",
            ])
            .args(args)
            .current_dir(&self.root)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CheckpointError::NoGit(e)
            } else {
                self.io(Path::new("git"), e)
            }
        })?;
        // Bookkeeping: the engine and the tools go first on a busy machine.
        // Set from here, after the spawn: a `pre_exec` hook would make the
        // spawn a full `fork` of tiller, which stalls its other threads.
        // SAFETY: setpriority(2) on our own child's pid: one system call, no
        // memory of ours involved; its result does not matter.
        #[allow(unsafe_code)]
        unsafe {
            nix::libc::setpriority(nix::libc::PRIO_PROCESS, child.id(), SNAPSHOT_NICENESS);
        }
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(input)
                .map_err(|source| self.io(Path::new("git"), source))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|source| self.io(Path::new("git"), source))?;
        if !out.status.success() {
            return Err(CheckpointError::Git {
                command: args.first().copied().unwrap_or("").to_string(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }

    fn io(&self, path: &Path, source: std::io::Error) -> CheckpointError {
        CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What the second tree of a diff has at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Nothing: the path is to be removed.
    Absent,
    /// A file or a symbolic link.
    Blob,
    /// A nested repository (a gitlink): not restored.
    Other,
}

/// The shadow repository's folder name for `root`: its path's hash, and its
/// last component for people reading the folder.
fn folder_key(root: &Path) -> String {
    // FNV-1a: stable across runs and versions, unlike `DefaultHasher`'s seed.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in root.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let name: String = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("{name}-{hash:016x}")
}

/// A path as git has it, for a person (lossy where it is not UTF-8).
fn shown(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Remove the folders above `file` that are now empty, up to `root`.
fn remove_empty_parents(root: &Path, file: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }

    fn read(root: &Path, path: &str) -> Option<String> {
        std::fs::read_to_string(root.join(path)).ok()
    }

    #[test]
    fn a_restore_puts_back_what_changed_and_leaves_what_someone_else_changed() {
        let home = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        let root = ws.path();
        write(root, "kept.txt", "kept\n");
        write(root, "edited.txt", "old\n");
        write(root, "deleted.txt", "gone soon\n");
        write(root, "theirs.txt", "old\n");
        let workspace = Workspace::open(home.path(), root).unwrap();
        let before = workspace.snapshot().unwrap();
        // The turn.
        write(root, "edited.txt", "new\n");
        std::fs::remove_file(root.join("deleted.txt")).unwrap();
        write(root, "added/deep/file.txt", "new file\n");
        write(root, "theirs.txt", "turn's\n");
        let after = workspace.snapshot().unwrap();
        // Someone else, after the turn.
        write(root, "theirs.txt", "mine, by hand\n");
        let restored = workspace.restore(&after, &before).unwrap();
        assert_eq!(read(root, "edited.txt").as_deref(), Some("old\n"));
        assert_eq!(read(root, "deleted.txt").as_deref(), Some("gone soon\n"));
        assert_eq!(read(root, "added/deep/file.txt"), None);
        assert!(!root.join("added").exists(), "empty folders it made go too");
        assert_eq!(read(root, "theirs.txt").as_deref(), Some("mine, by hand\n"));
        assert_eq!(read(root, "kept.txt").as_deref(), Some("kept\n"));
        assert_eq!(restored.conflicts, vec!["theirs.txt".to_string()]);
        assert_eq!(restored.removed, vec!["added/deep/file.txt".to_string()]);
        // And back again: the restore is itself undoable.
        let again = workspace.restore(&before, &restored.checkpoint).unwrap();
        assert_eq!(read(root, "edited.txt").as_deref(), Some("new\n"));
        assert_eq!(read(root, "deleted.txt"), None);
        assert_eq!(
            read(root, "added/deep/file.txt").as_deref(),
            Some("new file\n")
        );
        assert!(again.conflicts.is_empty(), "{again:?}");
    }

    #[test]
    fn a_file_whose_name_is_not_utf8_is_restored_too() {
        let home = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        let root = ws.path();
        let odd = root.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
        std::fs::write(&odd, "old\n").unwrap();
        let workspace = Workspace::open(home.path(), root).unwrap();
        let before = workspace.snapshot().unwrap();
        std::fs::write(&odd, "new\n").unwrap();
        let after = workspace.snapshot().unwrap();
        let restored = workspace.restore(&after, &before).unwrap();
        assert_eq!(std::fs::read(&odd).unwrap(), b"old\n");
        assert_eq!(restored.restored, vec!["caf\u{fffd}.txt".to_string()]);
    }

    #[test]
    fn ignored_files_and_the_users_git_are_left_out() {
        let home = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        let root = ws.path();
        write(root, ".gitignore", "build/\n");
        write(root, "build/out.bin", "big\n");
        write(root, ".git/HEAD", "ref: refs/heads/main\n");
        write(root, "src.txt", "a\n");
        let workspace = Workspace::open(home.path(), root).unwrap();
        let tree = workspace.snapshot().unwrap();
        let listed = workspace
            .run(&["ls-tree", "-r", "--name-only", &tree], None)
            .unwrap();
        assert_eq!(listed, ".gitignore\nsrc.txt\n");
        assert_eq!(
            read(root, ".git/HEAD").as_deref(),
            Some("ref: refs/heads/main\n")
        );
    }

    #[test]
    fn the_file_systems_root_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let err = Workspace::open(home.path(), Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("file system's root"), "{err}");
    }

    #[test]
    fn the_root_is_the_repository_the_folder_is_in() {
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(ws.path().join(".git")).unwrap();
        std::fs::create_dir_all(ws.path().join("a/b")).unwrap();
        assert_eq!(workspace_root(&ws.path().join("a/b")), ws.path());
    }
}
