//! recserve's drift detection: the distribution of every model input feature and of the output
//! score over a sliding window, compared with the model's reference statistics by the population
//! stability index (PSI) and the Jensen–Shannon distance, with a verdict only above a minimum
//! sample size.
//!
//! - [`reference`](mod@reference): [`ReferenceStats`], the `reference_stats.json` format shipped with a model
//!   (numeric features in fixed bins, categorical ones by category, the score), with validation.
//! - [`capture`]: [`ReferenceCapture`], freezing the first N requests into reference statistics
//!   for a model shipped without them.
//! - [`monitor`]: [`DriftMonitor`], the per-model sliding windows recorded from request handlers,
//!   and [`DriftSnapshot`] with PSI, JS, sample size and [`Verdict`] per feature.
//! - [`hub`]: [`DriftHub`], the monitors of every model version the server serves, created on
//!   first use against the shipped reference or capturing one, and [`VersionDrift`] snapshots.
//! - [`metrics`]: the two distances and their conventions.
//!
//! # Defaults
//!
//! Window 10 minutes in 10 one-minute sub-buckets; minimum sample size 100 and at least 50 per
//! non-empty reference bucket (500 for a 10-bin feature: below that, sampling noise alone crosses
//! the thresholds, see [`DriftConfig::min_samples_per_bucket`]); verdicts
//! `Significant` at PSI ≥ 0.2, `Moderate` at PSI ≥ 0.1 or JS ≥ 0.1, otherwise `Ok` (REFERENCE
//! "Drift defaults"); capture of the first 1000 requests when there is no reference file.
//!
//! # Usage
//!
//! ```
//! use recserve_drift::{DriftConfig, DriftMonitor, FeatureValue, ReferenceStats, Verdict};
//!
//! let reference = ReferenceStats::from_json(r#"{
//!     "version": 1,
//!     "features": {
//!         "price":  {"kind": "numeric", "bins": [null, 10.0, 20.0, null], "counts": [50, 30, 20], "missing": 0},
//!         "device": {"kind": "categorical", "counts": {"desktop": 40, "mobile": 60}, "missing": 0}
//!     },
//!     "score": {"kind": "numeric", "bins": [null, 0.5, null], "counts": [70, 30], "missing": 0}
//! }"#)?;
//! // Or ReferenceStats::load("models/ranker/reference_stats.json")?, or
//! // DriftMonitor::capturing(config) for a model without one.
//! let monitor = DriftMonitor::new(reference, DriftConfig::default())?;
//!
//! // In the request handler (times in ms; `record` uses the wall clock):
//! for i in 0..200u64 {
//!     let price = if i % 2 == 0 { 25.0 } else { 5.0 }; // half the prices above 20: drift
//!     let device = if i % 5 < 2 { "desktop" } else { "mobile" };
//!     monitor.record_at(
//!         1_000 + i,
//!         &[("price", FeatureValue::Numeric(price)), ("device", FeatureValue::Categorical(device))],
//!         &[0.2, 0.9],
//!     );
//! }
//!
//! let snapshot = monitor.snapshot_at(2_000);
//! let price = &snapshot.features.iter().find(|f| f.name == "price").expect("price");
//! assert_eq!(price.n, 200);
//! assert_eq!(price.verdict, Verdict::Significant);
//! let device = &snapshot.features.iter().find(|f| f.name == "device").expect("device");
//! assert_eq!(device.verdict, Verdict::Ok);
//! assert!(device.psi.expect("enough samples") < 1e-9);
//! let score = snapshot.score.as_ref().expect("score");
//! assert_eq!(score.n, 400);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod capture;
pub mod hub;
pub mod metrics;
pub mod monitor;
pub mod reference;
pub mod ring;
mod window;

pub use capture::{DEFAULT_CAPTURE_REQUESTS, FeatureValue, ReferenceCapture};
pub use hub::{DriftHub, ReferenceLookup, ReferenceSource, VersionDrift, shipped_reference};
pub use metrics::{PSI_FLOOR, js_distance, psi};
pub use monitor::now_ms;
pub use monitor::{
    CaptureProgress, ConfigError, DriftConfig, DriftMonitor, DriftSnapshot, FeatureDrift, SCORE_NAME, Thresholds,
    Verdict,
};
pub use reference::{
    CategoricalReference, FeatureKind, FeatureReference, NumericReference, OTHER_CATEGORY, ReferenceError,
    ReferenceStats, StatsProblem,
};
