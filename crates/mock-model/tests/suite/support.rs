//! Shared helpers: a client, request bodies, and an SSE parser.

use std::sync::Once;
use std::time::Duration;

use serde_json::{Value, json};
use tiller_mock_model::MockModel;

/// How long any single wait in these tests may take before it counts as a hang.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A reqwest client (with the ring crypto provider installed, which reqwest's
/// `rustls-no-provider` feature requires even for plain HTTP).
pub fn client() -> reqwest::Client {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder().build().unwrap()
}

pub fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

pub fn call(call_id: &str) -> Value {
    json!({"type": "function_call", "name": "shell", "arguments": "{\"command\":\"ls\"}", "call_id": call_id})
}

pub fn output(call_id: &str) -> Value {
    json!({"type": "function_call_output", "call_id": call_id, "output": "a\nb"})
}

pub fn request(input: Vec<Value>) -> Value {
    json!({"model": "test-model", "input": input, "stream": true, "tools": []})
}

/// POST a JSON body to `{base_url}/{path}`.
async fn post_to(mock: &MockModel, path: &str, body: &Value) -> reqwest::Response {
    let send = client()
        .post(format!("{}/{path}", mock.base_url()))
        .json(body)
        .send();
    tokio::time::timeout(DEADLINE, send).await.unwrap().unwrap()
}

/// The status and whole body of a response, as text.
async fn status_and_text(response: reqwest::Response) -> (reqwest::StatusCode, String) {
    let status = response.status();
    let text = tokio::time::timeout(DEADLINE, response.text())
        .await
        .unwrap()
        .unwrap();
    (status, text)
}

/// POST a JSON body to `{base_url}/responses`.
pub async fn post(mock: &MockModel, body: &Value) -> reqwest::Response {
    post_to(mock, "responses", body).await
}

/// POST and read the whole body as text.
pub async fn post_text(mock: &MockModel, body: &Value) -> (reqwest::StatusCode, String) {
    status_and_text(post(mock, body).await).await
}

/// One server-sent event as it appeared on the wire.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }

    pub fn kind(&self) -> &str {
        self.event.as_deref().unwrap_or("")
    }
}

/// Split an SSE body into events (blank-line separated `event:`/`data:` lines).
pub fn parse_sse(text: &str) -> Vec<SseEvent> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("event: ") {
                    event = Some(rest.to_owned());
                } else if let Some(rest) = line.strip_prefix("data: ") {
                    data.push(rest);
                }
            }
            SseEvent {
                event,
                data: data.join("\n"),
            }
        })
        .collect()
}

/// The concatenated `delta` fields of the events of one kind.
pub fn deltas(events: &[SseEvent], kind: &str) -> String {
    events
        .iter()
        .filter(|e| e.kind() == kind)
        .map(|e| e.json()["delta"].as_str().unwrap().to_owned())
        .collect()
}

/// A Chat Completions request body, streamed, without usage.
pub fn chat_request(messages: Vec<Value>) -> Value {
    json!({"model": "test-model", "messages": messages, "stream": true})
}

/// POST a JSON body to `{base_url}/chat/completions`.
pub async fn post_chat(mock: &MockModel, body: &Value) -> reqwest::Response {
    post_to(mock, "chat/completions", body).await
}

/// POST to `{base_url}/chat/completions` and read the whole body as text.
pub async fn post_chat_text(mock: &MockModel, body: &Value) -> (reqwest::StatusCode, String) {
    status_and_text(post_chat(mock, body).await).await
}

/// Read a response body chunk by chunk until it ends or fails.
pub async fn read_until_end_or_error(
    mut response: reqwest::Response,
) -> (String, Option<reqwest::Error>) {
    let mut body = Vec::new();
    loop {
        match tokio::time::timeout(DEADLINE, response.chunk())
            .await
            .unwrap()
        {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return (String::from_utf8(body).unwrap(), None),
            Err(error) => return (String::from_utf8(body).unwrap(), Some(error)),
        }
    }
}
