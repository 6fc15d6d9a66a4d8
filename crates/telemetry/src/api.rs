//! The Prometheus HTTP API over the series store: `/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`.
//!
//! This module owns the request parameter types, the parsers for times (`RFC 3339` or unix
//! seconds) and durations (`15s`, `1h30m` or seconds), and the response shapes
//! ([`ApiResponse`]) with Prometheus's JSON layout: values as `[unix_seconds, "value"]`, errors as
//! `{"status":"error","errorType":"bad_data","error":"…"}`. The handlers are plain functions:
//! the server's axum handlers (or the example's hand-written HTTP server) pass the parsed
//! parameters and write `response.to_json()` with `response.http_status()`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::QueryError;
use crate::exposition::format_float;
use crate::labels::LabelSet;
use crate::promql::{self, RangeSeries, Value};
use crate::store::SeriesStore;

/// Earliest time accepted when a series/labels request gives no start.
const MIN_TIME_MS: i64 = i64::MIN / 4;
/// Latest time accepted when a series/labels request gives no end.
const MAX_TIME_MS: i64 = i64::MAX / 4;

/// The parameters of `/api/v1/query`.
#[derive(Debug, Clone, Default)]
pub struct QueryParams {
    /// `query`.
    pub query: Option<String>,
    /// `time` (RFC 3339 or unix seconds); default now.
    pub time: Option<String>,
}

/// The parameters of `/api/v1/query_range`.
#[derive(Debug, Clone, Default)]
pub struct RangeParams {
    /// `query`.
    pub query: Option<String>,
    /// `start`.
    pub start: Option<String>,
    /// `end`.
    pub end: Option<String>,
    /// `step` (duration or seconds).
    pub step: Option<String>,
}

/// The parameters of `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`.
#[derive(Debug, Clone, Default)]
pub struct SeriesParams {
    /// Every `match[]`.
    pub matchers: Vec<String>,
    /// `start`.
    pub start: Option<String>,
    /// `end`.
    pub end: Option<String>,
}

impl QueryParams {
    /// From decoded form pairs.
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        Self { query: last(pairs, "query"), time: last(pairs, "time") }
    }
}

impl RangeParams {
    /// From decoded form pairs.
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        Self {
            query: last(pairs, "query"),
            start: last(pairs, "start"),
            end: last(pairs, "end"),
            step: last(pairs, "step"),
        }
    }
}

impl SeriesParams {
    /// From decoded form pairs (`match[]` may repeat).
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        Self {
            matchers: pairs.iter().filter(|(k, _)| k == "match[]").map(|(_, v)| v.clone()).collect(),
            start: last(pairs, "start"),
            end: last(pairs, "end"),
        }
    }
}

fn last(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// Decodes an `application/x-www-form-urlencoded` string (a URL query or a POST body).
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a time as Prometheus does: unix seconds (may be fractional) or RFC 3339. Returns unix ms.
pub fn parse_time(s: &str) -> Result<i64, QueryError> {
    if let Ok(secs) = s.parse::<f64>()
        && secs.is_finite()
    {
        return Ok((secs * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| QueryError::BadParameter(format!("cannot parse {s:?} to a valid timestamp")))
}

/// Parses a duration parameter as Prometheus's API does: seconds (may be fractional) or a
/// Prometheus duration (`1h30m`, `15s`, `100ms`; see [`parse_prometheus_duration`]). Returns
/// milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, QueryError> {
    let bad = || QueryError::BadParameter(format!("cannot parse {s:?} to a valid duration"));
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return Err(bad());
        }
        return Ok((secs * 1000.0).round() as i64);
    }
    parse_prometheus_duration(s).ok().and_then(|ms| i64::try_from(ms).ok()).ok_or_else(bad)
}

/// Prometheus's duration units with their length in milliseconds, longest first.
pub const DURATION_UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus duration (`[0-9]+(ms|s|m|h|d|w|y)`, units in decreasing order, each at
/// most once; `0` alone is allowed) into milliseconds.
pub fn parse_prometheus_duration(s: &str) -> Result<u64, String> {
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    let bad = || format!("not a valid duration string: {s:?}");
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut next_unit = 0;
    let mut total: u64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let n: u64 = s[start..i].parse().map_err(|_| bad())?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let pos = DURATION_UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
        if pos < next_unit {
            return Err(bad());
        }
        next_unit = pos + 1;
        total = n
            .checked_mul(DURATION_UNITS[pos].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration out of range: {s:?}"))?;
    }
    Ok(total)
}

/// A `[unix seconds, "value"]` pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiPoint(pub f64, pub String);

impl ApiPoint {
    fn new(t_ms: i64, v: f64) -> Self {
        Self(t_ms as f64 / 1000.0, format_float(v))
    }
}

/// One element of a vector result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiVectorSample {
    /// Labels.
    pub metric: BTreeMap<String, String>,
    /// `[t, "v"]`.
    pub value: ApiPoint,
}

