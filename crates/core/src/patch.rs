//! Codex's patch format, read and applied: the core of the `apply_patch`
//! tool (issue 14; not yet offered to the model).
//!
//! ```text
//! *** Begin Patch
//! *** Add File: path          lines follow, each starting with `+`
//! *** Delete File: path
//! *** Update File: path
//! *** Move to: new/path       (optional, right after Update)
//! @@ optional context line    then ` ` context, `-` old, `+` new lines
//! *** End of File             (optional: the chunk ends the file)
//! *** End Patch
//! ```
//!
//! [`plan`] reads every file a patch touches and computes every new text
//! before anything is written: a patch that does not apply changes nothing,
//! and says which file and which chunk did not match. Matching is lenient as
//! Codex's is: exact, then ignoring trailing whitespace, then ignoring
//! surrounding whitespace, then also reading typographic punctuation as ASCII.
//! [`write`] writes each file atomically (a temporary file in the same
//! folder, synced, renamed over the old one, its mode kept), so every file is
//! either old or new, never torn.

use std::io::Write;
use std::path::{Path, PathBuf};

/// One file's part of a patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp {
    /// A new file with these lines.
    Add {
        /// Where.
        path: PathBuf,
        /// Its text.
        contents: String,
    },
    /// A file removed.
    Delete {
        /// Which.
        path: PathBuf,
    },
    /// A file changed (and perhaps moved).
    Update {
        /// Which.
        path: PathBuf,
        /// Its new place, if it moves.
        move_to: Option<PathBuf>,
        /// The changes, in file order.
        chunks: Vec<Chunk>,
    },
}

/// One `@@` chunk of an update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    /// The text after `@@`, a line to find before the chunk.
    pub anchor: Option<String>,
    /// The lines the chunk replaces (context and `-` lines).
    pub old: Vec<String>,
    /// The lines it puts there (context and `+` lines).
    pub new: Vec<String>,
    /// The chunk ends at the end of the file.
    pub end_of_file: bool,
}

/// Why a patch could not be read or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The text is not a patch.
    #[error("invalid patch, line {line}: {message}")]
    Syntax {
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read, or is in a state the patch does not expect.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A chunk's old lines are not in the file.
    #[error("{path}: chunk {chunk} does not match the file:\n{expected}")]
    NoMatch {
        /// The file.
        path: PathBuf,
        /// Which chunk (1-based).
        chunk: usize,
        /// The lines it expected.
        expected: String,
    },
}

/// Read a patch.
pub fn parse(text: &str) -> Result<Vec<FileOp>, PatchError> {
    let lines: Vec<&str> = text.trim().lines().collect();
    let syntax = |line: usize, message: &str| PatchError::Syntax {
        line: line + 1,
        message: message.to_string(),
    };
    if lines.first().map(|l| l.trim()) != Some("*** Begin Patch") {
        return Err(syntax(0, "the first line must be `*** Begin Patch`"));
    }
    if lines.last().map(|l| l.trim()) != Some("*** End Patch") {
        return Err(syntax(
            lines.len().saturating_sub(1),
            "the last line must be `*** End Patch`",
        ));
    }
    let mut ops = Vec::new();
    let mut at = 1;
    let end = lines.len() - 1;
    while at < end {
        let line = lines[at];
        if let Some(path) = line.strip_prefix("*** Add File: ") {
            at += 1;
            let mut contents = String::new();
            while at < end && !lines[at].starts_with("*** ") {
                let Some(text) = lines[at].strip_prefix('+') else {
                    return Err(syntax(at, "a line of an added file must start with `+`"));
                };
                contents.push_str(text);
                contents.push('\n');
                at += 1;
            }
            ops.push(FileOp::Add {
                path: PathBuf::from(path.trim()),
                contents,
            });
        } else if let Some(path) = line.strip_prefix("*** Delete File: ") {
            ops.push(FileOp::Delete {
                path: PathBuf::from(path.trim()),
            });
            at += 1;
        } else if let Some(path) = line.strip_prefix("*** Update File: ") {
            at += 1;
            let move_to = match lines.get(at).and_then(|l| l.strip_prefix("*** Move to: ")) {
                Some(to) => {
                    at += 1;
                    Some(PathBuf::from(to.trim()))
                }
                None => None,
            };
            let mut chunks: Vec<Chunk> = Vec::new();
            while at < end && !is_file_header(lines[at]) {
                let line = lines[at];
                if let Some(anchor) = line.strip_prefix("@@") {
                    let anchor = anchor.trim();
                    chunks.push(Chunk {
                        anchor: (!anchor.is_empty()).then(|| anchor.to_string()),
                        ..Chunk::default()
                    });
                } else if line.trim() == "*** End of File" {
                    match chunks.last_mut() {
                        Some(chunk) => chunk.end_of_file = true,
                        None => return Err(syntax(at, "`*** End of File` before any chunk")),
                    }
                } else {
                    if chunks.is_empty() {
                        // Codex allows the first chunk without its `@@`.
                        chunks.push(Chunk::default());
                    }
                    let chunk = chunks.last_mut().unwrap_or_else(|| unreachable!());
                    match line.chars().next() {
                        Some('+') => chunk.new.push(line[1..].to_string()),
                        Some('-') => chunk.old.push(line[1..].to_string()),
                        Some(' ') => {
                            chunk.old.push(line[1..].to_string());
                            chunk.new.push(line[1..].to_string());
                        }
                        // An empty line is an empty context line.
                        None => {
                            chunk.old.push(String::new());
                            chunk.new.push(String::new());
                        }
                        Some(_) => {
                            return Err(syntax(
                                at,
                                "a chunk's line must start with ` `, `-` or `+`",
                            ));
                        }
                    }
                }
                at += 1;
            }
            if chunks.is_empty() && move_to.is_none() {
                return Err(syntax(at, "an update with no change"));
            }
            ops.push(FileOp::Update {
                path: PathBuf::from(path.trim()),
                move_to,
                chunks,
            });
        } else {
            return Err(syntax(
                at,
                "expected `*** Add File:`, `*** Delete File:` or `*** Update File:`",
            ));
        }
    }
    if ops.is_empty() {
        return Err(syntax(0, "the patch changes no file"));
    }
    Ok(ops)
}

