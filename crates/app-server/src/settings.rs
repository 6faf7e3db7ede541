//! What `turn/start` and `thread/settings/update` may change for a thread's
//! next turns. tiller applies the model, the folder, the approval policy,
//! the sandbox policy and the reasoning effort and summary (the policies
//! read as [`crate::policy`] says); every other setting Codex knows that
//! tiller cannot apply is refused by name, and a policy read as something
//! near it (`{granular}`) is told with a `warning`. Nothing a client asks
//! is dropped silently.

use serde_json::Value;
use tiller_app_server_protocol::{ErrorCode, JsonRpcError, SettingsParams};
use tiller_protocol::SettingsUpdate;

use crate::policy;

/// Settings tiller cannot apply: a request that sets one is refused.
const REFUSED: &[&str] = &[
    "outputSchema",
    "collaborationMode",
    "environments",
    "runtimeWorkspaceRoots",
    "serviceTier",
    "serviceTierForTurn",
    "cyberAccessProgram",
    "additionalContext",
    "toolOutput",
];

/// A settings change, checked: what the engine applies, and what the client
/// is warned about.
pub(crate) struct Checked {
    pub(crate) update: SettingsUpdate,
    pub(crate) warnings: Vec<String>,
}

impl Checked {
    pub(crate) fn changes_anything(&self) -> bool {
        self.update != SettingsUpdate::default()
    }
}

/// Check `params` of `method`: -32602 naming the first setting tiller
/// cannot apply.
pub(crate) fn check(method: &str, params: SettingsParams) -> Result<Checked, JsonRpcError> {
    let refuse = |message: String| JsonRpcError::new(ErrorCode::InvalidParams, message);
    for (key, value) in &params.other {
        let set = !value.is_null() && value != &Value::Array(Vec::new());
        if set && REFUSED.contains(&key.as_str()) {
            return Err(refuse(format!(
                "{method}: tiller does not support `{key}` yet; send the request without it"
            )));
        }
        if key == "approvalsReviewer" && set && value != "user" {
            return Err(refuse(format!(
                "{method}: approvalsReviewer {value} is not supported; approvals go to the user"
            )));
        }
        if key == "sandbox" && set {
            return Err(refuse(format!(
                "{method}: `sandbox` {value} is a thread/start setting; send `sandboxPolicy` \
                 to change the sandbox of the next turns"
            )));
        }
    }
    policy::no_permissions(method, params.other.get("permissions"), "sandboxPolicy")?;
    let mut warnings = Vec::new();
    let approval_policy =
        policy::given_approval(method, params.approval_policy.as_ref(), &mut warnings)?
            .map(|policy| policy.to_string());
    let mut update = SettingsUpdate {
        model: params.model,
        cwd: params.cwd,
        approval_policy,
        effort: params.effort,
        summary: params.summary,
        ..SettingsUpdate::default()
    };
    if let Some(value) = params.sandbox_policy.filter(|v| !v.is_null()) {
        let sandbox = policy::sandbox_policy(method, &value)?;
        update.sandbox_mode = Some(sandbox.mode.to_string());
        update.writable_roots = Some(
            sandbox
                .writable_roots
                .iter()
                .map(|root| root.display().to_string())
                .collect(),
        );
        update.network_access = Some(sandbox.network_access);
        update.exclude_tmpdir_env_var = Some(sandbox.exclude_tmpdir_env_var);
        update.exclude_slash_tmp = Some(sandbox.exclude_slash_tmp);
    }
    Ok(Checked { update, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(value: Value) -> SettingsParams {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn applied_refused_and_warned_settings_are_told_apart() {
        let checked = check(
            "turn/start",
            params(
                json!({"model": "m", "cwd": "/tmp", "approvalPolicy": "on-request",
                          "effort": "high", "summary": "concise",
                          "sandboxPolicy": {"type": "readOnly"},
                          "personality": "friendly", "turnTrigger": null}),
            ),
        )
        .unwrap();
        assert_eq!(
            checked.update.approval_policy.as_deref(),
            Some("on-request")
        );
        assert_eq!(checked.update.effort.as_deref(), Some("high"));
        assert_eq!(checked.update.sandbox_mode.as_deref(), Some("read-only"));
        assert_eq!(checked.update.network_access, Some(false));
        assert!(checked.warnings.is_empty());
        let granular = check(
            "turn/start",
            params(json!({"approvalPolicy": {"granular": {
                "sandbox_approval": true, "rules": true, "mcp_elicitations": true}}})),
        )
        .unwrap();
        assert_eq!(
            granular.update.approval_policy.as_deref(),
            Some("untrusted")
        );
        assert_eq!(granular.warnings.len(), 1);
        let untouched = check("turn/start", params(json!({"sandboxPolicy": null}))).unwrap();
        assert!(!untouched.changes_anything());
        for (refused, named) in [
            (json!({"outputSchema": {"type": "object"}}), "outputSchema"),
            (json!({"approvalPolicy": "sometimes"}), "sometimes"),
            (json!({"sandboxPolicy": {"type": "nowhere"}}), "nowhere"),
            (json!({"sandbox": "read-only"}), "sandboxPolicy"),
            (json!({"permissions": ":workspace"}), ":workspace"),
        ] {
            let error = check("thread/settings/update", params(refused.clone()))
                .err()
                .unwrap();
            assert_eq!(error.code, -32602, "{refused}");
            assert!(
                error.message.contains(named),
                "{refused}: {}",
                error.message
            );
        }
        assert!(check("turn/start", params(json!({"environments": null}))).is_ok());
        assert!(check("turn/start", params(json!({"permissions": null}))).is_ok());
    }
}
