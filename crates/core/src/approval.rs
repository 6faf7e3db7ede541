//! Approval policy: which commands and edits may go ahead without asking.

use std::path::{Path, PathBuf};

use tiller_config::ApprovalPolicy;

/// Why an edit must be approved by a person first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EditApproval {
    /// The words the person is shown.
    pub(crate) reason: String,
    /// The first file written outside the workspace, if any.
    pub(crate) outside: Option<PathBuf>,
}

/// Whether an edit writing `targets` (absolute paths) must be approved under
/// `policy`: under `untrusted` an edit outside `workspace` always asks, one
/// inside it asks unless `auto_inside` (`auto_approve_workspace_edits`).
/// Under `never`, nothing asks. Paths are judged by where they really lead
/// (symbolic links in the folders above them followed).
pub(crate) fn edit_approval(
    policy: ApprovalPolicy,
    auto_inside: bool,
    workspace: &Path,
    targets: &[&Path],
) -> Option<EditApproval> {
    if policy == ApprovalPolicy::Never {
        return None;
    }
    let root = std::fs::canonicalize(workspace).unwrap_or_else(|_| workspace.to_path_buf());
    let outside = targets
        .iter()
        .map(|path| resolved(path))
        .find(|path| !path.starts_with(&root));
    match outside {
        Some(path) => Some(EditApproval {
            reason: format!(
                "the edit writes {}, outside the workspace {}",
                path.display(),
                root.display()
            ),
            outside: Some(path),
        }),
        None if auto_inside => None,
        None => Some(EditApproval {
            reason: "the approval policy is untrusted (auto_approve_workspace_edits = true lets edits inside the workspace go ahead)".to_string(),
            outside: None,
        }),
    }
}

/// `path` with `.` and `..` taken out and its deepest existing folder's
/// symbolic links followed.
fn resolved(path: &Path) -> PathBuf {
    let mut clean = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                clean.pop();
            }
            std::path::Component::CurDir => {}
            other => clean.push(other),
        }
    }
    let mut existing = clean.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
            return clean;
        };
        rest.push(name.to_os_string());
        existing = parent;
    }
    let mut out = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    out.extend(rest.iter().rev());
    out
}

/// Whether `command` must be approved by a person before it runs under `policy`.
pub(crate) fn needs_approval(policy: ApprovalPolicy, command: &[String]) -> bool {
    match policy {
        ApprovalPolicy::Never => false,
        ApprovalPolicy::Untrusted => !is_known_safe(command),
    }
}

/// A small read-only allowlist. `bash -lc "<script>"` counts when the script is one
/// plain command (no pipes, redirections, substitutions or separators) that is on
/// the list itself.
pub(crate) fn is_known_safe(command: &[String]) -> bool {
    if let [shell, flag, script] = command
        && matches!(
            shell.as_str(),
            "bash" | "/bin/bash" | "sh" | "/bin/sh" | "zsh"
        )
        && matches!(flag.as_str(), "-lc" | "-c")
    {
        return plain_words(script).is_some_and(|words| is_safe_argv(&words));
    }
    is_safe_argv(command)
}

/// Whether `argv` cannot write, delete or run anything else, for every
/// argument it has: a program on the list, with only the flags listed for it.
/// Anything not listed asks.
fn is_safe_argv(argv: &[String]) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return false;
    };
    // A flag, as given (`-o`, `--output=x` is looked at as `--output`).
    let flag = |arg: &str| {
        arg.split_once('=')
            .map_or(arg, |(name, _)| name)
            .to_string()
    };
    let none_of = |banned: &[&str]| {
        !args.iter().any(|a| {
            let name = flag(a);
            banned.iter().any(|b| name == *b)
        })
    };
    match program.as_str() {
        // No option of these writes a file or runs another program.
        "ls" | "cat" | "head" | "tail" | "wc" | "pwd" | "echo" | "grep" | "stat" | "which"
        | "true" | "nl" => true,
        // `-C`/`--compile` writes a compiled magic file.
        "file" => none_of(&["-C", "--compile"]),
        // `-o` writes the listing to a file.
        "tree" => none_of(&["-o"]) && !args.iter().any(|a| a.starts_with("-o")),
        // `--pre` runs a program per file; `-z` runs decompressors.
        "rg" => none_of(&["--pre", "--pre-glob", "-z", "--search-zip"]),
        "find" => find_is_read_only(args),
        "git" => git_is_read_only(args),
        _ => false,
    }
}

