//! Telemetry of the transports: the one observation each client request produces, the batch and
//! queue hooks of every loaded version, the per-model memory refresh, and the observability
//! endpoints (`/metrics`, the Prometheus HTTP API under `/api/v1`, `/api/v1/bottleneck`,
//! `/api/v1/percentiles`).
//!
//! One observation per client request, taken by the transport that received it:
//! - V2 inference (REST JSON, REST binary, gRPC): labels `model`, `version` = the version that
//!   serves it, `pipeline="none"`; stages `preprocess` (decoding the request), `queue` (waiting in
//!   the batcher until its batch started), `inference` (the engine run of that batch) and
//!   `postprocess` (encoding the answer), each recorded once, only when the request got there.
//! - `/v1/recommend`: labels `model` = the pipelines' ranker, `version` = the ranker version that
//!   ran (`none` when the request failed before ranking), `pipeline` = the scenario (a configured
//!   scenario name; `unknown` when the request names none); stages from the pipeline's
//!   [`recserve_pipeline::StageTimings`]: `retrieval` (user features + user tower + retrieval),
//!   `preprocess` (ranker rows), `ranking` (ranker call) and `postprocess` (business rules, top-k).
//!   While it runs, the request counts in `recserve_in_flight_requests` with `version="none"`
//!   (the ranker version is chosen inside the pipeline; [`enter_recommend`]).
//!   The model calls a pipeline makes are not requests of their own (their time is inside the
//!   pipeline's stages, so no stage is counted twice); their batches do count in
//!   `recserve_batch_size` and the queue gauges, which belong to the model version.
//!
//! Requests that name no loaded model are labelled `model="unknown"`, `version="none"`: label
//! values come only from names the server owns, never from request contents.

use crate::AppState;
use crate::error::ApiError;
use crate::request_log::LogDraft;
use crate::shop::RecommendReply;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use recserve_serving::{BatchObserver, JobTimings, LoadedVersion, ModelRegistry};
use recserve_telemetry::api::{self, QueryParams, RangeParams, SeriesParams};
use recserve_telemetry::{ModelTarget, NO_PIPELINE, Outcome, RequestObservation, ServingMetrics, Stage, Telemetry};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `model` label of a request that names no loaded model.
pub const UNKNOWN_MODEL: &str = "unknown";
/// `version` label when no version served the request.
pub const NO_VERSION: &str = "none";
/// `pipeline` label of a recommendation request that names no configured scenario.
pub const UNKNOWN_PIPELINE: &str = "unknown";
/// Memory attributed to a loaded version, as a multiple of its ONNX file's size: tract keeps the
/// decoded weights of the optimised plan (about the file's size) plus per-thread scratch state.
pub const MODEL_MEMORY_FACTOR: u64 = 2;

/// Gauge of each loaded version's p99 latency budget (the bundled alert rules compare p99 with
/// it).
pub const LATENCY_BUDGET_METRIC: &str = "recserve_model_latency_budget_seconds";

/// The outcome label of an error answer.
pub fn outcome_of(error: &ApiError) -> Outcome {
    match error.http_status() {
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => Outcome::BadRequest,
        StatusCode::NOT_FOUND => Outcome::NotFound,
        StatusCode::TOO_MANY_REQUESTS => Outcome::Overloaded,
        StatusCode::SERVICE_UNAVAILABLE => Outcome::Unavailable,
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => Outcome::Timeout,
        _ => Outcome::Error,
    }
}

/// The one observation of a request: its metrics (when telemetry is on) and its request-log
/// record (when the request log is on).
#[derive(Debug)]
pub struct Observed {
    metrics: Option<RequestObservation>,
    log: Option<LogDraft>,
    started: Instant,
    /// The version chosen for a V2 request that named none (its deployment's split), so the
    /// labels and the inference agree.
    routed: Option<Arc<recserve_serving::LoadedVersion>>,
}

impl Default for Observed {
    fn default() -> Self {
        Observed::off()
    }
}

impl Observed {
    /// Neither metrics nor a log record.
    pub fn off() -> Observed {
        Observed { metrics: None, log: None, started: Instant::now(), routed: None }
    }

    /// The version chosen when the observation began for a request that named none.
    pub fn routed(&self) -> Option<&Arc<recserve_serving::LoadedVersion>> {
        self.routed.as_ref()
    }

