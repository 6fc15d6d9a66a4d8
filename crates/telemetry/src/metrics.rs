//! The metric registry: families of counters, gauges and histograms with typed handles.
//!
//! This module owns [`Registry`], the family types ([`CounterVec`], [`GaugeVec`],
//! [`HistogramVec`]) and the per-series handles ([`Counter`], [`Gauge`], [`Histogram`]).
//! Resolving a handle for a label set takes a lock and allocates (the cold path, done once per
//! label set); recording through a handle is a few atomic operations and never allocates. Each
//! family caps its number of series. [`Registry::gather`] takes a consistent-enough snapshot
//! ([`FamilySnapshot`]) that both the text exposition and the series store read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::MetricsError;
use crate::labels::LabelSet;

/// Default cap on the number of series in one family.
pub const DEFAULT_MAX_SERIES_PER_FAMILY: usize = 4096;

/// Latency buckets in seconds, 100 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Batch size buckets (powers of two up to 256).
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The type of a metric family, as written in `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic counter (name ends in `_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative buckets, sum and count.
    Histogram,
}

impl MetricKind {
    /// The `# TYPE` keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// An `f64` stored in an `AtomicU64`, updated lock-free.
#[derive(Debug, Default)]
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    /// A new cell holding `v`.
    pub fn new(v: f64) -> Self {
        Self(AtomicU64::new(v.to_bits()))
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// Replaces the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    /// Adds `v` (compare-and-swap loop).
    pub fn add(&self, v: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + v).to_bits();
            match self.0.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }
}

/// A counter handle for one label set. Cloning is cheap (an `Arc`).
#[derive(Debug, Clone)]
pub struct Counter(Arc<AtomicF64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.add(1.0);
    }

    /// Adds `v`; negative or NaN increments are ignored (a counter never goes down).
    pub fn inc_by(&self, v: f64) {
        if v > 0.0 {
            self.0.add(v);
        }
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// A gauge handle for one label set.
#[derive(Debug, Clone)]
pub struct Gauge(Arc<AtomicF64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }

    /// Adds `v` (may be negative).
    pub fn add(&self, v: f64) {
        self.0.add(v);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.add(1.0);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.0.add(-1.0);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// The storage of one histogram series: per-bucket counts (not cumulative), sum.
#[derive(Debug)]
pub struct HistogramCore {
    bounds: Arc<[f64]>,
    /// One slot per bound plus the `+Inf` slot.
    counts: Box<[AtomicU64]>,
    sum: AtomicF64,
}

impl HistogramCore {
    fn new(bounds: Arc<[f64]>) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self { bounds, counts, sum: AtomicF64::new(0.0) }
    }

    fn observe(&self, v: f64) {
        // First bucket whose upper bound is >= v (Prometheus buckets are `le`).
        let idx = self.bounds.partition_point(|b| *b < v);
        self.counts[idx].fetch_add(1, Ordering::Relaxed);
        self.sum.add(v);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0u64;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = self.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((le, cumulative));
        }
        HistogramSnapshot { buckets, sum: self.sum.get(), count: cumulative }
    }
}

/// A histogram handle for one label set.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramCore>);

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, v: f64) {
        self.0.observe(v);
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, d: std::time::Duration) {
        self.0.observe(d.as_secs_f64());
    }

    /// A snapshot of the buckets, sum and count.
    pub fn snapshot(&self) -> HistogramSnapshot {
        self.0.snapshot()
    }
}

/// A histogram's state at one instant: cumulative buckets ending with `+Inf`, sum and count
/// (count always equals the `+Inf` bucket).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(le, cumulative count)` in increasing `le`, last is `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

/// The value of one series in a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotValue {
    /// A counter or gauge value.
    Scalar(f64),
    /// A histogram.
    Histogram(HistogramSnapshot),
}

/// One series of a family in a snapshot (labels without `__name__`).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSnapshot {
    /// Label pairs in the family's label-name order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: SnapshotValue,
}

/// A whole family at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilySnapshot {
    /// Metric name.
    pub name: String,
    /// Help text.
    pub help: String,
    /// Type.
    pub kind: MetricKind,
    /// Its series.
    pub series: Vec<SeriesSnapshot>,
}