/// `find` with only tests and printing to standard output: no `-exec`,
/// `-delete`, `-fprint*`, `-fls`, nor anything not on the list.
fn find_is_read_only(args: &[String]) -> bool {
    const PRIMARIES: &[&str] = &[
        "-name",
        "-iname",
        "-path",
        "-ipath",
        "-wholename",
        "-iwholename",
        "-regex",
        "-iregex",
        "-lname",
        "-ilname",
        "-type",
        "-xtype",
        "-size",
        "-empty",
        "-perm",
        "-user",
        "-group",
        "-uid",
        "-gid",
        "-nouser",
        "-nogroup",
        "-links",
        "-inum",
        "-samefile",
        "-newer",
        "-anewer",
        "-cnewer",
        "-mtime",
        "-mmin",
        "-atime",
        "-amin",
        "-ctime",
        "-cmin",
        "-used",
        "-readable",
        "-writable",
        "-executable",
        "-maxdepth",
        "-mindepth",
        "-depth",
        "-prune",
        "-print",
        "-print0",
        "-printf",
        "-ls",
        "-true",
        "-false",
        "-quit",
        "-a",
        "-and",
        "-o",
        "-or",
        "-not",
        "-follow",
        "-xdev",
        "-mount",
        "-noleaf",
        "-regextype",
        "-daystart",
        "-ignore_readdir_race",
        "-noignore_readdir_race",
        "-fstype",
        "-H",
        "-L",
        "-P",
    ];
    args.iter()
        .all(|arg| !arg.starts_with('-') || PRIMARIES.contains(&arg.as_str()))
}

/// `git` read-only subcommands, with the subcommand first (a `-c` before it
/// could set a pager or an editor to run) and none of the flags that write.
fn git_is_read_only(args: &[String]) -> bool {
    let Some((sub, rest)) = args.split_first() else {
        return false;
    };
    let has = |banned: &[&str]| {
        rest.iter().any(|a| {
            let name = a.split_once('=').map_or(a.as_str(), |(name, _)| name);
            banned.contains(&name)
        })
    };
    match sub.as_str() {
        "status" | "rev-parse" | "ls-files" => !has(&["--output"]),
        // `--output` writes the diff to a file; `--ext-diff` runs a program.
        "diff" | "log" | "show" => !has(&["--output", "-o", "--ext-diff"]),
        "branch" => git_branch_only_lists(rest),
        _ => false,
    }
}

/// `git branch` in a form that only lists: every flag a listing flag, and no
/// name (which would create a branch) unless `--list` makes it a pattern.
fn git_branch_only_lists(args: &[String]) -> bool {
    const LISTING: &[&str] = &[
        "-a",
        "--all",
        "-r",
        "--remotes",
        "-l",
        "--list",
        "-v",
        "-vv",
        "--verbose",
        "-q",
        "--quiet",
        "--show-current",
        "--contains",
        "--no-contains",
        "--merged",
        "--no-merged",
        "--points-at",
        "--sort",
        "--format",
        "--color",
        "--no-color",
        "--column",
        "--no-column",
        "--abbrev",
        "--no-abbrev",
        "-i",
        "--ignore-case",
        "--omit-empty",
    ];
    // Flags whose next word is their value, not a branch name.
    const TAKES_VALUE: &[&str] = &[
        "--contains",
        "--no-contains",
        "--merged",
        "--no-merged",
        "--points-at",
        "--sort",
        "--format",
    ];
    let listing = args.iter().any(|a| a == "--list" || a == "-l");
    let mut value_next = false;
    for arg in args {
        if value_next {
            value_next = false;
            continue;
        }
        if arg.starts_with('-') {
            let name = arg.split_once('=').map_or(arg.as_str(), |(name, _)| name);
            if !LISTING.contains(&name) {
                return false;
            }
            value_next = TAKES_VALUE.contains(&name) && !arg.contains('=');
        } else if !listing {
            return false;
        }
    }
    true
}

