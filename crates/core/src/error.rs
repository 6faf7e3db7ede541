//! The engine's error type.

/// Errors from the engine's parts.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The configuration could not be loaded or is incomplete.
    #[error(transparent)]
    Config(#[from] tiller_config::ConfigError),
    /// The session's rollout file could not be created or opened.
    #[error("could not save the session: {0}")]
    Rollout(std::io::Error),
    /// The session's rollout could not be found or read.
    #[error(transparent)]
    RolloutRead(#[from] tiller_rollout::RolloutError),
    /// The session to continue was not found.
    #[error(transparent)]
    Lookup(#[from] tiller_rollout::store::LookupError),
    /// The model client could not be built.
    #[error(transparent)]
    ModelClient(#[from] tiller_model::ClientBuildError),
}

/// `Result` with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
