//! `tiller mcp-server` driven by a real MCP client that is not ours: the
//! official Python MCP SDK runs `tests/mcp/test_mcp_server.py` against the
//! binary under test (see the script for what it checks).

use std::time::Duration;

use tiller_test_support::mcp_servers::python_mcp_site;

use super::support::run_python_test;

/// The script, next to this suite.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/test_mcp_server.py");

/// The whole script's deadline (it waits on events, each with its own deadline).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test]
async fn python_mcp_sdk_cancels_interrupts_and_continues_a_session() {
    // The pinned SDK (`mcp==2.3.0`), installed once into the target folder.
    let site = python_mcp_site().await;
    run_python_test(SCRIPT, &[("PYTHONPATH", &site)], SCRIPT_DEADLINE).await;
}
