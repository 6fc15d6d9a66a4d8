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
    /// Most data-plane requests one client may have in flight (0: no limit); see
    /// [`crate::limits`].
    pub max_in_flight_per_client: usize,
    /// Longest a data-plane request may take before it is answered 504 (`None`: no limit).
    pub request_timeout: Option<std::time::Duration>,
}

impl Limits {
    /// The default of [`Limits::max_request_elements`]: 16 Mi elements (64 MiB of FP32).
    pub const DEFAULT_MAX_REQUEST_ELEMENTS: usize = 16 * 1024 * 1024;
    /// The default of [`Limits::max_in_flight_per_client`]: far above what one well-behaved
    /// client keeps open (the demo's traffic keeps at most 64), low enough that one runaway
    /// client cannot fill every model's queue alone.
    pub const DEFAULT_MAX_IN_FLIGHT_PER_CLIENT: usize = 1024;
    /// The default of [`Limits::request_timeout`].
    pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024 * 1024,
            max_request_elements: Self::DEFAULT_MAX_REQUEST_ELEMENTS,
            max_in_flight_per_client: Self::DEFAULT_MAX_IN_FLIGHT_PER_CLIENT,
            request_timeout: Some(Self::DEFAULT_REQUEST_TIMEOUT),
        }
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

/// Shared state of the REST and gRPC handlers: one `Arc` of [`AppStateData`], read through
/// `Deref`. Handlers and middleware clone the state for every request; a single reference
/// count keeps that to one atomic increment (cloning a dozen `Arc` fields per request, each
/// count shared by every core, cost about 8 % of the CPU of a small V2 request). Changing a
/// field (`state.limits = …`, while the server is set up) goes through `DerefMut`, which copies
/// the data first if another clone shares it, so a clone never sees another's changes.
#[derive(Clone)]
pub struct AppState(Arc<AppStateData>);

impl std::ops::Deref for AppState {
    type Target = AppStateData;
    fn deref(&self) -> &AppStateData {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut AppStateData {
        Arc::make_mut(&mut self.0)
    }
}

/// The fields of an [`AppState`].
#[derive(Clone)]
pub struct AppStateData {
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
    /// Data-plane requests in flight per client ([`Limits::max_in_flight_per_client`]).
    pub clients: Arc<crate::limits::ClientLimiter>,
    /// Fleet mode: this replica's name, who evaluates, the fleet's Prometheus (`None`: no store).
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
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
        let clients = Arc::new(crate::limits::ClientLimiter::default());
        if let Some(t) = &telemetry {
            crate::observe::attach(t, &registry);
            clients.count_in(&t.registry);
        }
        AppState(Arc::new(AppStateData {
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
            clients,
            fleet: None,
        }))
    }
}
