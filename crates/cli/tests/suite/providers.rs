//! What a provider's settings do on the wire, through the real binary and
//! the mock model in this process: `http_headers`, `env_http_headers` and
//! `query_params` reach the server (an env header's value, a credential,
//! reaches nothing else); `OPENAI_BASE_URL` alone runs against a server that
//! needs no key; and `--oss` finds the local server that is up, moved with
//! `-c model_providers.<id>.base_url`, or says which it tried.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tiller_mock_model::{MockModel, RecordedRequest, Script};
use tiller_test_support::PtyChild;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::support::{DEADLINE, PROMPT_EXIT, Scratch, run, shell_step, text_step};

/// A mock model serving `steps`.
async fn mock(steps: Value) -> MockModel {
    let script = Script::from_json_str(&steps.to_string()).unwrap();
    MockModel::start(script).await.unwrap()
}

/// The one model request `mock` recorded (model lists are not recorded).
fn only_request(mock: &MockModel) -> RecordedRequest {
    let requests = mock.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    requests.into_iter().next().unwrap()
}

/// The base URL of a loopback port nobody listens on: a connection to it is
/// refused at once. (The port was free a moment ago; nothing in these tests
/// binds a port it did not ask the kernel for.)
async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1")
}

/// A pass-through TCP proxy in front of `target` that keeps every byte the
/// client sent: the mock records a request's path but not its query.
struct Tap {
    url: String,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    async fn start(target: std::net::SocketAddr) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&sent);
        // Ends with the test's runtime.
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let server = TcpStream::connect(target).await.unwrap();
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let upstream = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            match client_read.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    kept.lock().unwrap().extend_from_slice(&buf[..n]);
                                    if server_write.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = server_write.shutdown().await;
                    };
                    let downstream = async {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                        let _ = client_write.shutdown().await;
                    };
                    tokio::join!(upstream, downstream);
                });
            }
        });
        Tap { url, sent }
    }

    /// The request lines the client sent (`POST /v1/responses?… HTTP/1.1`).
    fn request_lines(&self) -> Vec<String> {
        let sent = String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned();
        sent.lines()
            .filter(|line| line.ends_with(" HTTP/1.1") && !line.contains(": "))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test]
