//! State documents: control-plane state that survives restarts and is shared by replicas (alert
//! states, silences, later deployments and traffic splits), one JSON [`Document`] per name in the
//! `state_documents` table.
//!
//! Every write increments the document's `version` (created at 1) and the global state revision
//! (the one row of `state_revision`) in the same transaction, and stamps the document with the
//! new revision. Writes are serialised by taking the revision row first, so revisions are handed
//! out in commit order on both backends. That gives replicas a cheap poll that does not depend on
//! their clocks agreeing: read [`Store::state_revision`] (one primary-key row); when it moved past
//! the last value seen, [`Store::documents_changed_since`] returns the documents written since
//! then, together with the revision they are current as of.
//!
//! [`Store::put_document_if`] is compare-and-set on the version: of concurrent writers that
//! read the same version, exactly one wins. [`SqlStateDocuments`] is the same API for sync
//! callers, on a store thread of its own.

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use crate::config::StoreConfig;
use crate::db::{Store, now_ms, with_pool};
use crate::error::StoreError;
use crate::thread::StoreThread;

/// Longest document name, in characters (the MySQL primary key is `VARCHAR(190)`).
pub const MAX_DOCUMENT_NAME_CHARS: usize = 190;

/// One stored state document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// The name, e.g. `alerting/silences`.
    pub name: String,
    /// The JSON text.
    pub body: String,
    /// Writes of this document so far (1 after it was created).
    pub version: u64,
    /// When it was last written, unix ms (the writing replica's clock).
    pub updated_ms: i64,
    /// The state revision its last write took.
    pub revision: u64,
}

/// What changed since a revision ([`Store::documents_changed_since`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChanges {
    /// The state revision these documents are current as of: pass it to the next poll.
    pub revision: u64,
    /// The documents written after the revision asked for, oldest write first.
    pub documents: Vec<Document>,
}

#[derive(FromRow)]
struct DocumentRow {
    name: String,
    body: String,
    version: i64,
    updated_ms: i64,
    revision: i64,
}

fn check_name(name: &str) -> Result<(), StoreError> {
    crate::db::check_length("state document name", name, MAX_DOCUMENT_NAME_CHARS)
}

fn check_body(name: &str, body: &str) -> Result<(), StoreError> {
    serde_json::from_str::<serde::de::IgnoredAny>(body).map(|_| ()).map_err(|e| StoreError::Invalid {
        what: "state document body",
        reason: format!("document {name:?}: expected JSON text: {e}"),
    })
}

fn to_i64(what: &'static str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid { what, reason: format!("{v} is above {}", i64::MAX) })
}

impl Store {
    fn document_of(&self, r: DocumentRow) -> Result<Document, StoreError> {
        let corrupt = |field: &str, v: i64| StoreError::Corrupt {
            target: self.describe(),
            table: "state_documents",
            reason: format!("document {:?}: {field} {v}", r.name),
        };
        let version = u64::try_from(r.version).map_err(|_| corrupt("version", r.version))?;
        let revision = u64::try_from(r.revision).map_err(|_| corrupt("revision", r.revision))?;
        Ok(Document { name: r.name, body: r.body, version, updated_ms: r.updated_ms, revision })
    }

    fn revision_of(&self, v: i64) -> Result<u64, StoreError> {
        u64::try_from(v).map_err(|_| StoreError::Corrupt {
            target: self.describe(),
            table: "state_revision",
            reason: format!("revision {v}"),
        })
    }

    /// The document `name`, `None` when there is none.
    #[tracing::instrument(skip(self))]
    pub async fn get_document(&self, name: &str) -> Result<Option<Document>, StoreError> {
        check_name(name)?;
        let row: Option<DocumentRow> = with_pool!(self.pool(), p => sqlx::query_as(
            "SELECT name, body, version, updated_ms, revision FROM state_documents WHERE name = ?"
        ).bind(name).fetch_optional(p).await)
        .map_err(self.err("reading a state document"))?;
        row.map(|r| self.document_of(r)).transpose()
    }

