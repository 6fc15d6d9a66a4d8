//! The Open Inference Protocol over gRPC: Triton's `inference.GRPCInferenceService`, so that
//! `tritonclient.grpc` works unchanged. Handlers decode the request through [`convert`], call the
//! transport-neutral operations in [`crate::inference`] and [`crate::metadata`] or the registry,
//! and encode the answer; every error goes through [`ApiError`] to its gRPC code.
//!
//! Implemented: ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata, ModelConfig
//! (name, platform, max_batch_size, inputs, outputs), ModelInfer, ModelStatistics,
//! RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload. Answered UNIMPLEMENTED with a
//! message saying so: ModelStreamInfer, the system and CUDA shared-memory RPCs, TraceSetting and
//! LogSettings.

pub mod convert;

/// The messages, client and server generated from `proto/grpc_service.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("inference");
}

use crate::AppState;
use crate::error::ApiError;
use crate::inference;
use crate::metadata;
use crate::observe;
use crate::request_log::REQUEST_ID_HEADER;
use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::*;
use recserve_telemetry::Stage;
use std::time::Instant;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

pub use proto::grpc_inference_service_client::GrpcInferenceServiceClient;

/// The gRPC service, ready to add to a `tonic::transport::Server`. Messages are limited in both
/// directions to `state.limits.max_body_bytes`.
pub fn service(state: AppState) -> GrpcInferenceServiceServer<InferenceService> {
    let limit = state.limits.max_body_bytes;
    use tonic::codec::CompressionEncoding;
    // tritonclient's `compression_algorithm` ("gzip" or "deflate") compresses requests and
    // asks for compressed responses.
    GrpcInferenceServiceServer::new(InferenceService { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit)
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Deflate)
        .send_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Deflate)
}

/// The handlers of `inference.GRPCInferenceService` over the shared [`AppState`].
#[derive(Clone)]
pub struct InferenceService {
    state: AppState,
}

type Answer<T> = Result<Response<T>, Status>;

fn unsupported<T>(what: &str) -> Answer<T> {
    Err(ApiError::Unimplemented(format!("recserve does not support {what}")).into())
}

