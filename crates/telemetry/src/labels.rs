//! Label sets and the bounded label values recserve is allowed to use.
//!
//! This module owns [`LabelSet`] (a sorted, owned set of label pairs used by the series store and
//! the query engine), the closed enums [`Stage`] and [`Outcome`], and [`BoundedNames`], the
//! registry of server-owned names (model, version, pipeline) with a cap, so that a flood of names
//! can never explode the number of series.

use std::collections::HashSet;
use std::fmt;
use std::sync::RwLock;

use crate::error::MetricsError;

/// The label name Prometheus uses for the metric name.
pub const METRIC_NAME: &str = "__name__";

/// The label value a [`BoundedNames`] registry hands out once its cap is reached.
pub const OVERFLOW_VALUE: &str = "other";

/// A set of labels, sorted by name, without duplicate names and without empty values
/// (Prometheus treats an empty value as an absent label).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LabelSet(Vec<(String, String)>);

impl LabelSet {
    /// An empty label set.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Builds a label set from pairs; later duplicates replace earlier ones, empty values are dropped.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut set = Self::new();
        for (k, v) in pairs {
            set.insert(k.into(), v.into());
        }
        set
    }

    /// Sets `name` to `value` (removes the label when `value` is empty).
    pub fn insert(&mut self, name: String, value: String) {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(&name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)).ok().map(|i| self.0[i].1.as_str())
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| k != name);
    }

    /// Keeps only the labels whose name is in `names`.
    pub fn keep_only(&mut self, names: &[String]) {
        self.0.retain(|(k, _)| names.iter().any(|n| n == k));
    }

    /// A copy without the metric name.
    pub fn without_name(&self) -> Self {
        let mut s = self.clone();
        s.remove(METRIC_NAME);
        s
    }

    /// Iterates over `(name, value)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set has no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for LabelSet {
    /// Prometheus style: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            write!(f, "{name}")?;
        }
        write!(f, "{{")?;
        let mut first = true;
        for (k, v) in self.iter().filter(|(k, _)| *k != METRIC_NAME) {
            if !first {
                write!(f, ", ")?;
            }
            first = false;
            write!(f, "{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))?;
        }
        write!(f, "}}")
    }
}

/// A pipeline stage of one request, the values of the `stage` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Waiting in the batcher queue.
    Queue,
    /// Feature lookup and transforms before inference.
    Preprocess,
    /// The engine running the batch.
    Inference,
    /// Decoding outputs after inference.
    Postprocess,
    /// Candidate retrieval (ANN) in a recommendation pipeline.
    Retrieval,
    /// Ranking and business rules in a recommendation pipeline.
    Ranking,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 6] =
        [Stage::Queue, Stage::Preprocess, Stage::Inference, Stage::Postprocess, Stage::Retrieval, Stage::Ranking];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Queue => "queue",
            Stage::Preprocess => "preprocess",
            Stage::Inference => "inference",
            Stage::Postprocess => "postprocess",
            Stage::Retrieval => "retrieval",
            Stage::Ranking => "ranking",
        }
    }

    /// Index into [`Stage::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a label value.
    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a request ended, the values of the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Answered successfully.
    Ok,
    /// Rejected as invalid input (HTTP 400 / 413).
    BadRequest,
    /// Unknown model or version (HTTP 404).
    NotFound,
    /// Rejected by admission control (HTTP 429).
    Overloaded,
    /// Not ready to serve (HTTP 503).
    Unavailable,
    /// Ran past its deadline.
    Timeout,
    /// Failed inside the server (HTTP 500).
    Error,
    /// The caller went away before the answer, or the observation was dropped unfinished.
    Cancelled,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::BadRequest,
        Outcome::NotFound,
        Outcome::Overloaded,
        Outcome::Unavailable,
        Outcome::Timeout,
        Outcome::Error,
        Outcome::Cancelled,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::BadRequest => "bad_request",
            Outcome::NotFound => "not_found",
            Outcome::Overloaded => "overloaded",
            Outcome::Unavailable => "unavailable",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// Index into [`Outcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the outcome counts as a server-side failure in error ratios.
    pub fn is_error(self) -> bool {
        matches!(self, Outcome::Error | Outcome::Timeout | Outcome::Unavailable | Outcome::Overloaded)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `value` is acceptable as a server-owned label value: 1–128 characters of
/// `[A-Za-z0-9_.:-]`.
pub fn is_valid_name_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// A bounded set of server-owned label values (model names, versions, pipeline names).
///
/// Registering is the cold path (once per loaded model version); the first `cap` distinct values
/// are accepted, later ones map to [`OVERFLOW_VALUE`], so the number of series stays bounded.
#[derive(Debug)]
pub struct BoundedNames {
    kind: &'static str,
    cap: usize,
    names: RwLock<HashSet<String>>,
}

impl BoundedNames {
    /// A registry for `kind` (used in error messages) holding at most `cap` values.
    pub fn new(kind: &'static str, cap: usize) -> Self {
        Self { kind, cap, names: RwLock::new(HashSet::new()) }
    }

    /// Registers `value`; errors when it is not a valid name or the cap is reached.
    pub fn register(&self, value: &str) -> Result<String, MetricsError> {
        if !is_valid_name_value(value) {
            return Err(MetricsError::InvalidLabelValue { kind: self.kind, value: value.to_string() });
        }
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        if names.contains(value) {
            return Ok(value.to_string());
        }
        if names.len() >= self.cap {
            return Err(MetricsError::CardinalityCap { kind: self.kind, cap: self.cap, value: value.to_string() });
        }
        names.insert(value.to_string());
        Ok(value.to_string())
    }

    /// Registers `value`, or answers [`OVERFLOW_VALUE`] when it cannot be registered.
    pub fn register_or_overflow(&self, value: &str) -> String {
        match self.register(value) {
            Ok(v) => v,
            Err(err) => {
                tracing::warn!(%err, "label value mapped to \"{OVERFLOW_VALUE}\"");
                OVERFLOW_VALUE.to_string()
            }
        }
    }

    /// Number of registered values.
    pub fn len(&self) -> usize {
        self.names.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
