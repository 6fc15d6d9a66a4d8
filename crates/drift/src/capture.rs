//! Capturing reference statistics from live traffic, for models shipped without them: the first
//! N requests' feature values and scores are collected and then frozen into reference bins. This
//! module owns the collection and the freezing rules (decile edges, category counts).

use std::collections::BTreeMap;

use crate::reference::{CategoricalReference, FeatureReference, NumericReference, ReferenceStats};

/// Requests captured by default before the reference is frozen.
pub const DEFAULT_CAPTURE_REQUESTS: usize = 1000;

/// Number of quantile bins a captured numeric feature gets (deciles), before deduplication.
pub const CAPTURE_QUANTILE_BINS: usize = 10;

/// One feature value of one request, as the monitor and the capture receive it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeatureValue<'a> {
    /// A real value. NaN counts as missing; ±∞ fall in the outer bins.
    Numeric(f64),
    /// A category.
    Categorical(&'a str),
    /// No value.
    Missing,
}

/// Collects the first `target` requests and freezes them into [`ReferenceStats`].
///
/// Freezing rules ([`Self::finish`]):
/// - A feature's kind is that of its first non-missing value; later values of the other kind
///   are ignored. A feature that was missing in every captured request is left out.
/// - Numeric: the inner edges are the deciles of the finite values (numpy's default linear
///   interpolation, `q = 0.1, …, 0.9`), rounded to 12 significant digits, duplicates removed,
///   so heavily tied values give fewer bins; counts use the same rule as the file format
///   (`e_j <= x < e_(j+1)`). Missing values (and NaN) are counted in `missing`, outside the bins.
/// - Categorical: the count per category; missing values in `missing`.
/// - Score: every score of the captured requests (a ranker scores many candidates per request),
///   binned like a numeric feature; absent if no request carried a score.
#[derive(Debug, Clone)]
pub struct ReferenceCapture {
    target: usize,
    requests: usize,
    features: BTreeMap<String, Column>,
    scores: Column,
}

#[derive(Debug, Clone)]
enum Column {
    Undetermined { missing: u64 },
    Numeric { values: Vec<f64>, missing: u64 },
    Categorical { counts: BTreeMap<String, u64>, missing: u64 },
}

impl Column {
    fn push(&mut self, value: FeatureValue<'_>) {
        match (self, value) {
            (Self::Undetermined { missing }, FeatureValue::Missing)
            | (Self::Numeric { missing, .. }, FeatureValue::Missing)
            | (Self::Categorical { missing, .. }, FeatureValue::Missing) => *missing += 1,
            (Self::Numeric { missing, .. }, FeatureValue::Numeric(x)) if x.is_nan() => *missing += 1,
            (Self::Undetermined { missing }, FeatureValue::Numeric(x)) if x.is_nan() => *missing += 1,
            (this @ Self::Undetermined { .. }, FeatureValue::Numeric(x)) => {
                let missing = this.missing();
                *this = Self::Numeric { values: vec![x], missing };
            }
            (this @ Self::Undetermined { .. }, FeatureValue::Categorical(c)) => {
                let missing = this.missing();
                *this = Self::Categorical { counts: BTreeMap::from([(c.to_owned(), 1)]), missing };
            }
            (Self::Numeric { values, .. }, FeatureValue::Numeric(x)) => values.push(x),
            (Self::Categorical { counts, .. }, FeatureValue::Categorical(c)) => {
                if let Some(n) = counts.get_mut(c) {
                    *n += 1;
                } else {
                    counts.insert(c.to_owned(), 1);
                }
            }
            // A value of the other kind than the feature's first one: ignored.
            (Self::Numeric { .. }, FeatureValue::Categorical(_))
            | (Self::Categorical { .. }, FeatureValue::Numeric(_)) => {}
        }
    }

    fn missing(&self) -> u64 {
        match self {
            Self::Undetermined { missing } | Self::Numeric { missing, .. } | Self::Categorical { missing, .. } => {
                *missing
            }
        }
    }

