//! The context: tool calls cut mid-arguments, compaction (automatic, on a
//! context-length error, interrupted), and reasoning kept in the history.

use serde_json::{Value, json};
use tiller_core::config::WireApi;
use tiller_mock_model::{Item, Step};
use tiller_protocol::{
    CompactionStatus, CompactionTrigger, EventMsg, Op, Reply, TurnAbortReason, TurnItem,
    TurnItemKind,
};
use tiller_test_support::{EngineSettings, TestEngine, input_summary};

/// The compactions the session showed, as completed items.
fn compactions(engine: &TestEngine) -> Vec<(CompactionTrigger, bool)> {
    engine
        .log
        .iter()
        .filter_map(|e| match &e.msg {
            EventMsg::ItemCompleted {
                item:
                    TurnItem {
                        kind:
                            TurnItemKind::ContextCompaction {
                                trigger, tokens, ..
                            },
                        ..
                    },
            } => Some((*trigger, tokens.is_some())),
            _ => None,
        })
        .collect()
}

/// Every function call of a request's input has JSON arguments and exactly
/// one output after it.
fn assert_calls_whole_and_answered(input: &[Value]) {
    for (i, item) in input.iter().enumerate() {
        if item["type"] != "function_call" {
            continue;
        }
        let arguments = item["arguments"].as_str().expect("arguments are text");
        serde_json::from_str::<Value>(arguments)
            .unwrap_or_else(|e| panic!("a call with cut arguments was sent: {arguments} ({e})"));
        let call_id = &item["call_id"];
        let outputs = input[i + 1..]
            .iter()
            .filter(|later| later["type"] == "function_call_output" && &later["call_id"] == call_id)
            .count();
        assert_eq!(
            outputs, 1,
            "call {call_id} has {outputs} outputs: {input:#?}"
        );
    }
}

async fn three_calls_cut_mid_arguments_leave_a_valid_next_request(wire: WireApi) {
    let call = |id: &str, n: u32| {
        Item::function_call(
            id,
            "shell",
            json!({"command": ["bash", "-lc", format!("echo call number {n} was run")]}),
        )
    };
    let deltas_of_one_call = {
        let arguments = json!({"command": ["bash", "-lc", "echo call number 1 was run"]});
        arguments.to_string().chars().count().div_ceil(16)
    };
    // Text, then three calls whose arguments come in many fragments (on
    // Chat Completions interleaved by index); the stream goes silent in the
    // middle of the third call's arguments.
    let cut = 2 + 2 * deltas_of_one_call + 1;
    let mut step = Step::response(vec![
        Item::text("three calls"),
        call("call_a", 1),
        call("call_b", 2),
        call("call_c", 3),
    ])
    .with_hang_after(cut);
    if let Step::Response(response) = &mut step {
        response.interleave_tool_calls = wire == WireApi::Chat;
    }
    let mut engine = TestEngine::start(wire, vec![step, Step::text("fine")]).await;
    let turn = engine.start_turn("make three calls").await;
    engine
        .wait_for("the answer's text", |e| {
            matches!(e.msg, EventMsg::AgentMessageDelta { .. })
        })
        .await;
    engine.submit(Op::Interrupt).await.unwrap();
    let terminal = engine.wait_terminal(&turn).await;
    assert!(
        matches!(
            terminal,
            EventMsg::TurnAborted {
                reason: TurnAbortReason::Interrupted,
                ..
            }
        ),
        "{terminal:?}"
    );
    assert!(
        !engine.log.iter().any(|e| matches!(
            &e.msg,
            EventMsg::ItemStarted { item } if matches!(item.kind, TurnItemKind::CommandExecution { .. })
        )),
        "no call of a cut answer runs"
    );

    let next = engine.start_turn("again").await;
    engine.wait_terminal(&next).await;
    let requests = engine.wait_requests(2).await;
    assert_eq!(requests[1].rejected, None);
    assert_calls_whole_and_answered(requests[1].input());
    let summary = input_summary(&requests[1]);
    assert!(
        summary.iter().all(|line| !line.contains("call_c")),
        "the call cut mid-arguments is not in the history: {summary:?}"
    );
    engine.finish().await;
}

