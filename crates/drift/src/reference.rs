//! Reference statistics: the distribution each model input feature and the output score had when
//! the model was trained (shipped with the model as `reference_stats.json`) or when it started
//! serving (see [`crate::ReferenceCapture`]). This module owns the typed form, the JSON format
//! (reading with validation, writing back) and the bucket layout the monitor counts in.
//!
//! # The file format (version 1, written by `examples/ecommerce/train.py`)
//!
//! ```json
//! {"version": 1,
//!  "features": {
//!    "device": {"kind": "categorical", "counts": {"mobile": 880, "desktop": 540}, "missing": 0},
//!    "price":  {"kind": "numeric", "bins": [null, -0.5, 0.0, 0.5, null],
//!               "counts": [10, 20, 20, 10], "mean": 0.0, "std": 0.6, "missing": 4}},
//!  "score": {"kind": "numeric", "bins": [null, 0.1, null], "counts": [50, 50], "missing": 0}}
//! ```
//!
//! - Numeric: `bins` are the bin edges, `null` first and last standing for −∞ and +∞; bin `j`
//!   holds `bins[j] <= x < bins[j+1]` (numpy `searchsorted(inner, x, side="right")`), so there is
//!   one count per bin. The edges between must be finite and strictly increasing. `mean` and
//!   `std` are informative and optional. train.py bins the model input value, i.e. after the
//!   feature's default replaced a missing raw value and after its transforms: `counts` cover every
//!   row and `missing` says how many of them had no raw value. The monitor therefore compares the
//!   bins only and reports missing values beside them (see [`crate::FeatureDrift::missing`]).
//! - Categorical: `counts` per raw category, `missing` rows without a value (not included in
//!   `counts`). The compared distribution is the categories, plus one bucket for categories the
//!   reference never saw (`__other__`, reference count 0) and one for missing values.
//! - `score`: a numeric entry for the model's output score; optional (without it the score is not
//!   monitored).
//!
//! Unknown fields are ignored, so producers can add information.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The only version of the reference statistics format.
pub const FORMAT_VERSION: u64 = 1;

/// Display name of the bucket holding categories the reference never saw.
pub const OTHER_CATEGORY: &str = "__other__";

/// Whether a feature is binned by value ranges or counted by category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureKind {
    /// Real values, binned by the reference's bin edges.
    Numeric,
    /// Strings, counted per reference category.
    Categorical,
}

/// Reference distribution of a numeric feature (or the score) over fixed bins.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericReference {
    edges: Vec<f64>,
    counts: Vec<u64>,
    mean: Option<f64>,
    std: Option<f64>,
    missing: u64,
}

impl NumericReference {
    /// Builds a numeric reference from the inner bin edges (the finite ones; the outer bins are
    /// open towards −∞ and +∞), one count per bin (`edges.len() + 1`) and the number of missing
    /// values.
    ///
    /// # Errors
    /// Edges that are not finite or not strictly increasing, a count per bin missing or extra,
    /// or no observation at all in the bins.
    pub fn new(edges: Vec<f64>, counts: Vec<u64>, missing: u64) -> Result<Self, StatsProblem> {
        for (index, edge) in edges.iter().enumerate() {
            if !edge.is_finite() {
                return Err(StatsProblem::NonFiniteEdge { index: index + 1 });
            }
        }
        for (index, pair) in edges.windows(2).enumerate() {
            if pair[1] <= pair[0] {
                return Err(StatsProblem::EdgesNotIncreasing { index: index + 2, value: pair[1], previous: pair[0] });
            }
        }
        if counts.len() != edges.len() + 1 {
            return Err(StatsProblem::CountsLength { counts: counts.len(), edges: edges.len() + 2 });
        }
        if counts.iter().sum::<u64>() == 0 {
            return Err(StatsProblem::NoObservations);
        }
        Ok(Self { edges, counts, mean: None, std: None, missing })
    }

    /// Sets the informative mean and standard deviation.
    #[must_use]
    pub fn with_moments(mut self, mean: f64, std: f64) -> Self {
        self.mean = Some(mean);
        self.std = Some(std);
        self
    }

    /// The finite bin edges, strictly increasing (the outer bins are open).
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// Reference count per bin (`edges().len() + 1` of them).
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.counts.len()
    }

    /// Reference values that were missing (not part of [`Self::counts`] comparisons).
    pub fn missing(&self) -> u64 {
        self.missing
    }

    /// Mean of the reference values, when known.
    pub fn mean(&self) -> Option<f64> {
        self.mean
    }

    /// Standard deviation of the reference values, when known.
    pub fn std(&self) -> Option<f64> {
        self.std
    }

    /// The bin of `x`: `j` such that `edge[j-1] <= x < edge[j]` (−∞ and +∞ at the ends). `x`
    /// must not be NaN (NaN is a missing value; it lands in the last bin here).
    pub fn bin_of(&self, x: f64) -> usize {
        self.edges.partition_point(|&edge| edge <= x)
    }
}

/// Reference distribution of a categorical feature.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoricalReference {
    categories: Vec<String>,
    counts: Vec<u64>,
    missing: u64,
    index: HashMap<String, usize>,
}