    fn freeze(self) -> Option<FeatureReference> {
        match self {
            Self::Undetermined { .. } => None,
            Self::Numeric { values, missing } => freeze_numeric(values, missing).map(FeatureReference::Numeric),
            Self::Categorical { counts, missing } => {
                CategoricalReference::new(counts, missing).ok().map(FeatureReference::Categorical)
            }
        }
    }
}

impl ReferenceCapture {
    /// A capture of the first `requests` requests (at least 1).
    pub fn new(requests: usize) -> Self {
        Self {
            target: requests.max(1),
            requests: 0,
            features: BTreeMap::new(),
            scores: Column::Numeric { values: Vec::new(), missing: 0 },
        }
    }

    /// Adds one request's feature values and scores. Ignored once the capture is complete.
    /// Returns whether it is complete.
    pub fn observe(&mut self, features: &[(&str, FeatureValue<'_>)], scores: &[f64]) -> bool {
        if self.is_complete() {
            return true;
        }
        for (name, value) in features {
            if let Some(column) = self.features.get_mut(*name) {
                column.push(*value);
            } else {
                let mut column = Column::Undetermined { missing: 0 };
                column.push(*value);
                self.features.insert((*name).to_owned(), column);
            }
        }
        for &score in scores {
            self.scores.push(FeatureValue::Numeric(score));
        }
        self.requests += 1;
        self.is_complete()
    }

    /// Requests observed so far.
    pub fn requests(&self) -> usize {
        self.requests
    }

    /// Requests to observe before the reference is frozen.
    pub fn target(&self) -> usize {
        self.target
    }

    /// Whether `target` requests have been observed.
    pub fn is_complete(&self) -> bool {
        self.requests >= self.target
    }

    /// Freezes what was observed (complete or not) into reference statistics; the rules are in
    /// the type's docs.
    pub fn finish(self) -> ReferenceStats {
        let features =
            self.features.into_iter().filter_map(|(name, column)| column.freeze().map(|f| (name, f))).collect();
        let score = match self.scores.freeze() {
            Some(FeatureReference::Numeric(n)) => Some(n),
            _ => None,
        };
        ReferenceStats::new(features, score)
    }
}

/// Decile edges of the finite values (linear interpolation, deduplicated) and counts per bin.
/// `None` when there is no value at all.
fn freeze_numeric(values: Vec<f64>, missing: u64) -> Option<NumericReference> {
    if values.is_empty() {
        return None;
    }
    let mut finite: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    finite.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = Vec::with_capacity(CAPTURE_QUANTILE_BINS - 1);
    if !finite.is_empty() {
        for k in 1..CAPTURE_QUANTILE_BINS {
            let q = round_sig(quantile(&finite, k as f64 / CAPTURE_QUANTILE_BINS as f64));
            if edges.last().is_none_or(|&last| q > last) {
                edges.push(q);
            }
        }
    }
    let mut counts = vec![0u64; edges.len() + 1];
    for &x in &values {
        counts[edges.partition_point(|&e| e <= x)] += 1;
    }
    let n = finite.len() as f64;
    let moments = (!finite.is_empty()).then(|| {
        let mean = finite.iter().sum::<f64>() / n;
        let var = finite.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        (round_sig(mean), round_sig(var.sqrt()))
    });
    let reference = NumericReference::new(edges, counts, missing).ok()?;
    Some(match moments {
        Some((mean, std)) => reference.with_moments(mean, std),
        None => reference,
    })
}

/// `x` rounded to 12 significant digits (train.py rounds too). Short decimals survive the
/// JSON round trip exactly, so a captured reference written out reads back bit for bit.
fn round_sig(x: f64) -> f64 {
    format!("{x:.11e}").parse().unwrap_or(x)
}

/// numpy's default (`linear`) quantile of sorted, non-empty `xs`.
fn quantile(xs: &[f64], q: f64) -> f64 {
    let pos = q * (xs.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let frac = pos - lo as f64;
    match xs.get(lo + 1) {
        Some(&hi) => xs[lo] + frac * (hi - xs[lo]),
        None => xs[lo],
    }
}
