//! The provider's API key is read from the environment and sent to the model,
//! and never written anywhere: not in the rollout, not in the logs, even at
//! the most verbose log level.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::support::{
    MockModelProcess, Scratch, completed_items, only_event, run, shell_step, text_step,
};

/// A key no other test or run uses, so finding it anywhere means it leaked.
fn unique_key() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    hasher.write_u32(std::process::id());
    format!("sk-test-{:016x}", hasher.finish())
}

/// Every file under `dir`, however deep.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn api_key_never_reaches_the_rollout_or_the_log() {
    let key = unique_key();
    let scratch = Scratch::new();
    let script = scratch.script(json!([
        shell_step("call_echo", "echo hello from the tool"),
        text_step("the tool said hello"),
    ]));
    let mock = MockModelProcess::start(&scratch, &script).await;
    scratch.mock_config(&mock.url, "env_key = \"TILLER_TEST_KEY\"\n");
    let work = scratch.work();
    // The provider really takes its key from the variable: without it, no run.
    let keyless = run(&mut scratch.tiller(&[
        "exec",
        "--json",
        "--cd",
        work.to_str().unwrap(),
        "say hello",
    ]))
    .await;
    assert!(
        keyless.status.code().is_some_and(|c| c != 0) && keyless.stderr.contains("TILLER_TEST_KEY"),
        "a run without the key did not fail naming the variable: {keyless:?}"
    );

    let mut exec = scratch.tiller(&[
        "exec",
        "--json",
        "--cd",
        work.to_str().unwrap(),
        "say hello",
    ]);
    exec.env("TILLER_TEST_KEY", &key).env("RUST_LOG", "trace");
    let finished = run(&mut exec).await;
    finished.assert_exit(0);
    let events = finished.json();
    let commands = completed_items(&events, "command_execution");
    assert_eq!(commands.len(), 1, "{events:#?}");
    assert_eq!(commands[0].1["exit_code"], 0, "{events:#?}");
    only_event(&events, "turn.completed");
    // The log was on, at its most verbose: the check below means something.
    assert!(
        finished.stderr.contains("TRACE"),
        "RUST_LOG=trace logged nothing:\n{}",
        finished.stderr
    );

    assert!(!finished.stdout.contains(&key), "the key is on stdout");
    assert!(!finished.stderr.contains(&key), "the key is in the log");
    let files = files_under(&scratch.home());
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "jsonl")),
        "no rollout was saved: {files:?}"
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&key), "the key is in {}", file.display());
    }

    mock.stop().await.assert_exit(0);
    scratch.wait_no_process_left().await;
}

/// A tool that prints its environment would put the key in its output, and so
/// in the rollout and in the next request to the model. The key is tiller's,
/// not the tools': they do not get it.
#[tokio::test]
async fn tools_do_not_see_the_api_key() {
    let key = unique_key();
    let scratch = Scratch::new();
    let script = scratch.script(json!([
        shell_step("call_env", "env"),
        text_step("that is the environment"),
    ]));
    let mock = MockModelProcess::start(&scratch, &script).await;
    scratch.mock_config(&mock.url, "env_key = \"TILLER_TEST_KEY\"\n");
    let work = scratch.work();
    let mut exec = scratch.tiller(&[
        "exec",
        "--json",
        "--cd",
        work.to_str().unwrap(),
        "print the environment",
    ]);
    exec.env("TILLER_TEST_KEY", &key);
    let finished = run(&mut exec).await;
    finished.assert_exit(0);
    let events = finished.json();
    let commands = completed_items(&events, "command_execution");
    assert_eq!(commands.len(), 1, "{events:#?}");
    let output = commands[0].1["aggregated_output"].as_str().unwrap();
    // The tool did run and print its environment.
    assert!(output.contains("PATH="), "{output}");
    // Only the offending lines: the rest of the environment is nobody's business.
    let leaked: Vec<&str> = output.lines().filter(|l| l.contains(&key)).collect();
    assert!(
        leaked.is_empty(),
        "the tool saw the API key in its environment: {leaked:?}"
    );
    for file in files_under(&scratch.home()) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(!text.contains(&key), "the key is in {}", file.display());
    }

    mock.stop().await.assert_exit(0);
    scratch.wait_no_process_left().await;
}

