//! Log queries: [`LogQuery`] filters, [`StatusFilter`], and [`Page`]s, newest first, with keyset
//! paging on (time, id) so pages stay stable while records are being written.
//!
//! Filters that do not apply to a log are ignored: the service log has no model, version,
//! pipeline, status or user; the request log has no level. Text search is a case-insensitive
//! substring over message and fields (service) or error, input and output (requests).

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use std::sync::Arc;

use crate::blocks::{BlockSummary, Key, has_key};

use crate::db::Store;
use crate::error::StoreError;
use crate::records::{RequestRecord, ServiceRecord, level_number};

/// Block summaries read per statement while a request query walks the blocks.
const SUMMARY_PAGE: usize = 256;

/// What a request query read ([`Store::query_requests_with_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RequestQueryStats {
    /// Block summaries looked at.
    pub blocks_considered: u64,
    /// Blocks decompressed and filtered record by record.
    pub blocks_decoded: u64,
}

/// A request query's filters, checked against block summaries and then record by record.
#[derive(Debug)]
struct RequestFilter {
    from: Option<i64>,
    to: Option<i64>,
    cursor: Option<(i64, i64)>,
    request_id: Option<String>,
    model: Option<String>,
    version: Option<String>,
    pipeline: Option<String>,
    user: Option<String>,
    status: Option<StatusFilter>,
    /// Lower-cased.
    text: Option<String>,
}

impl RequestFilter {
    fn new(q: &LogQuery) -> Result<Self, StoreError> {
        let non_empty = |s: &Option<String>| s.as_deref().filter(|v| !v.is_empty()).map(str::to_string);
        Ok(RequestFilter {
            from: q.from_ms,
            to: q.to_ms,
            cursor: q.cursor.as_deref().filter(|c| !c.is_empty()).map(parse_cursor).transpose()?,
            request_id: non_empty(&q.request_id),
            model: q.model.clone(),
            version: q.version.clone(),
            pipeline: q.pipeline.clone(),
            user: q.user.clone(),
            status: q.status,
            text: non_empty(&q.text).map(|t| t.to_lowercase()),
        })
    }

    /// The latest time a match can have.
    fn upper(&self) -> Option<i64> {
        match (self.to, self.cursor) {
            (Some(to), Some((t, _))) => Some(to.min(t)),
            (to, c) => to.or(c.map(|(t, _)| t)),
        }
    }

    /// Whether block `s` can hold a match (false only when it certainly holds none).
    fn may_match(&self, s: &BlockSummary) -> bool {
        let keys = &s.key_hashes;
        let has = |key: Option<Key<'_>>| key.is_none_or(|k| has_key(keys, k));
        has(self.request_id.as_deref().map(Key::RequestId))
            && has(self.user.as_deref().map(Key::User))
            && has(self.model.as_deref().map(Key::Model))
            && has(self.version.as_deref().map(Key::Version))
            && has(self.pipeline.as_deref().map(Key::Pipeline))
            && match self.status {
                Some(StatusFilter::Ok) => s.records > s.errors,
                Some(StatusFilter::Error) => s.errors > 0,
                Some(StatusFilter::Code(c)) => has_key(keys, Key::Status(c)),
                None => true,
            }
    }

    /// Whether record `r` (id `id`) matches.
    fn matches(&self, id: i64, r: &RequestRecord) -> bool {
        let eq = |want: &Option<String>, got: &Option<String>| want.is_none() || want == got;
        self.from.is_none_or(|f| r.time_ms >= f)
            && self.to.is_none_or(|t| r.time_ms <= t)
            && self.cursor.is_none_or(|(t, cid)| r.time_ms < t || (r.time_ms == t && id < cid))
            && self.request_id.as_ref().is_none_or(|v| *v == r.request_id)
            && eq(&self.model, &r.model)
            && eq(&self.version, &r.version)
            && eq(&self.pipeline, &r.pipeline)
            && eq(&self.user, &r.user)
            && match self.status {
                Some(StatusFilter::Ok) => r.status < 400,
                Some(StatusFilter::Error) => r.status >= 400,
                Some(StatusFilter::Code(c)) => r.status == c,
                None => true,
            }
            && self.text.as_deref().is_none_or(|t| {
                [&r.error, &r.input, &r.output].into_iter().flatten().any(|v| v.to_lowercase().contains(t))
            })
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

/// Time range, request id, text and cursor: the service log's shared filters.
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

    /// Request log records matching `q`, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn query_requests(&self, q: &LogQuery) -> Result<Page<RequestRecord>, StoreError> {
        Ok(self.query_requests_with_stats(q).await?.0)
    }

    /// [`Store::query_requests`], also saying how many blocks it looked at and decoded.
    ///
    /// Blocks are walked newest `max_time_ms` first; a block is decoded only when its summary
    /// (time range, error count, key hashes) allows a match, and the walk stops once the page
    /// is full and no further block can hold a newer record than the page's last.
    pub async fn query_requests_with_stats(
        &self,
        q: &LogQuery,
    ) -> Result<(Page<RequestRecord>, RequestQueryStats), StoreError> {
        let filter = Arc::new(RequestFilter::new(q)?);
        let limit = limit_of(q.limit) as usize;
        let mut stats = RequestQueryStats::default();
        // The best `limit + 1` matches so far, newest first, by (time, id).
        let mut found: Vec<(i64, i64, RequestRecord)> = Vec::new();
        let mut after: Option<(i64, i64)> = None;
        'walk: loop {
            let summaries = self
                .block_summaries(
                    filter.from,
                    filter.upper(),
                    filter.status == Some(StatusFilter::Error),
                    after,
                    SUMMARY_PAGE,
                )
                .await?;
            for s in &summaries {
                if found.len() > limit && s.max_time_ms < found[limit].0 {
                    break 'walk;
                }
                stats.blocks_considered += 1;
                if !filter.may_match(s) {
                    continue;
                }
                stats.blocks_decoded += 1;
                let f = filter.clone();
                let matches = self.block_records_where(s.id, move |id, r| f.matches(id, r)).await?;
                found.extend(matches.into_iter().map(|(id, r)| (r.time_ms, id, r)));
                found.sort_unstable_by_key(|&(t, id, _)| std::cmp::Reverse((t, id)));
                found.truncate(limit + 1);
            }
            match summaries.last() {
                Some(last) if summaries.len() == SUMMARY_PAGE => after = Some((last.max_time_ms, last.id)),
                _ => break,
            }
        }
        let more = found.len() > limit;
        found.truncate(limit);
        let next_cursor = if more { found.last().map(|(t, id, _)| make_cursor(*t, *id)) } else { None };
        Ok((Page { records: found.into_iter().map(|(_, _, r)| r).collect(), next_cursor }, stats))
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
