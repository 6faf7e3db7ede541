//! Archived sessions: `$TILLER_HOME/archived_sessions/`, the same tree as
//! `sessions/`. An archived session is not found, listed or resumed (the
//! store looks in `sessions/` only) until it is unarchived. Moving a file
//! between the two is one `rename`: it is in one place or the other, never
//! both or neither.

use std::io;
use std::path::{Path, PathBuf};

use crate::store::{files_under, session_id_of, sessions_dir};

/// `$TILLER_HOME/archived_sessions`.
pub fn archived_dir(tiller_home: &Path) -> PathBuf {
    tiller_home.join("archived_sessions")
}

/// Every archived rollout file.
pub fn archived_files(tiller_home: &Path) -> Vec<PathBuf> {
    files_under(&archived_dir(tiller_home))
}

/// The archived rollout of session `id` (the whole id), if there is one.
pub fn find_archived(tiller_home: &Path, id: &str) -> Option<PathBuf> {
    let id = id.trim().to_ascii_lowercase();
    archived_files(tiller_home)
        .into_iter()
        .find(|path| session_id_of(path) == Some(id.as_str()))
}

/// Move the session file `path` (under `sessions/`) to the archive; its new path.
pub fn archive(tiller_home: &Path, path: &Path) -> io::Result<PathBuf> {
    let from = sessions_dir(tiller_home);
    let to = archived_dir(tiller_home);
    move_between(path, &from, &to)
}

/// Move the archived file `path` back under `sessions/`; its new path.
pub fn unarchive(tiller_home: &Path, path: &Path) -> io::Result<PathBuf> {
    let from = archived_dir(tiller_home);
    let to = sessions_dir(tiller_home);
    move_between(path, &from, &to)
}

/// `path`, under `from`, to the same place under `to`, durably.
fn move_between(path: &Path, from: &Path, to: &Path) -> io::Result<PathBuf> {
    let relative = path.strip_prefix(from).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not under {}", path.display(), from.display()),
        )
    })?;
    let dest = to.join(relative);
    let folder = dest.parent().unwrap_or(to);
    std::fs::create_dir_all(folder)?;
    std::fs::rename(path, &dest)?;
    std::fs::File::open(folder)?.sync_all()?;
    if let Some(old) = path.parent() {
        std::fs::File::open(old)?.sync_all()?;
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SessionQuery, find_session, new_rollout_path, rollout_files};
    use crate::timestamp::UtcTime;

    #[test]
    fn an_archived_session_is_found_only_in_the_archive_until_it_comes_back() {
        let home = tempfile::tempdir().unwrap();
        let id = "01a1fdef-5193-7697-99a0-bcaffaa8bfe2";
        let path = new_rollout_path(home.path(), id, &UtcTime::now());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "x\n").unwrap();
        let archived = archive(home.path(), &path).unwrap();
        assert!(!path.exists());
        assert!(rollout_files(home.path()).is_empty());
        assert!(find_session(home.path(), &SessionQuery::Id(id.into())).is_err());
        assert_eq!(find_archived(home.path(), id), Some(archived.clone()));
        let back = unarchive(home.path(), &archived).unwrap();
        assert_eq!(back, path);
        assert_eq!(std::fs::read_to_string(&back).unwrap(), "x\n");
        assert_eq!(find_archived(home.path(), id), None);
    }
}
