//! Approval policy: which commands may run without asking.

use crate::config::ApprovalPolicy;

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

fn is_safe_argv(argv: &[String]) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return false;
    };
    let has = |flags: &[&str]| {
        args.iter().any(|a| {
            flags
                .iter()
                .any(|f| a == f || a.starts_with(&format!("{f}=")))
        })
    };
    match program.as_str() {
        "ls" | "cat" | "head" | "tail" | "wc" | "pwd" | "echo" | "grep" | "stat" | "file"
        | "which" | "tree" | "true" | "nl" => true,
        "rg" => !has(&["--pre", "--search-zip", "-z"]),
        "find" => !has(&[
            "-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprintf", "-fls",
        ]),
        "git" => {
            matches!(
                args.first().map(String::as_str),
                Some("status" | "diff" | "log" | "show" | "branch" | "rev-parse" | "ls-files")
            ) && !has(&["--output", "-o"])
        }
        _ => false,
    }
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
    fn never_policy_asks_for_nothing() {
        assert!(!needs_approval(
            ApprovalPolicy::Never,
            &argv(&["rm", "-rf", "x"])
        ));
    }
}
