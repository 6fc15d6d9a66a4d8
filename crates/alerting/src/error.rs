//! The error enums of the alerting crate.

use std::path::PathBuf;

use crate::rules::Diagnostic;

/// Errors of silences.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// Bad matchers or times.
    #[error("invalid silence: {0}")]
    Invalid(String),
    /// No silence with this id.
    #[error("silence {0} not found")]
    NotFound(String),
    /// Expiring a silence that is over already.
    #[error("silence {0} is already expired")]
    AlreadyExpired(String),
}

/// Errors of saving or loading alert state.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Reading or writing a file failed.
    #[error("alert state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file that is not valid JSON of the expected shape.
    #[error("alert state file {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// Another backend's error (the SQL store).
    #[error("alert state: {0}")]
    Backend(String),
}

/// Errors of setting up or reloading alerting.
#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    /// Rule files with errors (each `file:line:col: message`).
    #[error("invalid rule files:\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Rules(Vec<Diagnostic>),
    /// Loading saved state failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// A notification target URL that cannot be used.
    #[error("invalid notification URL {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(String),
}