impl CategoricalReference {
    /// Builds a categorical reference from the count per category and the number of missing
    /// values. Categories are kept in name order.
    ///
    /// # Errors
    /// No observation at all (every count and `missing` 0).
    pub fn new(counts: BTreeMap<String, u64>, missing: u64) -> Result<Self, StatsProblem> {
        if counts.values().sum::<u64>() + missing == 0 {
            return Err(StatsProblem::NoObservations);
        }
        let (categories, counts): (Vec<String>, Vec<u64>) = counts.into_iter().unzip();
        let index = categories.iter().enumerate().map(|(i, c)| (c.clone(), i)).collect();
        Ok(Self { categories, counts, missing, index })
    }

    /// The reference's categories, in name order.
    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// Reference count per category (same order as [`Self::categories`]).
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Reference values that were missing.
    pub fn missing(&self) -> u64 {
        self.missing
    }

    /// Position of `category` among [`Self::categories`], `None` for one the reference never saw.
    pub fn position(&self, category: &str) -> Option<usize> {
        self.index.get(category).copied()
    }
}

/// The reference distribution of one feature.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureReference {
    /// Fixed bins over real values.
    Numeric(NumericReference),
    /// Counts per category.
    Categorical(CategoricalReference),
}

impl FeatureReference {
    /// Numeric or categorical.
    pub fn kind(&self) -> FeatureKind {
        match self {
            Self::Numeric(_) => FeatureKind::Numeric,
            Self::Categorical(_) => FeatureKind::Categorical,
        }
    }

    /// The reference histogram in the monitor's bucket layout: numeric → one count per bin;
    /// categorical → one per category, then `__other__` (0), then missing.
    pub fn histogram(&self) -> Vec<u64> {
        match self {
            Self::Numeric(n) => n.counts.clone(),
            Self::Categorical(c) => {
                let mut h = c.counts.clone();
                h.push(0);
                h.push(c.missing);
                h
            }
        }
    }
}

/// Reference statistics of one model: per input feature and for the output score.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReferenceStats {
    features: BTreeMap<String, FeatureReference>,
    score: Option<NumericReference>,
}

impl ReferenceStats {
    /// Reference statistics from their parts.
    pub fn new(features: BTreeMap<String, FeatureReference>, score: Option<NumericReference>) -> Self {
        Self { features, score }
    }

    /// Reads and validates a reference statistics file.
    ///
    /// # Errors
    /// The file cannot be read, or [`Self::from_json`] rejects it; the error names the path.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ReferenceError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ReferenceError::Read { path: path.to_path_buf(), source })?;
        Self::from_json(&text)
            .map_err(|source| ReferenceError::File { path: path.to_path_buf(), source: Box::new(source) })
    }

    /// Parses and validates reference statistics from JSON text (format in the module docs).
    ///
    /// # Errors
    /// Not JSON, not an object with `version` 1 and `features`, or a feature / the score that is
    /// malformed (unknown kind, counts not one per bin, edges not increasing, …); the error names
    /// the feature.
    pub fn from_json(text: &str) -> Result<Self, ReferenceError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(ReferenceError::Json)?;
        let version = value.get("version").ok_or(ReferenceError::MissingField("version"))?;
        if version.as_u64() != Some(FORMAT_VERSION) {
            return Err(ReferenceError::Version { found: version.to_string() });
        }
        let raw: RawFile = serde_json::from_value(value).map_err(ReferenceError::Shape)?;
        let mut features = BTreeMap::new();
        for (name, entry) in raw.features {
            let feature =
                parse_feature(entry).map_err(|problem| ReferenceError::Feature { name: name.clone(), problem })?;
            features.insert(name, feature);
        }
        let score = match raw.score {
            None | Some(serde_json::Value::Null) => None,
            Some(entry) => match parse_feature(entry).map_err(ReferenceError::Score)? {
                FeatureReference::Numeric(n) => Some(n),
                FeatureReference::Categorical(_) => {
                    return Err(ReferenceError::Score(StatsProblem::ScoreNotNumeric));
                }
            },
        };
        Ok(Self { features, score })
    }

    /// The statistics in the file format (version 1), pretty-printed; [`Self::from_json`] reads
    /// it back unchanged (for instance to keep a captured reference across restarts).
    ///
    /// # Errors
    /// Only if serde_json fails to write maps of strings and numbers, which it does not.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let file = RawFileOut {
            version: FORMAT_VERSION,
            features: self.features.iter().map(|(name, f)| (name.as_str(), raw_feature(f))).collect(),
            score: self.score.as_ref().map(raw_numeric),
        };
        serde_json::to_string_pretty(&file)
    }

    /// Per feature name, its reference distribution (in name order).
    pub fn features(&self) -> &BTreeMap<String, FeatureReference> {
        &self.features
    }

    /// The reference distribution of feature `name`.
    pub fn feature(&self, name: &str) -> Option<&FeatureReference> {
        self.features.get(name)
    }

    /// The reference distribution of the output score, when present.
    pub fn score(&self) -> Option<&NumericReference> {
        self.score.as_ref()
    }
}

