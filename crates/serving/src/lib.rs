//! Serving layer: the model repository on disk, per-model configuration, the validation gate,
//! dynamic batching on dedicated inference threads, deployments and traffic split (stable,
//! canary, A/B arms), and the registry that says which version answers a request. Transports
//! (REST, gRPC) call [`ModelRegistry::resolve`] (or [`ModelRegistry::route`] with a
//! [`route_key`]) and [`LoadedVersion::infer`]; nothing here knows about HTTP.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod batcher;
pub mod config;
pub mod deployment;
pub mod error;
pub mod gate;
pub mod registry;
pub mod repository;
pub mod stats;
pub mod version;

pub use batcher::{BatchObserver, JobTimings};
pub use config::ModelConfig;
pub use deployment::{Arm, DeployError, Deployment, Mode, route_key};
pub use error::ServingError;
pub use gate::{EngineLoader, tract_loader};
pub use registry::{BatchObserverFactory, IndexEntry, LatencyReport, ModelEntry, ModelRegistry, Routed, VersionState};
pub use stats::VersionStats;
pub use version::{LoadedVersion, NamedTensor};
