//! The one error type of the load generator.
//!
//! Errors that stop a run (bad arguments, unreachable server, unknown model, unreadable input
//! data) are returned as [`LoadgenError`]. Errors of individual requests during a run are not:
//! they are counted in the [`Report`](crate::Report).

use std::path::PathBuf;

/// Why a benchmark run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// `--url` is not an `http://host[:port][/prefix]` URL.
    #[error("invalid --url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// An argument has a value the run cannot use.
    #[error("invalid argument {arg}: {reason}")]
    InvalidArgument { arg: &'static str, reason: String },

    /// No TCP connection could be opened to the server.
    #[error("cannot reach the server at {url}: {reason} (is it running, and is --url right?)")]
    Connect { url: String, reason: String },

    /// The server answered the metadata request with 404: it does not know the model.
    #[error("the server at {url} does not know model {model:?} (HTTP {status}: {message})")]
    ModelNotFound { url: String, model: String, status: u16, message: String },

    /// The server answered the metadata request with another non-200 status.
    #[error("fetching metadata of model {model:?} from {url} failed: HTTP {status}: {message}")]
    Metadata { url: String, model: String, status: u16, message: String },

    /// The model metadata could not be used to build a request.
    #[error("cannot build a request from the metadata of model {model:?}: {reason}")]
    InvalidMetadata { model: String, reason: String },

    /// An HTTP exchange outside the measured load (the metadata request) failed.
    #[error("HTTP request to {url} failed: {reason}")]
    Http { url: String, reason: String },

    /// `--input-data` could not be read.
    #[error("cannot read --input-data {}: {source}", path.display())]
    ReadInputData {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `--input-data` is not a usable V2 inference request.
    #[error("invalid --input-data {}: {reason}", path.display())]
    InvalidInputData { path: PathBuf, reason: String },

    /// `--bodies` could not be read.
    #[error("cannot read --bodies {}: {source}", path.display())]
    ReadBodies {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `--bodies` holds no usable request bodies.
    #[error("invalid --bodies {}: {reason}", path.display())]
    InvalidBodies { path: PathBuf, reason: String },

    /// The server does not serve `/v1/recommend` (started without `--pipelines`).
    #[error(
        "the server at {url} serves no recommendation pipelines (GET /v1/scenarios: HTTP {status}: {message}); start it with --pipelines"
    )]
    NoPipelines { url: String, status: u16, message: String },

    /// The synthetic shop behind generated `/v1/recommend` bodies could not be built.
    #[error("cannot generate recommendation requests: {0}")]
    Shop(String),

    /// The JSON report could not be written.
    #[error("cannot write the JSON report to {}: {source}", path.display())]
    WriteOutput {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A load worker task panicked or was cancelled.
    #[error("a load worker failed: {0}")]
    Worker(String),
}