    /// Writes `body` (JSON text) as the document `name`, creating it at version 1 or
    /// incrementing its version; returns the new version. The commit has happened when this
    /// returns.
    #[tracing::instrument(skip(self, body))]
    pub async fn put_document(&self, name: &str, body: &str) -> Result<u64, StoreError> {
        check_name(name)?;
        check_body(name, body)?;
        let now = now_ms();
        let version: i64 = with_pool!(self.pool(), p => crate::db::transaction(p, async |tx| {
            // The first statement writes: it takes SQLite's write lock (waiting out other writers
            // with the busy timeout, which a read-then-write transaction could not) or the
            // counter row's lock on MySQL, before anything is read. All document writes take this
            // one lock first, so they serialise without deadlocks.
            sqlx::query("UPDATE state_revision SET revision = revision + 1 WHERE id = 1").execute(&mut **tx).await?;
            let revision: i64 =
                sqlx::query_scalar("SELECT revision FROM state_revision WHERE id = 1").fetch_one(&mut **tx).await?;
            let updated = sqlx::query(
                "UPDATE state_documents SET body = ?, version = version + 1, updated_ms = ?, revision = ? WHERE name = ?",
            )
            .bind(body).bind(now).bind(revision).bind(name)
            .execute(&mut **tx).await?
            .rows_affected();
            if updated == 0 {
                sqlx::query("INSERT INTO state_documents (name, body, version, updated_ms, revision) VALUES (?, ?, 1, ?, ?)")
                    .bind(name).bind(body).bind(now).bind(revision)
                    .execute(&mut **tx).await?;
            }
            let version: i64 =
                sqlx::query_scalar("SELECT version FROM state_documents WHERE name = ?").bind(name).fetch_one(&mut **tx).await?;
            Ok(crate::db::Finish::Commit(version))
        }).await)
        .map_err(self.err("writing a state document"))?;
        u64::try_from(version).map_err(|_| StoreError::Corrupt {
            target: self.describe(),
            table: "state_documents",
            reason: format!("document {name:?}: version {version}"),
        })
    }

    /// Compare-and-set: writes `body` as the document `name` only if its version is still
    /// `expected_version` (0: only if there is no such document yet). Returns the new version,
    /// or `None` when the document has moved on (nothing is written then).
    #[tracing::instrument(skip(self, body))]
    pub async fn put_document_if(
        &self,
        name: &str,
        body: &str,
        expected_version: u64,
    ) -> Result<Option<u64>, StoreError> {
        check_name(name)?;
        check_body(name, body)?;
        let expected = to_i64("expected document version", expected_version)?;
        let now = now_ms();
        let written: bool = with_pool!(self.pool(), p => crate::db::transaction(p, async |tx| {
            // Lock order as in put_document.
            sqlx::query("UPDATE state_revision SET revision = revision + 1 WHERE id = 1").execute(&mut **tx).await?;
            let revision: i64 =
                sqlx::query_scalar("SELECT revision FROM state_revision WHERE id = 1").fetch_one(&mut **tx).await?;
            let written = if expected == 0 {
                let exists: Option<i64> = sqlx::query_scalar("SELECT version FROM state_documents WHERE name = ?")
                    .bind(name).fetch_optional(&mut **tx).await?;
                if exists.is_none() {
                    sqlx::query("INSERT INTO state_documents (name, body, version, updated_ms, revision) VALUES (?, ?, 1, ?, ?)")
                        .bind(name).bind(body).bind(now).bind(revision)
                        .execute(&mut **tx).await?;
                }
                exists.is_none()
            } else {
                sqlx::query(
                    "UPDATE state_documents SET body = ?, version = version + 1, updated_ms = ?, revision = ? \
                     WHERE name = ? AND version = ?",
                )
                .bind(body).bind(now).bind(revision).bind(name).bind(expected)
                .execute(&mut **tx).await?
                .rows_affected() == 1
            };
            // The revision is not bumped by a write that did not happen.
            Ok(if written { crate::db::Finish::Commit(written) } else { crate::db::Finish::Rollback(written) })
        }).await)
        .map_err(self.err("writing a state document (compare-and-set)"))?;
        Ok(written.then_some(expected_version + 1))
    }

