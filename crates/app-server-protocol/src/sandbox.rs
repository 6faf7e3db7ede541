//! Codex's `SandboxPolicy`: what a thread's commands may touch, as the wire
//! says it. `thread/start`, `thread/resume` and `thread/fork` answer with
//! the thread's policy in this shape; `turn/start` and
//! `thread/settings/update` take one as `sandboxPolicy`.
//!
//! The fields Codex marks with a default may be left out when a client
//! sends a policy; the server always writes them all.

use serde::{Deserialize, Serialize};

/// A sandbox policy, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SandboxPolicy {
    /// No sandbox: commands run with the user's own permissions.
    DangerFullAccess,
    /// Read anything, write nothing.
    #[serde(rename_all = "camelCase")]
    ReadOnly {
        /// Whether commands may use the network.
        #[serde(default)]
        network_access: bool,
    },
    /// The client runs the server inside a sandbox of its own.
    #[serde(rename_all = "camelCase")]
    ExternalSandbox {
        /// What that sandbox lets through to the network.
        #[serde(default)]
        network_access: NetworkAccess,
    },
    /// Read anything; write the thread's folder, the writable roots and
    /// the temporary folders (unless excluded).
    #[serde(rename_all = "camelCase")]
    WorkspaceWrite {
        /// Folders writable besides the thread's (absolute paths).
        #[serde(default)]
        writable_roots: Vec<String>,
        /// Whether commands may use the network.
        #[serde(default)]
        network_access: bool,
        /// `$TMPDIR` is not writable.
        #[serde(default)]
        exclude_tmpdir_env_var: bool,
        /// `/tmp` is not writable.
        #[serde(default)]
        exclude_slash_tmp: bool,
    },
}

/// The network of an [`SandboxPolicy::ExternalSandbox`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NetworkAccess {
    /// No network, or only some.
    #[default]
    Restricted,
    /// The network is open.
    Enabled,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_policy_reads_with_its_defaults_and_writes_every_field() {
        let read: SandboxPolicy =
            serde_json::from_value(json!({"type": "workspaceWrite", "networkAccess": true}))
                .unwrap();
        assert_eq!(
            serde_json::to_value(&read).unwrap(),
            json!({"type": "workspaceWrite", "writableRoots": [], "networkAccess": true,
                   "excludeTmpdirEnvVar": false, "excludeSlashTmp": false})
        );
        let external: SandboxPolicy =
            serde_json::from_value(json!({"type": "externalSandbox"})).unwrap();
        assert_eq!(
            external,
            SandboxPolicy::ExternalSandbox {
                network_access: NetworkAccess::Restricted
            }
        );
        assert_eq!(
            serde_json::to_value(SandboxPolicy::DangerFullAccess).unwrap(),
            json!({"type": "dangerFullAccess"})
        );
        let unknown = serde_json::from_value::<SandboxPolicy>(json!({"type": "sometimes"}));
        assert!(unknown.unwrap_err().to_string().contains("sometimes"));
    }
}
