//! [`SqlSeriesPersistence`]: the telemetry series store's history kept in the store's `series`
//! and `series_samples` tables.
//!
//! The telemetry trait is synchronous and is called from the scraper's std thread and at
//! start-up possibly from inside a tokio worker, where blocking on a runtime handle would panic.
//! So the persistence runs on a `StoreThread` (`thread` module: a dedicated std thread with its own
//! current-thread runtime and a small pool); the trait methods send a job and wait for the reply.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use recserve_telemetry::LabelSet;
use recserve_telemetry::StoreError as TelemetryStoreError;
use recserve_telemetry::store::{SeriesData, SeriesPersistence};
use sha2::{Digest, Sha256};
use sqlx::AssertSqlSafe;

use crate::config::StoreConfig;
use crate::db::{InsertedId, Store, with_pool};
use crate::error::StoreError;
use crate::thread::StoreThread;

/// Compaction is wanted when the samples table has grown past twice its compacted size plus this
/// many rows.
pub const COMPACTION_SLACK_ROWS: u64 = 200_000;
/// Sample rows per INSERT statement (3 binds each).
const SAMPLE_GROUP: usize = 1000;

/// The series store's persistence in the SQL store (see the module docs).
pub struct SqlSeriesPersistence {
    thread: StoreThread<Worker>,
    rows: u64,
    compacted_rows: u64,
}

impl std::fmt::Debug for SqlSeriesPersistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSeriesPersistence").field("store", &self.thread.describe()).finish_non_exhaustive()
    }
}

impl SqlSeriesPersistence {
    /// Opens the store on a new thread (migrations included) and waits until it is ready.
    /// Safe to call from inside or outside a tokio runtime.
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        Self::open_scoped(config, None)
    }

    /// As [`SqlSeriesPersistence::open`], keeping this process's history apart from other
    /// processes sharing the store (a fleet's replicas): series are stored with the reserved
    /// label [`SCOPE_LABEL`]` = scope`, and load and compaction see only the scope's own series.
    /// `None`: the series stored without a scope (one process per store).
    pub fn open_scoped(config: &StoreConfig, scope: Option<String>) -> Result<Self, StoreError> {
        let thread = StoreThread::spawn("recserve-series-store", config, move |store| Worker {
            store,
            scope,
            ids: HashMap::new(),
            forget_after: None,
        })?;
        Ok(Self { thread, rows: 0, compacted_rows: 0 })
    }

    /// In a store shared by replicas, removes the series of other scopes (replicas) that have no
    /// sample newer than `age` — replicas that are gone, e.g. pods replaced under new names —
    /// now and at each later compaction. Their history would otherwise stay for good, since only
    /// a scope's own process compacts it. Returns how many series were removed now. A scope that
    /// is merely quiet for longer than `age` (stopped, not gone) loses its history too; give an
    /// age at least as long as the history is kept.
    pub fn forget_stale_scopes(&mut self, age: Duration) -> Result<u64, StoreError> {
        self.thread.call(move |w| {
            Box::pin(async move {
                w.forget_after = Some(age);
                w.forget_stale_scopes().await
            })
        })
    }

    fn telemetry_error(&self, e: StoreError) -> TelemetryStoreError {
        TelemetryStoreError::Io {
            path: PathBuf::from(self.thread.describe()),
            source: std::io::Error::other(e.to_string()),
        }
    }
}

impl SeriesPersistence for SqlSeriesPersistence {
    fn load(&mut self) -> Result<Vec<SeriesData>, TelemetryStoreError> {
        let loaded = self.thread.call(|w| Box::pin(w.load())).map_err(|e| self.telemetry_error(e))?;
        self.rows = loaded.iter().map(|(_, pts)| pts.len() as u64).sum();
        self.compacted_rows = self.rows;
        Ok(loaded)
    }

    fn append(&mut self, samples: &[(&LabelSet, i64, f64)]) -> Result<(), TelemetryStoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        let owned: Vec<(LabelSet, i64, f64)> = samples.iter().map(|(l, t, v)| ((*l).clone(), *t, *v)).collect();
        self.thread
            .call(move |w| Box::pin(async move { w.append(&owned).await }))
            .map_err(|e| self.telemetry_error(e))?;
        self.rows += samples.len() as u64;
        Ok(())
    }

    fn wants_compaction(&self) -> bool {
        self.rows > self.compacted_rows * 2 + COMPACTION_SLACK_ROWS
    }

    fn compact(&mut self, series: &[SeriesData]) -> Result<(), TelemetryStoreError> {
        let owned = series.to_vec();
        let rows = owned.iter().map(|(_, pts)| pts.len() as u64).sum();
        self.thread
            .call(move |w| Box::pin(async move { w.compact(&owned).await }))
            .map_err(|e| self.telemetry_error(e))?;
        self.rows = rows;
        self.compacted_rows = rows;
        Ok(())
    }
}

