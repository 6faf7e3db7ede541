//! Codex's `codex` and `codex-reply` tools, as aliases of `tiller` and
//! `tiller-reply`: Codex removed `codex mcp-server` (0.154), and the hosts
//! and scripts that called those tools keep working against tiller.
//!
//! The parameters are Codex's names; unknown ones are accepted (Codex added
//! some over its versions). What tiller has no use for yet is accepted and
//! logged: `profile`, `include-plan-tool`, `compact-prompt`. The answer is the
//! `tiller` tool's, with Codex's `content` (the agent's last message) added to
//! its `structuredContent` next to `threadId`.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use tiller_core::config::ApprovalPolicy;

use crate::server::ThreadStart;

/// Parameters of the `codex` tool (Codex's names).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct CodexParams {
    /// The initial user prompt of the session.
    pub prompt: String,
    /// The model, e.g. `gpt-5-codex`.
    #[serde(default)]
    pub model: Option<String>,
    /// The working folder.
    #[serde(default)]
    pub cwd: Option<String>,
    /// `untrusted`, `on-failure`, `on-request` (read as `untrusted`) or `never`.
    #[serde(default)]
    pub approval_policy: Option<String>,
    /// Replaces the system instructions.
    #[serde(default)]
    pub base_instructions: Option<String>,
    /// Added after the system instructions.
    #[serde(default)]
    pub developer_instructions: Option<String>,
    /// Config overrides: dotted keys of `config.toml` and their values.
    #[serde(default)]
    pub config: Option<Map<String, Value>>,
    /// Codex's sandbox mode: `read-only`, `workspace-write` or `danger-full-access`.
    #[serde(default)]
    pub sandbox: Option<String>,
    /// A Codex config profile; tiller has none (accepted and ignored).
    #[serde(default)]
    pub profile: Option<String>,
    /// Codex's plan tool; tiller has none (accepted and ignored).
    #[serde(default)]
    pub include_plan_tool: Option<bool>,
    /// Codex's compaction prompt; accepted and ignored.
    #[serde(default)]
    pub compact_prompt: Option<String>,
}

/// Parameters of the `codex-reply` tool: `threadId`, or Codex's older
/// `conversationId`, and the prompt.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodexReplyParams {
    /// The session to continue (the `threadId` a `codex` call returned).
    #[serde(default)]
    pub thread_id: Option<String>,
    /// The same, under Codex's older name.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// The next user message.
    pub prompt: String,
}

impl CodexReplyParams {
    /// The thread asked for, or why there is none.
    pub fn thread(&self) -> Result<&str, &'static str> {
        self.thread_id
            .as_deref()
            .or(self.conversation_id.as_deref())
            .ok_or("codex-reply needs `threadId` (or `conversationId`)")
    }
}

impl CodexParams {
    /// The session to start, or why the parameters cannot be used.
    pub fn thread_start(&self) -> Result<ThreadStart, String> {
        for (name, given) in [
            ("profile", self.profile.is_some()),
            ("include-plan-tool", self.include_plan_tool.is_some()),
            ("compact-prompt", self.compact_prompt.is_some()),
        ] {
            if given {
                tracing::info!("codex tool: `{name}` is accepted and not used by tiller");
            }
        }
        let approval_policy = match self.approval_policy.as_deref() {
            None => None,
            Some(name) => Some(name.parse::<ApprovalPolicy>().map_err(|e| e.to_string())?),
        };
        // In key order, whatever order the JSON object kept.
        let mut cli_overrides = self
            .config
            .iter()
            .flatten()
            .map(|(key, value)| Ok((key.clone(), override_value(key, value)?)))
            .collect::<Result<Vec<_>, String>>()?;
        cli_overrides.sort();
        Ok(ThreadStart {
            model: self.model.clone(),
            cwd: self.cwd.clone(),
            approval_policy,
            sandbox_mode: self
                .sandbox
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e: tiller_core::config::ConfigError| e.to_string())?,
            base_instructions: self.base_instructions.clone(),
            developer_instructions: self.developer_instructions.clone(),
            cli_overrides,
        })
    }
}

/// A `config` value as the TOML of a `-c key=value` override.
fn override_value(key: &str, value: &Value) -> Result<String, String> {
    toml::Value::try_from(value)
        .map(|value| value.to_string())
        .map_err(|e| format!("config.{key}: {e}"))
}

/// Codex's `structuredContent`: `threadId` and `content` (the last
/// message) added to tiller's.
pub fn codex_content(structured: &mut Option<Value>) {
    if let Some(Value::Object(fields)) = structured {
        let content = fields
            .get("lastAgentMessage")
            .cloned()
            .filter(|v| !v.is_null())
            .or_else(|| fields.get("error").cloned())
            .unwrap_or_else(|| Value::String(String::new()));
        fields.insert("content".to_string(), content);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_parameters_become_a_thread_start() {
        let params: CodexParams = serde_json::from_value(serde_json::json!({
            "prompt": "hi",
            "approval-policy": "on-request",
            "developer-instructions": "be brief",
            "sandbox": "workspace-write",
            "config": {"model_reasoning_effort": "high", "model_context_window": 8000},
            "some-future-option": true,
        }))
        .unwrap();
        let start = params.thread_start().unwrap();
        assert_eq!(start.approval_policy, Some(ApprovalPolicy::OnRequest));
        assert_eq!(
            start.sandbox_mode,
            Some(tiller_core::config::SandboxMode::WorkspaceWrite)
        );
        assert_eq!(start.developer_instructions.as_deref(), Some("be brief"));
        assert_eq!(
            start.cli_overrides,
            [
                ("model_context_window".to_string(), "8000".to_string()),
                ("model_reasoning_effort".to_string(), "\"high\"".to_string()),
            ]
        );
        let bad: CodexParams = serde_json::from_value(
            serde_json::json!({"prompt": "hi", "approval-policy": "always"}),
        )
        .unwrap();
        assert!(bad.thread_start().is_err());
        let bad: CodexParams =
            serde_json::from_value(serde_json::json!({"prompt": "hi", "sandbox": "open"})).unwrap();
        assert!(bad.thread_start().is_err());
    }

    #[test]
    fn codex_reply_takes_either_id() {
        let old: CodexReplyParams =
            serde_json::from_value(serde_json::json!({"conversationId": "abc", "prompt": "p"}))
                .unwrap();
        assert_eq!(old.thread(), Ok("abc"));
        let none: CodexReplyParams =
            serde_json::from_value(serde_json::json!({"prompt": "p"})).unwrap();
        assert!(none.thread().is_err());
    }
}
