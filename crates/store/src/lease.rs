//! Leases: a named role (the alert evaluator) that at most one replica holds at a time, kept in
//! the `leases` table so every replica sharing the store agrees on the holder.
//!
//! [`Store::try_acquire_lease`] is the only operation a replica needs: called every few seconds,
//! it takes the lease when it is free or expired, renews it when the caller holds it, and
//! otherwise reports who does. The take-over is one conditional `UPDATE`, so two replicas racing
//! for an expired lease cannot both win. `term` grows each time the holder changes (a fencing
//! number the holder can put in what it writes). [`Store::release_lease`] lets a replica that
//! shuts down hand over at once instead of after the time to live.

use crate::config::Backend;
use crate::db::{Store, with_pool};
use crate::error::StoreError;

/// Longest lease name and holder name, in characters.
pub const MAX_LEASE_NAME_CHARS: usize = 190;

/// A lease as the store holds it after an acquire or renew attempt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lease {
    /// The lease's name.
    pub name: String,
    /// Who holds it ("" before anyone took it).
    pub holder: String,
    /// Until when, unix ms (the holder's clock).
    pub expires_ms: i64,
    /// Hand-over count: grows by one each time the holder changes.
    pub term: i64,
    /// When the current holder took it, unix ms.
    pub acquired_ms: i64,
}

impl Lease {
    /// Whether `who` holds the lease at `now_ms`.
    pub fn held_by(&self, who: &str, now_ms: i64) -> bool {
        self.holder == who && self.expires_ms > now_ms
    }
}

fn check(what: &'static str, value: &str) -> Result<(), StoreError> {
    crate::db::check_length(what, value, MAX_LEASE_NAME_CHARS)
}

impl Store {
    /// Takes lease `name` for `holder` until `now_ms + ttl_ms` when it is free, expired or
    /// already `holder`'s; returns the lease as it stands afterwards (check
    /// [`Lease::held_by`]).
    #[tracing::instrument(skip(self))]
    pub async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Lease, StoreError> {
        check("lease name", name)?;
        check("lease holder", holder)?;
        if ttl_ms <= 0 {
            return Err(StoreError::Invalid {
                what: "lease time to live",
                reason: format!("{ttl_ms} ms is not positive"),
            });
        }
        let create = match self.backend() {
            Backend::Sqlite => {
                "INSERT OR IGNORE INTO leases (name, holder, expires_ms, term, acquired_ms) VALUES (?, '', 0, 0, 0)"
            }
            Backend::MySql => {
                "INSERT IGNORE INTO leases (name, holder, expires_ms, term, acquired_ms) VALUES (?, '', 0, 0, 0)"
            }
        };
        with_pool!(self.pool(), p => sqlx::query(create).bind(name).execute(p).await.map(|r| r.rows_affected()))
            .map_err(self.err("creating a lease"))?;
        // MySQL evaluates SET assignments left to right with the new values, so `holder` comes
        // last: `term` and `acquired_ms` must still see the previous holder.
        let expires = now_ms.saturating_add(ttl_ms);
        with_pool!(self.pool(), p => sqlx::query(
            "UPDATE leases SET term = CASE WHEN holder = ? THEN term ELSE term + 1 END, \
             acquired_ms = CASE WHEN holder = ? THEN acquired_ms ELSE ? END, \
             expires_ms = ?, holder = ? \
             WHERE name = ? AND (holder = ? OR expires_ms <= ?)",
        )
        .bind(holder).bind(holder).bind(now_ms).bind(expires).bind(holder)
        .bind(name).bind(holder).bind(now_ms)
        .execute(p).await.map(|r| r.rows_affected()))
        .map_err(self.err("taking or renewing a lease"))?;
        self.lease(name).await?.ok_or_else(|| StoreError::Corrupt {
            target: self.describe(),
            table: "leases",
            reason: format!("lease {name:?} vanished right after it was written"),
        })
    }

    /// Lease `name` as stored, `None` before anyone asked for it.
    pub async fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        check("lease name", name)?;
        let row: Option<(String, String, i64, i64, i64)> = with_pool!(self.pool(), p => sqlx::query_as(
            "SELECT name, holder, expires_ms, term, acquired_ms FROM leases WHERE name = ?"
        ).bind(name).fetch_optional(p).await)
        .map_err(self.err("reading a lease"))?;
        Ok(row.map(|(name, holder, expires_ms, term, acquired_ms)| Lease {
            name,
            holder,
            expires_ms,
            term,
            acquired_ms,
        }))
    }

    /// Gives lease `name` up when `holder` holds it (it expires now, so another replica takes
    /// it at its next attempt); returns whether it did.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<bool, StoreError> {
        check("lease name", name)?;
        check("lease holder", holder)?;
        let done = with_pool!(self.pool(), p => sqlx::query(
            "UPDATE leases SET expires_ms = 0 WHERE name = ? AND holder = ? AND expires_ms > 0"
        ).bind(name).bind(holder).execute(p).await.map(|r| r.rows_affected()))
        .map_err(self.err("releasing a lease"))?;
        Ok(done > 0)
    }
}
