//! The Open Inference Protocol over HTTP (axum): health, server and model metadata, readiness,
//! inference (JSON and binary), statistics, model config, and Triton's repository extension;
//! the recommendation API; the observability endpoints of [`crate::observe`]; and the token
//! API. Every request passes [`crate::auth::require`] (inside the request-id span) first.
//! [`router`] builds the whole REST surface from an [`AppState`]; tests call it without a
//! socket.

pub mod codec;

use crate::AppState;
use crate::alerts;
use crate::error::ApiError;
use crate::inference;
use crate::metadata::{self, VersionStatistics};
use crate::observe::{self, Observed};
use crate::request_log::REQUEST_ID_HEADER;
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use recserve_pipeline::RecommendRequest;
use recserve_telemetry::Stage;
use serde_json::json;
use std::time::Instant;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tracing::Instrument;

/// The REST router for the V2 protocol.
pub fn router(state: AppState) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/stats", get(all_stats))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/versions/{version}", get(version_metadata))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/versions/{version}/ready", get(version_ready))
        .route("/v2/models/{model}/infer", post(model_infer))
        .route("/v2/models/{model}/versions/{version}/infer", post(version_infer))
        .route("/v2/models/{model}/stats", get(model_stats))
        .route("/v2/models/{model}/versions/{version}/stats", get(version_stats))
        .route("/v2/models/{model}/config", get(model_config))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{model}/load", post(repository_load))
        .route("/v2/repository/models/{model}/unload", post(repository_unload))
        .route("/v1/recommend", post(recommend))
        .route("/v1/feedback", post(feedback))
        .route("/v1/scenarios", get(scenarios))
        .route("/v1/tables/reload", post(reload_tables))
        .route("/metrics", get(observe::metrics))
        .route("/api/v1/query", get(observe::query).post(observe::query))
        .route("/api/v1/query_range", get(observe::query_range).post(observe::query_range))
        .route("/api/v1/series", get(observe::series).post(observe::series))
        .route("/api/v1/labels", get(observe::labels).post(observe::labels))
        .route("/api/v1/label/{name}/values", get(observe::label_values))
        .route("/api/v1/bottleneck", get(observe::bottleneck))
        .route("/api/v1/percentiles", get(observe::percentiles))
        .route("/api/v1/logs", get(crate::logs::logs))
        .route("/api/v1/alerts", get(alerts::alerts))
        .route("/api/v1/rules", get(alerts::rules))
        .route("/api/v1/rules/reload", post(alerts::reload))
        .route("/-/reload", post(alerts::reload))
        .route("/api/v2/silences", get(alerts::silences).post(alerts::add_silence))
        .route("/api/v2/silence/{id}", get(alerts::silence).delete(alerts::expire_silence))
        .route("/api/v1/notifications", get(alerts::notifications))
        .route("/api/v1/audit", get(crate::audit::query))
        .route("/api/v1/experiments", get(crate::experiments::online))
        .route("/api/v1/drift", get(crate::experiments::drift))
        .route("/api/v1/drift/reference", get(crate::experiments::reference))
        .route("/api/v1/fleet", get(crate::fleet::status))
        .route("/api/v1/fleet/query", get(crate::fleet::query).post(crate::fleet::query))
        .route("/api/v1/fleet/query_range", get(crate::fleet::query_range).post(crate::fleet::query_range))
        .route("/api/v1/deployments", get(crate::deployments::list))
        .route("/api/v1/deployments/{model}", get(crate::deployments::show))
        .route("/api/v1/deployments/{model}/versions", post(crate::deployments::register))
        .route("/api/v1/deployments/{model}/canary", post(crate::deployments::canary))
        .route("/api/v1/deployments/{model}/percent", post(crate::deployments::percent))
        .route("/api/v1/deployments/{model}/ab", post(crate::deployments::ab))
        .route("/api/v1/deployments/{model}/promote", post(crate::deployments::promote))
        .route("/api/v1/deployments/{model}/rollback", post(crate::deployments::rollback))
        .route("/api/v1/tokens", get(crate::auth::api::list).post(crate::auth::api::create))
        .route("/api/v1/tokens/{id}", axum::routing::delete(crate::auth::api::revoke))
        .route("/api/v1/auth/sign-in", post(crate::auth::api::sign_in))
        .route("/api/v1/auth/status", get(crate::auth::api::status))
        .merge(crate::dashboard::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestDecompressionLayer::new())
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn_with_state(state.clone(), limit_data_plane))
        .layer(middleware::from_fn_with_state(state.clone(), crate::auth::require))
        .layer(middleware::from_fn_with_state(state.clone(), with_request_id))
        .with_state(state)
}

/// The id of the request being handled (see [`crate::request_log`]).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Gives every request an id (the client's `x-request-id` when usable), runs it inside a
/// `request` span carrying that id (so its service-log events name it), and answers with the id
/// in `x-request-id`.
async fn with_request_id(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let given = request.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
    let id = state.request_ids.from_client(given);
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

fn shop_api(state: &AppState) -> Result<&std::sync::Arc<crate::shop::ShopApi>, ApiError> {
    state.shop.as_ref().ok_or_else(|| {
        ApiError::NotFound(
            "no recommendation pipelines are configured: start recserve with --pipelines FILE".to_string(),
        )
    })
}

fn read_body(
    state: &AppState,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "request body is larger than the limit of {} bytes",
                state.limits.max_body_bytes
            ))
        } else {
            ApiError::BadRequest(format!("cannot read the request body: {}", rejection.body_text()))
        }
    })
}

