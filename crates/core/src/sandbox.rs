//! The session's sandbox policy made real for its commands: which folders
//! are writable, the prepared Landlock and seccomp rules (built once per
//! policy and folder, not per command), and what to tell the model and the
//! person when a command seems to have been stopped by them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tiller_config::{SandboxMode, SandboxPolicy};
use tiller_process::{PreparedSandbox, Sandbox};

use crate::tools::shell::ShellOutcome;

/// The folders a command may write under `policy` when it runs in `cwd`:
/// the session's folder, the configured roots, `$TMPDIR` and `/tmp` (unless
/// excluded, and only if they exist). Empty under `read-only`.
pub(crate) fn writable_roots(policy: &SandboxPolicy, cwd: &Path) -> Vec<PathBuf> {
    if policy.mode != SandboxMode::WorkspaceWrite {
        return Vec::new();
    }
    let mut roots = vec![cwd.to_path_buf()];
    roots.extend(policy.writable_roots.iter().cloned());
    if !policy.exclude_tmpdir_env_var
        && let Some(tmpdir) = std::env::var_os("TMPDIR").map(PathBuf::from)
        && tmpdir.is_absolute()
        && tmpdir.is_dir()
    {
        roots.push(tmpdir);
    }
    let slash_tmp = Path::new("/tmp");
    if !policy.exclude_slash_tmp && slash_tmp.is_dir() {
        roots.push(slash_tmp.to_path_buf());
    }
    roots.dedup();
    roots
}

