//! A turn's whole diff: every file its patches changed, from what the file
//! was before the turn's first patch touched it to what it is now, as one
//! unified diff (`turn/diff/updated` on the app-server). Edits made through
//! `shell` are not in it (the workspace checkpoint has them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::patch::Change;
use crate::tools::unified_diff;

/// The most of a turn's diff sent in one update; past it, the files that do
/// not fit are named instead.
const MAX_DIFF_BYTES: usize = 1024 * 1024;

/// A file's text before the turn and now (`None`: no file).
type BeforeAndNow = (Option<String>, Option<String>);

/// The files a turn's patches changed.
#[derive(Debug, Default)]
pub(crate) struct TurnDiff {
    /// By path: the text before the turn (`None`: no file) and now.
    files: Mutex<BTreeMap<PathBuf, BeforeAndNow>>,
}

impl TurnDiff {
    /// Take in `changes`, just written; the turn's diff as it now stands,
    /// paths shown relative to `cwd`.
    pub(crate) fn record(&self, changes: &[Change], cwd: &Path) -> String {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        for change in changes {
            let mut set = |path: &Path, old: Option<&String>, new: Option<&String>| {
                files
                    .entry(path.to_path_buf())
                    .or_insert_with(|| (old.cloned(), None))
                    .1 = new.cloned();
            };
            match &change.move_to {
                Some(to) => {
                    set(&change.path, change.old.as_ref(), None);
                    // The destination was new to the turn unless a patch of
                    // it made it (a move onto a file the turn had not
                    // touched shows as an added file).
                    let before = files.get(to).and_then(|(old, _)| old.clone());
                    files.insert(to.clone(), (before, change.new.clone()));
                }
                None => set(&change.path, change.old.as_ref(), change.new.as_ref()),
            }
        }
        let mut diff = String::new();
        let mut left_out = Vec::new();
        for (path, (old, new)) in files.iter() {
            if old == new {
                continue;
            }
            let shown = path.strip_prefix(cwd).unwrap_or(path).display().to_string();
            let file_diff = unified_diff(
                &shown,
                old.as_deref().unwrap_or(""),
                new.as_deref().unwrap_or(""),
            );
            if diff.len() + file_diff.len() > MAX_DIFF_BYTES {
                left_out.push(shown);
            } else {
                diff.push_str(&file_diff);
            }
        }
        if !left_out.is_empty() {
            diff.push_str(&format!(
                "# the diff is over {} KiB; not shown: {}\n",
                MAX_DIFF_BYTES / 1024,
                left_out.join(", ")
            ));
        }
        diff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, old: Option<&str>, new: Option<&str>) -> Change {
        Change {
            path: PathBuf::from("/w").join(path),
            old: old.map(str::to_string),
            new: new.map(str::to_string),
            move_to: None,
        }
    }

    #[test]
    fn two_patches_to_one_file_are_one_diff_from_before_the_first() {
        let diff = TurnDiff::default();
        let cwd = Path::new("/w");
        diff.record(&[change("a.txt", Some("one\n"), Some("two\n"))], cwd);
        let whole = diff.record(
            &[
                change("a.txt", Some("two\n"), Some("three\n")),
                change("b.txt", None, Some("new\n")),
            ],
            cwd,
        );
        assert_eq!(
            whole,
            "--- a/a.txt\n+++ b/a.txt\n@@ -1,1 +1,1 @@\n-one\n+three\n--- a/b.txt\n+++ b/b.txt\n@@ -0,0 +1,1 @@\n+new\n"
        );
        // Back as it was: no longer in the diff.
        let whole = diff.record(&[change("a.txt", Some("three\n"), Some("one\n"))], cwd);
        assert!(!whole.contains("a.txt"), "{whole}");
    }
}
