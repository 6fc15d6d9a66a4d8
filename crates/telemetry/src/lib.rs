//! recserve's telemetry: the metric registry and request observations, Prometheus exposition, the
//! system sampler, the embedded series store and its PromQL-subset query API, and the bottleneck
//! analysis.
//!
//! # Wiring (what the server does)
//!
//! ```no_run
//! use std::time::Duration;
//! use recserve_telemetry::{Telemetry, TelemetryConfig, Outcome, Stage, NO_PIPELINE};
//!
//! let telemetry = Telemetry::new(TelemetryConfig::default()).expect("telemetry");
//! let _tasks = telemetry.start(); // sampler (1 s) + store scraper (5 s); stops when dropped
//!
//! // Once per loaded model version (cold path): resolve the handles.
//! let target = telemetry.serving.target("ranker", "3", NO_PIPELINE).expect("target");
//! // Per request (hot path: atomics only):
//! let mut obs = target.start();
//! obs.stage(Stage::Queue, Duration::from_micros(120));
//! obs.stage(Stage::Inference, Duration::from_micros(800));
//! obs.finish(Outcome::Ok);
//! // Per executed batch:
//! target.observe_batch(8);
//!
//! // GET /metrics
//! let body = telemetry.render_metrics();
//! # let _ = body;
//! ```
//!
//! The query endpoints are [`api::query`], [`api::query_range`], [`api::series`], [`api::labels`]
//! and [`api::label_values`]; the supported PromQL is documented in [`promql`].

pub mod analysis;
pub mod api;
pub mod error;
pub mod exposition;
pub mod labels;
pub mod metrics;
pub mod percentiles;
pub mod process;
pub mod promql;
pub mod sampler;
pub mod serving;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use error::{MetricsError, QueryError, StoreError, TelemetryError};
pub use labels::{LabelSet, Outcome, Stage};
pub use metrics::Registry;
pub use sampler::BackgroundHandle;
pub use serving::{
    InFlight, ModelTarget, NO_PIPELINE, RequestObservation, ServingMetrics, ServingMetricsConfig, WindowSummary,
};
pub use store::{SeriesStore, StoreConfig};

/// Settings of [`Telemetry`].
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Caps and latency window of the serving metrics.
    pub serving: ServingMetricsConfig,
    /// Scrape interval and retention of the series store.
    pub store: StoreConfig,
    /// Where the series store persists (`None`: memory only).
    pub data_dir: Option<PathBuf>,
    /// System sampler period (default 1 s).
    pub sample_interval: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            serving: ServingMetricsConfig::default(),
            store: StoreConfig::default(),
            data_dir: None,
            sample_interval: Duration::from_secs(1),
        }
    }
}

/// Everything the server holds: the registry, the serving handles, the store.
#[derive(Debug)]
pub struct Telemetry {
    /// The registry behind `/metrics`.
    pub registry: Arc<Registry>,
    /// Request, stage, batch and queue metrics.
    pub serving: Arc<ServingMetrics>,
    /// The series store behind `/api/v1/*`.
    pub store: Arc<SeriesStore>,
    sampler: std::sync::Mutex<Option<sampler::SystemSampler>>,
    sample_interval: Duration,
}

/// The background threads started by [`Telemetry::start`]; dropping this stops them.
#[derive(Debug)]
pub struct TelemetryTasks {
    /// The system sampler.
    pub sampler: Option<BackgroundHandle>,
    /// The store scraper.
    pub scraper: BackgroundHandle,
}

impl Telemetry {
    /// Registers every family (serving, sampler, `process_*`) and opens the store (loading its
    /// history when a data directory is set).
    pub fn new(config: TelemetryConfig) -> Result<Self, TelemetryError> {
        let store = match &config.data_dir {
            Some(dir) => SeriesStore::open_dir(config.store.clone(), dir)?,
            None => SeriesStore::new(config.store.clone()),
        };
        Self::with_store(config, store)
    }

    /// As [`Telemetry::new`], with the series history kept by `persistence` (e.g. the SQL
    /// store) instead of a file in `config.data_dir`.
    pub fn with_persistence(
        config: TelemetryConfig,
        persistence: Box<dyn store::SeriesPersistence>,
    ) -> Result<Self, TelemetryError> {
        let store = SeriesStore::open(config.store.clone(), persistence)?;
        Self::with_store(config, store)
    }

    fn with_store(config: TelemetryConfig, store: SeriesStore) -> Result<Self, TelemetryError> {
        let registry = Arc::new(Registry::new());
        let serving = Arc::new(ServingMetrics::new(&registry, config.serving)?);
        let sampler = sampler::SystemSampler::new(&registry)?;
        registry.register_collector(Box::new(process::ProcessCollector));
        Ok(Self {
            registry,
            serving,
            store: Arc::new(store),
            sampler: std::sync::Mutex::new(Some(sampler)),
            sample_interval: config.sample_interval,
        })
    }

    /// Sets a hook the sampler runs every tick (e.g. refreshing model memory gauges). Call before
    /// [`Telemetry::start`].
    pub fn set_sampler_hook(&self, hook: sampler::TickHook) {
        let mut guard = self.sampler.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = guard.take() {
            *guard = Some(s.with_hook(hook));
        }
    }

    /// Starts the sampler and the store scraper threads (the sampler only the first time).
    pub fn start(&self) -> TelemetryTasks {
        let sampler =
            self.sampler.lock().unwrap_or_else(|e| e.into_inner()).take().map(|s| s.start(self.sample_interval));
        TelemetryTasks { sampler, scraper: self.store.start_scraper(self.registry.clone()) }
    }

    /// The `/metrics` body (use [`exposition::CONTENT_TYPE`] as its content type).
    pub fn render_metrics(&self) -> String {
        exposition::encode(&self.registry.gather())
    }
}