impl FamilySnapshot {
    /// Flattens into the sample series a Prometheus scrape produces: the counter/gauge itself, or
    /// `_bucket{le}`, `_sum`, `_count` for a histogram. Labels include `__name__`.
    pub fn samples(&self) -> Vec<(LabelSet, f64)> {
        let mut out = Vec::new();
        for s in &self.series {
            let base = || LabelSet::from_pairs(s.labels.iter().cloned());
            match &s.value {
                SnapshotValue::Scalar(v) => {
                    let mut l = base();
                    l.insert(crate::labels::METRIC_NAME.into(), self.name.clone());
                    out.push((l, *v));
                }
                SnapshotValue::Histogram(h) => {
                    for (le, c) in &h.buckets {
                        let mut l = base();
                        l.insert(crate::labels::METRIC_NAME.into(), format!("{}_bucket", self.name));
                        l.insert("le".into(), crate::exposition::format_float(*le));
                        out.push((l, *c as f64));
                    }
                    let mut l = base();
                    l.insert(crate::labels::METRIC_NAME.into(), format!("{}_sum", self.name));
                    out.push((l, h.sum));
                    let mut l = base();
                    l.insert(crate::labels::METRIC_NAME.into(), format!("{}_count", self.name));
                    out.push((l, h.count as f64));
                }
            }
        }
        out
    }
}

/// Something that produces families at gather time (e.g. the `process_*` collector).
pub trait Collector: Send + Sync {
    /// Appends this collector's families.
    fn collect(&self, out: &mut Vec<FamilySnapshot>);
}

#[derive(Debug)]
enum Cell {
    Scalar(Arc<AtomicF64>),
    Histogram(Arc<HistogramCore>),
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: MetricKind,
    label_names: Vec<String>,
    buckets: Arc<[f64]>,
    max_series: usize,
    series: RwLock<BTreeMap<Vec<String>, Cell>>,
}

impl Family {
    fn resolve(&self, values: &[&str]) -> Result<Cell, MetricsError> {
        if values.len() != self.label_names.len() {
            return Err(MetricsError::LabelCount {
                metric: self.name.clone(),
                expected: self.label_names.len(),
                got: values.len(),
            });
        }
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        if let Some(cell) = self.series.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(cell.share());
        }
        let mut series = self.series.write().unwrap_or_else(|e| e.into_inner());
        if let Some(cell) = series.get(&key) {
            return Ok(cell.share());
        }
        if series.len() >= self.max_series {
            return Err(MetricsError::CardinalityCap {
                kind: "series per metric family",
                cap: self.max_series,
                value: format!("{}{{{}}}", self.name, key.join(",")),
            });
        }
        let cell = match self.kind {
            MetricKind::Histogram => Cell::Histogram(Arc::new(HistogramCore::new(self.buckets.clone()))),
            _ => Cell::Scalar(Arc::new(AtomicF64::new(0.0))),
        };
        let shared = cell.share();
        series.insert(key, cell);
        Ok(shared)
    }

    fn snapshot(&self) -> FamilySnapshot {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let series = series
            .iter()
            .map(|(values, cell)| SeriesSnapshot {
                labels: self.label_names.iter().cloned().zip(values.iter().cloned()).collect(),
                value: match cell {
                    Cell::Scalar(v) => SnapshotValue::Scalar(v.get()),
                    Cell::Histogram(h) => SnapshotValue::Histogram(h.snapshot()),
                },
            })
            .collect();
        FamilySnapshot { name: self.name.clone(), help: self.help.clone(), kind: self.kind, series }
    }
}

impl Cell {
    fn share(&self) -> Cell {
        match self {
            Cell::Scalar(a) => Cell::Scalar(a.clone()),
            Cell::Histogram(h) => Cell::Histogram(h.clone()),
        }
    }
}

