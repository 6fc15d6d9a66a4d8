//! Log retention: records older than [`Retention::max_age`](crate::Retention) are deleted, then
//! the oldest records of both logs (in proportion to their row counts) until the store's used
//! space is under `max_bytes`; the freed space is given back to the file system (SQLite:
//! `incremental_vacuum` and a truncating WAL checkpoint; MySQL: `OPTIMIZE TABLE`).
//! Deletes run in chunks so no transaction grows large.
//!
//! What retention deletes: request and service log records (by age and by size) and notification
//! records (by age only). What it never deletes: the audit trail (`audit`, kept until an operator
//! removes rows by hand: it is the record of who did what), state documents and the series
//! history (which the series store compacts itself). Those still count towards `max_bytes`; when
//! they alone exceed it, a pass deletes every log record and logs a warning.

use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;

use crate::db::{Pool, Store, now_ms, with_pool};
use crate::error::StoreError;

/// What one retention pass did.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RetentionReport {
    /// Request log records deleted.
    pub deleted_requests: u64,
    /// Service log records deleted.
    pub deleted_service: u64,
    /// Notification records deleted (by age only).
    pub deleted_notifications: u64,
    /// [`Store::size_bytes`] before.
    pub bytes_before: u64,
    /// [`Store::size_bytes`] after.
    pub bytes_after: u64,
}

/// Rows per DELETE statement.
const DELETE_CHUNK: i64 = 5000;
/// Request log blocks per DELETE statement.
const BLOCKS_PER_DELETE: usize = 256;
/// Size passes at most (each deletes a share computed from the measured excess).
const MAX_SIZE_PASSES: usize = 8;
/// A size pass aims this far under `max_bytes`, so the next writes do not cross it at once.
const SIZE_TARGET: f64 = 0.9;

/// Row-per-record logs (the request log is kept in blocks: [`crate::blocks`]).
#[derive(Clone, Copy)]
enum Log {
    Service,
    Notifications,
}

impl Log {
    fn table(self) -> &'static str {
        match self {
            Log::Service => "service_log",
            Log::Notifications => "notifications",
        }
    }
}

impl Store {
    /// Applies the configured retention now.
    #[tracing::instrument(skip_all, fields(store = %self.describe()))]
    pub async fn enforce_retention(&self) -> Result<RetentionReport, StoreError> {
        let retention = self.retention().clone();
        self.analyze().await?;
        let bytes_before = self.size_bytes().await?;
        let mut report = RetentionReport { bytes_before, bytes_after: bytes_before, ..Default::default() };
        if let Some(max_age) = retention.max_age {
            let cutoff = now_ms() - i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
            report.deleted_requests += self.delete_requests_older(cutoff).await?;
            report.deleted_service += self.delete_older(Log::Service, cutoff).await?;
            report.deleted_notifications += self.delete_older(Log::Notifications, cutoff).await?;
        }
        if let Some(max_bytes) = retention.max_bytes {
            for _ in 0..MAX_SIZE_PASSES {
                let used = self.used_bytes(report.deleted_requests + report.deleted_service > 0).await?;
                if used <= max_bytes {
                    break;
                }
                let requests = self.count_request_records().await?;
                let service = self.count(Log::Service).await?;
                if requests + service == 0 {
                    tracing::warn!(
                        used,
                        max_bytes,
                        "the store is over its size limit with no log records left to delete"
                    );
                    break;
                }
                let share = ((used as f64 - max_bytes as f64 * SIZE_TARGET) / used as f64).clamp(0.01, 1.0);
                let take = |n: u64| ((n as f64 * share).ceil() as u64).min(n);
                report.deleted_requests += self.delete_oldest_requests(take(requests)).await?;
                report.deleted_service += self.delete_oldest(Log::Service, take(service)).await?;
            }
        }
        if report.deleted_requests + report.deleted_service + report.deleted_notifications > 0 {
            self.give_space_back().await?;
        }
        self.analyze().await?;
        report.bytes_after = self.size_bytes().await?;
        if report.deleted_requests + report.deleted_service + report.deleted_notifications > 0 {
            tracing::info!(
                deleted_requests = report.deleted_requests,
                deleted_service = report.deleted_service,
                deleted_notifications = report.deleted_notifications,
                bytes_before = report.bytes_before,
                bytes_after = report.bytes_after,
                "log retention"
            );
        }
        Ok(report)
    }