async fn three_fragmented_calls_all_run_and_are_answered(wire: WireApi) {
    let call = |id: &str, n: u32| {
        Item::function_call(
            id,
            "shell",
            json!({"command": ["bash", "-lc", format!("echo ran {n}")]}),
        )
    };
    let mut step = Step::response(vec![
        call("call_a", 1),
        call("call_b", 2),
        call("call_c", 3),
    ]);
    if let Step::Response(response) = &mut step {
        response.interleave_tool_calls = wire == WireApi::Chat;
    }
    let mut engine = TestEngine::start(wire, vec![step, Step::text("done")]).await;
    let turn = engine.start_turn("three at once").await;
    assert!(matches!(
        engine.wait_terminal(&turn).await,
        EventMsg::TurnCompleted { .. }
    ));
    let requests = engine.wait_requests(2).await;
    let input = requests[1].input();
    assert_calls_whole_and_answered(input);
    let outputs: Vec<String> = input_summary(&requests[1])
        .into_iter()
        .filter(|line| line.starts_with("output "))
        .collect();
    assert_eq!(outputs.len(), 3, "{outputs:?}");
    for (n, output) in outputs.iter().enumerate() {
        assert!(output.contains(&format!("ran {}", n + 1)), "{output}");
    }
    engine.finish().await;
}

async fn a_long_session_compacts_and_stays_under_a_small_window(wire: WireApi) {
    const WINDOW: u64 = 4_000;
    const TURNS: usize = 200;
    let answer = |i: usize| Step::text(format!("answer {i}: {}", "lorem ipsum ".repeat(60)));
    let mut settings = EngineSettings::new(wire);
    settings.context_window = Some(WINDOW);
    let mut engine = TestEngine::start_with((0..TURNS * 2).map(answer).collect(), settings).await;
    engine.mock.set_context_window(Some(WINDOW));
    for i in 0..TURNS {
        let turn = engine
            .start_turn(&format!("turn {i}: {}", "please go on ".repeat(10)))
            .await;
        let terminal = engine.wait_terminal(&turn).await;
        assert!(
            matches!(terminal, EventMsg::TurnCompleted { .. }),
            "turn {i} ended with {terminal:?}"
        );
    }
    let requests = engine.requests();
    let refused: Vec<&String> = requests
        .iter()
        .filter_map(|r| r.rejected.as_ref())
        .collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
    let largest = requests.iter().map(|r| r.input_tokens).max().unwrap_or(0);
    assert!(largest <= WINDOW, "a request of {largest} tokens");
    let compactions = compactions(&engine);
    assert!(
        compactions.len() >= 5,
        "the history far exceeds the window, so it was compacted many times: {compactions:?}"
    );
    assert!(
        compactions
            .iter()
            .all(|(trigger, done)| *trigger == CompactionTrigger::Auto && *done)
    );
    // Each compaction request asked for a summary, with no tools.
    let summaries = requests
        .iter()
        .filter(|r| r.tool_names().is_empty())
        .count();
    assert_eq!(summaries, compactions.len());
    eprintln!(
        "{TURNS} turns, {} requests, {} compactions, largest request {largest} tokens (window {WINDOW})",
        requests.len(),
        compactions.len()
    );
    engine.finish().await;
}

fn context_length_error(wire: WireApi) -> Step {
    let message = match wire {
        WireApi::Responses => {
            "Your input exceeds the context window of this model. Please adjust your input and try again."
        }
        WireApi::Chat => {
            "This model's maximum context length is 8192 tokens. However, your messages resulted in 9100 tokens. Please reduce the length of the messages."
        }
    };
    Step::http_error(
        400,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": "context_length_exceeded"}}),
    )
}

