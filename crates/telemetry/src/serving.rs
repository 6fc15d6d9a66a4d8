//! The serving metrics: what the server records per request, per stage and per batch.
//!
//! This module owns [`ServingMetrics`] (the `recserve_*` request families and the bounded
//! model/version/pipeline names), [`ModelTarget`] (every handle for one model version and
//! pipeline, resolved once), [`RequestObservation`] (the one observation path of a request: each
//! stage recorded at most once, the outcome and end-to-end latency recorded exactly once, even when
//! the request is dropped) and [`LatencyWindow`] (exact percentiles over a recent window with
//! hdrhistogram).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram as Hdr;

use crate::error::MetricsError;
use crate::labels::{BoundedNames, Outcome, Stage};
use crate::metrics::{
    BATCH_SIZE_BUCKETS, Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramVec, LATENCY_BUCKETS, Registry,
};

/// The `pipeline` label value of a request that runs a model directly (Open Inference Protocol).
pub const NO_PIPELINE: &str = "none";

/// Metric names of the serving families.
pub mod names {
    /// Requests by outcome.
    pub const REQUESTS: &str = "recserve_requests_total";
    /// End-to-end request latency.
    pub const REQUEST_DURATION: &str = "recserve_request_duration_seconds";
    /// Latency per stage.
    pub const STAGE_DURATION: &str = "recserve_stage_duration_seconds";
    /// Rows per executed batch.
    pub const BATCH_SIZE: &str = "recserve_batch_size";
    /// Requests waiting in the batcher queue.
    pub const QUEUE_DEPTH: &str = "recserve_queue_depth";
    /// Capacity of the batcher queue.
    pub const QUEUE_CAPACITY: &str = "recserve_queue_capacity";
    /// Requests being served.
    pub const IN_FLIGHT: &str = "recserve_in_flight_requests";
    /// Memory attributed to a loaded model version.
    pub const MODEL_MEMORY: &str = "recserve_model_memory_bytes";
}

/// Caps and options of [`ServingMetrics`].
#[derive(Debug, Clone)]
pub struct ServingMetricsConfig {
    /// Distinct model names before new ones map to `other`.
    pub max_models: usize,
    /// Distinct version labels before new ones map to `other`.
    pub max_versions: usize,
    /// Distinct pipeline names before new ones map to `other`.
    pub max_pipelines: usize,
    /// Length of the exact-percentile window per target (`None`: no window).
    pub latency_window: Option<Duration>,
}

impl Default for ServingMetricsConfig {
    fn default() -> Self {
        Self { max_models: 64, max_versions: 256, max_pipelines: 32, latency_window: Some(Duration::from_secs(60)) }
    }
}

/// The serving families and the bounded names.
#[derive(Debug)]
pub struct ServingMetrics {
    requests: CounterVec,
    request_duration: HistogramVec,
    stage_duration: HistogramVec,
    batch_size: HistogramVec,
    queue_depth: GaugeVec,
    queue_capacity: GaugeVec,
    in_flight: GaugeVec,
    model_memory: GaugeVec,
    models: BoundedNames,
    versions: BoundedNames,
    pipelines: BoundedNames,
    latency_window: Option<Duration>,
    targets: RwLock<HashMap<(String, String, String), Arc<ModelTarget>>>,
}

