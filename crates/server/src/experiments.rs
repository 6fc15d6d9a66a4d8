//! Online experiment metrics and drift, as the recommendation API feeds them: every served
//! recommendation and every joined feedback event is counted per deployment arm
//! (`recserve_online::OnlineMetrics`). Drift monitors (`recserve_drift::DriftHub`, one per
//! model version) see sampled inputs of every model: on `/v1/recommend` the user tower's input
//! row and the ranker features and score of each shown item (named as in the feature spec); on
//! V2 inference, each row of a 2-D FP32 input `[n, w]` as features `<input>[<i>]` with the
//! model's one-score-per-row FP32 output, if it has one, as the score.
//!
//! Both are exposed three ways: as metric families on `/metrics` (so the series store, rules and
//! Prometheus see them), as JSON at `/api/v1/experiments` and `/api/v1/drift` (the dashboard's
//! Deployments page), and through [`Experiments`] for tests.
//!
//! Metric families (label values are pipeline names from the config, model names and versions
//! of the repository, arm names of deployments, feature names of the reference statistics: all
//! bounded sets the server owns):
//! - `recserve_online_requests_total`, `recserve_online_impressions_total`,
//!   `recserve_online_events_total{event}`, `recserve_online_revenue_total`
//!   (`pipeline`, `model`, `arm`, `version`);
//! - over the sliding window: `recserve_online_ctr`, `recserve_online_conversion_rate`,
//!   `recserve_online_window_impressions`, and for each non-control arm
//!   `recserve_online_ctr_lift` (relative to the control arm), `recserve_online_ctr_p_value`
//!   (two-proportion z-test) and `recserve_online_ctr_significant` (1 when the difference is
//!   significant with enough samples);
//! - `recserve_deployment_traffic_ratio{model, version, arm, role}`: each arm's share of
//!   traffic, `role` = `control` (the first arm) or `candidate`;
//! - `recserve_drift_psi`, `recserve_drift_js_distance`, `recserve_drift_samples`,
//!   `recserve_drift_verdict` (0 ok, 1 moderate, 2 significant; absent below the minimum sample
//!   size) with `model`, `version`, `feature` (the output score is `feature="score"`).

use crate::AppState;
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use recserve_drift::{DriftConfig, DriftHub, FeatureDrift, ReferenceLookup, Verdict};
use recserve_engine::{Tensor, TensorData};
use recserve_online::{ArmKey, Event, OnlineConfig, OnlineMetrics};
use recserve_pipeline::{FeatureValue, ModelObserver};
use recserve_serving::{ModelRegistry, NamedTensor};
use recserve_telemetry::metrics::{Collector, FamilySnapshot, MetricKind, SeriesSnapshot, SnapshotValue};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The `feature` label value of the output score's drift.
pub use recserve_drift::SCORE_NAME as SCORE_FEATURE;

/// Settings of [`Experiments`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentsConfig {
    pub online: OnlineConfig,
    pub drift: DriftConfig,
    /// Share of requests (recommendations and V2 inferences) that feed the drift monitors (0–1).
    pub drift_sample_rate: f64,
}

impl Default for ExperimentsConfig {
    fn default() -> Self {
        // A captured reference freezes this many shown items (a request shows ~20).
        let drift = DriftConfig { capture_requests: 20_000, ..DriftConfig::default() };
        ExperimentsConfig { online: OnlineConfig::default(), drift, drift_sample_rate: 0.25 }
    }
}

/// Online metrics per arm and drift per model version.
pub struct Experiments {
    online: OnlineMetrics,
    drift: DriftHub,
    registry: Arc<ModelRegistry>,
    /// Every `sample_every`-th request is observed for drift (0: none).
    sample_every: u64,
    requests: AtomicU64,
}

impl std::fmt::Debug for Experiments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Experiments").field("sample_every", &self.sample_every).finish_non_exhaustive()
    }
}

