//! Hostile input, generated: whatever bytes reach the SSE decoder, the
//! rollout reader or the config reader, they do not panic, hold no more memory
//! than their limits allow, and say what is wrong in words.
//!
//! CI runs a bounded number of cases per property; more on demand:
//! `TILLER_PROPTEST_CASES=100000 cargo test -p tiller-core --test all hostile_input`.
//! A failing case is printed (proptest shrinks it) and can be replayed with the
//! seed proptest writes to `proptest-regressions/`.

use std::path::Path;

use proptest::prelude::*;
use tiller_core::client::sse::{MAX_EVENT_BYTES, SseDecoder, SseEvent};
use tiller_core::config::{Config, ConfigError, ConfigOverrides};

/// Cases per property: `TILLER_PROPTEST_CASES`, 256 by default.
fn cases() -> u32 {
    std::env::var("TILLER_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

/// `bytes` fed to a decoder in pieces of the sizes `cuts` gives (cycled);
/// the events, or the size error, and the most it ever held.
fn decode(bytes: &[u8], cuts: &[usize]) -> (Vec<SseEvent>, bool, usize) {
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    let mut held = 0;
    let mut at = 0;
    let mut cut = cuts.iter().cycle();
    while at < bytes.len() {
        let n = (*cut.next().unwrap_or(&1)).clamp(1, bytes.len() - at);
        decoder.push(&bytes[at..at + n]);
        at += n;
        loop {
            match decoder.next_event() {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(_) => return (events, true, held.max(decoder.buffered())),
            }
        }
        held = held.max(decoder.buffered());
    }
    (events, false, held)
}

/// Bytes that look like SSE: fields, comments, line ends of every kind,
/// and noise.
fn sse_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"event: x".to_vec()),
        Just(b": keep-alive".to_vec()),
        Just(b"id: 7".to_vec()),
        Just(b"retry: 10".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
        "[a-z{}\":, ]{0,30}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Any bytes, cut anywhere: no panic, the same events however they are
    /// cut, and never more held than an event may be.
    #[test]
    fn the_sse_decoder_takes_any_bytes_cut_anywhere(
        bytes in sse_like(),
        cuts in proptest::collection::vec(1usize..64, 1..16),
    ) {
        let (whole, whole_err, _) = decode(&bytes, &[bytes.len().max(1)]);
        let (pieces, pieces_err, held) = decode(&bytes, &cuts);
        prop_assert_eq!(whole_err, pieces_err);
        prop_assert_eq!(whole, pieces);
        prop_assert!(held <= MAX_EVENT_BYTES + 64);
    }

    /// Events written the way a server writes them come out as written.
    #[test]
    fn sse_events_written_by_the_rules_come_out_whole(
        events in proptest::collection::vec(("[a-z.]{0,12}", proptest::collection::vec("[^\r\n]{0,30}", 1..4)), 0..10),
        cuts in proptest::collection::vec(1usize..32, 1..8),
    ) {
        let mut bytes = Vec::new();
        for (name, lines) in &events {
            if !name.is_empty() {
                bytes.extend_from_slice(format!("event: {name}\n").as_bytes());
            }
            for line in lines {
                bytes.extend_from_slice(format!("data: {line}\n").as_bytes());
            }
            bytes.extend_from_slice(b"\n");
        }
        let (got, failed, _) = decode(&bytes, &cuts);
        prop_assert!(!failed);
        let expected: Vec<SseEvent> = events
            .iter()
            .map(|(name, lines)| SseEvent { event: name.clone(), data: lines.join("\n") })
            .collect();
        prop_assert_eq!(got, expected);
    }

    /// Any bytes as a rollout file: read without a panic; a file without a
    /// `session_meta` line is refused in words naming the file.
    #[test]
    fn the_rollout_reader_takes_any_file(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollout.jsonl");
        std::fs::write(&path, &bytes).unwrap();
        match tiller_core::rollout::load(&path) {
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    prop_assert!(warning.starts_with(&path.display().to_string()), "{}", warning);
                }
            }
            Err(e) => prop_assert!(e.to_string().contains("rollout.jsonl"), "{}", e),
        }
    }

    /// A real rollout damaged anywhere (cut, a byte flipped, a line of
    /// garbage inserted): still read, every skipped line named.
    #[test]
    fn a_damaged_rollout_is_read_with_its_damage_named(
        cut in 0usize..4000,
        flip in (0usize..4000, any::<u8>()),
        garbage in proptest::collection::vec(any::<u8>(), 0..80),
        garbage_at in 0usize..20,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollout.jsonl");
        let mut bytes = sample_rollout().into_bytes();
        let (at, byte) = flip;
        // Never the first line: without its session_meta a file is not a session.
        let first_line_end = bytes.iter().position(|b| *b == b'\n').unwrap();
        if at > first_line_end && at < bytes.len() {
            bytes[at] = byte;
        }
        let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        let garbage: Vec<u8> = garbage.into_iter().filter(|b| *b != b'\n').collect();
        lines.insert((garbage_at % lines.len()).max(1), garbage);
        let mut bytes = lines.join(&b'\n');
        bytes.truncate(cut.max(first_line_end + 1));
        std::fs::write(&path, &bytes).unwrap();
        let loaded = tiller_core::rollout::load(&path);
        prop_assert!(loaded.is_ok(), "{:?}", loaded.err().map(|e| e.to_string()));
    }

    /// Any text as `config.toml`: no panic; an error names the file, and a
    /// line when the text has lines.
    #[test]
    fn the_config_reader_takes_any_file(text in config_like()) {
        let home = tempfile::tempdir().unwrap();
        let file = home.path().join("config.toml");
        std::fs::write(&file, &text).unwrap();
        match Config::load_with_env(home.path(), ConfigOverrides::default(), &|_| None) {
            Ok(_) => {}
            Err(e) => check_config_error(&e, &file),
        }
    }

    /// Any `-c key=value`: no panic; an error names the override.
    #[test]
    fn config_overrides_take_any_text(key in "[a-z_.]{0,30}", value in "[ -~]{0,40}") {
        let home = tempfile::tempdir().unwrap();
        let overrides = ConfigOverrides {
            cli_overrides: vec![(key, value)],
            ..ConfigOverrides::default()
        };
        if let Err(e) = Config::load_with_env(home.path(), overrides, &|_| None) {
            let text = e.to_string();
            prop_assert!(text.starts_with("-c ") || text.starts_with("command line") || text.starts_with("default"), "{}", text);
        }
    }
}

