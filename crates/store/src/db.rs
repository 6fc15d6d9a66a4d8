//! [`Store`]: the connection pool of either backend, schema migrations, size on disk, and the
//! `with_pool!` macro the other modules use to run the same SQL on both backends (the SQL is
//! shared; the macro type-checks the code once per backend).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::sqlite::{SqliteAutoVacuum, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::config::{Backend, Retention, StoreConfig, Target};
use crate::error::StoreError;

/// Migrations of the SQLite dialect.
pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
/// Migrations of the MySQL/MariaDB dialect (same versions as [`SQLITE_MIGRATIONS`]).
pub static MYSQL_MIGRATIONS: Migrator = sqlx::migrate!("migrations/mysql");

/// How long opening waits for a MySQL server to answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an SQLite statement waits for a lock held by another connection.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Migrations of SQLite databases in this process run one at a time (two pools opening the same
/// file at once, e.g. the store and the series persistence, would otherwise both apply them).
/// A tokio mutex works from any runtime.
static SQLITE_MIGRATE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The pool of one backend.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    MySql(MySqlPool),
}

/// Runs `$body` with `$p` bound to the backend's pool (`&SqlitePool` or `&MySqlPool`).
macro_rules! with_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite($p) => $body,
            $crate::db::Pool::MySql($p) => $body,
        }
    };
}
pub(crate) use with_pool;

/// The row id an `INSERT` gave its row, from either backend's query result (in place of a
/// `SELECT` after it: MySQL has no `INSERT … RETURNING`).
pub(crate) trait InsertedId {
    fn inserted_id(&self) -> Result<i64, sqlx::Error>;
}

impl InsertedId for sqlx::sqlite::SqliteQueryResult {
    fn inserted_id(&self) -> Result<i64, sqlx::Error> {
        Ok(self.last_insert_rowid())
    }
}

impl InsertedId for sqlx::mysql::MySqlQueryResult {
    fn inserted_id(&self) -> Result<i64, sqlx::Error> {
        i64::try_from(self.last_insert_id())
            .map_err(|_| sqlx::Error::Protocol(format!("row id {} is out of range", self.last_insert_id())))
    }
}

/// How a [`transaction`] body wants its transaction ended.
pub(crate) enum Finish<T> {
    Commit(T),
    Rollback(T),
}

/// Runs `body` in a transaction on a connection of its own and ends it as the body says. On any
/// error the connection is closed instead of going back to the pool: after a failed statement
/// or COMMIT its transaction state is unknown (SQLite may have rolled back on its own after
/// SQLITE_FULL or an I/O error; sqlx's rollback then fails and leaves the connection counting a
/// transaction that is gone, so the next user would "commit" a SAVEPOINT inside a transaction
/// that stays open — acknowledged, never durable, holding the write lock). Closing rolls back
/// whatever is open; the pool opens a fresh connection.
pub(crate) async fn transaction<DB: sqlx::Database, T>(
    pool: &sqlx::Pool<DB>,
    body: impl AsyncFnOnce(&mut sqlx::Transaction<'_, DB>) -> Result<Finish<T>, sqlx::Error>,
) -> Result<T, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let result = async {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        match body(&mut tx).await? {
            Finish::Commit(value) => tx.commit().await.map(|()| value),
            Finish::Rollback(value) => tx.rollback().await.map(|()| value),
        }
    }
    .await;
    if result.is_err() {
        conn.close_on_drop();
    }
    result
}

/// Pool sizes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolSize {
    pub sqlite: u32,
    pub mysql: u32,
}

impl PoolSize {
    pub(crate) const MAIN: PoolSize = PoolSize { sqlite: 4, mysql: 8 };
    pub(crate) const SMALL: PoolSize = PoolSize { sqlite: 1, mysql: 2 };
}

struct Inner {
    pool: Pool,
    target: Target,
    describe: String,
    retention: Retention,
}

/// The store: a cheap-to-clone handle on the pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("db", &self.inner.describe).finish_non_exhaustive()
    }
}

