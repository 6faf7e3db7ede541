//! One MCP tool as a [`Tool`]: its qualified name and sanitised schema, and a
//! call of it (an item, approval, progress, the result mapped to what the
//! model reads, and cancellation that reaches the server).

use std::sync::Arc;
use std::time::Instant;

use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, ContentBlock,
    ServerResult,
};
use rmcp::service::{PeerRequestOptions, RequestHandle};
use serde_json::{Map, Value, json};
use tiller_config::{ApprovalPolicy, McpApproval, McpServerConfig};
use tiller_protocol::{
    EventMsg, Json, McpToolCallResult, McpToolCallStatus, ReviewDecision, TurnItem, TurnItemKind,
};

use super::ServerSlot;
use super::client::Connection;
use crate::tools::{Tool, ToolCall, ToolContext, ToolFuture, ToolOutput};

/// The prefix of every MCP tool's name, as Codex names them.
const PREFIX: &str = "mcp";
/// The longest tool name model APIs take.
const MAX_NAME: usize = 64;
/// The most of a result the model reads; the rest is cut, and the cut said.
const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// The most of a result an item keeps (it is shown, sent to clients and saved).
const MAX_ITEM_BYTES: usize = 256 * 1024;
/// What the model reads of a call aborted while it ran.
const ABORTED: &str =
    "aborted by the user while the MCP tool ran; the server was told to cancel the call";

/// A tool as its server listed it, ready to offer.
#[derive(Debug, Clone)]
pub(crate) struct ToolInfo {
    /// `mcp__<server>__<tool>`, within the model APIs' limits.
    pub(crate) qualified: String,
    /// Its name on the server.
    pub(crate) name: String,
    /// The spec offered to the model.
    pub(crate) spec: Value,
    /// Whether it says it only reads (`readOnlyHint`).
    pub(crate) read_only: bool,
}

/// The tools of `listed` that `config` offers, named and sanitised; a name
/// that collides with an earlier one after sanitising is left out.
pub(crate) fn offered(config: &McpServerConfig, listed: Vec<rmcp::model::Tool>) -> Vec<ToolInfo> {
    let mut tools: Vec<ToolInfo> = Vec::new();
    for tool in listed {
        if !config.offers(&tool.name) {
            continue;
        }
        let qualified = qualified_name(&config.name, &tool.name);
        if tools.iter().any(|t| t.qualified == qualified) {
            tracing::warn!(server = %config.name, tool = %tool.name, "two tools share the name {qualified}; the second is not offered");
            continue;
        }
        let description = tool
            .description
            .as_deref()
            .or(tool.title.as_deref())
            .unwrap_or("")
            .to_owned();
        let spec = json!({
            "type": "function",
            "name": qualified,
            "description": description,
            "strict": false,
            "parameters": sanitized_schema(&tool.input_schema),
        });
        let read_only = tool
            .annotations
            .as_ref()
            .and_then(|a| a.read_only_hint)
            .unwrap_or(false);
        tools.push(ToolInfo {
            qualified,
            name: tool.name.into_owned(),
            spec,
            read_only,
        });
    }
    tools
}

/// `mcp__<server>__<tool>` with anything but `[a-zA-Z0-9_-]` made `_`; a name
/// longer than model APIs take is cut and given a hash of the whole, so it
/// stays unique.
pub(crate) fn qualified_name(server: &str, tool: &str) -> String {
    let raw = format!("{PREFIX}__{server}__{tool}");
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() <= MAX_NAME && clean == raw {
        return clean;
    }
    // FNV-1a of the raw name: stable across runs, so a resumed session's
    // history names the same tool.
    let hash = raw.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let suffix = format!("_{:08x}", hash as u32);
    let keep = clean.len().min(MAX_NAME - suffix.len());
    format!("{}{suffix}", &clean[..keep])
}

/// The input schema as model APIs take it: an object schema with
/// `properties`, without `$schema` (which some providers refuse).
fn sanitized_schema(schema: &Map<String, Value>) -> Value {
    let mut schema = schema.clone();
    schema.remove("$schema");
    schema.insert("type".to_owned(), json!("object"));
    if !schema.get("properties").is_some_and(Value::is_object) {
        schema.insert("properties".to_owned(), json!({}));
    }
    Value::Object(schema)
}

