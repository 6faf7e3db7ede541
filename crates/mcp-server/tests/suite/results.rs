//! What the tools answer: schemas, result shapes, failures, events, approvals.

use rmcp::model::ElicitationAction;
use serde_json::{Value, json};
use tiller_mock_model::Step;

use super::support::{Harness, HarnessOptions, Seen, args, structured, text};

#[tokio::test]
async fn tools_have_schemas_generated_from_their_parameters() {
    let h = Harness::start(Vec::new()).await;
    let tools = h.client.list_all_tools().await.unwrap();
    let schema = |name: &str| -> Value {
        let tool = tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("tool {name} is listed"));
        Value::Object(tool.input_schema.as_ref().clone())
    };
    let tiller = schema("tiller");
    assert_eq!(tiller["required"], json!(["prompt"]));
    for key in [
        "prompt",
        "cwd",
        "model",
        "approval-policy",
        "base-instructions",
    ] {
        assert!(
            tiller["properties"].get(key).is_some(),
            "tiller takes {key}: {tiller}"
        );
    }
    let reply = schema("tiller-reply");
    let mut required: Vec<String> = serde_json::from_value(reply["required"].clone()).unwrap();
    required.sort();
    assert_eq!(required, ["prompt", "threadId"]);
    assert_eq!(schema("tiller-interrupt")["required"], json!(["threadId"]));
    // Codex's tools, with Codex's parameter names.
    let codex = schema("codex");
    assert_eq!(codex["required"], json!(["prompt"]));
    for key in [
        "approval-policy",
        "base-instructions",
        "developer-instructions",
        "config",
        "sandbox",
        "cwd",
        "model",
    ] {
        assert!(
            codex["properties"].get(key).is_some(),
            "codex takes {key}: {codex}"
        );
    }
    let codex_reply = schema("codex-reply");
    assert_eq!(codex_reply["required"], json!(["prompt"]));
    for key in ["threadId", "conversationId"] {
        assert!(
            codex_reply["properties"].get(key).is_some(),
            "{codex_reply}"
        );
    }
    h.finish().await;
}

/// A client written against `codex mcp-server` calls `codex` and
/// `codex-reply` with Codex's parameters and reads Codex's result fields.
#[tokio::test]
async fn codex_and_codex_reply_are_drop_in_aliases() {
    let h = Harness::start(vec![Step::text("codex answer"), Step::text("reply answer")]).await;
    let result = h
        .call(
            "codex",
            args(json!({
                "prompt": "do it the codex way",
                "cwd": h.work.path(),
                "approval-policy": "on-request",
                "sandbox": "workspace-write",
                "developer-instructions": "answer in one line",
                "config": {"model_reasoning_effort": "high"},
            })),
        )
        .await;
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(text(&result), "codex answer");
    let content = structured(&result);
    assert_eq!(content["content"], "codex answer");
    assert_eq!(content["status"], "completed");
    let thread_id = content["threadId"].as_str().unwrap().to_string();
    let first = &h.mock.requests()[0];
    assert!(
        first
            .instructions()
            .is_some_and(|i| i.ends_with("answer in one line")),
        "{:?}",
        first.instructions()
    );
    assert_eq!(first.body["reasoning"]["effort"], "high");

    // Codex's older name for the thread.
    let reply = h
        .call(
            "codex-reply",
            args(json!({"conversationId": thread_id, "prompt": "and again"})),
        )
        .await;
    assert_eq!(text(&reply), "reply answer");
    assert_eq!(structured(&reply)["threadId"], thread_id.as_str());
    assert_eq!(structured(&reply)["content"], "reply answer");
    let missing = h
        .call("codex-reply", args(json!({"prompt": "whose?"})))
        .await;
    assert_eq!(missing.is_error, Some(true));
    assert!(text(&missing).contains("threadId"), "{}", text(&missing));
    h.finish().await;
}

