//! The approval policy and the sandbox as Codex's wire says them, read from
//! requests and written in answers.
//!
//! Codex's names map onto tiller's one for one, with four exceptions, each
//! chosen so that nothing runs with more freedom than the client asked for
//! and nothing a client asks is dropped silently:
//! - `approvalPolicy: {granular: …}` is taken as `untrusted` (ask before
//!   any command not known to be read-only), with a `warning`;
//! - `on-failure`, which tiller has and Codex's `AskForApproval` no longer
//!   does, is accepted and written `on-request` in answers (the nearest:
//!   neither asks before a command, both offer to run a command the
//!   sandbox denied again outside it);
//! - `sandboxPolicy: {type: externalSandbox}` says the client runs tiller
//!   inside a sandbox of its own: commands then run unconfined
//!   (`danger-full-access`), and answers say `dangerFullAccess`;
//! - `{type: readOnly, networkAccess: true}` is refused: tiller's read-only
//!   sandbox has no network.
//!
//! Named permission profiles (`permissions`) are refused: tiller has none.

use serde_json::Value;
use tiller_app_server_protocol::{ErrorCode, JsonRpcError, SandboxPolicy as WirePolicy};
use tiller_core::config::{ApprovalPolicy, SandboxMode, SandboxPolicy};

/// An approval policy read from the wire, and what the client should be
/// told about how it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Approval {
    pub(crate) policy: ApprovalPolicy,
    pub(crate) warning: Option<String>,
}

fn invalid(message: String) -> JsonRpcError {
    JsonRpcError::new(ErrorCode::InvalidParams, message)
}

/// Codex's `AskForApproval` (or tiller's `on-failure`) as tiller's policy.
pub(crate) fn approval_policy(method: &str, value: &Value) -> Result<Approval, JsonRpcError> {
    match value {
        Value::String(name) => name
            .parse()
            .map(|policy| Approval {
                policy,
                warning: None,
            })
            .map_err(|_| invalid(bad_approval(method, value))),
        Value::Object(o) if o.contains_key("granular") => Ok(Approval {
            policy: ApprovalPolicy::Untrusted,
            warning: Some(format!(
                "{method}: approvalPolicy {{granular}} is taken as untrusted: tiller asks \
                 before any command not known to be read-only, and before edits"
            )),
        }),
        _ => Err(invalid(bad_approval(method, value))),
    }
}

/// A request's `approvalPolicy`, when it gives one (`null` is none); a
/// warning about how it was read goes to `warnings`.
pub(crate) fn given_approval(
    method: &str,
    value: Option<&Value>,
    warnings: &mut Vec<String>,
) -> Result<Option<ApprovalPolicy>, JsonRpcError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            let approval = approval_policy(method, value)?;
            warnings.extend(approval.warning);
            Ok(Some(approval.policy))
        }
    }
}

fn bad_approval(method: &str, value: &Value) -> String {
    format!(
        "{method}: approvalPolicy {value} is not one of never, on-request, on-failure, untrusted, {{granular}}"
    )
}

/// tiller's policy as Codex's `AskForApproval` names it.
pub(crate) fn wire_approval(policy: ApprovalPolicy) -> &'static str {
    match policy {
        ApprovalPolicy::Never => "never",
        ApprovalPolicy::OnFailure | ApprovalPolicy::OnRequest => "on-request",
        ApprovalPolicy::Untrusted => "untrusted",
    }
}

/// Codex's `SandboxMode` (`thread/start`'s `sandbox`) as tiller's.
pub(crate) fn sandbox_mode(method: &str, value: &Value) -> Result<SandboxMode, JsonRpcError> {
    value
        .as_str()
        .and_then(|name| name.parse().ok())
        .ok_or_else(|| {
            invalid(format!(
                "{method}: sandbox {value} is not one of read-only, workspace-write, danger-full-access"
            ))
        })
}

/// Codex's `SandboxPolicy` (`sandboxPolicy`) as the whole policy tiller
/// runs commands under.
pub(crate) fn sandbox_policy(method: &str, value: &Value) -> Result<SandboxPolicy, JsonRpcError> {
    let wire: WirePolicy = serde_json::from_value(value.clone()).map_err(|e| {
        invalid(format!(
            "{method}: sandboxPolicy {value} is not a sandbox policy ({e}); the types are \
             dangerFullAccess, readOnly, workspaceWrite, externalSandbox"
        ))
    })?;
    match wire {
        WirePolicy::DangerFullAccess | WirePolicy::ExternalSandbox { .. } => {
            Ok(SandboxPolicy::of_mode(SandboxMode::DangerFullAccess))
        }
        WirePolicy::ReadOnly {
            network_access: true,
        } => Err(invalid(format!(
            "{method}: sandboxPolicy readOnly with networkAccess true is not supported: \
             tiller's read-only sandbox has no network (workspaceWrite can have it)"
        ))),
        WirePolicy::ReadOnly {
            network_access: false,
        } => Ok(SandboxPolicy::of_mode(SandboxMode::ReadOnly)),
        WirePolicy::WorkspaceWrite {
            writable_roots,
            network_access,
            exclude_tmpdir_env_var,
            exclude_slash_tmp,
        } => {
            let writable_roots = tiller_core::config::absolute_roots(writable_roots)
                .map_err(|e| invalid(format!("{method}: sandboxPolicy writableRoots: {e}")))?;
            Ok(SandboxPolicy {
                mode: SandboxMode::WorkspaceWrite,
                writable_roots,
                network_access,
                exclude_tmpdir_env_var,
                exclude_slash_tmp,
            })
        }
    }
}