/// A tool runs as the same user as tiller: it could read tiller's own
/// environment (`/proc/<tiller>/environ`, `/proc/<pid>/environ` of any helper
/// tiller started) where the key was when tiller started. It finds it nowhere,
/// neither as the same user nor as another one.
#[tokio::test]
async fn a_tool_cannot_read_the_key_from_tillers_process_or_its_helpers() {
    let key = unique_key();
    let token = unique_key().replace("sk-", "tok-");
    let scratch = Scratch::new();
    // Every process whose environment holds the key, as the same user and as
    // nobody; only pids are printed, never the key.
    let hunt = format!(
        "for f in /proc/[0-9]*/environ; do if grep -qa -- '{key}' \"$f\" 2>/dev/null; then echo \"LEAK ${{f}}\"; fi; done; \
         echo \"parent $PPID\"; \
         if grep -qa -- '{key}' /proc/$PPID/environ 2>/dev/null; then echo PARENT-LEAK; fi; \
         if grep -qa -- '{token}' /proc/$PPID/environ 2>/dev/null; then echo TOKEN-IN-PARENT; fi; \
         if [ \"$SOME_SERVICE_TOKEN\" = '{token}' ]; then echo TOKEN-IN-TOOL; fi; \
         setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'cat /proc/'$PPID'/environ' 2>&1 | grep -ac -- '{key}' | sed 's/^/other-user-hits /'; \
         echo done"
    );
    let script = scratch.script(json!(
        [shell_step("call_hunt", &hunt), text_step("hunted"),]
    ));
    let mock = MockModelProcess::start(&scratch, &script).await;
    scratch.mock_config(&mock.url, "env_key = \"TILLER_TEST_KEY\"\n");
    let work = scratch.work();
    let mut exec = scratch.tiller(&[
        "exec",
        "--json",
        "--cd",
        work.to_str().unwrap(),
        "look for the key",
    ]);
    exec.env("TILLER_TEST_KEY", &key)
        // A variable that looks secret is sealed in tiller's block as well,
        // and still reaches the tools (it is theirs; only the provider's key
        // is withheld).
        .env("SOME_SERVICE_TOKEN", &token);
    let finished = run(&mut exec).await;
    finished.assert_exit(0);
    let events = finished.json();
    let commands = completed_items(&events, "command_execution");
    assert_eq!(commands.len(), 1, "{events:#?}");
    let output = commands[0].1["aggregated_output"].as_str().unwrap();
    assert!(
        output.contains("done"),
        "the hunt did not run to its end: {output}"
    );
    assert!(output.contains("parent "), "{output}");
    assert!(!output.contains("LEAK"), "the key was readable: {output}");
    assert!(!output.contains("TOKEN-IN-PARENT"), "{output}");
    assert!(output.contains("TOKEN-IN-TOOL"), "{output}");
    assert!(
        output.contains("other-user-hits 0"),
        "another user could read the key: {output}"
    );
    mock.stop().await.assert_exit(0);
    scratch.wait_no_process_left().await;
}

/// A gateway that echoes the request's `Authorization` header in its error
/// body: the key is redacted from what tiller prints and records.
#[tokio::test]
async fn a_key_echoed_by_a_gateway_is_redacted_from_output_and_rollout() {
    let key = unique_key();
    let scratch = Scratch::new();
    let body = format!(
        "{{\"error\":{{\"message\":\"invalid header Authorization: Bearer {key}\",\"type\":\"invalid_request_error\"}}}}"
    );
    let step = json!({"type": "http_error", "status": 401, "body": body});
    let script = scratch.script(json!([step.clone(), step]));
    let mock = MockModelProcess::start(&scratch, &script).await;
    scratch.mock_config(&mock.url, "env_key = \"TILLER_TEST_KEY\"\n");
    let work = scratch.work();
    for json in [true, false] {
        let mut args = vec!["exec", "--cd", work.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        args.push("hello");
        let mut exec = scratch.tiller(&args);
        exec.env("TILLER_TEST_KEY", &key).env("RUST_LOG", "debug");
        let finished = run(&mut exec).await;
        finished.assert_exit(1);
        let all = format!("{}{}", finished.stdout, finished.stderr);
        assert!(all.contains("invalid header Authorization"), "{all}");
        assert!(all.contains("[REDACTED]"), "{all}");
        assert!(!all.contains(&key), "the key was printed: {all}");
    }
    for file in files_under(&scratch.home()) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(!text.contains(&key), "the key is in {}", file.display());
    }
    mock.stop().await.assert_exit(0);
    scratch.wait_no_process_left().await;
}
