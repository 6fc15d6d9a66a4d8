//! `GET /api/v1/logs`: the request log and the service log, searched in the store.
//!
//! Parameters (all optional): `kind` (`requests`, the default, or `service`), `start` and `end`
//! (unix seconds or RFC 3339, as the Prometheus API takes them), `model`, `version`, `pipeline`,
//! `status` (`ok`, `error` or an HTTP code), `request_id`, `user` (a raw user id: the server
//! hashes it with the request log's key, so the store is searched by pseudonym), `level` (the
//! lowest service-log level shown: `error`, `warn`, `info`, `debug`, `trace`), `q` (free text),
//! `limit` (1 to 1000, default 100), `cursor` (the `next_cursor` of the previous page), and
//! `format` (`json`, the default, or `jsonl` to export every matching record as JSON lines, up to
//! [`MAX_EXPORT`] records).

use crate::AppState;
use crate::error::ApiError;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use recserve_store::{LogQuery, Page, StatusFilter, Store};
use recserve_telemetry::api::{parse_form, parse_time};
use serde::Serialize;

/// The most records one JSON-lines export returns.
pub const MAX_EXPORT: usize = 100_000;

const PARAMETERS: &[&str] = &[
    "kind",
    "start",
    "end",
    "model",
    "version",
    "pipeline",
    "status",
    "request_id",
    "user",
    "level",
    "q",
    "limit",
    "cursor",
    "format",
];

/// Which log is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Requests,
    Service,
}

/// A parsed `/api/v1/logs` request.
#[derive(Debug, Clone)]
pub struct LogsRequest {
    pub kind: LogKind,
    pub query: LogQuery,
    pub jsonl: bool,
    /// The raw user id asked for (hashed before the query runs).
    pub raw_user: Option<String>,
}

/// Parses the query string; every error names the parameter.
pub fn parse_request(query: &str) -> Result<LogsRequest, ApiError> {
    let bad = |m: String| ApiError::BadRequest(m);
    let mut request = LogsRequest { kind: LogKind::Requests, query: LogQuery::default(), jsonl: false, raw_user: None };
    for (key, value) in parse_form(query) {
        let text = || (!value.is_empty()).then(|| value.clone());
        match key.as_str() {
            "kind" => {
                request.kind = match value.as_str() {
                    "requests" | "request" | "" => LogKind::Requests,
                    "service" => LogKind::Service,
                    other => return Err(bad(format!("kind must be 'requests' or 'service', not '{other}'"))),
                }
            }
            "start" if !value.is_empty() => {
                request.query.from_ms = Some(parse_time(&value).map_err(|e| bad(format!("start: {e}")))?)
            }
            "end" if !value.is_empty() => {
                request.query.to_ms = Some(parse_time(&value).map_err(|e| bad(format!("end: {e}")))?)
            }
            "model" => request.query.model = text(),
            "version" => request.query.version = text(),
            "pipeline" => request.query.pipeline = text(),
            "status" if !value.is_empty() => {
                request.query.status = Some(
                    value
                        .parse::<StatusFilter>()
                        .map_err(|e| bad(format!("status must be 'ok', 'error' or an HTTP code: {e}")))?,
                )
            }
            "request_id" => request.query.request_id = text(),
            "user" => request.raw_user = text(),
            "level" if !value.is_empty() => {
                let level = value.to_ascii_uppercase();
                if !["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level.as_str()) {
                    return Err(bad(format!("level must be one of error, warn, info, debug, trace, not '{value}'")));
                }
                request.query.level = Some(level);
            }
            "q" => request.query.text = text(),
            "limit" if !value.is_empty() => {
                let limit: u32 = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| bad(format!("limit must be a whole number from 1 to 1000, not '{value}'")))?;
                request.query.limit = Some(limit);
            }
            "cursor" => request.query.cursor = text(),
            "format" => {
                request.jsonl = match value.as_str() {
                    "json" | "" => false,
                    "jsonl" | "ndjson" => true,
                    other => return Err(bad(format!("format must be 'json' or 'jsonl', not '{other}'"))),
                }
            }
            "start" | "end" | "status" | "level" | "limit" => {}
            other => {
                return Err(bad(format!("unknown parameter '{other}'; the parameters are {}", PARAMETERS.join(", "))));
            }
        }
    }
    if let (Some(from), Some(to)) = (request.query.from_ms, request.query.to_ms)
        && from > to
    {
        return Err(bad("start is after end".to_string()));
    }
    Ok(request)
}

