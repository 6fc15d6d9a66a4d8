//! Delivery of notifications: one FIFO queue and one task per target, retries with capped
//! exponential backoff, per-target counters and the notification log.
//!
//! This module owns [`Target`] (a webhook URL or an Alertmanager), [`DeliveryQueue`], the
//! counters in [`TargetStats`] (plain atomics, exported as metrics by the server),
//! [`NotificationLog`] (a bounded in-memory log of every attempt) and the
//! [`NotificationSink`] hook through which the store can persist that log.
//!
//! A notification stays at the head of its queue until the target accepts it (2xx), so a
//! receiver that is down for a while receives everything, once, in order, when it is back. A
//! queue holds at most `capacity` notifications; beyond that the oldest is dropped and logged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::time::{now_ms, serde_rfc3339};

/// What a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// POST of Alertmanager's webhook payload to the URL.
    Webhook,
    /// POST of an alert array to `<url>/api/v2/alerts`.
    Alertmanager,
}

/// A notification target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// What it speaks.
    pub kind: TargetKind,
    /// The URL as configured.
    pub url: String,
    /// Receiver name shown in the log.
    pub receiver: String,
}

impl Target {
    /// The URL posted to.
    pub fn post_url(&self) -> String {
        match self.kind {
            TargetKind::Webhook => self.url.clone(),
            TargetKind::Alertmanager => format!("{}/api/v2/alerts", self.url.trim_end_matches('/')),
        }
    }
}

/// Retry settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// First wait after a failure (default 1 s).
    pub initial_backoff: Duration,
    /// Longest wait (default 60 s).
    pub max_backoff: Duration,
    /// Timeout of one attempt (default 10 s).
    pub attempt_timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryConfig {
    /// The wait after the `failures`-th consecutive failure (1-based).
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// One notification to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The group it belongs to (`{}:{alertname="X"}`; `alertmanager` for pushes).
    pub group_key: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Number of alerts.
    pub alerts: usize,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// One line of the notification log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationLogEntry {
    /// When (unix ms; RFC 3339 in JSON).
    #[serde(with = "serde_rfc3339")]
    pub time: i64,
    /// Receiver name.
    pub receiver: String,
    /// Target URL.
    pub target: String,
    /// Group key.
    pub group_key: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Number of alerts.
    pub alerts: usize,
    /// Attempt number for this notification (1-based).
    pub attempt: u32,
    /// `sent`, `failed` or `dropped`.
    pub outcome: String,
    /// The error of a failed attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Receives every log entry (the store persists them). Called on the delivery task: it must
/// not block (hand the entry to a channel).
pub trait NotificationSink: Send + Sync {
    /// Records one entry.
    fn record(&self, entry: &NotificationLogEntry);
}

/// The bounded in-memory notification log.
pub struct NotificationLog {
    entries: Mutex<VecDeque<NotificationLogEntry>>,
    capacity: usize,
    sink: RwLock<Option<Arc<dyn NotificationSink>>>,
}

impl std::fmt::Debug for NotificationLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationLog").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl NotificationLog {
    /// A log keeping the newest `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self { entries: Mutex::new(VecDeque::new()), capacity: capacity.max(1), sink: RwLock::new(None) }
    }

    /// Sets the hook every entry is also given to.
    pub fn set_sink(&self, sink: Arc<dyn NotificationSink>) {
        *self.sink.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    /// Appends an entry.
    pub fn record(&self, entry: NotificationLogEntry) {
        if let Some(sink) = self.sink.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            sink.record(&entry);
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> Vec<NotificationLogEntry> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}

/// Counters of one target.
#[derive(Debug, Default)]
pub struct TargetStats {
    /// Notifications accepted by the target.
    pub sent: AtomicU64,
    /// Failed attempts (each retry counts).
    pub failed: AtomicU64,
    /// Notifications dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// A snapshot of a target's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetStatsView {
    /// The target.
    pub target: Target,
    /// Accepted notifications.
    pub sent: u64,
    /// Failed attempts.
    pub failed: u64,
    /// Dropped notifications.
    pub dropped: u64,
    /// Waiting now.
    pub queued: usize,
}

/// The queue of one target.
pub struct DeliveryQueue {
    target: Target,
    queue: Mutex<VecDeque<(u64, Notification)>>,
    next_seq: AtomicU64,
    capacity: usize,
    wake: Notify,
    /// Counters.
    pub stats: TargetStats,
    log: Arc<NotificationLog>,
}

impl std::fmt::Debug for DeliveryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryQueue").field("target", &self.target).finish_non_exhaustive()
    }
}

