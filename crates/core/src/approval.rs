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
/// inside it asks unless `auto_inside` (`auto_approve_workspace_edits`) and
/// it is not in a `.git` folder. Under the other policies the sandbox
/// decides, and nothing asks here. Paths are judged by where they really lead
/// (symbolic links in the folders above them followed).
pub(crate) fn edit_approval(
    policy: ApprovalPolicy,
    auto_inside: bool,
    workspace: &Path,
    targets: &[&Path],
) -> Option<EditApproval> {
    // The other policies leave edits to the sandbox (see
    // `crate::sandbox::unwritable`).
    if policy != ApprovalPolicy::Untrusted {
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
        // `.git/config` can name programs that git runs (hooks, fsmonitor,
        // a pager): an edit there always asks.
        None if auto_inside && !targets.iter().any(|path| in_git_folder(path)) => None,
        None => Some(EditApproval {
            reason: "the approval policy is untrusted (auto_approve_workspace_edits = true lets edits inside the workspace go ahead)".to_string(),
            outside: None,
        }),
    }
}

/// Whether `path` is inside a `.git` folder.
fn in_git_folder(path: &Path) -> bool {
    path.components()
        .any(|part| part.as_os_str() == std::ffi::OsStr::new(".git"))
}

/// `path` with `.` and `..` taken out and its deepest existing folder's
/// symbolic links followed.
pub(crate) fn resolved(path: &Path) -> PathBuf {
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

/// Whether `command` must be approved by a person before it runs (in the
/// sandbox) under `policy`: under `untrusted`, unless it is known to be
/// read-only. The other policies let the sandbox decide.
pub(crate) fn needs_approval(policy: ApprovalPolicy, command: &[String]) -> bool {
    match policy {
        ApprovalPolicy::Never | ApprovalPolicy::OnFailure | ApprovalPolicy::OnRequest => false,
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
    match program.as_str() {
        // No option of these writes a file or runs another program.
        "ls" | "cat" | "head" | "tail" | "wc" | "pwd" | "echo" | "grep" | "stat" | "which"
        | "true" | "nl" => true,
        "file" => file_is_read_only(args),
        // `-o` writes the listing to a file, and `-R` writes a `00Tree.html`
        // into every folder below the depth limit; either may sit in a
        // cluster (`-ao out`). tree has no long option that writes, and
        // takes no abbreviation of a long one.
        "tree" => !args.iter().any(|a| has_short(a, "oR")),
        // `--pre` runs a program per file, `--hostname-bin` (ripgrep 14) runs
        // one for hyperlinks, `-z` runs decompressors (`gzip`, `xz`, ...),
        // also inside a cluster (`-iz`). ripgrep takes no abbreviation of a
        // long option today; a shortened name still asks, in case one does.
        "rg" => !args.iter().any(|a| {
            names_long(
                a,
                &["--pre", "--pre-glob", "--search-zip", "--hostname-bin"],
                &[],
            ) || has_short(a, "z")
        }),
        "find" => find_is_read_only(args),
        "git" => git_is_read_only(args),
        _ => false,
    }
}

/// The option named by `arg`: `--output=x` is `--output`.
fn option_name(arg: &str) -> &str {
    arg.split_once('=').map_or(arg, |(name, _)| name)
}

/// Whether `arg` is a long option naming one of `banned`, whole or shortened:
/// GNU `getopt_long` and git's parse-options take any unambiguous prefix of a
/// long option for the option (`file --comp` compiles), so every prefix of a
/// banned name counts as that name. `exact` are real options that happen to
/// be such a prefix (`git diff --text` of `--textconv`): both parsers take
/// an exact name over an abbreviation.
fn names_long(arg: &str, banned: &[&str], exact: &[&str]) -> bool {
    let name = option_name(arg);
    name.len() > 2
        && name.starts_with("--")
        && !exact.contains(&name)
        && banned.iter().any(|b| b.starts_with(name))
}

/// Whether `arg` is a cluster of short options (`-iz`) with any of `letters`
/// in it. A letter that is really the value of the one before it (`-gz`)
/// counts too: that only ever asks more.
fn has_short(arg: &str, letters: &str) -> bool {
    arg.strip_prefix('-')
        .is_some_and(|rest| !rest.starts_with('-') && rest.chars().any(|c| letters.contains(c)))
}

/// `file` with only options that read: `-C`/`--compile` writes a compiled
/// magic file, `-z`/`-Z` run decompressors (`gzip`, `lzip`, `lz4`, ...)
/// for the formats libmagic cannot open itself, `-p` writes the access
/// times back, and `-S` turns off the sandbox that would stop a program
/// running; none of them is listed. Options are read as `getopt_long`
/// reads them, clusters (`-bC`) letter by letter, and a long option only by
/// its whole name, so an abbreviation (`--comp`) asks.
fn file_is_read_only(args: &[String]) -> bool {
    const SHORT: &str = "bcdEhikLlNnrsv0";
    const SHORT_VALUE: &str = "efFmP";
    const LONG: &[&str] = &[
        "--apple",
        "--brief",
        "--checking-printout",
        "--debug",
        "--dereference",
        "--extension",
        "--help",
        "--keep-going",
        "--list",
        "--mime",
        "--mime-encoding",
        "--mime-type",
        "--no-buffer",
        "--no-dereference",
        "--no-pad",
        "--print0",
        "--raw",
        "--special-files",
        "--version",
    ];
    const LONG_VALUE: &[&str] = &[
        "--exclude",
        "--exclude-quiet",
        "--files-from",
        "--magic-file",
        "--parameter",
        "--separator",
    ];
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            // Only file names follow.
            return true;
        }
        if arg.starts_with("--") {
            let name = option_name(arg);
            if LONG_VALUE.contains(&name) {
                if !arg.contains('=') {
                    args.next();
                }
            } else if !LONG.contains(&arg.as_str()) {
                return false;
            }
        } else if let Some(cluster) = arg.strip_prefix('-') {
            for (at, letter) in cluster.char_indices() {
                if SHORT_VALUE.contains(letter) {
                    // The rest of the word, or else the next one, is its value.
                    if at + letter.len_utf8() == cluster.len() {
                        args.next();
                    }
                    break;
                }
                if !SHORT.contains(letter) {
                    return false;
                }
            }
        }
    }
    true
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
/// could set a pager or an editor to run, `-C`/`--git-dir`/`--exec-path`
/// point git elsewhere) and none of the flags that write or run a program.
///
/// What git runs because of its configuration (`core.fsmonitor` on
/// `status`, `diff.external` on `diff`, the `textconv` drivers a
/// `.gitattributes` names on a patch from `diff`, `log -p` or `show
/// <commit>`, `core.pager` on a terminal) is trusted as the user's own
/// setup: a repository does not bring its `.git/config` with it when cloned.
/// Flags that ask for such a program beyond what the configuration already
/// does are refused.
fn git_is_read_only(args: &[String]) -> bool {
    let Some((sub, rest)) = args.split_first() else {
        return false;
    };
    match sub.as_str() {
        // They have no option that writes; `--output` (and its
        // abbreviations, which their parse-options takes) is refused should
        // one ever appear.
        "status" | "rev-parse" | "ls-files" => {
            !rest.iter().any(|a| names_long(a, &["--output"], &[]))
        }
        // `--output` writes the diff to a file; `--ext-diff` runs the
        // configured external diff; `--textconv` runs textconv drivers
        // where the default would not (`git show <blob>`);
        // `--show-signature` and the `%G` placeholders of `--format` and
        // `--pretty` run `gpg` (or `gpg.program`) to check signatures. git
        // 2.47 takes no abbreviation of these (its diff options are parsed
        // with unknown options kept, which turns abbreviations off), but a
        // shortened name asks all the same.
        "diff" | "log" | "show" => !rest.iter().any(|a| {
            names_long(
                a,
                &["--output", "--ext-diff", "--textconv", "--show-signature"],
                &["--text"],
            ) || a == "-o"
                || has_signature_placeholder(a)
        }),
        "branch" => git_branch_only_lists(rest),
        _ => false,
    }
}

/// Whether `arg` holds a `%G` placeholder of git's pretty formats (`%G?`,
/// `%GS`, ...), also with the `+`, `-` or space git lets follow the `%`
/// (`%+G?`).
fn has_signature_placeholder(arg: &str) -> bool {
    arg.match_indices('%').any(|(at, _)| {
        let rest = &arg[at + 1..];
        rest.strip_prefix(['+', '-', ' '])
            .unwrap_or(rest)
            .starts_with('G')
    })
}

/// `git branch` in a form that only lists: every flag a listing flag, and no
/// name (which would create a branch) unless `--list` makes it a pattern.
/// A `signature` field in `--format` or `--sort` runs `gpg` to check each
/// branch's signature, so any word naming one asks.
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
    if args
        .iter()
        .any(|a| a.to_ascii_lowercase().contains("signature"))
    {
        return false;
    }
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
/// uses anything a word list cannot express: separators and pipes (`;`, `&`,
/// `|`, a new line), redirections and here-documents (`>`, `<`), substitutions
/// (`$`, `` ` ``, `(`), globs and other expansions (`*`, `?`, `[`, `{`, `~`,
/// `!`, zsh's `^`), comments and escapes. Words are split only where the shell
/// splits them, on spaces and tabs; any other blank or control character
/// outside quotes (a form feed, a no-break space) would make the list differ
/// from what the shell runs, so it gives `None` too.
fn plain_words(script: &str) -> Option<Vec<String>> {
    const SPECIAL: &[char] = &[
        ';', '|', '&', '>', '<', '`', '$', '(', ')', '{', '}', '\\', '\n', '*', '?', '[', '~', '!',
        '#', '^',
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
            None if c == ' ' || c == '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            None if SPECIAL.contains(&c) || c.is_whitespace() || c.is_control() => return None,
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

    /// Asserts that every command in `commands` asks under `untrusted`.
    fn all_ask(commands: &[Vec<String>]) {
        for command in commands {
            assert!(
                needs_approval(ApprovalPolicy::Untrusted, command),
                "{command:?} should ask"
            );
        }
    }

    /// Asserts that no command in `commands` asks under `untrusted`.
    fn none_ask(commands: &[Vec<String>]) {
        for command in commands {
            assert!(
                !needs_approval(ApprovalPolicy::Untrusted, command),
                "{command:?} should not ask"
            );
        }
    }

    #[test]
    fn an_abbreviated_long_option_counts_as_the_option_it_shortens() {
        // `file --comp -m magic` and `file --co ...` write `magic.mgc`
        // (file 5.44); git 2.47 and ripgrep 13 refuse these shortenings
        // today, but they ask all the same.
        all_ask(&[
            argv(&["file", "--comp", "-m", "magic"]),
            argv(&["file", "--co", "-m", "magic"]),
            argv(&["file", "--compile=x", "-m", "magic"]),
            argv(&["git", "log", "--outp=/tmp/x", "-1"]),
            argv(&["git", "diff", "--out", "x"]),
            argv(&["git", "show", "--ext"]),
            argv(&["git", "diff", "--textc"]),
            argv(&["git", "log", "--show-sig"]),
            argv(&["git", "status", "--outp=x"]),
            argv(&["rg", "--pr", "sh", "x"]),
            argv(&["rg", "--pre=sh", "x"]),
            argv(&["rg", "--search-z", "x"]),
            argv(&["bash", "-lc", "file --comp -m magic"]),
        ]);
        // A real option that is a prefix of a refused one is itself.
        none_ask(&[
            argv(&["git", "diff", "--text"]),
            argv(&["git", "log", "--output-indicator-new=+", "-p"]),
            argv(&["rg", "--pretty", "x"]),
            argv(&["rg", "--no-pre", "x"]),
        ]);
    }

    #[test]
    fn a_cluster_of_short_options_is_read_letter_by_letter() {
        all_ask(&[
            // `file -bC -m magic` and `file -Cm magic` write `magic.mgc`.
            argv(&["file", "-bC", "-m", "magic"]),
            argv(&["file", "-Cm", "magic"]),
            // `rg -iz` runs `gzip -d -c` on a `.gz` file.
            argv(&["rg", "-iz", "x"]),
            // `tree -ao out` writes `out`.
            argv(&["tree", "-ao", "out.txt"]),
            argv(&["tree", "-aR", "-L", "1"]),
        ]);
        none_ask(&[
            argv(&["file", "-bi", "x"]),
            // `-m` takes the next word as its value, whatever it looks like.
            argv(&["file", "-m", "-C", "x"]),
            argv(&["file", "-bm", "magic", "x"]),
            argv(&["file", "--mime-type", "-L", "--", "-C"]),
            argv(&["file", "--separator", ":", "--files-from=list", "-F", "|"]),
            argv(&["rg", "-in", "x"]),
            argv(&["tree", "-a", "-L", "2", "--dirsfirst"]),
        ]);
    }

    #[test]
    fn a_flag_that_writes_or_runs_a_program_asks() {
        all_ask(&[
            // `file -z` runs `gzip`, `lzip`, `lz4`, `uncompress` from PATH.
            argv(&["file", "-z", "x.lz"]),
            argv(&["file", "-Z", "x.lz"]),
            argv(&["file", "--uncompress", "x.lz"]),
            argv(&["file", "-p", "x"]),
            argv(&["file", "-S", "x"]),
            // `tree -R -L 1` writes `00Tree.html` into every deeper folder.
            argv(&["tree", "-R", "-L", "1"]),
            argv(&["rg", "--hostname-bin", "sh", "x"]),
            argv(&["rg", "--search-zip", "x"]),
            // A textconv driver runs for `git show <blob>` only with it.
            argv(&["git", "show", "--textconv", "HEAD:f"]),
            argv(&["git", "log", "--textconv", "-p"]),
            argv(&["git", "show", "--ext-diff"]),
            argv(&["git", "show", "--output=x"]),
            // These run `gpg --verify` (or `gpg.program`).
            argv(&["git", "log", "--show-signature", "-1"]),
            argv(&["git", "show", "--show-signature"]),
            argv(&["git", "log", "--format=%G?", "-1"]),
            argv(&["git", "log", "--pretty=format:%GS"]),
            argv(&["git", "show", "--no-patch", "--pretty=%+GK"]),
            argv(&["git", "log", "--format=%<(5)%G?"]),
            argv(&["git", "branch", "--format=%(signature)"]),
            argv(&["git", "branch", "--format", "%(signature:key)"]),
            argv(&["git", "branch", "--sort=signature"]),
            argv(&["git", "branch", "--sort=-signature:grade"]),
        ]);
        none_ask(&[
            argv(&["git", "show", "--no-textconv", "HEAD:f"]),
            argv(&["git", "diff", "--no-ext-diff", "--no-textconv"]),
            argv(&["git", "log", "--format=%h %an %s", "-3"]),
            argv(&["git", "log", "-g", "--format=%gd %gs"]),
            argv(&[
                "git",
                "branch",
                "--sort=-committerdate",
                "--format=%(refname)",
            ]),
        ]);
    }

    #[test]
    fn a_git_option_before_the_subcommand_asks() {
        all_ask(&[
            argv(&["git", "-c", "core.fsmonitor=rm -rf x", "status"]),
            argv(&["git", "-C", "/elsewhere", "status"]),
            argv(&["git", "--git-dir=/elsewhere/.git", "log"]),
            argv(&["git", "--git-dir", "/elsewhere/.git", "log"]),
            argv(&["git", "--work-tree=/elsewhere", "diff"]),
            argv(&["git", "--exec-path=/tmp/bin", "status"]),
            argv(&["git", "-p", "log"]),
            argv(&["git", "--no-pager", "log"]),
            argv(&["git"]),
        ]);
    }

    /// `bash -c $'ls\nrm x'` runs both commands: a new line is a separator,
    /// not a blank between words.
    #[test]
    fn a_new_line_in_a_script_asks() {
        all_ask(&[
            argv(&["bash", "-lc", "ls\nrm x"]),
            argv(&["sh", "-c", "git status\ngit push"]),
            argv(&["bash", "-lc", "echo 'a'\nrm x"]),
        ]);
    }

    #[test]
    fn find_asks_for_every_action_that_runs_or_writes() {
        all_ask(&[
            argv(&["find", ".", "-exec", "rm", "{}", ";"]),
            argv(&["find", ".", "-exec", "rm", "{}", "+"]),
            argv(&["find", ".", "-ok", "rm", "{}", ";"]),
            argv(&["find", ".", "-okdir", "rm", "{}", ";"]),
            argv(&["find", ".", "-delete"]),
            argv(&["find", ".", "-name", "x", "-fls", "out"]),
            argv(&["find", ".", "-files0-from", "list"]),
            argv(&["find", "-D", "exec", "."]),
        ]);
        none_ask(&[argv(&[
            "find", ".", "(", "-name", "a", "-o", "-name", "b", ")", "!", "-type", "d", "-printf",
            "%p\\n",
        ])]);
    }

    #[test]
    fn shell_syntax_beyond_one_plain_command_asks() {
        let scripts = [
            "cat a > b",
            "cat a >> b",
            "cat a >| b",
            "cat <> b",
            "cat a &> b",
            "cat a 2>b",
            "cat <<EOF\nx\nEOF",
            "cat <<< x",
            "cat < a",
            "echo $(rm x)",
            "echo \"$(rm x)\"",
            "echo ${HOME}",
            "echo $HOME",
            "echo `rm x`",
            "echo \"`rm x`\"",
            "ls; rm x",
            "ls && rm x",
            "ls || rm x",
            "ls | sh",
            "ls & rm x",
            "ls\nrm x",
            "cat <(rm x)",
            "(ls)",
            "{ ls; }",
            "cat *",
            "cat ?",
            "cat [ab]",
            "cat {a,b}",
            "cat ~/x",
            "cat ^x",
            "ls # x",
            "cat a\\ b",
            "cat 'unclosed",
            "cat \"unclosed",
            "FOO=bar ls",
            "exec ls",
            // The shell splits only on spaces and tabs: these are one word
            // to it, so a word list split here would not be what it runs.
            "cat\u{0c}x",
            "cat\u{a0}x",
            "cat\rx",
            "",
        ];
        for script in scripts {
            for shell in ["bash", "/bin/sh", "zsh"] {
                let command = argv(&[shell, "-lc", script]);
                assert!(
                    needs_approval(ApprovalPolicy::Untrusted, &command),
                    "{command:?} should ask"
                );
            }
        }
        none_ask(&[
            argv(&["bash", "-lc", "cat 'a > b' \"c; d\""]),
            argv(&["bash", "-c", "grep -n\tfoo 'src/*.rs'"]),
            argv(&["sh", "-c", "echo 'it''s' \"a 'b'\""]),
        ]);
    }

    #[test]
    fn never_policy_asks_for_nothing() {
        assert!(!needs_approval(
            ApprovalPolicy::Never,
            &argv(&["rm", "-rf", "x"])
        ));
    }
}
