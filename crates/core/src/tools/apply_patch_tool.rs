//! `apply_patch` as a [`Tool`]: Codex's patch format ([`crate::patch`]) as a
//! function tool whose one argument, `input`, is the patch. The whole patch
//! is planned first (a patch that does not apply changes nothing and says
//! which file and chunk); under `untrusted` the person is asked (as for a
//! command, `apply_patch` and the paths); then every file is written
//! atomically. It shows as one file change item with a unified diff per file.

use std::path::Path;

use tiller_protocol::{
    CallKind, FileChange, FileChangeKind, PatchStatus, ReviewDecision, TurnItem, TurnItemKind,
};

use super::{Tool, ToolCall, ToolContext, ToolFuture, ToolOutput};
use crate::approval::{EditApproval, edit_approval};
use crate::checkpoint::workspace_root;
use crate::patch::{self, Change};
use tiller_config::ApprovalPolicy;

/// The tool's name, as Codex's models call it.
pub const APPLY_PATCH_TOOL_NAME: &str = "apply_patch";

/// Lines of context around each change in a diff.
const CONTEXT: usize = 3;

/// What the tool does, for the model.
const DESCRIPTION: &str = "Edit files with a patch. The patch starts with `*** Begin Patch` and ends with `*** End Patch`; in between, `*** Add File: PATH` (then every line prefixed with `+`), `*** Delete File: PATH`, or `*** Update File: PATH` (optionally followed by `*** Move to: NEW_PATH`) with chunks that start with `@@` (optionally followed by a line to find first) and list context lines prefixed with a space, removed lines with `-`, added lines with `+`. Paths are relative to the working folder. Either every file is changed or none.";

/// The patch format as a Lark grammar, for the freeform tool: the provider
/// holds the model's output to it.
const GRAMMAR: &str = r#"start: "*** Begin Patch" NL file_op+ "*** End Patch" NL?
file_op: add | delete | update
add: "*** Add File: " PATH NL added+
delete: "*** Delete File: " PATH NL
update: "*** Update File: " PATH NL move_to? chunk*
move_to: "*** Move to: " PATH NL
chunk: header body_line+ end_of_file?
header: "@@" NL | "@@ " TEXT NL
body_line: (" " | "-" | "+") LINE NL
added: "+" LINE NL
end_of_file: "*** End of File" NL
PATH: /[^\r\n]+/
TEXT: /[^\r\n]+/
LINE: /[^\r\n]*/
NL: /\r?\n/
"#;

/// The `apply_patch` tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyPatchTool {
    /// Offered as a freeform (custom) tool: the model writes the patch
    /// itself, held to [`GRAMMAR`], instead of JSON with an `input` string.
    pub freeform: bool,
}

impl Tool for ApplyPatchTool {
    fn name(&self) -> &str {
        APPLY_PATCH_TOOL_NAME
    }

    fn spec(&self) -> serde_json::Value {
        if self.freeform {
            return serde_json::json!({
                "type": "custom",
                "name": APPLY_PATCH_TOOL_NAME,
                "description": DESCRIPTION,
                "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR}
            });
        }
        serde_json::json!({
            "type": "function",
            "name": APPLY_PATCH_TOOL_NAME,
            "description": DESCRIPTION,
            "strict": false,
            "parameters": {
                "type": "object",
                "properties": {
                    "input": {"type": "string", "description": "The whole patch."}
                },
                "required": ["input"],
                "additionalProperties": false
            }
        })
    }

    fn run<'a>(&'a self, call: &'a ToolCall, ctx: &'a ToolContext<'a>) -> ToolFuture<'a> {
        Box::pin(run_call(call, ctx))
    }
}

async fn run_call(call: &ToolCall, ctx: &ToolContext<'_>) -> ToolOutput {
    if call.kind == CallKind::Custom {
        return apply(&call.arguments, &ctx.cwd(), call, ctx).await;
    }
    let input = match serde_json::from_str::<serde_json::Value>(&call.arguments) {
        Ok(args) => match args["input"].as_str() {
            Some(input) => input.to_string(),
            None => {
                return ToolOutput::Output(format!(
                    "invalid arguments for {APPLY_PATCH_TOOL_NAME}: `input` (a string) is missing"
                ));
            }
        },
        Err(e) => {
            return ToolOutput::Output(format!(
                "invalid arguments for {APPLY_PATCH_TOOL_NAME}: {e}"
            ));
        }
    };
    apply(&input, &ctx.cwd(), call, ctx).await
}

