//! Saving alert state and silences across restarts.
//!
//! This module owns the [`AlertStatePersistence`] trait (the store crate implements it over
//! SQL) and [`JsonFilePersistence`], the embedded default: `alerts.json`, `silences.json` and
//! `nflog.json` (what each notification group was last notified of) in
//! a data directory, each written to a temporary file and renamed into place so a crash never
//! leaves half a file.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use crate::error::PersistError;
use crate::eval::PersistedAlert;
use crate::notify::NflogEntry;
use crate::silence::Silence;

/// Where active alerts and silences are kept between runs. Calls are synchronous and may block
/// (the crate calls them from blocking threads, never on the async runtime).
pub trait AlertStatePersistence: Send + Sync {
    /// The saved active alerts (empty when nothing was saved).
    fn load_alerts(&self) -> Result<Vec<PersistedAlert>, PersistError>;
    /// Replaces the saved active alerts.
    fn save_alerts(&self, alerts: &[PersistedAlert]) -> Result<(), PersistError>;
    /// The saved silences.
    fn load_silences(&self) -> Result<Vec<Silence>, PersistError>;
    /// Replaces the saved silences.
    fn save_silences(&self, silences: &[Silence]) -> Result<(), PersistError>;
    /// The saved notification log (what each group was last notified of). Stores that do not
    /// keep it answer empty, and a process that starts evaluating notifies afresh.
    fn load_nflog(&self) -> Result<BTreeMap<String, NflogEntry>, PersistError> {
        Ok(BTreeMap::new())
    }
    /// Replaces the saved notification log.
    fn save_nflog(&self, _nflog: &BTreeMap<String, NflogEntry>) -> Result<(), PersistError> {
        Ok(())
    }
}

/// JSON files in a directory.
#[derive(Debug, Clone)]
pub struct JsonFilePersistence {
    dir: PathBuf,
}

impl JsonFilePersistence {
    /// Uses `dir` (created when missing).
    pub fn new(dir: &Path) -> Result<Self, PersistError> {
        std::fs::create_dir_all(dir).map_err(|source| PersistError::Io { path: dir.to_path_buf(), source })?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    /// The alerts file.
    pub fn alerts_path(&self) -> PathBuf {
        self.dir.join("alerts.json")
    }

    /// The notification log file.
    pub fn nflog_path(&self) -> PathBuf {
        self.dir.join("nflog.json")
    }

    /// The silences file.
    pub fn silences_path(&self) -> PathBuf {
        self.dir.join("silences.json")
    }

    fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, PersistError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| PersistError::Json { path: path.to_path_buf(), source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(PersistError::Io { path: path.to_path_buf(), source }),
        }
    }

    fn save<T: serde::Serialize>(path: &Path, items: &[T]) -> Result<(), PersistError> {
        let bytes = serde_json::to_vec_pretty(items)
            .map_err(|source| PersistError::Json { path: path.to_path_buf(), source })?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes).map_err(|source| PersistError::Io { path: tmp.clone(), source })?;
        std::fs::rename(&tmp, path).map_err(|source| PersistError::Io { path: path.to_path_buf(), source })
    }
}

impl AlertStatePersistence for JsonFilePersistence {
    fn load_alerts(&self) -> Result<Vec<PersistedAlert>, PersistError> {
        Self::load(&self.alerts_path())
    }

    fn save_alerts(&self, alerts: &[PersistedAlert]) -> Result<(), PersistError> {
        Self::save(&self.alerts_path(), alerts)
    }

    fn load_silences(&self) -> Result<Vec<Silence>, PersistError> {
        Self::load(&self.silences_path())
    }

    fn save_silences(&self, silences: &[Silence]) -> Result<(), PersistError> {
        Self::save(&self.silences_path(), silences)
    }

    fn load_nflog(&self) -> Result<BTreeMap<String, NflogEntry>, PersistError> {
        Ok(Self::load::<(String, NflogEntry)>(&self.nflog_path())?.into_iter().collect())
    }

    fn save_nflog(&self, nflog: &BTreeMap<String, NflogEntry>) -> Result<(), PersistError> {
        let entries: Vec<(&String, &NflogEntry)> = nflog.iter().collect();
        Self::save(&self.nflog_path(), &entries)
    }
}