#[derive(Serialize)]
struct Answer<T: Serialize> {
    status: &'static str,
    data: AnswerData<T>,
}

#[derive(Serialize)]
struct AnswerData<T: Serialize> {
    kind: &'static str,
    records: Vec<T>,
    next_cursor: Option<String>,
}

fn store_error(e: recserve_store::StoreError) -> ApiError {
    ApiError::Unavailable(format!("the log store cannot answer: {e}"))
}

async fn page_of(
    store: &Store,
    kind: LogKind,
    query: &LogQuery,
) -> Result<(Vec<serde_json::Value>, Option<String>), ApiError> {
    fn values<T: Serialize>(page: Page<T>) -> (Vec<serde_json::Value>, Option<String>) {
        let records = page.records.iter().filter_map(|r| serde_json::to_value(r).ok()).collect();
        (records, page.next_cursor)
    }
    Ok(match kind {
        LogKind::Requests => values(store.query_requests(query).await.map_err(store_error)?),
        LogKind::Service => values(store.query_service(query).await.map_err(store_error)?),
    })
}

/// `GET /api/v1/logs`.
pub async fn logs(State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let store = state
        .store
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("this server keeps no logs: it was started without a store".to_string()))?;
    let mut request = parse_request(q.as_deref().unwrap_or(""))?;
    if let Some(raw) = request.raw_user.take() {
        let log = state.request_log.as_ref().ok_or_else(|| {
            ApiError::BadRequest("cannot search by user: the request log is off in this server".to_string())
        })?;
        request.query.user = Some(log.pseudonymize(&raw));
    }
    let kind_name = match request.kind {
        LogKind::Requests => "requests",
        LogKind::Service => "service",
    };
    if !request.jsonl {
        let (records, next_cursor) = page_of(store, request.kind, &request.query).await?;
        let body = Answer { status: "success", data: AnswerData { kind: kind_name, records, next_cursor } };
        return Ok(axum::Json(body).into_response());
    }
    let mut query = request.query.clone();
    query.limit = Some(1000);
    let mut out = String::new();
    let mut count = 0;
    loop {
        let (records, next) = page_of(store, request.kind, &query).await?;
        for r in records.into_iter().take(MAX_EXPORT - count) {
            out.push_str(&r.to_string());
            out.push('\n');
            count += 1;
        }
        match next {
            Some(cursor) if count < MAX_EXPORT => query.cursor = Some(cursor),
            _ => break,
        }
    }
    let disposition = format!("attachment; filename=\"recserve-{kind_name}-log.jsonl\"");
    let mut response = out.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_parsed_and_errors_name_them() {
        let r = parse_request("kind=service&level=warn&start=10&end=20&q=boom&limit=5").unwrap();
        assert_eq!(r.kind, LogKind::Service);
        assert_eq!(r.query.level.as_deref(), Some("WARN"));
        assert_eq!((r.query.from_ms, r.query.to_ms), (Some(10_000), Some(20_000)));
        assert_eq!(r.query.text.as_deref(), Some("boom"));
        assert_eq!(r.query.limit, Some(5));
        for (q, word) in [
            ("kind=x", "kind"),
            ("limit=0", "limit"),
            ("limit=5000", "limit"),
            ("level=loud", "level"),
            ("start=yesterday", "start"),
            ("status=fine", "status"),
            ("format=xml", "format"),
            ("colour=red", "colour"),
            ("start=20&end=10", "start is after end"),
        ] {
            let e = parse_request(q).unwrap_err().to_string();
            assert!(e.contains(word), "{q}: {e}");
        }
    }
}
