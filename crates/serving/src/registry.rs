//! The registry of served models: which versions of which models are ready, which failed the
//! gate and why. Reads on the request path are lock-free (an `ArcSwap` snapshot); loads,
//! unloads and repository polls are serialised and publish a new snapshot only once new
//! versions are ready, so a swap never fails an in-flight request (it keeps the `Arc` of the
//! version it started on).

use crate::batcher::BatchObserver;
use crate::config::ModelConfig;
use crate::error::ServingError;
use crate::gate::{self, EngineLoader, GateInput};
use crate::repository::{ModelDir, Repository, RepositoryError};
use crate::version::{Fingerprint, LoadedVersion};
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tracing::{error, info, instrument, warn};

/// The state of one version of a model.
#[derive(Clone)]
pub enum VersionState {
    Ready(Arc<LoadedVersion>),
    /// Failed the gate; not retried until its file or the model's config changes.
    Failed {
        reason: String,
        fingerprint: Option<Fingerprint>,
        config: Arc<ModelConfig>,
    },
}

/// One model as the registry knows it.
#[derive(Clone)]
pub struct ModelEntry {
    pub name: String,
    pub versions: BTreeMap<u64, VersionState>,
    /// A model-level problem (unreadable config, no loadable version), when there is one.
    pub error: Option<String>,
    /// Unloaded through the API: polling leaves it alone until it is loaded again.
    pub unloaded: bool,
}

impl ModelEntry {
    /// Ready versions, highest first.
    pub fn ready(&self) -> impl Iterator<Item = &Arc<LoadedVersion>> {
        self.versions.values().rev().filter_map(|s| match s {
            VersionState::Ready(v) => Some(v),
            VersionState::Failed { .. } => None,
        })
    }

    /// The version that serves requests that name none: the highest ready one.
    pub fn default_version(&self) -> Option<&Arc<LoadedVersion>> {
        self.ready().next()
    }

    /// Why the model cannot serve, for error messages.
    pub fn unavailable_reason(&self) -> String {
        if self.unloaded {
            return "it was unloaded".into();
        }
        if let Some(e) = &self.error {
            return e.clone();
        }
        let failures: Vec<String> = self
            .versions
            .iter()
            .filter_map(|(v, s)| match s {
                VersionState::Failed { reason, .. } => Some(format!("version {v}: {reason}")),
                VersionState::Ready(_) => None,
            })
            .collect();
        if failures.is_empty() { "no version is loaded".into() } else { failures.join("; ") }
    }
}

/// A row of the repository index (Triton's `POST /v2/repository/index`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexEntry {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Makes the batch observer of a newly loaded version (telemetry sets one on the registry).
pub type BatchObserverFactory = Arc<dyn Fn(&LoadedVersion) -> Option<Arc<dyn BatchObserver>> + Send + Sync>;

/// Served models and their versions.
pub struct ModelRegistry {
    repository: Repository,
    loader: EngineLoader,
    models: ArcSwap<BTreeMap<String, Arc<ModelEntry>>>,
    write: tokio::sync::Mutex<()>,
    started: AtomicBool,
    observers: RwLock<Option<BatchObserverFactory>>,
}

impl ModelRegistry {
    /// A registry over the repository at `root`, loading models with `loader`.
    pub fn new(root: impl Into<PathBuf>, loader: EngineLoader) -> Arc<ModelRegistry> {
        Arc::new(ModelRegistry {
            repository: Repository::new(root),
            loader,
            models: ArcSwap::from_pointee(BTreeMap::new()),
            write: tokio::sync::Mutex::new(()),
            started: AtomicBool::new(false),
            observers: RwLock::new(None),
        })
    }

    /// Gives every loaded version, and every version loaded from now on, the batch observer
    /// `factory` makes for it.
    pub fn set_batch_observers(&self, factory: BatchObserverFactory) {
        *self.observers.write().unwrap_or_else(|e| e.into_inner()) = Some(factory.clone());
        for entry in self.snapshot().values() {
            for loaded in entry.ready() {
                loaded.set_batch_observer(factory(loaded));
            }
        }
    }

