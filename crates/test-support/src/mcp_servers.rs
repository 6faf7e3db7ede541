//! Real MCP servers for the tests, none of them written here: a script on
//! the official Python SDK's FastMCP (`mcp/slow_server.py`, `MCPServer` since
//! mcp 2) and the reference `@modelcontextprotocol/server-everything` from
//! npm. Each is installed once per target folder, pinned, by the first test
//! that needs it (PyPI and npm are reachable here and in CI; nothing else
//! is), into a fresh folder that is then renamed, so an interrupted install
//! never leaves half a copy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tiller_core::config::{McpServerConfig, McpTransport};
use tokio::process::Command;

/// The pinned Python MCP SDK.
pub const PYTHON_MCP_SDK: &str = "mcp==2.3.0";
/// The pinned reference server.
pub const SERVER_EVERYTHING: &str = "@modelcontextprotocol/server-everything@2026.8.31";
/// How long an install may take.
const INSTALL_DEADLINE: Duration = Duration::from_secs(300);

/// The FastMCP test server's script.
pub fn slow_server_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp/slow_server.py")
}

/// Where installs are kept: `<target>/tmp`, beside the test binaries' folder.
fn install_root() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // <target>/<profile>/deps/<test binary>
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test binary is in <target>/<profile>/deps");
    target.join("tmp")
}

/// The folder holding the pinned Python MCP SDK (for `PYTHONPATH`).
pub async fn python_mcp_site() -> PathBuf {
    python_site(PYTHON_MCP_SDK, "python-mcp-2.3.0", "mcp").await
}

/// The folder holding the pip package `spec` (pinned: `name==version`),
/// installed once into `<target>/tmp/<folder>`; `module` is the folder it
/// makes there, which says the install is complete.
pub async fn python_site(spec: &str, folder: &str, module: &str) -> PathBuf {
    let root = install_root();
    let site = root.join(folder);
    if site.join(module).is_dir() {
        return site;
    }
    std::fs::create_dir_all(&root).unwrap();
    let staging = root.join(format!("{folder}-staging-{}", std::process::id()));
    let mut pip = Command::new("python3");
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--target",
    ])
    .arg(&staging)
    .arg(spec);
    run_install(pip, "python3 with pip (Python 3.10+)", spec).await;
    if std::fs::rename(&staging, &site).is_err() {
        // Another test got there first; use its copy.
        let _ = std::fs::remove_dir_all(&staging);
    }
    site
}

/// The entry point of the pinned `server-everything` (run it with `node`).
pub async fn server_everything() -> PathBuf {
    let root = install_root();
    let dir = root.join("server-everything-2026.8.31");
    let entry = dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    if entry.is_file() {
        return entry;
    }
    std::fs::create_dir_all(&root).unwrap();
    let staging = root.join(format!("server-everything-staging-{}", std::process::id()));
    std::fs::create_dir_all(&staging).unwrap();
    let mut npm = Command::new("npm");
    npm.args([
        "install",
        "--no-audit",
        "--no-fund",
        "--omit=optional",
        "--prefix",
    ])
    .arg(&staging)
    .arg(SERVER_EVERYTHING);
    run_install(npm, "node and npm", SERVER_EVERYTHING).await;
    if std::fs::rename(&staging, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    entry
}

async fn run_install(mut command: Command, needs: &str, what: &str) {
    command.kill_on_drop(true);
    let output = tokio::time::timeout(INSTALL_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("installing {what} took longer than {INSTALL_DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("the interop tests need {needs} on PATH ({e})"));
    assert!(
        output.status.success(),
        "could not install {what}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The FastMCP test server over stdio as `<name>`, recording what it sees
/// in `record`.
pub fn slow_server(name: &str, site: &Path, record: &Path) -> McpServerConfig {
    let mut config = McpServerConfig::stdio(
        name,
        "python3",
        vec![slow_server_script().display().to_string()],
    );
    if let McpTransport::Stdio { env, .. } = &mut config.transport {
        env.insert("PYTHONPATH".to_owned(), site.display().to_string());
        env.insert("MCP_RECORD".to_owned(), record.display().to_string());
    }
    config
}

/// A `[mcp_servers.<name>]` table running the FastMCP test server over
/// stdio, recording what it sees in `record`; `extra` lines go in the table.
pub fn slow_server_toml(name: &str, site: &Path, record: &Path, extra: &str) -> String {
    format!(
        "[mcp_servers.{name}]\ncommand = \"python3\"\nargs = [{script:?}]\nenv = {{ PYTHONPATH = {site:?}, MCP_RECORD = {record:?} }}\n{extra}",
        script = slow_server_script().display().to_string(),
        site = site.display().to_string(),
        record = record.display().to_string(),
    )
}

/// Wait until the server's record file has a line starting with `prefix`,
/// within `timeout`; returns the line.
pub async fn wait_for_record(record: &Path, prefix: &str, timeout: Duration) -> String {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(record)
            && let Some(line) = text.lines().find(|line| line.starts_with(prefix))
        {
            return line.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the MCP server did not record {prefix:?} within {timeout:?}; it recorded: {:?}",
            std::fs::read_to_string(record).unwrap_or_default()
        );
        // Polling a file the server writes: there is no event to wait on.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The lines the server recorded so far.
pub fn recorded(record: &Path) -> Vec<String> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}
