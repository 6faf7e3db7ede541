//! The Chat Completions client: `POST {base_url}/chat/completions` with `stream: true`.

use crate::error::{ClientBuildError, ModelError};
use crate::responses::ModelRequest;
use tiller_config::ProviderConfig;

/// A Chat Completions client for one provider.
#[derive(Debug, Clone)]
pub struct ChatClient {}

impl ChatClient {
    /// A client for `provider`, authenticating with `api_key` if given.
    pub fn new(
        _provider: &ProviderConfig,
        _api_key: Option<String>,
    ) -> Result<Self, ClientBuildError> {
        Ok(ChatClient {})
    }
}

impl crate::ModelClient for ChatClient {
    fn stream<'a>(&'a self, _request: &'a ModelRequest) -> crate::StreamFuture<'a> {
        Box::pin(async move {
            Err(ModelError::Fatal {
                message: "not yet".into(),
                status: None,
            })
        })
    }
}