async fn a_context_length_error_compacts_once_and_sends_again(wire: WireApi) {
    let mut engine = TestEngine::start(
        wire,
        vec![
            Step::text("first answer"),
            context_length_error(wire),
            Step::text("SUMMARY: the user said hello twice"),
            Step::text("second answer"),
        ],
    )
    .await;
    let first = engine.start_turn("hello").await;
    engine.wait_terminal(&first).await;
    let second = engine.start_turn("hello again").await;
    let terminal = engine.wait_terminal(&second).await;
    assert!(
        matches!(terminal, EventMsg::TurnCompleted { .. }),
        "{terminal:?}"
    );
    assert_eq!(compactions(&engine), [(CompactionTrigger::Overflow, true)]);
    let requests = engine.wait_requests(4).await;
    assert!(requests[2].tool_names().is_empty(), "the summary request");
    // The summary was asked of what came before the new message, which
    // follows it word for word.
    assert!(
        input_summary(&requests[2])
            .last()
            .is_some_and(|line| line.starts_with("user: Summarize the conversation")),
        "{:?}",
        input_summary(&requests[2])
    );
    assert!(
        !input_summary(&requests[2])
            .iter()
            .any(|line| line == "user: hello again"),
        "{:?}",
        input_summary(&requests[2])
    );
    let resent = input_summary(&requests[3]);
    assert_eq!(resent.len(), 2, "{resent:?}");
    assert!(
        resent[0].contains("SUMMARY: the user said hello twice"),
        "{resent:?}"
    );
    assert_eq!(resent[1], "user: hello again");
    engine.finish().await;
}

async fn a_second_context_length_error_fails_the_turn(wire: WireApi) {
    let mut engine = TestEngine::start(
        wire,
        vec![
            context_length_error(wire),
            Step::text("SUMMARY: hello"),
            context_length_error(wire),
            Step::text("never sent"),
        ],
    )
    .await;
    let turn = engine.start_turn("hello").await;
    match engine.wait_terminal(&turn).await {
        EventMsg::TurnFailed { error, .. } => {
            assert!(error.message.contains("context"), "{}", error.message);
            assert_eq!(error.http_status, Some(400));
        }
        other => panic!("the turn ended with {other:?}"),
    }
    assert_eq!(engine.requests().len(), 3);
    engine.finish().await;
}

async fn an_interrupted_compaction_leaves_the_history_as_it_was(wire: WireApi) {
    let mut engine = TestEngine::start(
        wire,
        vec![
            Step::text("first answer"),
            Step::text("a summary that never ends").with_hang_after(2),
            Step::text("second answer"),
        ],
    )
    .await;
    let first = engine.start_turn("hello").await;
    engine.wait_terminal(&first).await;
    let compaction = match engine.submit(Op::Compact).await.unwrap() {
        Reply::TurnStarted { turn_id } => turn_id,
        other => panic!("Compact was answered with {other:?}"),
    };
    engine.wait_requests(2).await;
    engine.submit(Op::Interrupt).await.unwrap();
    assert!(matches!(
        engine.wait_terminal(&compaction).await,
        EventMsg::TurnAborted { .. }
    ));
    assert_eq!(compactions(&engine), [(CompactionTrigger::Manual, false)]);
    assert!(engine.log.iter().any(|e| matches!(
        &e.msg,
        EventMsg::ItemCompleted {
            item: TurnItem {
                kind: TurnItemKind::ContextCompaction {
                    status: Some(CompactionStatus::Failed),
                    ..
                },
                ..
            }
        }
    )));
    let next = engine.start_turn("still there?").await;
    engine.wait_terminal(&next).await;
    let requests = engine.wait_requests(3).await;
    assert_eq!(
        input_summary(&requests[2]),
        [
            "user: hello",
            "assistant: first answer",
            "user: still there?"
        ],
        "no summary, no partial text, no interruption marker"
    );
    engine.finish().await;
}

async fn a_manual_compaction_replaces_the_history_with_its_summary(wire: WireApi) {
    let mut engine = TestEngine::start(
        wire,
        vec![
            Step::text("first answer"),
            Step::text("SUMMARY: hello was said"),
            Step::text("second answer"),
        ],
    )
    .await;
    let first = engine.start_turn("hello").await;
    engine.wait_terminal(&first).await;
    let Reply::TurnStarted { turn_id } = engine.submit(Op::Compact).await.unwrap() else {
        panic!("no compaction turn");
    };
    assert!(matches!(
        engine.wait_terminal(&turn_id).await,
        EventMsg::TurnCompleted { .. }
    ));
    let next = engine.start_turn("and now?").await;
    engine.wait_terminal(&next).await;
    let requests = engine.wait_requests(3).await;
    let summary = input_summary(&requests[2]);
    assert_eq!(summary.len(), 2, "{summary:?}");
    assert!(summary[0].contains("SUMMARY: hello was said"));
    assert_eq!(summary[1], "user: and now?");
    engine.finish().await;
}

