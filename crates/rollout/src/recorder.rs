//! The rollout writer: a thread that owns the file.
//!
//! The file only ever holds whole lines. Lines are serialized into a pending
//! buffer and handed to the OS in batches; when a write fails (a full disk, a
//! quota, an I/O error) the file is cut back to its last whole line and the
//! lines stay pending, to be written when the disk takes them again, so a
//! failure loses nothing and never leaves a torn line. The failure is reported
//! to whoever waits for durability: [`RolloutRecorder::write`],
//! [`RolloutRecorder::flush`] and [`RolloutRecorder::commit`] return it.
//!
//! [`RolloutRecorder::commit`] is the transactional form the lifecycle uses
//! where a promise depends on the lines (a turn's start, a turn's end, a saved
//! queue): either they are written (and fsynced if asked) together with
//! everything pending before them, or they are dropped and the error returned,
//! so the caller can report what really happened instead.
//!
//! An fsync that fails may have lost pages the kernel already had: the bytes
//! since the last good fsync are kept in memory until the next good one, and on
//! such a failure the file is cut back to that point and they are written again.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use nix::fcntl::Flock;
use tiller_protocol::{RolloutItem, RolloutLine, SessionMeta};
use tokio::sync::oneshot;

use crate::file::{LockWait, LockedFile, OpenError, lock};
use crate::store;
use crate::timestamp::UtcTime;

/// Pending bytes past this are handed to the OS without waiting for a
/// request, as a `BufWriter` would.
const WRITE_THRESHOLD: usize = 64 * 1024;

type Reply = oneshot::Sender<io::Result<()>>;

enum Command {
    Line(Box<RolloutItem>),
    /// Write and fsync.
    Flush(Reply),
    /// Write, no fsync.
    Write(Reply),
    /// Write and fsync everything, close the file (releasing its lock) and stop.
    Close(Reply),
    /// Write these lines after everything pending, all or none.
    Commit {
        items: Vec<RolloutItem>,
        sync: bool,
        reply: Reply,
    },
}

/// Appends lines to one session's rollout file. Cheap to clone; the file is
/// closed (and its lock released) when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct RolloutRecorder {
    tx: mpsc::Sender<Command>,
    path: PathBuf,
}

impl RolloutRecorder {
    /// Create a new rollout under `tiller_home`, lock it, and write its
    /// `session_meta` line.
    pub fn create(tiller_home: &Path, meta: SessionMeta) -> io::Result<RolloutRecorder> {
        let path = store::new_rollout_path(tiller_home, &meta.id, &UtcTime::now());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        let file = match lock(file, LockWait::No) {
            Ok(file) => file.into_file(),
            Err(OpenError::Io(e)) => return Err(e),
            Err(OpenError::InUse { .. }) => {
                return Err(io::Error::other(format!(
                    "{} was locked the moment it was created",
                    path.display()
                )));
            }
        };
        // Written and synced before the session id is handed out, so an id a
        // client has always names a resumable file.
        let mut writer = Writer::new(file, 0, path);
        writer.append(&RolloutItem::SessionMeta(meta))?;
        writer.write_pending()?;
        writer.sync()?;
        RolloutRecorder::start(writer)
    }

