//! The log writer: a bounded channel in front of one task that commits records in batched
//! transactions.
//!
//! Serving calls [`LogSink::submit`], which never blocks and never awaits: a full (or closed)
//! channel drops the record and counts it. The writer task gathers up to
//! [`WriterConfig::max_batch`] records (waiting at most [`WriterConfig::flush_interval`] after the
//! first), writes them with multi-row `INSERT`s in one transaction, and counts records
//! `committed` only after the commit returned. [`LogWriter::flush`] returns once everything
//! submitted before the call is committed (or counted failed).
//!
//! # When the store fails
//!
//! A batch that fails because the store is unavailable — the disk or table is full, the MySQL
//! server is gone or restarting, the database is busy or locked, an I/O error — is retried, with
//! backoff up to [`MAX_RETRY_WAIT`], for as long as the writer runs: the batch stays in memory,
//! new records wait in the bounded channel, and once that is full `submit` drops them (counted in
//! [`WriterStats::dropped`]). Nothing waiting is lost when the store comes back. Any other error
//! (a statement the store refuses) gets [`RETRY_BACKOFF`]'s three retries, then the batch is
//! counted in [`WriterStats::failed`] and logged; so does an unavailable store once the writer is
//! shutting down, so shutdown always ends. Every failed attempt is logged and counted
//! ([`WriterStats::write_errors`]); [`WriterStats::store_failing`] is set from the first failed
//! attempt, or an attempt that has not finished after [`STALL_AFTER`] (a MySQL pool waits for a
//! server that refuses connections instead of failing), until the next commit, which logs that
//! writing resumed. On MySQL a connection lost while `COMMIT` was under way leaves it unknown
//! whether the batch was stored; the retry writes it again, so records are stored at least once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use sqlx::AssertSqlSafe;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::blocks::{EncodedBlock, encode_blocks};
use crate::db::{Store, with_pool};
use crate::pseudonym::input_or_digest;
use crate::records::{LogRecord, RequestRecord, ServiceRecord, normalize_level};

/// Writer settings.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Records the channel holds before `submit` drops (default 65 536).
    pub capacity: usize,
    /// Records per transaction at most (default 16 384). Larger batches are cheaper per record
    /// on SQLite: records of many users dirty index pages all over the user index, and a page
    /// written once per commit carries more records when the commit is larger (measured with
    /// `benches/writer.rs`: 4096 → 16 384 took recommend-like records from ~26k/s to ~40k/s).
    pub max_batch: usize,
    /// How long a batch waits to fill after its first record (default 200 ms).
    pub flush_interval: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self { capacity: 65_536, max_batch: 16_384, flush_interval: Duration::from_millis(200) }
    }
}

/// Counters of a writer (all since it started).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct WriterStats {
    /// Records taken into the channel.
    pub accepted: u64,
    /// Records dropped because the channel was full or the writer had stopped.
    pub dropped: u64,
    /// Records in committed transactions.
    pub committed: u64,
    /// Records lost to batches that failed after all retries.
    pub failed: u64,
    /// Committed transactions.
    pub batches: u64,
    /// Records accepted and not yet committed or failed.
    pub queued: u64,
    /// Of `committed`: request records.
    pub requests_committed: u64,
    /// Of `committed`: service records.
    pub service_committed: u64,
    /// Write attempts (a batch's transaction) that failed; each was logged.
    pub write_errors: u64,
    /// The store is failing: the last attempt failed or has not answered for [`STALL_AFTER`].
    /// Cleared by the next commit.
    pub store_failing: bool,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    dropped: AtomicU64,
    committed: AtomicU64,
    failed: AtomicU64,
    batches: AtomicU64,
    requests_committed: AtomicU64,
    service_committed: AtomicU64,
    write_errors: AtomicU64,
    store_failing: AtomicBool,
}

impl Counters {
    fn snapshot(&self) -> WriterStats {
        let accepted = self.accepted.load(Ordering::Acquire);
        let committed = self.committed.load(Ordering::Acquire);
        let failed = self.failed.load(Ordering::Acquire);
        WriterStats {
            accepted,
            dropped: self.dropped.load(Ordering::Acquire),
            committed,
            failed,
            batches: self.batches.load(Ordering::Acquire),
            queued: accepted.saturating_sub(committed + failed),
            requests_committed: self.requests_committed.load(Ordering::Acquire),
            service_committed: self.service_committed.load(Ordering::Acquire),
            write_errors: self.write_errors.load(Ordering::Acquire),
            store_failing: self.store_failing.load(Ordering::Acquire),
        }
    }
}

