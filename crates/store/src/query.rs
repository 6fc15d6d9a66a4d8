//! Log queries: [`LogQuery`] filters, [`StatusFilter`], and [`Page`]s, newest first, with keyset
//! paging on (time, id) so pages stay stable while records are being written.
//!
//! Filters that do not apply to a log are ignored: the service log has no model, version,
//! pipeline, status or user; the request log has no level. Text search is a case-insensitive
//! substring over message and fields (service) or error, input and output (requests).

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use crate::db::Store;
use crate::error::StoreError;
use crate::records::{RequestRecord, ServiceRecord, level_number};

/// Characters of `user_hash` that SQLite's user index holds (migration 0006 indexes
/// `substr(user_hash, 1, 8)`; the query must name the same expression to use it).
pub(crate) const USER_KEY_CHARS: usize = 8;

/// The first [`USER_KEY_CHARS`] characters of a user value (SQLite's `substr` counts characters).
fn user_key(user: &str) -> &str {
    match user.char_indices().nth(USER_KEY_CHARS) {
        Some((i, _)) => &user[..i],
        None => user,
    }
}

/// Records per page when the query gives no limit.
pub const DEFAULT_LIMIT: u32 = 100;
/// Records per page at most.
pub const MAX_LIMIT: u32 = 1000;

/// A log query. All filters are optional and combine with AND.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LogQuery {
    /// Records at or after this time (unix ms).
    pub from_ms: Option<i64>,
    /// Records at or before this time (unix ms).
    pub to_ms: Option<i64>,
    /// Model name (requests).
    pub model: Option<String>,
    /// Model version (requests).
    pub version: Option<String>,
    /// Pipeline (requests).
    pub pipeline: Option<String>,
    /// Status class or code (requests).
    pub status: Option<StatusFilter>,
    /// Request id (both logs).
    pub request_id: Option<String>,
    /// Pseudonymised user id (requests); the server hashes the raw id it is given.
    pub user: Option<String>,
    /// Minimum level, e.g. WARN → WARN and ERROR (service log).
    pub level: Option<String>,
    /// Case-insensitive substring.
    pub text: Option<String>,
    /// Records per page (default 100, at most 1000).
    pub limit: Option<u32>,
    /// Where the previous page ended ([`Page::next_cursor`]).
    pub cursor: Option<String>,
}

/// Which request statuses to return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum StatusFilter {
    /// Status below 400.
    Ok,
    /// Status 400 or above.
    Error,
    /// Exactly this status.
    Code(u16),
}

impl FromStr for StatusFilter {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "ok" => Ok(StatusFilter::Ok),
            "error" | "err" => Ok(StatusFilter::Error),
            _ => match t.parse::<u16>() {
                Ok(code) if (100..=999).contains(&code) => Ok(StatusFilter::Code(code)),
                _ => Err(StoreError::BadQuery {
                    field: "status",
                    reason: format!("expected \"ok\", \"error\" or a status code 100-999, got {t:?}"),
                }),
            },
        }
    }
}

impl TryFrom<String> for StatusFilter {
    type Error = StoreError;

    fn try_from(s: String) -> Result<Self, StoreError> {
        s.parse()
    }
}

/// One page of records, newest first.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Page<T> {
    /// The records.
    pub records: Vec<T>,
    /// Pass as [`LogQuery::cursor`] for the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A bound value of a dynamic WHERE clause.
pub(crate) enum Arg {
    I64(i64),
    Str(String),
}

/// A WHERE clause being built.
#[derive(Default)]
pub(crate) struct Filter {
    conditions: Vec<String>,
    pub(crate) args: Vec<Arg>,
}

impl Filter {
    pub(crate) fn push(&mut self, condition: &str, args: impl IntoIterator<Item = Arg>) {
        self.conditions.push(condition.to_string());
        self.args.extend(args);
    }

    pub(crate) fn sql(&self) -> String {
        if self.conditions.is_empty() { String::new() } else { format!("WHERE {}", self.conditions.join(" AND ")) }
    }
}

/// The position a page ends at: (time, id) of its last record.
pub(crate) fn parse_cursor(cursor: &str) -> Result<(i64, i64), StoreError> {
    let bad =
        || StoreError::BadQuery { field: "cursor", reason: format!("not a cursor from a previous page: {cursor:?}") };
    let (t, id) = cursor.trim().split_once('_').ok_or_else(bad)?;
    Ok((t.parse().map_err(|_| bad())?, id.parse().map_err(|_| bad())?))
}

pub(crate) fn make_cursor(time_ms: i64, id: i64) -> String {
    format!("{time_ms}_{id}")
}