macro_rules! family_type {
    ($(#[$doc:meta])* $vec:ident, $handle:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $vec(Arc<Family>);

        impl $vec {
            /// The handle for one label set (values in label-name order). Cold path: locks and
            /// allocates; keep the handle and record through it.
            pub fn with(&self, values: &[&str]) -> Result<$handle, MetricsError> {
                match self.0.resolve(values)? {
                    Cell::Scalar(a) => Ok($handle::from_scalar(a)),
                    Cell::Histogram(h) => Ok($handle::from_histogram(h)),
                }
            }

            /// The metric name.
            pub fn name(&self) -> &str {
                &self.0.name
            }
        }
    };
}

impl Counter {
    fn from_scalar(a: Arc<AtomicF64>) -> Self {
        Counter(a)
    }
    fn from_histogram(_: Arc<HistogramCore>) -> Self {
        unreachable_family()
    }
}
impl Gauge {
    fn from_scalar(a: Arc<AtomicF64>) -> Self {
        Gauge(a)
    }
    fn from_histogram(_: Arc<HistogramCore>) -> Self {
        unreachable_family()
    }
}
impl Histogram {
    fn from_scalar(_: Arc<AtomicF64>) -> Self {
        unreachable_family()
    }
    fn from_histogram(h: Arc<HistogramCore>) -> Self {
        Histogram(h)
    }
}

/// A family's cells always match its kind (the vec types are only built by the registry with the
/// matching kind), so this cannot be reached.
fn unreachable_family() -> ! {
    unreachable!("metric family kind and handle type always match")
}

family_type!(
    /// A counter family.
    CounterVec,
    Counter
);
family_type!(
    /// A gauge family.
    GaugeVec,
    Gauge
);
family_type!(
    /// A histogram family.
    HistogramVec,
    Histogram
);

/// Whether `name` is a valid Prometheus metric name.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid Prometheus label name (and not reserved).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// The registry of metric families, in registration order, plus collectors.
#[derive(Default)]
pub struct Registry {
    families: RwLock<Vec<Arc<Family>>>,
    collectors: RwLock<Vec<Box<dyn Collector>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("families", &self.families).finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(
        &self,
        name: &str,
        help: &str,
        kind: MetricKind,
        label_names: &[&str],
        buckets: &[f64],
    ) -> Result<Arc<Family>, MetricsError> {
        if !is_valid_metric_name(name) {
            return Err(MetricsError::InvalidName(name.to_string()));
        }
        if let Some(bad) =
            label_names.iter().find(|l| !is_valid_label_name(l) || (kind == MetricKind::Histogram && **l == "le"))
        {
            return Err(MetricsError::InvalidName(bad.to_string()));
        }
        if kind == MetricKind::Histogram
            && (buckets.is_empty()
                || buckets.iter().any(|b| !b.is_finite())
                || buckets.windows(2).any(|w| w[0] >= w[1]))
        {
            return Err(MetricsError::InvalidBuckets(name.to_string()));
        }
        let mut families = self.families.write().unwrap_or_else(|e| e.into_inner());
        if families.iter().any(|f| f.name == name) {
            return Err(MetricsError::Duplicate(name.to_string()));
        }
        let family = Arc::new(Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            label_names: label_names.iter().map(|s| s.to_string()).collect(),
            buckets: buckets.into(),
            max_series: DEFAULT_MAX_SERIES_PER_FAMILY,
            series: RwLock::new(BTreeMap::new()),
        });
        families.push(family.clone());
        Ok(family)
    }

    /// Registers a counter family (its name should end in `_total`).
    pub fn counter_vec(&self, name: &str, help: &str, label_names: &[&str]) -> Result<CounterVec, MetricsError> {
        Ok(CounterVec(self.add(name, help, MetricKind::Counter, label_names, &[])?))
    }

    /// Registers a gauge family.
    pub fn gauge_vec(&self, name: &str, help: &str, label_names: &[&str]) -> Result<GaugeVec, MetricsError> {
        Ok(GaugeVec(self.add(name, help, MetricKind::Gauge, label_names, &[])?))
    }

    /// Registers a histogram family with the given upper bounds (`+Inf` is implied).
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        buckets: &[f64],
    ) -> Result<HistogramVec, MetricsError> {
        Ok(HistogramVec(self.add(name, help, MetricKind::Histogram, label_names, buckets)?))
    }

    /// Registers an unlabelled counter.
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, MetricsError> {
        self.counter_vec(name, help, &[])?.with(&[])
    }

    /// Registers an unlabelled gauge.
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, MetricsError> {
        self.gauge_vec(name, help, &[])?.with(&[])
    }

    /// Registers an unlabelled histogram.
    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Result<Histogram, MetricsError> {
        self.histogram_vec(name, help, &[], buckets)?.with(&[])
    }

    /// Adds a collector whose families are appended at every gather.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        self.collectors.write().unwrap_or_else(|e| e.into_inner()).push(collector);
    }

    /// Snapshots every family (registration order, then collectors), omitting families with no series.
    pub fn gather(&self) -> Vec<FamilySnapshot> {
        let families: Vec<Arc<Family>> = self.families.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out: Vec<FamilySnapshot> =
            families.iter().map(|f| f.snapshot()).filter(|f| !f.series.is_empty()).collect();
        for c in self.collectors.read().unwrap_or_else(|e| e.into_inner()).iter() {
            c.collect(&mut out);
        }
        out
    }
}
