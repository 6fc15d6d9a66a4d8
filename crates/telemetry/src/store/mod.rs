//! The embedded series store: every registered series, sampled every scrape interval, kept in
//! memory for the retention period and persisted so history survives a restart.
//!
//! This module owns [`SeriesStore`] and [`StoreConfig`]. A scrape ([`SeriesStore::scrape`]) reads
//! the registry like Prometheus reads `/metrics`: counters and gauges become one series each,
//! histograms become `_bucket{le}`, `_sum` and `_count` series. A series that disappears between
//! two scrapes gets a staleness marker, as in Prometheus. Samples older than the retention
//! (measured from the newest sample) are dropped. Persistence goes through
//! [`persist::SeriesPersistence`].

pub mod persist;

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::StoreError;
use crate::labels::LabelSet;
use crate::metrics::Registry;
use crate::sampler::BackgroundHandle;
pub use persist::{FilePersistence, SeriesData, SeriesPersistence};

/// Prometheus's staleness marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is the staleness marker.
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// The current time in unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How often the scraper snapshots the registry (default 5 s).
    pub scrape_interval: Duration,
    /// How long samples are kept (default 6 h).
    pub retention: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { scrape_interval: Duration::from_secs(5), retention: Duration::from_secs(6 * 3600) }
    }
}

#[derive(Default)]
struct Inner {
    series: BTreeMap<LabelSet, VecDeque<(i64, f64)>>,
    /// Series present in the last scrape (for staleness markers).
    present: HashSet<LabelSet>,
    newest: i64,
}

/// The in-memory series store.
pub struct SeriesStore {
    config: StoreConfig,
    inner: RwLock<Inner>,
    persistence: Mutex<Option<Box<dyn SeriesPersistence>>>,
}

impl std::fmt::Debug for SeriesStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesStore").field("config", &self.config).finish_non_exhaustive()
    }
}

impl SeriesStore {
    /// An in-memory store without persistence.
    pub fn new(config: StoreConfig) -> Self {
        Self { config, inner: RwLock::new(Inner::default()), persistence: Mutex::new(None) }
    }

    /// A store that loads its history from `persistence` and appends to it.
    pub fn open(config: StoreConfig, mut persistence: Box<dyn SeriesPersistence>) -> Result<Self, StoreError> {
        let loaded = persistence.load()?;
        let store = Self::new(config);
        {
            let mut inner = store.write();
            for (labels, points) in loaded {
                if let Some(&(t, v)) = points.last() {
                    inner.newest = inner.newest.max(t);
                    if !is_stale(v) {
                        inner.present.insert(labels.clone());
                    }
                }
                inner.series.insert(labels, points.into());
            }
            store.trim(&mut inner);
        }
        *store.persistence.lock().unwrap_or_else(|e| e.into_inner()) = Some(persistence);
        Ok(store)
    }