async fn reasoning_is_shown_and_sent_back_where_the_api_takes_it(wire: WireApi) {
    let mut settings = EngineSettings::new(wire);
    settings.reasoning_effort = Some("high".to_string());
    let mut engine = TestEngine::start_with(
        vec![
            Step::response(vec![Item::reasoning("thinking hard"), Item::text("done")]),
            Step::text("again"),
        ],
        settings,
    )
    .await;
    let first = engine.start_turn("think").await;
    engine.wait_terminal(&first).await;
    let shown = engine.log.iter().find_map(|e| match &e.msg {
        EventMsg::ItemCompleted {
            item:
                TurnItem {
                    kind: TurnItemKind::Reasoning { text },
                    ..
                },
        } => Some(text.clone()),
        _ => None,
    });
    assert_eq!(shown.as_deref(), Some("thinking hard"));
    let second = engine.start_turn("more").await;
    engine.wait_terminal(&second).await;
    let requests = engine.wait_requests(2).await;
    let reasoning: Vec<&Value> = requests[1]
        .input()
        .iter()
        .filter(|item| item["type"] == "reasoning")
        .collect();
    match wire {
        WireApi::Responses => {
            assert_eq!(requests[0].body["reasoning"]["effort"], "high");
            assert_eq!(
                requests[0].body["include"],
                json!(["reasoning.encrypted_content"])
            );
            assert_eq!(reasoning.len(), 1, "{:#?}", requests[1].input());
            assert_eq!(
                reasoning[0]["encrypted_content"],
                "enc:rs_mock_1_0:thinking hard"
            );
            assert_eq!(reasoning[0]["summary"][0]["text"], "thinking hard");
        }
        WireApi::Chat => {
            assert_eq!(requests[0].body["reasoning_effort"], "high");
            assert!(reasoning.is_empty(), "chat servers refuse reasoning back");
            assert!(
                !requests[1].raw_body.contains("thinking hard"),
                "the reasoning went back in some form: {}",
                requests[1].raw_body
            );
        }
    }
    engine.finish().await;
}

async fn a_window_from_the_model_list_is_kept_to(wire: WireApi) {
    const WINDOW: u64 = 4_000;
    let mut settings = EngineSettings::new(wire);
    settings.model_list =
        vec![json!({"id": "gpt-5-codex", "object": "model", "context_length": WINDOW})];
    let mut engine = TestEngine::start_with(
        vec![
            Step::text("first"),
            Step::text("SUMMARY: two long prompts"),
            Step::text("second"),
        ],
        settings,
    )
    .await;
    engine.mock.set_context_window(Some(WINDOW));
    engine
        .wait_for("the window from the model list", |e| {
            matches!(&e.msg, EventMsg::BackgroundEvent { message }
                if message.contains("context window of 4000 tokens"))
        })
        .await;
    for prompt in ["one", "two"] {
        let turn = engine
            .start_turn(&format!("{prompt}: {}", "many words ".repeat(540)))
            .await;
        let terminal = engine.wait_terminal(&turn).await;
        assert!(
            matches!(terminal, EventMsg::TurnCompleted { .. }),
            "{terminal:?}"
        );
    }
    assert_eq!(compactions(&engine), [(CompactionTrigger::Auto, true)]);
    let requests = engine.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.rejected.is_none()));
    engine.finish().await;
}

on_both_wires!(
    a_window_from_the_model_list_is_kept_to,
    reasoning_is_shown_and_sent_back_where_the_api_takes_it,
    three_calls_cut_mid_arguments_leave_a_valid_next_request,
    three_fragmented_calls_all_run_and_are_answered,
    a_long_session_compacts_and_stays_under_a_small_window,
    a_context_length_error_compacts_once_and_sends_again,
    a_second_context_length_error_fails_the_turn,
    an_interrupted_compaction_leaves_the_history_as_it_was,
    a_manual_compaction_replaces_the_history_with_its_summary,
);