/// Apply `input`, a patch whose paths are relative to `cwd`, as `call`: the
/// function tool's body, and what a `shell` call that is an `apply_patch`
/// heredoc runs instead of a shell.
pub(crate) async fn apply(
    input: &str,
    cwd: &Path,
    call: &ToolCall,
    ctx: &ToolContext<'_>,
) -> ToolOutput {
    let changes = match patch::parse(input).and_then(|ops| patch::plan(&ops, cwd)) {
        Ok(changes) => changes,
        Err(e) => return ToolOutput::Output(format!("the patch was not applied: {e}")),
    };
    let item_id = ctx.new_item_id();
    let entries: Vec<FileChange> = changes.iter().map(|c| entry(c, cwd)).collect();
    let item = |status| {
        TurnItem::new(
            item_id.clone(),
            TurnItemKind::FileChange {
                call_id: call.call_id.clone(),
                changes: entries.clone(),
                status,
            },
        )
    };
    let targets: Vec<&Path> = changes
        .iter()
        .flat_map(|c| std::iter::once(c.path.as_path()).chain(c.move_to.as_deref()))
        .collect();
    let policy = ctx.approval_policy();
    let sandbox = ctx.sandbox_policy();
    let asked = match crate::sandbox::unwritable(&sandbox, cwd, &targets) {
        Some(path) if policy == ApprovalPolicy::Never => {
            ctx.item_started(item(None));
            ctx.item_completed(item(Some(PatchStatus::Failed)));
            return ToolOutput::Output(crate::sandbox::edit_refused(&sandbox, cwd, &path));
        }
        Some(path) => Some(EditApproval {
            reason: format!(
                "the edit writes {}, which the sandbox ({}) does not allow",
                path.display(),
                sandbox.mode
            ),
            outside: Some(path),
        }),
        None => edit_approval(
            policy,
            ctx.auto_approve_workspace_edits(),
            &workspace_root(cwd),
            &targets,
        ),
    };
    ctx.item_started(item(None));
    if let Some(approval) = asked {
        let mut key = vec![APPLY_PATCH_TOOL_NAME.to_string()];
        key.extend(entries.iter().map(|e| e.path.clone()));
        if !ctx.approved_for_session(&key) {
            let paths = entries.iter().map(|e| e.path.clone()).collect();
            match ctx.ask_edit_approval(&item_id, paths, &key, approval).await {
                Ok(ReviewDecision::Approved | ReviewDecision::ApprovedForSession) => {}
                Ok(ReviewDecision::Denied | ReviewDecision::Abort) => {
                    ctx.item_completed(item(Some(PatchStatus::Declined)));
                    return ToolOutput::Output(
                        "the user declined the edit; no file was changed".to_string(),
                    );
                }
                Err(_) => {
                    ctx.item_completed(item(Some(PatchStatus::Declined)));
                    return ToolOutput::Aborted(
                        "the turn was interrupted before the edit; no file was changed".to_string(),
                    );
                }
            }
        }
    }
    let summary = summary(&entries);
    let written = tokio::task::spawn_blocking(move || patch::write(&changes).map(|()| changes))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r);
    match written {
        Ok(changes) => {
            ctx.item_completed(item(Some(PatchStatus::Completed)));
            ctx.files_changed(&changes);
            ToolOutput::Output(format!("Success. Updated the following files:\n{summary}"))
        }
        Err(e) => {
            ctx.item_completed(item(Some(PatchStatus::Failed)));
            ToolOutput::Output(format!(
                "the patch could not be written: {e} (each file is either as it was or as the patch makes it)"
            ))
        }
    }
}

/// The patch and the folder of a `shell` command that only applies a patch,
/// as models trained for Codex write it: `apply_patch PATCH` as the argv, or
/// a shell script `[cd DIR &&] apply_patch <<'EOF'` … `EOF`.
pub(crate) fn patch_in_shell(
    command: &[String],
    cwd: &Path,
) -> Option<(String, std::path::PathBuf)> {
    let is_tool = |word: &str| word == APPLY_PATCH_TOOL_NAME || word == "applypatch";
    match command {
        [tool, patch] if is_tool(tool) => Some((patch.clone(), cwd.to_path_buf())),
        [shell, flag, script]
            if matches!(shell.rsplit('/').next(), Some("bash" | "sh" | "zsh"))
                && matches!(flag.as_str(), "-c" | "-lc") =>
        {
            heredoc(script, is_tool).map(|(dir, patch)| {
                (
                    patch,
                    dir.map_or_else(|| cwd.to_path_buf(), |d| cwd.join(d)),
                )
            })
        }
        _ => None,
    }
}

/// `[cd DIR &&] TOOL <<'EOF'\nBODY\nEOF`: DIR and BODY. The delimiter may be
/// quoted (`'EOF'`, `"EOF"`) or not; nothing may follow it.
fn heredoc(script: &str, is_tool: impl Fn(&str) -> bool) -> Option<(Option<String>, String)> {
    let (first, rest) = script.trim_start().split_once('\n')?;
    let mut head = first.trim();
    let mut dir = None;
    if let Some(after_cd) = head.strip_prefix("cd ") {
        let (target, after) = after_cd.split_once("&&")?;
        let target = target.trim().trim_matches(|c| c == '\'' || c == '"');
        if target.is_empty() || target.contains(char::is_whitespace) {
            return None;
        }
        dir = Some(target.to_string());
        head = after.trim();
    }
    let (tool, marker) = head.split_once("<<")?;
    if !is_tool(tool.trim()) {
        return None;
    }
    let marker = marker.trim().trim_start_matches('-');
    let delimiter = marker.trim_matches(|c| c == '\'' || c == '"');
    if delimiter.is_empty() || !delimiter.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let rest = rest.trim_end();
    let body = rest.strip_suffix(delimiter)?;
    let body = body.strip_suffix('\n').unwrap_or(body);
    if !body.is_empty() && !rest[..rest.len() - delimiter.len()].ends_with('\n') {
        return None;
    }
    Some((dir, body.to_string()))
}

