//! Between ACP and the engine: a prompt's content blocks as user input, a
//! client's MCP server as a config override, and the engine's events as
//! `session/update`s (message and thought chunks; tool calls with their
//! kind, title, locations, live output, diffs and end).
//!
//! A tool call's id is the engine's item id. A command asked about before it
//! runs is announced (`pending`) with the question, and its start is then an
//! update of the same call.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use agent_client_protocol::Error;
use agent_client_protocol::v1::schema as acp;
use tiller_protocol::{
    EventMsg, ExecEndStatus, FileChange, McpToolCallStatus, PatchStatus, PlanStep, StepStatus,
    TurnItem, TurnItemKind, UserInput, display_command,
};

/// The most of a command's output a tool call shows (its end is kept).
const OUTPUT_SHOWN_BYTES: usize = 64 * 1024;

/// The largest file whose text a diff carries.
const DIFF_FILE_BYTES: u64 = 1024 * 1024;

/// A prompt's content as user input: text, links and embedded text
/// resources as text (an image is named, as the model gets no images yet).
pub(crate) fn user_input(prompt: &[acp::ContentBlock]) -> Vec<UserInput> {
    prompt
        .iter()
        .filter_map(|block| match block {
            acp::ContentBlock::Text(text) => Some(UserInput::text(text.text.clone())),
            acp::ContentBlock::ResourceLink(link) => {
                Some(UserInput::text(format!("[{}]({})", link.name, link.uri)))
            }
            acp::ContentBlock::Resource(resource) => match &resource.resource {
                acp::EmbeddedResourceResource::TextResourceContents(text) => Some(UserInput::text(
                    format!("<{}>\n{}\n</{}>", text.uri, text.text, text.uri),
                )),
                _ => None,
            },
            acp::ContentBlock::Image(_) => Some(UserInput::text(
                "[an image was attached; tiller does not send images to the model yet]",
            )),
            _ => None,
        })
        .collect()
}

/// A client's MCP server as `-c mcp_servers.<name>=…`, so it is checked as
/// the config file's are.
pub(crate) fn mcp_server_override(server: &acp::McpServer) -> Result<(String, String), Error> {
    match server {
        acp::McpServer::Stdio(stdio) => {
            let args: Vec<String> = stdio.args.iter().map(|arg| toml_string(arg)).collect();
            let env = inline_table(stdio.env.iter().map(|var| (&var.name, &var.value)));
            Ok((
                format!("mcp_servers.{}", stdio.name),
                format!(
                    "{{ command = {}, args = [{}], env = {env} }}",
                    toml_string(&stdio.command.display().to_string()),
                    args.join(", ")
                ),
            ))
        }
        acp::McpServer::Http(http) => {
            let headers = inline_table(http.headers.iter().map(|h| (&h.name, &h.value)));
            Ok((
                format!("mcp_servers.{}", http.name),
                format!(
                    "{{ url = {}, http_headers = {headers} }}",
                    toml_string(&http.url)
                ),
            ))
        }
        _ => {
            Err(Error::invalid_params()
                .data("only stdio and HTTP MCP servers are supported (not SSE)"))
        }
    }
}

/// `pairs` as a TOML inline table of strings: `{ "k" = "v", … }`.
fn inline_table<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let entries: Vec<String> = pairs
        .map(|(key, value)| format!("{} = {}", toml_string(key), toml_string(value)))
        .collect();
    format!("{{ {} }}", entries.join(", "))
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// A tool call as the client is first told of it.
pub(crate) fn tool_call(item: &TurnItem, cwd: &Path) -> Option<acp::ToolCall> {
    let id = acp::ToolCallId::new(item.id.clone());
    let call = match &item.kind {
        TurnItemKind::CommandExecution { command, cwd, .. } => {
            acp::ToolCall::new(id, display_command(command))
                .kind(acp::ToolKind::Execute)
                .raw_input(serde_json::json!({"command": command, "cwd": cwd}))
        }
        TurnItemKind::FileChange { changes, .. } => {
            let paths: Vec<String> = changes.iter().map(|c| c.path.clone()).collect();
            acp::ToolCall::new(id, format!("Edit {}", paths.join(", ")))
                .kind(acp::ToolKind::Edit)
                .locations(
                    changes
                        .iter()
                        .map(|c| acp::ToolCallLocation::new(absolute(cwd, &c.path)))
                        .collect(),
                )
        }
        TurnItemKind::McpToolCall {
            server,
            tool,
            arguments,
            ..
        } => acp::ToolCall::new(id, format!("{server}.{tool}"))
            .kind(acp::ToolKind::Other)
            .raw_input(arguments.0.clone()),
        _ => return None,
    };
    Some(call)
}

/// The title and kind of a call asked about: a command, or an MCP tool's
/// call (asked as its qualified name and JSON arguments), shown as its
/// item will be.
pub(crate) fn asked_call(command: &[String]) -> (String, acp::ToolKind) {
    if let [name, _arguments] = command
        && let Some((server, tool)) = name
            .strip_prefix("mcp__")
            .and_then(|rest| rest.split_once("__"))
    {
        return (format!("{server}.{tool}"), acp::ToolKind::Other);
    }
    (display_command(command), acp::ToolKind::Execute)
}

