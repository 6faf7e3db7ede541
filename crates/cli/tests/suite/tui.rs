//! `tiller` as a person uses it: the real binary in a pseudo-terminal, keys
//! pressed, the screen read back through a terminal emulator, against the
//! mock model in this process (so each test can check what the model was
//! sent). Esc during a command, a steer typed mid-stream, Tab to queue, Esc
//! with a steer pending, Ctrl+C at an approval, two Ctrl+C to quit, the
//! terminal put back, a second client attaching with `--remote` and
//! steering the turn it sees, and `-s` choosing the sandbox.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tiller_client::protocol::ThreadStartParams;
use tiller_client::{Client, ClientOptions};
use tiller_mock_model::{MockModel, Script};
use tiller_test_support::PtyChild;

use super::support::{DEADLINE, Listening, PROMPT_EXIT, Scratch, shell_step, text_step};

const COLS: u16 = 100;
const ROWS: u16 = 30;

/// The mock model serving `steps`, made the scratch home's provider.
async fn model(scratch: &Scratch, steps: Value, extra_config: &str) -> MockModel {
    let script = Script::from_json_str(&steps.to_string()).unwrap();
    let mock = MockModel::start(script).await.unwrap();
    // Top-level keys go before the provider's table.
    let provider = tiller_test_support::mock_provider_config(&mock.base_url(), "");
    scratch.config(&format!("{extra_config}\n{provider}"));
    mock
}

/// `tiller ARGS` in a pseudo-terminal, working in the scratch folder.
fn tui(scratch: &Scratch, args: &[&str]) -> PtyChild {
    tui_with(scratch, args, &[])
}

/// [`tui`] with variables added to its environment.
fn tui_with(scratch: &Scratch, args: &[&str], env: &[(&str, &str)]) -> PtyChild {
    let work = scratch.work();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--cd", work.to_str().unwrap()]);
    let mut command = scratch.tiller_for_pty(&all, "xterm-256color");
    command.envs(env.iter().copied());
    PtyChild::spawn(command, COLS, ROWS)
}

/// Wait until the UI is idle with a session open: the status line shows
/// the session's settings, then says ready.
fn wait_ready(ui: &PtyChild) -> String {
    ui.wait_screen("the UI ready", DEADLINE, |screen| {
        screen.lines().last().is_some_and(ready_with_a_session)
    })
}

/// Whether a status line says ready after the session's settings (the
/// model, the folder, the policies: shown once a session is open).
pub fn ready_with_a_session(status: &str) -> bool {
    status
        .split_once(" │ ")
        .is_some_and(|(settings, state)| !settings.trim().is_empty() && state.starts_with("ready"))
}

/// Type `text` and press Enter.
fn submit(ui: &mut PtyChild, text: &str) {
    ui.send(text.as_bytes());
    ui.send(b"\r");
}