/// `A path`, `M path`, `D path`, a line each.
fn summary(entries: &[FileChange]) -> String {
    entries
        .iter()
        .map(|e| {
            let letter = match e.kind {
                FileChangeKind::Add => 'A',
                FileChangeKind::Delete => 'D',
                FileChangeKind::Update { .. } => 'M',
            };
            format!("{letter} {}", e.path)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A planned change as the item shows it: the path relative to `cwd`, and a
/// unified diff.
fn entry(change: &Change, cwd: &Path) -> FileChange {
    let shown = |path: &Path| path.strip_prefix(cwd).unwrap_or(path).display().to_string();
    let path = shown(&change.path);
    let kind = match (&change.old, &change.new) {
        (None, _) => FileChangeKind::Add,
        (_, None) => FileChangeKind::Delete,
        (Some(_), Some(_)) => FileChangeKind::Update {
            move_path: change.move_to.as_deref().map(shown),
        },
    };
    let diff = unified_diff(
        &path,
        change.old.as_deref().unwrap_or(""),
        change.new.as_deref().unwrap_or(""),
    );
    FileChange { path, kind, diff }
}

/// A unified diff of `old` → `new`: one hunk around the lines that differ
/// (their common start and end trimmed), with [`CONTEXT`] lines either side.
pub(crate) fn unified_diff(path: &str, old: &str, new: &str) -> String {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let mut diff = format!("--- a/{path}\n+++ b/{path}\n");
    if prefix == old.len() && prefix == new.len() {
        return diff;
    }
    let start = prefix.saturating_sub(CONTEXT);
    let old_end = (old.len() - suffix + CONTEXT).min(old.len());
    let new_end = (new.len() - suffix + CONTEXT).min(new.len());
    let range = |from: usize, to: usize| {
        let count = to - from;
        let first = if count == 0 { from } else { from + 1 };
        format!("{first},{count}")
    };
    diff.push_str(&format!(
        "@@ -{} +{} @@\n",
        range(start, old_end),
        range(start, new_end)
    ));
    for line in &old[start..prefix] {
        diff.push_str(&format!(" {line}\n"));
    }
    for line in &old[prefix..old.len() - suffix] {
        diff.push_str(&format!("-{line}\n"));
    }
    for line in &new[prefix..new.len() - suffix] {
        diff.push_str(&format!("+{line}\n"));
    }
    for line in &old[old.len() - suffix..old_end] {
        diff.push_str(&format!(" {line}\n"));
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_string()).collect()
    }

    #[test]
    fn a_heredoc_through_the_shell_is_a_patch() {
        let cwd = Path::new("/w");
        let patch = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch";
        let found = |script: &str| patch_in_shell(&argv(&["bash", "-lc", script]), cwd);
        assert_eq!(
            found(&format!("apply_patch <<'EOF'\n{patch}\nEOF\n")),
            Some((patch.to_string(), cwd.to_path_buf()))
        );
        assert_eq!(
            found(&format!(
                "cd sub && apply_patch <<\"PATCH\"\n{patch}\nPATCH"
            )),
            Some((patch.to_string(), cwd.join("sub")))
        );
        assert_eq!(
            patch_in_shell(&argv(&["apply_patch", patch]), cwd),
            Some((patch.to_string(), cwd.to_path_buf()))
        );
        // Anything else is a command.
        assert_eq!(
            found(&format!("apply_patch <<'EOF'\n{patch}\nEOF\necho more")),
            None
        );
        assert_eq!(found(&format!("cat <<'EOF'\n{patch}\nEOF")), None);
        assert_eq!(found("apply_patch"), None);
        assert_eq!(
            patch_in_shell(&argv(&["python3", "-c", "print(1)"]), cwd),
            None
        );
    }

    #[test]
    fn a_diff_shows_the_changed_lines_with_three_lines_of_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        assert_eq!(
            unified_diff("f", old, new),
            "--- a/f\n+++ b/f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
        assert_eq!(
            unified_diff("n", "", "a\nb\n"),
            "--- a/n\n+++ b/n\n@@ -0,0 +1,2 @@\n+a\n+b\n"
        );
        assert_eq!(unified_diff("s", "x\n", "x\n"), "--- a/s\n+++ b/s\n");
    }
}
