//! The alerting endpoints, in the shapes the tools users already have expect:
//!
//! - `GET /api/v1/alerts`, `GET /api/v1/rules`: Prometheus's HTTP API (firing and pending alerts;
//!   rule groups with health, last evaluation and last error);
//! - `POST /api/v1/rules/reload` (also `POST /-/reload`, as Prometheus): re-reads the rule files;
//!   a file with errors keeps the rules in use and answers 400 with every `file:line:col` error;
//! - `GET|POST /api/v2/silences`, `GET|DELETE /api/v2/silence/{id}`: Alertmanager's API v2
//!   (so `amtool --alertmanager.url` works against recserve);
//! - `GET /api/v1/notifications`: the notification log and each receiver's counters.
//!
//! Control-plane changes (reloads, silences) are written to the service log and committed to the
//! audit trail ([`crate::audit`]) before they are answered.

use crate::AppState;
use crate::audit::{self, Action};
use crate::error::ApiError;
use crate::rest::RequestId;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use recserve_alerting::{Alerting, AlertingError, ApiResponse, NewSilence, SilenceError};
use recserve_store::AuditOutcome;
use serde_json::json;
use std::sync::Arc;

fn alerting(state: &AppState) -> Result<&Arc<Alerting>, ApiError> {
    state.alerting.as_ref().ok_or_else(|| ApiError::NotFound("alerting is off in this server".to_string()))
}

/// `GET /api/v1/alerts`.
pub async fn alerts(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(ApiResponse::success(alerting(&state)?.alerts())).into_response())
}

/// `GET /api/v1/rules`.
pub async fn rules(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(ApiResponse::success(alerting(&state)?.rules())).into_response())
}

/// `POST /api/v1/rules/reload`.
pub async fn reload(
    State(state): State<AppState>,
    actor: audit::Actor,
    Extension(id): Extension<RequestId>,
) -> Result<Response, ApiError> {
    let alerting = alerting(&state)?.clone();
    let outcome = tokio::task::spawn_blocking(move || alerting.reload())
        .await
        .map_err(|e| ApiError::Internal(format!("rule reload panicked: {e}")))?;
    let audit = |outcome: AuditOutcome, reason: Option<String>, details: serde_json::Value| Action {
        action: "rules.reload",
        target: None,
        outcome,
        reason,
        details: Some(details),
        request_id: Some(&id.0),
    };
    match outcome {
        Ok(done) => {
            tracing::info!(groups = done.groups, rules = done.rules, "rules reloaded through the API");
            audit::record_as(
                &state,
                &actor,
                audit(AuditOutcome::Ok, None, json!({"groups": done.groups, "rules": done.rules})),
            )
            .await?;
            Ok(Json(json!({"status": "success", "data": {"groups": done.groups, "rules": done.rules}})).into_response())
        }
        Err(AlertingError::Rules(diagnostics)) => {
            let errors: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            tracing::warn!(errors = errors.len(), "rule reload refused; the rules in use stay");
            let reason = Some("the rule files have errors".to_string());
            audit::record_as(&state, &actor, audit(AuditOutcome::Failed, reason, json!({"errors": errors}))).await?;
            let body = json!({
                "error": format!("the rule files have errors; the rules in use stay:\n{}", errors.join("\n")),
                "errors": errors,
            });
            Ok((StatusCode::BAD_REQUEST, Json(body)).into_response())
        }
        Err(e) => Err(ApiError::Internal(format!("rule reload failed: {e}"))),
    }
}

fn silence_error(e: SilenceError) -> ApiError {
    match e {
        SilenceError::NotFound(_) => ApiError::NotFound(e.to_string()),
        SilenceError::Invalid(_) | SilenceError::AlreadyExpired(_) => ApiError::BadRequest(e.to_string()),
    }
}

/// `GET /api/v2/silences`.
pub async fn silences(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(alerting(&state)?.silences()).into_response())
}

/// `POST /api/v2/silences`: creates a silence from Alertmanager's `postableSilence` body.
pub async fn add_silence(
    State(state): State<AppState>,
    actor: audit::Actor,
    Extension(id): Extension<RequestId>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let alerting = alerting(&state)?;
    let new: NewSilence = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!("invalid silence: {e} (fields: matchers, startsAt, endsAt, createdBy, comment)"))
    })?;
    let silence = alerting.add_silence(new).map_err(silence_error)?;
    tracing::info!(id = %silence.id, created_by = %silence.created_by, comment = %silence.comment, "silence created");
    let action = Action {
        action: "silence.create",
        target: Some(&silence.id),
        outcome: AuditOutcome::Ok,
        reason: Some(silence.comment.clone()),
        details: serde_json::to_value(&silence).ok(),
        request_id: Some(&id.0),
    };
    audit::record_as(&state, &actor, action).await?;
    Ok(Json(json!({"silenceID": silence.id})).into_response())
}

/// `GET /api/v2/silence/{id}`.
pub async fn silence(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let found = alerting(&state)?.silences().into_iter().find(|s| s.silence.id == id);
    found.map(|s| Json(s).into_response()).ok_or_else(|| ApiError::NotFound(format!("silence {id} not found")))
}

/// `DELETE /api/v2/silence/{id}`: expires the silence now.
pub async fn expire_silence(
    State(state): State<AppState>,
    actor: audit::Actor,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    alerting(&state)?.expire_silence(&id).map_err(silence_error)?;
    tracing::info!(id = %id, "silence expired");
    let action = Action {
        action: "silence.expire",
        target: Some(&id),
        outcome: AuditOutcome::Ok,
        reason: None,
        details: None,
        request_id: Some(&request.0),
    };
    audit::record_as(&state, &actor, action).await?;
    Ok(StatusCode::OK.into_response())
}

/// `GET /api/v1/notifications`.
pub async fn notifications(State(state): State<AppState>) -> Result<Response, ApiError> {
    let alerting = alerting(&state)?;
    let body = json!({
        "status": "success",
        "data": {"receivers": alerting.target_stats(), "log": alerting.notification_log()},
    });
    Ok(Json(body).into_response())
}