/// One series of a matrix result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiMatrixSeries {
    /// Labels.
    pub metric: BTreeMap<String, String>,
    /// `[[t, "v"], …]`.
    pub values: Vec<ApiPoint>,
}

/// A query result (`result` field).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ApiResult {
    /// Instant vector.
    Vector(Vec<ApiVectorSample>),
    /// Range vector.
    Matrix(Vec<ApiMatrixSeries>),
    /// Scalar or string.
    Point(ApiPoint),
}

/// The `data` of a query response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryData {
    /// `vector`, `matrix`, `scalar` or `string`.
    #[serde(rename = "resultType")]
    pub result_type: &'static str,
    /// The result.
    pub result: ApiResult,
}

/// The `data` of any response.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ApiData {
    /// Query and range query.
    Query(QueryData),
    /// `/api/v1/series`.
    Series(Vec<BTreeMap<String, String>>),
    /// `/api/v1/labels` and label values.
    Strings(Vec<String>),
}

/// A whole response body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiResponse {
    /// `success` or `error`.
    pub status: &'static str,
    /// The data on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<ApiData>,
    /// `bad_data`, `execution`, `internal` on error.
    #[serde(rename = "errorType", skip_serializing_if = "Option::is_none")]
    pub error_type: Option<&'static str>,
    /// The message on error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ApiResponse {
    /// A success response.
    pub fn success(data: ApiData) -> Self {
        Self { status: "success", data: Some(data), error_type: None, error: None }
    }

    /// An error response of `error_type` (`bad_data`, `execution`, `internal`).
    pub fn error(error_type: &'static str, message: impl Into<String>) -> Self {
        Self { status: "error", data: None, error_type: Some(error_type), error: Some(message.into()) }
    }

    fn from_query_error(param: &str, err: QueryError) -> Self {
        match err {
            QueryError::Parse(m) => Self::error("bad_data", format!("invalid parameter \"{param}\": {m}")),
            QueryError::BadParameter(m) => Self::error("bad_data", m),
            e @ QueryError::Unsupported(_) => Self::error("bad_data", e.to_string()),
            QueryError::Execution(m) => Self::error("execution", m),
        }
    }

    /// The HTTP status Prometheus uses for this response.
    pub fn http_status(&self) -> u16 {
        match self.error_type {
            None => 200,
            Some("bad_data") => 400,
            Some("execution") => 422,
            Some(_) => 500,
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"status\":\"error\",\"errorType\":\"internal\",\"error\":\"{e}\"}}"))
    }
}

fn metric_map(l: &LabelSet) -> BTreeMap<String, String> {
    l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn matrix_result(m: Vec<RangeSeries>) -> ApiResult {
    ApiResult::Matrix(
        m.into_iter()
            .map(|s| ApiMatrixSeries {
                metric: metric_map(&s.labels),
                values: s.points.into_iter().map(|(t, v)| ApiPoint::new(t, v)).collect(),
            })
            .collect(),
    )
}

/// Converts an evaluated value at `t_ms` into the API's `data`.
pub fn value_to_data(value: Value, t_ms: i64) -> QueryData {
    let result_type = value.type_name();
    let result = match value {
        Value::Scalar(v) => ApiResult::Point(ApiPoint::new(t_ms, v)),
        Value::String(s) => ApiResult::Point(ApiPoint(t_ms as f64 / 1000.0, s)),
        Value::Vector(vs) => ApiResult::Vector(
            vs.into_iter()
                .map(|s| ApiVectorSample { metric: metric_map(&s.labels), value: ApiPoint::new(t_ms, s.value) })
                .collect(),
        ),
        Value::Matrix(m) => matrix_result(m),
    };
    QueryData { result_type, result }
}

fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, ApiResponse> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiResponse::error("bad_data", format!("invalid parameter \"{name}\": parameter is required")))
}

fn time_param(v: &Option<String>, name: &str, default: i64) -> Result<i64, ApiResponse> {
    match v.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => {
            parse_time(s).map_err(|e| ApiResponse::error("bad_data", format!("invalid parameter \"{name}\": {e}")))
        }
    }
}