#[tokio::test]
async fn a_completed_turn_answers_with_the_last_agent_message_and_structured_content() {
    let h = Harness::start(vec![
        Step::text("all done here"),
        Step::text("second answer"),
    ])
    .await;
    let result = h.call("tiller", h.tiller_args("do the thing")).await;
    assert_ne!(result.is_error, Some(true));
    assert_eq!(text(&result), "all done here");
    let content = structured(&result);
    assert_eq!(content["status"], "completed");
    assert_eq!(content["lastAgentMessage"], "all done here");
    let thread_id = content["threadId"].as_str().unwrap().to_string();
    assert!(!thread_id.is_empty());

    let reply = h
        .call(
            "tiller-reply",
            args(json!({"threadId": thread_id, "prompt": "and again"})),
        )
        .await;
    assert_eq!(text(&reply), "second answer");
    assert_eq!(structured(&reply)["threadId"], thread_id.as_str());
    assert_eq!(structured(&reply)["status"], "completed");
    assert_eq!(h.server.active_calls(), 0);
    h.finish().await;
}

#[tokio::test]
async fn a_reply_naming_the_thread_in_upper_case_or_by_a_prefix_continues_the_same_session() {
    let h = Harness::start(vec![
        Step::text("first"),
        Step::text("second"),
        Step::text("third"),
    ])
    .await;
    let result = h.call("tiller", h.tiller_args("start")).await;
    let thread_id = structured(&result)["threadId"]
        .as_str()
        .unwrap()
        .to_string();
    for spelling in [thread_id.to_ascii_uppercase(), thread_id[..13].to_string()] {
        let reply = h
            .call(
                "tiller-reply",
                args(json!({"threadId": spelling, "prompt": "again"})),
            )
            .await;
        assert_ne!(reply.is_error, Some(true), "{reply:?}");
        assert_eq!(structured(&reply)["threadId"], thread_id.as_str());
        assert_eq!(structured(&reply)["status"], "completed");
    }
    // One session: each request carries the whole conversation so far.
    let requests = h.mock.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[2].input().len(), 5, "{:?}", requests[2].input());
    h.finish().await;
}

#[tokio::test]
async fn events_stream_as_notifications_with_request_and_thread_ids() {
    let mut h = Harness::start(vec![Step::text("streamed answer")]).await;
    let handle = h.start_call("tiller", h.tiller_args("hi")).await;
    let result = super::support::answer(handle).await;
    let thread_id = structured(&result)["threadId"].clone();
    let mut types = Vec::new();
    let mut progress = 0;
    while let Ok(seen) = h.seen.try_recv() {
        match seen {
            Seen::Event(params) => {
                // `_meta` (request id, thread id) is checked on the wire, in `wire.rs`:
                // the rmcp client does not hand it to the handler.
                assert_eq!(params["threadId"], thread_id);
                types.push(params["msg"]["type"].as_str().unwrap().to_string());
            }
            Seen::Progress(_) => progress += 1,
            Seen::Elicitation(_) => panic!("no approval was needed"),
        }
    }
    assert_eq!(types.first().map(String::as_str), Some("turn_started"));
    assert!(types.iter().any(|t| t == "agent_message"), "{types:?}");
    assert_eq!(types.last().map(String::as_str), Some("turn_completed"));
    assert_eq!(progress, types.len(), "one progress notification per event");
    h.finish().await;
}

#[tokio::test]
async fn a_failed_turn_is_an_error_result_with_the_servers_message() {
    let h = Harness::start(vec![Step::http_error(
        400,
        json!({"error": {"message": "The model `nope` does not exist", "type": "invalid_request_error"}}),
    )])
    .await;
    let result = h.call("tiller", h.tiller_args("hi")).await;
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result).contains("The model `nope` does not exist"),
        "{}",
        text(&result)
    );
    assert_eq!(structured(&result)["status"], "failed");
    h.finish().await;
}

#[tokio::test]
async fn a_reply_to_an_unknown_thread_is_an_error_result() {
    let h = Harness::start(Vec::new()).await;
    let result = h
        .call(
            "tiller-reply",
            args(json!({"threadId": "0000-no-such-thread", "prompt": "hi"})),
        )
        .await;
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result).contains("no session matches"),
        "{}",
        text(&result)
    );
    h.finish().await;
}

