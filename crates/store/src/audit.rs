//! The audit trail: one [`AuditRecord`] per control-plane action and sign-in in the `audit`
//! table, and [`AuditQuery`] over it (newest first, keyset paging on (time, id) like the logs).
//!
//! [`Store::audit`] commits before it returns (it does not go through the lossy log writer): an
//! action is acknowledged only after its audit row is committed. On SQLite that commit is made
//! with `synchronous = FULL`, so it also survives an OS crash or power loss (the rest of the
//! store runs at `NORMAL`); MySQL commits durably with InnoDB's default
//! `innodb_flush_log_at_trx_commit = 1`.
//!
//! Retention ([`crate::retention`]) never deletes audit rows.
//!
//! Values are checked rather than cut, so a row says exactly what happened: `actor` and `action`
//! must be 1 to 190 characters, `role` at most 190, `target` at most 255, `details` JSON text.
//! `request_id` and `replica` are cut to 255 characters like in the request log, so they still
//! match it.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use crate::db::{InsertedId, Pool, Store};
use crate::error::StoreError;
use crate::query::{Arg, Page, fetch_rows, limit_of, make_cursor, time_and_cursor};
use crate::writer::short;

/// Longest actor, role and action, in characters.
pub const MAX_AUDIT_NAME_CHARS: usize = 190;
/// Longest target, in characters.
pub const MAX_AUDIT_TARGET_CHARS: usize = 255;

/// How an audited action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// Done.
    Ok,
    /// Refused: the actor may not do it.
    Denied,
    /// Allowed, but it failed.
    Failed,
}

impl AuditOutcome {
    /// `ok`, `denied` or `failed` (what is stored).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failed => "failed",
        }
    }
}

impl std::fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditOutcome {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ok" => Ok(AuditOutcome::Ok),
            "denied" => Ok(AuditOutcome::Denied),
            "failed" => Ok(AuditOutcome::Failed),
            _ => Err(StoreError::Invalid {
                what: "audit outcome",
                reason: format!("expected \"ok\", \"denied\" or \"failed\", got {s:?}"),
            }),
        }
    }
}

/// One audited action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The row id: ignored by [`Store::audit`] (which returns the new id), set on records read
    /// back by [`Store::query_audit`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// When, unix ms.
    pub time_ms: i64,
    /// Who (user name, token name, `system` for the server's own actions).
    pub actor: String,
    /// The actor's role, if roles are in use.
    pub role: Option<String>,
    /// What, e.g. `silence.create`, `deployment.promote`, `rules.reload`, `auth.sign_in`.
    pub action: String,
    /// On what, e.g. a silence id or `ranker/3`.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Why (a denial's or failure's reason, a comment given with the action).
    pub reason: Option<String>,
    /// More about the action, JSON text.
    pub details: Option<String>,
    /// The request that asked for it.
    pub request_id: Option<String>,
    /// The replica that handled it.
    pub replica: Option<String>,
}

impl AuditRecord {
    /// A record with everything optional empty.
    pub fn new(time_ms: i64, actor: impl Into<String>, action: impl Into<String>, outcome: AuditOutcome) -> Self {
        Self {
            id: None,
            time_ms,
            actor: actor.into(),
            role: None,
            action: action.into(),
            target: None,
            outcome,
            reason: None,
            details: None,
            request_id: None,
            replica: None,
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        let chars = |what: &'static str, v: &str, min: usize, max: usize| {
            let n = v.chars().count();
            if n < min || n > max {
                return Err(StoreError::Invalid {
                    what,
                    reason: format!("expected {min} to {max} characters, got {n}"),
                });
            }
            Ok(())
        };
        chars("audit actor", &self.actor, 1, MAX_AUDIT_NAME_CHARS)?;
        chars("audit action", &self.action, 1, MAX_AUDIT_NAME_CHARS)?;
        if let Some(role) = &self.role {
            chars("audit role", role, 0, MAX_AUDIT_NAME_CHARS)?;
        }
        if let Some(target) = &self.target {
            chars("audit target", target, 0, MAX_AUDIT_TARGET_CHARS)?;
        }
        if let Some(details) = &self.details {
            serde_json::from_str::<serde::de::IgnoredAny>(details).map_err(|e| StoreError::Invalid {
                what: "audit details",
                reason: format!("expected JSON text: {e}"),
            })?;
        }
        Ok(())
    }
}

/// An audit query. All filters are optional and combine with AND.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// Records at or after this time (unix ms).
    pub from_ms: Option<i64>,
    /// Records at or before this time (unix ms).
    pub to_ms: Option<i64>,
    /// Exactly this actor.
    pub actor: Option<String>,
    /// Actions starting with this (case-sensitive), e.g. `deployment.` or `auth.sign_in`.
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<AuditOutcome>,
    /// Records per page (default 100, at most 1000).
    pub limit: Option<u32>,
    /// Where the previous page ended ([`Page::next_cursor`]).
    pub cursor: Option<String>,
}

#[derive(FromRow)]
struct AuditRow {
    id: i64,
    time_ms: i64,
    actor: String,
    role: Option<String>,
    action: String,
    target: Option<String>,
    outcome: String,
    reason: Option<String>,
    details: Option<String>,
    request_id: Option<String>,
    replica: Option<String>,
}

const INSERT_AUDIT: &str = "INSERT INTO audit (time_ms, actor, role, action, target, outcome, reason, details, request_id, replica) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Binds one audit row (same order as [`INSERT_AUDIT`]).
macro_rules! bind_audit {
    ($q:expr, $r:expr) => {{
        let r: &AuditRecord = $r;
        $q.bind(r.time_ms)
            .bind(r.actor.as_str())
            .bind(r.role.as_deref())
            .bind(r.action.as_str())
            .bind(r.target.as_deref())
            .bind(r.outcome.as_str())
            .bind(r.reason.as_deref())
            .bind(r.details.as_deref())
            .bind(r.request_id.as_deref().map(short))
            .bind(r.replica.as_deref().map(short))
    }};
}

