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

#[tokio::test]
async fn python_mcp_sdk_cancels_interrupts_and_continues_a_session() {
    let probe = Command::new("python3")
        .args(["-c", "import mcp"])
        .output()
        .await;
    match probe {
        Err(e) => panic!(
            "python3 is needed for the MCP interop test and could not be run ({e}); \
             install Python 3.10+ and run `python3 -m pip install mcp` (CI: .ci/run does)"
        ),
        Ok(out) if !out.status.success() => panic!(
            "the Python MCP SDK is missing: run `python3 -m pip install mcp` (CI: .ci/run \
             installs the pinned version)\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Ok(_) => {}
    }
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .env("TILLER_BIN", TILLER)
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
