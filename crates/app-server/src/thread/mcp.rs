//! A thread's MCP servers over the app-server. The engine starts them with
//! the session and says how each start goes, and when one asks the person
//! for input, in session-level events (no turn id); the driver shows them:
//! - each start as `mcpServer/startupStatus/updated` to the subscribers, and
//!   where every server stands to a connection that subscribes later (it
//!   missed the updates);
//! - each elicitation as the `mcpServer/elicitation/request` server request
//!   ([`super::server_requests`]), whose answer goes to
//!   `SessionHandle::resolve_elicitation`. An error, an answer that does not
//!   parse, or nobody left to answer is `cancel`: the server is told the
//!   person dismissed it, never that they accepted.

use serde_json::Value;
use tiller_app_server_protocol::{
    McpServerElicitationAction, McpServerElicitationRequestParams, McpServerElicitationResponse,
    McpServerStartupState, McpServerStatusUpdatedNotification, ServerNotification, ServerRequest,
};
use tiller_protocol::{ElicitationAction, McpServerState};

use super::ThreadDriver;
use super::server_requests::Awaiting;
use crate::outgoing::Outgoing;

/// The keys of a requested schema Codex's `McpElicitationSchema` allows.
const FORM_SCHEMA_KEYS: [&str; 4] = ["$schema", "type", "properties", "required"];

/// Where each of a thread's MCP servers stands: its last status update, in
/// the order the servers were first reported.
#[derive(Debug, Default)]
pub(super) struct McpStatuses(Vec<McpServerStatusUpdatedNotification>);

impl McpStatuses {
    fn update(&mut self, update: McpServerStatusUpdatedNotification) {
        match self.0.iter_mut().find(|known| known.name == update.name) {
            Some(known) => *known = update,
            None => self.0.push(update),
        }
    }
}

/// An elicitation the engine shows.
pub(super) struct Elicitation {
    pub(super) server: String,
    pub(super) request_id: String,
    pub(super) message: String,
    pub(super) requested_schema: Value,
}

impl ThreadDriver {
    /// An MCP server of this thread is starting, ready, or failed.
    pub(super) fn mcp_status(
        &mut self,
        server: String,
        status: McpServerState,
        error: Option<String>,
    ) {
        let update = McpServerStatusUpdatedNotification {
            thread_id: Some(self.info.id.clone()),
            name: server,
            environment_id: None,
            status: match status {
                McpServerState::Starting => McpServerStartupState::Starting,
                McpServerState::Ready => McpServerStartupState::Ready,
                McpServerState::Failed => McpServerStartupState::Failed,
            },
            error,
            failure_reason: None,
        };
        self.mcp.update(update.clone());
        self.broadcast(&ServerNotification::McpServerStatusUpdated(update));
    }

    /// Tell a connection that just subscribed where every server stands.
    pub(super) fn tell_mcp_statuses(&self, to: &Outgoing) {
        for update in &self.mcp.0 {
            to.notify(&ServerNotification::McpServerStatusUpdated(update.clone()));
        }
    }

    /// An MCP server asks the person for input: ask the subscribers. It
    /// belongs to the running turn, as the events have it (the call that
    /// caused it is that turn's), so the turn's end resolves it.
    pub(super) fn ask_elicitation(&mut self, elicitation: Elicitation) {
        let turn_id = self.clock.as_ref().map(|(turn_id, _)| turn_id.clone());
        let request = ServerRequest::McpServerElicitation(McpServerElicitationRequestParams {
            thread_id: self.info.id.clone(),
            turn_id: turn_id.clone(),
            server_name: elicitation.server,
            environment_id: None,
            mode: "form".to_string(),
            meta: None,
            message: elicitation.message,
            requested_schema: form_schema(elicitation.requested_schema),
        });
        self.ask(
            request,
            turn_id,
            Awaiting::Elicitation {
                request_id: elicitation.request_id,
            },
        );
    }
}

/// A requested schema as Codex's form mode has it: the object's `type`,
/// `properties` and `required` (and `$schema`); MCP's `title` and
/// `description` of the whole form are dropped.
fn form_schema(schema: Value) -> Value {
    let Value::Object(mut schema) = schema else {
        return serde_json::json!({"type": "object", "properties": {}});
    };
    schema.retain(|key, _| FORM_SCHEMA_KEYS.contains(&key.as_str()));
    schema
        .entry("type")
        .or_insert_with(|| Value::from("object"));
    schema
        .entry("properties")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    Value::Object(schema)
}

/// A client's answer as the engine's: `accept` with its content (an object),
/// `decline`, or `cancel`. An error, or an answer that does not parse, is
/// `cancel`.
pub(super) fn elicitation_answer(
    result: &Result<Value, Value>,
) -> (ElicitationAction, Option<Value>) {
    let cancel = (ElicitationAction::Cancel, None);
    let Ok(result) = result else {
        return cancel;
    };
    let Ok(response) = serde_json::from_value::<McpServerElicitationResponse>(result.clone())
    else {
        return cancel;
    };
    match response.action {
        McpServerElicitationAction::Accept => match response.content {
            None | Some(Value::Null) => (ElicitationAction::Accept, None),
            Some(content @ Value::Object(_)) => (ElicitationAction::Accept, Some(content)),
            // MCP's content is an object of the requested fields.
            Some(_) => cancel,
        },
        McpServerElicitationAction::Decline => (ElicitationAction::Decline, None),
        McpServerElicitationAction::Cancel => cancel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_map_to_the_engines_and_anything_unreadable_cancels() {
        let of = |v: Value| elicitation_answer(&Ok(v));
        assert_eq!(
            of(json!({"action": "accept", "content": {"name": "Ada"}, "_meta": null})),
            (ElicitationAction::Accept, Some(json!({"name": "Ada"})))
        );
        assert_eq!(
            of(json!({"action": "accept"})),
            (ElicitationAction::Accept, None)
        );
        // Content comes with `accept` only.
        assert_eq!(
            of(json!({"action": "decline", "content": {"name": "Ada"}})),
            (ElicitationAction::Decline, None)
        );
        assert_eq!(
            of(json!({"action": "cancel"})),
            (ElicitationAction::Cancel, None)
        );
        assert_eq!(
            of(json!({"action": "yes"})),
            (ElicitationAction::Cancel, None)
        );
        assert_eq!(of(json!({})), (ElicitationAction::Cancel, None));
        assert_eq!(
            of(json!({"action": "accept", "content": "Ada"})),
            (ElicitationAction::Cancel, None)
        );
        assert_eq!(
            elicitation_answer(&Err(json!({"code": -32601, "message": "no"}))),
            (ElicitationAction::Cancel, None)
        );
    }

    #[test]
    fn a_requested_schema_keeps_what_codexs_form_allows() {
        let schema = json!({
            "type": "object",
            "title": "Name",
            "description": "who you are",
            "properties": {"name": {"type": "string", "title": "Name"}},
            "required": ["name"],
        });
        assert_eq!(
            form_schema(schema),
            json!({
                "type": "object",
                "properties": {"name": {"type": "string", "title": "Name"}},
                "required": ["name"],
            })
        );
        assert_eq!(
            form_schema(Value::Null),
            json!({"type": "object", "properties": {}})
        );
    }
}
