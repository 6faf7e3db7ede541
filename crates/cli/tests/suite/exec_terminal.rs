//! `tiller exec` as a person sees it: in a pseudo-terminal with keys pressed
//! (Ctrl+C at the approval question, a command shown exactly as it runs, live
//! output), and with its output piped (only the answer on stdout, a reader
//! that leaves early, no colour in logs), and the README's demo.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tiller_test_support::PtyChild;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::support::{
    DEADLINE, MockModelProcess, PROMPT_EXIT, Scratch, TILLER, run, shell_step, text_step,
};

/// `tiller exec ARGS` for a pseudo-terminal, set up as [`Scratch::tiller`] does.
fn exec_in_pty(scratch: &Scratch, script: &std::path::Path, args: &[&str]) -> PtyChild {
    let work = scratch.work();
    let mut all = vec![
        "exec",
        "--cd",
        work.to_str().unwrap(),
        "--script",
        script.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let command = scratch.tiller_for_pty(&all, "xterm");
    PtyChild::spawn(command, 100, 30)
}

#[tokio::test]
async fn ctrl_c_at_the_approval_question_aborts_the_turn() {
    let scratch = Scratch::new();
    let script = scratch.script(json!([
        shell_step("call_rm", "rm -rf some-folder"),
        text_step("never"),
    ]));
    let mut tiller = exec_in_pty(&scratch, &script, &["--approval", "untrusted", "clean up"]);
    tiller.wait_for("a[b]ort turn", DEADLINE);
    tiller.send(b"\x03");
    let status = tiller.wait_exit(PROMPT_EXIT);
    assert_eq!(status.code(), Some(130), "{}", tiller.output());
    assert!(
        tiller.output().contains("turn interrupted"),
        "{}",
        tiller.output()
    );
    let sessions = scratch.sessions_json().await;
    assert_eq!(sessions[0]["last_turn"], "interrupted", "{sessions:#?}");
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn the_approval_question_shows_the_command_exactly_as_it_runs() {
    let scratch = Scratch::new();
    // Text that would rewrite the terminal line if printed as it is.
    let hostile = "echo safe\r\u{1b}[2Krm -rf some-folder";
    let script = scratch.script(json!([
        {"type": "response", "items": [{"type": "function_call", "name": "shell", "call_id": "c1",
          "arguments": {"command": ["bash", "-lc", hostile]}}]},
        text_step("asked"),
    ]));
    let mut tiller = exec_in_pty(&scratch, &script, &["--approval", "untrusted", "go"]);
    tiller.wait_for("a[b]ort turn", DEADLINE);
    let shown = tiller.output();
    assert!(
        shown.contains(r"allow `bash -lc $'echo safe\r\x1b[2Krm -rf some-folder'`?"),
        "{shown:?}"
    );
    assert!(
        !shown.contains("\u{1b}[2Krm"),
        "the escape sequence reached the terminal"
    );
    tiller.send(b"n\r");
    let status = tiller.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{}", tiller.output());
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn a_running_commands_output_is_shown_as_it_comes() {
    let scratch = Scratch::new();
    let go = scratch.work_file("go-on");
    let tool = format!(
        "echo first output line; while [ ! -e {} ]; do sleep 0.01; done; echo second output line",
        go.display()
    );
    let script = scratch.script(json!([
        shell_step("call_wait", &tool),
        text_step("finished")
    ]));
    let mut tiller = exec_in_pty(&scratch, &script, &["watch it"]);
    // Shown while the command still runs (it waits for the test).
    tiller.wait_for("first output line", DEADLINE);
    tiller.wait_for("running bash -lc", DEADLINE);
    std::fs::write(&go, "").unwrap();
    tiller.wait_for("finished", DEADLINE);
    assert_eq!(tiller.wait_exit(DEADLINE).code(), Some(0));
    assert!(tiller.output().contains("second output line"));
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn piped_stdout_holds_only_the_answer_not_a_stream_that_was_retried() {
    let scratch = Scratch::new();
    let script = scratch.script(json!([
        {"type": "response", "drop_after_deltas": 3, "items": [
            {"type": "text", "text": "this stream is dropped midway and retried"}]},
        text_step("Recovered after retries."),
    ]));
    let finished = run(&mut scratch.exec(&script, &["hello"])).await;
    finished.assert_exit(0);
    assert_eq!(finished.stdout, "Recovered after retries.\n");
    assert!(finished.stderr.contains("retrying"), "{}", finished.stderr);
    // The end of the run says how to continue the session.
    let id = scratch.sessions_json().await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        finished.stderr.contains(&format!(
            "session {id} · continue it with: tiller resume {id}"
        )),
        "{}",
        finished.stderr
    );
    // No colour in what goes to a pipe, logs included.
    let mut verbose = scratch.exec(&script, &["hello again"]);
    verbose.env("RUST_LOG", "debug").env_remove("NO_COLOR");
    let finished = run(&mut verbose).await;
    assert!(finished.stderr.contains("DEBUG"), "{}", finished.stderr);
    assert!(!finished.stderr.contains('\u{1b}'), "{:?}", finished.stderr);
}

#[tokio::test]
async fn a_missing_program_says_it_was_not_found() {
    let scratch = Scratch::new();
    let script = scratch.script(json!([
        {"type": "response", "items": [{"type": "function_call", "name": "shell", "call_id": "c1",
          "arguments": {"command": ["no-such-program-tiller-test"]}}]},
        text_step("it is not there"),
    ]));
    let finished = run(&mut scratch.exec(&script, &["run it"])).await;
    finished.assert_exit(0);
    assert!(
        finished.stderr.contains("was not found"),
        "{}",
        finished.stderr
    );
    assert!(finished.stderr.contains("exit 127"), "{}", finished.stderr);
    assert!(
        !finished.stderr.contains("killed by a signal"),
        "{}",
        finished.stderr
    );
}

#[tokio::test]
async fn a_reader_that_leaves_early_ends_the_run_quietly_and_the_session_is_not_cut_off() {
    let scratch = Scratch::new();
    let script = scratch.script(json!([
        {"type": "response", "items": [
            {"type": "text", "text": "first line"},
            {"type": "function_call", "name": "shell", "call_id": "c1",
             "arguments": {"command": ["bash", "-lc", "sleep 60"]}}]},
        text_step("never"),
    ]));
    for json in [false, true] {
        let mut args = vec!["long job"];
        if json {
            args.insert(0, "--json");
        }
        let mut command = scratch.exec(&script, &args);
        command.stdout(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // `head -1`: read one line, then go away.
        tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        drop(lines);
        let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .expect("tiller exits once its reader is gone")
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(141), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let sessions = scratch.sessions_json().await;
        assert_ne!(sessions[0]["last_turn"], "cut off", "{sessions:#?}");
    }
    scratch.wait_no_process_left().await;

    // `tiller sessions | head -1` too.
    let mut command = scratch.tiller(&["sessions"]);
    let mut child = command.spawn().unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
}

#[tokio::test]
async fn openai_base_url_for_a_local_server_needs_no_api_key() {
    let scratch = Scratch::new();
    let script = scratch.script(json!([text_step("answered without a key")]));
    let mock = MockModelProcess::start(&scratch, &script).await;
    let work = scratch.work();
    let mut exec = scratch.tiller(&["exec", "--cd", work.to_str().unwrap(), "hi"]);
    exec.env("OPENAI_BASE_URL", &mock.url);
    let finished = run(&mut exec).await;
    finished.assert_exit(0);
    assert_eq!(finished.stdout, "answered without a key\n");
    mock.stop().await.assert_exit(0);
}

/// The README's first command, as written, with `cargo run -q -p tiller-cli --`
/// standing for the binary it builds: it works, and leaves `~/.tiller` alone.
#[tokio::test]
async fn the_readme_demo_runs_and_leaves_the_users_home_alone() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let command = readme
        .lines()
        .find(|l| l.contains("cargo run") && l.contains("--script examples/demo.json"))
        .expect("the README shows the offline demo");
    let command = command.replace("cargo run -q -p tiller-cli --", TILLER);
    let home = tempfile::tempdir().unwrap();
    let finished = run(tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env("HOME", home.path())
        .env_remove("TILLER_HOME")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped()))
    .await;
    finished.assert_exit(0);
    assert!(
        finished.stdout.contains("Done: I created hello.txt"),
        "{finished:?}"
    );
    assert!(
        !home.path().join(".tiller").exists(),
        "the demo wrote into ~/.tiller: {:?}",
        std::fs::read_dir(home.path()).unwrap().collect::<Vec<_>>()
    );
}

/// What a command or the model prints is shown on a terminal, not obeyed:
/// an escape sequence that would clear the screen, set the title or write the
/// clipboard reaches the terminal as visible text.
#[tokio::test]
async fn escape_sequences_from_a_command_or_the_model_are_not_sent_to_the_terminal() {
    let scratch = Scratch::new();
    let script = scratch.script(json!([
        shell_step(
            "call_esc",
            "printf 'before\\033[2Jafter\\033]0;pwned\\007\\n'"
        ),
        text_step("answer \u{1b}]52;c;cHduZWQ=\u{7} with a clipboard write"),
    ]));
    let mut tiller = exec_in_pty(&scratch, &script, &["print things"]);
    tiller.wait_for("with a clipboard write", DEADLINE);
    assert_eq!(tiller.wait_exit(DEADLINE).code(), Some(0));
    let shown = tiller.output();
    assert!(shown.contains("before\u{fffd}[2Jafter"), "{shown:?}");
    assert!(!shown.contains("\u{1b}[2J"), "{shown:?}");
    assert!(!shown.contains("\u{1b}]0;"), "{shown:?}");
    assert!(!shown.contains("\u{1b}]52"), "{shown:?}");
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn a_prompt_on_stdin_past_the_limit_or_not_utf8_is_refused_in_words() {
    let scratch = Scratch::new();
    let script = scratch.script(json!([text_step("never")]));
    let big = "x".repeat(11 * 1024 * 1024);
    let finished = super::support::run_with_stdin(&mut scratch.exec(&script, &["-"]), &big).await;
    finished.assert_exit(1);
    assert!(
        finished.stderr.contains("longer than 10 MiB"),
        "{}",
        finished.stderr
    );
}

#[tokio::test]
async fn a_password_in_the_providers_url_is_not_printed() {
    let scratch = Scratch::new();
    scratch.config(
        "model_provider = \"gw\"\n[model_providers.gw]\nbase_url = \"http://user:hunter2-secret@127.0.0.1:9/v1\"\nrequest_max_retries = 0\n",
    );
    let work = scratch.work();
    let mut exec = scratch.tiller(&["exec", "--cd", work.to_str().unwrap(), "hi"]);
    exec.env("RUST_LOG", "debug");
    let finished = run(&mut exec).await;
    finished.assert_exit(1);
    assert!(
        finished.stderr.contains("could not connect"),
        "{}",
        finished.stderr
    );
    assert!(
        !finished.stderr.contains("hunter2-secret"),
        "{}",
        finished.stderr
    );
    for path in scratch.rollout_files() {
        assert!(
            !std::fs::read_to_string(path)
                .unwrap()
                .contains("hunter2-secret")
        );
    }
}

/// `NO_COLOR` on a terminal: no colour from tiller's output or its logs.
#[tokio::test]
async fn no_color_on_a_terminal_means_no_colour_anywhere() {
    let scratch = Scratch::new();
    let script = scratch.script(json!([
        shell_step("call_echo", "echo hello"),
        text_step("coloured nowhere"),
    ]));
    let mut command = std::process::Command::new(TILLER);
    command
        .args(["exec", "--cd"])
        .arg(scratch.work())
        .arg("--script")
        .arg(&script)
        .arg("say it")
        .env("TILLER_HOME", scratch.home())
        .env("HOME", scratch.home())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "debug");
    let mut tiller = PtyChild::spawn(command, 100, 30);
    tiller.wait_for("coloured nowhere", DEADLINE);
    assert_eq!(tiller.wait_exit(DEADLINE).code(), Some(0));
    let shown = tiller.output();
    assert!(shown.contains("DEBUG"), "the logs were off: {shown:?}");
    // Select Graphic Rendition sequences (`ESC [ … m`) are colour and style.
    let sgr = shown
        .match_indices("\u{1b}[")
        .filter(|(at, _)| {
            shown[at + 2..]
                .chars()
                .find(|c| !c.is_ascii_digit() && *c != ';')
                == Some('m')
        })
        .count();
    assert_eq!(sgr, 0, "colour with NO_COLOR set: {shown:?}");
}