    /// A store persisted in `<dir>/series.bin`.
    pub fn open_dir(config: StoreConfig, dir: &Path) -> Result<Self, StoreError> {
        Self::open(config, Box::new(FilePersistence::new(dir)?))
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn trim(&self, inner: &mut Inner) {
        let cutoff = inner.newest - self.config.retention.as_millis() as i64;
        inner.series.retain(|_, pts| {
            while pts.front().is_some_and(|p| p.0 < cutoff) {
                pts.pop_front();
            }
            !pts.is_empty()
        });
    }

    fn persist(&self, samples: &[(&LabelSet, i64, f64)]) {
        let mut guard = self.persistence.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = guard.as_mut()
            && let Err(err) = p.append(samples)
        {
            tracing::warn!(%err, "could not persist series samples");
        }
    }

    fn maybe_compact(&self) {
        let mut guard = self.persistence.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = guard.as_mut()
            && p.wants_compaction()
        {
            let snapshot = self.dump();
            if let Err(err) = p.compact(&snapshot) {
                tracing::warn!(%err, "could not compact the series file");
            }
        }
    }

    /// Ingests one scrape at `ts_ms`: appends every sample, marks series that were present in the
    /// previous scrape and are missing now as stale, applies retention, persists.
    pub fn ingest_scrape(&self, ts_ms: i64, samples: Vec<(LabelSet, f64)>) {
        let mut written: Vec<(LabelSet, f64)> = Vec::with_capacity(samples.len());
        {
            let mut inner = self.write();
            let mut now_present = HashSet::with_capacity(samples.len());
            for (labels, v) in samples {
                let pts = inner.series.entry(labels.clone()).or_default();
                if pts.back().is_some_and(|p| p.0 >= ts_ms) {
                    continue;
                }
                pts.push_back((ts_ms, v));
                written.push((labels.clone(), v));
                now_present.insert(labels);
            }
            let gone: Vec<LabelSet> = inner.present.difference(&now_present).cloned().collect();
            for labels in gone {
                if let Some(pts) = inner.series.get_mut(&labels)
                    && pts.back().is_some_and(|p| p.0 < ts_ms && !is_stale(p.1))
                {
                    pts.push_back((ts_ms, stale_nan()));
                    written.push((labels, stale_nan()));
                }
            }
            inner.present = now_present;
            inner.newest = inner.newest.max(ts_ms);
            self.trim(&mut inner);
        }
        let refs: Vec<(&LabelSet, i64, f64)> = written.iter().map(|(l, v)| (l, ts_ms, *v)).collect();
        self.persist(&refs);
        self.maybe_compact();
    }

    /// Appends raw samples `(labels, unix ms, value)` without staleness handling (imports,
    /// synthetic data in tests). Out-of-order samples of a series are dropped.
    pub fn append(&self, samples: &[(LabelSet, i64, f64)]) {
        let mut kept: Vec<(&LabelSet, i64, f64)> = Vec::with_capacity(samples.len());
        {
            let mut inner = self.write();
            for (labels, t, v) in samples {
                let pts = inner.series.entry(labels.clone()).or_default();
                if pts.back().is_some_and(|p| p.0 >= *t) {
                    continue;
                }
                pts.push_back((*t, *v));
                inner.newest = inner.newest.max(*t);
                kept.push((labels, *t, *v));
            }
            self.trim(&mut inner);
        }
        self.persist(&kept);
    }

    /// Snapshots `registry` at `ts_ms` (a scrape).
    pub fn scrape(&self, registry: &Registry, ts_ms: i64) {
        let samples: Vec<(LabelSet, f64)> = registry.gather().iter().flat_map(|f| f.samples()).collect();
        self.ingest_scrape(ts_ms, samples);
    }

    /// Scrapes `registry` every scrape interval on a dedicated thread until the handle is dropped.
    pub fn start_scraper(self: &Arc<Self>, registry: Arc<Registry>) -> BackgroundHandle {
        let store = self.clone();
        let interval = self.config.scrape_interval;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("recserve-scraper".into()).spawn(move || {
            loop {
                store.scrape(&registry, now_ms());
                match stopped.recv_timeout(interval) {
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => break,
                }
            }
        });
        match thread {
            Ok(t) => BackgroundHandle { stop: Some(stop), thread: Some(t) },
            Err(err) => {
                tracing::error!(%err, "could not start the series scraper thread");
                BackgroundHandle { stop: None, thread: None }
            }
        }
    }

    /// Every series with its samples in `[mint, maxt]` (staleness markers included) whose labels
    /// satisfy `matches`. Series without samples in the range are left out.
    pub fn select(&self, matches: &dyn Fn(&LabelSet) -> bool, mint: i64, maxt: i64) -> Vec<SeriesData> {
        let inner = self.read();
        let mut out = Vec::new();
        for (labels, pts) in &inner.series {
            if !matches(labels) {
                continue;
            }
            let lo = pts.partition_point(|p| p.0 < mint);
            let hi = pts.partition_point(|p| p.0 <= maxt);
            if lo < hi {
                out.push((labels.clone(), pts.range(lo..hi).copied().collect()));
            }
        }
        out
    }

    /// Label sets of the series with samples in `[mint, maxt]` satisfying `matches`.
    pub fn series_labels(&self, matches: &dyn Fn(&LabelSet) -> bool, mint: i64, maxt: i64) -> Vec<LabelSet> {
        let inner = self.read();
        inner
            .series
            .iter()
            .filter(|(l, pts)| {
                matches(l) && {
                    let lo = pts.partition_point(|p| p.0 < mint);
                    pts.get(lo).is_some_and(|p| p.0 <= maxt)
                }
            })
            .map(|(l, _)| l.clone())
            .collect()
    }

    /// Sorted label names over the selected series.
    pub fn label_names(&self, matches: &dyn Fn(&LabelSet) -> bool, mint: i64, maxt: i64) -> Vec<String> {
        let names: BTreeSet<String> = self
            .series_labels(matches, mint, maxt)
            .iter()
            .flat_map(|l| l.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>())
            .collect();
        names.into_iter().collect()
    }

    /// Sorted values of label `name` over the selected series.
    pub fn label_values(&self, name: &str, matches: &dyn Fn(&LabelSet) -> bool, mint: i64, maxt: i64) -> Vec<String> {
        let values: BTreeSet<String> =
            self.series_labels(matches, mint, maxt).iter().filter_map(|l| l.get(name).map(str::to_string)).collect();
        values.into_iter().collect()
    }

    /// Every series with all its samples.
    pub fn dump(&self) -> Vec<SeriesData> {
        self.read().series.iter().map(|(l, p)| (l.clone(), p.iter().copied().collect())).collect()
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.read().series.len()
    }

    /// Number of samples held.
    pub fn sample_count(&self) -> usize {
        self.read().series.values().map(VecDeque::len).sum()
    }

    /// Oldest and newest sample timestamps (unix ms), if any.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let inner = self.read();
        let oldest = inner.series.values().filter_map(|p| p.front().map(|s| s.0)).min()?;
        Some((oldest, inner.newest))
    }

    /// Forces a compaction of the persisted data now.
    pub fn compact(&self) -> Result<(), StoreError> {
        let mut guard = self.persistence.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(p) => p.compact(&self.dump()),
            None => Ok(()),
        }
    }
}
