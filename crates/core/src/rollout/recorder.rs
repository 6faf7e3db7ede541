//! The rollout writer: a thread that owns the file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tiller_protocol::{RolloutItem, RolloutLine, SessionMeta};
use tokio::sync::oneshot;

use super::store;
use super::timestamp::UtcTime;

enum Command {
    Line(RolloutItem),
    /// Write and fsync.
    Flush(oneshot::Sender<io::Result<()>>),
    /// Write, no fsync.
    Write(oneshot::Sender<io::Result<()>>),
}

/// Appends lines to one session's rollout file. Cheap to clone; the file is
/// closed when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct RolloutRecorder {
    tx: mpsc::Sender<Command>,
    path: PathBuf,
}

impl RolloutRecorder {
    /// Create a new rollout under `tiller_home` and write its `session_meta` line.
    pub fn create(tiller_home: &Path, meta: SessionMeta) -> io::Result<RolloutRecorder> {
        let path = store::new_rollout_path(tiller_home, &meta.id, &UtcTime::now());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        // Written and synced before the session id is handed out, so an id a
        // client has always names a resumable file.
        let mut first = Vec::new();
        write_line(&mut first, RolloutItem::SessionMeta(meta))?;
        file.write_all(&first)?;
        file.sync_data()?;
        RolloutRecorder::start(file, path)
    }

    /// Open an existing rollout to append to it. If the file's last line was cut
    /// off (no final newline), a newline is appended first so new lines start
    /// clean; the bytes already there are never rewritten.
    pub fn append(path: &Path) -> io::Result<RolloutRecorder> {
        let mut file = OpenOptions::new().read(true).append(true).open(path)?;
        let len = file.seek(SeekFrom::End(0))?;
        if len > 0 {
            file.seek(SeekFrom::End(-1))?;
            let mut last = [0u8; 1];
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        RolloutRecorder::start(file, path.to_path_buf())
    }

    fn start(file: File, path: PathBuf) -> io::Result<RolloutRecorder> {
        let (tx, rx) = mpsc::channel();
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("tiller-rollout".to_string())
            .spawn(move || {
                // The writer never spawns a process: `kill_tree` need not
                // look for children under it (there is one per session).
                let _childless = crate::process_tree::childless_thread();
                write_loop(file, &thread_path, &rx);
            })?;
        Ok(RolloutRecorder { tx, path })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue a line. Never blocks on the disk.
    pub fn record(&self, item: RolloutItem) {
        // The writer thread lives as long as any sender; a send can only fail
        // if it died, which it reports itself.
        let _ = self.tx.send(Command::Line(item));
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

    async fn ask(&self, command: fn(oneshot::Sender<io::Result<()>>) -> Command) -> io::Result<()> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(command(reply))
            .map_err(|_| io::Error::other("the rollout writer has stopped"))?;
        done.await
            .map_err(|_| io::Error::other("the rollout writer has stopped"))?
    }
}

fn write_loop(file: File, path: &Path, rx: &mpsc::Receiver<Command>) {
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        // Write everything queued, then hand it to the OS: a SIGKILL loses
        // nothing the OS already has; fsync is for power loss, on Flush.
        let mut next = Some(first);
        while let Some(command) = next {
            match command {
                Command::Line(item) => {
                    if let Err(e) = write_line(&mut out, item)
                        && !failed
                    {
                        failed = true;
                        tracing::error!(path = %path.display(), "could not write the rollout: {e}");
                    }
                }
                Command::Flush(reply) => {
                    let result = out.flush().and_then(|()| out.get_ref().sync_data());
                    let _ = reply.send(result);
                }
                Command::Write(reply) => {
                    let _ = reply.send(out.flush());
                }
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush()
            && !failed
        {
            failed = true;
            tracing::error!(path = %path.display(), "could not write the rollout: {e}");
        }
    }
    let _ = out.flush().and_then(|()| out.get_ref().sync_data());
}

fn write_line(out: &mut impl Write, item: RolloutItem) -> io::Result<()> {
    let line = RolloutLine {
        timestamp: UtcTime::now().rfc3339(),
        item,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}