/// The hot-path handle: cheap to clone, `submit` never blocks.
#[derive(Clone, Debug)]
pub struct LogSink {
    tx: mpsc::Sender<LogRecord>,
    counters: Arc<Counters>,
}

impl LogSink {
    /// Queues `record` for writing. Never blocks or awaits; `false` means the record was
    /// dropped (channel full or writer stopped) and counted in [`WriterStats::dropped`].
    pub fn submit(&self, record: LogRecord) -> bool {
        match self.tx.try_send(record) {
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

    /// The writer's counters now.
    pub fn stats(&self) -> WriterStats {
        self.counters.snapshot()
    }
}

enum Control {
    Flush(oneshot::Sender<()>),
    Shutdown,
}

/// The writer task's handle: hands out sinks, flushes, shuts down.
#[derive(Debug)]
pub struct LogWriter {
    sink: LogSink,
    control: mpsc::UnboundedSender<Control>,
    task: JoinHandle<()>,
}

impl LogWriter {
    /// A sink submitting to this writer.
    pub fn sink(&self) -> LogSink {
        self.sink.clone()
    }

    /// The counters now.
    pub fn stats(&self) -> WriterStats {
        self.sink.stats()
    }

    /// Returns once every record submitted before the call is committed (or counted failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Stops taking records (later submits are dropped and counted), commits what is queued,
    /// stops the task and returns the final counters.
    pub async fn shutdown(self) -> WriterStats {
        let _ = self.control.send(Control::Shutdown);
        if let Err(err) = self.task.await {
            tracing::error!(%err, "the log writer task failed");
        }
        self.sink.stats()
    }
}

impl Store {
    /// Starts the log writer on the current tokio runtime.
    pub fn start_writer(&self, config: WriterConfig) -> LogWriter {
        let capacity = config.capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let (control, control_rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let task = Task {
            store: self.clone(),
            rx,
            control: control_rx,
            counters: counters.clone(),
            max_batch: config.max_batch.max(1),
            flush_interval: config.flush_interval,
            sql: SqlCache::default(),
        };
        let task = tokio::spawn(task.run());
        LogWriter { sink: LogSink { tx, counters }, control, task }
    }
}

/// How often a filling batch takes what the channel holds. At most `1 / FILL_CHECK` wake-ups
/// a second while a batch fills instead of one per record; the channel's capacity (65 536 by
/// default) holds what arrives meanwhile at any rate below ~6.5 million records a second.
const FILL_CHECK: Duration = Duration::from_millis(10);

/// Service-log statement texts by rows per statement, built once.
#[derive(Default)]
struct SqlCache {
    texts: HashMap<usize, Arc<str>>,
}

const SERVICE_COLUMNS: &str = "time_ms, replica, level, level_num, target, message, fields, request_id";
const SERVICE_ARITY: usize = 8;

impl SqlCache {
    fn insert_service(&mut self, rows: usize) -> Arc<str> {
        self.texts
            .entry(rows)
            .or_insert_with(|| {
                let row = format!("({})", ["?"; SERVICE_ARITY].join(","));
                let mut sql = format!("INSERT INTO service_log ({SERVICE_COLUMNS}) VALUES ");
                sql.push_str(&vec![row.as_str(); rows].join(","));
                Arc::from(sql)
            })
            .clone()
    }
}

/// Rows per statement: a batch is cut into groups of these sizes (largest first), so each
/// connection prepares at most this many distinct service-log statements. 256 × 8 binds stays
/// far below SQLite's 32 766 and MySQL's 65 535 placeholders. (Request records go in blocks:
/// [`crate::blocks`].)
const GROUP_SIZES: [usize; 5] = [256, 64, 16, 4, 1];
/// Bytes of values per statement at most (MySQL's max_allowed_packet is 16 MiB by default on
/// MariaDB, 64 MiB on MySQL 8).
const MAX_STATEMENT_BYTES: usize = 4 << 20;
/// Longer indexed text values are cut to this many characters (VARCHAR(255) on MySQL).
pub const MAX_SHORT_CHARS: usize = 255;
/// Longer free-text values (input, output, error, message, fields) are replaced by their digest.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// How a batch is cut into statements: group sizes from [`GROUP_SIZES`] whose values together
/// stay under [`MAX_STATEMENT_BYTES`] (a single row always forms a group).
fn groups(sizes: &[usize]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < sizes.len() {
        let left = sizes.len() - i;
        let mut chosen = 1;
        for &g in &GROUP_SIZES {
            if g <= left && sizes[i..i + g].iter().sum::<usize>() <= MAX_STATEMENT_BYTES {
                chosen = g;
                break;
            }
        }
        out.push(chosen);
        i += chosen;
    }
    out
}

pub(crate) fn short(s: &str) -> &str {
    if s.len() <= MAX_SHORT_CHARS {
        return s;
    }
    match s.char_indices().nth(MAX_SHORT_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn short_opt(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(short)
}

pub(crate) fn capped_str(v: &str) -> String {
    if v.len() <= MAX_TEXT_BYTES { v.to_string() } else { input_or_digest(v.to_string(), MAX_TEXT_BYTES) }
}

fn service_bytes(r: &ServiceRecord) -> usize {
    64 + r.level.len()
        + r.target.len()
        + r.message.len().min(MAX_TEXT_BYTES + 100)
        + r.fields.len().min(MAX_TEXT_BYTES + 100)
        + r.request_id.as_ref().map_or(0, String::len)
}

macro_rules! bind_service {
    ($q:expr, $r:expr) => {{
        let r: &ServiceRecord = $r;
        let (level, level_num) = normalize_level(&r.level);
        $q.bind(r.time_ms)
            .bind(short_opt(&r.replica))
            .bind(level)
            .bind(level_num)
            .bind(short(&r.target).to_string())
            .bind(capped_str(&r.message))
            .bind(capped_str(&r.fields))
            .bind(short_opt(&r.request_id))
    }};
}

/// Writes one batch in one transaction: the request records' blocks, then the service rows.
async fn write_batch(
    store: &Store,
    sql: &mut SqlCache,
    blocks: &[EncodedBlock],
    service: &[&ServiceRecord],
) -> Result<(), sqlx::Error> {
    let service_groups = groups(&service.iter().map(|r| service_bytes(r)).collect::<Vec<_>>());
    // `transaction` closes the connection after a failed statement or COMMIT (see its docs).
    with_pool!(store.pool(), p => crate::db::transaction(p, async |tx| {
        crate::blocks::insert_blocks!(&mut **tx, blocks)?;
        let mut at = 0;
        for n in service_groups {
            let mut q = sqlx::query(AssertSqlSafe(sql.insert_service(n)));
            for r in &service[at..at + n] {
                q = bind_service!(q, r);
            }
            q.execute(&mut **tx).await?;
            at += n;
        }
        Ok(crate::db::Finish::Commit(()))
    }).await)
}

/// Retries of a failed batch, with these waits before each (all that a batch gets when the
/// error is not the store being unavailable, or the writer is shutting down).
pub const RETRY_BACKOFF: [Duration; 3] =
    [Duration::from_millis(100), Duration::from_millis(400), Duration::from_millis(1600)];
/// The wait between retries once [`RETRY_BACKOFF`] is used up (store unavailable).
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);
/// An attempt still unfinished after this long marks the store failing (it keeps waiting).
pub const STALL_AFTER: Duration = Duration::from_secs(2);

/// Whether `err` says the store is unavailable for now (full, gone, busy), so waiting and
/// retrying the same batch can succeed; otherwise the statement itself is refused.
fn store_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => {
            if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                // Disk full, table full, error writing a file, too many connections, shutdown in
                // progress, lock wait timeout, deadlock, connection killed, server gone, lost.
                return matches!(my.number(), 3 | 1021 | 1030 | 1040 | 1053 | 1114 | 1205 | 1213 | 1927 | 2006 | 2013);
            }
            // SQLite: the primary result code of the extended one.
            let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0) & 0xff;
            // BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN.
            matches!(code, 5 | 6 | 7 | 10 | 13 | 14)
        }
        _ => false,
    }
}