/// The per-client share and time limit of data-plane requests ([`crate::limits`]); runs after
/// authentication, so a token names its client.
async fn limit_data_plane(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !crate::limits::is_data_plane(request.uri().path()) {
        return next.run(request).await;
    }
    let peer = request.extensions().get::<axum::extract::ConnectInfo<crate::listen::PeerAddr>>().map(|c| c.0.0.ip());
    let key = crate::limits::ClientKey::of(request.extensions().get::<crate::auth::Identity>(), peer);
    let _permit = match state.clients.admit(key, state.limits.max_in_flight_per_client) {
        Ok(permit) => permit,
        Err(e) => return e.into_response(),
    };
    let answer = state.clients.within(state.limits.request_timeout, async { Ok(next.run(request).await) });
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

async fn recommend(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = read_body(&state, body);
    // Parsed once: the in-flight gauge's scenario label and the pipeline both use it.
    let request = body.clone().and_then(|b| Ok(RecommendRequest::from_json(&b)?));
    let scenario = match &request {
        Ok(r) => Some(r.scenario.as_str()),
        Err(_) => None,
    };
    let in_flight = observe::enter_recommend(&state, scenario, body.as_deref().ok());
    let result = match (request, shop_api(&state)) {
        (Ok(request), Ok(shop)) => shop.recommend(request, id.0.clone()).await,
        (Err(e), _) => Err(e),
        (_, Err(e)) => Err(e),
    };
    let response = match &result {
        Ok(reply) => Ok(Json(reply).into_response()),
        Err(e) => Err(e.clone()),
    };
    drop(in_flight);
    observe::finish_recommend(&state, started, &id.0, body.as_deref().ok(), &result);
    response
}

async fn feedback(
    State(state): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(&state, body)?;
    Ok(Json(shop_api(&state)?.feedback(&body)?).into_response())
}

/// The recommendation scenarios (none on a server without pipelines: the list is empty rather
/// than an error, so clients such as the dashboard can ask any server).
async fn scenarios(State(state): State<AppState>) -> Result<Response, ApiError> {
    let names = state.shop.as_ref().map(|shop| shop.pipelines().scenarios()).unwrap_or_default();
    Ok(Json(json!({ "scenarios": names })).into_response())
}

/// Re-reads the pipelines' user and item tables (and the item embeddings when they changed);
/// on any error the tables in use stay.
async fn reload_tables(State(state): State<AppState>) -> Result<Response, ApiError> {
    let shop = shop_api(&state)?.clone();
    let pipelines = shop.pipelines().clone();
    tokio::task::spawn_blocking(move || pipelines.reload_tables())
        .await
        .map_err(|e| ApiError::Internal(format!("table reload panicked: {e}")))?
        .map_err(|e| ApiError::BadRequest(format!("tables not reloaded, the previous ones stay in use: {e}")))?;
    let (users, items) = shop.pipelines().table_sizes();
    Ok(Json(json!({ "users": users, "items": items })).into_response())
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {}", uri.path()))
}

async fn server_metadata(State(state): State<AppState>) -> Response {
    Json(json!({
        "name": state.info.name,
        "version": state.info.version,
        "extensions": state.info.extensions,
    }))
    .into_response()
}

async fn live() -> StatusCode {
    StatusCode::OK
}

async fn ready(State(state): State<AppState>) -> StatusCode {
    if state.registry.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
}

async fn model_metadata(State(state): State<AppState>, Path(model): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(metadata::model_metadata(&state, &model, None)?).into_response())
}

async fn version_metadata(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(Json(metadata::model_metadata(&state, &model, Some(&version))?).into_response())
}

fn ready_status(ready: bool) -> StatusCode {
    if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
}

async fn model_ready(State(state): State<AppState>, Path(model): Path<String>) -> Result<StatusCode, ApiError> {
    metadata::model_ready(&state, &model, None).map(ready_status)
}

async fn version_ready(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    metadata::model_ready(&state, &model, Some(&version)).map(ready_status)
}

async fn model_infer(
    State(state): State<AppState>,
    Path(model): Path<String>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    infer(state, model, None, &id.0, headers, body).await
}

async fn version_infer(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    infer(state, model, Some(version), &id.0, headers, body).await
}

/// One V2 inference request over REST, observed once (see [`crate::observe`]).
async fn infer(
    state: AppState,
    model: String,
    version: Option<String>,
    request_id: &str,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let mut obs = observe::start_v2(&state, &model, version.as_deref(), Instant::now(), request_id);
    let result = infer_observed(&state, model, version, headers, body, &mut obs).await;
    obs.finish(&result);
    result
}

