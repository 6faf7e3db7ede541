//! A provider's model list: `GET {base_url}/models`, in OpenAI's shape
//! (`{"data": [{"id": …}, …]}`), whatever API the provider streams in.
//!
//! Local servers and gateways say how long a model's context is, each in its
//! own field; the first of [`CONTEXT_FIELDS`] found is taken.

use serde_json::Value;
use tiller_config::ProviderConfig;

use crate::error::{ClientBuildError, ModelError};
use crate::http::{
    Endpoint, classify_send_error, classify_status, human_duration, read_error_body,
};

/// The most of a model list read.
pub const MAX_MODELS_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Where a model list entry gives the model's context window, in tokens:
/// OpenRouter (`context_length`), vLLM (`max_model_len`), LM Studio
/// (`max_context_length`), and tiller's own name for it.
const CONTEXT_FIELDS: [&str; 4] = [
    "context_window",
    "context_length",
    "max_model_len",
    "max_context_length",
];

/// One model a provider lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The id to ask for.
    pub id: String,
    /// Its context window in tokens, when the list says.
    pub context_window: Option<u64>,
}

/// The models `provider` lists, within its idle timeout and at most
/// [`MAX_MODELS_BODY_BYTES`] of body.
pub async fn list_models(
    provider: &ProviderConfig,
    api_key: Option<String>,
) -> Result<Vec<ModelInfo>, ModelError> {
    let endpoint = Endpoint::new(provider, api_key).map_err(build_error)?;
    list(&endpoint).await
}

fn build_error(error: ClientBuildError) -> ModelError {
    ModelError::Fatal {
        message: error.to_string(),
        status: None,
    }
}

async fn list(endpoint: &Endpoint) -> Result<Vec<ModelInfo>, ModelError> {
    let limit = endpoint.idle_timeout;
    let answered = tokio::time::timeout(limit, async {
        let response = endpoint
            .request(reqwest::Method::GET, "models")
            .send()
            .await
            .map_err(|e| classify_send_error(&e))?;
        let status = response.status();
        if !status.is_success() {
            let body = read_error_body(response, limit).await;
            return Err(classify_status(status.as_u16(), &body, None));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            let chunk = chunk.map_err(|e| classify_send_error(&e))?;
            if body.len() + chunk.len() > MAX_MODELS_BODY_BYTES {
                return Err(ModelError::Fatal {
                    message: format!("the model list is longer than {MAX_MODELS_BODY_BYTES} bytes"),
                    status: None,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    })
    .await
    .map_err(|_| ModelError::Fatal {
        message: format!("no model list from the server in {}", human_duration(limit)),
        status: None,
    })??;
    parse(&answered)
}

fn parse(body: &[u8]) -> Result<Vec<ModelInfo>, ModelError> {
    let list: Value = serde_json::from_slice(body).map_err(|e| ModelError::Fatal {
        message: format!("the model list is not JSON: {e}"),
        status: None,
    })?;
    let entries = list["data"].as_array().ok_or_else(|| ModelError::Fatal {
        message: "the model list has no `data` array".to_string(),
        status: None,
    })?;
    Ok(entries
        .iter()
        .filter_map(|entry| {
            let id = entry["id"].as_str()?.to_string();
            let context_window = CONTEXT_FIELDS
                .iter()
                .find_map(|field| entry.get(field).and_then(Value::as_u64))
                .filter(|n| *n > 0);
            Some(ModelInfo { id, context_window })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_windows_are_read_from_each_servers_field() {
        let body = br#"{"object":"list","data":[
            {"id":"a","context_length":8192},
            {"id":"b","max_model_len":4096},
            {"id":"c","max_context_length":32768},
            {"id":"d"},
            {"nope":1}
        ]}"#;
        let models = parse(body).unwrap();
        let windows: Vec<(&str, Option<u64>)> = models
            .iter()
            .map(|m| (m.id.as_str(), m.context_window))
            .collect();
        assert_eq!(
            windows,
            [
                ("a", Some(8192)),
                ("b", Some(4096)),
                ("c", Some(32768)),
                ("d", None)
            ]
        );
    }
}
