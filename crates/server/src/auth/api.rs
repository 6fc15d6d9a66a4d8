//! The token API (admin only, by [`super::policy`]) and the dashboard's sign-in:
//!
//! - `POST /api/v1/tokens` `{"name", "role", "expires_days"?}` → 201 with the token's record and
//!   its secret (`token`), shown this once; audited `token.create`;
//! - `GET /api/v1/tokens` → every token (revoked and expired ones too), never a secret or hash;
//! - `DELETE /api/v1/tokens/{id}` → the revoked token; audited `token.revoke`;
//! - `POST /api/v1/auth/sign-in` `{"token"}` (open) → the token's name and role, or 401;
//!   audited `auth.sign_in` either way;
//! - `GET /api/v1/auth/status` (open) → whether authentication is enforced and, when the
//!   request carries a usable token, whose it is (the dashboard decides on it whether to show
//!   its sign-in form).
//!
//! A change through this API reloads the in-memory token table at once.

use super::{Identity, Role};
use crate::AppState;
use crate::audit::{self, Action, Actor};
use crate::error::ApiError;
use crate::rest::RequestId;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use recserve_store::{AuditOutcome, Store, StoreError, TokenRecord};
use serde::Deserialize;
use serde_json::{Value, json};

/// Longest expiry a token can be given, in days (ten years).
pub const MAX_EXPIRES_DAYS: u64 = 3650;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    role: String,
    expires_days: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    token: String,
}

fn store(state: &AppState) -> Result<&Store, ApiError> {
    state
        .auth
        .store()
        .ok_or_else(|| ApiError::NotFound("this server keeps no tokens: it was started without a store".into()))
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        e @ StoreError::Invalid { .. } => ApiError::BadRequest(e.to_string()),
        e => ApiError::Unavailable(format!("the token store cannot answer: {e}")),
    }
}

/// A token as the API shows it: the record plus whether it works now.
fn view(record: &TokenRecord) -> Value {
    let mut v = serde_json::to_value(record).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert("usable".into(), json!(record.usable_at(recserve_telemetry::store::now_ms())));
    }
    v
}

/// Checks a create request; `Ok((name, role, expires_ms))`.
fn parse_create(bytes: &[u8]) -> Result<(String, Role, Option<i64>), ApiError> {
    let body: CreateBody = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid token request: {e} (fields: name, role, expires_days)")))?;
    let role: Role = body.role.parse().map_err(ApiError::BadRequest)?;
    let expires_ms = expires_at(body.expires_days).map_err(|e| ApiError::BadRequest(format!("expires_days {e}")))?;
    Ok((body.name, role, expires_ms))
}

/// When a token given `days` (1 to [`MAX_EXPIRES_DAYS`]) expires, unix ms; `None` → never.
/// The error says what was expected (the caller names the field).
pub fn expires_at(days: Option<u64>) -> Result<Option<i64>, String> {
    match days {
        None => Ok(None),
        Some(d) if (1..=MAX_EXPIRES_DAYS).contains(&d) => {
            Ok(Some(recserve_telemetry::store::now_ms() + i64::try_from(d * 86_400_000).unwrap_or(i64::MAX)))
        }
        Some(d) => Err(format!("must be a whole number of days from 1 to {MAX_EXPIRES_DAYS}, not {d}")),
    }
}

/// Reloads the token table after a change (a failure leaves the next periodic reload to it).
async fn reload(state: &AppState) {
    if let Err(e) = state.auth.reload().await {
        tracing::warn!(error = %e, "cannot re-read the tokens after a change; the next refresh will");
    }
}

/// `POST /api/v1/tokens`.
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    Extension(id): Extension<RequestId>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let (name, role, expires_ms) = parse_create(&bytes)?;
    let token = store.create_token(&name, role.as_str(), expires_ms).await.map_err(store_error)?;
    reload(&state).await;
    tracing::info!(token_id = %token.record.id, name = %name, role = %role, actor = %&*actor, "token created");
    let action = Action {
        action: "token.create",
        target: Some(&token.record.id),
        outcome: AuditOutcome::Ok,
        reason: None,
        details: Some(json!({"name": name, "role": role, "expires_ms": expires_ms})),
        request_id: Some(&id.0),
    };
    audit::record_as(&state, &actor, action).await?;
    let mut data = view(&token.record);
    data["token"] = json!(token.secret);
    Ok((StatusCode::CREATED, Json(json!({"status": "success", "data": data}))).into_response())
}

