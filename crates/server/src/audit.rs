//! The audit trail of control-plane actions: each one (rule reload, silence created or expired,
//! and later deployments and sign-ins) is committed to the store's audit table before its
//! answer, with who, what, on what, the outcome and why; `GET /api/v1/audit` searches it.
//!
//! The actor is `token:<name>` for a request authenticated with a bearer token (handlers take
//! it with the [`Actor`] extractor, which reads the [`crate::auth::Identity`] the auth
//! middleware put in the request), else [`ANONYMOUS`]; the token's role goes in the `role`
//! column. The request id ties each entry to the request log.

use crate::AppState;
use crate::error::ApiError;
use axum::Json;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use recserve_store::{AuditOutcome, AuditQuery, AuditRecord};
use recserve_telemetry::api::{parse_form, parse_time};
use serde_json::json;

/// The actor of requests that carry no identity.
pub const ANONYMOUS: &str = "anonymous";

/// Who is acting, as the audit trail names it: `token:<name>` for an authenticated request,
/// [`ANONYMOUS`] otherwise. An extractor; it dereferences to the actor text, so it goes where
/// [`record_as`] takes `&str`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    /// The actor of an authenticated identity (or of none).
    pub fn of(identity: Option<&crate::auth::Identity>) -> Actor {
        Actor(identity.map(crate::auth::Identity::actor).unwrap_or_else(|| ANONYMOUS.to_string()))
    }
}

impl std::ops::Deref for Actor {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Actor, Self::Rejection> {
        Ok(Actor::of(parts.extensions.get::<crate::auth::Identity>()))
    }
}

/// One control-plane action to audit.
pub struct Action<'a> {
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub outcome: AuditOutcome,
    pub reason: Option<String>,
    pub details: Option<serde_json::Value>,
    pub request_id: Option<&'a str>,
}

/// Commits `action` to the audit trail (when the server has a store). A failure to write it is
/// an error the caller answers with: an action is acknowledged only once audited.
pub async fn record(state: &AppState, action: Action<'_>) -> Result<(), ApiError> {
    record_as(state, ANONYMOUS, action).await
}

/// [`record`] with a named actor (e.g. `alerting` for an automatic rollback).
pub async fn record_as(state: &AppState, actor: &str, action: Action<'_>) -> Result<(), ApiError> {
    let Some(store) = &state.store else { return Ok(()) };
    let mut record = AuditRecord::new(recserve_telemetry::store::now_ms(), actor, action.action, action.outcome);
    record.role = actor.strip_prefix("token:").and_then(|name| state.auth.role_of(name)).map(|r| r.to_string());
    record.target = action.target.map(str::to_string);
    record.reason = action.reason;
    record.details = action.details.map(|d| d.to_string());
    record.request_id = action.request_id.map(str::to_string);
    record.replica = state.fleet.as_ref().map(|f| f.config.replica.clone());
    store.audit(&record).await.map(|_| ()).map_err(|e| {
        tracing::error!(action = action.action, error = %e, "cannot write the audit trail");
        ApiError::Unavailable(format!("the action was carried out but could not be audited: {e}"))
    })
}

/// `GET /api/v1/audit?start&end&actor&action (prefix)&outcome&limit&cursor`, newest first.
pub async fn query(State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let store = state
        .store
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("this server keeps no audit trail: it was started without a store".into()))?;
    let mut query = AuditQuery::default();
    let bad = |m: String| ApiError::BadRequest(m);
    for (key, value) in parse_form(q.as_deref().unwrap_or("")) {
        if value.is_empty() {
            continue;
        }
        match key.as_str() {
            "start" => query.from_ms = Some(parse_time(&value).map_err(|e| bad(format!("start: {e}")))?),
            "end" => query.to_ms = Some(parse_time(&value).map_err(|e| bad(format!("end: {e}")))?),
            "actor" => query.actor = Some(value),
            "action" => query.action = Some(value),
            "outcome" => {
                query.outcome = Some(
                    value.parse().map_err(|_| bad(format!("outcome must be ok, denied or failed, not '{value}'")))?,
                )
            }
            "limit" => {
                query.limit =
                    Some(
                        value.parse().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                            bad(format!("limit must be a whole number from 1 to 1000, not '{value}'"))
                        })?,
                    )
            }
            "cursor" => query.cursor = Some(value),
            other => {
                return Err(bad(format!(
                    "unknown parameter '{other}'; the parameters are start, end, actor, action, outcome, limit, cursor"
                )));
            }
        }
    }
    let page = store.query_audit(&query).await.map_err(|e| match e {
        e @ recserve_store::StoreError::BadQuery { .. } => ApiError::BadRequest(e.to_string()),
        e => ApiError::Unavailable(format!("the audit trail cannot answer: {e}")),
    })?;
    Ok(Json(json!({"status": "success", "data": {"records": page.records, "next_cursor": page.next_cursor}}))
        .into_response())
}
