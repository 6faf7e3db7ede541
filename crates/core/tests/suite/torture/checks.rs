//! The invariant checks on the mock's request log and on /proc, shared by the
//! torture schedules and the kill-and-resume loop.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tiller_mock_model::RecordedRequest;
use tiller_protocol::{Event, EventMsg};
use tiller_test_support::pid_alive;

use super::feeder::TAG_ENV;

/// I1: every `function_call` has exactly one output after it, and every
/// output an earlier call.
pub fn check_pairing(n: usize, request: &RecordedRequest) {
    assert!(
        request.rejected.is_none(),
        "I1: request {n} was refused: {:?}",
        request.rejected
    );
    let input = request.input();
    let id_of = |item: &Value| {
        item.get("call_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let kind = |item: &Value| {
        item.get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    for (i, item) in input.iter().enumerate() {
        match kind(item).as_str() {
            "function_call" => {
                let id = id_of(item);
                let calls = input
                    .iter()
                    .filter(|o| kind(o) == "function_call" && id_of(o) == id)
                    .count();
                let outputs = input[i..]
                    .iter()
                    .filter(|o| kind(o) == "function_call_output" && id_of(o) == id)
                    .count();
                assert!(
                    calls == 1 && outputs == 1,
                    "I1: request {n}: call {id} appears {calls} times with {outputs} outputs after it"
                );
            }
            "function_call_output" => {
                let id = id_of(item);
                let calls = input[..i]
                    .iter()
                    .filter(|o| kind(o) == "function_call" && id_of(o) == id)
                    .count();
                assert_eq!(calls, 1, "I1: request {n}: output {id} without its call");
            }
            _ => {}
        }
    }
}

/// How often `text` is a user message in `input`.
pub fn user_count(input: &[Value], text: &str) -> usize {
    input
        .iter()
        .filter(|item| {
            item.get("type").and_then(Value::as_str) == Some("message")
                && item.get("role").and_then(Value::as_str) == Some("user")
                && item
                    .get("content")
                    .and_then(Value::as_array)
                    .is_some_and(|parts| {
                        parts
                            .iter()
                            .any(|p| p.get("text").and_then(Value::as_str) == Some(text))
                    })
        })
        .count()
}

/// I4: accepted input reaches the model exactly once (it is in the final
/// request, which carries the whole history) or is handed back in
/// `unsent_input`, never both; refused steer reaches nobody; no request holds
/// any input twice.
pub fn check_nothing_lost(
    log: &[Event],
    requests: &[RecordedRequest],
    starts: &[(String, String, String)],
    steers: &[(String, String, bool)],
) {
    let unsent: Vec<String> = log
        .iter()
        .flat_map(|e| match &e.msg {
            EventMsg::TurnAborted { unsent_input, .. }
            | EventMsg::TurnFailed { unsent_input, .. } => unsent_input.as_slice(),
            _ => &[],
        })
        .map(|input| input.model_text().into_owned())
        .collect();
    let delivered: Vec<String> = log
        .iter()
        .flat_map(|e| match &e.msg {
            EventMsg::SteerDelivered { items, .. } => items.as_slice(),
            _ => &[],
        })
        .map(|input| input.model_text().into_owned())
        .collect();
    // The final turn's last request carries the whole history. It is found
    // by its input, not as the last to arrive: a request an interrupted turn
    // sent just before its abort can reach the mock after it, on a loaded
    // machine (its answer goes nowhere).
    let final_text = &starts.last().expect("the final turn").1;
    let last = requests
        .iter()
        .rev()
        .find(|request| user_count(request.input(), final_text) == 1)
        .unwrap_or_else(|| panic!("I4: no request holds the final turn's input {final_text:?}"))
        .input();
    let mut texts: Vec<(&str, bool, bool)> = starts
        .iter()
        .map(|(_, text, _)| (text.as_str(), true, false))
        .collect();
    texts.extend(
        steers
            .iter()
            .map(|(_, t, accepted)| (t.as_str(), *accepted, true)),
    );
    for (text, accepted, steer) in texts {
        for (n, request) in requests.iter().enumerate() {
            let times = user_count(request.input(), text);
            assert!(times <= 1, "I4: request {n} holds {text:?} {times} times");
        }
        let sent = user_count(last, text);
        let handed_back = unsent.iter().filter(|t| **t == text).count();
        let reported = delivered.iter().filter(|t| **t == text).count();
        if !accepted {
            assert!(
                sent == 0 && handed_back == 0 && reported == 0,
                "I4: refused steer {text:?} reached the model {sent} times, came back {handed_back} times, delivered {reported} times"
            );
            continue;
        }
        assert!(
            sent + handed_back == 1,
            "I4: {text:?} reached the model {sent} times and came back {handed_back} times"
        );
        if steer {
            assert!(
                reported == sent,
                "I4: steer {text:?} reached the model {sent} times but SteerDelivered says {reported}"
            );
        }
    }
}

/// Live processes tagged `<tag>` (or `<tag>/...`), from a scan of /proc, and
/// the live pids the `pids.*` files under `pids` list (a file or a folder).
pub fn tagged_alive(tag: &str, pids: &Path) -> Vec<i32> {
    let mut found: Vec<i32> = Vec::new();
    let exact = format!("{TAG_ENV}={tag}");
    let prefix = format!("{exact}/");
    let tagged = |pid: i32| {
        std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
            env.split(|b| *b == 0).any(|entry| {
                let entry = String::from_utf8_lossy(entry);
                entry == exact || entry.starts_with(&prefix)
            })
        })
    };
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if pid_alive(pid) && tagged(pid) {
                found.push(pid);
            }
        }
    }
    // The pids the scripts wrote (a pid reused by someone else is not tagged).
    let files: Vec<PathBuf> = if pids.is_dir() {
        std::fs::read_dir(pids)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("pids."))
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        vec![pids.to_path_buf()]
    };
    for file in files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for pid in text.split_whitespace().filter_map(|w| w.parse().ok()) {
            if !found.contains(&pid) && pid_alive(pid) && tagged(pid) {
                found.push(pid);
            }
        }
    }
    found
}

pub fn describe(pids: &[i32]) -> String {
    pids.iter()
        .map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            format!("\n  {pid}: {cmd} [{}]", stat.trim())
        })
        .collect()
}