/// Drift reference of a version: `<repo>/<model>/<version>/reference_stats.json`, else the
/// model's `<repo>/<model>/reference_stats.json`; none → the monitor captures its first requests.
pub fn repository_references(root: &Path) -> ReferenceLookup {
    let root = root.to_path_buf();
    Arc::new(move |model: &str, version: u64| {
        let model_dir = root.join(model);
        [model_dir.join(version.to_string()).join("reference_stats.json"), model_dir.join("reference_stats.json")]
            .into_iter()
            .find(|p| p.is_file())
            .and_then(recserve_drift::shipped_reference)
    })
}

impl Experiments {
    /// Experiments over `registry`'s versions, with drift references from its repository.
    pub fn new(registry: Arc<ModelRegistry>, config: ExperimentsConfig) -> Result<Experiments, String> {
        let online = OnlineMetrics::new(config.online).map_err(|e| format!("online metrics: {e}"))?;
        let references = repository_references(registry.repository().root());
        let drift = DriftHub::new(config.drift, references).map_err(|e| format!("drift: {e}"))?;
        let rate = config.drift_sample_rate;
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("drift sample rate must be between 0 and 1, got {rate}"));
        }
        let sample_every = if rate <= 0.0 { 0 } else { (1.0 / rate).round().max(1.0) as u64 };
        Ok(Experiments { online, drift, registry, sample_every, requests: AtomicU64::new(0) })
    }

    pub fn online(&self) -> &OnlineMetrics {
        &self.online
    }

    pub fn drift(&self) -> &DriftHub {
        &self.drift
    }

    /// The control arm of `model`'s deployment (its first arm), `stable` without one.
    fn control_arm(&self, model: &str) -> Option<String> {
        Some(
            self.registry
                .deployment(model)
                .and_then(|d| d.arms.first().map(|a| a.name.clone()))
                .unwrap_or_else(|| self.online.config().control_arm.clone()),
        )
    }

    /// The window snapshot with every arm compared to its deployment's control arm.
    pub fn online_snapshot(&self) -> recserve_online::OnlineSnapshot {
        let now = recserve_telemetry::store::now_ms().max(0) as u64;
        self.online.snapshot_at_with_control(now, |_, model| self.control_arm(model))
    }

    /// One recommendation served: `arms` are the (pipeline, model, arm, version) it ran.
    pub fn record_request(&self, arms: &[ArmKey], shown: u64) {
        let now = recserve_telemetry::store::now_ms().max(0) as u64;
        for key in arms {
            self.online.record_request(key, now, shown);
        }
    }

    /// One feedback event joined to its request.
    pub fn record_event(&self, arms: &[ArmKey], event: Event, revenue: f64) {
        let now = recserve_telemetry::store::now_ms().max(0) as u64;
        for key in arms {
            self.online.record_event(key, event, revenue, now);
        }
    }
}

impl Experiments {
    /// Whether this request is sampled for drift.
    fn sampled(&self) -> bool {
        self.sample_every != 0 && self.requests.fetch_add(1, Ordering::Relaxed).is_multiple_of(self.sample_every)
    }

    /// For a sampled V2 request, what drift needs of its inputs, copied before the inference
    /// consumes them; `None` when the request is not sampled or has no 2-D FP32 input.
    pub fn v2_sample(&self, inputs: &[NamedTensor]) -> Option<V2Sample> {
        // Decided first: the copy is made only for the sampled share of requests.
        if !self.sampled() {
            return None;
        }
        V2Sample::of(inputs)
    }

