//! The drift monitor of one model: per feature and for the score, a sliding-window histogram over
//! the reference buckets, recorded from request handlers, and snapshots with PSI, Jensen–Shannon
//! distance and a verdict. This module owns the configuration, the hot recording path, the
//! capture-then-monitor life cycle and the verdict rules.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::capture::{DEFAULT_CAPTURE_REQUESTS, FeatureValue, ReferenceCapture};
use crate::metrics::{js_distance, psi};
use crate::reference::{FeatureKind, FeatureReference, ReferenceStats};
use crate::window::{Slot, Totals, Window};

/// Name under which the score appears in snapshots.
pub const SCORE_NAME: &str = "score";

/// PSI and JS thresholds of the verdicts. Defaults follow REFERENCE "Drift defaults": PSI 0.1
/// moderate, 0.2 significant (the customary PSI bands, evidently's threshold 0.1), and
/// Jensen–Shannon distance 0.1 (evidently's and NannyML's threshold).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// PSI at or above this is at least [`Verdict::Moderate`] (default 0.1).
    pub psi_moderate: f64,
    /// PSI at or above this is [`Verdict::Significant`] (default 0.2).
    pub psi_significant: f64,
    /// JS distance at or above this is at least [`Verdict::Moderate`] (default 0.1).
    pub js_moderate: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { psi_moderate: 0.1, psi_significant: 0.2, js_moderate: 0.1 }
    }
}

impl Thresholds {
    /// The verdict for metric values computed on a large enough sample.
    pub fn verdict(&self, psi: f64, js: f64) -> Verdict {
        if psi >= self.psi_significant {
            Verdict::Significant
        } else if psi >= self.psi_moderate || js >= self.js_moderate {
            Verdict::Moderate
        } else {
            Verdict::Ok
        }
    }
}

/// Configuration of a [`DriftMonitor`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftConfig {
    /// Length of the sliding window in milliseconds (default 600 000, 10 minutes). Must be a
    /// multiple of `sub_buckets`.
    pub window_ms: u64,
    /// Time sub-buckets the window is made of (default 10, so it moves in 1-minute steps).
    pub sub_buckets: usize,
    /// Observations in the window below which there is no verdict and no metric (default 100).
    /// The minimum of a feature is the larger of this and `min_samples_per_bucket` times its
    /// reference buckets with a non-zero count.
    pub min_samples: u64,
    /// Observations needed per non-empty reference bucket (default 50). Sampling noise alone
    /// gives PSI ≈ (k − 1)/n over k buckets, and the JS threshold 0.1 (base 2) is crossed near
    /// PSI 0.055, so a fixed minimum of 100 judges most undrifted 10-bin windows `Moderate`.
    /// Measured with `examples/noise_floor.rs` on the demo's reference (share of undrifted
    /// windows not `Ok`): 10 bins 80 % at n = 100, 30 % at 200, 0.3 % at 500, 0 at 1000; 54
    /// brand categories 100 % at 500, 38 % at 1000, 0 at 2000. 50 per bucket gives 500 for 10
    /// bins and 2700 for the 54 brands. 0 turns the rule off.
    pub min_samples_per_bucket: u64,
    /// Verdict thresholds.
    pub thresholds: Thresholds,
    /// Requests captured as the reference when the model has none (default 1000).
    pub capture_requests: usize,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            window_ms: 600_000,
            sub_buckets: 10,
            min_samples: 100,
            min_samples_per_bucket: 50,
            thresholds: Thresholds::default(),
            capture_requests: DEFAULT_CAPTURE_REQUESTS,
        }
    }
}

/// A configuration the monitor cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `sub_buckets` is 0.
    #[error("drift window: sub_buckets must be at least 1")]
    NoSubBuckets,
    /// The window does not split into whole milliseconds per sub-bucket.
    #[error("drift window: window_ms ({window_ms}) must be a positive multiple of sub_buckets ({sub_buckets})")]
    WindowNotDivisible {
        /// The configured window.
        window_ms: u64,
        /// The configured number of sub-buckets.
        sub_buckets: usize,
    },
}