    /// Continue the rollout `file` (locked by [`crate::open`]), first appending
    /// `closing` (the lines that close a turn cut off by a crash) and making
    /// them durable. If the file's last line was cut off (no final newline), a
    /// newline is appended first so new lines start clean; the bytes already
    /// there are never rewritten.
    pub fn resume(
        file: LockedFile,
        path: &Path,
        closing: Vec<RolloutItem>,
    ) -> io::Result<RolloutRecorder> {
        let mut file = file.into_file();
        let len = file.seek(SeekFrom::End(0))?;
        if len > 0 {
            file.seek(SeekFrom::End(-1))?;
            let mut last = [0u8; 1];
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        let len = file.seek(SeekFrom::End(0))?;
        let mut writer = Writer::new(file, len, path.to_path_buf());
        if !closing.is_empty() {
            for item in &closing {
                writer.append(item)?;
            }
            writer.write_pending()?;
            writer.sync()?;
        }
        RolloutRecorder::start(writer)
    }

    fn start(writer: Writer) -> io::Result<RolloutRecorder> {
        let (tx, rx) = mpsc::channel();
        let path = writer.path.clone();
        std::thread::Builder::new()
            .name("tiller-rollout".to_string())
            .spawn(move || {
                // The writer never spawns a process: `kill_tree` need not
                // look for children under it (there is one per session).
                let _childless = tiller_process::childless_thread();
                write_loop(writer, &rx);
            })?;
        Ok(RolloutRecorder { tx, path })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue a line. Never blocks on the disk.
    pub fn record(&self, item: RolloutItem) {
        // The writer thread lives as long as any sender.
        let _ = self.tx.send(Command::Line(Box::new(item)));
    }

    /// Wait until every queued line is written and the file is fsynced.
    pub async fn flush(&self) -> io::Result<()> {
        self.ask(Command::Flush).await
    }

    /// Wait until every queued line has been handed to the OS, without an
    /// fsync: from then on a crash of this process (a SIGKILL too) loses none
    /// of them, only a crash of the machine can.
    pub async fn write(&self) -> io::Result<()> {
        self.ask(Command::Write).await
    }

    /// Write `items` after every queued line, and fsync if `sync`. On an error
    /// `items` are dropped (never written, not even later) and the error is
    /// returned; lines queued before them stay queued.
    pub async fn commit(&self, items: Vec<RolloutItem>, sync: bool) -> io::Result<()> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Command::Commit { items, sync, reply })
            .map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }

    /// Write and fsync everything queued, then close the file, which releases
    /// its lock: another session may open it as soon as this returns. Lines
    /// recorded afterwards are dropped.
    pub async fn close(&self) -> io::Result<()> {
        self.ask(Command::Close).await
    }

    async fn ask(&self, command: fn(Reply) -> Command) -> io::Result<()> {
        let (reply, done) = oneshot::channel();
        self.tx.send(command(reply)).map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }
}

fn stopped() -> io::Error {
    io::Error::other("the rollout writer has stopped")
}

/// The file and what has not reached it yet.
struct Writer {
    file: Flock<File>,
    path: PathBuf,
    /// The file's length in whole lines handed to the OS.
    written: u64,
    /// The file's length at the last good fsync.
    synced: u64,
    /// Bytes handed to the OS since the last good fsync.
    unsynced: Vec<u8>,
    /// Serialized lines not handed to the OS yet.
    pending: Vec<u8>,
    /// The last write failed: the file may end in a torn line past `written`.
    torn: bool,
    /// A write failure was logged and nothing has succeeded since.
    logged: bool,
}

impl Writer {
    fn new(file: Flock<File>, len: u64, path: PathBuf) -> Writer {
        Writer {
            file,
            path,
            written: len,
            synced: len,
            unsynced: Vec::new(),
            pending: Vec::new(),
            torn: false,
            logged: false,
        }
    }

    /// Serialize `item` onto the pending lines.
    fn append(&mut self, item: &RolloutItem) -> io::Result<()> {
        let line = RolloutLine {
            timestamp: UtcTime::now().rfc3339(),
            item: item.clone(),
        };
        let text = serde_json::to_string(&line)?;
        // Keys must not reach the disk, whatever carried them here.
        self.pending
            .extend_from_slice(tiller_secrets::redact(&text).as_bytes());
        self.pending.push(b'\n');
        Ok(())
    }

