//! The crate's errors.

/// What can go wrong in the MCP server.
#[derive(Debug, thiserror::Error)]
pub enum McpServerError {
    /// The client went away or misbehaved before the MCP handshake finished.
    #[error("MCP handshake failed: {0}")]
    Initialize(String),
    /// The serve loop ended abnormally.
    #[error("MCP server stopped: {0}")]
    Serve(String),
    /// The configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] tiller_core::config::ConfigError),
    /// A saved session could not be found or read.
    #[error("{0}")]
    Session(String),
    /// The engine could not start a session.
    #[error(transparent)]
    Core(#[from] tiller_core::CoreError),
    /// The engine refused an op.
    #[error(transparent)]
    Op(#[from] tiller_protocol::OpError),
}

/// `Result` with [`McpServerError`].
pub type Result<T, E = McpServerError> = std::result::Result<T, E>;