/// The drift verdict of one feature over the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Fewer observations than the feature's minimum sample size
    /// ([`FeatureDrift::min_samples`]): no metric, no verdict.
    InsufficientData,
    /// Below every threshold.
    Ok,
    /// PSI ≥ `psi_moderate` or JS ≥ `js_moderate`, and PSI < `psi_significant`.
    Moderate,
    /// PSI ≥ `psi_significant`.
    Significant,
}

/// Drift of one feature (or the score) over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureDrift {
    /// Feature name ([`SCORE_NAME`] for the score).
    pub name: String,
    /// Numeric or categorical.
    pub kind: FeatureKind,
    /// Observations in the compared histogram: numeric → non-missing values; categorical →
    /// every value, missing ones and unseen categories included.
    pub n: u64,
    /// Missing values in the window (numeric: outside `n`; categorical: inside `n`).
    pub missing: u64,
    /// Categorical: values of categories the reference never saw (`__other__`); numeric: 0.
    pub unseen: u64,
    /// Values of the wrong kind (a string for a numeric feature or the reverse), not compared.
    pub invalid: u64,
    /// The sample size `n` must reach for metrics and a verdict: `max(min_samples,
    /// min_samples_per_bucket × non-empty reference buckets)`.
    pub min_samples: u64,
    /// Population stability index; `None` below the minimum sample size.
    pub psi: Option<f64>,
    /// Jensen–Shannon distance (base 2, in `[0, 1]`); `None` below the minimum sample size.
    pub js: Option<f64>,
    /// The verdict from the thresholds.
    pub verdict: Verdict,
}

/// Progress of a reference capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CaptureProgress {
    /// Requests captured so far.
    pub requests: usize,
    /// Requests to capture.
    pub target: usize,
}

/// Drift of every feature and of the score at one time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftSnapshot {
    /// The time of the snapshot (ms).
    pub at_ms: u64,
    /// The window length (ms).
    pub window_ms: u64,
    /// `Some` while the reference is still being captured (then `features` is empty and
    /// `score` is `None`).
    pub capturing: Option<CaptureProgress>,
    /// Per reference feature, in name order.
    pub features: Vec<FeatureDrift>,
    /// The score, when the reference has one.
    pub score: Option<FeatureDrift>,
}

/// Sliding-window drift of one model's features and score against its reference statistics.
///
/// `Send + Sync`: share it in an `Arc` and call [`Self::record_at`] from request handlers. Per
/// recorded feature the hot path does one hash lookup of the name, a binary search over the bin
/// edges (or a category lookup) and a few increments under a `Mutex` that is sharded by thread
/// (4 shards per feature); no allocation. `examples/record_cost.rs` measures it. While capturing (see [`Self::capturing`]) every record takes one
/// shared lock instead, for the first N requests only.
#[derive(Debug)]
pub struct DriftMonitor {
    config: DriftConfig,
    slice_ms: u64,
    tracked: OnceLock<Tracked>,
    capture: Mutex<Option<ReferenceCapture>>,
}

#[derive(Debug)]
struct Tracked {
    reference: ReferenceStats,
    features: Vec<TrackedFeature>,
    index: HashMap<String, usize>,
    score: Option<TrackedFeature>,
}

#[derive(Debug)]
struct TrackedFeature {
    name: String,
    reference: FeatureReference,
    histogram: Vec<u64>,
    /// Reference buckets with a non-zero count.
    occupied: u64,
    shards: Box<[Shard]>,
}

/// Window shards per feature. Each recording thread always uses the same shard (threads are
/// dealt out round-robin as they first record), so concurrent handlers seldom wait on, or move
/// between cores, the same lock; a snapshot sums the shards.
const SHARDS: usize = 4;

/// One shard on its own cache line, so two shards' locks never share one.
#[derive(Debug)]
#[repr(align(64))]
struct Shard(Mutex<Window>);