/// A case-sensitive prefix pattern: SQLite `GLOB` (its `LIKE` ignores ASCII case), MySQL `LIKE`
/// with `!` as the escape (case-sensitive under the binary collation). Both can use the index.
fn prefix_pattern(prefix: &str, mysql: bool) -> (String, &'static str) {
    let mut p = String::with_capacity(prefix.len() + 4);
    if mysql {
        for c in prefix.chars() {
            if matches!(c, '%' | '_' | '!') {
                p.push('!');
            }
            p.push(c);
        }
        p.push('%');
        (p, "action LIKE ? ESCAPE '!'")
    } else {
        for c in prefix.chars() {
            match c {
                '*' | '?' | '[' => {
                    p.push('[');
                    p.push(c);
                    p.push(']');
                }
                _ => p.push(c),
            }
        }
        p.push('*');
        (p, "action GLOB ?")
    }
}

impl Store {
    /// Writes `record` and returns its id once the row is committed (see the module docs).
    #[tracing::instrument(skip_all, fields(action = %record.action, outcome = %record.outcome))]
    pub async fn audit(&self, record: &AuditRecord) -> Result<u64, StoreError> {
        record.check()?;
        let what = "writing an audit record";
        let id = match self.pool() {
            Pool::Sqlite(p) => {
                let mut conn = p.acquire().await.map_err(self.err(what))?;
                sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await.map_err(self.err(what))?;
                let inserted = bind_audit!(sqlx::query(INSERT_AUDIT), record).execute(&mut *conn).await;
                if let Err(err) = sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await {
                    // The connection stays at FULL: slower commits, nothing lost.
                    tracing::warn!(store = %self.describe(), %err, "could not set synchronous = NORMAL back after an audit write");
                }
                inserted.map_err(self.err(what))?.inserted_id().map_err(self.err(what))?
            }
            Pool::MySql(p) => {
                let done = bind_audit!(sqlx::query(INSERT_AUDIT), record).execute(p).await.map_err(self.err(what))?;
                done.inserted_id().map_err(self.err(what))?
            }
        };
        u64::try_from(id).map_err(|_| StoreError::Corrupt {
            target: self.describe(),
            table: "audit",
            reason: format!("new row id {id}"),
        })
    }

    /// Audit records matching `q`, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn query_audit(&self, q: &AuditQuery) -> Result<Page<AuditRecord>, StoreError> {
        let mut f = time_and_cursor(q.from_ms, q.to_ms, q.cursor.as_deref())?;
        if let Some(actor) = q.actor.as_deref() {
            f.push("actor = ?", [Arg::Str(actor.to_string())]);
        }
        if let Some(prefix) = q.action.as_deref().filter(|p| !p.is_empty()) {
            let (pattern, condition) = prefix_pattern(prefix, self.is_mysql());
            f.push(condition, [Arg::Str(pattern)]);
        }
        if let Some(outcome) = q.outcome {
            f.push("outcome = ?", [Arg::Str(outcome.as_str().to_string())]);
        }
        let limit = limit_of(q.limit);
        let sql = format!(
            "SELECT id, time_ms, actor, role, action, target, outcome, reason, details, request_id, replica \
             FROM audit {} ORDER BY time_ms DESC, id DESC LIMIT {}",
            f.sql(),
            limit + 1
        );
        let rows = fetch_rows!(self, AuditRow, sql, &f.args).map_err(self.err("querying the audit trail"))?;
        let more = rows.len() > limit as usize;
        let mut records = Vec::with_capacity(rows.len().min(limit as usize));
        let mut last = None;
        for r in rows.into_iter().take(limit as usize) {
            last = Some((r.time_ms, r.id));
            let corrupt = |reason: String| StoreError::Corrupt { target: self.describe(), table: "audit", reason };
            let outcome = r.outcome.parse().map_err(|_| corrupt(format!("row {}: outcome {:?}", r.id, r.outcome)))?;
            let id = u64::try_from(r.id).map_err(|_| corrupt(format!("row id {}", r.id)))?;
            records.push(AuditRecord {
                id: Some(id),
                time_ms: r.time_ms,
                actor: r.actor,
                role: r.role,
                action: r.action,
                target: r.target,
                outcome,
                reason: r.reason,
                details: r.details,
                request_id: r.request_id,
                replica: r.replica,
            });
        }
        Ok(Page { records, next_cursor: if more { last.map(|(t, id)| make_cursor(t, id)) } else { None } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_patterns_escape_their_wildcards() {
        assert_eq!(prefix_pattern("deployment.", true), ("deployment.%".to_string(), "action LIKE ? ESCAPE '!'"));
        assert_eq!(prefix_pattern("a_b%c!", true).0, "a!_b!%c!!%");
        assert_eq!(prefix_pattern("deployment.", false), ("deployment.*".to_string(), "action GLOB ?"));
        assert_eq!(prefix_pattern("a*b?[c]", false).0, "a[*]b[?][[]c]*");
    }

    #[test]
    fn outcomes_parse_and_print() {
        for o in [AuditOutcome::Ok, AuditOutcome::Denied, AuditOutcome::Failed] {
            assert_eq!(o.as_str().parse::<AuditOutcome>().ok(), Some(o));
            assert_eq!(serde_json::to_string(&o).ok(), Some(format!("\"{o}\"")));
        }
        let err = "maybe".parse::<AuditOutcome>().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("audit outcome") && err.contains("maybe"), "{err}");
    }
}
