//! Exact latency percentiles beside the Prometheus bucket estimate.
//!
//! This module owns [`percentiles`]: for every (model, version, pipeline) target it reports the
//! exact p50, p95, p99 and max of the end-to-end latency from the target's mergeable hdrhistogram
//! window ([`crate::ModelTarget::window_summary`]), and the same quantiles as Prometheus would
//! estimate them from `recserve_request_duration_seconds_bucket` —
//! `histogram_quantile(q, sum by (model, version, pipeline, le) (rate(...[window])))` — evaluated
//! by the embedded PromQL evaluator over the series store, so users see how far the bucket
//! interpolation is from the truth. The exact figures cover the hdr window (one to two
//! [`crate::ServingMetricsConfig::latency_window`] lengths, 60 s by default), the estimate covers
//! the requested window; both are reported.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::promql::{Sample, instant_query};
use crate::serving::{ServingMetrics, names};
use crate::store::SeriesStore;

/// The quantiles reported, with their JSON names.
pub const QUANTILES: [(&str, f64); 4] = [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)];

/// Latencies in seconds (`None` when there is no data).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quantiles {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest (exact) or upper bound of the highest non-empty bucket (estimate).
    pub max: Option<f64>,
}

/// One target's exact and estimated latencies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetPercentiles {
    /// `model` label.
    pub model: String,
    /// `version` label.
    pub version: String,
    /// `pipeline` label.
    pub pipeline: String,
    /// Requests in the exact window.
    pub count: u64,
    /// Exact, from the hdrhistogram window.
    pub exact: Quantiles,
    /// Prometheus' `histogram_quantile` over the bucket rates of the requested window.
    pub bucket_estimate: Quantiles,
}

/// The answer of `/api/v1/percentiles`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PercentilesReport {
    /// Window of the bucket estimate, in seconds.
    pub window_seconds: f64,
    /// Period of the exact window, in seconds (the exact figures cover one to two of these);
    /// `None` when no exact window is kept.
    pub exact_window_seconds: Option<f64>,
    /// Unix time of the evaluation, in seconds.
    pub time: f64,
    /// Targets sorted by (model, version, pipeline).
    pub targets: Vec<TargetPercentiles>,
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

fn estimates(store: &SeriesStore, q: f64, window: Duration, at_ms: i64) -> Vec<Sample> {
    let query = format!(
        "histogram_quantile({q}, sum by (model, version, pipeline, le) (rate({}_bucket[{}ms])))",
        names::REQUEST_DURATION,
        window.as_millis().max(1)
    );
    match instant_query(store, &query, at_ms).and_then(|v| v.into_vector()) {
        Ok(v) => v,
        Err(err) => {
            tracing::debug!(%err, query, "percentile estimate query failed");
            Vec::new()
        }
    }
}

/// Exact and bucket-estimated latency quantiles of every target of `serving`, the estimate taken
/// over `window` ending at `at_ms` in `store`.
pub fn percentiles(serving: &ServingMetrics, store: &SeriesStore, at_ms: i64, window: Duration) -> PercentilesReport {
    type Key = (String, String, String);
    let mut estimated: HashMap<Key, Quantiles> = HashMap::new();
    for (name, q) in QUANTILES {
        for s in estimates(store, q, window, at_ms) {
            let label = |n: &str| s.labels.get(n).unwrap_or_default().to_string();
            let e = estimated.entry((label("model"), label("version"), label("pipeline"))).or_default();
            let v = s.value.is_finite().then_some(s.value);
            match name {
                "p50" => e.p50 = v,
                "p95" => e.p95 = v,
                "p99" => e.p99 = v,
                _ => e.max = v,
            }
        }
    }
    let mut exact_window_seconds = None;
    let targets = serving
        .targets()
        .iter()
        .map(|t| {
            let (model, version, pipeline) = t.labels();
            exact_window_seconds = exact_window_seconds.or(t.window_period().map(|p| p.as_secs_f64()));
            let w = t.window_summary().unwrap_or_default();
            let key = (model.to_string(), version.to_string(), pipeline.to_string());
            TargetPercentiles {
                bucket_estimate: estimated.get(&key).copied().unwrap_or_default(),
                model: key.0,
                version: key.1,
                pipeline: key.2,
                count: w.count,
                exact: Quantiles { p50: secs(w.p50), p95: secs(w.p95), p99: secs(w.p99), max: secs(w.max) },
            }
        })
        .collect();
    PercentilesReport {
        window_seconds: window.as_secs_f64(),
        exact_window_seconds,
        time: at_ms as f64 / 1000.0,
        targets,
    }
}
