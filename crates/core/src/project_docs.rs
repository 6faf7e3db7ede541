//! Project instructions: the `AGENTS.md` files that apply to a folder, sent
//! to the model as the user-instructions message Codex sends, before the
//! conversation. In order: `$TILLER_HOME/AGENTS.md` (the person's own), then
//! one per folder from the repository's root (the nearest folder up with a
//! `.git`) down to the working folder; without a repository, the working
//! folder's alone. Regular files only (a link, a FIFO or a device is passed
//! over); all together at most `max_bytes`, the rest cut with a warning.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The file name looked for in each folder.
pub const FILE_NAME: &str = "AGENTS.md";

/// What was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectDocs {
    /// The files read, in the order they are sent.
    pub files: Vec<PathBuf>,
    /// The message sent to the model, if any file had text.
    pub message: Option<String>,
    /// What the person should know (a file cut at the size limit, one that
    /// could not be read).
    pub warnings: Vec<String>,
}

/// The `AGENTS.md` files for `cwd`, at most `max_bytes` of them.
pub fn load(tiller_home: &Path, cwd: &Path, max_bytes: usize) -> ProjectDocs {
    let mut folders = vec![tiller_home.to_path_buf()];
    folders.extend(repository_path(cwd));
    let mut docs = ProjectDocs::default();
    let mut parts = Vec::new();
    let mut left = max_bytes;
    for folder in folders {
        let path = folder.join(FILE_NAME);
        // Not followed: a link could point anywhere, and anything that is not
        // a regular file could block the read.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() || parts.iter().any(|(p, _)| p == &path) {
            continue;
        }
        if left == 0 {
            docs.warnings.push(format!(
                "{} is not sent: the project instructions already take project_doc_max_bytes ({max_bytes} bytes)",
                path.display()
            ));
            continue;
        }
        let mut bytes = Vec::new();
        let read = std::fs::File::open(&path).and_then(|file| {
            file.take(u64::try_from(left).unwrap_or(u64::MAX) + 1)
                .read_to_end(&mut bytes)
        });
        if let Err(e) = read {
            docs.warnings
                .push(format!("{}: could not be read: {e}", path.display()));
            continue;
        }
        if bytes.len() > left {
            bytes.truncate(left);
            docs.warnings.push(format!(
                "{} was cut at project_doc_max_bytes ({max_bytes} bytes in all)",
                path.display()
            ));
        }
        left -= bytes.len();
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        docs.files.push(path.clone());
        if !text.is_empty() {
            parts.push((path, text));
        }
    }
    if !parts.is_empty() {
        docs.message = Some(
            parts
                .iter()
                .map(|(path, text)| {
                    format!(
                        "# AGENTS.md instructions for {}\n\n<INSTRUCTIONS>\n{text}\n</INSTRUCTIONS>",
                        path.parent().unwrap_or(path).display()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n\n"),
        );
    }
    docs
}

/// The folders from the repository's root down to `cwd` (just `cwd` when it
/// is in no repository).
fn repository_path(cwd: &Path) -> Vec<PathBuf> {
    let mut up: Vec<PathBuf> = cwd.ancestors().map(Path::to_path_buf).collect();
    match up.iter().position(|folder| folder.join(".git").exists()) {
        Some(root) => {
            up.truncate(root + 1);
            up.reverse();
            up
        }
        None => vec![cwd.to_path_buf()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_then_root_down_to_the_folder_with_their_paths_and_a_cap() {
        let home = tempfile::tempdir().unwrap();
        let repo = tempfile::tempdir().unwrap();
        let sub = repo.path().join("a").join("b");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::create_dir(repo.path().join(".git")).unwrap();
        std::fs::write(home.path().join(FILE_NAME), "home rules").unwrap();
        std::fs::write(repo.path().join(FILE_NAME), "repo rules").unwrap();
        std::fs::write(sub.join(FILE_NAME), "sub rules").unwrap();
        let docs = load(home.path(), &sub, 1024);
        assert_eq!(
            docs.files,
            [
                home.path().join(FILE_NAME),
                repo.path().join(FILE_NAME),
                sub.join(FILE_NAME)
            ]
        );
        let message = docs.message.unwrap();
        let at = |text: &str| message.find(text).unwrap();
        assert!(at("home rules") < at("repo rules") && at("repo rules") < at("sub rules"));
        assert!(message.contains(&format!("instructions for {}", sub.display())));
        assert!(docs.warnings.is_empty());

        // A cap of 15 bytes: home's 10, then 5 of the repository's, the rest left out.
        let capped = load(home.path(), &sub, 15);
        let message = capped.message.unwrap();
        assert!(message.contains("<INSTRUCTIONS>\nrepo\n"), "{message}");
        assert!(!message.contains("repo rules"), "{message}");
        assert!(!message.contains("sub rules"));
        assert_eq!(capped.warnings.len(), 2, "{:?}", capped.warnings);

        // Outside a repository: the folder's own file only (and home's).
        let plain = tempfile::tempdir().unwrap();
        std::fs::write(plain.path().join(FILE_NAME), "plain").unwrap();
        let docs = load(home.path(), plain.path(), 1024);
        assert_eq!(docs.files.len(), 2);
    }
}
