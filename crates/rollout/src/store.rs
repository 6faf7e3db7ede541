//! Where session files live, and finding them again.
//!
//! `$TILLER_HOME/sessions/YYYY/MM/DD/rollout-YYYY-MM-DDThh-mm-ss-<session id>.jsonl`

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::reader::{LastTurn, load};
use crate::timestamp::UtcTime;

/// Length of a session id (a UUID in its hyphenated form).
const ID_LEN: usize = 36;

/// `$TILLER_HOME/sessions`.
pub fn sessions_dir(tiller_home: &Path) -> PathBuf {
    tiller_home.join("sessions")
}

/// The path of a new rollout for session `id` created at `now`.
pub fn new_rollout_path(tiller_home: &Path, id: &str, now: &UtcTime) -> PathBuf {
    sessions_dir(tiller_home)
        .join(format!("{:04}", now.year))
        .join(format!("{:02}", now.month))
        .join(format!("{:02}", now.day))
        .join(format!("rollout-{}-{id}.jsonl", now.file_stamp()))
}

/// The session id in a rollout's file name.
pub fn session_id_of(path: &Path) -> Option<&str> {
    let stem = path.file_stem()?.to_str()?;
    if !stem.starts_with("rollout-") || stem.len() < ID_LEN {
        return None;
    }
    stem.get(stem.len() - ID_LEN..)
}

/// Every rollout file under `tiller_home`, in no particular order: regular
/// files named like rollouts, in real folders. Symbolic links are not followed
/// (a link to a parent folder would loop) and anything that is not a regular
/// file (a FIFO, a socket, a device) is passed over, since reading it could
/// block forever.
pub fn rollout_files(tiller_home: &Path) -> Vec<PathBuf> {
    files_under(&sessions_dir(tiller_home))
}

/// The rollout files under `root` (see [`rollout_files`]).
pub(crate) fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // `file_type` does not follow symbolic links.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file()
                && path.extension().is_some_and(|e| e == "jsonl")
                && session_id_of(&path).is_some()
            {
                found.push(path);
            }
        }
    }
    found
}

/// Which session to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionQuery {
    /// A session id or an unambiguous prefix of one.
    Id(String),
    /// The most recently active session.
    Last,
}

/// Why a session could not be found.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// No session matches.
    #[error("no session matches '{query}'; run `tiller sessions` to list them")]
    Unknown {
        /// What was asked for.
        query: String,
    },
    /// More than one session matches the prefix.
    #[error("'{query}' matches {} sessions ({}); give more of the id", matches.len(), matches.join(", "))]
    Ambiguous {
        /// What was asked for.
        query: String,
        /// The ids it matches.
        matches: Vec<String>,
    },
    /// There are no sessions at all (for `--last`).
    #[error("there are no sessions under {}", dir.display())]
    NoSessions {
        /// Where tiller looked.
        dir: PathBuf,
    },
}

/// Find the rollout of the session `query` names.
pub fn find_session(tiller_home: &Path, query: &SessionQuery) -> Result<PathBuf, LookupError> {
    let files = rollout_files(tiller_home);
    match query {
        SessionQuery::Last => {
            // The most recently active session that can be read: a crash can
            // leave a newer file that is empty.
            let mut files: Vec<(SystemTime, PathBuf)> =
                files.into_iter().map(|p| (modified(&p), p)).collect();
            files.sort_by_key(|f| std::cmp::Reverse(f.0));
            files
                .into_iter()
                .map(|(_, path)| path)
                .find(|path| load(path).is_ok())
                .ok_or_else(|| LookupError::NoSessions {
                    dir: sessions_dir(tiller_home),
                })
        }
        SessionQuery::Id(prefix) => {
            let prefix = prefix.trim().to_ascii_lowercase();
            let mut matches: Vec<PathBuf> = files
                .into_iter()
                .filter(|path| {
                    session_id_of(path)
                        .is_some_and(|id| !prefix.is_empty() && id.starts_with(&prefix))
                })
                .collect();
            match matches.len() {
                0 => Err(LookupError::Unknown { query: prefix }),
                1 => Ok(matches.remove(0)),
                _ => {
                    let mut ids: Vec<String> = matches
                        .iter()
                        .filter_map(|p| session_id_of(p).map(str::to_string))
                        .collect();
                    ids.sort();
                    ids.dedup();
                    if ids.len() == 1 {
                        // One session id in several files cannot happen by tiller's hand;
                        // take the most recently written.
                        return matches
                            .into_iter()
                            .max_by_key(|p| modified(p))
                            .ok_or(LookupError::Unknown { query: prefix });
                    }
                    Err(LookupError::Ambiguous {
                        query: prefix,
                        matches: ids,
                    })
                }
            }
        }
    }
}

fn modified(path: &Path) -> SystemTime {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// One line of `tiller sessions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The session id.
    pub id: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// Its folder.
    pub cwd: String,
    /// The first prompt.
    pub first_prompt: Option<String>,
    /// How its last turn ended.
    pub last_turn: Option<LastTurn>,
    /// The file.
    pub path: PathBuf,
}

/// Every readable session, newest first. Unreadable files are returned as warnings.
pub fn list_sessions(tiller_home: &Path) -> (Vec<SessionSummary>, Vec<String>) {
    let mut sessions = Vec::new();
    let mut warnings = Vec::new();
    for path in rollout_files(tiller_home) {
        match load(&path) {
            Ok(rollout) => sessions.push(SessionSummary {
                id: rollout.meta.id,
                started: rollout.meta.created,
                cwd: rollout.meta.cwd,
                first_prompt: rollout.first_prompt,
                last_turn: rollout.last_turn,
                path,
            }),
            Err(e) => warnings.push(e.to_string()),
        }
    }
    sessions.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| b.id.cmp(&a.id)));
    (sessions, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "01a1fdef-5193-7697-99a0-bcaffaa8bfe2";
    const B: &str = "01a1fdef-9999-7697-99a0-bcaffaa8bfe2";

    fn touch(home: &Path, id: &str) -> PathBuf {
        let path = new_rollout_path(home, id, &UtcTime::now());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "").unwrap();
        path
    }

    #[test]
    fn ids_and_prefixes_find_their_session() {
        let home = tempfile::tempdir().unwrap();
        let a = touch(home.path(), A);
        touch(home.path(), B);
        assert_eq!(session_id_of(&a), Some(A));
        assert_eq!(
            find_session(home.path(), &SessionQuery::Id(A.into())).unwrap(),
            a
        );
        assert_eq!(
            find_session(home.path(), &SessionQuery::Id("01a1fdef-51".into())).unwrap(),
            a
        );
    }

    #[test]
    fn ambiguous_and_unknown_prefixes_say_what_to_do() {
        let home = tempfile::tempdir().unwrap();
        touch(home.path(), A);
        touch(home.path(), B);
        let ambiguous = find_session(home.path(), &SessionQuery::Id("01a1".into())).unwrap_err();
        assert!(
            matches!(ambiguous, LookupError::Ambiguous { ref matches, .. } if matches.len() == 2)
        );
        let unknown = find_session(home.path(), &SessionQuery::Id("ffff".into())).unwrap_err();
        assert!(unknown.to_string().contains("tiller sessions"), "{unknown}");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            find_session(empty.path(), &SessionQuery::Last),
            Err(LookupError::NoSessions { .. })
        ));
    }
}
