//! Server and model metadata, readiness and statistics as plain values, built once here for
//! both transports.

use crate::AppState;
use crate::error::ApiError;
use recserve_engine::TensorSpec;
use recserve_serving::{LoadedVersion, ServingError};
use serde::Serialize;
use std::sync::Arc;

/// One input or output in metadata (`{"name", "datatype", "shape"}`, -1 = variable).
#[derive(Debug, Clone, Serialize)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
}

impl From<&TensorSpec> for TensorMetadata {
    fn from(s: &TensorSpec) -> Self {
        TensorMetadata { name: s.name.clone(), datatype: s.datatype.wire_name(), shape: s.wire_shape() }
    }
}

/// `GET /v2/models/{m}[/versions/{v}]`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: &'static str,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

/// The platform string Triton reports for ONNX models.
pub const PLATFORM: &str = "onnxruntime_onnx";

pub fn model_metadata(state: &AppState, model: &str, version: Option<&str>) -> Result<ModelMetadata, ApiError> {
    let entry = state.registry.entry(model)?;
    let loaded = state.registry.resolve(model, version)?;
    let versions = entry.ready().map(|v| v.version.to_string()).collect::<Vec<_>>().into_iter().rev().collect();
    Ok(ModelMetadata {
        name: model.to_string(),
        versions,
        platform: PLATFORM,
        inputs: loaded.signature.inputs.iter().map(TensorMetadata::from).collect(),
        outputs: loaded.signature.outputs.iter().map(TensorMetadata::from).collect(),
    })
}

/// Triton's config `dims`: the shape without the batch dimension when the model batches
/// (`max_batch_size > 0`), the full shape otherwise. Shared by REST and gRPC.
pub fn config_dims(spec: &TensorSpec, batched: bool) -> Vec<i64> {
    let shape = spec.wire_shape();
    if batched && !shape.is_empty() { shape[1..].to_vec() } else { shape }
}

/// Whether a model (or one version) can answer now.
pub fn model_ready(state: &AppState, model: &str, version: Option<&str>) -> Result<bool, ApiError> {
    match state.registry.resolve(model, version) {
        Ok(_) => Ok(true),
        Err(ServingError::NotReady { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Cumulative statistics of one version, in Triton's terms.
#[derive(Debug, Clone, Serialize)]
pub struct VersionStatistics {
    pub name: String,
    pub version: String,
    pub inference_count: u64,
    pub execution_count: u64,
    pub success_count: u64,
    pub failure_count: u64,
    pub rejected_count: u64,
    pub abandoned_count: u64,
    pub queue_ns: u64,
    pub compute_ns: u64,
    pub request_ns: u64,
    pub queue_depth: usize,
}

impl From<&Arc<LoadedVersion>> for VersionStatistics {
    fn from(v: &Arc<LoadedVersion>) -> Self {
        let s = &v.stats;
        VersionStatistics {
            name: v.model.clone(),
            version: v.version.to_string(),
            inference_count: s.inferences.get(),
            execution_count: s.executions.get(),
            success_count: s.success.get(),
            failure_count: s.failure.get(),
            rejected_count: s.rejected.get(),
            abandoned_count: s.abandoned.get(),
            queue_ns: s.queue_time.total_nanos(),
            compute_ns: s.compute_time.total_nanos(),
            request_ns: s.request_time.total_nanos(),
            queue_depth: v.queue_depth(),
        }
    }
}

/// Statistics of every ready version of one model, or of all models when `model` is `None`.
pub fn statistics(
    state: &AppState,
    model: Option<&str>,
    version: Option<&str>,
) -> Result<Vec<VersionStatistics>, ApiError> {
    match model.filter(|m| !m.is_empty()) {
        Some(m) => {
            let entry = state.registry.entry(m)?;
            match version.filter(|v| !v.is_empty()) {
                Some(_) => Ok(vec![VersionStatistics::from(&state.registry.resolve(m, version)?)]),
                None => Ok(entry.ready().map(VersionStatistics::from).collect()),
            }
        }
        None => Ok(state
            .registry
            .snapshot()
            .values()
            .flat_map(|e| e.ready().map(VersionStatistics::from).collect::<Vec<_>>())
            .collect()),
    }
}
