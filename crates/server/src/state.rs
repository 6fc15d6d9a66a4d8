//! What every handler shares: the model registry, request limits, the server's identity, its
//! telemetry, request ids, the request log, the store and authentication.

use crate::request_log::{RequestIds, RequestLog};
use crate::shop::ShopApi;
use recserve_serving::ModelRegistry;
use recserve_telemetry::{Telemetry, TelemetryConfig};
use std::sync::Arc;

/// Limits applied to every request, on both transports.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body (REST) or message (gRPC), in bytes.
    pub max_body_bytes: usize,
    /// Most tensor elements (summed over the inputs) one V2 request may hand the engine: the
    /// body limit bounds what a request costs to decode, this what it costs to run (a model
    /// with free dimensions would otherwise take any shape the body can describe).
    pub max_request_elements: usize,
}

impl Limits {
    /// The default of [`Limits::max_request_elements`]: 16 Mi elements (64 MiB of FP32).
    pub const DEFAULT_MAX_REQUEST_ELEMENTS: usize = 16 * 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_body_bytes: 64 * 1024 * 1024, max_request_elements: Self::DEFAULT_MAX_REQUEST_ELEMENTS }
    }
}

/// The server's name, version and protocol extensions, as `GET /v2` reports them.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
    pub extensions: Vec<String>,
}

impl Default for ServerInfo {
    fn default() -> Self {
        ServerInfo {
            name: "recserve".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: ["binary_tensor_data", "model_repository", "statistics"].map(String::from).to_vec(),
        }
    }
}

/// Shared state of the REST and gRPC handlers.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<ModelRegistry>,
    pub limits: Limits,
    pub info: Arc<ServerInfo>,
    /// The recommendation API, when pipelines are configured.
    pub shop: Option<Arc<ShopApi>>,
    /// Metrics, series store and query API (`None`: telemetry off, e.g. to measure its cost).
    pub telemetry: Option<Arc<Telemetry>>,
    /// Request ids of both transports.
    pub request_ids: Arc<RequestIds>,
    /// The request log (`None`: no records are made).
    pub request_log: Option<Arc<RequestLog>>,
    /// The store behind `/api/v1/logs` (`None`: no store configured).
    pub store: Option<recserve_store::Store>,
    /// Alert rules, silences and notifications (`None`: alerting off).
    pub alerting: Option<Arc<recserve_alerting::Alerting>>,
    /// Bearer tokens and roles (off unless the server sets it up; see [`crate::auth`]).
    pub auth: Arc<crate::auth::Auth>,
    /// Online metrics and drift monitoring (`None`: the recommendation API's own, if any).
    pub experiments: Option<Arc<crate::experiments::Experiments>>,
}

impl AppState {
    /// A state with in-memory telemetry (nothing persisted, no background threads: the caller
    /// may start them with `telemetry.start()`).
    pub fn new(registry: Arc<ModelRegistry>) -> AppState {
        match Telemetry::new(TelemetryConfig::default()) {
            Ok(t) => AppState::with_telemetry(registry, Some(Arc::new(t))),
            Err(err) => {
                tracing::warn!(%err, "cannot set up telemetry; serving without it");
                AppState::with_telemetry(registry, None)
            }
        }
    }

    /// A state with the given telemetry, wired to the registry's versions (see
    /// [`crate::observe::attach`]); call before `telemetry.start()`.
    pub fn with_telemetry(registry: Arc<ModelRegistry>, telemetry: Option<Arc<Telemetry>>) -> AppState {
        if let Some(t) = &telemetry {
            crate::observe::attach(t, &registry);
        }
        AppState {
            registry,
            limits: Limits::default(),
            info: Arc::new(ServerInfo::default()),
            shop: None,
            telemetry,
            request_ids: Arc::new(RequestIds::default()),
            request_log: None,
            store: None,
            alerting: None,
            auth: crate::auth::Auth::off(),
            experiments: None,
        }
    }
}