fn check_config_error(error: &ConfigError, file: &Path) {
    let text = error.to_string();
    assert!(
        text.contains(&file.display().to_string()) || text.starts_with("default"),
        "the error does not name the file: {text}"
    );
}

/// Text that looks like a tiller config: known and unknown keys, values of
/// every type, tables, broken syntax.
fn config_like() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("model".to_string()),
        Just("model_provider".to_string()),
        Just("approval_policy".to_string()),
        Just("sandbox_mode".to_string()),
        "[a-z_]{1,12}",
    ];
    let value = prop_oneof![
        "\"[ -~&&[^\"\\\\]]{0,20}\"",
        any::<i64>().prop_map(|n| n.to_string()),
        Just("true".to_string()),
        Just("[1, \"a\"]".to_string()),
        Just("{ base_url = \"http://x\" }".to_string()),
        "[ -~]{0,10}",
    ];
    let line = prop_oneof![
        (key.clone(), value).prop_map(|(k, v)| format!("{k} = {v}")),
        key.clone().prop_map(|k| format!("[model_providers.{k}]")),
        Just("[model_providers.local]\nbase_url = \"http://localhost:1/v1\"".to_string()),
        Just("request_max_retries = 99999999999999999999".to_string()),
        Just("stream_idle_timeout_ms = -5".to_string()),
        "[ -~]{0,30}",
    ];
    proptest::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

/// A small rollout as tiller writes it.
fn sample_rollout() -> String {
    [
        r#"{"timestamp":"t","type":"session_meta","payload":{"id":"01a1fdef-0000-7000-8000-000000000001","created":"t","cwd":"/","model":"m","provider":"p","tiller_version":"0"}}"#,
        r#"{"timestamp":"t","type":"turn_context","payload":{"turn_id":"t1","cwd":"/","model":"m","approval_policy":"never"}}"#,
        r#"{"timestamp":"t","type":"event","payload":{"type":"turn_started","turn_id":"t1"}}"#,
        r#"{"timestamp":"t","type":"response_item","payload":{"type":"message","role":"user","content":[{"type":"input_text","text":"héllo wörld"}]}}"#,
        r#"{"timestamp":"t","type":"response_item","payload":{"type":"function_call","name":"shell","arguments":"{\"command\":[\"ls\"]}","call_id":"c1"}}"#,
        r#"{"timestamp":"t","type":"response_item","payload":{"type":"function_call_output","call_id":"c1","output":"a\nb"}}"#,
        r#"{"timestamp":"t","type":"response_item","payload":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"done ✓"}]}}"#,
        r#"{"timestamp":"t","type":"event","payload":{"type":"turn_completed","turn_id":"t1","last_agent_message":"done","usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1,"reasoning_output_tokens":0}}}"#,
    ]
    .join("\n")
        + "\n"
}
