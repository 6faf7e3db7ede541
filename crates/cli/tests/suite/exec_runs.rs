//! `tiller exec` runs that end by themselves: completed, failed, retried,
//! denied, and the flags and inputs around them.

use std::path::Path;

use serde_json::json;

use super::support::{
    DEMO_SCRIPT, Scratch, completed_items, event_type, only_event, run, run_with_stdin,
};

/// A script whose one response is the text `answer`.
fn text_step(answer: &str) -> serde_json::Value {
    json!({"type": "response", "items": [{"type": "text", "text": answer}]})
}

#[tokio::test]
async fn exec_script_runs_a_real_command_and_completes() {
    let demo = Path::new(DEMO_SCRIPT);

    // For a person: the answer on stdout, the command and how it ended on stderr.
    let scratch = Scratch::new();
    let human = run(&mut scratch.exec(demo, &["write a file"])).await;
    human.assert_exit(0);
    assert_eq!(
        std::fs::read_to_string(scratch.work_file("hello.txt")).unwrap(),
        "hello from tiller\n"
    );
    assert!(
        human
            .stdout
            .contains("I'll write a file in this folder and look at what is there.")
            && human.stdout.contains("Done: I created hello.txt"),
        "stdout lacks the answer:\n{}",
        human.stdout
    );
    assert!(
        human
            .stderr
            .lines()
            .any(|l| l.starts_with("$ bash -lc") && l.contains("hello.txt")),
        "stderr does not show the command:\n{}",
        human.stderr
    );
    assert!(
        human
            .stderr
            .lines()
            .any(|l| l.trim_start().starts_with("exit 0 in")),
        "stderr does not show `exit 0`:\n{}",
        human.stderr
    );

    // For a program: Codex exec events.
    let scratch = Scratch::new();
    let finished = run(&mut scratch.exec(demo, &["--json", "write a file"])).await;
    finished.assert_exit(0);
    assert!(scratch.work_file("hello.txt").exists());
    let events = finished.json();
    assert_eq!(event_type(&events[0]), "thread.started", "{events:#?}");
    let commands = completed_items(&events, "command_execution");
    assert_eq!(commands.len(), 1, "{events:#?}");
    let (command_at, command) = commands[0];
    assert_eq!(command["exit_code"], 0, "{command:#}");
    assert_eq!(command["status"], "completed", "{command:#}");
    assert!(
        command["aggregated_output"]
            .as_str()
            .unwrap()
            .contains("hello.txt"),
        "{command:#}"
    );
    let (completed_at, completed) = only_event(&events, "turn.completed");
    assert!(completed_at > command_at, "{events:#?}");
    assert_eq!(completed_at, events.len() - 1, "{events:#?}");
    assert!(completed["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(completed["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn exec_failed_turn_exits_1_with_the_servers_message() {
    let message = "Invalid model 'nope'.";
    let step = json!({"type": "http_error", "status": 400,
        "body": {"error": {"message": message, "type": "invalid_request_error"}}});

    let scratch = Scratch::new();
    let script = scratch.script(json!([step.clone()]));
    let human = run(&mut scratch.exec(&script, &["hi"])).await;
    human.assert_exit(1);
    assert!(human.stderr.contains(message), "stderr:\n{}", human.stderr);

    let scratch = Scratch::new();
    let script = scratch.script(json!([step]));
    let finished = run(&mut scratch.exec(&script, &["--json", "hi"])).await;
    finished.assert_exit(1);
    assert!(
        finished.stderr.contains(message),
        "stderr:\n{}",
        finished.stderr
    );
    let events = finished.json();
    let (_, failed) = only_event(&events, "turn.failed");
    assert_eq!(failed["error"]["message"], message, "{failed:#}");
}

#[tokio::test]
async fn exec_retries_show_as_status_lines() {
    let scratch = Scratch::new();
    let script = scratch.script(json!([
        {"type": "http_error", "status": 503},
        text_step("recovered after a retry"),
    ]));
    let finished = run(&mut scratch.exec(&script, &["hi"])).await;
    finished.assert_exit(0);
    assert!(
        finished.stdout.contains("recovered after a retry"),
        "stdout:\n{}",
        finished.stdout
    );
    assert!(
        finished
            .stderr
            .lines()
            .any(|l| l.contains("retrying") && l.contains("503")),
        "no retry line on stderr:\n{}",
        finished.stderr
    );
}

#[tokio::test]
async fn untrusted_without_a_terminal_denies_and_says_how_to_allow() {
    let scratch = Scratch::new();
    let victim = scratch.work_file("x");
    std::fs::write(&victim, "keep me").unwrap();
    let script = scratch.script(json!([
        {"type": "response", "items": [{"type": "function_call", "name": "shell",
            "call_id": "call_rm", "arguments": {"command": ["rm", "-f", "x"]}}]},
        text_step("I was not allowed to remove it."),
    ]));
    // stdin is /dev/null: there is no terminal to ask on.
    let finished =
        run(&mut scratch.exec(&script, &["--json", "--approval", "untrusted", "rm x"])).await;
    finished.assert_exit(0);
    assert!(
        finished.stderr.contains("--approval never"),
        "stderr does not say how to allow commands:\n{}",
        finished.stderr
    );
    assert!(victim.exists(), "the denied command ran");
    let events = finished.json();
    let commands = completed_items(&events, "command_execution");
    assert_eq!(commands.len(), 1, "{events:#?}");
    assert_eq!(commands[0].1["status"], "declined", "{events:#?}");
    assert_eq!(commands[0].1["command"], "rm -f x", "{events:#?}");
    only_event(&events, "turn.completed");
}

#[tokio::test]
async fn missing_api_key_names_the_variable() {
    let scratch = Scratch::new();
    let work = scratch.work();
    let mut command = scratch.tiller(&[
        "exec",
        "--provider",
        "openai",
        "--cd",
        work.to_str().unwrap(),
        // Should the key check ever pass, nothing leaves the machine.
        "-c",
        "model_providers.openai.base_url=http://127.0.0.1:9/v1",
        "hi",
    ]);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", scratch.home())
        .env("TILLER_HOME", scratch.home());
    let finished = run(&mut command).await;
    assert!(
        finished.status.code().is_some_and(|code| code != 0),
        "expected a failure exit code, got {:?}\nstderr:\n{}",
        finished.status,
        finished.stderr
    );
    assert!(
        finished.stderr.contains("OPENAI_API_KEY"),
        "stderr does not name the variable:\n{}",
        finished.stderr
    );
}

#[tokio::test]
async fn prompt_is_read_from_stdin_when_not_given() {
    // The mock's usage estimate is a quarter of the request's size in bytes, so
    // a prompt of 40 000 bytes shows as over 10 000 input tokens only if it was
    // sent; the rest of a request is well under that.
    let prompt = "count the words of this prompt please ".repeat(1100);
    assert!(prompt.len() > 40_000);

    let scratch = Scratch::new();
    let script = scratch.script(json!([text_step("read from stdin")]));
    let finished = run_with_stdin(&mut scratch.exec(&script, &["--json"]), &prompt).await;
    finished.assert_exit(0);
    let events = finished.json();
    let answers = completed_items(&events, "agent_message");
    assert_eq!(answers.len(), 1, "{events:#?}");
    assert_eq!(answers[0].1["text"], "read from stdin");
    let (_, completed) = only_event(&events, "turn.completed");
    let input_tokens = completed["usage"]["input_tokens"].as_u64().unwrap();
    assert!(
        input_tokens > 10_000,
        "the model saw {input_tokens} input tokens: the prompt on stdin was not sent"
    );

    // `-` says the same explicitly.
    let scratch = Scratch::new();
    let script = scratch.script(json!([text_step("read from stdin too")]));
    let finished = run_with_stdin(&mut scratch.exec(&script, &["--json", "-"]), &prompt).await;
    finished.assert_exit(0);
    let events = finished.json();
    let (_, completed) = only_event(&events, "turn.completed");
    let input_tokens = completed["usage"]["input_tokens"].as_u64().unwrap();
    assert!(input_tokens > 10_000, "{input_tokens} input tokens");
}

/// Two `update_plan` calls, then an answer.
fn plan_script(scratch: &Scratch) -> std::path::PathBuf {
    let call = |id: &str, plan: serde_json::Value| {
        json!({"type": "response", "items": [{"type": "function_call", "name": "update_plan",
            "call_id": id, "arguments": plan}]})
    };
    scratch.script(json!([
        call(
            "call_p1",
            json!({"explanation": "first look", "plan": [
            {"step": "read the code", "status": "in_progress"},
            {"step": "fix the bug", "status": "pending"}]})
        ),
        call(
            "call_p2",
            json!({"plan": [
            {"step": "read the code", "status": "completed"},
            {"step": "fix the bug", "status": "in_progress"}]})
        ),
        text_step("on it"),
    ]))
}

#[tokio::test]
async fn exec_shows_the_plan_as_a_checklist_and_as_codexs_todo_list() {
    let scratch = Scratch::new();
    let human = run(&mut scratch.exec(&plan_script(&scratch), &["fix it"])).await;
    human.assert_exit(0);
    let lines: Vec<&str> = human.stderr.lines().map(str::trim_end).collect();
    let first = lines
        .iter()
        .position(|l| *l == "plan: first look")
        .unwrap_or_else(|| panic!("no plan heading:\n{}", human.stderr));
    assert_eq!(
        lines[first..first + 6],
        [
            "plan: first look",
            "  [>] read the code",
            "  [ ] fix the bug",
            "plan",
            "  [x] read the code",
            "  [>] fix the bug",
        ],
        "stderr:\n{}",
        human.stderr
    );

    let scratch = Scratch::new();
    let finished = run(&mut scratch.exec(&plan_script(&scratch), &["--json", "fix it"])).await;
    finished.assert_exit(0);
    let events = finished.json();
    let todo: Vec<(usize, &str, &serde_json::Value)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["item"]["type"] == "todo_list")
        .map(|(i, e)| (i, event_type(e), &e["item"]))
        .collect();
    let kinds: Vec<&str> = todo.iter().map(|(_, kind, _)| *kind).collect();
    assert_eq!(
        kinds,
        ["item.started", "item.updated", "item.completed"],
        "{events:#?}"
    );
    let id = &todo[0].2["id"];
    assert!(
        todo.iter().all(|(_, _, item)| &item["id"] == id),
        "{events:#?}"
    );
    assert_eq!(
        todo[0].2["items"],
        json!([{"text": "read the code", "completed": false},
               {"text": "fix the bug", "completed": false}])
    );
    assert_eq!(
        todo[2].2["items"],
        json!([{"text": "read the code", "completed": true},
               {"text": "fix the bug", "completed": false}])
    );
    let (completed_at, _) = only_event(&events, "turn.completed");
    assert_eq!(todo[2].0 + 1, completed_at, "{events:#?}");
}