struct Task {
    store: Store,
    rx: mpsc::Receiver<LogRecord>,
    control: mpsc::UnboundedReceiver<Control>,
    counters: Arc<Counters>,
    max_batch: usize,
    flush_interval: Duration,
    sql: SqlCache,
}

/// What the task loop keeps while it runs.
#[derive(Default)]
struct Progress {
    /// Records taken from the channel.
    received: u64,
    /// Of those, committed or failed.
    processed: u64,
    /// Flushes waiting, with the `processed` count that answers them.
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    stopping: bool,
}

impl Task {
    async fn run(mut self) {
        let mut buf: Vec<LogRecord> = Vec::with_capacity(self.max_batch);
        let mut p = Progress::default();
        loop {
            if buf.is_empty() && p.flushes.is_empty() && !p.stopping {
                tokio::select! {
                    biased;
                    c = self.control.recv() => self.on_control(c, &mut p),
                    r = self.rx.recv() => match r {
                        Some(r) => { buf.push(r); p.received += 1; }
                        None => p.stopping = true,
                    },
                }
            }
            let deadline = Instant::now() + self.flush_interval;
            loop {
                while buf.len() < self.max_batch {
                    match self.rx.try_recv() {
                        Ok(r) => {
                            buf.push(r);
                            p.received += 1;
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            p.stopping = true;
                            break;
                        }
                    }
                }
                if buf.len() >= self.max_batch || !p.flushes.is_empty() || p.stopping || buf.is_empty() {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                // While the batch fills, records wait in the channel: the task looks at it every
                // FILL_CHECK (and at once for a flush or shutdown) instead of being woken by
                // every submit, which cost a task wake-up and a timer registration per record.
                tokio::select! {
                    biased;
                    c = self.control.recv() => self.on_control(c, &mut p),
                    _ = tokio::time::sleep_until(deadline.min(now + FILL_CHECK)) => {}
                }
            }
            if !buf.is_empty() {
                let n = buf.len() as u64;
                buf = self.commit(std::mem::take(&mut buf), &mut p).await;
                p.processed += n;
                buf.clear();
            }
            // Nothing left anywhere: every flush is answered even if its goal was counted high.
            let idle = self.rx.is_empty();
            let mut i = 0;
            while i < p.flushes.len() {
                if p.flushes[i].0 <= p.processed || idle {
                    let (_, tx) = p.flushes.swap_remove(i);
                    let _ = tx.send(());
                } else {
                    i += 1;
                }
            }
            if p.stopping && idle {
                break;
            }
        }
        for (_, tx) in p.flushes {
            let _ = tx.send(());
        }
    }

    fn on_control(&mut self, c: Option<Control>, p: &mut Progress) {
        match c {
            Some(Control::Flush(tx)) => p.flushes.push((p.received + self.rx.len() as u64, tx)),
            Some(Control::Shutdown) | None => {
                p.stopping = true;
                // Later submits fail (and are counted dropped); what is queued is still read.
                self.rx.close();
            }
        }
    }

    /// Writes `buf` until it is committed or given up (see the module docs); control messages
    /// that arrive meanwhile are taken (a shutdown ends the retrying of an unavailable store).
    async fn commit(&mut self, buf: Vec<LogRecord>, p: &mut Progress) -> Vec<LogRecord> {
        let counters = self.counters.clone();
        let store = self.store.describe();
        // Encoding and compressing the request records is CPU work (~1 µs per record): a
        // blocking thread does it, once per batch, before any attempt to write.
        let total = buf.len();
        let encoded = tokio::task::spawn_blocking(move || {
            let requests: Vec<&RequestRecord> = buf.iter().filter_map(LogRecord::as_request).collect();
            let n = requests.len();
            let blocks = if requests.is_empty() { Ok(Vec::new()) } else { encode_blocks(&requests) };
            (buf, n, blocks)
        })
        .await;
        let (buf, n_requests, blocks) = match encoded {
            Ok((buf, n, Ok(blocks))) => (buf, n, blocks),
            Ok((buf, n, Err(err))) => {
                tracing::error!(%store, %err, records = n, "request log records could not be encoded; records lost");
                counters.failed.fetch_add(n as u64, Ordering::AcqRel);
                (buf, 0, Vec::new())
            }
            Err(err) => {
                tracing::error!(%store, %err, records = total, "the log batch's encoding task failed; records lost");
                counters.failed.fetch_add(total as u64, Ordering::AcqRel);
                return Vec::new();
            }
        };
        let service: Vec<&ServiceRecord> = buf.iter().filter_map(LogRecord::as_service).collect();
        let written = (n_requests + service.len()) as u64;
        let mut failures = 0usize;
        let mut failing_since: Option<Instant> = None;
        loop {
            let result = {
                let attempt = write_batch(&self.store, &mut self.sql, &blocks, &service);
                tokio::pin!(attempt);
                let stall = tokio::time::sleep(STALL_AFTER);
                tokio::pin!(stall);
                let mut stalled = false;
                loop {
                    tokio::select! {
                        r = &mut attempt => break r,
                        _ = &mut stall, if !stalled => {
                            stalled = true;
                            if !counters.store_failing.swap(true, Ordering::AcqRel) {
                                failing_since = Some(Instant::now());
                            }
                            tracing::warn!(%store, records = written, waited_s = STALL_AFTER.as_secs(), "the store has not answered a log batch yet; still waiting");
                        }
                    }
                }
            };
            let err = match result {
                Ok(()) => {
                    counters.requests_committed.fetch_add(n_requests as u64, Ordering::AcqRel);
                    counters.service_committed.fetch_add(service.len() as u64, Ordering::AcqRel);
                    counters.batches.fetch_add(1, Ordering::AcqRel);
                    counters.committed.fetch_add(written, Ordering::AcqRel);
                    if counters.store_failing.swap(false, Ordering::AcqRel) {
                        let failing_s = failing_since.map_or(0.0, |t| t.elapsed().as_secs_f64());
                        tracing::warn!(%store, records = written, failed_attempts = failures, failing_s, "log writes resumed; the waiting batch is committed");
                    }
                    return buf;
                }
                Err(err) => err,
            };
            counters.write_errors.fetch_add(1, Ordering::AcqRel);
            if !counters.store_failing.swap(true, Ordering::AcqRel) {
                failing_since = Some(Instant::now());
            }
            let unavailable = store_unavailable(&err);
            let wait = match RETRY_BACKOFF.get(failures) {
                Some(&w) => w,
                None if unavailable && !p.stopping => MAX_RETRY_WAIT,
                None => {
                    tracing::error!(%store, %err, records = written, attempts = failures + 1, "log batch failed after retries; records lost");
                    counters.failed.fetch_add(written, Ordering::AcqRel);
                    return buf;
                }
            };
            failures += 1;
            tracing::warn!(%store, %err, records = written, attempt = failures, unavailable, retry_in_ms = wait.as_millis() as u64, "log batch failed, retrying");
            // Wait, taking flushes and a shutdown meanwhile.
            let until = Instant::now() + wait;
            loop {
                tokio::select! {
                    biased;
                    c = self.control.recv(), if !p.stopping => self.on_control(c, p),
                    _ = tokio::time::sleep_until(until) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_use_the_fixed_sizes_and_respect_the_byte_cap() {
        let g = groups(&[10; 600]);
        assert_eq!(g, vec![256, 256, 64, 16, 4, 4]);
        assert_eq!(g.iter().sum::<usize>(), 600);
        let big = MAX_STATEMENT_BYTES / 3;
        let g = groups(&[big, big, big, big, 1, 1]);
        assert_eq!(g.iter().sum::<usize>(), 6);
        assert!(g.iter().all(|&n| n == 1 || n == 4));
        assert!(groups(&[]).is_empty());
        assert_eq!(groups(&[MAX_STATEMENT_BYTES * 2]), vec![1]);
    }

    #[test]
    fn short_cuts_at_a_char_boundary() {
        let s = "é".repeat(300);
        assert_eq!(short(&s).chars().count(), MAX_SHORT_CHARS);
        assert_eq!(short("abc"), "abc");
    }
}