/// Why reference statistics were rejected.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The file could not be read.
    #[error("cannot read reference statistics {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but its content is invalid.
    #[error("reference statistics {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        source: Box<ReferenceError>,
    },
    /// Not JSON.
    #[error("not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// A required top-level field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A `version` other than 1.
    #[error("unsupported version {found} (this reader knows version {FORMAT_VERSION})")]
    Version {
        /// The version found, as written.
        found: String,
    },
    /// The top level does not have the expected shape (`features` not an object, …).
    #[error("{0}")]
    Shape(#[source] serde_json::Error),
    /// A feature entry is malformed.
    #[error("feature `{name}`: {problem}")]
    Feature {
        /// The feature.
        name: String,
        /// What is wrong with it.
        problem: StatsProblem,
    },
    /// The score entry is malformed.
    #[error("score: {0}")]
    Score(StatsProblem),
}

/// What is wrong with one feature's (or the score's) reference entry.
#[derive(Debug, thiserror::Error)]
pub enum StatsProblem {
    /// Wrong fields or types: unknown `kind`, missing `counts`, a negative count, …
    #[error("{0}")]
    Shape(#[source] serde_json::Error),
    /// Numeric bins must be `[null, e1, …, ek, null]`.
    #[error("bins must start and end with null (-inf and +inf), got {0} edges")]
    OpenEnds(usize),
    /// A `null` edge other than the first or the last.
    #[error("bin edge {index} is null; only the first and the last edge may be null")]
    InnerNull {
        /// Position of the edge in `bins` (0-based).
        index: usize,
    },
    /// An edge that is not a finite number.
    #[error("bin edge {index} is not finite")]
    NonFiniteEdge {
        /// Position of the edge in `bins` (0-based).
        index: usize,
    },
    /// Edges not strictly increasing.
    #[error("bin edges must be strictly increasing: edge {index} ({value}) <= the edge before it ({previous})")]
    EdgesNotIncreasing {
        /// Position of the offending edge in `bins` (0-based).
        index: usize,
        /// Its value.
        value: f64,
        /// The edge before it.
        previous: f64,
    },
    /// Not one count per bin.
    #[error("{counts} counts for {edges} bin edges; expected one count per bin ({} counts)", edges.saturating_sub(1))]
    CountsLength {
        /// Number of counts.
        counts: usize,
        /// Number of edges in `bins`, including the two open ends.
        edges: usize,
    },
    /// Every count is 0.
    #[error("no observations: every count is 0")]
    NoObservations,
    /// The score entry must be numeric.
    #[error("the score must be numeric, not categorical")]
    ScoreNotNumeric,
}

#[derive(Deserialize)]
struct RawFile {
    features: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    score: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct RawFileOut<'a> {
    version: u64,
    features: BTreeMap<&'a str, RawFeature>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<RawFeature>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum RawFeature {
    Categorical {
        counts: BTreeMap<String, u64>,
        #[serde(default)]
        missing: u64,
    },
    Numeric {
        bins: Vec<Option<f64>>,
        counts: Vec<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mean: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        std: Option<f64>,
        #[serde(default)]
        missing: u64,
    },
}

fn parse_feature(entry: serde_json::Value) -> Result<FeatureReference, StatsProblem> {
    match serde_json::from_value(entry).map_err(StatsProblem::Shape)? {
        RawFeature::Categorical { counts, missing } => {
            CategoricalReference::new(counts, missing).map(FeatureReference::Categorical)
        }
        RawFeature::Numeric { bins, counts, mean, std, missing } => {
            let n = bins.len();
            if n < 2 || bins[0].is_some() || bins[n - 1].is_some() {
                return Err(StatsProblem::OpenEnds(n));
            }
            let mut edges = Vec::with_capacity(n - 2);
            for (index, edge) in bins.iter().enumerate().take(n - 1).skip(1) {
                edges.push(edge.ok_or(StatsProblem::InnerNull { index })?);
            }
            if counts.len() != n - 1 {
                return Err(StatsProblem::CountsLength { counts: counts.len(), edges: n });
            }
            let mut numeric = NumericReference::new(edges, counts, missing)?;
            numeric.mean = mean;
            numeric.std = std;
            Ok(FeatureReference::Numeric(numeric))
        }
    }
}

fn raw_numeric(n: &NumericReference) -> RawFeature {
    let mut bins = Vec::with_capacity(n.edges.len() + 2);
    bins.push(None);
    bins.extend(n.edges.iter().copied().map(Some));
    bins.push(None);
    RawFeature::Numeric { bins, counts: n.counts.clone(), mean: n.mean, std: n.std, missing: n.missing }
}

fn raw_feature(f: &FeatureReference) -> RawFeature {
    match f {
        FeatureReference::Numeric(n) => raw_numeric(n),
        FeatureReference::Categorical(c) => RawFeature::Categorical {
            counts: c.categories.iter().cloned().zip(c.counts.iter().copied()).collect(),
            missing: c.missing,
        },
    }
}
