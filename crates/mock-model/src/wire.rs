//! Which wire API a request speaks, told by its path.
//!
//! The same script answers both: a step is consumed by every request whatever
//! its path, and only rendered, checked and recorded the way its wire API
//! wants.

/// One of the two OpenAI wire APIs the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// `POST …/responses`: the Responses API.
    Responses,
    /// `POST …/chat/completions`: the Chat Completions API, as local servers
    /// (Ollama, vLLM, LM Studio, llama-server) and gateways speak it.
    Chat,
}

impl Wire {
    /// The API served at this path, if any.
    pub(crate) fn from_path(path: &str) -> Option<Wire> {
        if path.ends_with("/responses") {
            Some(Wire::Responses)
        } else if path.ends_with("/chat/completions") {
            Some(Wire::Chat)
        } else {
            None
        }
    }

    /// `"responses"` or `"chat"`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Wire::Responses => "responses",
            Wire::Chat => "chat",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_pick_the_wire() {
        assert_eq!(Wire::from_path("/v1/responses"), Some(Wire::Responses));
        assert_eq!(Wire::from_path("/v1/chat/completions"), Some(Wire::Chat));
        assert_eq!(Wire::from_path("/chat/completions"), Some(Wire::Chat));
        assert_eq!(Wire::from_path("/v1/completions"), None);
        assert_eq!(Wire::from_path("/v1/models"), None);
    }
}