#[tokio::test]
async fn interrupt_with_no_running_turn_answers_at_once() {
    let h = Harness::start(vec![Step::text("done")]).await;
    let result = h.call("tiller", h.tiller_args("hi")).await;
    let thread_id = structured(&result)["threadId"].clone();
    let interrupt = h
        .call("tiller-interrupt", args(json!({"threadId": thread_id})))
        .await;
    assert_ne!(interrupt.is_error, Some(true));
    assert_eq!(structured(&interrupt)["abortReason"], Value::Null);
    assert!(text(&interrupt).contains("no turn is running"));
    h.finish().await;
}

fn untrusted_command_steps(h_work: &std::path::Path) -> Vec<Step> {
    let marker = h_work.join("ran");
    vec![
        Step::function_call(
            "call_1",
            "shell",
            json!({"command": ["bash", "-c", format!("touch {}", marker.display())]}),
        ),
        Step::text("finished"),
    ]
}

#[tokio::test]
async fn without_elicitation_a_command_needing_approval_is_denied_and_the_model_is_told_how_to_allow_it()
 {
    let work = tempfile::TempDir::new().unwrap();
    let h = Harness::start(untrusted_command_steps(work.path())).await;
    let mut arguments = args(json!({"prompt": "touch it", "approval-policy": "untrusted"}));
    arguments.insert("cwd".into(), json!(work.path()));
    let result = h.call("tiller", arguments).await;
    assert_eq!(structured(&result)["status"], "completed");
    assert!(!work.path().join("ran").exists(), "the command did not run");
    let requests = h.mock.requests();
    let last = serde_json::to_string(requests.last().unwrap().input()).unwrap();
    assert!(last.contains("denied"), "{last}");
    assert!(
        last.contains("approval-policy"),
        "the model is told how to allow it: {last}"
    );
    h.finish().await;
}

#[tokio::test]
async fn with_elicitation_an_accepted_approval_runs_the_command() {
    let work = tempfile::TempDir::new().unwrap();
    let mut h = Harness::start_with(
        untrusted_command_steps(work.path()),
        HarnessOptions {
            elicitation: Some(ElicitationAction::Accept),
        },
    )
    .await;
    let mut arguments = args(json!({"prompt": "touch it", "approval-policy": "untrusted"}));
    arguments.insert("cwd".into(), json!(work.path()));
    let result = h.call("tiller", arguments).await;
    assert_eq!(structured(&result)["status"], "completed");
    assert!(work.path().join("ran").exists(), "the approved command ran");
    let mut asked = false;
    while let Ok(seen) = h.seen.try_recv() {
        if let Seen::Elicitation(message) = seen {
            asked = message.contains("touch");
        }
    }
    assert!(asked, "the client was asked through elicitation");
    h.finish().await;
}

/// An edit under `untrusted` is put to the client through elicitation too,
/// naming the files; a decline writes nothing.
#[tokio::test]
async fn with_elicitation_an_edit_is_asked_and_a_decline_writes_nothing() {
    let work = tempfile::TempDir::new().unwrap();
    let patch = "*** Begin Patch\n*** Add File: made.txt\n+made\n*** End Patch";
    let mut h = Harness::start_with(
        vec![
            Step::function_call("call_1", "apply_patch", json!({ "input": patch })),
            Step::text("finished"),
        ],
        HarnessOptions {
            elicitation: Some(ElicitationAction::Decline),
        },
    )
    .await;
    let mut arguments = args(json!({"prompt": "make it", "approval-policy": "untrusted"}));
    arguments.insert("cwd".into(), json!(work.path()));
    let result = h.call("tiller", arguments).await;
    assert_eq!(structured(&result)["status"], "completed");
    assert!(
        !work.path().join("made.txt").exists(),
        "the declined edit was not written"
    );
    let mut asked = None;
    while let Ok(seen) = h.seen.try_recv() {
        if let Seen::Elicitation(message) = seen {
            asked = Some(message);
        }
    }
    let asked = asked.expect("the client was asked through elicitation");
    assert!(asked.contains("wants to edit made.txt"), "{asked}");
    h.finish().await;
}