/// The status an ended item shows.
fn end_status(kind: &TurnItemKind) -> acp::ToolCallStatus {
    let completed = match kind {
        TurnItemKind::CommandExecution { status, .. } => *status == Some(ExecEndStatus::Completed),
        TurnItemKind::FileChange { status, .. } => *status == Some(PatchStatus::Completed),
        TurnItemKind::McpToolCall { status, .. } => *status == Some(McpToolCallStatus::Completed),
        _ => true,
    };
    if completed {
        acp::ToolCallStatus::Completed
    } else {
        acp::ToolCallStatus::Failed
    }
}

fn absolute(cwd: &Path, path: &str) -> PathBuf {
    cwd.join(path)
}

/// The last [`OUTPUT_SHOWN_BYTES`] of `output`, as a text block.
fn output_content(output: &str) -> acp::ToolCallContent {
    let mut start = output.len().saturating_sub(OUTPUT_SHOWN_BYTES);
    while !output.is_char_boundary(start) {
        start += 1;
    }
    format!("```\n{}\n```", &output[start..]).into()
}

/// What the client is told when `item` ends.
pub(crate) fn ended(item: &TurnItem) -> acp::ToolCallUpdateFields {
    let fields = acp::ToolCallUpdateFields::new().status(end_status(&item.kind));
    match &item.kind {
        TurnItemKind::CommandExecution {
            aggregated_output,
            exit_code,
            ..
        } => fields
            .content(vec![output_content(
                aggregated_output.as_deref().unwrap_or_default(),
            )])
            .raw_output(serde_json::json!({"exit_code": exit_code})),
        TurnItemKind::McpToolCall { result, error, .. } => {
            let text = match (result, error) {
                (_, Some(error)) => error.clone(),
                (Some(result), None) => serde_json::to_string(result).unwrap_or_default(),
                (None, None) => String::new(),
            };
            fields.content(vec![text.into()])
        }
        _ => fields,
    }
}

/// Turns a session's engine events into `session/update`s, remembering
/// what it needs between them: the output of running commands, the files
/// an edit is about to change, the calls already announced.
pub(crate) struct Translator {
    cwd: PathBuf,
    announced: HashSet<String>,
    output: HashMap<String, String>,
    before: HashMap<String, Vec<(PathBuf, Option<String>)>>,
}

impl Translator {
    pub(crate) fn new(cwd: PathBuf) -> Translator {
        Translator {
            cwd,
            announced: HashSet::new(),
            output: HashMap::new(),
            before: HashMap::new(),
        }
    }

    /// The session's folder.
    pub(crate) fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// Announce `call` (a command about to be asked about) unless it was.
    pub(crate) fn announce(&mut self, call: acp::ToolCall) -> Option<acp::SessionUpdate> {
        self.announced
            .insert(call.tool_call_id.0.to_string())
            .then_some(acp::SessionUpdate::ToolCall(call))
    }

    /// The updates `msg` makes.
    pub(crate) fn updates(&mut self, msg: &EventMsg) -> Vec<acp::SessionUpdate> {
        match msg {
            EventMsg::AgentMessageDelta { delta, .. } => {
                vec![acp::SessionUpdate::AgentMessageChunk(
                    acp::ContentChunk::new(delta.clone().into()),
                )]
            }
            EventMsg::ReasoningDelta { delta, .. } => {
                vec![acp::SessionUpdate::AgentThoughtChunk(
                    acp::ContentChunk::new(delta.clone().into()),
                )]
            }
            EventMsg::ExecApprovalRequest {
                item_id,
                command,
                cwd,
                ..
            } => {
                let (title, kind) = asked_call(command);
                let call = acp::ToolCall::new(acp::ToolCallId::new(item_id.clone()), title)
                    .kind(kind)
                    .raw_input(serde_json::json!({"command": command, "cwd": cwd}));
                self.announce(call).into_iter().collect()
            }
            EventMsg::ItemStarted { item } => self.started(item),
            EventMsg::ExecCommandOutputDelta { item_id, chunk, .. } => {
                let output = self.output.entry(item_id.clone()).or_default();
                output.push_str(chunk);
                if output.len() > 2 * OUTPUT_SHOWN_BYTES {
                    let mut cut = output.len() - OUTPUT_SHOWN_BYTES;
                    while !output.is_char_boundary(cut) {
                        cut += 1;
                    }
                    output.drain(..cut);
                }
                vec![acp::SessionUpdate::ToolCallUpdate(
                    acp::ToolCallUpdate::new(
                        acp::ToolCallId::new(item_id.clone()),
                        acp::ToolCallUpdateFields::new().content(vec![output_content(output)]),
                    ),
                )]
            }
            EventMsg::ItemCompleted { item } => self.completed(item),
            EventMsg::PlanUpdated { plan, .. } => vec![acp::SessionUpdate::Plan(plan_update(plan))],
            _ => Vec::new(),
        }
    }

