//! The drift monitors of every loaded model version: one [`DriftMonitor`] per (model, version),
//! created on first use against the version's shipped reference statistics or capturing one,
//! snapshots of them all, and forgetting versions that are no longer loaded. This module owns
//! that map, the once-per-version reference lookup, and [`shipped_reference`], the lookup's
//! "invalid file → warn and capture" rule.

use std::collections::BTreeMap;
use std::fmt;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;

use crate::monitor::{ConfigError, DriftConfig, DriftMonitor, DriftSnapshot, slice_ms};
use crate::reference::{ReferenceError, ReferenceStats};

/// Finds the reference statistics shipped with a model version: `(model, version)` → `Some`
/// statistics, or `None` to capture them from the version's first requests.
pub type ReferenceLookup = Arc<dyn Fn(&str, u64) -> Option<ReferenceStats> + Send + Sync>;

/// Where a monitored version's reference statistics come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceSource {
    /// Shipped with the model (found by the lookup).
    Shipped,
    /// Captured from the version's first requests, complete.
    Captured,
    /// Being captured: no drift yet.
    Capturing,
}

/// The drift of one model version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionDrift {
    /// The model.
    pub model: String,
    /// The version.
    pub version: u64,
    /// Where its reference statistics come from.
    pub reference: ReferenceSource,
    /// Its drift.
    pub snapshot: DriftSnapshot,
}

#[derive(Debug, Clone)]
struct Monitored {
    monitor: Arc<DriftMonitor>,
    shipped: bool,
}

/// The drift monitors of every model version the server serves, by model and version.
///
/// `Send + Sync`; share it in an `Arc`. [`Self::monitor`] takes a read lock and two map lookups
/// when the version's monitor exists (the request path); the first call for a version runs the
/// reference lookup (once per version, even when requests race) without blocking requests of
/// versions already monitored.
pub struct DriftHub {
    config: DriftConfig,
    slice_ms: u64,
    reference_for: ReferenceLookup,
    monitors: RwLock<BTreeMap<String, BTreeMap<u64, Monitored>>>,
    /// Held while a monitor is created, so each version's reference is looked up once.
    creating: Mutex<()>,
}

impl fmt::Debug for DriftHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let monitors = self.read();
        let versions: Vec<(&String, Vec<&u64>)> = monitors.iter().map(|(m, v)| (m, v.keys().collect())).collect();
        f.debug_struct("DriftHub").field("config", &self.config).field("versions", &versions).finish_non_exhaustive()
    }
}

impl DriftHub {
    /// A hub whose monitors use `config`, and `reference_for(model, version)` to find each
    /// version's shipped reference statistics (`None` → the monitor captures them from the first
    /// `config.capture_requests` requests, as [`DriftMonitor::capturing`] does).
    ///
    /// The lookup's `Option` leaves error handling to it: a file that exists but is invalid
    /// must be reported there (a `tracing` warning naming the file and the problem) and answered
    /// with `None`, so the version falls back to capturing. [`shipped_reference`] does exactly
    /// that for a file path. The lookup runs on the thread of the first [`Self::monitor`] call
    /// for the version; it must not call back into the hub.
    ///
    /// # Errors
    /// An invalid window configuration (checked once here, so creating monitors cannot fail).
    pub fn new(config: DriftConfig, reference_for: ReferenceLookup) -> Result<Self, ConfigError> {
        let slice_ms = slice_ms(&config)?;
        Ok(Self { config, slice_ms, reference_for, monitors: RwLock::default(), creating: Mutex::new(()) })
    }

    /// The configuration of every monitor.
    pub fn config(&self) -> &DriftConfig {
        &self.config
    }

    /// The monitor of `model` `version`, created on first use (the reference is looked up
    /// then, once). Later calls return the same `Arc`.
    pub fn monitor(&self, model: &str, version: u64) -> Arc<DriftMonitor> {
        if let Some(monitor) = self.get(model, version) {
            return monitor;
        }
        let _creating = self.creating.lock().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have created it while this one waited.
        if let Some(monitor) = self.get(model, version) {
            return monitor;
        }
        let reference = (self.reference_for)(model, version);
        let shipped = reference.is_some();
        tracing::info!(
            model,
            version,
            reference = if shipped { "shipped" } else { "capturing" },
            capture_requests = self.config.capture_requests,
            "drift monitoring starts"
        );
        let monitor = Arc::new(DriftMonitor::validated(reference, self.config.clone(), self.slice_ms));
        self.write()
            .entry(model.to_owned())
            .or_default()
            .insert(version, Monitored { monitor: Arc::clone(&monitor), shipped });
        monitor
    }

    /// The monitor of `model` `version` if it exists; never creates one.
    pub fn get(&self, model: &str, version: u64) -> Option<Arc<DriftMonitor>> {
        self.read().get(model)?.get(&version).map(|m| Arc::clone(&m.monitor))
    }

    /// Snapshots of every monitored version at wall-clock time; see [`Self::snapshots_at`].
    pub fn snapshots(&self) -> Vec<VersionDrift> {
        self.snapshots_at(crate::monitor::now_ms())
    }

    /// Snapshots of every monitored version over the window ending at `t_ms`, sorted by model
    /// then version.
    pub fn snapshots_at(&self, t_ms: u64) -> Vec<VersionDrift> {
        // Snapshots are taken outside the hub's lock, so monitors keep being created meanwhile.
        let monitored: Vec<(String, u64, Monitored)> = self
            .read()
            .iter()
            .flat_map(|(model, versions)| versions.iter().map(move |(v, m)| (model.clone(), *v, m.clone())))
            .collect();
        monitored
            .into_iter()
            .map(|(model, version, Monitored { monitor, shipped })| {
                let reference = match (shipped, monitor.reference().is_some()) {
                    (true, _) => ReferenceSource::Shipped,
                    (false, true) => ReferenceSource::Captured,
                    (false, false) => ReferenceSource::Capturing,
                };
                VersionDrift { model, version, reference, snapshot: monitor.snapshot_at(t_ms) }
            })
            .collect()
    }

    /// Forgets every version for which `keep(model, version)` is false (versions no longer
    /// loaded). Handlers still holding a forgotten monitor's `Arc` record into it harmlessly; a
    /// later [`Self::monitor`] call for the version starts afresh.
    pub fn retain(&self, keep: impl Fn(&str, u64) -> bool) {
        let mut monitors = self.write();
        monitors.retain(|model, versions| {
            versions.retain(|&version, _| keep(model, version));
            !versions.is_empty()
        });
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, BTreeMap<u64, Monitored>>> {
        // Writers only insert or remove whole entries; a panic cannot leave the map half-changed.
        self.monitors.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, BTreeMap<u64, Monitored>>> {
        self.monitors.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The reference statistics file at `path` for a [`ReferenceLookup`]: `Some` when it is valid;
/// `None` when there is no file (a model shipped without one: capture, silently) and when it
/// cannot be read or is invalid, which is logged as a `tracing` warning naming the file and
/// the problem, so that the version falls back to capturing instead of going unmonitored.
pub fn shipped_reference(path: impl AsRef<Path>) -> Option<ReferenceStats> {
    let path = path.as_ref();
    match ReferenceStats::load(path) {
        Ok(stats) => Some(stats),
        Err(ReferenceError::Read { source, .. }) if source.kind() == ErrorKind::NotFound => None,
        Err(error) => {
            tracing::warn!(
                path = %path.display(),
                %error,
                "invalid reference statistics; capturing a reference from live traffic instead"
            );
            None
        }
    }
}
