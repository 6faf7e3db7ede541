mod approval;
mod history;
mod hostile_input;
mod hostile_server;
mod idempotency;
mod interrupt;
mod resume;
mod retry;
mod steer;
mod torture;

use serde_json::json;
use tiller_mock_model::Step;

/// A `shell` call running `script` under `bash -lc`.
pub fn shell_call(call_id: &str, script: &str) -> Step {
    Step::function_call(
        call_id,
        "shell",
        json!({"command": ["bash", "-lc", script]}),
    )
}
