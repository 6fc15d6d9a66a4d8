//! The deployment API: register a version (uploaded, or already in the repository) through the
//! validation gate and a latency check against the model's budget, send it traffic as a canary
//! or as A/B arms, promote it, roll it back. Each change is applied by the registry (which
//! loads what the new deployment needs and refuses what cannot serve), persisted in the store as
//! the state document `deployments/<model>` (restored at start by [`restore`]), and audited
//! (`deploy.*` actions) before it is answered.
//!
//! [`AutoRollback`] is alerting's remediation: an alert labelled `recserve_action="rollback"`
//! that starts firing for a canary (or non-control A/B arm) version of a model rolls that model
//! back, as actor `alerting`, with the alert as the reason.
//!
//! Routes (all JSON; `reason` is optional everywhere and lands in the audit trail):
//! - `GET  /api/v1/deployments` — every model: deployment, arms, versions with their state;
//! - `POST /api/v1/deployments/{model}/versions` — `{"onnx_base64", "validation"?, "config"?}`
//!   uploads a new version (a `config`, the model's config.toml text, is written when the model
//!   has none and must match when it has one), or `{"version": n}` takes one already in the repository; both pass the gate
//!   and `latency_requests` (default 50) single requests within `latency_budget_ms`;
//! - `POST …/{model}/canary` `{"version", "percent"}`; `…/percent` `{"percent"}`;
//!   `…/ab` `{"arms": [{"name", "version", "percent"}]}`; `…/promote` `{"arm"?}`;
//!   `…/rollback`.

use crate::AppState;
use crate::audit::{self, Action};
use crate::error::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use recserve_serving::{DeployError, Deployment, ModelRegistry, ServingError, VersionState};
use recserve_store::AuditOutcome;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The state-document name prefix of persisted deployments.
pub const DOCUMENT_PREFIX: &str = "deployments/";

/// Requests the latency check sends by default.
pub const DEFAULT_LATENCY_REQUESTS: usize = 50;

/// What an automatic rollback finds when another alert already rolled the canary back.
const ALREADY_DONE: &str = "the canary was already rolled back";

/// The actor of automatic rollbacks in the audit trail.
pub const ALERTING_ACTOR: &str = "alerting";

/// What [`restore`] read from the store.
#[derive(Debug, Default)]
pub struct Restored {
    /// Deployments handed to the registry.
    pub deployments: usize,
    /// The state revision they are current as of (where the fleet's state sync starts).
    pub revision: u64,
    /// Each model's deployment document version, readable or not: what this replica's next
    /// change to it expects to replace (see [`commit`]).
    pub versions: Vec<(String, u64)>,
}

/// Reads the persisted deployments and hands them to the registry (call before its first poll).
pub async fn restore(store: &recserve_store::Store, registry: &ModelRegistry) -> Result<Restored, String> {
    let changes = store.documents_changed_since(0).await.map_err(|e| format!("cannot read deployments: {e}"))?;
    let mut restored = Vec::new();
    let mut versions = Vec::new();
    for doc in &changes.documents {
        let Some(model) = doc.name.strip_prefix(DOCUMENT_PREFIX) else { continue };
        versions.push((model.to_string(), doc.version));
        match serde_json::from_str::<Deployment>(&doc.body) {
            Ok(d) => restored.push(d),
            Err(e) => {
                tracing::error!(document = %doc.name, error = %e, "a persisted deployment is unreadable; ignoring it")
            }
        }
    }
    let deployments = restored.len();
    registry.restore_deployments(restored);
    Ok(Restored { deployments, revision: changes.revision, versions })
}

fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("invalid {what} request: {e}")))
}

