//! The notification log: one [`NotificationRecord`] per notification attempt (sent, failed,
//! dropped …) in the `notifications` table, written directly ([`Store::record_notification`]) or
//! through a [`NotificationRecorder`], whose `record` never blocks (a bounded channel in front of
//! one task that inserts; a full channel drops the record and counts it). Queries
//! ([`Store::query_notifications`]) return [`Page`]s newest first with the same keyset paging
//! on (time, id) as the logs.
//!
//! Text is kept the same on both backends: `receiver` is cut to 255 characters and `status` to
//! 64; `group_key`, `error` and `payload` over 1 MiB are replaced by their digest.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Store, with_pool};
use crate::error::StoreError;
use crate::query::{Arg, Page, fetch_rows, limit_of, make_cursor, time_and_cursor};
use crate::writer::{capped_str, short};

/// Longest stored status, in characters.
pub const MAX_STATUS_CHARS: usize = 64;
/// Records the recorder writes per transaction at most.
const RECORDER_BATCH: usize = 256;
/// Retries of a failed recorder batch, with these waits before each.
const RECORDER_BACKOFF: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(500)];

/// One notification attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRecord {
    /// When, unix ms.
    pub time_ms: i64,
    /// The receiver it went to (cut to 255 characters).
    pub receiver: String,
    /// The alert group (e.g. the Alertmanager group key).
    pub group_key: String,
    /// `sent`, `failed`, `dropped` or another short word (cut to 64 characters).
    pub status: String,
    /// Alerts in the notification.
    pub alerts: u32,
    /// Which attempt this was (1 = first).
    pub attempt: u32,
    /// The error of a failed attempt.
    pub error: Option<String>,
    /// A digest or short text of what was sent.
    pub payload: Option<String>,
    /// The replica that sent it.
    pub replica: Option<String>,
}

impl NotificationRecord {
    /// A first attempt with one alert, no error, payload or replica.
    pub fn new(
        time_ms: i64,
        receiver: impl Into<String>,
        group_key: impl Into<String>,
        status: impl Into<String>,
    ) -> Self {
        Self {
            time_ms,
            receiver: receiver.into(),
            group_key: group_key.into(),
            status: status.into(),
            alerts: 1,
            attempt: 1,
            error: None,
            payload: None,
            replica: None,
        }
    }
}

/// A notification query. All filters are optional and combine with AND.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct NotificationQuery {
    /// Records at or after this time (unix ms).
    pub from_ms: Option<i64>,
    /// Records at or before this time (unix ms).
    pub to_ms: Option<i64>,
    /// Exactly this receiver.
    pub receiver: Option<String>,
    /// Exactly this status.
    pub status: Option<String>,
    /// Records per page (default 100, at most 1000).
    pub limit: Option<u32>,
    /// Where the previous page ended ([`Page::next_cursor`]).
    pub cursor: Option<String>,
}

#[derive(FromRow)]
struct NotificationRow {
    id: i64,
    time_ms: i64,
    receiver: String,
    group_key: String,
    status: String,
    alerts: i32,
    attempt: i32,
    error: Option<String>,
    payload: Option<String>,
    replica: Option<String>,
}

