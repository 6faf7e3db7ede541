//! `tiller exec` on a provider that speaks Chat Completions (`wire_api =
//! "chat"`), as local servers and gateways do, through the real binary.

use serde_json::json;
use tiller_mock_model::{Item, MockModel, Script, Step};

use super::support::{Scratch, completed_items, run};

fn shell(call_id: &str, script: &str) -> Item {
    Item::function_call(
        call_id,
        "shell",
        json!({"command": ["bash", "-lc", script]}),
    )
}

#[tokio::test]
async fn exec_on_a_chat_provider_runs_tools_and_answers() {
    let mock = MockModel::start(Script::new(vec![
        Step::response(vec![
            Item::reasoning("a file first"),
            Item::text("Writing it."),
            shell("call_w", "echo from-chat > made.txt"),
            shell("call_r", "cat made.txt"),
        ])
        .with_interleaved_tool_calls(),
        Step::text("Both ran."),
    ]))
    .await
    .unwrap();
    let scratch = Scratch::new();
    scratch.mock_config(&mock.base_url(), "wire_api = \"chat\"\n");
    let work = scratch.work();
    let finished = run(&mut scratch.tiller(&[
        "exec",
        "--json",
        "--cd",
        work.to_str().unwrap(),
        "make a file",
    ]))
    .await;
    finished.assert_exit(0);
    let events = finished.json();
    let commands = completed_items(&events, "command_execution");
    assert_eq!(commands.len(), 2, "{events:#?}");
    assert_eq!(commands[1].1["aggregated_output"], "from-chat\n");
    let reasoning = completed_items(&events, "reasoning");
    assert_eq!(reasoning[0].1["text"], "a file first");
    let answers = completed_items(&events, "agent_message");
    assert_eq!(answers.last().unwrap().1["text"], "Both ran.");

    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.path, "/v1/chat/completions");
        assert_eq!(request.rejected, None);
        assert_eq!(request.body["stream"], true);
        assert_eq!(request.body["stream_options"]["include_usage"], true);
    }
    assert!(
        requests[0].tool_names().iter().any(|name| name == "shell"),
        "{:?}",
        requests[0].tool_names()
    );
    // The second request: one assistant message with both calls, each
    // answered by a `tool` message right after it.
    let messages = requests[1].body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "tool"]);
    assert_eq!(messages[2]["content"], "Writing it.");
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_w");
    assert_eq!(messages[2]["tool_calls"][1]["id"], "call_r");
    assert_eq!(messages[4]["tool_call_id"], "call_r");
    assert!(
        messages[4]["content"]
            .as_str()
            .unwrap()
            .contains("from-chat"),
        "{:?}",
        messages[4]
    );
}

#[tokio::test]
async fn an_answer_cut_at_the_output_limit_is_a_clear_failure() {
    let mock = MockModel::start(Script::new(vec![
        Step::text("this answer is cut off in the mid").with_finish_reason("length"),
    ]))
    .await
    .unwrap();
    let scratch = Scratch::new();
    scratch.mock_config(&mock.base_url(), "wire_api = \"chat\"\n");
    let work = scratch.work();
    let finished =
        run(&mut scratch.tiller(&["exec", "--cd", work.to_str().unwrap(), "write a lot"])).await;
    assert_ne!(finished.status.code(), Some(0), "{}", finished.stderr);
    assert!(
        finished.stderr.contains("output token limit"),
        "stderr:\n{}",
        finished.stderr
    );
    assert_eq!(
        mock.requests().len(),
        1,
        "not retried: it would be cut again"
    );
}

#[tokio::test]
async fn a_conversation_past_the_window_is_compacted_with_one_line() {
    // About 1,500 tokens of prompt past what every request carries (the tools'
    // specs, the instructions): see `long` below.
    const WINDOW: u64 = 3_300;
    let mut steps = vec![Step::text("first answer")];
    // The model's summary, then the answer to the second prompt.
    steps.push(Step::text("SUMMARY: the user asked twice"));
    steps.push(Step::text("second answer"));
    // The kept prompt keeps the next run near the limit too: it compacts again.
    steps.push(Step::text("SUMMARY: a long prompt, answered"));
    steps.push(Step::text("third answer"));
    let mock = MockModel::start(Script::new(steps)).await.unwrap();
    mock.set_context_window(Some(WINDOW));
    let scratch = Scratch::new();
    scratch.config(&format!(
        "model_context_window = {WINDOW}\n{}",
        tiller_test_support::mock_provider_config(&mock.base_url(), "wire_api = \"chat\"\n")
    ));
    let work = scratch.work();
    let first = run(&mut scratch.tiller(&["exec", "--cd", work.to_str().unwrap(), "hello"])).await;
    first.assert_exit(0);
    // A prompt that takes the next request past 90 % of the window.
    let long = format!("again: {}", "more words ".repeat(730));
    let second = run(&mut scratch.tiller(&[
        "exec",
        "--cd",
        work.to_str().unwrap(),
        "resume",
        "--last",
        &long,
    ]))
    .await;
    second.assert_exit(0);
    let compacted: Vec<&str> = second
        .stderr
        .lines()
        .filter(|line| line.contains("conversation compacted"))
        .collect();
    let sizes: Vec<u64> = mock.requests().iter().map(|r| r.input_tokens).collect();
    assert_eq!(
        compacted.len(),
        1,
        "requests of {sizes:?} tokens; stderr:\n{}",
        second.stderr
    );
    assert!(second.stdout.contains("second answer"), "{}", second.stdout);
    let requests = mock.requests();
    assert!(requests.iter().all(|r| r.rejected.is_none()));
    assert!(requests.iter().all(|r| r.input_tokens <= WINDOW));
    // The rollout records it, so a resumed session starts from the summary,
    // then the prompt that was kept word for word.
    let rollout = &scratch.rollout_files()[0];
    let text = std::fs::read_to_string(rollout).unwrap();
    assert!(
        text.contains("\"type\":\"compacted\"") && text.contains("SUMMARY: the user asked twice"),
        "no compacted line in the rollout"
    );
    let third = run(&mut scratch.tiller(&[
        "exec",
        "--cd",
        work.to_str().unwrap(),
        "resume",
        "--last",
        "third",
    ]))
    .await;
    third.assert_exit(0);
    let requests = mock.requests();
    assert_eq!(requests.len(), 5);
    // What the resumed session read back: the summary, the kept prompt once,
    // the answer; it summarised that (the new prompt kept aside) ...
    let resumed = tiller_test_support::input_summary(&requests[3]);
    assert_eq!(resumed.len(), 4, "{resumed:?}");
    assert!(
        resumed[0].contains("SUMMARY: the user asked twice"),
        "{resumed:?}"
    );
    assert!(
        resumed[1].starts_with("user: again: more words"),
        "{resumed:?}"
    );
    assert_eq!(resumed[2], "assistant: second answer");
    assert!(resumed[3].starts_with("user: Summarize the conversation"));
    // ... and went on from the new summary and the new prompt.
    let last = tiller_test_support::input_summary(&requests[4]);
    assert_eq!(last.len(), 2, "{last:?}");
    assert!(
        last[0].contains("SUMMARY: a long prompt, answered"),
        "{last:?}"
    );
    assert_eq!(last[1], "user: third");
    assert!(requests.iter().all(|r| r.input_tokens <= WINDOW));
}