/// The reserved label that keeps each replica's series apart in a shared store. Never shown:
/// load strips it.
pub const SCOPE_LABEL: &str = "__recserve_replica__";

fn labels_json(labels: &LabelSet, scope: Option<&str>) -> String {
    let mut pairs: Vec<(&str, &str)> = labels.iter().collect();
    if let Some(scope) = scope {
        pairs.insert(0, (SCOPE_LABEL, scope));
    }
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
}

fn labels_hash(json: &str) -> String {
    hex::encode(Sha256::digest(json.as_bytes()))
}

/// Runs on the persistence thread.
struct Worker {
    store: Store,
    /// This process's scope ([`SqlSeriesPersistence::open_scoped`]).
    scope: Option<String>,
    /// Series ids by labels (filled by load and append; cleared by compact).
    ids: HashMap<LabelSet, i64>,
    /// Other scopes' series with no sample this recent are removed at each compaction
    /// ([`SqlSeriesPersistence::forget_stale_scopes`]).
    forget_after: Option<Duration>,
}

impl Worker {
    async fn load(&mut self) -> Result<Vec<SeriesData>, StoreError> {
        let store = &self.store;
        let series: Vec<(i64, String)> = with_pool!(store.pool(), p =>
            sqlx::query_as("SELECT id, labels FROM series ORDER BY id").fetch_all(p).await)
        .map_err(store.err("reading series"))?;
        let samples: Vec<(i64, i64, i64)> = with_pool!(store.pool(), p =>
            sqlx::query_as("SELECT series_id, t_ms, value_bits FROM series_samples ORDER BY series_id, t_ms, id").fetch_all(p).await)
        .map_err(store.err("reading series samples"))?;
        self.ids.clear();
        let mut out: Vec<SeriesData> = Vec::with_capacity(series.len());
        let mut index: HashMap<i64, usize> = HashMap::with_capacity(series.len());
        for (id, json) in series {
            let mut pairs: Vec<(String, String)> = serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                target: store.describe(),
                table: "series",
                reason: format!("series {id}: labels {json:?}: {e}"),
            })?;
            let scope = pairs.iter().position(|(k, _)| k == SCOPE_LABEL).map(|i| pairs.remove(i).1);
            if scope != self.scope {
                continue;
            }
            let labels = LabelSet::from_pairs(pairs);
            self.ids.insert(labels.clone(), id);
            index.insert(id, out.len());
            out.push((labels, Vec::new()));
        }
        for (series_id, t, bits) in samples {
            if let Some(&i) = index.get(&series_id) {
                out[i].1.push((t, f64::from_bits(bits as u64)));
            }
        }
        out.retain(|(_, pts)| !pts.is_empty());
        Ok(out)
    }

    /// The id of each label set, inserting new series.
    async fn ensure_ids<'a>(&mut self, labels: impl Iterator<Item = &'a LabelSet>) -> Result<(), StoreError> {
        let missing: Vec<&LabelSet> = {
            let mut seen = std::collections::HashSet::new();
            labels.filter(|l| !self.ids.contains_key(*l) && seen.insert(*l)).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let store = &self.store;
        let insert = match store.backend() {
            crate::Backend::Sqlite => "INSERT OR IGNORE INTO series (labels_hash, labels) VALUES (?, ?)",
            crate::Backend::MySql => "INSERT IGNORE INTO series (labels_hash, labels) VALUES (?, ?)",
        };
        for labels in missing {
            let json = labels_json(labels, self.scope.as_deref());
            let hash = labels_hash(&json);
            let id: i64 = with_pool!(store.pool(), p => async {
                sqlx::query(AssertSqlSafe(insert)).bind(&hash).bind(&json).execute(p).await?;
                sqlx::query_scalar("SELECT id FROM series WHERE labels_hash = ?").bind(&hash).fetch_one(p).await
            }.await)
            .map_err(store.err("adding a series"))?;
            self.ids.insert(labels.clone(), id);
        }
        Ok(())
    }

    async fn append(&mut self, samples: &[(LabelSet, i64, f64)]) -> Result<(), StoreError> {
        self.ensure_ids(samples.iter().map(|s| &s.0)).await?;
        let rows: Vec<(i64, i64, i64)> =
            samples.iter().filter_map(|(l, t, v)| self.ids.get(l).map(|id| (*id, *t, v.to_bits() as i64))).collect();
        insert_samples(&self.store, &rows).await
    }

    async fn compact(&mut self, series: &[SeriesData]) -> Result<(), StoreError> {
        // This scope's series are replaced in one transaction with their samples: nothing of
        // the scope from before survives, other scopes' series are left alone.
        let store = &self.store;
        let old: Vec<i64> = self.ids.values().copied().collect();
        let defs: Vec<(String, String)> = series
            .iter()
            .map(|(labels, _)| {
                let json = labels_json(labels, self.scope.as_deref());
                (labels_hash(&json), json)
            })
            .collect();
        let new_ids: Vec<i64> = with_pool!(store.pool(), p => crate::db::transaction(p, async |tx| {
            delete_series!(&mut **tx, &old);
            let mut ids = Vec::with_capacity(defs.len());
            for (hash, json) in &defs {
                let inserted = sqlx::query("INSERT INTO series (labels_hash, labels) VALUES (?, ?)")
                    .bind(hash).bind(json).execute(&mut **tx).await?;
                ids.push(inserted.inserted_id()?);
            }
            let rows: Vec<(i64, i64, i64)> = series
                .iter()
                .zip(&ids)
                .flat_map(|((_, pts), id)| pts.iter().map(move |(t, v)| (*id, *t, v.to_bits() as i64)))
                .collect();
            for chunk in rows.chunks(SAMPLE_GROUP) {
                let sql = sample_insert_sql(chunk.len());
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for (id, t, bits) in chunk {
                    q = q.bind(*id).bind(*t).bind(*bits);
                }
                q.execute(&mut **tx).await?;
            }
            Ok(crate::db::Finish::Commit(ids))
        }).await)
        .map_err(store.err("compacting series"))?;
        self.ids = series.iter().map(|(l, _)| l.clone()).zip(new_ids).collect();
        if self.forget_after.is_some() {
            self.forget_stale_scopes().await?;
        }
        Ok(())
    }

    /// See [`SqlSeriesPersistence::forget_stale_scopes`].
    async fn forget_stale_scopes(&mut self) -> Result<u64, StoreError> {
        let (Some(scope), Some(age)) = (self.scope.as_deref(), self.forget_after) else {
            return Ok(0);
        };
        let store = &self.store;
        let cutoff =
            recserve_telemetry::store::now_ms().saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        // Scoped series' labels start with the scope's pair (`labels_json`): compare that prefix.
        // A series without any sample is left alone: another replica may have just added it and
        // be about to write its first samples (two statements, `Worker::append`).
        let any_scope = format!("[[{},", serde_json::Value::from(SCOPE_LABEL));
        let own = format!("{any_scope}{}]", serde_json::Value::from(scope));
        let stale: Vec<i64> = with_pool!(store.pool(), p =>
            sqlx::query_scalar(
                "SELECT s.id FROM series s WHERE substr(s.labels, 1, ?) = ? AND substr(s.labels, 1, ?) <> ? \
                 AND EXISTS (SELECT 1 FROM series_samples x WHERE x.series_id = s.id) \
                 AND NOT EXISTS (SELECT 1 FROM series_samples x WHERE x.series_id = s.id AND x.t_ms >= ?)")
            .bind(any_scope.chars().count() as i64).bind(&any_scope)
            .bind(own.chars().count() as i64).bind(&own)
            .bind(cutoff)
            .fetch_all(p).await)
        .map_err(store.err("finding the series of replicas that are gone"))?;
        if stale.is_empty() {
            return Ok(0);
        }
        with_pool!(store.pool(), p => crate::db::transaction(p, async |tx| {
            delete_series!(&mut **tx, &stale);
            Ok(crate::db::Finish::Commit(()))
        }).await)
        .map_err(store.err("removing the series of replicas that are gone"))?;
        tracing::info!(store = %store.describe(), series = stale.len(), older_than_secs = age.as_secs(),
            "removed the metric history of replicas with no sample since");
        Ok(stale.len() as u64)
    }
}