/// `%text%` with LIKE's wildcards escaped by `!`.
fn like_pattern(text: &str, mysql: bool) -> String {
    let lowered = if mysql { text.to_lowercase() } else { text.to_ascii_lowercase() };
    let mut p = String::with_capacity(lowered.len() + 2);
    p.push('%');
    for c in lowered.chars() {
        if matches!(c, '%' | '_' | '!') {
            p.push('!');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Records per page: `limit` (default [`DEFAULT_LIMIT`]) within 1..=[`MAX_LIMIT`].
pub(crate) fn limit_of(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

/// The time range and the keyset cursor on (time_ms, id): what every paged table shares.
pub(crate) fn time_and_cursor(
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    cursor: Option<&str>,
) -> Result<Filter, StoreError> {
    let mut f = Filter::default();
    if let Some(from) = from_ms {
        f.push("time_ms >= ?", [Arg::I64(from)]);
    }
    if let Some(to) = to_ms {
        f.push("time_ms <= ?", [Arg::I64(to)]);
    }
    if let Some(cursor) = cursor.filter(|s| !s.is_empty()) {
        let (t, id) = parse_cursor(cursor)?;
        f.push("(time_ms < ? OR (time_ms = ? AND id < ?))", [Arg::I64(t), Arg::I64(t), Arg::I64(id)]);
    }
    Ok(f)
}

/// Time range, request id, text and cursor: the filters both logs share.
fn common(q: &LogQuery, text_columns: &[&str], mysql: bool) -> Result<Filter, StoreError> {
    let mut f = time_and_cursor(q.from_ms, q.to_ms, q.cursor.as_deref())?;
    if let Some(id) = q.request_id.as_deref().filter(|s| !s.is_empty()) {
        f.push("request_id = ?", [Arg::Str(id.to_string())]);
    }
    if let Some(text) = q.text.as_deref().filter(|s| !s.is_empty()) {
        let pattern = like_pattern(text, mysql);
        let ors: Vec<String> = text_columns.iter().map(|c| format!("LOWER({c}) LIKE ? ESCAPE '!'")).collect();
        f.push(&format!("({})", ors.join(" OR ")), text_columns.iter().map(|_| Arg::Str(pattern.clone())));
    }
    Ok(f)
}

#[derive(FromRow)]
struct RequestRow {
    id: i64,
    request_id: String,
    time_ms: i64,
    replica: Option<String>,
    model: Option<String>,
    version: Option<String>,
    arm: Option<String>,
    pipeline: Option<String>,
    user_hash: Option<String>,
    raw_user: Option<String>,
    input: Option<String>,
    output: Option<String>,
    stages: String,
    latency_ms: f64,
    status: i32,
    error: Option<String>,
}

#[derive(FromRow)]
struct ServiceRow {
    id: i64,
    time_ms: i64,
    replica: Option<String>,
    level: String,
    target: String,
    message: String,
    fields: String,
    request_id: Option<String>,
}

/// Runs `SELECT <columns> FROM <table> <filter> ORDER BY time_ms DESC, id DESC LIMIT n` and
/// decodes rows as `$row`.
macro_rules! fetch_rows {
    ($store:expr, $row:ty, $sql:expr, $args:expr) => {{
        let sql: String = $sql;
        $crate::db::with_pool!($store.pool(), p => {
            let mut q = sqlx::query_as::<_, $row>(sqlx::AssertSqlSafe(sql));
            for a in $args {
                q = match a {
                    $crate::query::Arg::I64(v) => q.bind(*v),
                    $crate::query::Arg::Str(v) => q.bind(v.clone()),
                };
            }
            q.fetch_all(p).await
        })
    }};
}
pub(crate) use fetch_rows;

impl Store {
    pub(crate) fn is_mysql(&self) -> bool {
        self.backend() == crate::Backend::MySql
    }

    /// The request-log query of `q`: its SQL text, filter (with the bound values) and page size.
    fn request_query(&self, q: &LogQuery) -> Result<(String, Filter, u32), StoreError> {
        let mut f = common(q, &["error", "input", "output"], self.is_mysql())?;
        for (column, value) in [("model", &q.model), ("version", &q.version), ("pipeline", &q.pipeline)] {
            if let Some(v) = value.as_deref() {
                f.push(&format!("{column} = ?"), [Arg::Str(v.to_string())]);
            }
        }
        if let Some(user) = q.user.as_deref() {
            if self.is_mysql() {
                f.push("user_hash = ?", [Arg::Str(user.to_string())]);
            } else {
                // SQLite's user index is on the pseudonym's first characters (migration 0006):
                // the prefix finds the index range, the whole value picks the rows.
                f.push(
                    &format!("substr(user_hash, 1, {USER_KEY_CHARS}) = ? AND user_hash = ?"),
                    [Arg::Str(user_key(user).to_string()), Arg::Str(user.to_string())],
                );
            }
        }
        match q.status {
            Some(StatusFilter::Ok) => f.push("status < 400", []),
            Some(StatusFilter::Error) => f.push("status >= 400", []),
            Some(StatusFilter::Code(c)) => f.push("status = ?", [Arg::I64(i64::from(c))]),
            None => {}
        }
        let limit = limit_of(q.limit);
        let sql = format!(
            "SELECT id, request_id, time_ms, replica, model, version, arm, pipeline, user_hash, raw_user, input, \
             output, stages, latency_ms, status, error FROM request_log {} ORDER BY time_ms DESC, id DESC LIMIT {}",
            f.sql(),
            limit + 1
        );
        Ok((sql, f, limit))
    }

    /// SQLite's plan (`EXPLAIN QUERY PLAN`, one `detail` line per step) of the query
    /// [`Store::query_requests`] runs for `q`: which index serves which filter. Empty on MySQL.
    pub async fn explain_request_query(&self, q: &LogQuery) -> Result<Vec<String>, StoreError> {
        let crate::db::Pool::Sqlite(p) = self.pool() else {
            return Ok(Vec::new());
        };
        let (sql, f, _) = self.request_query(q)?;
        let mut query =
            sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
        for a in &f.args {
            query = match a {
                Arg::I64(v) => query.bind(*v),
                Arg::Str(v) => query.bind(v.clone()),
            };
        }
        let rows = query.fetch_all(p).await.map_err(self.err("explaining a request log query"))?;
        Ok(rows.into_iter().map(|(_, _, _, detail)| detail).collect())
    }

    /// Request log records matching `q`, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn query_requests(&self, q: &LogQuery) -> Result<Page<RequestRecord>, StoreError> {
        let (sql, f, limit) = self.request_query(q)?;
        let rows = fetch_rows!(self, RequestRow, sql, &f.args).map_err(self.err("querying the request log"))?;
        let more = rows.len() > limit as usize;
        let mut records = Vec::with_capacity(rows.len().min(limit as usize));
        let mut last = None;
        for r in rows.into_iter().take(limit as usize) {
            last = Some((r.time_ms, r.id));
            let corrupt =
                |reason: String| StoreError::Corrupt { target: self.describe(), table: "request_log", reason };
            let stages: Vec<(String, f64)> = serde_json::from_str(&r.stages)
                .map_err(|e| corrupt(format!("row {}: stages {:?}: {e}", r.id, r.stages)))?;
            let stages = stages.into_iter().map(|(name, ms)| (name.into(), ms)).collect();
            let status = u16::try_from(r.status).map_err(|_| corrupt(format!("row {}: status {}", r.id, r.status)))?;
            records.push(RequestRecord {
                request_id: r.request_id,
                time_ms: r.time_ms,
                replica: r.replica,
                model: r.model,
                version: r.version,
                arm: r.arm,
                pipeline: r.pipeline,
                user: r.user_hash,
                raw_user: r.raw_user,
                input: r.input,
                output: r.output,
                stages,
                latency_ms: r.latency_ms,
                status,
                error: r.error,
            });
        }
        Ok(Page { records, next_cursor: if more { last.map(|(t, id)| make_cursor(t, id)) } else { None } })
    }

    /// Service log records matching `q`, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn query_service(&self, q: &LogQuery) -> Result<Page<ServiceRecord>, StoreError> {
        let mut f = common(q, &["message", "fields"], self.is_mysql())?;
        if let Some(level) = q.level.as_deref().filter(|s| !s.trim().is_empty()) {
            let n = level_number(level).ok_or_else(|| StoreError::BadQuery {
                field: "level",
                reason: format!("expected one of ERROR, WARN, INFO, DEBUG, TRACE, got {level:?}"),
            })?;
            f.push("level_num >= ?", [Arg::I64(i64::from(n))]);
        }
        let limit = limit_of(q.limit);
        let sql = format!(
            "SELECT id, time_ms, replica, level, target, message, fields, request_id FROM service_log {} \
             ORDER BY time_ms DESC, id DESC LIMIT {}",
            f.sql(),
            limit + 1
        );
        let rows = fetch_rows!(self, ServiceRow, sql, &f.args).map_err(self.err("querying the service log"))?;
        let more = rows.len() > limit as usize;
        let mut last = None;
        let records = rows
            .into_iter()
            .take(limit as usize)
            .map(|r| {
                last = Some((r.time_ms, r.id));
                ServiceRecord {
                    time_ms: r.time_ms,
                    replica: r.replica,
                    level: r.level,
                    target: r.target,
                    message: r.message,
                    fields: r.fields,
                    request_id: r.request_id,
                }
            })
            .collect();
        Ok(Page { records, next_cursor: if more { last.map(|(t, id)| make_cursor(t, id)) } else { None } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_filter_parses() {
        assert_eq!("ok".parse::<StatusFilter>().ok(), Some(StatusFilter::Ok));
        assert_eq!("ERROR".parse::<StatusFilter>().ok(), Some(StatusFilter::Error));
        assert_eq!("503".parse::<StatusFilter>().ok(), Some(StatusFilter::Code(503)));
        let err = "teapot".parse::<StatusFilter>().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("status") && err.contains("teapot"), "{err}");
        assert!("70000".parse::<StatusFilter>().is_err());
    }

    #[test]
    fn user_keys_are_the_first_characters() {
        assert_eq!(user_key("0123456789abcdef"), "01234567");
        assert_eq!(user_key("user-1"), "user-1");
        assert_eq!(user_key("ééééééééé"), "éééééééé");
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_Off!", false), "%50!%!_off!!%");
    }

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        assert_eq!(parse_cursor(&make_cursor(-5, 42)).ok(), Some((-5, 42)));
        assert!(parse_cursor("abc").is_err());
        assert!(parse_cursor("1_x").is_err());
    }
}