fn is_file_header(line: &str) -> bool {
    line.starts_with("*** Add File: ")
        || line.starts_with("*** Delete File: ")
        || line.starts_with("*** Update File: ")
}

/// What a patch does to one file, computed before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The file (resolved against the folder).
    pub path: PathBuf,
    /// Its text before; `None` for an added file.
    pub old: Option<String>,
    /// Its text after; `None` for a deleted file.
    pub new: Option<String>,
    /// Where it moves, if it does.
    pub move_to: Option<PathBuf>,
}

/// Read every file `ops` touch (paths relative to `cwd`) and compute every
/// new text; nothing is written.
pub fn plan(ops: &[FileOp], cwd: &Path) -> Result<Vec<Change>, PatchError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| PatchError::File {
            path: path.to_path_buf(),
            message: format!("cannot be read: {e}"),
        })
    };
    let mut changes = Vec::with_capacity(ops.len());
    for op in ops {
        changes.push(match op {
            FileOp::Add { path, contents } => {
                let path = cwd.join(path);
                if path.exists() {
                    return Err(PatchError::File {
                        path,
                        message: "already exists; update it instead".to_string(),
                    });
                }
                Change {
                    path,
                    old: None,
                    new: Some(contents.clone()),
                    move_to: None,
                }
            }
            FileOp::Delete { path } => {
                let path = cwd.join(path);
                let old = read(&path)?;
                Change {
                    path,
                    old: Some(old),
                    new: None,
                    move_to: None,
                }
            }
            FileOp::Update {
                path,
                move_to,
                chunks,
            } => {
                let path = cwd.join(path);
                let old = read(&path)?;
                let new = apply_chunks(&path, &old, chunks)?;
                Change {
                    path,
                    old: Some(old),
                    new: Some(new),
                    move_to: move_to.as_ref().map(|to| cwd.join(to)),
                }
            }
        });
    }
    Ok(changes)
}