fn cut(s: &str, chars: usize) -> &str {
    match s.char_indices().nth(chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn count_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Inserts `records` in one transaction.
async fn insert(store: &Store, records: &[NotificationRecord]) -> Result<(), sqlx::Error> {
    with_pool!(store.pool(), p => crate::db::transaction(p, async |tx| {
        for r in records {
            sqlx::query(
                "INSERT INTO notifications (time_ms, receiver, group_key, status, alerts, attempt, error, payload, replica) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(r.time_ms)
            .bind(short(&r.receiver))
            .bind(capped_str(&r.group_key))
            .bind(cut(&r.status, MAX_STATUS_CHARS))
            .bind(count_i32(r.alerts))
            .bind(count_i32(r.attempt))
            .bind(r.error.as_deref().map(capped_str))
            .bind(r.payload.as_deref().map(capped_str))
            .bind(r.replica.as_deref().map(short))
            .execute(&mut **tx)
            .await?;
        }
        Ok(crate::db::Finish::Commit(()))
    }).await)
}

impl Store {
    /// Writes one notification record; committed when this returns.
    #[tracing::instrument(skip_all)]
    pub async fn record_notification(&self, record: &NotificationRecord) -> Result<(), StoreError> {
        insert(self, std::slice::from_ref(record)).await.map_err(self.err("recording a notification"))
    }

    /// Notification records matching `q`, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn query_notifications(&self, q: &NotificationQuery) -> Result<Page<NotificationRecord>, StoreError> {
        let mut f = time_and_cursor(q.from_ms, q.to_ms, q.cursor.as_deref())?;
        if let Some(receiver) = q.receiver.as_deref() {
            f.push("receiver = ?", [Arg::Str(receiver.to_string())]);
        }
        if let Some(status) = q.status.as_deref() {
            f.push("status = ?", [Arg::Str(status.to_string())]);
        }
        let limit = limit_of(q.limit);
        let sql = format!(
            "SELECT id, time_ms, receiver, group_key, status, alerts, attempt, error, payload, replica \
             FROM notifications {} ORDER BY time_ms DESC, id DESC LIMIT {}",
            f.sql(),
            limit + 1
        );
        let rows =
            fetch_rows!(self, NotificationRow, sql, &f.args).map_err(self.err("querying the notification log"))?;
        let more = rows.len() > limit as usize;
        let mut records = Vec::with_capacity(rows.len().min(limit as usize));
        let mut last = None;
        for r in rows.into_iter().take(limit as usize) {
            last = Some((r.time_ms, r.id));
            let corrupt = |field: &str, v: i32| StoreError::Corrupt {
                target: self.describe(),
                table: "notifications",
                reason: format!("row {}: {field} {v}", r.id),
            };
            records.push(NotificationRecord {
                alerts: u32::try_from(r.alerts).map_err(|_| corrupt("alerts", r.alerts))?,
                attempt: u32::try_from(r.attempt).map_err(|_| corrupt("attempt", r.attempt))?,
                time_ms: r.time_ms,
                receiver: r.receiver,
                group_key: r.group_key,
                status: r.status,
                error: r.error,
                payload: r.payload,
                replica: r.replica,
            });
        }
        Ok(Page { records, next_cursor: if more { last.map(|(t, id)| make_cursor(t, id)) } else { None } })
    }

    /// Starts a [`NotificationRecorder`] on the current tokio runtime whose channel holds
    /// `capacity` records (at least 1). Its task ends when every clone of the recorder is gone,
    /// after writing what was queued.
    pub fn start_notification_recorder(&self, capacity: usize) -> NotificationRecorder {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(RecorderCounters::default());
        tokio::spawn(run_recorder(self.clone(), rx, counters.clone()));
        NotificationRecorder { tx, counters }
    }
}

/// Counters of a [`NotificationRecorder`] (all since it started).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RecorderStats {
    /// Records taken into the channel.
    pub accepted: u64,
    /// Records dropped because the channel was full or the task had stopped.
    pub dropped: u64,
    /// Records committed.
    pub committed: u64,
    /// Records lost to writes that failed after retries.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct RecorderCounters {
    accepted: AtomicU64,
    dropped: AtomicU64,
    committed: AtomicU64,
    failed: AtomicU64,
}

enum Message {
    Record(Box<NotificationRecord>),
    Flush(oneshot::Sender<()>),
}

/// Records notifications without blocking: cheap to clone, [`NotificationRecorder::record`] is
/// sync and never blocks or awaits (callable from inside tokio tasks and from plain threads).
#[derive(Clone, Debug)]
pub struct NotificationRecorder {
    tx: mpsc::Sender<Message>,
    counters: Arc<RecorderCounters>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Record(r) => f.debug_tuple("Record").field(r).finish(),
            Message::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl NotificationRecorder {
    /// Queues `record` for writing. `false`: dropped (channel full or task stopped) and counted
    /// in [`RecorderStats::dropped`].
    pub fn record(&self, record: NotificationRecord) -> bool {
        match self.tx.try_send(Message::Record(Box::new(record))) {
            Ok(()) => {
                self.counters.accepted.fetch_add(1, Ordering::AcqRel);
                true
            }
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::AcqRel);
                false
            }
        }
    }

    /// Returns once every record queued before the call is committed (or counted failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Message::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// The counters now.
    pub fn stats(&self) -> RecorderStats {
        let c = &self.counters;
        RecorderStats {
            accepted: c.accepted.load(Ordering::Acquire),
            dropped: c.dropped.load(Ordering::Acquire),
            committed: c.committed.load(Ordering::Acquire),
            failed: c.failed.load(Ordering::Acquire),
        }
    }
}

async fn run_recorder(store: Store, mut rx: mpsc::Receiver<Message>, counters: Arc<RecorderCounters>) {
    let mut batch: Vec<NotificationRecord> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut flush = None;
        match first {
            Message::Record(r) => batch.push(*r),
            Message::Flush(tx) => flush = Some(tx),
        }
        // Take what else is waiting, up to a flush (answered after the records before it).
        while flush.is_none() && batch.len() < RECORDER_BATCH {
            match rx.try_recv() {
                Ok(Message::Record(r)) => batch.push(*r),
                Ok(Message::Flush(tx)) => flush = Some(tx),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            write_with_retries(&store, &batch, &counters).await;
            batch.clear();
        }
        if let Some(tx) = flush {
            let _ = tx.send(());
        }
    }
}

async fn write_with_retries(store: &Store, batch: &[NotificationRecord], counters: &RecorderCounters) {
    let mut attempt = 0;
    loop {
        match insert(store, batch).await {
            Ok(()) => {
                counters.committed.fetch_add(batch.len() as u64, Ordering::AcqRel);
                return;
            }
            Err(err) if attempt < RECORDER_BACKOFF.len() => {
                tracing::warn!(store = %store.describe(), %err, records = batch.len(), attempt, "notification records failed, retrying");
                tokio::time::sleep(RECORDER_BACKOFF[attempt]).await;
                attempt += 1;
            }
            Err(err) => {
                tracing::error!(store = %store.describe(), %err, records = batch.len(), "notification records lost after retries");
                counters.failed.fetch_add(batch.len() as u64, Ordering::AcqRel);
                return;
            }
        }
    }
}
