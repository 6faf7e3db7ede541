//! `[mcp_servers.<name>]`: Codex's keys read into `McpServerConfig`, bad
//! values named by file, line and key, and per-thread `-c` tables.

use super::*;

#[test]
fn every_codex_key_is_read() {
    let home = home_with(
        r#"
[mcp_servers.docs]
command = "docs-server"
args = ["--stdio", "-v"]
env = { DOCS_TOKEN = "abc" }
cwd = "tools"
startup_timeout_sec = 2.5
tool_timeout_sec = 90
enabled_tools = ["search", "fetch"]
disabled_tools = ["fetch"]
default_tools_approval_mode = "prompt"
sandbox_mode = "read-only"

[mcp_servers.docs.tools.search]
approval_mode = "approve"

[mcp_servers.web]
url = "https://mcp.example.com/mcp"
bearer_token_env_var = "WEB_TOKEN"
http_headers = { "X-Team" = "core" }
env_http_headers = { "X-Org" = "WEB_ORG" }
enabled = false
"#,
    );
    let loaded = load(&home, ConfigOverrides::default()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let docs = &loaded.config.mcp_servers["docs"];
    assert_eq!(
        docs.transport,
        McpTransport::Stdio {
            command: "docs-server".to_owned(),
            args: vec!["--stdio".to_owned(), "-v".to_owned()],
            env: BTreeMap::from([("DOCS_TOKEN".to_owned(), "abc".to_owned())]),
            cwd: Some(PathBuf::from("tools")),
        }
    );
    assert_eq!(docs.startup_timeout, Duration::from_millis(2500));
    assert_eq!(docs.tool_timeout, Duration::from_secs(90));
    assert!(docs.enabled);
    assert!(docs.offers("search"));
    assert!(!docs.offers("fetch"), "disabled wins over enabled");
    assert!(!docs.offers("other"), "not in enabled_tools");
    assert_eq!(docs.approval_for("search"), McpApproval::Approve);
    assert_eq!(docs.approval_for("other"), McpApproval::Prompt);
    assert_eq!(docs.sandbox_mode, Some(crate::SandboxMode::ReadOnly));
    let web = &loaded.config.mcp_servers["web"];
    assert!(!web.enabled);
    assert_eq!(
        web.transport,
        McpTransport::Http {
            url: "https://mcp.example.com/mcp".to_owned(),
            bearer_token_env_var: Some("WEB_TOKEN".to_owned()),
            http_headers: BTreeMap::from([("X-Team".to_owned(), "core".to_owned())]),
            env_http_headers: BTreeMap::from([("X-Org".to_owned(), "WEB_ORG".to_owned())]),
        }
    );
    assert_eq!(web.startup_timeout, DEFAULT_MCP_STARTUP_TIMEOUT);
    assert_eq!(web.tool_timeout, DEFAULT_MCP_TOOL_TIMEOUT);
    assert!(web.offers("anything"));
    assert_eq!(web.sandbox_mode, None);
}

#[test]
fn bad_values_name_file_line_and_key() {
    let table = |body: &str| format!("model = \"m\"\n[mcp_servers.docs]\n{body}\n");
    assert_file_errors([
        (
            table("command = \"a\"\nurl = \"http://x\""),
            2,
            "mcp_servers.docs: a server has either a command (stdio) or a url (streamable HTTP), not both",
        ),
        (
            table("args = []"),
            2,
            "mcp_servers.docs: missing: a server needs a command (stdio) or a url (streamable HTTP)",
        ),
        (
            table("command = \"a\"\nargs = \"--x\""),
            4,
            "mcp_servers.docs.args: expected an array of strings, found \"--x\"",
        ),
        (
            table("command = \"a\"\nargs = [1]"),
            4,
            "mcp_servers.docs.args: expected an array of strings, found an element 1",
        ),
        (
            table("command = \"a\"\ntool_timeout_sec = 0"),
            4,
            "mcp_servers.docs.tool_timeout_sec: expected a positive number of seconds (at most a day), found 0",
        ),
        (
            table("command = \"a\"\nstartup_timeout_sec = \"10\""),
            4,
            "mcp_servers.docs.startup_timeout_sec: expected a positive number of seconds (at most a day), found \"10\"",
        ),
        (
            table("url = \"ftp://x\""),
            3,
            "mcp_servers.docs.url: expected a URL starting with http:// or https://, found \"ftp://x\"",
        ),
        (
            table("command = \"a\"\ndefault_tools_approval_mode = \"ask\""),
            4,
            "mcp_servers.docs.default_tools_approval_mode: expected \"auto\", \"prompt\" or \"approve\", found \"ask\"",
        ),
        (
            table("command = \"a\"\nenv = { A = 1 }"),
            4,
            "mcp_servers.docs.env.A: expected a string, found 1",
        ),
        (
            table("command = \"a\"\nsandbox_mode = \"boxed\""),
            4,
            "mcp_servers.docs.sandbox_mode: expected \"read-only\", \"workspace-write\" or \"danger-full-access\", found \"boxed\"",
        ),
        (
            table("command = \"\""),
            3,
            "mcp_servers.docs.command: expected a non-empty string",
        ),
        (
            "[mcp_servers.\"a.b\"]\ncommand = \"x\"\n".to_owned(),
            1,
            "mcp_servers.a.b: \"a.b\" is not a server name: use letters, digits, '-' and '_' (the model sees its tools as mcp__a.b__<tool>)",
        ),
    ]);
}

#[test]
fn codex_keys_tiller_lacks_and_misplaced_keys_are_warnings() {
    let home = home_with(
        "[mcp_servers.docs]\ncommand = \"a\"\nenv_vars = [\"HOME\"]\nbearer_token_env_var = \"T\"\nfoo = 1\n",
    );
    let loaded = load(&home, ConfigOverrides::default()).unwrap();
    let file = file_of(&home);
    assert_eq!(
        loaded.warnings,
        [
            format!("{file}:3: key 'mcp_servers.docs.env_vars' is not used by tiller (ignored)"),
            format!("{file}:5: unknown key 'mcp_servers.docs.foo' (ignored)"),
            format!(
                "{file}:1: key 'mcp_servers.docs.bearer_token_env_var' is for a url server; this one has a command (ignored)"
            ),
        ]
    );
}

#[test]
fn a_server_can_be_given_by_an_override_alone() {
    let loaded = load(
        &tempfile::tempdir().unwrap(),
        with_cli(&[(
            "mcp_servers.hub",
            r#"{command = "hub", args = ["--stdio"], tool_timeout_sec = 5}"#,
        )]),
    )
    .unwrap();
    let hub = &loaded.config.mcp_servers["hub"];
    assert_eq!(hub.tool_timeout, Duration::from_secs(5));
    assert!(matches!(&hub.transport, McpTransport::Stdio { command, .. } if command == "hub"));
    let error = load(
        &tempfile::tempdir().unwrap(),
        with_cli(&[("mcp_servers.hub.url", "nope")]),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "-c mcp_servers.hub.url=nope: expected a URL starting with http:// or https://, found \"nope\""
    );
}