    fn attach_observer(&self, loaded: &LoadedVersion) {
        if let Some(factory) = self.observers.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            loaded.set_batch_observer(factory(loaded));
        }
    }

    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// True once the first full load of the repository has finished.
    pub fn is_ready(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// The current models (a consistent snapshot).
    pub fn snapshot(&self) -> Arc<BTreeMap<String, Arc<ModelEntry>>> {
        self.models.load_full()
    }

    /// One model's entry.
    pub fn entry(&self, model: &str) -> Result<Arc<ModelEntry>, ServingError> {
        self.models.load().get(model).cloned().ok_or_else(|| ServingError::ModelNotFound { model: model.to_string() })
    }

    /// The version that should answer a request: the one named, or the model's default.
    pub fn resolve(&self, model: &str, version: Option<&str>) -> Result<Arc<LoadedVersion>, ServingError> {
        let guard = self.models.load();
        let entry = guard.get(model).ok_or_else(|| ServingError::ModelNotFound { model: model.to_string() })?;
        match version.filter(|v| !v.is_empty()) {
            None => entry
                .default_version()
                .cloned()
                .ok_or_else(|| ServingError::NotReady { model: model.to_string(), reason: entry.unavailable_reason() }),
            Some(v) => {
                let not_found = || ServingError::VersionNotFound { model: model.to_string(), version: v.to_string() };
                let n: u64 = v.parse().map_err(|_| not_found())?;
                match entry.versions.get(&n) {
                    Some(VersionState::Ready(loaded)) => Ok(loaded.clone()),
                    Some(VersionState::Failed { reason, .. }) => Err(ServingError::NotReady {
                        model: model.to_string(),
                        reason: format!("version {n} failed validation: {reason}"),
                    }),
                    None => Err(not_found()),
                }
            }
        }
    }

    /// Loads (or reloads) every model in the repository; marks the registry ready the first
    /// time. Models that fail are reported, the rest serve.
    #[instrument(skip(self), fields(repository = %self.repository.root().display()))]
    pub async fn poll(&self) {
        let _write = self.write.lock().await;
        let dirs = match self.repository.scan() {
            Ok(d) => d,
            Err(e) => {
                // Keep serving what is loaded: a repository that cannot be read right now says
                // nothing about the models in memory.
                error!(error = %e, "cannot scan the model repository; keeping the loaded models");
                self.started.store(true, Ordering::Release);
                return;
            }
        };
        let current = self.snapshot();
        let mut next: BTreeMap<String, Arc<ModelEntry>> = BTreeMap::new();
        let on_disk: BTreeSet<&str> = dirs.iter().map(|d| d.name.as_str()).collect();
        for name in current.keys() {
            if !on_disk.contains(name.as_str()) {
                info!(model = %name, "model directory removed; unloading");
            }
        }
        for dir in &dirs {
            let old = current.get(&dir.name);
            if old.is_some_and(|o| o.unloaded) {
                next.insert(dir.name.clone(), old.cloned().expect("checked above"));
                continue;
            }
            let entry = self.sync_dir(dir, old.map(|o| o.as_ref())).await;
            next.insert(dir.name.clone(), Arc::new(entry));
        }
        self.models.store(Arc::new(next));
        self.started.store(true, Ordering::Release);
    }

    /// Loads a model through the API (Triton's `repository/models/<m>/load`). Fails when no
    /// version of it can serve.
    #[instrument(skip(self))]
    pub async fn load_model(&self, model: &str) -> Result<(), ServingError> {
        let _write = self.write.lock().await;
        let dir = self.repository.model(model).map_err(|e| match e {
            RepositoryError::NoSuchModel { .. } => ServingError::ModelNotFound { model: model.to_string() },
            other => ServingError::Repository(other.to_string()),
        })?;
        let current = self.snapshot();
        let old = current.get(model).filter(|o| !o.unloaded).map(|o| o.as_ref());
        let entry = self.sync_dir(&dir, old).await;
        let result = if entry.default_version().is_some() {
            Ok(())
        } else {
            Err(ServingError::NotReady { model: model.to_string(), reason: entry.unavailable_reason() })
        };
        let mut next = (*current).clone();
        next.insert(model.to_string(), Arc::new(entry));
        self.models.store(Arc::new(next));
        result
    }

    /// Unloads every version of a model (Triton's `repository/models/<m>/unload`). Requests
    /// already queued finish; new ones are refused as not ready.
    #[instrument(skip(self))]
    pub async fn unload_model(&self, model: &str) -> Result<(), ServingError> {
        let _write = self.write.lock().await;
        let current = self.snapshot();
        let known = current.contains_key(model) || self.repository.model(model).is_ok();
        if !known {
            return Err(ServingError::ModelNotFound { model: model.to_string() });
        }
        let mut next = (*current).clone();
        next.insert(
            model.to_string(),
            Arc::new(ModelEntry { name: model.to_string(), versions: BTreeMap::new(), error: None, unloaded: true }),
        );
        self.models.store(Arc::new(next));
        info!(model, "model unloaded");
        Ok(())
    }

    /// Every model on disk or in memory with each version's state.
    pub fn index(&self) -> Vec<IndexEntry> {
        let snapshot = self.snapshot();
        let mut names: BTreeSet<String> = snapshot.keys().cloned().collect();
        if let Ok(dirs) = self.repository.scan() {
            names.extend(dirs.into_iter().map(|d| d.name));
        }
        let mut rows = Vec::new();
        for name in names {
            let Some(entry) = snapshot.get(&name) else {
                rows.push(IndexEntry { name, version: None, state: None, reason: None });
                continue;
            };
            if entry.versions.is_empty() {
                rows.push(IndexEntry {
                    name,
                    version: None,
                    state: Some("UNAVAILABLE"),
                    reason: Some(entry.unavailable_reason()),
                });
                continue;
            }
            for (v, state) in &entry.versions {
                let (state, reason) = match state {
                    VersionState::Ready(_) => ("READY", None),
                    VersionState::Failed { reason, .. } => ("UNAVAILABLE", Some(reason.clone())),
                };
                rows.push(IndexEntry { name: name.clone(), version: Some(v.to_string()), state: Some(state), reason });
            }
        }
        rows
    }

    /// Brings one model in line with its directory: admits new or changed versions the policy
    /// selects (stepping back to older versions when a newer one fails the gate), keeps ready
    /// ones that did not change, drops the rest.
    async fn sync_dir(&self, dir: &ModelDir, old: Option<&ModelEntry>) -> ModelEntry {
        let name = &dir.name;
        let old_versions = old.map(|o| o.versions.clone()).unwrap_or_default();
        let config = match ModelConfig::load(&dir.path) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                warn!(model = %name, error = %e, "model config is invalid; keeping the versions already serving");
                return ModelEntry {
                    name: name.clone(),
                    versions: old_versions.into_iter().filter(|(_, s)| matches!(s, VersionState::Ready(_))).collect(),
                    error: Some(e.to_string()),
                    unloaded: false,
                };
            }
        };
        let available: Vec<u64> = dir.versions.keys().copied().collect();
        let mut failed: BTreeMap<u64, VersionState> = BTreeMap::new();
        let mut admitted: BTreeMap<u64, VersionState> = BTreeMap::new();
        loop {
            let candidates: Vec<u64> = available.iter().copied().filter(|v| !failed.contains_key(v)).collect();
            let selected = config.version_policy.select(&candidates);
            let mut progress = false;
            for v in &selected {
                if admitted.contains_key(v) {
                    continue;
                }
                let file = &dir.versions[v];
                let fingerprint = Fingerprint::of(file);
                match old_versions.get(v) {
                    Some(VersionState::Ready(loaded))
                        if loaded.fingerprint == fingerprint && loaded.config == config =>
                    {
                        admitted.insert(*v, VersionState::Ready(loaded.clone()));
                        continue;
                    }
                    Some(f @ VersionState::Failed { fingerprint: fp, config: c, .. })
                        if *fp == fingerprint && *c == config =>
                    {
                        failed.insert(*v, f.clone());
                        progress = true;
                        continue;
                    }
                    _ => {}
                }
                match self.admit(name, *v, dir, file.clone(), config.clone()).await {
                    Ok(loaded) => {
                        self.attach_observer(&loaded);
                        info!(model = %name, version = v, "version passed the validation gate and is serving");
                        admitted.insert(*v, VersionState::Ready(Arc::new(loaded)));
                    }
                    Err(reason) => {
                        error!(model = %name, version = v, %reason, "version failed the validation gate and will not serve");
                        failed.insert(*v, VersionState::Failed { reason, fingerprint, config: config.clone() });
                        progress = true;
                    }
                }
            }
            if !progress {
                break;
            }
        }
        for (v, state) in &old_versions {
            if matches!(state, VersionState::Ready(_)) && !admitted.contains_key(v) {
                info!(model = %name, version = v, "version no longer selected; unloading");
            }
        }
        let error = if available.is_empty() {
            Some(format!("no version directory with a model.onnx in {}", dir.path.display()))
        } else {
            None
        };
        let mut versions = failed;
        versions.extend(admitted);
        ModelEntry { name: name.clone(), versions, error, unloaded: false }
    }

    async fn admit(
        &self,
        model: &str,
        version: u64,
        dir: &ModelDir,
        file: PathBuf,
        config: Arc<ModelConfig>,
    ) -> Result<LoadedVersion, String> {
        let loader = self.loader.clone();
        let (model, model_dir) = (model.to_string(), dir.path.clone());
        tokio::task::spawn_blocking(move || {
            gate::admit(GateInput { model: &model, version, model_dir: &model_dir, file: &file, config }, &loader)
        })
        .await
        .unwrap_or_else(|e| Err(format!("loading panicked: {e}")))
    }

    /// Polls the repository every `interval` until `stop` resolves.
    pub async fn watch(self: Arc<Self>, interval: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => self.poll().await,
            }
        }
    }
}