/// Deletes the series `ids` and their samples, in groups, inside the transaction `tx`.
macro_rules! delete_series {
    ($tx:expr, $ids:expr) => {
        for chunk in $ids.chunks(SAMPLE_GROUP) {
            let list = vec!["?"; chunk.len()].join(",");
            let mut q = sqlx::query(AssertSqlSafe(format!("DELETE FROM series_samples WHERE series_id IN ({list})")));
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute($tx).await?;
            let mut q = sqlx::query(AssertSqlSafe(format!("DELETE FROM series WHERE id IN ({list})")));
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute($tx).await?;
        }
    };
}
use delete_series;

fn sample_insert_sql(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO series_samples (series_id, t_ms, value_bits) VALUES ");
    sql.push_str(&vec!["(?,?,?)"; rows].join(","));
    sql
}

async fn insert_samples(store: &Store, rows: &[(i64, i64, i64)]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    with_pool!(store.pool(), p => crate::db::transaction(p, async |tx| {
        for chunk in rows.chunks(SAMPLE_GROUP) {
            let mut q = sqlx::query(AssertSqlSafe(sample_insert_sql(chunk.len())));
            for (id, t, bits) in chunk {
                q = q.bind(*id).bind(*t).bind(*bits);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(crate::db::Finish::Commit(()))
    }).await)
    .map_err(store.err("appending series samples"))
}
