//! The sandbox the model's commands run in: `sandbox_mode` and
//! `[sandbox_workspace_write]`, Codex's keys, checked like the rest.
//!
//! The policy is data here; `tiller-core` turns it into the Landlock and
//! seccomp rules of `tiller-process` for the session's folder.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::ConfigError;
use crate::check::{bad, boolean, describe, ignored};
use crate::raw::{RawNode, RawValue};

/// How much the model's commands may do (`sandbox_mode`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// Read anything, write nothing, no network.
    ReadOnly,
    /// Read anything; write the session's folder, the writable roots and
    /// the temporary folders; network as `network_access` says (off).
    #[default]
    WorkspaceWrite,
    /// No sandbox: commands run with the user's own permissions.
    DangerFullAccess,
}

impl SandboxMode {
    /// The mode's name in config and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::ReadOnly => "read-only",
            SandboxMode::WorkspaceWrite => "workspace-write",
            SandboxMode::DangerFullAccess => "danger-full-access",
        }
    }
}

impl fmt::Display for SandboxMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SandboxMode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<SandboxMode, ConfigError> {
        match s {
            "read-only" => Ok(SandboxMode::ReadOnly),
            "workspace-write" => Ok(SandboxMode::WorkspaceWrite),
            "danger-full-access" => Ok(SandboxMode::DangerFullAccess),
            _ => Err(ConfigError::BadOption {
                key: "sandbox_mode".to_owned(),
                message: format!(
                    "expected \"read-only\", \"workspace-write\" or \"danger-full-access\", found {}",
                    toml::Value::String(s.to_owned())
                ),
            }),
        }
    }
}

/// The whole sandbox policy: the mode and, for `workspace-write`, what
/// `[sandbox_workspace_write]` adds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct SandboxPolicy {
    /// The mode.
    pub mode: SandboxMode,
    /// Folders writable besides the session's folder (absolute).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writable_roots: Vec<PathBuf>,
    /// Whether commands may open network sockets (`workspace-write` only).
    #[serde(default)]
    pub network_access: bool,
    /// `$TMPDIR` is not writable.
    #[serde(default)]
    pub exclude_tmpdir_env_var: bool,
    /// `/tmp` is not writable.
    #[serde(default)]
    pub exclude_slash_tmp: bool,
}

impl SandboxPolicy {
    /// The policy of `mode` with no extra roots and no network.
    pub fn of_mode(mode: SandboxMode) -> SandboxPolicy {
        SandboxPolicy {
            mode,
            ..SandboxPolicy::default()
        }
    }

    /// Whether commands run confined at all.
    pub fn is_confined(&self) -> bool {
        self.mode != SandboxMode::DangerFullAccess
    }

    /// Whether commands may use the network.
    pub fn allows_network(&self) -> bool {
        match self.mode {
            SandboxMode::ReadOnly => false,
            SandboxMode::WorkspaceWrite => self.network_access,
            SandboxMode::DangerFullAccess => true,
        }
    }

    /// One line for a person: `workspace-write (network off)`.
    pub fn summary(&self) -> String {
        match self.mode {
            SandboxMode::DangerFullAccess => self.mode.to_string(),
            mode if self.allows_network() => format!("{mode} (network on)"),
            mode => format!("{mode} (network off)"),
        }
    }
}

/// `roots` as paths (`~/` is the home folder, as in the config file), or
/// which one is not absolute (a root is where writes
/// are allowed: a relative one would depend on the folder of the moment).
pub fn absolute_roots(roots: impl IntoIterator<Item = String>) -> Result<Vec<PathBuf>, String> {
    roots
        .into_iter()
        .map(|root| absolute(&root).ok_or_else(|| format!("{root:?} is not an absolute path")))
        .collect()
}

/// Reads `sandbox_mode`.
pub(super) fn check_mode(node: &RawNode, key: &str) -> Result<SandboxMode, ConfigError> {
    let expected = "expected \"read-only\", \"workspace-write\" or \"danger-full-access\"";
    match node.value {
        RawValue::Leaf(toml::Value::String(ref value)) => value
            .parse()
            .map_err(|_| bad(node, key, format!("{expected}, found {}", describe(node)))),
        _ => Err(bad(
            node,
            key,
            format!("{expected}, found {}", describe(node)),
        )),
    }
}

/// Reads `[sandbox_workspace_write]` into `policy`.
pub(super) fn check_workspace_write(
    node: &RawNode,
    key: &str,
    policy: &mut SandboxPolicy,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let table = crate::check::table(node, key)?;
    for (name, value) in table {
        let dotted = format!("{key}.{name}");
        match name.as_str() {
            "writable_roots" => policy.writable_roots = roots(value, &dotted)?,
            "network_access" => policy.network_access = boolean(value, &dotted)?,
            "exclude_tmpdir_env_var" => policy.exclude_tmpdir_env_var = boolean(value, &dotted)?,
            "exclude_slash_tmp" => policy.exclude_slash_tmp = boolean(value, &dotted)?,
            _ => warnings.push(ignored(value, &dotted, name, &[])),
        }
    }
    Ok(())
}

/// `writable_roots`: absolute paths (`~/` is the home folder).
fn roots(node: &RawNode, key: &str) -> Result<Vec<PathBuf>, ConfigError> {
    let RawValue::Leaf(toml::Value::Array(items)) = &node.value else {
        let found = describe(node);
        return Err(bad(
            node,
            key,
            format!("expected an array of absolute paths, found {found}"),
        ));
    };
    items
        .iter()
        .map(|item| match item {
            toml::Value::String(path) => absolute(path).ok_or_else(|| {
                bad(
                    node,
                    key,
                    format!("expected an absolute path, found {path:?}"),
                )
            }),
            other => Err(bad(
                node,
                key,
                format!("expected an array of absolute paths, found an element {other}"),
            )),
        })
        .collect()
}

/// `path` if it is absolute, with `~/` taken as the home folder.
fn absolute(path: &str) -> Option<PathBuf> {
    if let Some(rest) = path.strip_prefix("~/") {
        return std::env::var_os("HOME").map(|home| PathBuf::from(home).join(rest));
    }
    let path = PathBuf::from(path);
    path.is_absolute().then_some(path)
}