    /// The global state revision: the number of document writes so far. A replica polls this
    /// and calls [`Store::documents_changed_since`] when it moved.
    pub async fn state_revision(&self) -> Result<u64, StoreError> {
        let v: i64 = with_pool!(self.pool(), p =>
            sqlx::query_scalar("SELECT revision FROM state_revision WHERE id = 1").fetch_one(p).await)
        .map_err(self.err("reading the state revision"))?;
        self.revision_of(v)
    }

    /// The documents written after state revision `revision` (0: all of them) and the revision
    /// they are current as of, read in one transaction.
    #[tracing::instrument(skip(self))]
    pub async fn documents_changed_since(&self, revision: u64) -> Result<StateChanges, StoreError> {
        let since = to_i64("state revision", revision)?;
        let (now, rows): (i64, Vec<DocumentRow>) = with_pool!(self.pool(), p => crate::db::transaction(p, async |tx| {
            let now: i64 = sqlx::query_scalar("SELECT revision FROM state_revision WHERE id = 1").fetch_one(&mut **tx).await?;
            let rows: Vec<DocumentRow> = sqlx::query_as(
                "SELECT name, body, version, updated_ms, revision FROM state_documents WHERE revision > ? ORDER BY revision",
            )
            .bind(since).fetch_all(&mut **tx).await?;
            Ok(crate::db::Finish::Commit((now, rows)))
        }).await)
        .map_err(self.err("reading changed state documents"))?;
        let documents = rows.into_iter().map(|r| self.document_of(r)).collect::<Result<Vec<_>, _>>()?;
        Ok(StateChanges { revision: self.revision_of(now)?, documents })
    }
}

/// State documents for synchronous callers: the [`Store`] document API on a store thread of its
/// own (a current-thread runtime and a small pool), callable from plain threads and from inside
/// a tokio runtime without panicking. Each call blocks the calling thread until the database
/// answered, so async code should use the [`Store`] methods instead. `Send + Sync`: share it in
/// an `Arc`.
pub struct SqlStateDocuments {
    thread: StoreThread<Store>,
}

impl std::fmt::Debug for SqlStateDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStateDocuments").field("store", &self.thread.describe()).finish_non_exhaustive()
    }
}

impl SqlStateDocuments {
    /// Opens the store on a new thread (migrations included) and waits until it is ready.
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        Ok(Self { thread: StoreThread::spawn("recserve-state-store", config, |store| store)? })
    }

    /// [`Store::get_document`].
    pub fn get(&self, name: &str) -> Result<Option<Document>, StoreError> {
        let name = name.to_string();
        self.thread.call(move |s| Box::pin(async move { s.get_document(&name).await }))
    }

    /// [`Store::put_document`].
    pub fn put(&self, name: &str, body: &str) -> Result<u64, StoreError> {
        let (name, body) = (name.to_string(), body.to_string());
        self.thread.call(move |s| Box::pin(async move { s.put_document(&name, &body).await }))
    }

    /// [`Store::put_document_if`].
    pub fn put_if(&self, name: &str, body: &str, expected_version: u64) -> Result<Option<u64>, StoreError> {
        let (name, body) = (name.to_string(), body.to_string());
        self.thread.call(move |s| Box::pin(async move { s.put_document_if(&name, &body, expected_version).await }))
    }

    /// [`Store::state_revision`].
    pub fn revision(&self) -> Result<u64, StoreError> {
        self.thread.call(|s| Box::pin(s.state_revision()))
    }

    /// [`Store::documents_changed_since`].
    pub fn changed_since(&self, revision: u64) -> Result<StateChanges, StoreError> {
        self.thread.call(move |s| Box::pin(s.documents_changed_since(revision)))
    }
}