/// A call of a tool of a server still starting (a model that knows its
/// tools from an earlier session, say): it waits for the server, then runs
/// as the tool the server lists under that name, if any.
pub(crate) struct StartingTool {
    server: Arc<ServerSlot>,
    name: String,
}

impl StartingTool {
    pub(crate) fn new(server: Arc<ServerSlot>, name: &str) -> StartingTool {
        StartingTool {
            server,
            name: name.to_owned(),
        }
    }

    async fn call(&self, call: &ToolCall, ctx: &ToolContext<'_>) -> ToolOutput {
        let started = tokio::select! {
            started = self.server.connection() => started,
            () = ctx.cancel().cancelled() => {
                return ToolOutput::Aborted(crate::history::ABORTED_BEFORE_OUTPUT.to_owned());
            }
        };
        let server = &self.server.config.name;
        if let Err(error) = started {
            return ToolOutput::Output(format!(
                "the MCP server {server} is not available: {error}"
            ));
        }
        let tools = self.server.tools();
        match tools.iter().find(|tool| tool.qualified == self.name) {
            Some(info) => {
                let tool = McpTool::new(Arc::clone(&self.server), info.clone());
                tool.call(call, ctx).await
            }
            None => {
                let names: Vec<&str> = tools.iter().map(|t| t.qualified.as_str()).collect();
                ToolOutput::Output(format!(
                    "unknown tool '{}': the MCP server {server} offers {}",
                    self.name,
                    names.join(", ")
                ))
            }
        }
    }
}

impl Tool for StartingTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn spec(&self) -> Value {
        // Never offered: its server is not ready.
        Value::Null
    }

    fn run<'a>(&'a self, call: &'a ToolCall, ctx: &'a ToolContext<'a>) -> ToolFuture<'a> {
        Box::pin(self.call(call, ctx))
    }
}

/// A call of one MCP tool.
pub(crate) struct McpTool {
    server: Arc<ServerSlot>,
    info: ToolInfo,
}

impl McpTool {
    pub(crate) fn new(server: Arc<ServerSlot>, info: ToolInfo) -> McpTool {
        McpTool { server, info }
    }

    /// Whether a call asks the person first.
    fn asks(&self, policy: ApprovalPolicy) -> bool {
        match self.server.config.approval_for(&self.info.name) {
            McpApproval::Approve => false,
            McpApproval::Prompt => true,
            // The server runs outside the sandbox: a call that may change
            // something is asked about wherever the person asks to be asked.
            McpApproval::Auto => {
                matches!(
                    policy,
                    ApprovalPolicy::Untrusted | ApprovalPolicy::OnRequest
                ) && !self.info.read_only
            }
        }
    }
}

impl Tool for McpTool {
    // The model calls it by its qualified name, not the server's.
    #[allow(clippy::misnamed_getters)]
    fn name(&self) -> &str {
        &self.info.qualified
    }

    fn spec(&self) -> Value {
        self.info.spec.clone()
    }

    fn run<'a>(&'a self, call: &'a ToolCall, ctx: &'a ToolContext<'a>) -> ToolFuture<'a> {
        Box::pin(self.call(call, ctx))
    }
}

/// How a call ended, for its item.
struct Ended {
    status: McpToolCallStatus,
    result: Option<McpToolCallResult>,
    error: Option<String>,
}

