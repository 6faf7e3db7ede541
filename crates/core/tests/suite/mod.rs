/// Runs each named lifecycle test once per wire API, as
/// `<module>::responses::<name>` and `<module>::chat::<name>`, so
/// `cargo test -p tiller-core --test all responses` (or `chat`) runs one half.
///
/// A test is written once, as `async fn <name>(wire: WireApi)`, and named in
/// the module's `on_both_wires!` list at the end of its file. A test left out
/// of the list is a function nobody calls: the `dead_code` warning fails
/// `cargo clippy --all-targets -- -D warnings`, which is what keeps a test from
/// silently running on neither wire.
macro_rules! on_both_wires {
    ($($name:ident),* $(,)?) => {
        mod responses {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(tiller_core::config::WireApi::Responses).await
                }
            )*
        }
        mod chat {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(tiller_core::config::WireApi::Chat).await
                }
            )*
        }
    };
}

mod approval;
mod context;
mod history;
mod hostile_input;
mod hostile_server;
mod idempotency;
mod interrupt;
mod mcp;
mod plan;
mod resume;
mod retry;
mod sandbox;
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