/// `/api/v1/query`.
pub fn query(store: &SeriesStore, params: &QueryParams, now_ms: i64) -> ApiResponse {
    let run = || -> Result<ApiResponse, ApiResponse> {
        let q = required(&params.query, "query")?;
        let t = time_param(&params.time, "time", now_ms)?;
        let value = promql::instant_query(store, q, t).map_err(|e| ApiResponse::from_query_error("query", e))?;
        Ok(ApiResponse::success(ApiData::Query(value_to_data(value, t))))
    };
    run().unwrap_or_else(|e| e)
}

/// `/api/v1/query_range`.
pub fn query_range(store: &SeriesStore, params: &RangeParams) -> ApiResponse {
    let run = || -> Result<ApiResponse, ApiResponse> {
        let q = required(&params.query, "query")?;
        let start = time_param(&Some(required(&params.start, "start")?.to_string()), "start", 0)?;
        let end = time_param(&Some(required(&params.end, "end")?.to_string()), "end", 0)?;
        if end < start {
            return Err(ApiResponse::error("bad_data", "end timestamp must not be before start time"));
        }
        let step = parse_duration(required(&params.step, "step")?)
            .map_err(|e| ApiResponse::error("bad_data", format!("invalid parameter \"step\": {e}")))?;
        let m =
            promql::range_query(store, q, start, end, step).map_err(|e| ApiResponse::from_query_error("query", e))?;
        Ok(ApiResponse::success(ApiData::Query(QueryData { result_type: "matrix", result: matrix_result(m) })))
    };
    run().unwrap_or_else(|e| e)
}

type SeriesFilter = Box<dyn Fn(&LabelSet) -> bool>;

fn series_filter(matchers: &[String], required_param: bool) -> Result<SeriesFilter, ApiResponse> {
    if matchers.is_empty() {
        if required_param {
            return Err(ApiResponse::error("bad_data", "no match[] parameter provided"));
        }
        return Ok(Box::new(|_| true));
    }
    let mut selectors = Vec::new();
    for m in matchers {
        match promql::parse(m) {
            Ok(promql_parser::parser::Expr::VectorSelector(vs)) => selectors.push(vs),
            Ok(_) => {
                return Err(ApiResponse::error(
                    "bad_data",
                    format!("invalid parameter \"match[]\": {m:?} is not a series selector"),
                ));
            }
            Err(e) => return Err(ApiResponse::error("bad_data", format!("invalid parameter \"match[]\": {e}"))),
        }
    }
    Ok(Box::new(move |l| selectors.iter().any(|vs| crate::promql::selector_matches(vs, l))))
}

/// `/api/v1/series`.
pub fn series(store: &SeriesStore, params: &SeriesParams) -> ApiResponse {
    let run = || -> Result<ApiResponse, ApiResponse> {
        let filter = series_filter(&params.matchers, true)?;
        let start = time_param(&params.start, "start", MIN_TIME_MS)?;
        let end = time_param(&params.end, "end", MAX_TIME_MS)?;
        let list = store.series_labels(&*filter, start, end).iter().map(metric_map).collect();
        Ok(ApiResponse::success(ApiData::Series(list)))
    };
    run().unwrap_or_else(|e| e)
}

/// `/api/v1/labels`.
pub fn labels(store: &SeriesStore, params: &SeriesParams) -> ApiResponse {
    let run = || -> Result<ApiResponse, ApiResponse> {
        let filter = series_filter(&params.matchers, false)?;
        let start = time_param(&params.start, "start", MIN_TIME_MS)?;
        let end = time_param(&params.end, "end", MAX_TIME_MS)?;
        Ok(ApiResponse::success(ApiData::Strings(store.label_names(&*filter, start, end))))
    };
    run().unwrap_or_else(|e| e)
}

/// `/api/v1/label/<name>/values`.
pub fn label_values(store: &SeriesStore, name: &str, params: &SeriesParams) -> ApiResponse {
    let run = || -> Result<ApiResponse, ApiResponse> {
        let filter = series_filter(&params.matchers, false)?;
        let start = time_param(&params.start, "start", MIN_TIME_MS)?;
        let end = time_param(&params.end, "end", MAX_TIME_MS)?;
        Ok(ApiResponse::success(ApiData::Strings(store.label_values(name, &*filter, start, end))))
    };
    run().unwrap_or_else(|e| e)
}