impl McpTool {
    async fn call(&self, call: &ToolCall, ctx: &ToolContext<'_>) -> ToolOutput {
        let started = Instant::now();
        let server = self.server.config.name.clone();
        let item_id = ctx.new_item_id();
        let arguments = match parse_arguments(&call.arguments) {
            Ok(arguments) => arguments,
            Err(error) => {
                return ToolOutput::Output(format!(
                    "invalid arguments for {}: {error}",
                    self.info.qualified
                ));
            }
        };
        let item = |ended: Option<Ended>| {
            let (status, result, error) = match ended {
                Some(e) => (Some(e.status), e.result, e.error),
                None => (None, None, None),
            };
            let duration_ms = status.map(|_| millis(started));
            TurnItem::new(
                item_id.clone(),
                TurnItemKind::McpToolCall {
                    call_id: call.call_id.clone(),
                    server: server.clone(),
                    tool: self.info.name.clone(),
                    arguments: Json(Value::Object(arguments.clone())),
                    status,
                    result,
                    error,
                    duration_ms,
                },
            )
        };
        let failed = |error: String| Ended {
            status: McpToolCallStatus::Failed,
            result: None,
            error: Some(error),
        };

        let key = vec![self.info.qualified.clone()];
        if self.asks(ctx.approval_policy()) && !ctx.approved_for_session(&key) {
            let shown = vec![
                self.info.qualified.clone(),
                Value::Object(arguments.clone()).to_string(),
            ];
            match ctx
                .ask_exec_approval(&item_id, &shown, &ctx.cwd(), None, &key)
                .await
            {
                Ok(ReviewDecision::Approved | ReviewDecision::ApprovedForSession) => {}
                Ok(ReviewDecision::Denied) => {
                    ctx.item_started(item(None));
                    let why = "the user declined this call; it did not run";
                    ctx.item_completed(item(Some(failed(why.to_owned()))));
                    return ToolOutput::Output(why.to_owned());
                }
                Ok(ReviewDecision::Abort) | Err(_) => {
                    return ToolOutput::Aborted(crate::history::ABORTED_BEFORE_OUTPUT.to_owned());
                }
            }
        }
        ctx.item_started(item(None));

        let connection = tokio::select! {
            connection = self.server.connection() => connection,
            () = ctx.cancel().cancelled() => {
                ctx.item_completed(item(Some(Ended { status: McpToolCallStatus::Aborted, result: None, error: None })));
                return ToolOutput::Aborted(crate::history::ABORTED_BEFORE_OUTPUT.to_owned());
            }
        };
        let connection = match connection {
            Ok(connection) => connection,
            Err(error) => {
                let why = format!("the MCP server {server} is not available: {error}");
                ctx.item_completed(item(Some(failed(why.clone()))));
                return ToolOutput::Output(why);
            }
        };

        let params =
            CallToolRequestParams::new(self.info.name.clone()).with_arguments(arguments.clone());
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let peer = connection.service.peer().clone();
        let sent = tokio::select! {
            sent = peer.send_cancellable_request(request, PeerRequestOptions::no_options()) => sent,
            () = ctx.cancel().cancelled() => {
                ctx.item_completed(item(Some(Ended { status: McpToolCallStatus::Aborted, result: None, error: None })));
                return ToolOutput::Aborted(crate::history::ABORTED_BEFORE_OUTPUT.to_owned());
            }
        };
        let mut handle = match sent {
            Ok(handle) => handle,
            Err(e) => {
                self.server.lost(&connection);
                let why = format!("the MCP server {server} could not be reached: {e}");
                ctx.item_completed(item(Some(failed(why.clone()))));
                return ToolOutput::Output(why);
            }
        };
        let token = handle.progress_token.clone();
        let mut progress = connection.progress.watch(token.clone());
        let deadline = tokio::time::sleep(self.server.config.tool_timeout);
        tokio::pin!(deadline);

        let answer = loop {
            tokio::select! {
                biased;
                () = ctx.cancel().cancelled() => break Answer::Cancelled,
                answer = &mut handle.rx => break Answer::Got(Box::new(answer)),
                () = &mut deadline => break Answer::TimedOut,
                Some(message) = progress.recv() => {
                    ctx.emit(EventMsg::McpToolCallProgress {
                        item_id: item_id.clone(),
                        call_id: call.call_id.clone(),
                        message,
                    });
                }
            }
        };
        connection.progress.forget(&token);
        match answer {
            Answer::Cancelled => {
                // Told, not waited for: the turn ends whatever the server does.
                self.tell_cancelled(handle, "interrupted by the user".to_owned());
                ctx.item_completed(item(Some(Ended {
                    status: McpToolCallStatus::Aborted,
                    result: None,
                    error: None,
                })));
                ToolOutput::Aborted(ABORTED.to_owned())
            }
            Answer::TimedOut => {
                let secs = self.server.config.tool_timeout.as_secs_f64();
                self.tell_cancelled(handle, format!("timed out after {secs} s"));
                let why = format!(
                    "the MCP tool did not answer within {secs} s (tool_timeout_sec); the call was cancelled"
                );
                ctx.item_completed(item(Some(failed(why.clone()))));
                ToolOutput::Output(why)
            }
            Answer::Got(answer) => {
                let (ended, output) = self.answered(*answer, &connection).await;
                ctx.item_completed(item(Some(ended)));
                ToolOutput::Output(output)
            }
        }
    }

