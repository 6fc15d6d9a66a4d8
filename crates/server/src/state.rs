//! What every handler shares: the model registry, request limits and the server's identity.

use crate::shop::ShopApi;
use recserve_serving::ModelRegistry;
use std::sync::Arc;

/// Limits applied to every request, on both transports.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body (REST) or message (gRPC), in bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_body_bytes: 64 * 1024 * 1024 }
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
}

impl AppState {
    pub fn new(registry: Arc<ModelRegistry>) -> AppState {
        AppState { registry, limits: Limits::default(), info: Arc::new(ServerInfo::default()), shop: None }
    }
}