/// `GET /api/v1/tokens`.
pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let tokens = store(&state)?.list_tokens().await.map_err(store_error)?;
    let data: Vec<Value> = tokens.iter().map(view).collect();
    Ok(Json(json!({"status": "success", "data": data})).into_response())
}

/// `DELETE /api/v1/tokens/{id}`.
pub async fn revoke(
    State(state): State<AppState>,
    actor: Actor,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let record = store
        .revoke_token(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::NotFound(format!("no token with id {id:?} (GET /api/v1/tokens lists them)")))?;
    reload(&state).await;
    tracing::info!(token_id = %id, name = %record.name, actor = %&*actor, "token revoked");
    let action = Action {
        action: "token.revoke",
        target: Some(&id),
        outcome: AuditOutcome::Ok,
        reason: None,
        details: Some(json!({"name": record.name, "role": record.role})),
        request_id: Some(&request.0),
    };
    audit::record_as(&state, &actor, action).await?;
    Ok(Json(json!({"status": "success", "data": view(&record)})).into_response())
}

/// `POST /api/v1/auth/sign-in`: checks the token in the body, answers its name and role.
pub async fn sign_in(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let body: SignInBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid sign-in request: {e} (expected {{\"token\": \"…\"}})")))?;
    let what = "POST /api/v1/auth/sign-in";
    match state.auth.verify_secret(body.token.trim()) {
        Ok(identity) => {
            audit_sign_in(&state, Some(&identity), AuditOutcome::Ok, None, &request.0).await?;
            tracing::info!(token_id = %identity.token_id, name = %identity.name, "signed in");
            let data = json!({"name": identity.name, "role": identity.role, "id": identity.token_id,
                              "enforcing": state.auth.enforcing()});
            Ok(Json(json!({"status": "success", "data": data})).into_response())
        }
        Err(refusal) => {
            state.auth.refused(&refusal, what, super::Access::Open);
            let reason = Some(refusal.error(what).to_string());
            audit_sign_in(&state, refusal.identity(), AuditOutcome::Denied, reason, &request.0).await?;
            Ok(super::refusal_response(&refusal, what))
        }
    }
}

async fn audit_sign_in(
    state: &AppState,
    identity: Option<&Identity>,
    outcome: AuditOutcome,
    reason: Option<String>,
    request_id: &str,
) -> Result<(), ApiError> {
    let action = Action {
        action: "auth.sign_in",
        target: identity.map(|i| i.token_id.as_str()),
        outcome,
        reason,
        details: None,
        request_id: Some(request_id),
    };
    audit::record_as(state, &Actor::of(identity), action).await
}

/// `GET /api/v1/auth/status`.
pub async fn status(State(state): State<AppState>, identity: Option<Extension<Identity>>) -> Response {
    let who = identity.map(|Extension(i)| json!({"name": i.name, "role": i.role, "id": i.token_id}));
    let data = json!({"enforcing": state.auth.enforcing(), "mode": state.auth.mode().as_str(), "identity": who});
    Json(json!({"status": "success", "data": data})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_requests_are_checked() {
        let (name, role, exp) = parse_create(br#"{"name": "ci", "role": "operator", "expires_days": 2}"#).unwrap();
        assert_eq!((name.as_str(), role), ("ci", Role::Operator));
        let in_two_days = recserve_telemetry::store::now_ms() + 2 * 86_400_000;
        assert!(exp.is_some_and(|e| (in_two_days - 5_000..=in_two_days).contains(&e)));
        let e = parse_create(br#"{"name": "ci", "role": "root"}"#).unwrap_err();
        assert_eq!(e.http_status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("admin, operator, viewer, inference"), "{e}");
        let e = parse_create(br#"{"name": "ci", "role": "viewer", "expires_days": 0}"#).unwrap_err();
        assert!(e.to_string().contains("expires_days"), "{e}");
        let e = parse_create(br#"{"name": "ci", "rolle": "viewer"}"#).unwrap_err();
        assert!(e.to_string().contains("fields: name, role, expires_days"), "{e}");
    }
}