impl ServingMetrics {
    /// Registers the serving families in `registry`.
    pub fn new(registry: &Registry, config: ServingMetricsConfig) -> Result<Self, MetricsError> {
        let mvp = &["model", "version", "pipeline"];
        let mv = &["model", "version"];
        Ok(Self {
            requests: registry.counter_vec(
                names::REQUESTS,
                "Requests served, by outcome.",
                &["model", "version", "pipeline", "outcome"],
            )?,
            request_duration: registry.histogram_vec(
                names::REQUEST_DURATION,
                "End-to-end request latency in seconds.",
                mvp,
                LATENCY_BUCKETS,
            )?,
            stage_duration: registry.histogram_vec(
                names::STAGE_DURATION,
                "Latency of one pipeline stage of a request in seconds.",
                &["model", "version", "pipeline", "stage"],
                LATENCY_BUCKETS,
            )?,
            batch_size: registry.histogram_vec(
                names::BATCH_SIZE,
                "Rows per batch run by the engine.",
                mv,
                BATCH_SIZE_BUCKETS,
            )?,
            queue_depth: registry.gauge_vec(names::QUEUE_DEPTH, "Requests waiting in the batcher queue.", mv)?,
            queue_capacity: registry.gauge_vec(names::QUEUE_CAPACITY, "Capacity of the batcher queue.", mv)?,
            in_flight: registry.gauge_vec(names::IN_FLIGHT, "Requests currently being served.", mvp)?,
            model_memory: registry.gauge_vec(
                names::MODEL_MEMORY,
                "Memory attributed to a loaded model version in bytes.",
                mv,
            )?,
            models: BoundedNames::new("model", config.max_models),
            versions: BoundedNames::new("version", config.max_versions),
            pipelines: BoundedNames::new("pipeline", config.max_pipelines),
            latency_window: config.latency_window,
            targets: RwLock::new(HashMap::new()),
        })
    }

    /// The handles for one model version under one pipeline (use [`NO_PIPELINE`] for direct model
    /// calls). Cold path: call once when a version is loaded and keep the `Arc`. Names beyond
    /// the caps (or not matching `[A-Za-z0-9_.:-]{1,128}`) are recorded as `other`.
    pub fn target(&self, model: &str, version: &str, pipeline: &str) -> Result<Arc<ModelTarget>, MetricsError> {
        let key = (model.to_string(), version.to_string(), pipeline.to_string());
        if let Some(t) = self.targets.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(t.clone());
        }
        let m = self.models.register_or_overflow(model);
        let v = self.versions.register_or_overflow(version);
        let p = self.pipelines.register_or_overflow(pipeline);
        let lv = [m.as_str(), v.as_str(), p.as_str()];
        let outcomes = Outcome::ALL
            .iter()
            .map(|o| self.requests.with(&[&m, &v, &p, o.as_str()]))
            .collect::<Result<Vec<Counter>, _>>()?;
        let stages = Stage::ALL
            .iter()
            .map(|s| self.stage_duration.with(&[&m, &v, &p, s.as_str()]))
            .collect::<Result<Vec<Histogram>, _>>()?;
        let target = Arc::new(ModelTarget {
            model: m.clone(),
            version: v.clone(),
            pipeline: p.clone(),
            outcomes,
            duration: self.request_duration.with(&lv)?,
            stages,
            in_flight: self.in_flight.with(&lv)?,
            batch_size: self.batch_size.with(&[&m, &v])?,
            queue_depth: self.queue_depth.with(&[&m, &v])?,
            queue_capacity: self.queue_capacity.with(&[&m, &v])?,
            model_memory: self.model_memory.with(&[&m, &v])?,
            window: self.latency_window.map(LatencyWindow::new),
        });
        let mut targets = self.targets.write().unwrap_or_else(|e| e.into_inner());
        Ok(targets.entry(key).or_insert(target).clone())
    }

    /// Every target resolved so far, sorted by (model, version, pipeline).
    pub fn targets(&self) -> Vec<Arc<ModelTarget>> {
        let targets = self.targets.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<Arc<ModelTarget>> = targets.values().cloned().collect();
        all.sort_by(|a, b| a.labels().cmp(&b.labels()));
        all.dedup_by(|a, b| Arc::ptr_eq(a, b));
        all
    }

    /// Number of distinct model names registered (for tests and the dashboard).
    pub fn registered_models(&self) -> usize {
        self.models.len()
    }
}