    /// Send `notifications/cancelled` for the call, in the background, and
    /// then cancel the elicitations its server still waits on: the server
    /// hears of the cancel first, so a tool that was asking stops rather than
    /// taking the elicitation's "cancel" for an answer.
    fn tell_cancelled(&self, handle: RequestHandle<RoleClient>, reason: String) {
        let server = Arc::clone(&self.server);
        tokio::spawn(async move {
            let _ = handle.cancel(Some(reason)).await;
            server.elicitations.cancel_server(&server.config.name);
        });
    }

    /// What the server's answer (or its absence: the transport closed) means
    /// for the item and the model.
    async fn answered(&self, answer: Received, connection: &Arc<Connection>) -> (Ended, String) {
        let server = &self.server.config.name;
        let failed = |why: String| {
            let ended = Ended {
                status: McpToolCallStatus::Failed,
                result: None,
                error: Some(why.clone()),
            };
            (ended, why)
        };
        match answer {
            Ok(Ok(ServerResult::CallToolResult(result))) => {
                let output = model_output(&result);
                let ended = Ended {
                    status: McpToolCallStatus::Completed,
                    result: Some(item_result(result)),
                    error: None,
                };
                (ended, output)
            }
            Ok(Ok(other)) => failed(cut(
                &format!(
                    "the MCP server {server} answered the call with something else: {other:?}"
                ),
                500,
            )),
            Ok(Err(e)) => failed(format!("the MCP tool failed: {e}")),
            Err(_) => {
                // The transport closed under the call: the server exited.
                self.server.lost(connection);
                let tail = connection.stderr_tail();
                connection.kill().await;
                failed(super::client::with_stderr(
                    format!(
                        "the MCP server {server} exited during the call; it is started again when one of its tools is called"
                    ),
                    &tail,
                ))
            }
        }
    }
}

/// The server's answer to a request, or why there is none.
type Received =
    Result<Result<ServerResult, rmcp::ServiceError>, tokio::sync::oneshot::error::RecvError>;

/// How the wait for a call's answer ended.
enum Answer {
    Cancelled,
    TimedOut,
    Got(Box<Received>),
}

/// The model's arguments as a JSON object (empty text: no arguments).
fn parse_arguments(text: &str) -> Result<Map<String, Value>, String> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("the arguments must be a JSON object".to_owned()),
        Err(e) => Err(format!("the arguments are not JSON: {e}")),
    }
}

/// The result as the item shows it (and the rollout keeps it): blocks in
/// order while they fit in [`MAX_ITEM_BYTES`], each one past that replaced by
/// a note of its size; likewise the structured content.
fn item_result(result: CallToolResult) -> McpToolCallResult {
    let mut budget = MAX_ITEM_BYTES;
    let mut kept = |value: Value| {
        let size = value.to_string().len();
        if size <= budget {
            budget -= size;
            value
        } else {
            json!({"type": "text", "text": format!("[… a block of {size} bytes was not kept]")})
        }
    };
    let content = result
        .content
        .iter()
        .map(|block| Json(kept(serde_json::to_value(block).unwrap_or_default())))
        .collect();
    McpToolCallResult {
        content,
        structured_content: result.structured_content.map(|value| Json(kept(value))),
        is_error: result.is_error.unwrap_or(false),
    }
}

