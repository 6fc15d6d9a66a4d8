//! Counters and timers of one model version, updated by its batcher without locks. The
//! statistics endpoint reads them; the telemetry layer samples them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Count and cumulative nanoseconds of a duration (Triton's `*_duration_us` style).
#[derive(Debug, Default)]
pub struct DurationSum {
    count: Counter,
    nanos: Counter,
}

impl DurationSum {
    pub fn record(&self, d: Duration) {
        self.count.inc();
        self.nanos.add(d.as_nanos() as u64);
    }
    pub fn count(&self) -> u64 {
        self.count.get()
    }
    pub fn total_nanos(&self) -> u64 {
        self.nanos.get()
    }
}

/// Everything counted for one model version.
#[derive(Debug, Default)]
pub struct VersionStats {
    /// Requests answered successfully / with an error (after admission).
    pub success: Counter,
    pub failure: Counter,
    /// Requests refused because the queue was full.
    pub rejected: Counter,
    /// Requests dropped before inference because their caller had gone.
    pub abandoned: Counter,
    /// Rows inferred, and engine runs (inferences / executions = average batch size).
    pub inferences: Counter,
    pub executions: Counter,
    pub queue_time: DurationSum,
    pub compute_time: DurationSum,
    /// End-to-end time from admission to answer, per request.
    pub request_time: DurationSum,
}