    fn started(&mut self, item: &TurnItem) -> Vec<acp::SessionUpdate> {
        let Some(call) = tool_call(item, &self.cwd) else {
            return Vec::new();
        };
        if let TurnItemKind::FileChange { changes, .. } = &item.kind {
            let before = changes
                .iter()
                .map(|change| {
                    let path = absolute(&self.cwd, &change.path);
                    let text = read_small(&path);
                    (path, text)
                })
                .collect();
            self.before.insert(item.id.clone(), before);
        }
        let call = call.status(acp::ToolCallStatus::InProgress);
        match self.announce(call) {
            Some(update) => vec![update],
            None => vec![acp::SessionUpdate::ToolCallUpdate(
                acp::ToolCallUpdate::new(
                    acp::ToolCallId::new(item.id.clone()),
                    acp::ToolCallUpdateFields::new().status(acp::ToolCallStatus::InProgress),
                ),
            )],
        }
    }

    fn completed(&mut self, item: &TurnItem) -> Vec<acp::SessionUpdate> {
        if tool_call(item, &self.cwd).is_none() {
            return Vec::new();
        }
        self.output.remove(&item.id);
        let mut fields = ended(item);
        if let TurnItemKind::FileChange {
            changes,
            status: Some(PatchStatus::Completed),
            ..
        } = &item.kind
        {
            let before = self.before.remove(&item.id).unwrap_or_default();
            fields = fields.content(diffs(changes, &before, &self.cwd));
        }
        vec![acp::SessionUpdate::ToolCallUpdate(
            acp::ToolCallUpdate::new(acp::ToolCallId::new(item.id.clone()), fields),
        )]
    }
}

/// A file's text, if it is a small text file.
fn read_small(path: &Path) -> Option<String> {
    let metadata = std::fs::metadata(path).ok()?;
    if metadata.len() > DIFF_FILE_BYTES {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// The diff of each changed file: its text before (read as the edit
/// started) and after (read now).
fn diffs(
    changes: &[FileChange],
    before: &[(PathBuf, Option<String>)],
    cwd: &Path,
) -> Vec<acp::ToolCallContent> {
    changes
        .iter()
        .map(|change| {
            let path = absolute(cwd, &change.path);
            let old = before
                .iter()
                .find(|(p, _)| *p == path)
                .and_then(|(_, text)| text.clone());
            let new = read_small(&path).unwrap_or_default();
            acp::ToolCallContent::Diff(acp::Diff::new(path, new).old_text(old))
        })
        .collect()
}

/// The model's whole plan as ACP's: every entry of medium priority (tiller's
/// plan has none), each with its status. The explanation has no place in it.
fn plan_update(plan: &[PlanStep]) -> acp::Plan {
    let entries = plan
        .iter()
        .map(|s| {
            let status = match s.status {
                StepStatus::Pending => acp::PlanEntryStatus::Pending,
                StepStatus::InProgress => acp::PlanEntryStatus::InProgress,
                StepStatus::Completed => acp::PlanEntryStatus::Completed,
            };
            acp::PlanEntry::new(s.step.clone(), acp::PlanEntryPriority::Medium, status)
        })
        .collect();
    acp::Plan::new(entries)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use tiller_core::config::{Config, ConfigOverrides, McpTransport};

    use super::*;

    fn loaded(server: acp::McpServer) -> McpTransport {
        let (key, value) = mcp_server_override(&server).unwrap();
        let overrides = ConfigOverrides {
            cli_overrides: vec![(key, value)],
            ..ConfigOverrides::default()
        };
        let home = Path::new("/nonexistent/tiller-acp-test-home");
        let mut config = Config::load_with_env(home, overrides, &|_| None)
            .unwrap()
            .config;
        config.mcp_servers.remove("docs").unwrap().transport
    }

    #[test]
    fn an_editors_mcp_servers_load_as_the_config_reads_them() {
        let stdio = acp::McpServerStdio::new("docs", "/usr/bin/docs \"server\"")
            .args(vec!["--root".into(), "a \"b\" \\ c".into()])
            .env(vec![acp::EnvVariable::new("TOKEN", "x=\"y\"")]);
        let McpTransport::Stdio {
            command, args, env, ..
        } = loaded(acp::McpServer::Stdio(stdio))
        else {
            panic!("not stdio")
        };
        assert_eq!(command, "/usr/bin/docs \"server\"");
        assert_eq!(args, ["--root", "a \"b\" \\ c"]);
        assert_eq!(env, BTreeMap::from([("TOKEN".into(), "x=\"y\"".into())]));

        let http = acp::McpServerHttp::new("docs", "http://127.0.0.1:1/mcp")
            .headers(vec![acp::HttpHeader::new("X-Key", "k")]);
        let McpTransport::Http {
            url, http_headers, ..
        } = loaded(acp::McpServer::Http(http))
        else {
            panic!("not http")
        };
        assert_eq!(url, "http://127.0.0.1:1/mcp");
        assert_eq!(http_headers, BTreeMap::from([("X-Key".into(), "k".into())]));
    }
}
