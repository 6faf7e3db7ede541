//! `tiller mcp-server` driven by a real MCP client that is not ours: the
//! official Python MCP SDK runs `tests/mcp/test_mcp_server.py` against the
//! binary under test (see the script for what it checks).

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::support::TILLER;

/// The script, next to this suite.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/test_mcp_server.py");

/// The whole script's deadline (it waits on events, each with its own deadline).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

/// The pinned Python MCP SDK the test drives tiller with.
const MCP_SDK: &str = "mcp==2.3.0";

/// Install the pinned SDK once into the target dir (PyPI is reachable here and
/// in CI; nothing else is), so `cargo test` needs no set-up step of its own.
/// Installed into a fresh folder that is then renamed, so an interrupted run
/// never leaves a half-installed copy.
async fn python_mcp_sdk() -> std::path::PathBuf {
    let site = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-mcp-2.3.0");
    if site.join("mcp").is_dir() {
        return site;
    }
    let staging = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("python-mcp-staging-{}", std::process::id()));
    let install = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
        .arg(&staging)
        .arg(MCP_SDK)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("python3 is needed for the MCP interop test and could not be run ({e}); install Python 3.10+ with pip")
        });
    assert!(
        install.status.success(),
        "could not install the Python MCP SDK ({MCP_SDK}) with pip:\n{}",
        String::from_utf8_lossy(&install.stderr)
    );
    if std::fs::rename(&staging, &site).is_err() {
        // Another run got there first; use its copy.
        let _ = std::fs::remove_dir_all(&staging);
    }
    site
}

#[tokio::test]
async fn python_mcp_sdk_cancels_interrupts_and_continues_a_session() {
    let site = python_mcp_sdk().await;
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .env("TILLER_BIN", TILLER)
        .env("PYTHONPATH", &site)
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
            panic!("the Python MCP test did not finish within {SCRIPT_DEADLINE:?}");
        }
    };
    let (out, err) = (out.await.unwrap(), err.await.unwrap());
    assert!(
        status.success(),
        "the Python MCP test failed ({status})\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    eprintln!("{err}");
}
