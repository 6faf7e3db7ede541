//! A new session that starts with an old one's history: the old rollout's
//! lines up to a turn, under a new id. The queue is not carried over (a fork
//! starts with none), and the old file is only read.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::file::{open_regular, read_all};
use crate::store::new_rollout_path;
use crate::timestamp::UtcTime;

/// Where a fork ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForkEnd {
    /// Every turn.
    All,
    /// The turns before this one.
    Before(String),
}

/// Why a fork could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    /// The source could not be read, or the fork not written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The source's first line is not a session's.
    #[error("{0} does not start with a session_meta line")]
    NotARollout(PathBuf),
}

/// Write a fork of `source` for session `new_id` in `tiller_home`, ending as
/// `end` says; returns its path. Written to a temporary file beside its
/// final name, synced, then renamed: a fork is whole or not there.
pub fn fork(
    tiller_home: &Path,
    source: &Path,
    new_id: &str,
    end: &ForkEnd,
) -> Result<PathBuf, ForkError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ForkError::Io { path, source }
    };
    let file = open_regular(source, false).map_err(io(source))?;
    let bytes = read_all(&file).map_err(io(source))?;
    let now = UtcTime::now();
    let mut out = Vec::with_capacity(bytes.len());
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed: Option<Value> = serde_json::from_slice(line).ok();
        let kind = parsed
            .as_ref()
            .and_then(|v| v["type"].as_str())
            .map(str::to_owned);
        let kind = kind.as_deref();
        if n == 0 {
            let Some(mut meta) = parsed.filter(|_| kind == Some("session_meta")) else {
                return Err(ForkError::NotARollout(source.to_path_buf()));
            };
            meta["timestamp"] = Value::from(now.rfc3339());
            meta["payload"]["id"] = Value::from(new_id);
            meta["payload"]["created"] = Value::from(now.rfc3339());
            out.extend_from_slice(meta.to_string().as_bytes());
            out.push(b'\n');
            continue;
        }
        if let (ForkEnd::Before(turn), Some(value)) = (end, &parsed)
            && kind == Some("turn_context")
            && value["payload"]["turn_id"].as_str() == Some(turn.as_str())
        {
            break;
        }
        if kind == Some("queue") {
            continue;
        }
        // A line the reader would skip is carried as it is, and skipped again.
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    let dest = new_rollout_path(tiller_home, new_id, &now);
    let folder = dest.parent().unwrap_or(tiller_home);
    std::fs::create_dir_all(folder).map_err(io(folder))?;
    let temp = folder.join(format!(".fork-{new_id}.tmp"));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&out)?;
        file.sync_all()?;
        std::fs::rename(&temp, &dest)?;
        std::fs::File::open(folder)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(ForkError::Io {
            path: dest,
            source: e,
        });
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = concat!(
        r#"{"timestamp":"t","type":"session_meta","payload":{"id":"old","created":"c","cwd":"/w","model":"m","provider":"p","tiller_version":"0"}}"#,
        "\n",
        r#"{"timestamp":"t","type":"turn_context","payload":{"turn_id":"t1","cwd":"/w","model":"m","approval_policy":"never"}}"#,
        "\n",
        r#"{"timestamp":"t","type":"queue","payload":{"items":[]}}"#,
        "\n",
        r#"{"timestamp":"t","type":"event","payload":{"type":"turn_started","turn_id":"t1"}}"#,
        "\n",
        r#"{"timestamp":"t","type":"turn_context","payload":{"turn_id":"t2","cwd":"/w","model":"m","approval_policy":"never"}}"#,
        "\n",
        r#"{"timestamp":"t","type":"event","payload":{"type":"turn_started","turn_id":"t2"}}"#,
        "\n",
    );

    #[test]
    fn a_fork_has_a_new_id_the_turns_before_its_end_and_no_queue() {
        let home = tempfile::tempdir().unwrap();
        let source = home.path().join("source.jsonl");
        std::fs::write(&source, SOURCE).unwrap();
        let path = fork(home.path(), &source, "new", &ForkEnd::Before("t2".into())).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["payload"]["id"], "new");
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines.iter().all(|l| l["type"] != "queue"));
        assert!(!text.contains("t2"));
        let all = fork(home.path(), &source, "all", &ForkEnd::All).unwrap();
        assert_eq!(std::fs::read_to_string(all).unwrap().lines().count(), 5);
        // The source is untouched.
        assert_eq!(std::fs::read_to_string(&source).unwrap(), SOURCE);
        std::fs::write(&source, "not a rollout\n").unwrap();
        assert!(matches!(
            fork(home.path(), &source, "x", &ForkEnd::All),
            Err(ForkError::NotARollout(_))
        ));
    }
}
