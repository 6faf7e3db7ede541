//! What the state-machine and snapshot tests build their apps from: a thread
//! opened as the server answers `thread/start`, and notifications by method.

use serde_json::{Value, json};
use tiller_client::protocol::ServerNotification;

use crate::app::App;
use crate::effect::Outcome;

/// An app with thread `id` open, as `thread/start` answers it, in `cwd` under
/// approval policy `policy`, with `turns` (wire turns) in its history.
pub fn opened_app(id: &str, cwd: &str, policy: &str, turns: Value) -> App {
    let mut app = App::new("test");
    app.outcome(opened(id, cwd, policy, turns));
    app.take_effects();
    app
}

/// The outcome of a `thread/start` (or `thread/resume`) that opened thread
/// `id`, as [`opened_app`] describes it.
pub fn opened(id: &str, cwd: &str, policy: &str, turns: Value) -> Outcome {
    let opened = json!({
        "thread": {
            "id": id, "name": null, "sessionId": id, "preview": "", "cliVersion": "0.1.0",
            "createdAt": 0, "updatedAt": 0, "cwd": cwd, "ephemeral": false,
            "model": "gpt-5-codex", "modelProvider": "openai", "projectId": null,
            "source": "appServer", "status": {"type": "idle"}, "turns": turns
        },
        "model": "gpt-5-codex", "modelProvider": "openai", "cwd": cwd,
        "approvalPolicy": policy, "approvalsReviewer": "user",
        "sandbox": {"type": "workspaceWrite", "writableRoots": [], "networkAccess": false,
                    "excludeTmpdirEnvVar": false, "excludeSlashTmp": false}
    });
    let opened = serde_json::from_value(opened).expect("a thread/start answer");
    Outcome::ThreadOpened(Box::new(opened))
}

/// The notification `method` with `params`, parsed as the client parses it.
pub fn note(method: &str, params: Value) -> ServerNotification {
    match tiller_client::parse_notification(method, params) {
        Some(Ok(notification)) => notification,
        other => panic!("{method}: {other:?}"),
    }
}