/// tiller's policy as Codex's `SandboxPolicy`, every field written.
pub(crate) fn wire_sandbox(policy: &SandboxPolicy) -> WirePolicy {
    match policy.mode {
        SandboxMode::DangerFullAccess => WirePolicy::DangerFullAccess,
        SandboxMode::ReadOnly => WirePolicy::ReadOnly {
            network_access: false,
        },
        SandboxMode::WorkspaceWrite => WirePolicy::WorkspaceWrite {
            writable_roots: policy
                .writable_roots
                .iter()
                .map(|root| root.display().to_string())
                .collect(),
            network_access: policy.network_access,
            exclude_tmpdir_env_var: policy.exclude_tmpdir_env_var,
            exclude_slash_tmp: policy.exclude_slash_tmp,
        },
    }
}

/// A named permissions profile is refused: tiller has none. `instead` is
/// the setting that chooses the sandbox in `method`.
pub(crate) fn no_permissions(
    method: &str,
    value: Option<&Value>,
    instead: &str,
) -> Result<(), JsonRpcError> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(value) => Err(invalid(format!(
            "{method}: `permissions` {value} is not supported: tiller has no named permission \
             profiles; choose the sandbox with `{instead}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use serde_json::json;

    #[test]
    fn every_codex_approval_name_is_tillers_same_named_policy() {
        for (name, policy) in [
            ("never", ApprovalPolicy::Never),
            ("on-request", ApprovalPolicy::OnRequest),
            ("on-failure", ApprovalPolicy::OnFailure),
            ("untrusted", ApprovalPolicy::Untrusted),
        ] {
            let read = approval_policy("m", &json!(name)).unwrap();
            assert_eq!(
                read,
                Approval {
                    policy,
                    warning: None
                },
                "{name}"
            );
        }
        let granular = approval_policy(
            "m",
            &json!({"granular": {"sandbox_approval": true, "rules": true, "mcp_elicitations": true}}),
        )
        .unwrap();
        assert_eq!(granular.policy, ApprovalPolicy::Untrusted);
        assert!(granular.warning.unwrap().contains("granular"));
        for bad in [json!("sometimes"), json!(3), json!({"other": 1})] {
            let error = approval_policy("turn/start", &bad).unwrap_err();
            assert_eq!(error.code, -32602);
            assert!(
                error.message.contains(&bad.to_string()),
                "{}",
                error.message
            );
        }
        assert_eq!(wire_approval(ApprovalPolicy::OnFailure), "on-request");
        assert_eq!(wire_approval(ApprovalPolicy::Untrusted), "untrusted");
    }

    #[test]
    fn codex_sandbox_policies_map_to_tillers_and_back() {
        let policy = sandbox_policy(
            "m",
            &json!({"type": "workspaceWrite", "writableRoots": ["/srv/cache"],
                    "networkAccess": true, "excludeSlashTmp": true}),
        )
        .unwrap();
        assert_eq!(
            policy,
            SandboxPolicy {
                mode: SandboxMode::WorkspaceWrite,
                writable_roots: vec![PathBuf::from("/srv/cache")],
                network_access: true,
                exclude_tmpdir_env_var: false,
                exclude_slash_tmp: true,
            }
        );
        assert_eq!(
            serde_json::to_value(wire_sandbox(&policy)).unwrap(),
            json!({"type": "workspaceWrite", "writableRoots": ["/srv/cache"],
                   "networkAccess": true, "excludeTmpdirEnvVar": false, "excludeSlashTmp": true})
        );
        let read_only = sandbox_policy("m", &json!({"type": "readOnly"})).unwrap();
        assert_eq!(read_only, SandboxPolicy::of_mode(SandboxMode::ReadOnly));
        assert_eq!(
            serde_json::to_value(wire_sandbox(&read_only)).unwrap(),
            json!({"type": "readOnly", "networkAccess": false})
        );
        for unconfined in [
            json!({"type": "dangerFullAccess"}),
            json!({"type": "externalSandbox", "networkAccess": "enabled"}),
        ] {
            assert_eq!(
                sandbox_policy("m", &unconfined).unwrap(),
                SandboxPolicy::of_mode(SandboxMode::DangerFullAccess)
            );
        }
    }

    #[test]
    fn a_sandbox_tiller_cannot_run_is_refused_by_name() {
        for (bad, named) in [
            (json!({"type": "sometimes"}), "sometimes"),
            (
                json!({"type": "readOnly", "networkAccess": true}),
                "networkAccess",
            ),
            (
                json!({"type": "workspaceWrite", "writableRoots": ["cache"]}),
                "\"cache\" is not an absolute path",
            ),
            (
                json!({"type": "workspaceWrite", "networkAccess": "yes"}),
                "sandboxPolicy",
            ),
            (json!("workspace-write"), "sandboxPolicy"),
        ] {
            let error = sandbox_policy("turn/start", &bad).unwrap_err();
            assert_eq!(error.code, -32602);
            assert!(error.message.contains(named), "{bad}: {}", error.message);
        }
        assert_eq!(
            sandbox_mode("thread/start", &json!("read-only")).unwrap(),
            SandboxMode::ReadOnly
        );
        let bad = sandbox_mode("thread/start", &json!("readOnly")).unwrap_err();
        assert!(bad.message.contains("readOnly"), "{}", bad.message);
        assert!(no_permissions("m", Some(&Value::Null), "sandbox").is_ok());
        let refused = no_permissions("m", Some(&json!(":workspace")), "sandbox").unwrap_err();
        assert!(
            refused.message.contains(":workspace"),
            "{}",
            refused.message
        );
    }
}