async fn exec_sends_the_providers_headers_and_query_params() {
    let scratch = Scratch::new();
    let mock = mock(json!([text_step("headers seen")])).await;
    let tap = Tap::start(mock.local_addr()).await;
    scratch.mock_config(
        &tap.url,
        "env_http_headers = { \"api-key\" = \"TILLER_TEST_AZURE_KEY\" }\n\
         query_params = { api-version = \"2025-04-01-preview\" }\n",
    );
    let work = scratch.work();
    let mut exec = scratch.tiller(&[
        "exec",
        "--cd",
        work.to_str().unwrap(),
        // A table from an override is as good as one from the file.
        "-c",
        "model_providers.mock.http_headers={ \"X-Team\" = \"tiller\", \"X-Empty\" = \"\" }",
        "hi",
    ]);
    exec.env("TILLER_TEST_AZURE_KEY", "azure-key-value");
    let finished = run(&mut exec).await;
    finished.assert_exit(0);
    assert!(
        finished.stdout.contains("headers seen"),
        "{}",
        finished.stdout
    );

    let request = only_request(&mock);
    assert_eq!(request.header("x-team"), Some("tiller"), "{request:#?}");
    assert_eq!(request.header("x-empty"), Some(""), "{request:#?}");
    assert_eq!(
        request.header("api-key"),
        Some("azure-key-value"),
        "{request:#?}"
    );
    // No env_key: no key of tiller's own goes with the provider's header.
    assert_eq!(request.header("authorization"), None, "{request:#?}");
    // Every request carries the query: the turn's, and the model list's if asked.
    let lines = tap.request_lines();
    assert!(
        lines.contains(&"POST /v1/responses?api-version=2025-04-01-preview HTTP/1.1".to_owned()),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .all(|line| line.contains("?api-version=2025-04-01-preview ")),
        "{lines:#?}"
    );
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn an_env_headers_value_reaches_the_server_and_nothing_else() {
    let secret = format!(
        "azure-secret-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    );
    let scratch = Scratch::new();
    // A tool looks for the variable; a gateway that echoes the key back:
    // tiller must not give it to the tool, save it or print it.
    let mock = mock(json!([
        shell_step(
            "call_env",
            "echo \"${TILLER_TEST_AZURE_KEY:-unset}\" > seen.txt"
        ),
        text_step(&format!("your key is {secret}"))
    ]))
    .await;
    scratch.mock_config(
        &mock.base_url(),
        "env_http_headers = { \"api-key\" = \"TILLER_TEST_AZURE_KEY\" }\n",
    );
    let work = scratch.work();
    let mut exec = scratch.tiller(&["exec", "--json", "--cd", work.to_str().unwrap(), "hi"]);
    exec.env("TILLER_TEST_AZURE_KEY", &secret)
        .env("RUST_LOG", "trace");
    let finished = run(&mut exec).await;
    finished.assert_exit(0);
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|r| r.header("api-key") == Some(secret.as_str()))
    );
    assert_eq!(
        std::fs::read_to_string(scratch.work_file("seen.txt")).unwrap(),
        "unset\n",
        "the tool saw the header's variable"
    );
    // The log was on, at its most verbose: the check below means something.
    assert!(
        finished.stderr.contains("TRACE"),
        "RUST_LOG=trace logged nothing:\n{}",
        finished.stderr
    );
    assert!(!finished.stderr.contains(&secret), "the key is on stderr");
    let rollouts = scratch.rollout_files();
    assert_eq!(rollouts.len(), 1, "{rollouts:?}");
    let saved = std::fs::read_to_string(&rollouts[0]).unwrap();
    assert!(
        saved.contains("your key is"),
        "the answer was not saved:\n{saved}"
    );
    assert!(!saved.contains(&secret), "the key is in the rollout");
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn openai_base_url_alone_runs_against_a_server_that_needs_no_key() {
    let scratch = Scratch::new();
    let mock = mock(json!([text_step("no key needed")])).await;
    let work = scratch.work();
    // No config file, and Scratch removes OPENAI_API_KEY from the child.
    let mut exec = scratch.tiller(&["exec", "--cd", work.to_str().unwrap(), "hi"]);
    exec.env("OPENAI_BASE_URL", mock.base_url());
    let finished = run(&mut exec).await;
    finished.assert_exit(0);
    assert!(
        finished.stdout.contains("no key needed"),
        "{}",
        finished.stdout
    );
    let request = only_request(&mock);
    assert_eq!(request.path, "/v1/responses");
    assert_eq!(request.header("authorization"), None, "{request:#?}");
    scratch.wait_no_process_left().await;
}

/// `tiller exec --oss` with Ollama and vLLM down and LM Studio at `lmstudio`,
/// plus `extra` arguments.
async fn exec_oss(scratch: &Scratch, lmstudio: &str, extra: &[&str]) -> super::support::Finished {
    let (ollama, vllm) = (dead_url().await, dead_url().await);
    let work = scratch.work();
    let ollama = format!("model_providers.ollama.base_url={ollama}");
    let lmstudio = format!("model_providers.lmstudio.base_url={lmstudio}");
    let vllm = format!("model_providers.vllm.base_url={vllm}");
    let mut args = vec![
        "exec",
        "--oss",
        "--cd",
        work.to_str().unwrap(),
        "-c",
        &ollama,
        "-c",
        &lmstudio,
        "-c",
        &vllm,
    ];
    args.extend_from_slice(extra);
    args.push("hi");
    run(&mut scratch.tiller(&args)).await
}

#[tokio::test]
async fn oss_runs_against_the_local_server_that_is_up_with_the_model_it_lists() {
    let scratch = Scratch::new();
    let mock = mock(json!([text_step("hello from the local model")])).await;
    mock.serve_models(vec!["local-model".into()]);
    let finished = exec_oss(
        &scratch,
        &mock.base_url(),
        &["-c", "model_providers.lmstudio.wire_api=\"responses\""],
    )
    .await;
    finished.assert_exit(0);
    assert!(
        finished.stdout.contains("hello from the local model"),
        "{}",
        finished.stdout
    );
    assert!(
        finished.stderr.contains(&format!(
            "--oss: using lmstudio at {}, model local-model",
            mock.base_url()
        )),
        "{}",
        finished.stderr
    );
    let request = only_request(&mock);
    assert_eq!(request.path, "/v1/responses");
    assert_eq!(request.body["model"], "local-model", "{request:#?}");
    scratch.wait_no_process_left().await;
}

/// As above, but LM Studio speaking its own default API, Chat Completions.
#[tokio::test]
async fn oss_runs_against_a_local_server_over_chat_completions() {
    let scratch = Scratch::new();
    let mock = mock(json!([text_step("hello over chat")])).await;
    mock.serve_models(vec!["local-model".into()]);
    let finished = exec_oss(&scratch, &mock.base_url(), &[]).await;
    finished.assert_exit(0);
    assert!(
        finished.stdout.contains("hello over chat"),
        "{}",
        finished.stdout
    );
    let request = only_request(&mock);
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.body["model"], "local-model", "{request:#?}");
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn oss_keeps_a_model_named_with_m() {
    let scratch = Scratch::new();
    let mock = mock(json!([text_step("as you asked")])).await;
    mock.serve_models(vec!["local-model".into(), "other-model".into()]);
    let finished = exec_oss(
        &scratch,
        &mock.base_url(),
        &[
            "-m",
            "other-model",
            "-c",
            "model_providers.lmstudio.wire_api=responses",
        ],
    )
    .await;
    finished.assert_exit(0);
    assert_eq!(only_request(&mock).body["model"], "other-model");
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn oss_prefers_the_oss_provider_when_it_is_up() {
    let scratch = Scratch::new();
    let ollama = mock(json!([text_step("ollama answered")])).await;
    ollama.serve_models(vec!["llama".into()]);
    let vllm = mock(json!([text_step("vllm answered")])).await;
    vllm.serve_models(vec!["qwen".into()]);
    scratch.config(&format!(
        "[model_providers.ollama]\nbase_url = \"{}\"\nwire_api = \"responses\"\n\
         [model_providers.vllm]\nbase_url = \"{}\"\nwire_api = \"responses\"\n",
        ollama.base_url(),
        vllm.base_url()
    ));
    let work = scratch.work();
    let exec = |extra: &'static [&'static str]| {
        let mut args = vec!["exec", "--oss", "--cd", work.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push("hi");
        scratch.tiller(&args)
    };

    let preferred = run(&mut exec(&["-c", "oss_provider=vllm"])).await;
    preferred.assert_exit(0);
    assert!(preferred.stdout.contains("vllm answered"), "{preferred:?}");
    assert_eq!(only_request(&vllm).body["model"], "qwen");

    // Without a preference, Ollama comes first.
    let first = run(&mut exec(&[])).await;
    first.assert_exit(0);
    assert!(first.stdout.contains("ollama answered"), "{first:?}");
    assert_eq!(only_request(&ollama).body["model"], "llama");
    scratch.wait_no_process_left().await;
}

#[tokio::test]
async fn oss_with_no_local_server_up_names_each_one_tried() {
    let scratch = Scratch::new();
    // A server without a model list is no server to use either.
    let no_list = mock(json!([text_step("should not run")])).await;
    let finished = exec_oss(&scratch, &no_list.base_url(), &[]).await;
    assert_eq!(finished.status.code(), Some(1), "{finished:?}");
    let stderr = &finished.stderr;
    for id in ["ollama", "lmstudio", "vllm"] {
        assert!(
            stderr.lines().any(|l| l
                .trim_start()
                .starts_with(&format!("{id} at http://127.0.0.1:"))),
            "stderr does not name {id} and its URL:\n{stderr}"
        );
    }
    assert!(
        stderr.contains(&format!("lmstudio at {}", no_list.base_url())),
        "{stderr}"
    );
    assert!(stderr.contains("ollama serve"), "{stderr}");
    assert!(
        stderr.contains("-c model_providers.ollama.base_url="),
        "{stderr}"
    );
    assert!(finished.stdout.is_empty(), "{}", finished.stdout);
    assert!(no_list.requests().is_empty(), "{:#?}", no_list.requests());
    assert!(scratch.rollout_files().is_empty(), "a session was started");
}

#[tokio::test]
async fn oss_with_provider_is_a_usage_error() {
    let scratch = Scratch::new();
    let work = scratch.work();
    for args in [
        vec!["exec", "--oss", "--provider", "ollama", "hi"],
        vec!["--oss", "--provider", "ollama"],
        vec!["--oss", "--remote", "unix:///nowhere"],
    ] {
        let mut all = args.clone();
        all.extend_from_slice(&["--cd", work.to_str().unwrap()]);
        let finished = run(&mut scratch.tiller(&all)).await;
        assert_eq!(finished.status.code(), Some(2), "{args:?}: {finished:?}");
        assert!(
            finished.stderr.contains("--oss") && finished.stderr.contains("cannot be used with"),
            "{args:?}: {}",
            finished.stderr
        );
    }
}

/// The terminal UI with `--oss`: the session opens on the local server
/// that is up, and the first message goes to the model it lists.
// Multi-threaded: the screen is waited on with blocking calls while the mock serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_ui_with_oss_talks_to_the_local_server() {
    let scratch = Scratch::new();
    let mock = mock(json!([text_step("hello in the terminal")])).await;
    mock.serve_models(vec!["local-model".into()]);
    let (ollama, vllm) = (dead_url().await, dead_url().await);
    let work = scratch.work();
    let overrides = [
        format!("model_providers.ollama.base_url={ollama}"),
        format!("model_providers.lmstudio.base_url={}", mock.base_url()),
        "model_providers.lmstudio.wire_api=responses".to_owned(),
        format!("model_providers.vllm.base_url={vllm}"),
    ];
    let mut args = vec!["--oss", "--cd", work.to_str().unwrap()];
    for pair in &overrides {
        args.extend_from_slice(&["-c", pair]);
    }
    args.push("say hello");
    let command = scratch.tiller_for_pty(&args, "xterm-256color");
    let mut ui = PtyChild::spawn(command, 100, 30);
    // The answer shown and the UI idle again (the status line says ready),
    // so the Ctrl+C below reaches an idle UI.
    ui.wait_screen("the answer, then ready", DEADLINE, |screen| {
        screen.contains("hello in the terminal")
            && screen
                .lines()
                .last()
                .is_some_and(|status| status.contains("ready"))
    });
    let request = mock
        .wait_for_requests(1, DEADLINE)
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    assert_eq!(request.body["model"], "local-model", "{request:#?}");

    ui.send(b"\x03");
    ui.wait_screen_shows("press ctrl+c again to quit", DEADLINE);
    ui.send(b"\x03");
    let status = ui.wait_exit(PROMPT_EXIT);
    assert_eq!(status.code(), Some(0), "{}", ui.screen());
    scratch.wait_no_process_left().await;
}