    /// Records `stage` (a second record of the same stage is ignored).
    pub fn stage(&mut self, stage: Stage, duration: Duration) {
        let first = match self.metrics.as_mut() {
            Some(obs) => obs.stage(stage, duration),
            None => true,
        };
        if first && let Some(log) = self.log.as_mut() {
            log.stage(stage.as_str(), duration);
        }
    }

    /// Records the batcher's stages of the request: `queue` and `inference`, when it got there.
    pub fn batcher(&mut self, timings: JobTimings) {
        if let Some(d) = timings.queue {
            self.stage(Stage::Queue, d);
        }
        if let Some(d) = timings.inference {
            self.stage(Stage::Inference, d);
        }
    }

    /// The request-log record being made, when the request log is on.
    pub fn log(&mut self) -> Option<&mut LogDraft> {
        self.log.as_mut()
    }

    /// Finishes with the outcome of `result` and the end-to-end latency. A failed request also
    /// leaves a service-log event (warn for server-side failures, info for rejected input),
    /// which the enclosing `request` span ties to its request id.
    pub fn finish<T>(self, result: &Result<T, ApiError>) {
        if let Err(e) = result {
            let status = e.http_status().as_u16();
            if status >= 500 {
                tracing::warn!(status, error = %e, "request failed");
            } else {
                tracing::info!(status, error = %e, "request rejected");
            }
        }
        let latency = match self.metrics {
            Some(obs) => obs.finish(match result {
                Ok(_) => Outcome::Ok,
                Err(e) => outcome_of(e),
            }),
            None => self.started.elapsed(),
        };
        if let Some(log) = self.log {
            match result {
                Ok(_) => log.finish(200, None, latency),
                Err(e) => log.finish(e.http_status().as_u16(), Some(e.to_string()), latency),
            }
        }
    }
}

fn target(serving: &ServingMetrics, model: &str, version: &str, pipeline: &str) -> Option<Arc<ModelTarget>> {
    match serving.target(model, version, pipeline) {
        Ok(t) => Some(t),
        Err(err) => {
            tracing::warn!(%err, model, version, pipeline, "cannot resolve telemetry handles");
            None
        }
    }
}

/// Starts observing a V2 inference request `request_id` that arrived at `started`, labelled by
/// the version that will serve `model`/`version` (or `unknown`/`none` when none can).
pub fn start_v2(state: &AppState, model: &str, version: Option<&str>, started: Instant, request_id: &str) -> Observed {
    let resolved = crate::inference::choose_version(state, model, version);
    let log = state.request_log.as_ref().map(|l| {
        let mut draft = l.draft(request_id);
        match &resolved {
            Ok(loaded) => draft.model(&loaded.model, Some(&loaded.version.to_string())),
            Err(_) => draft.model(model, version),
        }
        draft
    });
    let metrics = state.telemetry.as_ref().and_then(|telemetry| {
        let t = match &resolved {
            Ok(loaded) => target(&telemetry.serving, &loaded.model, &loaded.version.to_string(), NO_PIPELINE),
            Err(_) if state.registry.entry(model).is_ok() => target(&telemetry.serving, model, NO_VERSION, NO_PIPELINE),
            Err(_) => target(&telemetry.serving, UNKNOWN_MODEL, NO_VERSION, NO_PIPELINE),
        };
        t.map(|t| t.start_at(started))
    });
    let routed = resolved.ok().filter(|_| version.is_none_or(str::is_empty));
    Observed { metrics, log, started, routed }
}

#[derive(serde::Deserialize)]
struct ScenarioField {
    scenario: Option<String>,
}

/// The model a recommendation's series are labelled with: the pipelines' ranker.
fn recommend_model(state: &AppState) -> Option<String> {
    state.shop.as_ref().map(|s| s.pipelines().feature_spec().ranker.model.clone())
}

/// The configured scenario a recommendation body names, else `unknown`.
fn named_pipeline(state: &AppState, body: Option<&[u8]>) -> String {
    body.and_then(|b| serde_json::from_slice::<ScenarioField>(b).ok())
        .and_then(|f| f.scenario)
        .filter(|s| state.shop.as_ref().is_some_and(|shop| shop.pipelines().scenario(s).is_some()))
        .unwrap_or_else(|| UNKNOWN_PIPELINE.to_string())
}