/// The words of a shell script made of one plain command, or `None` if the script
/// uses anything a word list cannot express.
fn plain_words(script: &str) -> Option<Vec<String>> {
    const SPECIAL: &[char] = &[
        ';', '|', '&', '>', '<', '`', '$', '(', ')', '{', '}', '\\', '\n', '*', '?', '[', '~', '!',
        '#',
    ];
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in script.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == '$' || c == '`' || c == '\\' => return None,
            Some(_) => current.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            None if SPECIAL.contains(&c) => return None,
            None => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        words.push(current);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_outside_the_workspace_always_asks_and_one_inside_asks_unless_allowed() {
        let ws = tempfile::tempdir().unwrap();
        let root = ws.path();
        std::fs::create_dir(root.join("src")).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.join("escape")).unwrap();
        let inside = root.join("src/new.rs");
        let dotdot = root.join("src/../../x.txt");
        let linked = root.join("escape/y.txt");
        let ask = |auto, path: &Path| {
            edit_approval(ApprovalPolicy::Untrusted, auto, root, &[path]).map(|a| a.outside)
        };
        assert_eq!(ask(true, &inside), None);
        assert_eq!(ask(false, &inside), Some(None));
        assert!(matches!(ask(true, &dotdot), Some(Some(_))), "..");
        assert!(matches!(ask(true, &linked), Some(Some(_))), "a link out");
        assert_eq!(
            edit_approval(ApprovalPolicy::Never, false, root, &[linked.as_path()]),
            None
        );
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn read_only_commands_run_without_asking() {
        for command in [
            argv(&["ls", "-la"]),
            argv(&["bash", "-lc", "git status"]),
            argv(&["bash", "-lc", "cat 'a file.txt'"]),
            argv(&["rg", "foo", "src"]),
        ] {
            assert!(
                !needs_approval(ApprovalPolicy::Untrusted, &command),
                "{command:?}"
            );
        }
    }

    #[test]
    fn anything_else_asks_under_untrusted() {
        for command in [
            argv(&["rm", "-rf", "x"]),
            argv(&["bash", "-lc", "ls; rm -rf x"]),
            argv(&["bash", "-lc", "cat a > b"]),
            argv(&["bash", "-lc", "echo $(rm x)"]),
            argv(&["find", ".", "-delete"]),
            argv(&["git", "push"]),
            argv(&[]),
        ] {
            assert!(
                needs_approval(ApprovalPolicy::Untrusted, &command),
                "{command:?}"
            );
        }
    }

    #[test]
    fn only_argument_forms_that_cannot_write_are_allowed() {
        for command in [
            argv(&["find", ".", "-name", "*.rs", "-type", "f", "-print0"]),
            argv(&["git", "branch"]),
            argv(&["git", "branch", "-a", "-vv"]),
            argv(&["git", "branch", "--list", "feat*"]),
            argv(&["git", "branch", "--contains", "HEAD"]),
            argv(&["git", "log", "--oneline", "-5"]),
            argv(&["git", "diff", "--stat"]),
            argv(&["tree", "-L", "2"]),
            argv(&["bash", "-lc", "git branch -r"]),
        ] {
            assert!(
                !needs_approval(ApprovalPolicy::Untrusted, &command),
                "{command:?}"
            );
        }
        for command in [
            argv(&["find", ".", "-fprint0", "out"]),
            argv(&["find", ".", "-fprint", "out"]),
            argv(&["find", ".", "-fprintf", "out", "%p"]),
            argv(&["find", ".", "-fls", "out"]),
            argv(&["find", ".", "-execdir", "rm", "{}", ";"]),
            argv(&["find", ".", "-newerXY", "x"]),
            argv(&["git", "branch", "-D", "work"]),
            argv(&["git", "branch", "-d", "work"]),
            argv(&["git", "branch", "--delete", "work"]),
            argv(&["git", "branch", "-m", "a", "b"]),
            argv(&["git", "branch", "new-branch"]),
            argv(&["git", "branch", "-f", "main", "HEAD~3"]),
            argv(&["git", "branch", "--set-upstream-to=origin/x"]),
            argv(&["git", "diff", "--output=patch.txt"]),
            argv(&["git", "log", "--output", "log.txt"]),
            argv(&["git", "diff", "--ext-diff"]),
            argv(&["git", "-c", "core.pager=rm -rf x", "log"]),
            argv(&["git", "checkout", "."]),
            argv(&["tree", "-o", "out.txt"]),
            argv(&["tree", "-oout.txt"]),
            argv(&["file", "-C", "-m", "magic"]),
            argv(&["rg", "--pre", "sh", "x"]),
            argv(&["bash", "-lc", "git branch -D work"]),
            argv(&["bash", "-lc", "find . -fprint0 out"]),
        ] {
            assert!(
                needs_approval(ApprovalPolicy::Untrusted, &command),
                "{command:?}"
            );
        }
    }

    #[test]
    fn never_policy_asks_for_nothing() {
        assert!(!needs_approval(
            ApprovalPolicy::Never,
            &argv(&["rm", "-rf", "x"])
        ));
    }
}