/// `old` with `chunks` applied, in order.
fn apply_chunks(path: &Path, old: &str, chunks: &[Chunk]) -> Result<String, PatchError> {
    let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
    let mut cursor = 0;
    for (n, chunk) in chunks.iter().enumerate() {
        let no_match = || PatchError::NoMatch {
            path: path.to_path_buf(),
            chunk: n + 1,
            expected: chunk
                .anchor
                .iter()
                .map(|a| format!("@@ {a}"))
                .chain(chunk.old.iter().map(|l| format!(" {l}")))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        if let Some(anchor) = &chunk.anchor {
            let found =
                find(&lines, std::slice::from_ref(anchor), cursor, false).ok_or_else(no_match)?;
            cursor = found + 1;
        }
        let at = if chunk.old.is_empty() {
            // Pure addition: at the end of the file, or after the anchor.
            if chunk.end_of_file || chunk.anchor.is_none() {
                lines.len()
            } else {
                cursor
            }
        } else {
            find(&lines, &chunk.old, cursor, chunk.end_of_file).ok_or_else(no_match)?
        };
        lines.splice(at..at + chunk.old.len(), chunk.new.iter().cloned());
        cursor = at + chunk.new.len();
    }
    let mut text = lines.join("\n");
    if !text.is_empty() || old.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Where `wanted` starts in `lines`, at or after `from` (at the very end if
/// `at_end`), trying ever more lenient comparisons.
fn find(lines: &[String], wanted: &[String], from: usize, at_end: bool) -> Option<usize> {
    let leniencies: [fn(&str) -> String; 4] = [
        |s| s.to_string(),
        |s| s.trim_end().to_string(),
        |s| s.trim().to_string(),
        |s| plain_punctuation(s.trim()),
    ];
    if wanted.len() > lines.len() {
        return None;
    }
    for same in leniencies {
        let wanted: Vec<String> = wanted.iter().map(|l| same(l)).collect();
        let fits = |start: usize| {
            lines[start..start + wanted.len()]
                .iter()
                .zip(&wanted)
                .all(|(line, want)| same(line) == *want)
        };
        let last = lines.len() - wanted.len();
        if at_end {
            if last >= from && fits(last) {
                return Some(last);
            }
            continue;
        }
        if let Some(start) = (from..=last).find(|&start| fits(start)) {
            return Some(start);
        }
    }
    None
}

/// Typographic punctuation as ASCII: quotes, dashes, spaces.
fn plain_punctuation(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => '\'',
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' => '"',
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            '\u{00A0}' | '\u{2002}'..='\u{200A}' | '\u{202F}' => ' ',
            other => other,
        })
        .collect()
}

/// Write `changes`: every new or changed file atomically (its mode kept),
/// then the moves' old names and the deleted files removed.
pub fn write(changes: &[Change]) -> std::io::Result<()> {
    for change in changes {
        if let Some(new) = &change.new {
            let target = change.move_to.as_ref().unwrap_or(&change.path);
            let mode = std::fs::metadata(&change.path)
                .ok()
                .map(|m| m.permissions());
            write_atomically(target, new.as_bytes(), mode)?;
        }
    }
    for change in changes {
        let moved = change.move_to.as_ref().is_some_and(|to| to != &change.path);
        if change.new.is_none() || moved {
            std::fs::remove_file(&change.path)?;
        }
    }
    Ok(())
}

fn write_atomically(
    path: &Path,
    bytes: &[u8],
    mode: Option<std::fs::Permissions>,
) -> std::io::Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = folder.join(format!(".{name}.tiller-{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        if let Some(mode) = mode {
            file.set_permissions(mode)?;
        }
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(folder)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const PATCH: &str = "*** Begin Patch
*** Add File: new.txt
+hello
+world
*** Update File: src/lib.rs
*** Move to: src/main.rs
@@ fn main() {
-    println!(\"old\");
+    println!(\"new\");
 }
*** Delete File: gone.txt
*** Update File: notes.md
@@
 first
-second   
+second, changed
*** End Patch";

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(
            dir.path().join("src/lib.rs"),
            "// a file\nfn main() {\n    println!(\"old\");\n}\n",
        )
        .unwrap();
        std::fs::set_permissions(
            dir.path().join("src/lib.rs"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        std::fs::write(dir.path().join("gone.txt"), "bye\n").unwrap();
        // Trailing spaces in the patch, typographic quotes here: still a match.
        std::fs::write(dir.path().join("notes.md"), "first\nsecond\nthird\n").unwrap();
        dir
    }

    #[test]
    fn a_multi_file_patch_adds_updates_moves_and_deletes() {
        let dir = tree();
        let ops = parse(PATCH).unwrap();
        assert_eq!(ops.len(), 4);
        let changes = plan(&ops, dir.path()).unwrap();
        write(&changes).unwrap();
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(read("new.txt"), "hello\nworld\n");
        assert_eq!(
            read("src/main.rs"),
            "// a file\nfn main() {\n    println!(\"new\");\n}\n"
        );
        assert!(!dir.path().join("src/lib.rs").exists());
        assert!(!dir.path().join("gone.txt").exists());
        assert_eq!(read("notes.md"), "first\nsecond, changed\nthird\n");
        let mode = std::fs::metadata(dir.path().join("src/main.rs"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o750);
    }

    #[test]
    fn a_chunk_that_does_not_match_names_the_file_and_chunk_and_changes_nothing() {
        let dir = tree();
        let patch = PATCH.replace("-second   ", "-no such line");
        let ops = parse(&patch).unwrap();
        let error = plan(&ops, dir.path()).err().unwrap();
        let text = error.to_string();
        assert!(text.contains("notes.md"), "{text}");
        assert!(text.contains("chunk 1"), "{text}");
        assert!(text.contains("no such line"), "{text}");
        // Nothing was written: the plan failed before any write.
        assert!(!dir.path().join("new.txt").exists());
        assert!(dir.path().join("gone.txt").exists());
    }

    #[test]
    fn typographic_punctuation_and_whitespace_are_matched_leniently() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("q.txt"),
            "say \u{201C}hi\u{201D} \u{2014} ok\n",
        )
        .unwrap();
        let patch =
            "*** Begin Patch\n*** Update File: q.txt\n-  say \"hi\" - ok\n+said\n*** End Patch";
        let changes = plan(&parse(patch).unwrap(), dir.path()).unwrap();
        assert_eq!(changes[0].new.as_deref(), Some("said\n"));
    }

    #[test]
    fn bad_patches_say_which_line() {
        for (patch, line) in [
            ("nothing", 1),
            ("*** Begin Patch\n*** Frobnicate: x\n*** End Patch", 2),
            (
                "*** Begin Patch\n*** Add File: x\nno plus\n*** End Patch",
                3,
            ),
            ("*** Begin Patch\n*** Add File: x\n+ok", 3),
        ] {
            match parse(patch) {
                Err(PatchError::Syntax { line: at, .. }) => assert_eq!(at, line, "{patch}"),
                other => panic!("{patch}: {other:?}"),
            }
        }
    }
}
