//! The error type of config loading.

use std::path::PathBuf;

use super::raw::Origin;

/// Why the configuration could not be loaded, or a provider cannot be used.
///
/// Every variant about a bad setting names where the setting came from: the
/// file and line, the `-c` override as typed, or the command line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file exists but could not be read.
    // The io error is part of the message rather than a `source`, so that
    // printing the error chain does not say it twice.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("{}:{line}: invalid TOML: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The 1-based line of the error.
        line: usize,
        /// What the TOML parser said.
        message: String,
    },
    /// A setting in the config file has a bad value.
    #[error("{}:{line}: {key}: {message}", file.display())]
    BadValue {
        /// The file.
        file: PathBuf,
        /// The 1-based line of the value.
        line: usize,
        /// The dotted key, e.g. `model_providers.local.base_url`.
        key: String,
        /// What is wrong with the value.
        message: String,
    },
    /// A `-c key=value` override is malformed or has a bad value.
    #[error("-c {text}: {message}")]
    BadOverride {
        /// The override as given, `key=value`.
        text: String,
        /// What is wrong with it (naming the key when it is not the override's own).
        message: String,
    },
    /// A typed command-line option (model, provider, approval policy) has a bad value.
    #[error("command line: {key}: {message}")]
    BadOption {
        /// The setting the option sets, e.g. `model_provider`.
        key: String,
        /// What is wrong with the value.
        message: String,
    },
    /// `model_provider` names a provider that is neither built in nor in `[model_providers]`.
    #[error(
        "{location}: model_provider: unknown model provider '{provider}' (known providers: {known})"
    )]
    UnknownProvider {
        /// Where `model_provider` was set: `file:line`, `-c ...` or `command line`.
        location: String,
        /// The provider id asked for.
        provider: String,
        /// The ids that exist, comma-separated.
        known: String,
    },
    /// An environment variable the config reads has a bad value.
    #[error("environment variable {var}: {message}")]
    BadEnvVar {
        /// The variable.
        var: String,
        /// What is wrong with its value.
        message: String,
    },
    /// The provider needs an API key and its environment variable is missing or empty.
    #[error("the provider '{provider}' needs an API key: set the environment variable {var}")]
    MissingApiKey {
        /// The variable to set.
        var: String,
        /// The provider id.
        provider: String,
    },
    /// Neither `TILLER_HOME` nor `HOME` is set.
    #[error("cannot find the tiller home directory: set TILLER_HOME or HOME")]
    NoHome,
    /// The working directory does not exist or cannot be determined.
    #[error("working directory {}: {message}", path.display())]
    BadCwd {
        /// The directory asked for (or `.` when the current one is unknown).
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// A bad value for `key`, reported against where the value came from.
    pub(super) fn bad_value(origin: &Origin, key: &str, message: impl Into<String>) -> ConfigError {
        let message = message.into();
        match origin {
            Origin::File { path, line } => ConfigError::BadValue {
                file: path.clone(),
                line: *line,
                key: key.to_owned(),
                message,
            },
            Origin::Override {
                text,
                key: override_key,
            } => ConfigError::BadOverride {
                text: text.clone(),
                // `-c model=5: expected a string` needs no key; a key inside an
                // inline table (`-c model_providers.x={base_url=5}`) does.
                message: if key == override_key {
                    message
                } else {
                    format!("{key}: {message}")
                },
            },
            Origin::CommandLine => ConfigError::BadOption {
                key: key.to_owned(),
                message,
            },
        }
    }
}
