//! The error enums of the telemetry crate: one for the registry, one for the series store and
//! its persistence, one for queries.

use std::path::PathBuf;

/// Errors of the metric registry and label handling.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A metric or label name that Prometheus would reject.
    #[error("invalid metric or label name {0:?}")]
    InvalidName(String),
    /// The same metric name registered twice.
    #[error("metric {0:?} is already registered")]
    Duplicate(String),
    /// The number of label values does not match the family's label names.
    #[error("metric {metric:?} expects {expected} label values, got {got}")]
    LabelCount {
        /// The metric name.
        metric: String,
        /// Label names of the family.
        expected: usize,
        /// Values passed.
        got: usize,
    },
    /// A server-owned label value outside `[A-Za-z0-9_.:-]{1,128}`.
    #[error("invalid {kind} label value {value:?}: expected 1-128 characters of [A-Za-z0-9_.:-]")]
    InvalidLabelValue {
        /// model, version, pipeline…
        kind: &'static str,
        /// The rejected value.
        value: String,
    },
    /// The registry of values for one label (or the series of one family) is full.
    #[error("cardinality cap reached for {kind}: at most {cap} values, refused {value:?}")]
    CardinalityCap {
        /// model, version, pipeline, or the metric name for a family's series cap.
        kind: &'static str,
        /// The cap.
        cap: usize,
        /// The refused value.
        value: String,
    },
    /// Histogram buckets that are not strictly increasing finite numbers.
    #[error("histogram {0:?} needs strictly increasing, finite bucket bounds")]
    InvalidBuckets(String),
}

/// Errors of the series store and its persistence.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing the persistence file failed.
    #[error("series file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not start with the expected header.
    #[error("series file {path} is not a recserve series file (bad header)")]
    BadHeader {
        /// The file.
        path: PathBuf,
    },
}

/// Errors of parsing and evaluating a query.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The PromQL parser rejected the text.
    #[error("parse error: {0}")]
    Parse(String),
    /// A valid PromQL construct outside recserve's subset.
    #[error("recserve's PromQL subset does not support {0}")]
    Unsupported(String),
    /// A well-formed query that cannot be evaluated (e.g. duplicate series in a match).
    #[error("{0}")]
    Execution(String),
    /// A bad query parameter (time, step, …).
    #[error("{0}")]
    BadParameter(String),
}

/// Errors of setting up telemetry as a whole.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Registering metrics failed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// Opening the series store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
