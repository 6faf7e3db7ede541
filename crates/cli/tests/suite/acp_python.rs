//! `tiller acp` driven by an ACP client that is not ours: the official
//! Python SDK (`agent-client-protocol` from PyPI, pinned) runs
//! `tests/acp/test_acp_agent.py` against the binary under test (see the
//! script for what it checks: permissions, an edit's diff, cancel during
//! `sleep 60`, a prompt steered mid-turn, the editor's MCP server, load of
//! the saved session).

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::support::TILLER;

/// The script, next to this suite.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/acp/test_acp_agent.py");

/// The whole script's deadline (it waits on events, each with its own deadline).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

/// The pinned ACP SDK the test drives tiller with.
const ACP_SDK: &str = "agent-client-protocol==0.12.1";

/// Install the pinned SDK once into the target dir (PyPI is reachable here
/// and in CI; nothing else is), into a fresh folder that is then renamed, so
/// an interrupted run never leaves a half-installed copy.
async fn python_acp_sdk() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let site = root.join("python-acp-0.12.1");
    if site.join("acp").is_dir() {
        return site;
    }
    let staging = root.join(format!("python-acp-staging-{}", std::process::id()));
    let install = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
        .arg(&staging)
        .arg(ACP_SDK)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("python3 is needed for the ACP interop test and could not be run ({e}); install Python 3.10+ with pip")
        });
    assert!(
        install.status.success(),
        "could not install the Python ACP SDK ({ACP_SDK}) with pip:\n{}",
        String::from_utf8_lossy(&install.stderr)
    );
    if std::fs::rename(&staging, &site).is_err() {
        // Another run got there first; use its copy.
        let _ = std::fs::remove_dir_all(&staging);
    }
    site
}

#[tokio::test]
async fn the_python_acp_sdk_prompts_cancels_steers_asks_and_loads() {
    let site = python_acp_sdk().await;
    // The MCP server the editor hands tiller: FastMCP on the Python MCP SDK.
    let mcp_site = tiller_test_support::mcp_servers::python_mcp_site().await;
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .env("TILLER_BIN", TILLER)
        .env("PYTHONPATH", &site)
        .env("MCP_SITE", &mcp_site)
        .env(
            "MCP_SERVER_SCRIPT",
            tiller_test_support::mcp_servers::slow_server_script(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read_all = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
        tokio::spawn(async move {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut text).await;
            text
        })
    };
    let (out, err) = (read_all(Box::new(stdout)), read_all(Box::new(stderr)));
    let status = match tokio::time::timeout(SCRIPT_DEADLINE, child.wait()).await {
        Ok(status) => status.unwrap(),
        Err(_) => {
            child.kill().await.unwrap();
            panic!("the Python ACP test did not finish within {SCRIPT_DEADLINE:?}");
        }
    };
    let (out, err) = (out.await.unwrap(), err.await.unwrap());
    assert!(
        status.success(),
        "the Python ACP test failed ({status})\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    eprintln!("{err}");
}
