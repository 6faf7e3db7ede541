//! `tiller acp` driven by an ACP client that is not ours: the official
//! Python SDK (`agent-client-protocol` from PyPI, pinned) runs
//! `tests/acp/test_acp_agent.py` against the binary under test (see the
//! script for what it checks: permissions, an edit's diff, cancel during
//! `sleep 60`, a prompt steered mid-turn, the editor's MCP server, load of
//! the saved session).

use std::time::Duration;

use tiller_test_support::mcp_servers::{python_mcp_site, python_site, slow_server_script};

use super::support::run_python_test;

/// The script, next to this suite.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/acp/test_acp_agent.py");

/// The whole script's deadline (it waits on events, each with its own deadline).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

/// The pinned ACP SDK the test drives tiller with.
const ACP_SDK: &str = "agent-client-protocol==0.12.1";

#[tokio::test]
async fn the_python_acp_sdk_prompts_cancels_steers_asks_and_loads() {
    let site = python_site(ACP_SDK, "python-acp-0.12.1", "acp").await;
    // The MCP server the editor hands tiller: FastMCP on the Python MCP SDK.
    let mcp_site = python_mcp_site().await;
    let server = slow_server_script();
    run_python_test(
        SCRIPT,
        &[
            ("PYTHONPATH", &site),
            ("MCP_SITE", &mcp_site),
            ("MCP_SERVER_SCRIPT", &server),
        ],
        SCRIPT_DEADLINE,
    )
    .await;
}
