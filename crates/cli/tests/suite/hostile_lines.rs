//! Generated hostile lines for both servers' line readers: random bytes (bad
//! UTF-8 included), JSON that is no request, requests with unknown methods and
//! wrong params, lines past the limit. Each server, run in-process on a pipe,
//! answers what it can, writes only JSON lines, never panics, and answers a
//! last good request after all of it.
//!
//! Cases per property: `TILLER_PROPTEST_CASES` (64 by default here: each case
//! runs a server).

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn cases() -> u32 {
    std::env::var("TILLER_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

/// One hostile line (without its newline).
fn hostile_line() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        Just("initialize"),
        Just("thread/interrupt"),
        Just("turn/steer"),
        Just("thread/queue/list"),
        Just("thread/resume"),
        Just("tools/list"),
        Just("tools/call"),
        Just("no/such/method"),
        Just(""),
    ];
    let params = prop_oneof![
        Just(json!(null)),
        Just(json!({})),
        Just(json!([1, 2])),
        Just(json!({"threadId": "nope"})),
        Just(json!({"threadId": 5, "input": "x"})),
        Just(json!({"name": "tiller", "arguments": {"prompt": 5}})),
        "[ -~]{0,20}".prop_map(Value::from),
    ];
    let id = prop_oneof![
        Just(json!(null)),
        any::<i32>().prop_map(Value::from),
        "[a-z]{0,6}".prop_map(Value::from),
        Just(json!({"x": 1})),
        Just(json!(1.5)),
    ];
    prop_oneof![
        proptest::collection::vec(
            any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
            0..64
        ),
        (method, params, id).prop_map(|(method, params, id)| {
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
                .to_string()
                .into_bytes()
        }),
        Just(b"{\"result\": 1, \"id\": 3}".to_vec()),
        Just(b"{\"jsonrpc\": \"2.0\", \"id\": 4, \"error\": {}}".to_vec()),
        Just(b"[]".to_vec()),
        Just(b"\xc3\x28 not utf-8".to_vec()),
    ]
}

/// Write `lines` then `last` to a server on a pipe; return every line it
/// wrote up to the answer to `last` (id `last_id`).
async fn feed(
    serve: impl FnOnce(
        tokio::io::ReadHalf<tokio::io::DuplexStream>,
        tokio::io::WriteHalf<tokio::io::DuplexStream>,
    ) -> tokio::task::JoinHandle<()>,
    prologue: &[Value],
    lines: &[Vec<u8>],
    last: Value,
    last_id: Value,
) -> Vec<Value> {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (server_read, server_write) = tokio::io::split(server);
    let serving = serve(server_read, server_write);
    let (read, mut write) = tokio::io::split(client);
    let mut all = Vec::new();
    for message in prologue {
        all.extend_from_slice(format!("{message}\n").as_bytes());
    }
    for line in lines {
        all.extend_from_slice(line);
        all.push(b'\n');
    }
    all.extend_from_slice(format!("{last}\n").as_bytes());
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&all).await;
        write
    });
    let mut reader = BufReader::new(read).lines();
    let mut seen = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = reader.next_line().await {
            let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!("the server wrote a line that is not JSON ({e}): {line}")
            });
            let done = value["id"] == last_id && value.get("method").is_none();
            seen.push(value);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        answered,
        Ok(true),
        "no answer to the last request; read:\n{seen:#?}"
    );
    drop(writer.await.unwrap());
    drop(reader);
    let _ = tokio::time::timeout(Duration::from_secs(5), serving).await;
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn the_app_server_answers_hostile_lines_and_keeps_serving(
        lines in proptest::collection::vec(hostile_line(), 0..20),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let home = tempfile::tempdir().unwrap();
            let home_path = home.path().to_path_buf();
            let seen = feed(
                move |read, write| tokio::spawn(async move {
                    tiller_app_server::run_app_server(read, write, tiller_app_server::AppServerOptions::new(home_path)).await;
                }),
                &[json!({"id": "init", "method": "initialize", "params": {"clientInfo": {"name": "t", "version": "1"}}})],
                &lines,
                json!({"id": "last", "method": "initialize", "params": {"clientInfo": {"name": "t", "version": "1"}}}),
                json!("last"),
            )
            .await;
            // Every line is a response, an error or a notification.
            for line in &seen {
                assert!(line.get("result").is_some() || line.get("error").is_some() || line.get("method").is_some(), "{line}");
            }
        });
    }

    #[test]
    fn the_mcp_server_answers_hostile_lines_and_keeps_serving(
        lines in proptest::collection::vec(hostile_line(), 0..20),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let home = tempfile::tempdir().unwrap();
            let server = tiller_mcp_server::TillerMcpServer::new(tiller_mcp_server::McpServerOptions {
                tiller_home: home.path().to_path_buf(),
            });
            feed(
                move |read, write| tokio::spawn(async move {
                    let _ = tiller_mcp_server::serve_mcp_server(server, read, write).await;
                }),
                &[
                    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                        "protocolVersion": "2025-06-18", "capabilities": {},
                        "clientInfo": {"name": "t", "version": "0"}}}),
                    json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                ],
                &lines,
                json!({"jsonrpc": "2.0", "id": "last", "method": "tools/list"}),
                json!("last"),
            )
            .await;
        });
    }
}
