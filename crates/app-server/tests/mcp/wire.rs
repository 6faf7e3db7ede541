//! What the server wrote, as it went over the socket, and the check that it
//! is what the Codex 0.171 protocol allows: the client's read half is
//! tapped ([`Tap`]), so the lines checked are the server's own bytes, not
//! the client's reading of them. The oracle is the JSON Schema bundle
//! vendored in `crates/app-server-protocol/schema/codex-0.171/`.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use jsonschema::Validator;
use serde_json::Value;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

/// The bundled schema: every message type under `definitions`.
const SCHEMA_BUNDLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../app-server-protocol/schema/codex-0.171/codex_app_server_protocol.schemas.json"
);

/// The schema of the params of each notification these tests may see.
fn notification_schema(method: &str) -> Option<&'static str> {
    Some(match method {
        "thread/started" => "v2/ThreadStartedNotification",
        "thread/status/changed" => "v2/ThreadStatusChangedNotification",
        "turn/started" => "v2/TurnStartedNotification",
        "turn/completed" => "v2/TurnCompletedNotification",
        "item/started" => "v2/ItemStartedNotification",
        "item/completed" => "v2/ItemCompletedNotification",
        "item/agentMessage/delta" => "v2/AgentMessageDeltaNotification",
        "item/mcpToolCall/progress" => "v2/McpToolCallProgressNotification",
        "mcpServer/startupStatus/updated" => "v2/McpServerStatusUpdatedNotification",
        "serverRequest/resolved" => "v2/ServerRequestResolvedNotification",
        "thread/tokenUsage/updated" => "v2/ThreadTokenUsageUpdatedNotification",
        "turn/diff/updated" => "v2/TurnDiffUpdatedNotification",
        "warning" => "v2/WarningNotification",
        "error" => "v2/ErrorNotification",
        _ => return None,
    })
}

/// A request of the server's, whole (`{id, method, params}`).
const SERVER_REQUEST: &str = "ServerRequest";
/// An error response.
const ERROR: &str = "JSONRPCError";
/// One item of a turn.
pub const THREAD_ITEM: &str = "v2/ThreadItem";
/// The params of `mcpServer/elicitation/request`.
pub const ELICITATION_PARAMS: &str = "McpServerElicitationRequestParams";

/// Every schema the tests use, compiled on first use and shared by all.
fn validator(name: &str) -> &'static Validator {
    static VALIDATORS: OnceLock<HashMap<&'static str, Validator>> = OnceLock::new();
    let all = VALIDATORS.get_or_init(|| {
        let text = std::fs::read_to_string(SCHEMA_BUNDLE)
            .unwrap_or_else(|e| panic!("cannot read the schema bundle {SCHEMA_BUNDLE}: {e}"));
        let bundle: Value = serde_json::from_str(&text).unwrap();
        let notifications = [
            "thread/started",
            "thread/status/changed",
            "turn/started",
            "turn/completed",
            "item/started",
            "item/completed",
            "item/agentMessage/delta",
            "item/mcpToolCall/progress",
            "mcpServer/startupStatus/updated",
            "serverRequest/resolved",
            "thread/tokenUsage/updated",
            "turn/diff/updated",
            "warning",
            "error",
        ];
        notifications
            .into_iter()
            .filter_map(notification_schema)
            .chain([SERVER_REQUEST, ERROR, THREAD_ITEM, ELICITATION_PARAMS])
            .map(|name| {
                // `v2/Name` is `#/definitions/v2/Name`; the others sit at
                // the top of `definitions`.
                let schema = serde_json::json!({
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "definitions": bundle["definitions"],
                    "allOf": [{ "$ref": format!("#/definitions/{name}") }],
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

/// Panic unless `instance` is valid against schema `name`, listing every violation.
pub fn assert_valid(name: &str, instance: &Value) {
    let errors: Vec<String> = validator(name)
        .iter_errors(instance)
        .map(|e| format!("  at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not compatible with Codex's {name}:\n{}\n{instance}",
        errors.join("\n")
    );
}

/// A read half that copies what it reads to a [`Wire`].
pub struct Tap<R> {
    inner: R,
    seen: mpsc::UnboundedSender<Vec<u8>>,
}

impl<R> Tap<R> {
    /// Tap `inner`; the [`Wire`] gets every byte read from it.
    pub fn new(inner: R) -> (Tap<R>, Wire) {
        let (seen, chunks) = mpsc::unbounded_channel();
        let wire = Wire {
            chunks,
            partial: Vec::new(),
            lines: Vec::new(),
        };
        (Tap { inner, seen }, wire)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Tap<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &read {
            let _ = this.seen.send(buf.filled()[before..].to_vec());
        }
        read
    }
}

/// The lines the server wrote to the client, as tapped.
pub struct Wire {
    chunks: mpsc::UnboundedReceiver<Vec<u8>>,
    partial: Vec<u8>,
    lines: Vec<Value>,
}

impl Wire {
    /// Every whole line read so far, as JSON.
    pub fn lines(&mut self) -> &[Value] {
        while let Ok(chunk) = self.chunks.try_recv() {
            self.partial.extend_from_slice(&chunk);
        }
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let value = serde_json::from_slice(&line).unwrap_or_else(|e| {
                panic!(
                    "the server wrote a line that is not JSON ({e}): {}",
                    String::from_utf8_lossy(&line)
                )
            });
            self.lines.push(value);
        }
        &self.lines
    }

    /// Check every line read so far against the Codex schema: each
    /// notification's params, each request of the server's whole, each
    /// error response. (Results are the app-server suite's business.)
    pub fn check(&mut self) {
        for line in self.lines() {
            let has = |key: &str| line.get(key).is_some();
            match (has("id"), has("method")) {
                (true, true) => assert_valid(SERVER_REQUEST, line),
                (false, true) => {
                    let method = line["method"].as_str().unwrap_or_default();
                    let schema = notification_schema(method)
                        .unwrap_or_else(|| panic!("a notification no test expects: {line}"));
                    assert_valid(schema, &line["params"]);
                }
                (true, false) if has("error") => assert_valid(ERROR, line),
                (true, false) => assert!(has("result"), "neither result nor error: {line}"),
                (false, false) => panic!("neither a response nor a notification: {line}"),
            }
        }
    }
}