/// Counts a `/v1/recommend` request in flight (labels: the ranker, `version="none"`, the
/// scenario it names) until the guard drops. `scenario` is the parsed request's; only when the
/// request did not parse is the raw `body` searched for one.
pub fn enter_recommend(
    state: &AppState,
    scenario: Option<&str>,
    body: Option<&[u8]>,
) -> Option<recserve_telemetry::InFlight> {
    let telemetry = state.telemetry.as_ref()?;
    let ranker = recommend_model(state);
    let pipeline = match scenario {
        Some(s) if state.shop.as_ref().is_some_and(|shop| shop.pipelines().scenario(s).is_some()) => s.to_string(),
        Some(_) => UNKNOWN_PIPELINE.to_string(),
        None => named_pipeline(state, body),
    };
    target(&telemetry.serving, ranker.as_deref().unwrap_or(UNKNOWN_MODEL), NO_VERSION, &pipeline).map(|t| t.enter())
}

/// Records the one observation of `/v1/recommend` request `request_id` that arrived at `started`
/// (called once the answer is encoded). `body` is read only on failure, to find a configured
/// scenario and the user.
pub fn finish_recommend(
    state: &AppState,
    started: Instant,
    request_id: &str,
    body: Option<&[u8]>,
    result: &Result<RecommendReply, ApiError>,
) {
    if state.telemetry.is_none() && state.request_log.is_none() {
        return;
    }
    let ranker = recommend_model(state);
    let model = ranker.as_deref().unwrap_or(UNKNOWN_MODEL);
    let (version, pipeline) = match result {
        Ok(reply) => {
            (reply.model_versions.get(model).cloned().unwrap_or_else(|| NO_VERSION.to_string()), reply.scenario.clone())
        }
        Err(_) => (NO_VERSION.to_string(), named_pipeline(state, body)),
    };
    let metrics = state
        .telemetry
        .as_ref()
        .and_then(|telemetry| target(&telemetry.serving, model, &version, &pipeline))
        .map(|t| t.start_at(started));
    let log = state.request_log.as_ref().map(|l| {
        let mut draft = l.draft(request_id);
        draft.model(model, (version != NO_VERSION).then_some(version.as_str()));
        draft.pipeline(&pipeline);
        match result {
            Ok(reply) => {
                draft.user(&reply.request.user_id);
                if draft.sampled() {
                    draft.input_json(crate::shop::loggable_request(&reply.request));
                    draft.output_json(crate::shop::loggable_reply(reply));
                }
            }
            Err(_) => {
                if let Some((user, input)) = body.and_then(crate::shop::loggable_body) {
                    if let Some(user) = user {
                        draft.user(&user);
                    }
                    draft.input_json(input);
                }
            }
        }
        draft
    });
    let mut obs = Observed { metrics, log, started, routed: None };
    if let Ok(reply) = result {
        let s = &reply.stages;
        obs.stage(Stage::Retrieval, s.user_features + s.user_tower + s.retrieval);
        obs.stage(Stage::Preprocess, s.preprocess);
        obs.stage(Stage::Ranking, s.ranking);
        obs.stage(Stage::Postprocess, s.rules);
    }
    obs.finish(result);
}

/// Batch and queue figures of one loaded version.
struct VersionHooks {
    target: Arc<ModelTarget>,
}

impl BatchObserver for VersionHooks {
    fn batch_executed(&self, rows: usize, queue_depth: usize) {
        self.target.observe_batch(rows);
        self.target.set_queue_depth(queue_depth);
    }
}

/// Estimated memory of a loaded version: its ONNX file's size × [`MODEL_MEMORY_FACTOR`].
pub fn model_memory_estimate(loaded: &LoadedVersion) -> u64 {
    let len = match loaded.fingerprint {
        Some(f) => f.len,
        None => std::fs::metadata(&loaded.path).map(|m| m.len()).unwrap_or(0),
    };
    len.saturating_mul(MODEL_MEMORY_FACTOR)
}

fn version_target(serving: &ServingMetrics, loaded: &LoadedVersion) -> Option<Arc<ModelTarget>> {
    target(serving, &loaded.model, &loaded.version.to_string(), NO_PIPELINE)
}