    /// Hand the pending lines to the OS. On failure the file is cut back to
    /// its last whole line and the lines stay pending.
    fn write_pending(&mut self) -> io::Result<()> {
        if self.torn {
            self.file.set_len(self.written)?;
            self.torn = false;
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        match self.file.write_all(&self.pending) {
            Ok(()) => {
                self.written += self.pending.len() as u64;
                self.unsynced.append(&mut self.pending);
                self.logged = false;
                Ok(())
            }
            Err(e) => {
                self.torn = true;
                if self.file.set_len(self.written).is_ok() {
                    self.torn = false;
                }
                if !self.logged {
                    self.logged = true;
                    tracing::error!(path = %self.path.display(), "could not write the rollout: {e}");
                }
                Err(e)
            }
        }
    }

    /// fsync. On failure the kernel may have dropped what it had: cut the file
    /// back to the last good fsync and make those bytes pending again.
    fn sync(&mut self) -> io::Result<()> {
        match self.file.sync_data() {
            Ok(()) => {
                self.synced = self.written;
                self.unsynced.clear();
                Ok(())
            }
            Err(e) => {
                let mut again = std::mem::take(&mut self.unsynced);
                again.append(&mut self.pending);
                self.pending = again;
                self.written = self.synced;
                self.torn = true;
                if self.file.set_len(self.written).is_ok() {
                    self.torn = false;
                }
                Err(e)
            }
        }
    }

    fn commit(&mut self, items: &[RolloutItem], sync: bool) -> io::Result<()> {
        let mark = self.pending.len();
        for item in items {
            if let Err(e) = self.append(item) {
                self.pending.truncate(mark);
                return Err(e);
            }
        }
        let len = self.pending.len() - mark;
        let result = self
            .write_pending()
            .and_then(|()| if sync { self.sync() } else { Ok(()) });
        if result.is_err() {
            // The items were not written. Whether the write or the fsync
            // failed, they are the last `len` pending bytes now: drop them.
            let keep = self.pending.len().saturating_sub(len);
            self.pending.truncate(keep);
        }
        result
    }
}

fn write_loop(mut writer: Writer, rx: &mpsc::Receiver<Command>) {
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(command) = next {
            match command {
                Command::Close(reply) => {
                    let result = writer.write_pending().and_then(|()| writer.sync());
                    drop(writer);
                    let _ = reply.send(result);
                    return;
                }
                Command::Line(item) => {
                    if let Err(e) = writer.append(&item) {
                        tracing::error!("could not serialize a rollout line: {e}");
                    }
                    if writer.pending.len() >= WRITE_THRESHOLD {
                        // A failure stays pending and is reported to the
                        // next one who waits.
                        let _ = writer.write_pending();
                    }
                }
                Command::Flush(reply) => {
                    let result = writer.write_pending().and_then(|()| writer.sync());
                    let _ = reply.send(result);
                }
                Command::Write(reply) => {
                    let _ = reply.send(writer.write_pending());
                }
                Command::Commit { items, sync, reply } => {
                    let _ = reply.send(writer.commit(&items, sync));
                }
            }
            next = rx.try_recv().ok();
        }
        // Hand what is queued to the OS: a SIGKILL loses nothing the OS has.
        let _ = writer.write_pending();
    }
    let _ = writer.write_pending().and_then(|()| writer.sync());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer on `/dev/full`, where every write fails with ENOSPC.
    fn full_disk_writer() -> Writer {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open("/dev/full")
            .unwrap();
        let locked = lock(file, LockWait::No).unwrap().into_file();
        Writer::new(locked, 0, PathBuf::from("/dev/full"))
    }

    #[test]
    fn a_commit_on_a_full_disk_fails_and_drops_only_its_own_lines() {
        let mut writer = full_disk_writer();
        writer
            .append(&RolloutItem::Queue(Default::default()))
            .unwrap();
        let earlier = writer.pending.clone();
        let error = writer
            .commit(&[RolloutItem::Queue(Default::default())], true)
            .unwrap_err();
        assert_eq!(error.raw_os_error(), Some(nix::libc::ENOSPC), "{error}");
        assert_eq!(
            writer.pending, earlier,
            "the earlier line stays pending, the commit's is gone"
        );
    }

    #[test]
    fn lines_that_fail_to_write_stay_pending_for_the_next_try() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let file = std::fs::File::create(&path).unwrap();
        let mut writer = Writer::new(
            lock(file, LockWait::No).unwrap().into_file(),
            0,
            path.clone(),
        );
        writer
            .append(&RolloutItem::Queue(Default::default()))
            .unwrap();
        writer.write_pending().unwrap();
        writer.sync().unwrap();
        let first = std::fs::read(&path).unwrap();
        assert!(first.ends_with(b"\n") && writer.pending.is_empty());
        writer
            .commit(&[RolloutItem::Queue(Default::default())], true)
            .unwrap();
        let both = std::fs::read(&path).unwrap();
        assert!(both.starts_with(&first) && both.len() > first.len());
        assert_eq!(both.iter().filter(|&&b| b == b'\n').count(), 2);
    }
}
