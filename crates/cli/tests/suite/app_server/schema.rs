//! The compatibility oracle: the JSON Schema of the Codex 0.171 app-server
//! protocol, vendored in `crates/app-server-protocol/schema/codex-0.171/` (one
//! bundle), compiled once per message type, and the check that every line
//! `tiller app-server` prints is what that protocol allows.
//!
//! [`check_line`] is called on every line a test reads, so every test checks
//! compatibility, not only the ones about it. tiller's one extension
//! (`thread/interrupt`) has no schema; its shape is checked by hand.

use std::collections::HashMap;
use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

/// The bundled schema: every message type under `definitions`.
const SCHEMA_BUNDLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../app-server-protocol/schema/codex-0.171/codex_app_server_protocol.schemas.json"
);

/// The schema of the result of `method`, or `None` for tiller's extensions.
pub fn response_schema(method: &str) -> Option<&'static str> {
    Some(match method {
        "initialize" => "v1/InitializeResponse",
        "thread/start" => "v2/ThreadStartResponse",
        "thread/resume" => "v2/ThreadResumeResponse",
        "turn/start" => "v2/TurnStartResponse",
        "turn/steer" => "v2/TurnSteerResponse",
        "turn/interrupt" => "v2/TurnInterruptResponse",
        "thread/queue/add" => "v2/ThreadQueueAddResponse",
        "thread/queue/list" => "v2/ThreadQueueListResponse",
        "thread/queue/update" => "v2/ThreadQueueUpdateResponse",
        "thread/queue/delete" => "v2/ThreadQueueDeleteResponse",
        "thread/queue/reorder" => "v2/ThreadQueueReorderResponse",
        "thread/queue/start" => "v2/ThreadQueueStartResponse",
        "thread/unsubscribe" => "v2/ThreadUnsubscribeResponse",
        "thread/loaded/list" => "v2/ThreadLoadedListResponse",
        "thread/read" => "v2/ThreadReadResponse",
        "thread/turns/list" => "v2/ThreadTurnsListResponse",
        "thread/list" => "v2/ThreadListResponse",
        "thread/settings/update" => "v2/ThreadSettingsUpdateResponse",
        "thread/fork" => "v2/ThreadForkResponse",
        "thread/metadata/update" => "v2/ThreadMetadataUpdateResponse",
        "thread/archive" => "v2/ThreadArchiveResponse",
        "thread/unarchive" => "v2/ThreadUnarchiveResponse",
        "thread/delete" => "v2/ThreadDeleteResponse",
        "thread/items/list" => "v2/ThreadItemsListResponse",
        "thread/name/set" => "v2/ThreadSetNameResponse",
        "model/list" => "v2/ModelListResponse",
        "thread/revert" => "v2/ThreadRevertResponse",
        // tiller's: answered as `thread/revert` is.
        "thread/unrevert" => "v2/ThreadRevertResponse",
        "thread/compact/start" => "v2/ThreadCompactStartResponse",
        _ => return None,
    })
}

/// The schema of the params of notification `method`, or `None` for tiller's extensions.
pub fn notification_schema(method: &str) -> Option<&'static str> {
    Some(match method {
        "thread/started" => "v2/ThreadStartedNotification",
        "thread/status/changed" => "v2/ThreadStatusChangedNotification",
        "turn/started" => "v2/TurnStartedNotification",
        "turn/completed" => "v2/TurnCompletedNotification",
        "item/started" => "v2/ItemStartedNotification",
        "item/completed" => "v2/ItemCompletedNotification",
        "item/agentMessage/delta" => "v2/AgentMessageDeltaNotification",
        "item/commandExecution/outputDelta" => "v2/CommandExecutionOutputDeltaNotification",
        "error" => "v2/ErrorNotification",
        "warning" => "v2/WarningNotification",
        "thread/queue/changed" => "v2/ThreadQueueChangedNotification",
        "thread/tokenUsage/updated" => "v2/ThreadTokenUsageUpdatedNotification",
        "serverRequest/resolved" => "v2/ServerRequestResolvedNotification",
        "thread/archived" => "v2/ThreadArchivedNotification",
        "thread/unarchived" => "v2/ThreadUnarchivedNotification",
        "thread/deleted" => "v2/ThreadDeletedNotification",
        "thread/closed" => "v2/ThreadClosedNotification",
        "thread/name/updated" => "v2/ThreadNameUpdatedNotification",
        "thread/reverted" => "v2/ThreadRevertedNotification",
        "turn/diff/updated" => "v2/TurnDiffUpdatedNotification",
        "turn/plan/updated" => "v2/TurnPlanUpdatedNotification",
        "item/mcpToolCall/progress" => "v2/McpToolCallProgressNotification",
        "mcpServer/startupStatus/updated" => "v2/McpServerStatusUpdatedNotification",
        _ => return None,
    })
}

/// Every method the server knows (the protocol crate's table): each has a
/// response schema, but tiller's one extension, `thread/interrupt`.
const METHODS: &[&str] = tiller_client::protocol::ClientRequest::METHODS;

/// Every notification the server sends.
const NOTIFICATIONS: &[&str] = &[
    "thread/started",
    "thread/status/changed",
    "turn/started",
    "turn/completed",
    "item/started",
    "item/completed",
    "item/agentMessage/delta",
    "item/commandExecution/outputDelta",
    "error",
    "warning",
    "thread/queue/changed",
    "thread/tokenUsage/updated",
    "serverRequest/resolved",
    "thread/archived",
    "thread/unarchived",
    "thread/deleted",
    "thread/closed",
    "thread/name/updated",
    "thread/reverted",
    "turn/diff/updated",
    "turn/plan/updated",
    "item/mcpToolCall/progress",
    "mcpServer/startupStatus/updated",
];