async fn infer_observed(
    state: &AppState,
    model: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    obs: &mut Observed,
) -> Result<Response, ApiError> {
    let decoding = Instant::now();
    let body = read_body(state, body)?;
    let header_length = match headers.get(codec::HEADER_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::BadRequest("Inference-Header-Content-Length is not valid text".to_string()))?,
        ),
    };
    let call = codec::decode_request(&model, version.as_deref(), &body, header_length)?;
    obs.stage(Stage::Preprocess, decoding.elapsed());
    let reply = inference::infer_observed(state, call, obs).await?;
    let encoding = Instant::now();
    let encoded = codec::encode_response(&reply);
    let mut response = Response::new(Body::from(encoded.body));
    let headers = response.headers_mut();
    match encoded.header_length {
        Some(n) => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            headers.insert(codec::HEADER_LENGTH, HeaderValue::from(n));
        }
        None => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
    }
    obs.stage(Stage::Postprocess, encoding.elapsed());
    Ok(response)
}

fn stats_json(stats: Vec<VersionStatistics>) -> Response {
    let pair = |count: u64, ns: u64| json!({"count": count, "ns": ns});
    let model_stats: Vec<_> = stats
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "version": s.version,
                "inference_count": s.inference_count,
                "execution_count": s.execution_count,
                "inference_stats": {
                    "success": pair(s.success_count, s.request_ns),
                    "fail": pair(s.failure_count, 0),
                    "queue": pair(s.success_count, s.queue_ns),
                    "compute_input": pair(s.execution_count, 0),
                    "compute_infer": pair(s.execution_count, s.compute_ns),
                    "compute_output": pair(s.execution_count, 0),
                },
                "rejected_count": s.rejected_count,
                "abandoned_count": s.abandoned_count,
                "queue_depth": s.queue_depth,
                "batch_stats": [],
            })
        })
        .collect();
    Json(json!({ "model_stats": model_stats })).into_response()
}

async fn all_stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(stats_json(metadata::statistics(&state, None, None)?))
}

async fn model_stats(State(state): State<AppState>, Path(model): Path<String>) -> Result<Response, ApiError> {
    Ok(stats_json(metadata::statistics(&state, Some(&model), None)?))
}

async fn version_stats(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(stats_json(metadata::statistics(&state, Some(&model), Some(&version))?))
}

async fn model_config(State(state): State<AppState>, Path(model): Path<String>) -> Result<Response, ApiError> {
    let loaded = state.registry.resolve(&model, None)?;
    // Triton's rule: dims leave out the batch dimension only when max_batch_size > 0.
    let batched = loaded.max_batch_size() > 0;
    let tensors = |specs: &[recserve_engine::TensorSpec]| -> Vec<serde_json::Value> {
        specs
            .iter()
            .map(|s| {
                let dims = metadata::config_dims(s, batched);
                json!({"name": s.name, "data_type": format!("TYPE_{}", triton_type(s.datatype)), "dims": dims})
            })
            .collect()
    };
    let c = &loaded.config;
    Ok(Json(json!({
        "name": model,
        "platform": metadata::PLATFORM,
        "backend": "onnxruntime",
        "max_batch_size": loaded.max_batch_size(),
        "input": tensors(&loaded.signature.inputs),
        "output": tensors(&loaded.signature.outputs),
        "dynamic_batching": {
            "max_queue_delay_microseconds": c.dynamic_batching.max_queue_delay_microseconds,
            "default_queue_policy": {"max_queue_size": c.dynamic_batching.max_queue_size},
        },
        "instance_group": [{"count": c.instance_count, "kind": "KIND_CPU"}],
    }))
    .into_response())
}

/// Triton's `TYPE_*` suffix for a datatype (its config names differ from the wire names).
fn triton_type(dt: recserve_engine::DataType) -> &'static str {
    use recserve_engine::DataType as D;
    match dt {
        D::Bytes => "STRING",
        other => other.wire_name(),
    }
}

#[derive(serde::Deserialize, Default)]
struct IndexRequest {
    #[serde(default)]
    ready: bool,
}

async fn repository_index(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let request: IndexRequest = if body.iter().all(u8::is_ascii_whitespace) {
        IndexRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("malformed index request: {e}")))?
    };
    let rows: Vec<_> =
        state.registry.index().into_iter().filter(|r| !request.ready || r.state == Some("READY")).collect();
    Ok(Json(rows).into_response())
}

async fn repository_load(
    State(state): State<AppState>,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("malformed load request: {e}")))?;
        if v.pointer("/parameters/config").is_some()
            || v.pointer("/parameters")
                .is_some_and(|p| p.as_object().is_some_and(|o| o.keys().any(|k| k.starts_with("file:"))))
        {
            return Err(ApiError::BadRequest(format!(
                "load parameters (config override, files) are not supported; edit {model}/config.toml in the repository instead"
            )));
        }
    }
    state.registry.load_model(&model).await?;
    Ok(StatusCode::OK.into_response())
}

async fn repository_unload(State(state): State<AppState>, Path(model): Path<String>) -> Result<Response, ApiError> {
    state.registry.unload_model(&model).await?;
    Ok(StatusCode::OK.into_response())
}