/// Every handle for one (model, version, pipeline), resolved once.
#[derive(Debug)]
pub struct ModelTarget {
    model: String,
    version: String,
    pipeline: String,
    outcomes: Vec<Counter>,
    duration: Histogram,
    stages: Vec<Histogram>,
    in_flight: Gauge,
    batch_size: Histogram,
    queue_depth: Gauge,
    queue_capacity: Gauge,
    model_memory: Gauge,
    window: Option<LatencyWindow>,
}

impl ModelTarget {
    /// Starts observing one request: increments in-flight and starts the end-to-end clock.
    pub fn start(self: &Arc<Self>) -> RequestObservation {
        self.start_at(Instant::now())
    }

    /// Starts observing a request that arrived at `started` (e.g. when the transport took the time).
    pub fn start_at(self: &Arc<Self>, started: Instant) -> RequestObservation {
        self.in_flight.inc();
        RequestObservation { target: self.clone(), started, recorded: 0, finished: false }
    }

    /// Counts a request in flight until the returned guard drops, apart from any observation:
    /// for requests whose labels are known only when they finish (a recommendation's ranker
    /// version), so `recserve_in_flight_requests` still shows them while they run.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.inc();
        InFlight(self.clone())
    }

    /// Records one executed batch of `rows` rows.
    pub fn observe_batch(&self, rows: usize) {
        self.batch_size.observe(rows as f64);
    }

    /// Sets the current queue depth.
    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth.set(depth as f64);
    }

    /// Sets the queue capacity (used by the bottleneck analysis for queue saturation).
    pub fn set_queue_capacity(&self, capacity: usize) {
        self.queue_capacity.set(capacity as f64);
    }

    /// Sets the memory attributed to this model version.
    pub fn set_model_memory(&self, bytes: u64) {
        self.model_memory.set(bytes as f64);
    }

    /// Exact end-to-end latency quantile (0–1) over the recent window, when a window is kept.
    pub fn window_quantile(&self, q: f64) -> Option<Duration> {
        self.window.as_ref()?.quantile(q)
    }

    /// Exact end-to-end latency summary (count, p50, p95, p99, max) over the recent window, when
    /// a window is kept (`count` 0 and no quantiles when nothing was recorded in it).
    pub fn window_summary(&self) -> Option<WindowSummary> {
        self.window.as_ref().map(LatencyWindow::summary)
    }

    /// Length of the exact-percentile window (the summary covers one to two of these).
    pub fn window_period(&self) -> Option<Duration> {
        self.window.as_ref().map(|w| w.period)
    }

    /// The label values actually used (after the caps).
    pub fn labels(&self) -> (&str, &str, &str) {
        (&self.model, &self.version, &self.pipeline)
    }
}

/// A request counted in flight by [`ModelTarget::enter`]; dropping it ends the count.
#[derive(Debug)]
pub struct InFlight(Arc<ModelTarget>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// The observation of one request. Record each stage with [`RequestObservation::stage`] (a
/// second record of the same stage is ignored and reported by the `false` return), then call
/// [`RequestObservation::finish`]. Dropping it unfinished records the outcome `cancelled`.
#[derive(Debug)]
pub struct RequestObservation {
    target: Arc<ModelTarget>,
    started: Instant,
    recorded: u8,
    finished: bool,
}

impl RequestObservation {
    /// Records the duration of `stage`. Returns `false` (and records nothing) when the stage was
    /// already recorded for this request.
    pub fn stage(&mut self, stage: Stage, duration: Duration) -> bool {
        let bit = 1u8 << stage.index();
        if self.recorded & bit != 0 {
            return false;
        }
        self.recorded |= bit;
        self.target.stages[stage.index()].observe_duration(duration);
        true
    }

    /// Whether `stage` was recorded.
    pub fn has_stage(&self, stage: Stage) -> bool {
        self.recorded & (1u8 << stage.index()) != 0
    }

    /// Finishes the request now: records the outcome and the end-to-end latency, decrements
    /// in-flight. Returns the end-to-end latency.
    pub fn finish(self, outcome: Outcome) -> Duration {
        let elapsed = self.started.elapsed();
        self.finish_with_duration(outcome, elapsed);
        elapsed
    }

    /// Finishes with an explicit end-to-end latency (tests, or a clock taken elsewhere).
    pub fn finish_with_duration(mut self, outcome: Outcome, total: Duration) {
        self.record_end(outcome, total);
    }

    fn record_end(&mut self, outcome: Outcome, total: Duration) {
        if self.finished {
            return;
        }
        self.finished = true;
        let t = &self.target;
        t.outcomes[outcome.index()].inc();
        t.duration.observe_duration(total);
        if let Some(w) = &t.window {
            w.record(total);
        }
        t.in_flight.dec();
    }
}

impl Drop for RequestObservation {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        self.record_end(Outcome::Cancelled, elapsed);
    }
}