    /// Runs [`Store::enforce_retention`] every `every` on the current runtime; errors are logged.
    pub fn start_retention(&self, every: Duration) -> JoinHandle<()> {
        let store = self.clone();
        let every = every.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(err) = store.enforce_retention().await {
                    tracing::warn!(%err, "log retention failed");
                }
            }
        })
    }

    /// Bytes in use: SQLite, pages minus free pages; MySQL, data and indexes (after
    /// `OPTIMIZE TABLE` when rows were deleted, since InnoDB keeps freed pages until then).
    async fn used_bytes(&self, deleted: bool) -> Result<u64, StoreError> {
        match self.pool() {
            Pool::Sqlite(p) => {
                let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
                    .fetch_one(p)
                    .await
                    .map_err(self.err("PRAGMA page_count"))?;
                let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
                    .fetch_one(p)
                    .await
                    .map_err(self.err("PRAGMA freelist_count"))?;
                let size: i64 =
                    sqlx::query_scalar("PRAGMA page_size").fetch_one(p).await.map_err(self.err("PRAGMA page_size"))?;
                Ok(((pages - free).max(0) * size) as u64)
            }
            Pool::MySql(_) => {
                if deleted {
                    self.give_space_back().await?;
                }
                self.analyze().await?;
                self.size_bytes().await
            }
        }
    }

    async fn count(&self, log: Log) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {}", log.table());
        let n: i64 = with_pool!(self.pool(), p => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(p).await)
            .map_err(self.err("counting log records"))?;
        Ok(n.max(0) as u64)
    }

    async fn delete_older(&self, log: Log, cutoff_ms: i64) -> Result<u64, StoreError> {
        let table = log.table();
        let sql = match self.pool() {
            Pool::Sqlite(_) => format!(
                "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE time_ms < ? ORDER BY time_ms LIMIT {DELETE_CHUNK})"
            ),
            Pool::MySql(_) => format!("DELETE FROM {table} WHERE time_ms < ? ORDER BY time_ms LIMIT {DELETE_CHUNK}"),
        };
        let mut total = 0;
        loop {
            let n = with_pool!(self.pool(), p => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(cutoff_ms).execute(p).await.map(|r| r.rows_affected()))
                .map_err(self.err("deleting old log records"))?;
            total += n;
            if n < DELETE_CHUNK as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    async fn delete_oldest(&self, log: Log, count: u64) -> Result<u64, StoreError> {
        let table = log.table();
        let mut left = count;
        let mut total = 0;
        while left > 0 {
            let chunk = left.min(DELETE_CHUNK as u64);
            let sql = match self.pool() {
                Pool::Sqlite(_) => format!(
                    "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY time_ms, id LIMIT {chunk})"
                ),
                Pool::MySql(_) => format!("DELETE FROM {table} ORDER BY time_ms, id LIMIT {chunk}"),
            };
            let n = with_pool!(self.pool(), p => sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await.map(|r| r.rows_affected()))
                .map_err(self.err("deleting the oldest log records"))?;
            total += n;
            if n < chunk {
                break;
            }
            left -= chunk;
            tokio::task::yield_now().await;
        }
        Ok(total)
    }

    /// Deletes request records older than `cutoff_ms`: whole blocks when all their records are,
    /// and the older records of blocks that straddle the cutoff (rewritten without them).
    async fn delete_requests_older(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let sql = format!(
                "SELECT id, records FROM request_blocks WHERE max_time_ms < ? ORDER BY max_time_ms LIMIT {BLOCKS_PER_DELETE}"
            );
            let ids: Vec<(i64, i64)> = with_pool!(self.pool(), p =>
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(cutoff_ms).fetch_all(p).await)
            .map_err(self.err("finding old request log blocks"))?;
            total += self.delete_blocks(&ids).await?;
            if ids.len() < BLOCKS_PER_DELETE {
                break;
            }
            tokio::task::yield_now().await;
        }
        let straddling: Vec<i64> = with_pool!(self.pool(), p =>
            sqlx::query_scalar("SELECT id FROM request_blocks WHERE min_time_ms < ?").bind(cutoff_ms).fetch_all(p).await)
        .map_err(self.err("finding request log blocks that straddle the cutoff"))?;
        for id in straddling {
            match self.rewrite_block(id, move |_, r| r.time_ms >= cutoff_ms).await {
                Ok(n) => total += n,
                // Kept until its whole time range is past the cutoff, then deleted whole above.
                Err(StoreError::Corrupt { reason, .. }) => tracing::warn!(
                    block = id,
                    %reason,
                    "a request log block across the retention cutoff cannot be decoded; it is deleted once all of it is older"
                ),
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Deletes about `count` of the oldest request records: the oldest blocks whole, and the
    /// oldest records of the last block when only some of it is to go.
    async fn delete_oldest_requests(&self, count: u64) -> Result<u64, StoreError> {
        let mut total = 0;
        while total < count {
            let sql =
                format!("SELECT id, records FROM request_blocks ORDER BY min_time_ms, id LIMIT {BLOCKS_PER_DELETE}");
            let blocks: Vec<(i64, i64)> = with_pool!(self.pool(), p =>
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(p).await)
            .map_err(self.err("finding the oldest request log blocks"))?;
            if blocks.is_empty() {
                break;
            }
            let mut whole = Vec::new();
            let mut partial = None;
            let mut left = count - total;
            for &(id, records) in &blocks {
                let records = records.max(0) as u64;
                if records <= left {
                    whole.push((id, records as i64));
                    left -= records;
                } else {
                    if left > 0 {
                        partial = Some((id, left as usize, records));
                    }
                    break;
                }
            }
            total += self.delete_blocks(&whole).await?;
            if let Some((id, n, records)) = partial {
                // Records are stored in time order: the first `n` are the oldest.
                match self.rewrite_block(id, move |i, _| i >= n).await {
                    Ok(removed) => total += removed,
                    Err(StoreError::Corrupt { reason, .. }) => {
                        tracing::warn!(block = id, %reason, "an undecodable request log block is deleted whole by the size limit");
                        total += self.delete_blocks(&[(id, records as i64)]).await?;
                    }
                    Err(e) => return Err(e),
                }
                break;
            }
            if whole.len() < blocks.len() || blocks.len() < BLOCKS_PER_DELETE {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(total)
    }

    /// Returns freed space to the file system.
    async fn give_space_back(&self) -> Result<(), StoreError> {
        match self.pool() {
            Pool::Sqlite(p) => {
                sqlx::query("PRAGMA incremental_vacuum")
                    .execute(p)
                    .await
                    .map_err(self.err("PRAGMA incremental_vacuum"))?;
                // Readers may keep the checkpoint from finishing; that only delays the shrink.
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(p)
                    .await
                    .map_err(self.err("PRAGMA wal_checkpoint"))?;
            }
            Pool::MySql(p) => {
                // InnoDB: OPTIMIZE recreates the table (online) and returns the space of a
                // file-per-table tablespace.
                sqlx::query("OPTIMIZE TABLE request_blocks, service_log, notifications")
                    .execute(p)
                    .await
                    .map_err(self.err("OPTIMIZE TABLE"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::records::RequestRecord;
    use crate::{Retention, Store, StoreConfig, WriterConfig};

    /// A SQLite store in a temporary directory holding request `r{i}` at time `1000 + i` for
    /// each `i`, submitted in the given order and flushed.
    async fn store_with_requests(order: impl Iterator<Item = i64>) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = StoreConfig { url: None, data_dir: dir.path().into(), retention: Retention::default() };
        let store = Store::open(&config).await.expect("open");
        let writer = store.start_writer(WriterConfig::default());
        for i in order {
            assert!(writer.sink().submit(RequestRecord::new(format!("r{i}"), 1000 + i).into()));
        }
        writer.shutdown().await;
        (dir, store)
    }

    /// The size pass's partial deletion of a block it cannot decode deletes the block whole
    /// (it is the oldest), and the pass goes on.
    #[tokio::test]
    async fn a_partly_deleted_block_that_cannot_be_decoded_goes_whole() {
        let (_dir, store) = store_with_requests(0..300).await;
        let crate::db::Pool::Sqlite(pool) = store.pool() else { panic!("sqlite") };
        sqlx::query("UPDATE request_blocks SET payload = x'01020304'").execute(pool).await.expect("damage");
        assert_eq!(store.delete_oldest_requests(100).await.expect("size pass"), 300);
        assert_eq!(store.count_request_records().await.expect("count"), 0);
        store.close().await;
    }

    /// A readable block loses exactly its oldest records.
    #[tokio::test]
    async fn a_partly_deleted_block_keeps_its_newest_records() {
        let (_dir, store) = store_with_requests((0..300).rev()).await;
        assert_eq!(store.delete_oldest_requests(100).await.expect("size pass"), 100);
        let left = store.query_requests(&crate::LogQuery { limit: Some(1000), ..Default::default() }).await.expect("q");
        let times: Vec<i64> = left.records.iter().map(|r| r.time_ms).collect();
        assert_eq!(times, (1100..1300).rev().collect::<Vec<_>>());
        store.close().await;
    }
}