/// Wires `telemetry` to `registry`: every loaded version (now and later) reports its batches and
/// queue depth, and the sampler refreshes queue depth, capacity and memory of each loaded version
/// every tick (zero for versions no longer loaded). Call before [`Telemetry::start`].
pub fn attach(telemetry: &Telemetry, registry: &Arc<ModelRegistry>) {
    let serving = telemetry.serving.clone();
    registry.set_batch_observers(Arc::new(move |loaded: &LoadedVersion| {
        let target = version_target(&serving, loaded)?;
        target.set_queue_capacity(loaded.queue_capacity());
        target.set_model_memory(model_memory_estimate(loaded));
        Some(Arc::new(VersionHooks { target }) as Arc<dyn BatchObserver>)
    }));
    let serving = telemetry.serving.clone();
    let registry = registry.clone();
    let budgets = telemetry
        .registry
        .gauge_vec(
            LATENCY_BUDGET_METRIC,
            "p99 latency budget of a loaded model version (latency_budget_ms in its config.toml), seconds.",
            &["model", "version"],
        )
        .map_err(|err| tracing::warn!(%err, "cannot register the latency budget gauge"))
        .ok();
    let mut seen: HashMap<(String, u64), Arc<ModelTarget>> = HashMap::new();
    telemetry.set_sampler_hook(Box::new(move || {
        let mut now: HashMap<(String, u64), Arc<ModelTarget>> = HashMap::new();
        for entry in registry.snapshot().values() {
            for loaded in entry.ready() {
                let key = (loaded.model.clone(), loaded.version);
                let t = match seen.remove(&key) {
                    Some(t) => t,
                    None => match version_target(&serving, loaded) {
                        Some(t) => t,
                        None => continue,
                    },
                };
                t.set_queue_depth(loaded.queue_depth());
                t.set_queue_capacity(loaded.queue_capacity());
                t.set_model_memory(model_memory_estimate(loaded));
                if let (Some(budgets), Some(ms)) = (&budgets, loaded.config.latency_budget_ms)
                    && let Ok(gauge) = budgets.with(&[&loaded.model, &loaded.version.to_string()])
                {
                    gauge.set(ms / 1000.0);
                }
                now.insert(key, t);
            }
        }
        for gone in seen.values() {
            gone.set_model_memory(0);
            gone.set_queue_depth(0);
        }
        seen = now;
    }));
}

fn telemetry_of(state: &AppState) -> Result<&Arc<Telemetry>, ApiError> {
    state.telemetry.as_ref().ok_or_else(|| ApiError::NotFound("telemetry is off in this server".to_string()))
}

fn api_json(r: api::ApiResponse) -> Response {
    let status = StatusCode::from_u16(r.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], r.to_json()).into_response()
}

/// Query-string pairs, plus the form body of a POST.
pub(crate) fn form_pairs(query: Option<&str>, body: &[u8]) -> Vec<(String, String)> {
    let mut pairs = api::parse_form(query.unwrap_or(""));
    if !body.is_empty() {
        pairs.extend(api::parse_form(&String::from_utf8_lossy(body)));
    }
    pairs
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let body = telemetry_of(&state)?.render_metrics();
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static(recserve_telemetry::exposition::CONTENT_TYPE))], body)
        .into_response())
}

/// `GET|POST /api/v1/query`.
pub async fn query(State(state): State<AppState>, RawQuery(q): RawQuery, body: Bytes) -> Result<Response, ApiError> {
    let t = telemetry_of(&state)?;
    let params = QueryParams::from_pairs(&form_pairs(q.as_deref(), &body));
    Ok(api_json(api::query(&t.store, &params, recserve_telemetry::store::now_ms())))
}

/// `GET|POST /api/v1/query_range`.
pub async fn query_range(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let t = telemetry_of(&state)?;
    Ok(api_json(api::query_range(&t.store, &RangeParams::from_pairs(&form_pairs(q.as_deref(), &body)))))
}

/// `GET|POST /api/v1/series`.
pub async fn series(State(state): State<AppState>, RawQuery(q): RawQuery, body: Bytes) -> Result<Response, ApiError> {
    let t = telemetry_of(&state)?;
    Ok(api_json(api::series(&t.store, &SeriesParams::from_pairs(&form_pairs(q.as_deref(), &body)))))
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(State(state): State<AppState>, RawQuery(q): RawQuery, body: Bytes) -> Result<Response, ApiError> {
    let t = telemetry_of(&state)?;
    Ok(api_json(api::labels(&t.store, &SeriesParams::from_pairs(&form_pairs(q.as_deref(), &body)))))
}

/// `GET /api/v1/label/{name}/values`.
pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let t = telemetry_of(&state)?;
    Ok(api_json(api::label_values(&t.store, &name, &SeriesParams::from_pairs(&form_pairs(q.as_deref(), &[])))))
}