/// This thread's shard.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl TrackedFeature {
    fn new(name: &str, reference: FeatureReference, sub_buckets: usize) -> Self {
        let histogram = reference.histogram();
        Self {
            name: name.to_owned(),
            occupied: histogram.iter().filter(|&&c| c > 0).count() as u64,
            shards: (0..SHARDS).map(|_| Shard(Mutex::new(Window::new(histogram.len(), sub_buckets)))).collect(),
            histogram,
            reference,
        }
    }

    fn slot(&self, value: FeatureValue<'_>) -> Slot {
        match (&self.reference, value) {
            (FeatureReference::Numeric(_), FeatureValue::Missing) => Slot::Missing,
            (FeatureReference::Numeric(_), FeatureValue::Numeric(x)) if x.is_nan() => Slot::Missing,
            (FeatureReference::Numeric(n), FeatureValue::Numeric(x)) => Slot::Bucket(n.bin_of(x)),
            (FeatureReference::Categorical(c), FeatureValue::Categorical(s)) => {
                Slot::Bucket(c.position(s).unwrap_or(c.categories().len()))
            }
            (FeatureReference::Categorical(c), FeatureValue::Missing) => Slot::Bucket(c.categories().len() + 1),
            (FeatureReference::Numeric(_), FeatureValue::Categorical(_))
            | (FeatureReference::Categorical(_), FeatureValue::Numeric(_)) => Slot::Invalid,
        }
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Window> {
        // A panic while holding the lock can only interrupt an increment; the counts stay usable.
        self.shards[shard % SHARDS].0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn drift(&self, epoch: u64, config: &DriftConfig) -> FeatureDrift {
        let mut totals = Totals::new(self.histogram.len());
        for shard in 0..SHARDS {
            self.lock(shard).add_to(epoch, &mut totals);
        }
        let Totals { counts, missing, invalid } = totals;
        let n: u64 = counts.iter().sum();
        let (kind, missing, unseen) = match &self.reference {
            FeatureReference::Numeric(_) => (FeatureKind::Numeric, missing, 0),
            FeatureReference::Categorical(c) => {
                let k = c.categories().len();
                (FeatureKind::Categorical, counts[k + 1], counts[k])
            }
        };
        let min_samples = config.min_samples.max(config.min_samples_per_bucket.saturating_mul(self.occupied));
        let metrics = if n >= min_samples {
            psi(&self.histogram, &counts).zip(js_distance(&self.histogram, &counts))
        } else {
            None
        };
        let verdict = metrics.map_or(Verdict::InsufficientData, |(p, j)| config.thresholds.verdict(p, j));
        FeatureDrift {
            name: self.name.clone(),
            kind,
            n,
            missing,
            unseen,
            invalid,
            min_samples,
            psi: metrics.map(|m| m.0),
            js: metrics.map(|m| m.1),
            verdict,
        }
    }
}

impl Tracked {
    fn new(reference: ReferenceStats, sub_buckets: usize) -> Self {
        let features: Vec<TrackedFeature> =
            reference.features().iter().map(|(name, f)| TrackedFeature::new(name, f.clone(), sub_buckets)).collect();
        let index = features.iter().enumerate().map(|(i, f)| (f.name.clone(), i)).collect();
        let score = reference
            .score()
            .map(|s| TrackedFeature::new(SCORE_NAME, FeatureReference::Numeric(s.clone()), sub_buckets));
        Self { reference, features, index, score }
    }

    fn record(&self, epoch: u64, features: &[(&str, FeatureValue<'_>)], scores: &[f64]) {
        let shard = shard_index();
        for (name, value) in features {
            if let Some(&i) = self.index.get(*name) {
                let feature = &self.features[i];
                let slot = feature.slot(*value);
                feature.lock(shard).add(epoch, [slot]);
            }
        }
        if let Some(score) = self.score.as_ref().filter(|_| !scores.is_empty()) {
            let mut window = score.lock(shard);
            window.add(epoch, scores.iter().map(|&s| score.slot(FeatureValue::Numeric(s))));
        }
    }
}

impl DriftMonitor {
    /// A monitor comparing against `reference`.
    ///
    /// # Errors
    /// An invalid window configuration.
    pub fn new(reference: ReferenceStats, config: DriftConfig) -> Result<Self, ConfigError> {
        let slice_ms = slice_ms(&config)?;
        Ok(Self::validated(Some(reference), config, slice_ms))
    }

    /// A monitor for a model without reference statistics: the first `config.capture_requests`
    /// requests are captured (see [`ReferenceCapture`] for the rules) and frozen into the
    /// reference, then monitoring starts with an empty window (the captured requests are the
    /// reference, not part of the window).
    ///
    /// # Errors
    /// An invalid window configuration.
    pub fn capturing(config: DriftConfig) -> Result<Self, ConfigError> {
        let slice_ms = slice_ms(&config)?;
        Ok(Self::validated(None, config, slice_ms))
    }

    /// A monitor against `reference`, or capturing one when it is `None`, for a configuration
    /// already checked by [`slice_ms`] (which gave `slice_ms`).
    pub(crate) fn validated(reference: Option<ReferenceStats>, config: DriftConfig, slice_ms: u64) -> Self {
        let tracked = OnceLock::new();
        let capture = match reference {
            Some(reference) => {
                let _ = tracked.set(Tracked::new(reference, config.sub_buckets));
                None
            }
            None => Some(ReferenceCapture::new(config.capture_requests)),
        };
        Self { config, slice_ms, tracked, capture: Mutex::new(capture) }
    }

    /// The configuration.
    pub fn config(&self) -> &DriftConfig {
        &self.config
    }

    /// The reference statistics; `None` while they are being captured.
    pub fn reference(&self) -> Option<&ReferenceStats> {
        self.tracked.get().map(|t| &t.reference)
    }

    /// Records one request at wall-clock time (milliseconds since the Unix epoch); see
    /// [`Self::record_at`].
    pub fn record(&self, features: &[(&str, FeatureValue<'_>)], scores: &[f64]) {
        self.record_at(now_ms(), features, scores);
    }

    /// Records one request at time `t_ms`: its feature values by name and its scores (each
    /// score is one observation of the score distribution). Names the reference does not know
    /// are ignored. Times may arrive slightly out of order; an observation older than the whole
    /// window is dropped.
    pub fn record_at(&self, t_ms: u64, features: &[(&str, FeatureValue<'_>)], scores: &[f64]) {
        let epoch = t_ms / self.slice_ms;
        if let Some(tracked) = self.tracked.get() {
            tracked.record(epoch, features, scores);
            return;
        }
        let mut capture = self.capture.lock().unwrap_or_else(PoisonError::into_inner);
        // The capture may have completed while this thread waited for the lock.
        if let Some(tracked) = self.tracked.get() {
            drop(capture);
            tracked.record(epoch, features, scores);
            return;
        }
        let complete = capture.as_mut().is_some_and(|c| c.observe(features, scores));
        if complete && let Some(done) = capture.take() {
            // Set while the capture lock is held, so no record falls between capture and window.
            let _ = self.tracked.set(Tracked::new(done.finish(), self.config.sub_buckets));
        }
    }

    /// Drift at wall-clock time; see [`Self::snapshot_at`].
    pub fn snapshot(&self) -> DriftSnapshot {
        self.snapshot_at(now_ms())
    }

    /// Drift of every reference feature and of the score over the window ending at `t_ms`.
    pub fn snapshot_at(&self, t_ms: u64) -> DriftSnapshot {
        let epoch = t_ms / self.slice_ms;
        let mut snapshot = DriftSnapshot {
            at_ms: t_ms,
            window_ms: self.config.window_ms,
            capturing: None,
            features: Vec::new(),
            score: None,
        };
        match self.tracked.get() {
            Some(tracked) => {
                snapshot.features = tracked.features.iter().map(|f| f.drift(epoch, &self.config)).collect();
                snapshot.score = tracked.score.as_ref().map(|s| s.drift(epoch, &self.config));
            }
            None => {
                let capture = self.capture.lock().unwrap_or_else(PoisonError::into_inner);
                snapshot.capturing =
                    capture.as_ref().map(|c| CaptureProgress { requests: c.requests(), target: c.target() });
            }
        }
        snapshot
    }
}

/// The length of one sub-bucket, or why the window configuration is invalid.
pub(crate) fn slice_ms(config: &DriftConfig) -> Result<u64, ConfigError> {
    if config.sub_buckets == 0 {
        return Err(ConfigError::NoSubBuckets);
    }
    let subs = config.sub_buckets as u64;
    if config.window_ms == 0 || !config.window_ms.is_multiple_of(subs) {
        return Err(ConfigError::WindowNotDivisible { window_ms: config.window_ms, sub_buckets: config.sub_buckets });
    }
    Ok(config.window_ms / subs)
}

/// Wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