/// The live processes this scratch started whose command line contains `what`.
fn processes(scratch: &Scratch, what: &str) -> Vec<i32> {
    scratch
        .processes_left()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| {
                    String::from_utf8_lossy(&raw)
                        .replace('\0', " ")
                        .contains(what)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Wait until a process whose command line contains `what` runs.
fn wait_process(scratch: &Scratch, what: &str) {
    let deadline = Instant::now() + DEADLINE;
    while processes(scratch, what).is_empty() {
        assert!(Instant::now() < deadline, "no `{what}` process started");
        // Processes that are not our children: nothing to wait on but /proc.
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The text of the last user message in a model request's input.
fn last_input_text(request: &Value) -> String {
    let input = request["input"].as_array().cloned().unwrap_or_default();
    let last = input.last().cloned().unwrap_or(Value::Null);
    assert_eq!(
        last["role"], "user",
        "the last input item is not the user's: {last}"
    );
    last["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| part["text"].as_str())
        .collect()
}

/// Ctrl+C twice on the idle UI: it quits with 0 and puts the terminal back.
fn quit(ui: &mut PtyChild) {
    ui.send(b"\x03");
    ui.wait_screen_shows("press ctrl+c again to quit", DEADLINE);
    ui.send(b"\x03");
    let status = ui.wait_exit(PROMPT_EXIT);
    assert_eq!(status.code(), Some(0), "{}", ui.screen());
    assert_terminal_restored(ui);
}

fn assert_terminal_restored(ui: &PtyChild) {
    assert!(!ui.is_raw(), "the terminal was left in raw mode");
    let (alternate, hidden_cursor) = ui.screen_modes();
    assert!(!alternate, "the terminal was left on the alternate screen");
    assert!(!hidden_cursor, "the cursor was left hidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esc_during_a_command_kills_it_and_leaves_one_interrupted_line() {
    let scratch = Scratch::new();
    let _mock = model(&scratch, json!([shell_step("call_sleep", "sleep 60")]), "").await;
    let mut ui = tui(&scratch, &[]);
    wait_ready(&ui);
    submit(&mut ui, "wait a minute");
    ui.wait_screen_shows("Running bash -lc 'sleep 60'", DEADLINE);
    wait_process(&scratch, "sleep 60");

    ui.send(b"\x1b");
    let screen = wait_ready(&ui);
    assert!(
        processes(&scratch, "sleep 60").is_empty(),
        "sleep survived Esc"
    );
    assert_eq!(
        screen.matches("interrupted").count(),
        1,
        "not exactly one interrupted line:\n{screen}"
    );
    assert!(screen.contains("■ interrupted — esc pressed"), "{screen}");
    quit(&mut ui);
    scratch.wait_no_process_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enter_mid_stream_steers_the_text_into_the_next_request() {
    let scratch = Scratch::new();
    let streaming = json!({"type": "response", "stall": {"after_deltas": 2, "ms": 3000},
        "items": [{"type": "text", "text": "Reading the code first, then I will answer."}]});
    let mock = model(
        &scratch,
        json!([streaming, text_step("Done, with the tests kept.")]),
        "",
    )
    .await;
    let mut ui = tui(&scratch, &[]);
    wait_ready(&ui);
    submit(&mut ui, "refactor the parser");
    ui.wait_screen_shows("Reading the", DEADLINE);
    // The steer cuts the stalled stream, so it may reach the model before a
    // frame shows it pending: what counts is the next request.
    submit(&mut ui, "and keep the tests");
    let screen = ui.wait_screen_shows("Done, with the tests kept.", DEADLINE);
    assert!(!screen.contains("will be sent after"), "{screen}");
    wait_ready(&ui);

    let requests = mock.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(last_input_text(&requests[1].body), "and keep the tests");
    quit(&mut ui);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tab_queues_a_message_that_runs_after_the_turn() {
    let scratch = Scratch::new();
    let mock = model(
        &scratch,
        json!([
            shell_step("call_wait", "sleep 1.5"),
            text_step("first done"),
            text_step("second done"),
        ]),
        "",
    )
    .await;
    let mut ui = tui(&scratch, &[]);
    wait_ready(&ui);
    submit(&mut ui, "first task");
    ui.wait_screen_shows("Running", DEADLINE);
    ui.send(b"second task\t");
    ui.wait_screen_shows("▸ second task", DEADLINE);
    ui.wait_screen_shows("second done", DEADLINE);
    wait_ready(&ui);
    // The queue's list follows its `thread/queue/changed`.
    let screen = ui.wait_screen("the queue empty", DEADLINE, |s| {
        !s.contains("▸ second task")
    });
    assert_eq!(screen.matches("─ completed").count(), 2, "{screen}");

    let requests = mock.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert_eq!(last_input_text(&requests[2].body), "second task");
    quit(&mut ui);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esc_with_a_pending_steer_sends_it_as_the_next_turn() {
    let scratch = Scratch::new();
    let mock = model(
        &scratch,
        json!([shell_step("call_sleep", "sleep 60"), text_step("on it")]),
        "",
    )
    .await;
    let mut ui = tui(&scratch, &[]);
    wait_ready(&ui);
    submit(&mut ui, "build it");
    ui.wait_screen_shows("Running", DEADLINE);
    wait_process(&scratch, "sleep 60");
    submit(&mut ui, "use the fast path instead");
    ui.wait_screen_shows("↳ use the fast path instead", DEADLINE);

    ui.send(b"\x1b");
    ui.wait_screen_shows("on it", DEADLINE);
    let screen = wait_ready(&ui);
    assert!(screen.contains("■ interrupted"), "{screen}");
    assert!(screen.contains("› use the fast path instead"), "{screen}");
    assert!(
        processes(&scratch, "sleep 60").is_empty(),
        "sleep survived Esc"
    );

    let requests = mock.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(
        last_input_text(&requests[1].body),
        "use the fast path instead"
    );
    quit(&mut ui);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_at_the_approval_overlay_aborts_the_turn() {
    let scratch = Scratch::new();
    let mock = model(
        &scratch,
        json!([
            shell_step("call_touch", "touch made-it"),
            text_step("never")
        ]),
        "approval_policy = \"untrusted\"",
    )
    .await;
    let mut ui = tui(&scratch, &[]);
    wait_ready(&ui);
    submit(&mut ui, "make a file");
    let screen = ui.wait_screen_shows("Run this command?", DEADLINE);
    assert!(screen.contains("$ bash -lc 'touch made-it'"), "{screen}");

    ui.send(b"\x03");
    let screen = wait_ready(&ui);
    assert!(
        screen.contains("■ interrupted — ctrl+c at the approval"),
        "{screen}"
    );
    assert!(!screen.contains("Run this command?"), "{screen}");
    assert!(!scratch.work_file("made-it").exists(), "the command ran");
    assert_eq!(mock.requests().len(), 1);
    quit(&mut ui);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ctrl_c_on_an_idle_ui_exit_0_and_restore_the_terminal() {
    let scratch = Scratch::new();
    let _mock = model(&scratch, json!([]), "").await;
    let mut ui = tui(&scratch, &[]);
    wait_ready(&ui);
    let (alternate, _) = ui.screen_modes();
    assert!(alternate, "the UI is not on the alternate screen");
    assert!(ui.is_raw(), "the UI did not put the terminal in raw mode");
    // Ctrl+C on a composer with text clears it, and does not arm the quit.
    ui.send(b"draft");
    ui.wait_screen_shows("draft", DEADLINE);
    ui.send(b"\x03");
    ui.wait_screen("the composer empty", DEADLINE, |s| !s.contains("draft"));
    quit(&mut ui);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sighup_restore_the_terminal() {
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        let scratch = Scratch::new();
        let _mock = model(&scratch, json!([]), "").await;
        let mut ui = tui(&scratch, &[]);
        wait_ready(&ui);
        let pid = nix::unistd::Pid::from_raw(i32::try_from(ui.pid()).unwrap());
        nix::sys::signal::kill(pid, signal).unwrap();
        let status = ui.wait_exit(PROMPT_EXIT);
        assert!(status.code().is_some(), "{signal}: {status:?}");
        assert_terminal_restored(&ui);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_opens_the_picker_and_the_chosen_session() {
    let scratch = Scratch::new();
    let _mock = model(&scratch, json!([text_step("first answer")]), "").await;
    let mut ui = tui(&scratch, &[]);
    wait_ready(&ui);
    submit(&mut ui, "the first prompt");
    ui.wait_screen_shows("first answer", DEADLINE);
    wait_ready(&ui);
    quit(&mut ui);

    let mut ui = tui(&scratch, &["resume"]);
    let screen = ui.wait_screen("the session and how it ended", DEADLINE, |s| {
        s.contains("the first prompt") && s.contains("completed")
    });
    assert!(screen.contains("Resume a session"), "{screen}");
    ui.send(b"\r");
    let screen = ui.wait_screen_shows("first answer", DEADLINE);
    assert!(screen.contains("› the first prompt"), "{screen}");
    wait_ready(&ui);
    quit(&mut ui);

    let mut ui = tui(&scratch, &["resume", "--last"]);
    ui.wait_screen_shows("first answer", DEADLINE);
    quit(&mut ui);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_attaches_to_a_turn_another_client_is_driving_and_steers_it() {
    let scratch = Scratch::new();
    // The other client's turn streams two words, then stalls: a steer cuts it.
    let slow = json!({"type": "response", "stall": {"after_deltas": 2, "ms": 20000},
        "items": [{"type": "text", "text": "one two three four"}]});
    let mock = model(&scratch, json!([slow, text_step("steered answer")]), "").await;
    let socket = scratch.home().join("control.sock");
    let server = Listening::start(
        &scratch,
        &["--listen", &format!("unix://{}", socket.display())],
    )
    .await;
    let url = server.url.clone();

    // The other client starts a thread and a turn.
    let (client, _events) = Client::spawn(ClientOptions::connect(&url).unwrap())
        .await
        .unwrap();
    let started = client
        .thread_start(ThreadStartParams {
            cwd: Some(scratch.work().to_string_lossy().into_owned()),
            ..ThreadStartParams::default()
        })
        .await
        .unwrap();
    let thread_id = started.thread.id;
    client
        .turn_start(
            &thread_id,
            vec![tiller_client::protocol::UserInput::Text {
                text: "count slowly".into(),
            }],
            None,
        )
        .await
        .unwrap();

    let mut ui = tui(&scratch, &["--remote", &url]);
    // The turn as it stands: its input, and the UI's clock running for it.
    ui.wait_screen("the other client's turn running", DEADLINE, |s| {
        s.contains("› count slowly") && s.contains("working")
    });
    // Steered from the terminal: the other client's turn takes it.
    submit(&mut ui, "and count faster");
    ui.wait_screen_shows("steered answer", DEADLINE);
    wait_ready(&ui);
    let requests = mock.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(last_input_text(&requests[1].body), "and count faster");
    quit(&mut ui);
    client.shutdown().await;
    assert_eq!(server.stop().await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_multi_line_paste_is_sent_whole() {
    let scratch = Scratch::new();
    let mock = model(&scratch, json!([text_step("read it all")]), "").await;
    let mut ui = tui(&scratch, &[]);
    wait_ready(&ui);
    let pasted: String = (0..2000)
        .map(|i| format!("log line {i}: something happened\n"))
        .collect();
    let mut keys = b"\x1b[200~".to_vec();
    keys.extend_from_slice(pasted.as_bytes());
    keys.extend_from_slice(b"\x1b[201~");
    ui.send(&keys);
    ui.wait_screen_shows("log line 1999", DEADLINE);
    ui.send(b"\r");
    ui.wait_screen_shows("read it all", DEADLINE);
    wait_ready(&ui);
    assert_eq!(last_input_text(&mock.requests()[0].body), pasted);
    quit(&mut ui);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_takes_the_last_turn_and_its_file_back() {
    let scratch = Scratch::new();
    let _mock = model(
        &scratch,
        json!([
            shell_step("call_make", "echo hi > made.txt"),
            text_step("made it")
        ]),
        "",
    )
    .await;
    let mut ui = tui(&scratch, &[]);
    wait_ready(&ui);
    submit(&mut ui, "make a file");
    ui.wait_screen_shows("made it", DEADLINE);
    wait_ready(&ui);
    assert!(scratch.work_file("made.txt").exists());

    submit(&mut ui, "/undo");
    let screen = ui.wait_screen("the turn taken back", DEADLINE, |s| {
        s.contains("undone: the last turn") && !s.contains("made it")
    });
    assert!(screen.contains("1 removed"), "{screen}");
    assert!(
        !scratch.work_file("made.txt").exists(),
        "the file is still there"
    );
    quit(&mut ui);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_color_draws_without_colour() {
    let scratch = Scratch::new();
    let _mock = model(&scratch, json!([]), "").await;
    let mut coloured = tui(&scratch, &[]);
    wait_ready(&coloured);
    assert!(coloured.screen_has_colour(), "the check cannot see colour");
    quit(&mut coloured);

    let mut plain = tui_with(&scratch, &[], &[("NO_COLOR", "1")]);
    wait_ready(&plain);
    assert!(!plain.screen_has_colour(), "{}", plain.screen());
    quit(&mut plain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_api_key_is_named_and_the_typed_text_kept() {
    let scratch = Scratch::new();
    // No config: the built-in OpenAI provider, and no OPENAI_API_KEY.
    let mut ui = tui(&scratch, &[]);
    let screen = ui.wait_screen_shows("could not start a session", DEADLINE);
    assert!(screen.contains("OPENAI_API_KEY"), "{screen}");
    submit(&mut ui, "hello there");
    let screen = ui.wait_screen_shows("no session is open yet", DEADLINE);
    assert!(screen.contains("│ hello there"), "{screen}");
    ui.send(b"\x03");
    ui.wait_screen("the composer empty", DEADLINE, |s| {
        !s.contains("│ hello there")
    });
    quit(&mut ui);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resize_reflows_the_conversation() {
    let scratch = Scratch::new();
    let sentence =
        "The parser keeps its state in one place, so that resuming a session reads it back whole.";
    let _mock = model(&scratch, json!([text_step(sentence)]), "").await;
    let mut ui = tui(&scratch, &[]);
    wait_ready(&ui);
    submit(&mut ui, "explain");
    ui.wait_screen_shows(sentence, DEADLINE);
    wait_ready(&ui);

    ui.resize(50, 30);
    let screen = ui.wait_screen("the answer wrapped at 50 columns", DEADLINE, |s| {
        s.lines()
            .any(|l| l.trim_end() == "The parser keeps its state in one place, so that")
    });
    assert!(!screen.contains(sentence), "{screen}");
    assert!(
        screen.lines().all(|l| l.chars().count() <= 50),
        "a line is wider than the terminal:\n{screen}"
    );
    quit(&mut ui);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_change_approvals_show_status_diff_and_compact() {
    let scratch = Scratch::new();
    let patch = "*** Begin Patch\n*** Add File: notes.txt\n+written by the patch\n*** End Patch";
    let mock = model(
        &scratch,
        json!([
            {"type": "response", "items": [{"type": "function_call", "name": "apply_patch",
                "call_id": "call_patch", "arguments": {"input": patch}}]},
            text_step("patched"),
            // Aborted at the approval: no request follows it in that turn.
            shell_step("call_touch", "touch asked-first"),
            text_step("SUMMARY: a file was written."),
        ]),
        "",
    )
    .await;
    let mut ui = tui(&scratch, &[]);
    wait_ready(&ui);
    submit(&mut ui, "write the notes");
    ui.wait_screen_shows("patched", DEADLINE);
    wait_ready(&ui);

    // /diff: the turn's patch, in the pager.
    submit(&mut ui, "/diff");
    let screen = ui.wait_screen_shows("edits of the last turn", DEADLINE);
    assert!(screen.contains("+written by the patch"), "{screen}");
    ui.send(b"q");
    ui.wait_screen("the pager closed", DEADLINE, |s| {
        !s.contains("edits of the last turn")
    });

    // /approvals untrusted: the next command is asked first (Esc aborts it).
    submit(&mut ui, "/approvals untrusted");
    ui.wait_screen_shows("approvals: untrusted from the next turn", DEADLINE);
    submit(&mut ui, "touch it");
    ui.wait_screen_shows("Run this command?", DEADLINE);
    ui.send(b"\x1b");
    let screen = wait_ready(&ui);
    assert!(
        screen.contains("■ interrupted — esc at the approval"),
        "{screen}"
    );
    assert!(!scratch.work_file("asked-first").exists());

    // /status names the session's settings.
    submit(&mut ui, "/status");
    let screen = ui.wait_screen_shows("approval untrusted", DEADLINE);
    assert!(
        screen.contains("model    gpt-5-codex") || screen.contains("model "),
        "{screen}"
    );

    // /compact: a turn whose summary replaces the history, shown as one line.
    submit(&mut ui, "/compact");
    ui.wait_screen_shows("conversation compacted", DEADLINE);
    wait_ready(&ui);
    let requests = mock.requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    assert!(
        requests[3].body["tools"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "the compaction offered tools: {}",
        requests[3].body["tools"]
    );
    quit(&mut ui);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_on_the_command_line_is_the_first_turn() {
    let scratch = Scratch::new();
    let mock = model(&scratch, json!([text_step("started with it")]), "").await;
    let mut ui = tui(&scratch, &["hello from the shell"]);
    ui.wait_screen_shows("started with it", DEADLINE);
    let screen = wait_ready(&ui);
    assert!(screen.contains("› hello from the shell"), "{screen}");
    assert_eq!(
        last_input_text(&mock.requests()[0].body),
        "hello from the shell"
    );
    quit(&mut ui);
}

/// `-s read-only`: the status line names the sandbox, and a command that
/// writes fails in it (under `-a never` the model is told, nobody asked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_flag_confines_commands_and_shows_in_the_status_line() {
    let scratch = Scratch::new();
    let mock = model(
        &scratch,
        json!([
            shell_step("call_touch", "touch made-it"),
            text_step("it was denied")
        ]),
        "",
    )
    .await;
    let mut ui = tui(&scratch, &["-s", "read-only", "-a", "never"]);
    let screen = wait_ready(&ui);
    let status = screen.lines().last().unwrap_or_default();
    assert!(status.contains("approvals: never"), "{screen}");
    assert!(status.contains("sandbox: read-only"), "{screen}");
    submit(&mut ui, "make a file");
    ui.wait_screen_shows("it was denied", DEADLINE);
    wait_ready(&ui);
    assert!(
        !scratch.work_file("made-it").exists(),
        "written in read-only"
    );
    let told = mock.requests()[1].body["input"].to_string();
    assert!(told.contains("Permission denied"), "{told}");
    quit(&mut ui);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_sandbox_mode_is_refused_naming_the_modes() {
    let scratch = Scratch::new();
    let output = scratch
        .tiller(&["--sandbox", "sometimes"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sometimes"), "{stderr}");
    assert!(
        stderr.contains("read-only, workspace-write, danger-full-access"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_models_plan_shows_as_a_checklist_that_each_update_redraws() {
    let scratch = Scratch::new();
    let plan = |id: &str, first: &str, second: &str| {
        json!({"type": "response", "items": [{"type": "function_call", "name": "update_plan",
            "call_id": id, "arguments": {"plan": [
                {"step": "find the slow query", "status": first},
                {"step": "add the index", "status": second}]}}]})
    };
    let _mock = model(
        &scratch,
        json!([
            plan("call_p1", "in_progress", "pending"),
            plan("call_p2", "completed", "in_progress"),
            text_step("indexed"),
        ]),
        "",
    )
    .await;
    let mut ui = tui(&scratch, &[]);
    wait_ready(&ui);
    submit(&mut ui, "speed it up");
    ui.wait_screen_shows("indexed", DEADLINE);
    let screen = wait_ready(&ui);
    let lines: Vec<&str> = screen.lines().map(str::trim_end).collect();
    let shown: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("Updated plan") || l.contains("slow query") || l.contains("index"))
        .collect();
    assert_eq!(
        shown,
        [
            "• Updated plan",
            "  └ ▸ find the slow query",
            "    □ add the index",
            "• Updated plan",
            "  └ ✓ find the slow query",
            "    ▸ add the index",
            "indexed",
        ],
        "{screen}"
    );
    quit(&mut ui);
    scratch.wait_no_process_left().await;
}