impl Store {
    /// Connects (creating the SQLite file and its directory when needed) and runs the migrations.
    #[tracing::instrument(skip_all, fields(url = config.url.as_deref().map(crate::config::redact_url)))]
    pub async fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        Self::open_sized(config, PoolSize::MAIN, None).await
    }

    /// For fault tests: opens like [`Store::open`], but an SQLite database stops growing at
    /// `max_pages` pages (of 4 KiB; SQLite's `PRAGMA max_page_count` on every connection), and a
    /// write that needs more fails with `SQLITE_FULL`, the result SQLite gives when the disk is
    /// full. Pages freed inside the file (deleted rows, dropped tables) are used again, so
    /// freeing them is "space returning". A limit below the database's size is its size. No
    /// effect on MySQL.
    pub async fn open_with_max_pages(config: &StoreConfig, max_pages: u32) -> Result<Store, StoreError> {
        Self::open_sized(config, PoolSize::MAIN, Some(max_pages)).await
    }

    pub(crate) async fn open_sized(
        config: &StoreConfig,
        size: PoolSize,
        max_pages: Option<u32>,
    ) -> Result<Store, StoreError> {
        let target = Target::resolve(config)?;
        let describe = target.describe();
        let pool = match &target {
            Target::Sqlite { path, options } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
                }
                let options = options
                    .clone()
                    .create_if_missing(true)
                    // auto_vacuum is applied before journal_mode and before any table exists.
                    .auto_vacuum(SqliteAutoVacuum::Incremental)
                    .journal_mode(SqliteJournalMode::Wal)
                    // In WAL mode NORMAL loses nothing committed when the process dies; only an
                    // OS crash or power loss can cost the last transactions.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .statement_cache_capacity(256)
                    .pragma("temp_store", "MEMORY")
                    .pragma("cache_size", "-16384")
                    // Checkpoint after 16 384 WAL pages (64 MiB) instead of SQLite's 1000: a
                    // log-writer commit of a few thousand records already writes more than 1000
                    // pages, so the default checkpointed after nearly every commit, copying the
                    // same hot index pages into the database again and again. Measured: ~40k/s →
                    // ~53k/s sustained for records with users. journal_size_limit truncates the
                    // WAL file back to 64 MiB after a checkpoint reset it.
                    .pragma("wal_autocheckpoint", "16384")
                    .pragma("journal_size_limit", "67108864");
                let options = match max_pages {
                    Some(n) => options.pragma("max_page_count", n.to_string()),
                    None => options,
                };
                let pool = SqlitePoolOptions::new()
                    .max_connections(size.sqlite)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await
                    .map_err(|source| StoreError::Connect { target: describe.clone(), source })?;
                let _guard = SQLITE_MIGRATE_LOCK.lock().await;
                SQLITE_MIGRATIONS
                    .run(&pool)
                    .await
                    .map_err(|source| StoreError::Migrate { target: describe.clone(), source })?;
                Pool::Sqlite(pool)
            }
            Target::MySql { options, .. } => {
                let options = options.clone().charset("utf8mb4").statement_cache_capacity(256);
                // One direct connection first: fails fast with the server's own error (refused,
                // access denied, unknown database) instead of the pool's retry loop.
                let probe = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
                    .await
                    .map_err(|_| StoreError::ConnectTimeout {
                        target: describe.clone(),
                        seconds: CONNECT_TIMEOUT.as_secs(),
                    })?
                    .map_err(|source| StoreError::Connect { target: describe.clone(), source })?;
                let _ = sqlx::Connection::close(probe).await;
                let pool = MySqlPoolOptions::new()
                    .max_connections(size.mysql)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await
                    .map_err(|source| StoreError::Connect { target: describe.clone(), source })?;
                MYSQL_MIGRATIONS
                    .run(&pool)
                    .await
                    .map_err(|source| StoreError::Migrate { target: describe.clone(), source })?;
                Pool::MySql(pool)
            }
        };
        tracing::info!(store = %describe, "store open");
        let store = Store { inner: Arc::new(Inner { pool, target, describe, retention: config.retention.clone() }) };
        store.convert_request_rows().await?;
        Ok(store)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.inner.target.backend()
    }

    /// "sqlite /path/recserve.db" or "mysql host:port/db" (never a password).
    pub fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    /// The SQLite file, `None` for MySQL.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.inner.target.sqlite_path().map(Path::to_path_buf)
    }

    /// The configured retention.
    pub fn retention(&self) -> &Retention {
        &self.inner.retention
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// A query error naming this store.
    pub(crate) fn err(&self, what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::Query { target: self.inner.describe.clone(), what, source }
    }

    /// Bytes the store takes: SQLite, the database file plus its WAL; MySQL, data and indexes
    /// of the database's tables (InnoDB's statistics, refreshed by [`Store::analyze`]).
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        match self.pool() {
            Pool::Sqlite(_) => {
                let path = self.inner.target.sqlite_path().map(Path::to_path_buf).unwrap_or_default();
                let mut total = 0;
                for p in [path.clone(), sidecar(&path, "-wal")] {
                    match tokio::fs::metadata(&p).await {
                        Ok(m) => total += m.len(),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => return Err(StoreError::Io { path: p, source }),
                    }
                }
                Ok(total)
            }
            Pool::MySql(p) => {
                let n: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS SIGNED) \
                     FROM information_schema.tables WHERE table_schema = DATABASE()",
                )
                .fetch_one(p)
                .await
                .map_err(self.err("reading the table sizes"))?;
                Ok(n.max(0) as u64)
            }
        }
    }

    /// MySQL: refreshes the table statistics [`Store::size_bytes`] reads. SQLite: nothing.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        if let Pool::MySql(p) = self.pool() {
            sqlx::query(
                "ANALYZE TABLE request_blocks, service_log, series, series_samples, state_documents, notifications, audit, auth_tokens",
            )
            .execute(p)
            .await
            .map_err(self.err("ANALYZE TABLE"))?;
        }
        Ok(())
    }

    /// Numbers of (request, service) log records stored.
    pub async fn count_logs(&self) -> Result<(u64, u64), StoreError> {
        let r = self.count_request_records().await?;
        let s: i64 =
            with_pool!(self.pool(), p => sqlx::query_scalar("SELECT COUNT(*) FROM service_log").fetch_one(p).await)
                .map_err(self.err("counting log records"))?;
        Ok((r, s.max(0) as u64))
    }

    /// Closes the pool (waits for connections in use to be returned).
    pub async fn close(&self) {
        with_pool!(self.pool(), p => p.close().await);
    }
}

pub(crate) use recserve_telemetry::store::now_ms;

/// Refuses an empty `value` or one longer than `max` characters (the column's size), naming
/// `what` (e.g. "lease name").
pub(crate) fn check_length(what: &'static str, value: &str, max: usize) -> Result<(), StoreError> {
    let chars = value.chars().count();
    if chars == 0 || chars > max {
        return Err(StoreError::Invalid { what, reason: format!("expected 1 to {max} characters, got {chars}") });
    }
    Ok(())
}

/// `<path><suffix>`, e.g. the `-wal` file next to an SQLite database.
pub(crate) fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
