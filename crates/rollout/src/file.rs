//! Opening a rollout file: regular files only, never blocking, and one
//! session at a time.
//!
//! - The sessions folder is outside tiller's control: a FIFO or a device
//!   named like a rollout would block a plain `open` or `read` forever (and a
//!   server with it). Files are opened with `O_NONBLOCK` (a FIFO's open then
//!   returns at once) and refused unless `fstat` says regular file.
//! - A session appends to its rollout for as long as it is open; two sessions
//!   on one file would interleave their turns. Whoever opens a rollout to write
//!   holds an exclusive `flock` on it until the session ends. `flock` locks
//!   belong to the open file, so a second opener in the same process is refused
//!   as well, and the kernel drops the lock when the holder dies, however it
//!   dies (no stale lock files). The holder's pid is read from `/proc/locks`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// A rollout file with the exclusive lock of the session that has it open.
/// The lock is released when this is dropped (or the process dies).
#[derive(Debug)]
pub struct LockedFile {
    file: Flock<File>,
}

impl LockedFile {
    /// The file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The file, still locked, for the writer to own.
    pub(crate) fn into_file(self) -> Flock<File> {
        self.file
    }
}

/// Whether to wait for a rollout that another session holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockWait {
    /// Fail at once with the holder's pid.
    #[default]
    No,
    /// Wait until the holder closes it.
    Yes,
}

/// Why a rollout could not be opened for a session.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The file could not be opened, is not a regular file, or could not be read.
    Io(io::Error),
    /// Another session holds it.
    InUse {
        /// The process that holds it, if `/proc/locks` says.
        pid: Option<u32>,
    },
}

/// Open `path` for reading without blocking on a FIFO or device; refuse
/// anything but a regular file.
pub(crate) fn open_regular(path: &Path, write: bool) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .append(write)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a folder"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what}, not a session file"),
        ));
    }
    Ok(file)
}

/// Read all of a file opened by [`open_regular`].
pub(crate) fn read_all(mut file: &File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Open `path` to append to it, holding its exclusive lock.
pub(crate) fn open_locked(path: &Path, wait: LockWait) -> Result<LockedFile, OpenError> {
    let file = open_regular(path, true).map_err(OpenError::Io)?;
    lock(file, wait)
}

/// How long a lock whose holder has died may take to go away: the kernel
/// closes a dead process's files a moment after it is gone (a deferred
/// `fput`), and a session reopened right after a SIGKILL must not be refused
/// for that moment.
const DEAD_HOLDER_GRACE: Duration = Duration::from_millis(500);

/// Take the exclusive lock of a file just created (or opened).
pub(crate) fn lock(file: File, wait: LockWait) -> Result<LockedFile, OpenError> {
    let arg = match wait {
        LockWait::No => FlockArg::LockExclusiveNonblock,
        LockWait::Yes => FlockArg::LockExclusive,
    };
    let deadline = Instant::now() + DEAD_HOLDER_GRACE;
    let mut file = file;
    loop {
        match Flock::lock(file, arg) {
            Ok(locked) => return Ok(LockedFile { file: locked }),
            Err((back, Errno::EINTR)) => file = back,
            Err((back, Errno::EWOULDBLOCK)) => {
                let pid = holder(&back);
                let holder_alive =
                    pid.is_some_and(|pid| i32::try_from(pid).is_ok_and(tiller_process::is_alive));
                if holder_alive || Instant::now() >= deadline {
                    return Err(OpenError::InUse { pid });
                }
                // The holder is gone; its lock is about to be. Nothing to
                // wait on but the kernel's clean-up: a short poll.
                std::thread::sleep(Duration::from_millis(2));
                file = back;
            }
            Err((_, errno)) => return Err(OpenError::Io(io::Error::from(errno))),
        }
    }
}

/// The pid holding a `flock` on `file`, from `/proc/locks`.
fn holder(file: &File) -> Option<u32> {
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let id = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        // `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`; waiters have `->`.
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"FLOCK") {
            return None;
        }
        let at = fields.iter().position(|f| *f == id)?;
        fields.get(at.checked_sub(1)?)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_opener_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "x\n").unwrap();
        let first = open_locked(&path, LockWait::No).unwrap();
        match open_locked(&path, LockWait::No) {
            Err(OpenError::InUse { pid }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(first);
        assert!(open_locked(&path, LockWait::No).is_ok());
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo.jsonl");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let error = open_regular(&path, false).unwrap_err();
        assert!(error.to_string().contains("FIFO"), "{error}");
        assert!(open_locked(&path, LockWait::No).is_err());
    }
}