/// The writable roots of `policy` in `cwd`, for a sentence: `/a, /b`.
fn roots_list(policy: &SandboxPolicy, cwd: &Path) -> String {
    writable_roots(policy, cwd)
        .iter()
        .map(|root| root.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `policy` for a command run in `cwd`, as the process crate enforces it.
pub fn process_sandbox(policy: &SandboxPolicy, cwd: &Path) -> Sandbox {
    match policy.mode {
        SandboxMode::ReadOnly => Sandbox::ReadOnly,
        SandboxMode::WorkspaceWrite => Sandbox::WorkspaceWrite {
            writable_roots: writable_roots(policy, cwd),
            network: policy.network_access,
        },
        SandboxMode::DangerFullAccess => Sandbox::FullAccess,
    }
}

/// Whether this machine can enforce `policy`, and if not, the sentence
/// that says so and how to run anyway.
pub fn check_support(policy: &SandboxPolicy) -> Result<(), String> {
    if !policy.is_confined() {
        return Ok(());
    }
    process_sandbox(policy, Path::new("/")).check().map_err(|why| {
        format!(
            "the sandbox ({}) cannot be enforced on this machine: {why}. Commands will not run; \
             to run them without a sandbox, choose it: --sandbox danger-full-access \
             (or sandbox_mode = \"danger-full-access\")",
            policy.mode
        )
    })
}

/// The last prepared sandbox of a session, reused while the policy and the
/// folder stay the same.
#[derive(Debug, Default)]
pub(crate) struct PreparedCache {
    last: Mutex<Option<(Sandbox, Arc<PreparedSandbox>)>>,
}

impl PreparedCache {
    /// The rules for a command run in `cwd` under `policy`; `None` when it
    /// runs unconfined. `Err` says why it cannot run at all: the kernel
    /// cannot enforce the policy, or a writable root cannot be opened.
    pub(crate) fn get(
        &self,
        policy: &SandboxPolicy,
        cwd: &Path,
    ) -> Result<Option<Arc<PreparedSandbox>>, String> {
        if !policy.is_confined() {
            return Ok(None);
        }
        check_support(policy)?;
        let wanted = process_sandbox(policy, cwd);
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((sandbox, prepared)) = last.as_ref()
            && *sandbox == wanted
        {
            return Ok(Some(Arc::clone(prepared)));
        }
        let prepared = Arc::new(
            wanted
                .prepare()
                .map_err(|e| format!("the sandbox ({}) could not be set up: {e}", policy.mode))?,
        );
        *last = Some((wanted, Arc::clone(&prepared)));
        Ok(Some(prepared))
    }
}

/// The first of `targets` (absolute paths a patch writes) that `policy`
/// does not let a command run in `cwd` write, judged by where it really
/// leads (symbolic links in the folders above it followed, as Landlock
/// judges it). `None` when all are writable.
pub(crate) fn unwritable(policy: &SandboxPolicy, cwd: &Path, targets: &[&Path]) -> Option<PathBuf> {
    if !policy.is_confined() {
        return None;
    }
    let roots: Vec<PathBuf> = writable_roots(policy, cwd)
        .iter()
        .map(|root| std::fs::canonicalize(root).unwrap_or_else(|_| root.clone()))
        .collect();
    targets
        .iter()
        .map(|path| crate::approval::resolved(path))
        .find(|path| !roots.iter().any(|root| path.starts_with(root)))
}

/// What the model reads when a patch would write where the sandbox does
/// not allow, and nobody may be asked.
pub(crate) fn edit_refused(policy: &SandboxPolicy, cwd: &Path, path: &Path) -> String {
    let allowed = match policy.mode {
        SandboxMode::ReadOnly => "it allows no writes".to_string(),
        _ => format!("it writes only beneath {}", roots_list(policy, cwd)),
    };
    format!(
        "the patch was not applied: it writes {}, which the sandbox ({}) does not allow ({allowed}). \
         The approval policy is never, so nobody can allow it: keep edits inside the writable \
         folders, or tell the user what is needed.",
        path.display(),
        policy.mode
    )
}

/// What commands print when the file system or the network refused them.
const DENIAL_WORDS: &[&str] = &[
    "Permission denied",
    "Operation not permitted",
    "Read-only file system",
    "PermissionError",
    "EACCES",
    "EPERM",
];

/// What they print when a socket could not be opened (name lookups come
/// first, so most network failures read as these).
const NETWORK_WORDS: &[&str] = &[
    "Could not resolve host",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "Failed to establish a new connection",
    "getaddrinfo",
];

/// Whether `outcome`, of a command run confined by `policy`, looks like the
/// sandbox stopped it: it failed, and said what a refused write or socket
/// says (or was killed with `SIGSYS`, the filter's answer to a 32-bit call).
/// A guess from the words, as there is no other signal: the kernel answers
/// the process, not tiller.
pub(crate) fn likely_denied(outcome: &ShellOutcome, policy: &SandboxPolicy) -> bool {
    if !policy.is_confined() || outcome.exit_code == Some(0) || outcome.start_error.is_some() {
        return false;
    }
    if outcome.signal == Some(nix::libc::SIGSYS) {
        return true;
    }
    if outcome.exit_code.is_none() {
        return false;
    }
    let output = &outcome.aggregated_output;
    DENIAL_WORDS.iter().any(|w| output.contains(w))
        || (!policy.allows_network() && NETWORK_WORDS.iter().any(|w| output.contains(w)))
}

/// What the model reads after the output of a command the sandbox likely
/// stopped: what the sandbox allows, in a few words.
pub(crate) fn denial_note(policy: &SandboxPolicy, cwd: &Path) -> String {
    let writes = match policy.mode {
        SandboxMode::ReadOnly => "writes nothing".to_string(),
        _ => format!("writes only beneath {}", roots_list(policy, cwd)),
    };
    let network = if policy.allows_network() {
        "may use the network"
    } else {
        "opens no network connections"
    };
    format!(
        "The command ran in the sandbox ({}): it {writes} and {network}. Its failure above is \
         likely the sandbox refusing it (EPERM or EACCES), not a fault of the command.",
        policy.mode
    )
}

/// Why a person is asked to run a command again outside the sandbox.
pub(crate) fn rerun_reason(policy: &SandboxPolicy) -> String {
    let what = match policy.mode {
        SandboxMode::ReadOnly => "a write",
        _ if policy.allows_network() => "a write outside the workspace",
        _ => "a write outside the workspace or network access",
    };
    format!(
        "it failed in the sandbox ({}), likely denied {what}; allowing runs it again without \
         the sandbox",
        policy.summary()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(exit_code: Option<i32>, signal: Option<i32>, output: &str) -> ShellOutcome {
        ShellOutcome {
            exit_code,
            signal,
            duration: std::time::Duration::ZERO,
            aggregated_output: output.to_string(),
            output_bytes: output.len(),
            status: tiller_protocol::ExecEndStatus::Failed,
            killed: false,
            start_error: None,
        }
    }

    #[test]
    fn a_failure_that_says_permission_denied_is_a_likely_denial() {
        let policy = SandboxPolicy::default();
        let denied = outcome(
            Some(1),
            None,
            "touch: cannot touch '/etc/x': Permission denied\n",
        );
        assert!(likely_denied(&denied, &policy));
        assert!(!likely_denied(
            &outcome(Some(0), None, "Permission denied"),
            &policy
        ));
        assert!(!likely_denied(
            &outcome(Some(1), None, "error: no such file"),
            &policy
        ));
        assert!(likely_denied(
            &outcome(None, Some(nix::libc::SIGSYS), ""),
            &policy
        ));
        let full = SandboxPolicy::of_mode(SandboxMode::DangerFullAccess);
        assert!(!likely_denied(&denied, &full));
    }

    #[test]
    fn network_words_count_only_when_the_network_is_off() {
        let offline = SandboxPolicy::default();
        let online = SandboxPolicy {
            network_access: true,
            ..SandboxPolicy::default()
        };
        let failed = outcome(
            Some(6),
            None,
            "curl: (6) Could not resolve host: example.com",
        );
        assert!(likely_denied(&failed, &offline));
        assert!(!likely_denied(&failed, &online));
    }

    #[test]
    fn the_writable_roots_are_the_folder_the_configured_roots_and_tmp() {
        let cwd = Path::new("/work/project");
        let policy = SandboxPolicy {
            writable_roots: vec![PathBuf::from("/srv/cache")],
            exclude_tmpdir_env_var: true,
            ..SandboxPolicy::default()
        };
        assert_eq!(
            writable_roots(&policy, cwd),
            [
                PathBuf::from("/work/project"),
                PathBuf::from("/srv/cache"),
                PathBuf::from("/tmp")
            ]
        );
        let no_tmp = SandboxPolicy {
            exclude_slash_tmp: true,
            ..policy
        };
        assert_eq!(writable_roots(&no_tmp, cwd).len(), 2);
        let read_only = SandboxPolicy::of_mode(SandboxMode::ReadOnly);
        assert!(writable_roots(&read_only, cwd).is_empty());
    }
}