/// Exact latencies of one [`LatencyWindow`] (all `None` when the window is empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowSummary {
    /// Requests recorded in the window.
    pub count: u64,
    /// Median.
    pub p50: Option<Duration>,
    /// 95th percentile.
    pub p95: Option<Duration>,
    /// 99th percentile.
    pub p99: Option<Duration>,
    /// Largest latency.
    pub max: Option<Duration>,
}

/// Exact latency percentiles over the last one to two window lengths (two rotating hdrhistograms,
/// microsecond resolution, 3 significant digits). Recording takes a short uncontended lock.
#[derive(Debug)]
pub struct LatencyWindow {
    period: Duration,
    inner: Mutex<WindowState>,
}

#[derive(Debug)]
struct WindowState {
    current: Option<Hdr<u64>>,
    previous: Option<Hdr<u64>>,
    rotated: Instant,
}

fn new_hdr() -> Option<Hdr<u64>> {
    // 1 µs .. 1 hour, 3 significant digits.
    Hdr::new_with_bounds(1, 3_600_000_000, 3).ok()
}

impl LatencyWindow {
    /// A window of `period`.
    pub fn new(period: Duration) -> Self {
        Self { period, inner: Mutex::new(WindowState { current: new_hdr(), previous: None, rotated: Instant::now() }) }
    }

    fn rotate(&self, st: &mut WindowState) {
        if st.rotated.elapsed() >= self.period {
            st.previous = st.current.take();
            st.current = new_hdr();
            st.rotated = Instant::now();
        }
    }

    /// Records one latency.
    pub fn record(&self, d: Duration) {
        let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.rotate(&mut st);
        if let Some(h) = st.current.as_mut() {
            let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
            h.saturating_record(us);
        }
    }

    fn merged(&self) -> Option<Hdr<u64>> {
        let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.rotate(&mut st);
        let mut merged = st.current.clone()?;
        if let Some(p) = &st.previous {
            merged.add(p).ok()?;
        }
        Some(merged)
    }

    /// Count, p50, p95, p99 and max over the current and previous window (one merge).
    pub fn summary(&self) -> WindowSummary {
        let Some(h) = self.merged().filter(|h| !h.is_empty()) else {
            return WindowSummary::default();
        };
        let at = |q: f64| Some(Duration::from_micros(h.value_at_quantile(q)));
        WindowSummary {
            count: h.len(),
            p50: at(0.5),
            p95: at(0.95),
            p99: at(0.99),
            max: Some(Duration::from_micros(h.max())),
        }
    }

    /// The `q` quantile (0–1) over the current and previous window, `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.rotate(&mut st);
        let mut merged = st.current.clone()?;
        if let Some(p) = &st.previous {
            merged.add(p).ok()?;
        }
        if merged.is_empty() {
            return None;
        }
        Some(Duration::from_micros(merged.value_at_quantile(q.clamp(0.0, 1.0))))
    }
}