    /// Records a sampled V2 request that `version` of `model` answered with `outputs`.
    pub fn observe_v2(&self, model: &str, version: u64, sample: &V2Sample, outputs: &[Tensor]) {
        let scores = row_scores(outputs, sample.rows);
        let monitor = self.drift.monitor(model, version);
        let mut values: Vec<(&str, FeatureValue<'_>)> = Vec::with_capacity(sample.names.len());
        for row in 0..sample.rows.min(V2Sample::MAX_ROWS) {
            values.clear();
            let mut first_name = 0;
            for (width, data) in &sample.inputs {
                let cells = &data[row * width..(row + 1) * width];
                let names = &sample.names[first_name..first_name + width];
                values.extend(names.iter().zip(cells).map(|(n, &x)| (n.as_str(), FeatureValue::Numeric(f64::from(x)))));
                first_name += width;
            }
            let score = scores.map(|s| [f64::from(s[row])]);
            monitor.record(&values, score.as_ref().map_or(&[][..], |s| &s[..]));
        }
    }
}

/// The 2-D FP32 inputs of a sampled V2 request: one drift observation per row (at most
/// [`Self::MAX_ROWS`] of a batch), one numeric feature `<input>[<i>]` per column.
#[derive(Debug)]
pub struct V2Sample {
    rows: usize,
    /// Feature names, input by input, column by column.
    names: Vec<String>,
    /// (width, row-major values of the first `MAX_ROWS` rows) per input.
    inputs: Vec<(usize, Vec<f32>)>,
}

impl V2Sample {
    /// Rows of one request observed (the rest of a large batch is not).
    pub const MAX_ROWS: usize = 64;
    /// Inputs wider than this are not feature vectors drift can follow column by column.
    pub const MAX_COLUMNS: usize = 256;

    fn of(inputs: &[NamedTensor]) -> Option<V2Sample> {
        let mut sample = V2Sample { rows: usize::MAX, names: Vec::new(), inputs: Vec::new() };
        for input in inputs {
            let (TensorData::F32(data), [rows, width]) = (&input.tensor.data, input.tensor.shape.as_slice()) else {
                continue;
            };
            if *width == 0 || *width > Self::MAX_COLUMNS || *rows == 0 {
                continue;
            }
            sample.rows = sample.rows.min(*rows);
            let kept = (*rows).min(Self::MAX_ROWS) * width;
            sample.inputs.push((*width, data[..kept.min(data.len())].to_vec()));
            sample.names.extend((0..*width).map(|i| format!("{}[{i}]", input.name)));
        }
        if sample.inputs.is_empty() {
            return None;
        }
        sample.rows = sample.rows.min(Self::MAX_ROWS);
        // A malformed tensor (fewer values than its shape) is the inference's to refuse.
        if sample.inputs.iter().any(|(w, d)| d.len() < sample.rows * w) {
            return None;
        }
        Some(sample)
    }
}

/// The first FP32 output holding one value per row (`[n]` or `[n, 1]`), as the rows' scores.
fn row_scores(outputs: &[Tensor], rows: usize) -> Option<&[f32]> {
    outputs.iter().find_map(|t| match (&t.data, t.shape.as_slice()) {
        (TensorData::F32(v), [n] | [n, 1]) if *n >= rows && v.len() >= rows => Some(&v[..]),
        _ => None,
    })
}

impl ModelObserver for Experiments {
    fn wants(&self) -> bool {
        self.sampled()
    }

