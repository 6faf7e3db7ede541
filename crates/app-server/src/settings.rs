//! What `turn/start` and `thread/settings/update` may change for a thread's
//! next turns. tiller applies the model, the folder, the approval policy and
//! the reasoning effort and summary; a sandbox policy is accepted with a
//! `warning` (tiller has no sandbox yet, and says so); every other setting
//! Codex knows is refused by name. Nothing a client asks is dropped
//! silently.

use serde_json::Value;
use tiller_app_server_protocol::{ErrorCode, JsonRpcError, SettingsParams};
use tiller_protocol::SettingsUpdate;

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

/// Settings of a sandbox: accepted, not enforced, and the client is told.
const NOT_ENFORCED: &[&str] = &["sandboxPolicy", "sandbox", "permissions"];

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
    }
    let warnings = params
        .other
        .iter()
        .filter(|(key, value)| NOT_ENFORCED.contains(&key.as_str()) && sandboxed(value))
        .map(|(key, value)| {
            format!(
                "{method}: `{key}` {value} is not enforced: tiller has no sandbox yet, and commands run with your permissions"
            )
        })
        .collect();
    let approval_policy = params
        .approval_policy
        .as_ref()
        .map(|value| approval_policy(method, value))
        .transpose()?;
    Ok(Checked {
        update: SettingsUpdate {
            model: params.model,
            cwd: params.cwd,
            approval_policy,
            effort: params.effort,
            summary: params.summary,
            ..SettingsUpdate::default()
        },
        warnings,
    })
}

/// Codex's `AskForApproval` as tiller's policy: `never`, or ask.
fn approval_policy(method: &str, value: &Value) -> Result<String, JsonRpcError> {
    match value {
        Value::String(name) if name == "never" => Ok("never".to_string()),
        Value::String(name)
            if ["untrusted", "on-request", "on-failure"].contains(&name.as_str()) =>
        {
            Ok("untrusted".to_string())
        }
        Value::Object(o) if o.contains_key("granular") => Ok("untrusted".to_string()),
        other => Err(JsonRpcError::new(
            ErrorCode::InvalidParams,
            format!(
                "{method}: approvalPolicy {other} is not one of never, untrusted, on-request, on-failure, {{granular}}"
            ),
        )),
    }
}

/// Whether a sandbox setting asks for more than full access (what tiller does).
fn sandboxed(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => s != "danger-full-access" && s != "dangerFullAccess",
        Value::Object(o) => o.get("type").and_then(Value::as_str) != Some("dangerFullAccess"),
        _ => true,
    }
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
                          "sandboxPolicy": {"type": "workspaceWrite"},
                          "personality": "friendly", "turnTrigger": null}),
            ),
        )
        .unwrap();
        assert_eq!(checked.update.approval_policy.as_deref(), Some("untrusted"));
        assert_eq!(checked.update.effort.as_deref(), Some("high"));
        assert_eq!(checked.warnings.len(), 1);
        assert!(checked.warnings[0].contains("sandboxPolicy"));
        let full = check(
            "turn/start",
            params(json!({"sandboxPolicy": {"type": "dangerFullAccess"}})),
        )
        .unwrap();
        assert!(full.warnings.is_empty());
        assert!(!full.changes_anything());
        let refused = check(
            "turn/start",
            params(json!({"outputSchema": {"type": "object"}})),
        )
        .err()
        .unwrap();
        assert_eq!(refused.code, -32602);
        assert!(refused.message.contains("outputSchema"));
        let bad = check(
            "thread/settings/update",
            params(json!({"approvalPolicy": "sometimes"})),
        )
        .err()
        .unwrap();
        assert!(bad.message.contains("sometimes"));
        assert!(check("turn/start", params(json!({"environments": null}))).is_ok());
    }
}