/// The schema of an error response.
const ERROR_SCHEMA: &str = "JSONRPCError";

/// The schema of a request of the server's (an approval).
const SERVER_REQUEST_SCHEMA: &str = "ServerRequest";

/// Every schema a test may need, compiled on first use and shared by all tests.
fn validator(name: &str) -> &'static Validator {
    static VALIDATORS: OnceLock<HashMap<&'static str, Validator>> = OnceLock::new();
    let all = VALIDATORS.get_or_init(|| {
        let names = METHODS
            .iter()
            .copied()
            .filter_map(response_schema)
            .chain(
                NOTIFICATIONS
                    .iter()
                    .copied()
                    .filter_map(notification_schema),
            )
            .chain([ERROR_SCHEMA, SERVER_REQUEST_SCHEMA]);
        let text = std::fs::read_to_string(SCHEMA_BUNDLE)
            .unwrap_or_else(|e| panic!("cannot read the schema bundle {SCHEMA_BUNDLE}: {e}"));
        let bundle: Value = serde_json::from_str(&text).unwrap();
        names
            .map(|name| {
                // `v2/Name` is `#/definitions/v2/Name`; `v1/Name` and the
                // JSON-RPC types sit at the top of `definitions`.
                let pointer = name.strip_prefix("v1/").unwrap_or(name);
                let schema = serde_json::json!({
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "definitions": bundle["definitions"],
                    "allOf": [{ "$ref": format!("#/definitions/{pointer}") }],
                });
                let compiled = jsonschema::draft7::new(&schema)
                    .unwrap_or_else(|e| panic!("the schema {name} does not compile: {e}"));
                (name, compiled)
            })
            .collect()
    });
    all.get(name)
        .unwrap_or_else(|| panic!("no schema {name} was compiled"))
}

/// Whether `instance` is valid against schema `name`.
pub fn is_valid(name: &str, instance: &Value) -> bool {
    validator(name).is_valid(instance)
}

/// Panic unless `instance` is valid against schema `name`, listing every violation.
pub fn assert_valid(name: &str, instance: &Value, line: &Value) {
    let errors: Vec<String> = validator(name)
        .iter_errors(instance)
        .map(|e| format!("  at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not compatible with {name}.json:\n{}\nline: {line}",
        errors.join("\n")
    );
}

/// Which schema (or hand check) a line was checked against: `v2/…` names, or
/// `tiller:<method>` for extensions.
pub type Kind = String;

/// Check one line the server printed. `sent_method` is the method of the
/// request whose id the line carries, if it is a response to one of ours.
/// Returns what it was checked against.
pub fn check_line(line: &Value, sent_method: Option<&str>) -> Kind {
    let object = line
        .as_object()
        .unwrap_or_else(|| panic!("a line that is not a JSON object: {line}"));
    assert!(
        !object.contains_key("jsonrpc"),
        "the wire has no `jsonrpc` field: {line}"
    );
    let has = |key: &str| object.contains_key(key);
    match (has("id"), has("method")) {
        (true, true) => {
            assert_valid(SERVER_REQUEST_SCHEMA, line, line);
            SERVER_REQUEST_SCHEMA.to_string()
        }
        (false, true) => check_notification(line),
        (true, false) if has("error") => {
            assert!(!has("result"), "both `result` and `error`: {line}");
            // A line whose id could not be read is answered with `id: null`,
            // which JSON-RPC allows and the Codex schema (an id is a string or an
            // integer) does not know: the rest of it must still fit.
            let mut fitted = line.clone();
            if fitted["id"].is_null() {
                fitted["id"] = Value::from(0);
            }
            assert_valid(ERROR_SCHEMA, &fitted, line);
            ERROR_SCHEMA.to_string()
        }
        (true, false) => {
            assert!(has("result"), "a response without `result`: {line}");
            let method =
                sent_method.unwrap_or_else(|| panic!("a response to a request never sent: {line}"));
            check_result(method, &line["result"], line)
        }
        (false, false) => panic!("neither a response nor a notification: {line}"),
    }
}

fn check_notification(line: &Value) -> Kind {
    let method = line["method"]
        .as_str()
        .unwrap_or_else(|| panic!("`method` is not a string: {line}"));
    let params = &line["params"];
    if let Some(name) = notification_schema(method) {
        assert_valid(name, params, line);
        return name.to_string();
    }
    panic!("a notification no schema describes: {method}: {line}")
}

fn check_result(method: &str, result: &Value, line: &Value) -> Kind {
    if let Some(name) = response_schema(method) {
        assert_valid(name, result, line);
        return name.to_string();
    }
    match method {
        "thread/interrupt" => assert_eq!(result, &serde_json::json!({}), "{line}"),
        other => panic!("a result for a method the suite does not know: {other}: {line}"),
    }
    format!("tiller:{method}")
}

#[test]
fn every_method_of_the_server_has_a_response_schema_but_tillers_extension() {
    let missing: Vec<&str> = METHODS
        .iter()
        .copied()
        .filter(|method| response_schema(method).is_none())
        .collect();
    assert_eq!(missing, ["thread/interrupt"]);
}