    fn observe(&self, model: &str, version: &str, features: &[(&str, FeatureValue<'_>)], scores: &[f64]) {
        let Ok(v) = version.parse::<u64>() else { return };
        self.drift.monitor(model, v).record(features, scores);
    }
}

fn verdict_value(v: Verdict) -> Option<f64> {
    match v {
        Verdict::Ok => Some(0.0),
        Verdict::Moderate => Some(1.0),
        Verdict::Significant => Some(2.0),
        Verdict::InsufficientData => None,
    }
}

/// A family of gauges or counters built series by series.
struct Family {
    snapshot: FamilySnapshot,
}

impl Family {
    fn new(name: &str, help: &str, kind: MetricKind) -> Family {
        Family { snapshot: FamilySnapshot { name: name.into(), help: help.into(), kind, series: Vec::new() } }
    }

    fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.snapshot.series.push(SeriesSnapshot { labels, value: SnapshotValue::Scalar(value) });
    }
}

impl Collector for Experiments {
    fn collect(&self, out: &mut Vec<FamilySnapshot>) {
        use MetricKind::{Counter, Gauge};
        // A retired (rolled-back) version never serves again: its drift series end here.
        self.drift
            .retain(|model, version| !self.registry.deployment(model).is_some_and(|d| d.retired.contains(&version)));
        let online = self.online_snapshot();
        let mut requests = Family::new("recserve_online_requests_total", "Recommendations served per arm.", Counter);
        let mut impressions =
            Family::new("recserve_online_impressions_total", "Items shown per arm (the CTR denominator).", Counter);
        let mut events = Family::new(
            "recserve_online_events_total",
            "Feedback events joined to the request that showed the item, per arm.",
            Counter,
        );
        let mut revenue =
            Family::new("recserve_online_revenue_total", "Price of the purchased items, per arm.", Counter);
        let mut ctr = Family::new("recserve_online_ctr", "Clicks per shown item over the window.", Gauge);
        let mut conversion =
            Family::new("recserve_online_conversion_rate", "Purchases per shown item over the window.", Gauge);
        let mut window = Family::new("recserve_online_window_impressions", "Items shown over the window.", Gauge);
        let mut lift = Family::new(
            "recserve_online_ctr_lift",
            "CTR of the arm relative to its control arm over the window, minus 1.",
            Gauge,
        );
        let mut p_value = Family::new(
            "recserve_online_ctr_p_value",
            "Two-proportion z-test p-value of the arm's CTR against the control arm's.",
            Gauge,
        );
        let mut significant = Family::new(
            "recserve_online_ctr_significant",
            "1 when the CTR difference to the control arm is significant with enough impressions.",
            Gauge,
        );
        for a in &online.arms {
            let k = &a.key;
            let l = [("pipeline", k.pipeline.as_str()), ("model", &k.model), ("arm", &k.arm), ("version", &k.version)];
            requests.push(&l, a.totals.requests as f64);
            impressions.push(&l, a.totals.impressions as f64);
            revenue.push(&l, a.totals.revenue);
            for (event, n) in [
                (Event::Impression, a.totals.impression_events),
                (Event::Click, a.totals.clicks),
                (Event::AddToCart, a.totals.add_to_carts),
                (Event::Purchase, a.totals.purchases),
            ] {
                let mut le = l.to_vec();
                le.push(("event", event.as_str()));
                events.push(&le, n as f64);
            }
            window.push(&l, a.window.impressions as f64);
            if let Some(c) = a.ctr {
                ctr.push(&l, c);
            }
            if let Some(c) = a.conversion {
                conversion.push(&l, c);
            }
            if let Some(cmp) = &a.vs_control {
                if let Some(x) = cmp.ctr_lift {
                    lift.push(&l, x);
                }
                if let Some(p) = cmp.p_value {
                    p_value.push(&l, p);
                }
                significant.push(&l, if cmp.significant { 1.0 } else { 0.0 });
            }
        }
        let mut psi = Family::new("recserve_drift_psi", "Population stability index against the reference.", Gauge);
        let mut js = Family::new("recserve_drift_js_distance", "Jensen–Shannon distance against the reference.", Gauge);
        let mut samples = Family::new("recserve_drift_samples", "Observations in the drift window.", Gauge);
        let mut verdict = Family::new(
            "recserve_drift_verdict",
            "0 ok, 1 moderate, 2 significant drift (absent below the minimum sample size).",
            Gauge,
        );
        for vd in self.drift.snapshots() {
            let version = vd.version.to_string();
            let mut put = |name: &str, f: &FeatureDrift| {
                let l = [("model", vd.model.as_str()), ("version", &version), ("feature", name)];
                samples.push(&l, f.n as f64);
                if let Some(x) = f.psi {
                    psi.push(&l, x);
                }
                if let Some(x) = f.js {
                    js.push(&l, x);
                }
                if let Some(x) = verdict_value(f.verdict) {
                    verdict.push(&l, x);
                }
            };
            for f in &vd.snapshot.features {
                put(&f.name, f);
            }
            if let Some(score) = &vd.snapshot.score {
                put(SCORE_FEATURE, score);
            }
        }
        let mut traffic = Family::new(
            "recserve_deployment_traffic_ratio",
            "Share of a model's traffic each deployment arm takes; role is control (the first arm) or candidate.",
            Gauge,
        );
        for (model, d) in self.registry.deployments().iter() {
            for (i, arm) in d.arms.iter().enumerate() {
                let version = arm.version.to_string();
                let role = if i == 0 { "control" } else { "candidate" };
                let l = [("model", model.as_str()), ("version", &version), ("arm", &arm.name), ("role", role)];
                traffic.push(&l, f64::from(arm.weight) / 10_000.0);
            }
        }
        for f in [
            traffic,
            requests,
            impressions,
            events,
            revenue,
            ctr,
            conversion,
            window,
            lift,
            p_value,
            significant,
            psi,
            js,
            samples,
            verdict,
        ] {
            out.push(f.snapshot);
        }
    }
}

/// Registers `experiments` as a collector of `registry` (its families appear on `/metrics` and
/// in the series store).
pub fn register_collector(registry: &recserve_telemetry::metrics::Registry, experiments: Arc<Experiments>) {
    struct Shared(Arc<Experiments>);
    impl Collector for Shared {
        fn collect(&self, out: &mut Vec<FamilySnapshot>) {
            self.0.collect(out);
        }
    }
    registry.register_collector(Box::new(Shared(experiments)));
}

/// The server's experiments: its own, else its recommendation API's.
pub fn of(state: &AppState) -> Option<&Arc<Experiments>> {
    state.experiments.as_ref().or_else(|| state.shop.as_ref().map(|s| s.experiments()))
}

fn experiments(state: &AppState) -> Result<&Arc<Experiments>, ApiError> {
    of(state)
        .ok_or_else(|| ApiError::NotFound("this server was started without online metrics and drift monitoring".into()))
}

/// `GET /api/v1/experiments`: every arm's window and totals with its comparison to the control.
pub async fn online(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = experiments(&state)?.online_snapshot();
    Ok(Json(serde_json::json!({"status": "success", "data": snapshot})).into_response())
}

/// `GET /api/v1/drift/reference?model=M&version=V`: the reference a version's drift is measured
/// against (shipped, or captured from its first observations), in the `reference_stats.json`
/// format, ready to ship with the model.
pub async fn reference(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let hub = &experiments(&state)?.drift;
    let model = q.get("model").ok_or_else(|| ApiError::BadRequest("parameter `model` is missing".into()))?;
    let version = q
        .get("version")
        .ok_or_else(|| ApiError::BadRequest("parameter `version` is missing".into()))?
        .parse::<u64>()
        .map_err(|_| ApiError::BadRequest("parameter `version` must be a version number".into()))?;
    let monitor = hub.get(model, version).ok_or_else(|| {
        ApiError::NotFound(format!(
            "version {version} of model '{model}' has no drift monitor: it has not ranked any sampled request yet"
        ))
    })?;
    let reference = monitor.reference().ok_or_else(|| {
        let progress = monitor.snapshot().capturing.map(|c| format!(" ({} of {} observations)", c.requests, c.target));
        ApiError::Unavailable(format!(
            "version {version} of model '{model}' is still capturing its reference{}",
            progress.unwrap_or_default()
        ))
    })?;
    let json = reference.to_json().map_err(|e| ApiError::Internal(format!("cannot encode the reference: {e}")))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// `GET /api/v1/drift`: every monitored model version's drift per feature and score.
pub async fn drift(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshots = experiments(&state)?.drift.snapshots();
    Ok(Json(serde_json::json!({"status": "success", "data": snapshots})).into_response())
}
