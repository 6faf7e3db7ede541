//! Thread names (`thread/name/set`): front-end metadata, kept beside the
//! sessions in `$TILLER_HOME/thread_names.jsonl`, one `{id, name}` line per
//! rename (the last line of an id wins; an empty name clears it). Appended
//! and synced before the rename is answered, so it works the same for a
//! loaded, a saved and an archived thread and survives a kill.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// The longest name kept, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 1024;

#[derive(Serialize, Deserialize)]
struct Line {
    id: String,
    name: String,
}

/// The names of this home's threads.
#[derive(Debug)]
pub(crate) struct Names {
    path: PathBuf,
    /// Read from the file on first use.
    names: Mutex<Option<HashMap<String, String>>>,
}

impl Names {
    pub(crate) fn new(tiller_home: &Path) -> Names {
        Names {
            path: tiller_home.join("thread_names.jsonl"),
            names: Mutex::new(None),
        }
    }

    /// The name of thread `id`, if it has one.
    pub(crate) fn get(&self, id: &str) -> Option<String> {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        names
            .get_or_insert_with(|| read(&self.path))
            .get(id)
            .cloned()
    }

    /// Name thread `id` (`""` clears the name), durably.
    pub(crate) fn set(&self, id: &str, name: &str) -> std::io::Result<()> {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        let known = names.get_or_insert_with(|| read(&self.path));
        let mut line = serde_json::to_string(&Line {
            id: id.to_string(),
            name: name.to_string(),
        })?;
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(line.as_bytes())?;
        file.sync_data()?;
        if name.is_empty() {
            known.remove(id);
        } else {
            known.insert(id.to_string(), name.to_string());
        }
        Ok(())
    }
}

/// Every name in the file; lines that do not read are passed over.
fn read(path: &Path) -> HashMap<String, String> {
    let mut names = HashMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return names;
    };
    for line in text.lines() {
        match serde_json::from_str::<Line>(line) {
            Ok(Line { id, name }) if name.is_empty() => {
                names.remove(&id);
            }
            Ok(Line { id, name }) => {
                names.insert(id, name);
            }
            Err(e) => tracing::warn!("{}: a line that does not read: {e}", path.display()),
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_name_wins_an_empty_one_clears_and_they_survive_a_restart() {
        let home = tempfile::tempdir().unwrap();
        let names = Names::new(home.path());
        assert_eq!(names.get("a"), None);
        names.set("a", "first").unwrap();
        names.set("a", "second").unwrap();
        names.set("b", "bee").unwrap();
        names.set("b", "").unwrap();
        let again = Names::new(home.path());
        assert_eq!(again.get("a").as_deref(), Some("second"));
        assert_eq!(again.get("b"), None);
    }
}