/// `GET /api/v1/bottleneck?window=60s`: which stage dominates latency, queue and CPU saturation,
/// error ratio over the window (default 60 s).
pub async fn bottleneck(State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let t = telemetry_of(&state)?;
    let window = window_param(q.as_deref())?;
    let report = recserve_telemetry::analysis::bottleneck(&t.store, recserve_telemetry::store::now_ms(), window);
    Ok(axum::Json(report).into_response())
}

/// The `window` query parameter (a positive Prometheus duration; default 60 s).
fn window_param(q: Option<&str>) -> Result<Duration, ApiError> {
    let pairs = form_pairs(q, &[]);
    let window_ms = match pairs.iter().rev().find(|(k, _)| k == "window") {
        None => 60_000,
        Some((_, v)) => api::parse_duration(v)
            .ok()
            .filter(|ms| *ms > 0)
            .ok_or_else(|| ApiError::BadRequest(format!("invalid parameter \"window\": '{v}' is not a duration")))?,
    };
    Ok(Duration::from_millis(u64::try_from(window_ms).unwrap_or(60_000)))
}

/// `GET /api/v1/percentiles?window=60s`: per model/version/pipeline, the exact p50, p95, p99 and
/// max latency (seconds) from the mergeable hdrhistogram window beside Prometheus'
/// `histogram_quantile` estimate from the latency buckets over the window (default 60 s).
pub async fn percentiles(State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let t = telemetry_of(&state)?;
    let window = window_param(q.as_deref())?;
    let now = recserve_telemetry::store::now_ms();
    Ok(axum::Json(recserve_telemetry::percentiles::percentiles(&t.serving, &t.store, now, window)).into_response())
}

/// The request and service logs' writer figures as metrics, read from its sink at each gather:
/// `recserve_log_records_{accepted,committed,dropped,failed}_total`,
/// `recserve_log_write_batches_total`, `recserve_log_write_errors_total`,
/// `recserve_log_queue_records` and `recserve_log_store_failing`. Drops happen only when the
/// writer's queue is full; they are never silent. While the store is unavailable (disk full,
/// database down) the writer retries and `recserve_log_store_failing` is 1.
pub struct LogWriterCollector {
    sink: recserve_store::LogSink,
}

impl LogWriterCollector {
    pub fn new(sink: recserve_store::LogSink) -> LogWriterCollector {
        LogWriterCollector { sink }
    }
}

impl recserve_telemetry::metrics::Collector for LogWriterCollector {
    fn collect(&self, out: &mut Vec<recserve_telemetry::metrics::FamilySnapshot>) {
        use recserve_telemetry::metrics::{FamilySnapshot, MetricKind, SeriesSnapshot, SnapshotValue};
        let stats = self.sink.stats();
        let family = |name: &str, help: &str, kind: MetricKind, value: u64| FamilySnapshot {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            series: vec![SeriesSnapshot { labels: Vec::new(), value: SnapshotValue::Scalar(value as f64) }],
        };
        out.push(family(
            "recserve_log_records_accepted_total",
            "Log records (request and service) queued for the store.",
            MetricKind::Counter,
            stats.accepted,
        ));
        out.push(family(
            "recserve_log_records_committed_total",
            "Log records committed to the store.",
            MetricKind::Counter,
            stats.committed,
        ));
        out.push(family(
            "recserve_log_records_dropped_total",
            "Log records dropped because the writer's queue was full (or the writer had stopped).",
            MetricKind::Counter,
            stats.dropped,
        ));
        out.push(family(
            "recserve_log_records_failed_total",
            "Log records lost to store errors after retries.",
            MetricKind::Counter,
            stats.failed,
        ));
        out.push(family(
            "recserve_log_write_batches_total",
            "Transactions the log writer committed.",
            MetricKind::Counter,
            stats.batches,
        ));
        out.push(family(
            "recserve_log_write_errors_total",
            "Log write attempts (transactions) that failed; each is logged and retried.",
            MetricKind::Counter,
            stats.write_errors,
        ));
        out.push(family(
            "recserve_log_store_failing",
            "1 while the log writer cannot write: its last attempt failed or has not answered for 2 s.",
            MetricKind::Gauge,
            u64::from(stats.store_failing),
        ));
        out.push(family(
            "recserve_log_queue_records",
            "Log records waiting in the writer's queue.",
            MetricKind::Gauge,
            stats.queued,
        ));
    }
}