impl DeliveryQueue {
    /// A queue for `target` holding at most `capacity` notifications.
    pub fn new(target: Target, capacity: usize, log: Arc<NotificationLog>) -> Self {
        Self {
            target,
            queue: Mutex::new(VecDeque::new()),
            next_seq: AtomicU64::new(0),
            capacity: capacity.max(1),
            wake: Notify::new(),
            stats: TargetStats::default(),
            log,
        }
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Notification)>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of notifications waiting.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entry(&self, n: &Notification, attempt: u32, outcome: &str, error: Option<String>) -> NotificationLogEntry {
        NotificationLogEntry {
            time: now_ms(),
            receiver: self.target.receiver.clone(),
            target: self.target.url.clone(),
            group_key: n.group_key.clone(),
            status: n.status.clone(),
            alerts: n.alerts,
            attempt,
            outcome: outcome.into(),
            error,
        }
    }

    /// Queues a notification (dropping the oldest when full).
    pub fn push(&self, n: Notification) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let dropped = {
            let mut q = self.lock();
            let dropped = if q.len() >= self.capacity { q.pop_front() } else { None };
            q.push_back((seq, n));
            dropped
        };
        if let Some((_, old)) = dropped {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target = %self.target.url, group = %old.group_key, "notification queue full: dropped the oldest");
            self.log.record(self.entry(&old, 0, "dropped", Some("queue full".into())));
        }
        self.wake.notify_one();
    }

    /// The stats snapshot.
    pub fn stats_view(&self) -> TargetStatsView {
        TargetStatsView {
            target: self.target.clone(),
            sent: self.stats.sent.load(Ordering::Relaxed),
            failed: self.stats.failed.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
            queued: self.len(),
        }
    }

    async fn attempt(&self, client: &reqwest::Client, n: &Notification, timeout: Duration) -> Result<(), String> {
        let resp = client
            .post(self.target.post_url())
            .timeout(timeout)
            .json(&n.body)
            .send()
            .await
            .map_err(|e| format!("POST {}: {e}", self.target.post_url()))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        Err(format!("POST {}: HTTP {status}: {}", self.target.post_url(), body.trim()))
    }

    /// Delivers until `shutdown` turns true.
    pub async fn run(
        self: Arc<Self>,
        client: reqwest::Client,
        retry: RetryConfig,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let head = self.lock().front().cloned();
            let Some((seq, n)) = head else {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            let mut failures = 0u32;
            loop {
                match self.attempt(&client, &n, retry.attempt_timeout).await {
                    Ok(()) => {
                        self.stats.sent.fetch_add(1, Ordering::Relaxed);
                        self.log.record(self.entry(&n, failures + 1, "sent", None));
                        let mut q = self.lock();
                        if q.front().is_some_and(|(s, _)| *s == seq) {
                            q.pop_front();
                        }
                        break;
                    }
                    Err(e) => {
                        failures += 1;
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(target = %self.target.url, attempt = failures, error = %e, "notification failed; retrying");
                        self.log.record(self.entry(&n, failures, "failed", Some(e)));
                        tokio::select! {
                            _ = tokio::time::sleep(retry.backoff(failures)) => {}
                            _ = shutdown.changed() => return,
                        }
                        // Dropped from a full queue meanwhile: move on to the new head.
                        if self.lock().front().is_none_or(|(s, _)| *s != seq) {
                            break;
                        }
                    }
                }
            }
        }
    }
}