/// One model's deployment as the API shows it.
fn model_view(registry: &ModelRegistry, model: &str) -> Value {
    let deployment = registry.deployment(model);
    let entry = registry.entry(model).ok();
    let versions: Vec<Value> = entry
        .as_ref()
        .map(|e| {
            e.versions
                .iter()
                .map(|(v, s)| match s {
                    VersionState::Ready(loaded) => json!({
                        "version": v, "state": "READY",
                        "latency_budget_ms": loaded.config.latency_budget_ms,
                    }),
                    VersionState::Failed { reason, .. } => {
                        json!({"version": v, "state": "UNAVAILABLE", "reason": reason})
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let arms: Vec<Value> = deployment
        .as_ref()
        .map(|d| {
            d.arms
                .iter()
                .map(|a| json!({"name": a.name, "version": a.version, "percent": f64::from(a.weight) / 100.0}))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "model": model,
        "mode": deployment.as_ref().map(|d| serde_json::to_value(d.mode).unwrap_or(Value::Null)),
        "description": deployment.as_ref().map(|d| d.describe()),
        "arms": arms,
        "retired": deployment.as_ref().map(|d| d.retired.iter().copied().collect::<Vec<_>>()).unwrap_or_default(),
        "versions": versions,
    })
}

/// `GET /api/v1/deployments`.
pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let registry = &state.registry;
    let models: Vec<Value> = registry.snapshot().keys().map(|m| model_view(registry, m)).collect();
    Ok(Json(json!({"status": "success", "data": models})).into_response())
}

/// `GET /api/v1/deployments/{model}`.
pub async fn show(State(state): State<AppState>, Path(model): Path<String>) -> Result<Response, ApiError> {
    state.registry.entry(&model)?;
    Ok(Json(json!({"status": "success", "data": model_view(&state.registry, &model)})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    onnx_base64: Option<String>,
    config: Option<String>,
    validation: Option<Value>,
    version: Option<u64>,
    latency_requests: Option<usize>,
    reason: Option<String>,
}

/// Persists (when the model has a deployment) and audits one applied change, then answers with
/// the model's new state.
///
/// In a fleet the write is compare-and-set on the document version this replica last wrote or
/// applied: when another replica changed the same model's deployment in between (and this one
/// has not synced it yet), nothing is written, this replica goes back to serving the stored
/// deployment, and the change is refused with 409, so neither change is silently lost.
async fn commit(
    state: &AppState,
    actor: &str,
    action: &str,
    model: &str,
    deployment: Option<&Deployment>,
    reason: Option<String>,
    details: Value,
) -> Result<Response, ApiError> {
    if let (Some(store), Some(deployment)) = (&state.store, deployment) {
        let body = serde_json::to_string(deployment)
            .map_err(|e| ApiError::Internal(format!("cannot encode the deployment: {e}")))?;
        let name = format!("{DOCUMENT_PREFIX}{model}");
        let written = match &state.fleet {
            Some(fleet) => store.put_document_if(&name, &body, fleet.deployment_version(model)).await,
            None => store.put_document(&name, &body).await.map(Some),
        }
        .map_err(|e| {
            tracing::error!(model, error = %e, "a deployment change is serving but could not be persisted");
            ApiError::Unavailable(format!(
                "the deployment change is serving but could not be persisted, so a restart would undo it: {e}"
            ))
        })?;
        match (written, &state.fleet) {
            (Some(version), Some(fleet)) => {
                fleet.note_deployment_version(model, version);
                // A sync that applied another replica's document between this change and its
                // write must not leave the registry serving something other than what was written.
                if state.registry.deployment(model).as_deref() != Some(deployment) {
                    crate::fleet::apply_deployment(state, model, &body).await;
                }
            }
            (Some(_), None) => {}
            (None, _) => {
                let theirs = store.get_document(&name).await.ok().flatten();
                if let Some(doc) = &theirs {
                    if let Some(fleet) = &state.fleet {
                        fleet.note_deployment_version(model, doc.version);
                    }
                    crate::fleet::apply_deployment(state, model, &doc.body).await;
                }
                tracing::warn!(model, action, "a deployment change raced another replica's and was refused");
                let err = ApiError::Conflict(format!(
                    "another replica changed the deployment of '{model}' at the same time{}; this change was not \
                     applied: check the current deployment and retry",
                    theirs.map(|d| format!(" (document version {})", d.version)).unwrap_or_default()
                ));
                refused(state, actor, action, model, reason, &err).await;
                return Err(err);
            }
        }
    }
    let mut details = details;
    if let (Value::Object(map), Some(deployment)) = (&mut details, deployment) {
        map.insert("deployment".into(), json!(deployment.describe()));
    }
    audit::record_as(
        state,
        actor,
        Action {
            action,
            target: Some(model),
            outcome: AuditOutcome::Ok,
            reason,
            details: Some(details),
            request_id: None,
        },
    )
    .await?;
    tracing::info!(model, action, actor, deployment = ?deployment.map(Deployment::describe), "deployment changed");
    Ok(Json(json!({"status": "success", "data": model_view(&state.registry, model)})).into_response())
}

/// Audits a refused change (best effort: the refusal is the answer either way).
async fn refused(state: &AppState, actor: &str, action: &str, model: &str, reason: Option<String>, err: &ApiError) {
    let details = json!({"error": err.to_string()});
    let _ = audit::record_as(
        state,
        actor,
        Action {
            action,
            target: Some(model),
            outcome: AuditOutcome::Failed,
            reason,
            details: Some(details),
            request_id: None,
        },
    )
    .await;
}

/// `POST /api/v1/deployments/{model}/versions`.
pub async fn register(
    State(state): State<AppState>,
    actor: audit::Actor,
    Path(model): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: RegisterBody = body(&bytes, "register")?;
    let reason = req.reason.clone();
    let result = register_inner(&state, &model, req).await;
    match result {
        Ok((version, latency)) => {
            let deployment = state.registry.deployment(&model);
            let details = json!({"version": version, "latency": latency});
            commit(&state, &actor, "deploy.register", &model, deployment.as_deref(), reason, details).await
        }
        Err(e) => {
            refused(&state, &actor, "deploy.register", &model, reason, &e).await;
            Err(e)
        }
    }
}

async fn register_inner(
    state: &AppState,
    model: &str,
    req: RegisterBody,
) -> Result<(u64, recserve_serving::LatencyReport), ApiError> {
    let registry = &state.registry;
    let version = match (&req.onnx_base64, req.version) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give either `onnx_base64` (upload a new version) or `version` (one in the repository), not both"
                    .into(),
            ));
        }
        (None, None) => {
            return Err(ApiError::BadRequest(
                "nothing to register: give `onnx_base64` (the model file, base64) or `version` (a version directory already in the repository)".into(),
            ));
        }
        (Some(b64), None) => {
            let onnx = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| ApiError::BadRequest(format!("field `onnx_base64` is not valid base64: {e}")))?;
            if let Some(config) = &req.config {
                write_model_config(registry, model, config).await?;
            }
            let samples = req.validation.as_ref().map(|v| v.to_string().into_bytes());
            registry.register_version(model, &onnx, samples.as_deref()).await?
        }
        (None, Some(v)) => {
            if req.validation.is_some() || req.config.is_some() {
                return Err(ApiError::BadRequest(
                    "`validation` and `config` come with an upload; a repository version uses the files in the repository".into(),
                ));
            }
            registry.stage_version(model, v).await?;
            v
        }
    };
    let requests = req.latency_requests.unwrap_or(DEFAULT_LATENCY_REQUESTS).clamp(1, 10_000);
    let latency = registry.latency_check(model, version, requests).await?;
    if !latency.within_budget {
        return Err(ApiError::Conflict(format!(
            "version {version} of model '{model}' passed the validation gate but its p99 latency {:.2} ms over {} requests exceeds the model's budget of {:.2} ms; it will not take traffic",
            latency.p99_ms,
            latency.requests,
            latency.budget_ms.unwrap_or(0.0)
        )));
    }
    Ok((version, latency))
}

/// The model's `config.toml` given with an upload: checked, and written when the model has none.
/// The config is per model (batching, validation, latency budget apply to every version), so a
/// different config than the one in the repository is refused rather than silently replaced.
async fn write_model_config(registry: &ModelRegistry, model: &str, text: &str) -> Result<(), ApiError> {
    recserve_serving::ModelConfig::parse(text, &format!("the uploaded config of model '{model}'"))
        .map_err(|e| ApiError::BadRequest(format!("field `config`: {e}")))?;
    let dir = registry.repository().root().join(model);
    let path = dir.join("config.toml");
    let text = text.to_string();
    let model = model.to_string();
    tokio::task::spawn_blocking(move || match std::fs::read_to_string(&path) {
        Ok(existing) if existing == text => Ok(()),
        Ok(_) => Err(ApiError::Conflict(format!(
            "model '{model}' already has a different config.toml, which applies to every version; change it in the repository (or upload without `config`)"
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&path, text))
                .map_err(|e| ApiError::Internal(format!("cannot write {}: {e}", path.display())))
        }
        Err(e) => Err(ApiError::Internal(format!("cannot read {}: {e}", path.display()))),
    })
    .await
    .map_err(|e| ApiError::Internal(format!("writing the config panicked: {e}")))?
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanaryBody {
    version: u64,
    percent: f64,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PercentBody {
    percent: f64,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AbArm {
    name: String,
    version: u64,
    percent: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AbBody {
    arms: Vec<AbArm>,
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    arm: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    reason: Option<String>,
}

/// Applies `change` to the model's deployment, then persists and audits it (or audits the
/// refusal).
async fn change<T: serde::Serialize>(
    state: &AppState,
    actor: &str,
    action: &str,
    model: &str,
    reason: Option<String>,
    change: impl FnOnce(&Deployment) -> Result<(Deployment, T), DeployError>,
) -> Result<Response, ApiError> {
    match state.registry.update_deployment(model, change).await {
        Ok((deployment, out)) => {
            commit(state, actor, action, model, Some(&deployment), reason, json!({"result": out})).await
        }
        Err(e) => {
            let e = ApiError::from(e);
            refused(state, actor, action, model, reason, &e).await;
            Err(e)
        }
    }
}

fn empty_or<T: for<'de> Deserialize<'de> + Default>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) { Ok(T::default()) } else { body(bytes, what) }
}

/// `POST /api/v1/deployments/{model}/canary`.
pub async fn canary(
    State(state): State<AppState>,
    actor: audit::Actor,
    Path(model): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: CanaryBody = body(&bytes, "canary")?;
    let (version, percent) = (req.version, req.percent);
    change(&state, &actor, "deploy.canary", &model, req.reason, |d| {
        d.start_canary(version, percent).map(|d| (d, json!({"version": version, "percent": percent})))
    })
    .await
}

/// `POST /api/v1/deployments/{model}/percent`.
pub async fn percent(
    State(state): State<AppState>,
    actor: audit::Actor,
    Path(model): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: PercentBody = body(&bytes, "percent")?;
    let percent = req.percent;
    change(&state, &actor, "deploy.percent", &model, req.reason, |d| {
        d.set_canary_percent(percent).map(|d| (d, json!({"percent": percent})))
    })
    .await
}

/// `POST /api/v1/deployments/{model}/ab`.
pub async fn ab(
    State(state): State<AppState>,
    actor: audit::Actor,
    Path(model): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: AbBody = body(&bytes, "A/B")?;
    let arms: Vec<(String, u64, f64)> = req.arms.into_iter().map(|a| (a.name, a.version, a.percent)).collect();
    change(&state, &actor, "deploy.ab", &model, req.reason, |d| d.start_ab(arms).map(|d| (d, ()))).await
}

/// `POST /api/v1/deployments/{model}/promote`.
pub async fn promote(
    State(state): State<AppState>,
    actor: audit::Actor,
    Path(model): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: PromoteBody = empty_or(&bytes, "promote")?;
    let arm = req.arm.clone();
    change(&state, &actor, "deploy.promote", &model, req.reason, |d| {
        d.promote(arm.as_deref()).map(|(d, v)| (d, json!({"promoted": v})))
    })
    .await
}

/// `POST /api/v1/deployments/{model}/rollback`.
pub async fn rollback(
    State(state): State<AppState>,
    actor: audit::Actor,
    Path(model): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: RollbackBody = empty_or(&bytes, "rollback")?;
    change(&state, &actor, "deploy.rollback", &model, req.reason, |d| {
        d.rollback().map(|(d, v)| (d, json!({"retired": v})))
    })
    .await
}

/// Rolls back canaries when an alert labelled `recserve_action="rollback"` starts firing.
pub struct AutoRollback {
    state: std::sync::OnceLock<AppState>,
    runtime: tokio::runtime::Handle,
}

impl AutoRollback {
    /// Acts on the runtime `runtime`; the state is given once the server's state exists.
    pub fn new(runtime: tokio::runtime::Handle) -> Arc<AutoRollback> {
        Arc::new(AutoRollback { state: std::sync::OnceLock::new(), runtime })
    }

    pub fn set_state(&self, state: AppState) {
        let _ = self.state.set(state);
    }

    /// Rolls `model` back when `version` is one of its non-control arms; returns what happened.
    pub async fn roll_back(
        state: &AppState,
        model: &str,
        version: Option<u64>,
        reason: String,
    ) -> Result<String, ApiError> {
        let Some(d) = state.registry.deployment(model) else {
            return Ok(format!("model '{model}' has no deployment; nothing to roll back"));
        };
        let control = d.arms.first().map(|a| a.version);
        let target = match version {
            Some(v) if Some(v) == control => {
                return Ok(format!(
                    "version {v} is model '{model}'s control arm; an automatic rollback only removes canaries"
                ));
            }
            Some(v) if d.arm_of(v).is_none() => {
                return Ok(format!("version {v} of model '{model}' takes no traffic; nothing to roll back"));
            }
            _ if d.arms.len() < 2 => return Ok(format!("model '{model}' has no canary; nothing to roll back")),
            other => other,
        };
        // Several alerts (one per pipeline, say) can fire for the same canary at once: the
        // first rolls it back, the others find nothing left to do under the registry's lock.
        let result = state
            .registry
            .update_deployment(model, |d| {
                let still = match target {
                    Some(v) => d.arm_of(v).is_some_and(|a| d.arms.first().is_none_or(|c| c.name != a.name)),
                    None => d.arms.len() > 1,
                };
                if !still {
                    return Err(DeployError::Conflict(ALREADY_DONE.into()));
                }
                d.rollback().map(|(d, v)| (d, json!({"retired": v, "alerted_version": target})))
            })
            .await;
        match result {
            Ok((deployment, out)) => {
                commit(
                    state,
                    ALERTING_ACTOR,
                    "deploy.rollback",
                    model,
                    Some(&deployment),
                    Some(reason),
                    json!({"result": out}),
                )
                .await?;
            }
            Err(ServingError::Deployment(m)) if m == ALREADY_DONE => {
                return Ok(format!("model '{model}' was already rolled back"));
            }
            Err(e) => {
                let e = ApiError::from(e);
                refused(state, ALERTING_ACTOR, "deploy.rollback", model, Some(reason), &e).await;
                return Err(e);
            }
        }
        Ok(format!("model '{model}' rolled back to version {}", control.unwrap_or_default()))
    }
}

impl recserve_alerting::Remediation for AutoRollback {
    fn on_fired(&self, alert: &recserve_alerting::Alert) {
        let labels = &alert.labels;
        let name = labels.get("alertname").cloned().unwrap_or_default();
        match labels.get(recserve_alerting::ACTION_LABEL).map(String::as_str) {
            Some("rollback") => {}
            other => {
                tracing::warn!(alert = %name, action = ?other, "unknown recserve_action; the only action is `rollback`");
                return;
            }
        }
        let Some(model) = labels.get("model").cloned() else {
            tracing::warn!(alert = %name, "a rollback alert without a `model` label cannot say what to roll back");
            return;
        };
        let version = labels.get("version").and_then(|v| v.parse::<u64>().ok());
        let Some(state) = self.state.get().cloned() else {
            tracing::warn!(alert = %name, "a rollback alert fired before the server was ready; ignoring it");
            return;
        };
        let summary = alert.annotations.get("summary").cloned().unwrap_or_default();
        let reason = format!(
            "alert {name} fired (value {}){}",
            alert.value,
            if summary.is_empty() { String::new() } else { format!(": {summary}") }
        );
        self.runtime.spawn(async move {
            match AutoRollback::roll_back(&state, &model, version, reason).await {
                Ok(what) => tracing::warn!(alert = %name, model = %model, "automatic rollback: {what}"),
                Err(e) => tracing::error!(alert = %name, model = %model, error = %e, "automatic rollback failed"),
            }
        });
    }
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> ApiError {
        ApiError::from(ServingError::from(e))
    }
}