/// What the model reads of a result: its text blocks; other blocks described
/// (an image by its type and size); the structured content as JSON when
/// there is no text; an error said as one. Cut at [`MAX_OUTPUT_BYTES`].
fn model_output(result: &CallToolResult) -> String {
    let mut parts: Vec<String> = result
        .content
        .iter()
        .map(|block| match block {
            ContentBlock::Text(text) => text.text.clone(),
            ContentBlock::Image(image) => format!(
                "[image: {}, {} bytes of base64]",
                image.mime_type,
                image.data.len()
            ),
            ContentBlock::Audio(audio) => format!(
                "[audio: {}, {} bytes of base64]",
                audio.mime_type,
                audio.data.len()
            ),
            ContentBlock::Resource(resource) => match &resource.resource {
                rmcp::model::ResourceContents::TextResourceContents { uri, text, .. } => {
                    format!("[resource {uri}]\n{text}")
                }
                rmcp::model::ResourceContents::BlobResourceContents { uri, blob, .. } => {
                    format!("[resource {uri}: {} bytes of base64]", blob.len())
                }
                _ => "[a resource of a kind tiller does not know]".to_owned(),
            },
            ContentBlock::ResourceLink(link) => format!("[resource link: {}]", link.uri),
            _ => "[content of a kind tiller does not know]".to_owned(),
        })
        .collect();
    if let Some(structured) = &result.structured_content
        && parts.is_empty()
    {
        parts.push(structured.to_string());
    }
    let text = parts.join("\n");
    let text = if result.is_error.unwrap_or(false) {
        format!("the tool reported an error: {text}")
    } else {
        text
    };
    cut(&text, MAX_OUTPUT_BYTES)
}

/// `text` cut to `max` bytes (on a character boundary), saying so.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[… {} more bytes cut]", &text[..end], text.len() - end)
}

fn millis(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_follow_codex_and_fit_model_apis() {
        assert_eq!(qualified_name("docs", "search"), "mcp__docs__search");
        let odd = qualified_name("docs", "find.page/v2");
        assert!(odd.starts_with("mcp__docs__find_page_v2_"), "{odd}");
        let long = qualified_name("docs", &"x".repeat(100));
        assert_eq!(long.len(), MAX_NAME);
        assert_ne!(long, qualified_name("docs", &"x".repeat(101)));
        assert!(
            long.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
    }

    #[test]
    fn schemas_are_objects_with_properties_and_no_dollar_schema() {
        let schema: Map<String, Value> = serde_json::from_value(json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "required": ["a"],
        }))
        .unwrap();
        assert_eq!(
            sanitized_schema(&schema),
            json!({"type": "object", "properties": {}, "required": ["a"]})
        );
    }

    #[test]
    fn results_map_text_images_structured_and_errors() {
        let result: CallToolResult = serde_json::from_value(json!({
            "content": [
                {"type": "text", "text": "two files"},
                {"type": "image", "data": "aGVsbG8=", "mimeType": "image/png"},
            ],
            "isError": true,
        }))
        .unwrap();
        assert_eq!(
            model_output(&result),
            "the tool reported an error: two files\n[image: image/png, 8 bytes of base64]"
        );
        let structured: CallToolResult = serde_json::from_value(json!({
            "content": [],
            "structuredContent": {"sum": 3},
        }))
        .unwrap();
        assert_eq!(model_output(&structured), r#"{"sum":3}"#);
        let huge: CallToolResult = serde_json::from_value(json!({
            "content": [
                {"type": "text", "text": "small"},
                {"type": "text", "text": "x".repeat(MAX_ITEM_BYTES)},
            ],
        }))
        .unwrap();
        let kept = item_result(huge);
        assert_eq!(kept.content[0].0["text"], "small");
        assert!(
            kept.content[1].0["text"]
                .as_str()
                .unwrap()
                .contains("was not kept")
        );
        assert_eq!(cut("ééé", 3), "é\n[… 4 more bytes cut]");
    }
}
