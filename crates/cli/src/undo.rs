//! `tiller undo`: take a session's turns back, files and history.
//!
//! `tiller undo --last` takes back the last turn of the most recent session;
//! `tiller undo SESSION [--turn ID]` that turn and every later one of
//! SESSION. The files those turns changed are put back as they were before
//! the turn (from its checkpoint), and the conversation forgets the turns;
//! `--redo` takes the last undo back. A file someone changed after the turns
//! is left as it is and named. The session is opened as a resume opens it
//! (a session killed mid-turn is closed first), with no model and no key.

use std::io::Write;

use anyhow::Context;
use tiller_core::config::{ConfigOverrides, default_tiller_home};
use tiller_core::{Resume, SessionBuilder};
use tiller_protocol::{FilesReport, Op, Reply};

/// `tiller undo` arguments.
#[derive(Debug, clap::Args)]
pub struct UndoArgs {
    /// The session (an id or a prefix of one; `tiller sessions` lists them).
    #[arg(value_name = "SESSION", required_unless_present = "last")]
    session: Option<String>,
    /// The most recent session.
    #[arg(long, conflicts_with = "session")]
    last: bool,
    /// The first turn to take back (default: the last turn).
    #[arg(long, value_name = "ID", conflicts_with = "redo")]
    turn: Option<String>,
    /// Take the last undo back instead (its turns and files return).
    #[arg(long)]
    redo: bool,
    /// Take back the conversation only; leave the files as they are.
    #[arg(long)]
    keep_files: bool,
}

/// Run `tiller undo`; the exit code is 1 when a file was left as it is.
pub async fn run_undo(args: UndoArgs) -> anyhow::Result<i32> {
    let home = default_tiller_home()?;
    let resume = match args.session {
        Some(id) => Resume::Id(id),
        None => Resume::Last,
    };
    let opened = SessionBuilder::new(home)
        .resume(resume)
        .overrides(ConfigOverrides::default())
        .without_key()
        .spawn()
        .await?;
    let mut err = std::io::stderr().lock();
    for warning in &opened.warnings {
        let _ = writeln!(err, "warning: {warning}");
    }
    if let Some(cut_off) = &opened.interrupted_turn_id {
        let _ = writeln!(
            err,
            "the session's last turn ({cut_off}) was cut off when tiller stopped; it has been closed as interrupted"
        );
    }
    let session_id = opened
        .resumed
        .as_ref()
        .map(|r| r.meta.id.clone())
        .unwrap_or_default();
    let op = if args.redo {
        Op::Unrevert
    } else {
        let turns = opened
            .resumed
            .as_ref()
            .map(|r| r.turns.as_slice())
            .unwrap_or_default();
        let turn = match args.turn {
            Some(turn) => turn,
            None => turns
                .last()
                .map(|t| t.id.clone())
                .with_context(|| format!("session {session_id} has no turns to undo"))?,
        };
        Op::Revert {
            before_turn_id: turn,
            restore_files: !args.keep_files,
        }
    };
    let reply = opened.handle.submit(op).await;
    let _ = opened.handle.submit(Op::Shutdown).await;
    let reply = reply.map_err(|e| anyhow::anyhow!("{e}"))?;
    let Reply::Reverted {
        before_turn_id,
        files,
    } = reply
    else {
        anyhow::bail!("unexpected answer: {reply:?}");
    };
    let mut out = std::io::stdout().lock();
    if args.redo {
        writeln!(
            out,
            "redone: turn {before_turn_id} and the turns after it are back in session {session_id}"
        )?;
    } else {
        writeln!(
            out,
            "undone: turn {before_turn_id} and the turns after it are gone from session {session_id}"
        )?;
    }
    let Some(files) = files else {
        if !args.keep_files || args.redo {
            writeln!(out, "files: none to restore")?;
        }
        return Ok(0);
    };
    print_files(&mut out, &files)?;
    if !args.redo {
        writeln!(out, "to take this back: tiller undo {session_id} --redo")?;
    }
    Ok(i32::from(!files.conflicts.is_empty()))
}

fn print_files(out: &mut impl Write, files: &FilesReport) -> std::io::Result<()> {
    writeln!(
        out,
        "files in {}: {} restored, {} removed",
        files.root,
        files.restored.len(),
        files.removed.len()
    )?;
    for path in &files.restored {
        writeln!(out, "  restored {path}")?;
    }
    for path in &files.removed {
        writeln!(out, "  removed  {path}")?;
    }
    for path in &files.conflicts {
        writeln!(
            out,
            "  conflict {path}: changed since the turn by someone else; left as it is"
        )?;
    }
    Ok(())
}