fn repository_parameters_unsupported(
    model: &str,
    parameters: &std::collections::HashMap<String, ModelRepositoryParameter>,
) -> Result<(), Status> {
    if let Some(key) = parameters.keys().find(|k| k.as_str() == "config" || k.starts_with("file:")) {
        return Err(ApiError::Unimplemented(format!(
            "model '{model}': loading with parameter '{key}' (a configuration or file override) is not supported; \
             change the model repository and load again"
        ))
        .into());
    }
    Ok(())
}

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    async fn server_live(&self, _request: Request<ServerLiveRequest>) -> Answer<ServerLiveResponse> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(&self, _request: Request<ServerReadyRequest>) -> Answer<ServerReadyResponse> {
        Ok(Response::new(ServerReadyResponse { ready: self.state.registry.is_ready() }))
    }

    async fn model_ready(&self, request: Request<ModelReadyRequest>) -> Answer<ModelReadyResponse> {
        let r = request.into_inner();
        let version = Some(r.version.as_str()).filter(|v| !v.is_empty());
        // As Triton does, an unknown model or version is "not ready" rather than an error.
        let ready = metadata::model_ready(&self.state, &r.name, version).unwrap_or(false);
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(&self, _request: Request<ServerMetadataRequest>) -> Answer<ServerMetadataResponse> {
        let info = &self.state.info;
        Ok(Response::new(ServerMetadataResponse {
            name: info.name.clone(),
            version: info.version.clone(),
            extensions: info.extensions.clone(),
        }))
    }

    async fn model_metadata(&self, request: Request<ModelMetadataRequest>) -> Answer<ModelMetadataResponse> {
        let r = request.into_inner();
        let version = Some(r.version.as_str()).filter(|v| !v.is_empty());
        let m = metadata::model_metadata(&self.state, &r.name, version)?;
        Ok(Response::new(convert::model_metadata_response(m)))
    }

    #[tracing::instrument(skip_all, fields(model = %request.get_ref().model_name))]
    async fn model_infer(&self, request: Request<ModelInferRequest>) -> Answer<ModelInferResponse> {
        // One observation per request (see crate::observe): decode, batcher, encode.
        let started = Instant::now();
        let key = crate::limits::ClientKey::of(
            request.extensions().get::<crate::auth::Identity>(),
            request.remote_addr().map(|a| a.ip()),
        );
        let _permit = self.state.clients.admit(key, self.state.limits.max_in_flight_per_client)?;
        let given = request.metadata().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
        let request_id = self.state.request_ids.from_client(given);
        let span = tracing::info_span!("request", request_id = %request_id);
        let request = request.into_inner();
        let version = Some(request.model_version.as_str()).filter(|v| !v.is_empty());
        let mut obs = observe::start_v2(&self.state, &request.model_name, version, started, &request_id);
        let work = async {
            let call = convert::infer_call(request)?;
            obs.stage(Stage::Preprocess, started.elapsed());
            let reply = inference::infer_observed(&self.state, call, &mut obs).await?;
            let encoding = Instant::now();
            let response = convert::infer_response(reply);
            obs.stage(Stage::Postprocess, encoding.elapsed());
            Ok::<_, ApiError>(response)
        };
        let result = self.state.clients.within(self.state.limits.request_timeout, work).instrument(span).await;
        obs.finish(&result);
        let mut response = Response::new(result?);
        if let Ok(value) = request_id.parse() {
            response.metadata_mut().insert(REQUEST_ID_HEADER, value);
        }
        Ok(response)
    }

    async fn model_stream_infer(
        &self,
        _request: Request<Streaming<ModelInferRequest>>,
    ) -> Answer<BoxStream<ModelStreamInferResponse>> {
        unsupported("streaming inference (ModelStreamInfer); send each request with ModelInfer")
    }

    async fn model_config(&self, request: Request<ModelConfigRequest>) -> Answer<ModelConfigResponse> {
        let r = request.into_inner();
        let version = Some(r.version.as_str()).filter(|v| !v.is_empty());
        let loaded = self.state.registry.resolve(&r.name, version).map_err(ApiError::from)?;
        let config = convert::model_config(&r.name, &loaded.signature, loaded.max_batch_size());
        Ok(Response::new(ModelConfigResponse { config: Some(config) }))
    }

    async fn model_statistics(&self, request: Request<ModelStatisticsRequest>) -> Answer<ModelStatisticsResponse> {
        let r = request.into_inner();
        let stats = metadata::statistics(&self.state, Some(r.name.as_str()), Some(r.version.as_str()))?;
        Ok(Response::new(ModelStatisticsResponse {
            model_stats: stats.into_iter().map(convert::model_statistics).collect(),
        }))
    }

    async fn repository_index(&self, request: Request<RepositoryIndexRequest>) -> Answer<RepositoryIndexResponse> {
        let ready_only = request.get_ref().ready;
        let models = self
            .state
            .registry
            .index()
            .into_iter()
            .filter(|e| !ready_only || e.state == Some("READY"))
            .map(convert::model_index)
            .collect();
        Ok(Response::new(RepositoryIndexResponse { models }))
    }

    #[tracing::instrument(skip_all, fields(model = %request.get_ref().model_name))]
    async fn repository_model_load(
        &self,
        request: Request<RepositoryModelLoadRequest>,
    ) -> Answer<RepositoryModelLoadResponse> {
        let r = request.into_inner();
        repository_parameters_unsupported(&r.model_name, &r.parameters)?;
        self.state.registry.load_model(&r.model_name).await.map_err(ApiError::from)?;
        Ok(Response::new(RepositoryModelLoadResponse {}))
    }

    #[tracing::instrument(skip_all, fields(model = %request.get_ref().model_name))]
    async fn repository_model_unload(
        &self,
        request: Request<RepositoryModelUnloadRequest>,
    ) -> Answer<RepositoryModelUnloadResponse> {
        let r = request.into_inner();
        self.state.registry.unload_model(&r.model_name).await.map_err(ApiError::from)?;
        Ok(Response::new(RepositoryModelUnloadResponse {}))
    }

    async fn system_shared_memory_status(
        &self,
        _request: Request<SystemSharedMemoryStatusRequest>,
    ) -> Answer<SystemSharedMemoryStatusResponse> {
        unsupported("system shared memory")
    }

    async fn system_shared_memory_register(
        &self,
        _request: Request<SystemSharedMemoryRegisterRequest>,
    ) -> Answer<SystemSharedMemoryRegisterResponse> {
        unsupported("system shared memory")
    }

    async fn system_shared_memory_unregister(
        &self,
        _request: Request<SystemSharedMemoryUnregisterRequest>,
    ) -> Answer<SystemSharedMemoryUnregisterResponse> {
        unsupported("system shared memory")
    }

    async fn cuda_shared_memory_status(
        &self,
        _request: Request<CudaSharedMemoryStatusRequest>,
    ) -> Answer<CudaSharedMemoryStatusResponse> {
        unsupported("CUDA shared memory")
    }

    async fn cuda_shared_memory_register(
        &self,
        _request: Request<CudaSharedMemoryRegisterRequest>,
    ) -> Answer<CudaSharedMemoryRegisterResponse> {
        unsupported("CUDA shared memory")
    }

    async fn cuda_shared_memory_unregister(
        &self,
        _request: Request<CudaSharedMemoryUnregisterRequest>,
    ) -> Answer<CudaSharedMemoryUnregisterResponse> {
        unsupported("CUDA shared memory")
    }

    async fn trace_setting(&self, _request: Request<TraceSettingRequest>) -> Answer<TraceSettingResponse> {
        unsupported("trace settings")
    }

    async fn log_settings(&self, _request: Request<LogSettingsRequest>) -> Answer<LogSettingsResponse> {
        unsupported("log settings")
    }
}
