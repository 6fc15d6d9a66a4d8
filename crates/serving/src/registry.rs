//! The registry of served models: which versions of which models are ready, which failed the
//! gate and why, and each model's [`Deployment`] (which versions take traffic, in what share).
//! Reads on the request path are lock-free (an `ArcSwap` snapshot; the deployment travels inside
//! the model's entry, so one load sees both); loads, unloads, repository polls, deployment
//! changes and version registrations are serialised and publish a new snapshot only once new
//! versions are ready, so a swap never fails an in-flight request (it keeps the `Arc` of the
//! version it started on).
//!
//! Version selection: the config's version policy picks among the versions on disk that are not
//! retired by the deployment, and every version a deployment arm names is loaded as well.

use crate::batcher::BatchObserver;
use crate::config::ModelConfig;
use crate::deployment::{DeployError, Deployment, STABLE_ARM};
use crate::error::ServingError;
use crate::gate::{self, EngineLoader, GateInput};
use crate::repository::{MODEL_FILE, ModelDir, Repository, RepositoryError};
use crate::version::{Fingerprint, LoadedVersion, NamedTensor};
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tracing::{error, info, instrument, warn};

/// File name of uploaded validation samples when the model's config names none.
pub const DEFAULT_SAMPLES_FILE: &str = "validation.json";

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
    /// The model's deployment, when it has one (the same `Arc` as in
    /// [`ModelRegistry::deployments`]).
    pub deployment: Option<Arc<Deployment>>,
}

impl ModelEntry {
    /// Ready versions, highest first.
    pub fn ready(&self) -> impl Iterator<Item = &Arc<LoadedVersion>> {
        self.versions.values().rev().filter_map(|s| match s {
            VersionState::Ready(v) => Some(v),
            VersionState::Failed { .. } => None,
        })
    }

    /// The version that serves requests that name none: the deployment's stable (control) arm
    /// when it is ready, else the highest ready one.
    pub fn default_version(&self) -> Option<&Arc<LoadedVersion>> {
        if let Some(d) = &self.deployment
            && let Some(VersionState::Ready(v)) = self.versions.get(&d.stable_version())
        {
            return Some(v);
        }
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

/// The version a request goes to and the deployment arm that chose it.
#[derive(Debug, Clone)]
pub struct Routed {
    pub version: Arc<LoadedVersion>,
    /// The arm's name; "stable" when the model has no deployment or the picked arm's version
    /// was not ready.
    pub arm: Arc<str>,
}

/// Latency of a version measured through its normal request path (see
/// [`ModelRegistry::latency_check`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LatencyReport {
    pub requests: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The config's `latency_budget_ms`.
    pub budget_ms: Option<f64>,
    /// True when there is no budget or p99 is within it.
    pub within_budget: bool,
}

/// Served models and their versions.
pub struct ModelRegistry {
    repository: Repository,
    loader: EngineLoader,
    models: ArcSwap<BTreeMap<String, Arc<ModelEntry>>>,
    deployments: ArcSwap<BTreeMap<String, Arc<Deployment>>>,
    write: tokio::sync::Mutex<()>,
    started: AtomicBool,
    observers: RwLock<Option<BatchObserverFactory>>,
    /// Serving versions whose model file was replaced by one that failed the gate: the file
    /// (fingerprint) that failed, so it is not tried again at every poll while the version
    /// keeps serving the model loaded before.
    rejected_files: std::sync::Mutex<BTreeMap<(String, u64), Option<Fingerprint>>>,
}

impl ModelRegistry {
    /// A registry over the repository at `root`, loading models with `loader`.
    pub fn new(root: impl Into<PathBuf>, loader: EngineLoader) -> Arc<ModelRegistry> {
        Arc::new(ModelRegistry {
            repository: Repository::new(root),
            loader,
            models: ArcSwap::from_pointee(BTreeMap::new()),
            deployments: ArcSwap::from_pointee(BTreeMap::new()),
            write: tokio::sync::Mutex::new(()),
            started: AtomicBool::new(false),
            observers: RwLock::new(None),
            rejected_files: std::sync::Mutex::new(BTreeMap::new()),
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

    /// Every model's deployment (a consistent snapshot).
    pub fn deployments(&self) -> Arc<BTreeMap<String, Arc<Deployment>>> {
        self.deployments.load_full()
    }

    /// One model's deployment, if it has one.
    pub fn deployment(&self, model: &str) -> Option<Arc<Deployment>> {
        self.deployments.load().get(model).cloned()
    }

    /// The version and arm a request with routing key `key` (see
    /// [`crate::deployment::route_key`]) goes to when it names no version. The picked arm's
    /// version when it is ready; otherwise the stable arm (a canary that is not ready never fails
    /// a request), as for a model without a deployment: the default version, arm "stable".
    pub fn route(&self, model: &str, key: u64) -> Result<Routed, ServingError> {
        let guard = self.models.load();
        let entry = guard.get(model).ok_or_else(|| ServingError::ModelNotFound { model: model.to_string() })?;
        if let Some(d) = &entry.deployment {
            let arm = d.pick(key);
            if let Some(VersionState::Ready(v)) = entry.versions.get(&arm.version) {
                return Ok(Routed { version: v.clone(), arm: Arc::from(arm.name.as_str()) });
            }
        }
        let version = entry
            .default_version()
            .cloned()
            .ok_or_else(|| ServingError::NotReady { model: model.to_string(), reason: entry.unavailable_reason() })?;
        Ok(Routed { version, arm: Arc::from(STABLE_ARM) })
    }

    /// Sets the deployments (persisted state) without loading anything: meant for startup,
    /// before the first [`ModelRegistry::poll`], which then loads every arm's version. Replaces
    /// the deployments held; invalid ones are logged and skipped. Models already loaded see
    /// their deployment at once (arms whose version is not loaded fall back to stable until the
    /// next poll).
    pub fn restore_deployments(&self, deployments: Vec<Deployment>) {
        let mut map = BTreeMap::new();
        for d in deployments {
            match d.validate() {
                Ok(()) => {
                    info!(model = %d.model, deployment = %d, "deployment restored");
                    map.insert(d.model.clone(), Arc::new(d));
                }
                Err(e) => error!(model = %d.model, error = %e, "persisted deployment is invalid; ignoring it"),
            }
        }
        self.deployments.store(Arc::new(map.clone()));
        let models = self.snapshot();
        if !models.is_empty() {
            let next = models
                .iter()
                .map(|(name, entry)| {
                    let mut entry = (**entry).clone();
                    entry.deployment = map.get(name).cloned();
                    (name.clone(), Arc::new(entry))
                })
                .collect();
            self.models.store(Arc::new(next));
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
            let deployment = self.deployment(&dir.name);
            let entry = self.sync_dir(dir, old.map(|o| o.as_ref()), deployment, &BTreeSet::new()).await;
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
        let entry = self.sync_dir(&dir, old, self.deployment(model), &BTreeSet::new()).await;
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
            Arc::new(ModelEntry {
                name: model.to_string(),
                versions: BTreeMap::new(),
                error: None,
                unloaded: true,
                deployment: self.deployment(model),
            }),
        );
        self.models.store(Arc::new(next));
        info!(model, "model unloaded");
        Ok(())
    }

    /// Deploys `deployment`: loads every arm's version through the gate (versions already
    /// ready are kept), then publishes the model's versions and the deployment together.
    /// Versions no longer selected (e.g. retired by a rollback) are unloaded. When an arm's
    /// version cannot serve, nothing is published and the error names the version and the gate's
    /// reason; the previous deployment and versions keep serving.
    #[instrument(skip(self, deployment), fields(model = %deployment.model, deployment = %deployment))]
    pub async fn apply_deployment(&self, deployment: Deployment) -> Result<(), ServingError> {
        deployment.validate()?;
        let _write = self.write.lock().await;
        self.apply_locked(deployment).await
    }

    /// Reads the model's deployment, changes it with `change` (e.g.
    /// `|d| d.start_canary(3, 10.0).map(|d| (d, ()))`, or `|d| d.rollback()`) and applies the
    /// result as [`ModelRegistry::apply_deployment`] does, all under the registry's write lock,
    /// so concurrent changes cannot lose one another. A model without a deployment starts from
    /// `Deployment::stable(model, its default version)`. Returns the deployment now serving and
    /// what `change` returned.
    #[instrument(skip(self, change))]
    pub async fn update_deployment<T>(
        &self,
        model: &str,
        change: impl FnOnce(&Deployment) -> Result<(Deployment, T), DeployError>,
    ) -> Result<(Arc<Deployment>, T), ServingError> {
        let _write = self.write.lock().await;
        let current = match self.deployment(model) {
            Some(d) => d,
            None => {
                let entry = self.entry(model)?;
                let version = entry.default_version().map(|v| v.version).ok_or_else(|| ServingError::NotReady {
                    model: model.to_string(),
                    reason: entry.unavailable_reason(),
                })?;
                Arc::new(Deployment::stable(model, version))
            }
        };
        let (next, out) = change(&current)?;
        if next.model != model {
            return Err(ServingError::BadDeployment(format!(
                "a change of model '{model}'s deployment produced one for model '{}'",
                next.model
            )));
        }
        next.validate()?;
        self.apply_locked(next).await?;
        let applied = self.deployment(model).ok_or_else(|| {
            ServingError::Deployment(format!("model '{model}'s deployment vanished while it was applied"))
        })?;
        Ok((applied, out))
    }

    async fn apply_locked(&self, deployment: Deployment) -> Result<(), ServingError> {
        let model = deployment.model.clone();
        let dir = self.model_dir(&model)?;
        let current = self.snapshot();
        let old = current.get(&model);
        if old.is_some_and(|o| o.unloaded) {
            return Err(unloaded_conflict(&model, "deploying"));
        }
        if let Some(arm) = deployment.arms.iter().find(|a| !dir.versions.contains_key(&a.version)) {
            return Err(ServingError::VersionNotFound { model, version: arm.version.to_string() });
        }
        let deployment = Arc::new(deployment);
        let entry = self.sync_dir(&dir, old.map(|o| o.as_ref()), Some(deployment.clone()), &BTreeSet::new()).await;
        for arm in &deployment.arms {
            let why = match entry.versions.get(&arm.version) {
                Some(VersionState::Ready(_)) => continue,
                Some(VersionState::Failed { reason, .. }) => format!("failed the validation gate: {reason}"),
                None => format!("could not be loaded: {}", entry.unavailable_reason()),
            };
            return Err(ServingError::Deployment(format!(
                "cannot deploy model '{model}' ({deployment}): version {} of arm '{}' {why}; the current deployment keeps serving",
                arm.version, arm.name
            )));
        }
        info!(model = %model, deployment = %deployment, "deployment applied");
        self.publish(entry, Some(deployment));
        Ok(())
    }

    /// Publishes one model's entry and, when given, its deployment. Callers hold the write lock.
    fn publish(&self, entry: ModelEntry, deployment: Option<Arc<Deployment>>) {
        let mut models = (*self.snapshot()).clone();
        models.insert(entry.name.clone(), Arc::new(entry));
        self.models.store(Arc::new(models));
        if let Some(d) = deployment {
            let mut deployments = (*self.deployments()).clone();
            deployments.insert(d.model.clone(), d);
            self.deployments.store(Arc::new(deployments));
        }
    }

    /// A model's directory, with repository errors as serving errors.
    fn model_dir(&self, model: &str) -> Result<ModelDir, ServingError> {
        self.repository.model(model).map_err(|e| match e {
            RepositoryError::NoSuchModel { .. } => ServingError::ModelNotFound { model: model.to_string() },
            other => ServingError::Repository(other.to_string()),
        })
    }

    /// Adds a version to the repository: writes `<repo>/<model>/<highest + 1>/model.onnx` (and
    /// the validation samples, under the name the model's config gives, default
    /// `validation.json`) atomically, and passes it through the gate, so it is loaded and ready
    /// but takes traffic only once a deployment arm names it: a model serving a version without
    /// a deployment first gets `Deployment::stable(model, that version)`. A version that fails
    /// the gate is removed again and the error says why. A model not yet in the repository is
    /// created (its config.toml is optional). Returns the new version number.
    #[instrument(skip(self, onnx, validation_samples), fields(bytes = onnx.len()))]
    pub async fn register_version(
        &self,
        model: &str,
        onnx: &[u8],
        validation_samples: Option<&[u8]>,
    ) -> Result<u64, ServingError> {
        check_model_name(model)?;
        let _write = self.write.lock().await;
        let current = self.snapshot();
        let old = current.get(model);
        if old.is_some_and(|o| o.unloaded) {
            return Err(unloaded_conflict(model, "registering a version"));
        }
        let model_dir = self.repository.root().join(model);
        let config = ModelConfig::load(&model_dir)
            .map_err(|e| ServingError::Deployment(format!("cannot register a version of model '{model}': {e}")))?;
        let samples_name = match &config.validation {
            Some(v) => v.samples.clone(),
            None => {
                if validation_samples.is_some() {
                    warn!(
                        model,
                        "validation samples given, but the model's config has no [validation] section: they are stored, not checked"
                    );
                }
                DEFAULT_SAMPLES_FILE.to_string()
            }
        };
        let samples_path = PathBuf::from(&samples_name);
        if samples_path.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(ServingError::Deployment(format!(
                "model '{model}': validation samples '{samples_name}' must be a path inside the version directory"
            )));
        }
        let files = NewVersion {
            model_dir: model_dir.clone(),
            onnx: onnx.to_vec(),
            samples: validation_samples.map(|s| (samples_path, s.to_vec())),
        };
        let written = tokio::task::spawn_blocking(move || files.write())
            .await
            .unwrap_or_else(|e| Err(format!("writing the version panicked: {e}")))
            .map_err(|e| ServingError::Repository(format!("cannot register a version of model '{model}': {e}")))?;
        let version = written.version;
        info!(model, version, path = %written.version_dir.display(), "version written to the repository");

        let deployment = self.staging_deployment(model, old.map(|o| o.as_ref()), version);
        let failure = match self.repository.model(model) {
            Ok(dir) => {
                let pinned = BTreeSet::from([version]);
                let entry = self.sync_dir(&dir, old.map(|o| o.as_ref()), deployment.clone(), &pinned).await;
                match entry.versions.get(&version) {
                    Some(VersionState::Ready(_)) => {
                        info!(
                            model,
                            version, "registered version is ready; it takes traffic once a deployment names it"
                        );
                        self.publish(entry, deployment);
                        return Ok(version);
                    }
                    Some(VersionState::Failed { reason, .. }) => format!("failed the validation gate: {reason}"),
                    None => format!("could not be loaded: {}", entry.unavailable_reason()),
                }
            }
            Err(e) => format!("could not be read back: {e}"),
        };
        let cleanup = written.remove();
        if let Err(e) = &cleanup {
            error!(model, version, error = %e, "cannot remove the refused version from the repository");
        }
        Err(ServingError::BadDeployment(format!(
            "version {version} of model '{model}' {failure}; it was not registered{}",
            cleanup.err().map(|e| format!(" (and removing it failed: {e})")).unwrap_or_default()
        )))
    }

    /// The deployment a newly staged `version` of `model` goes under: the model's current one
    /// (or, when it has none, one keeping its serving version stable, so the new version takes no
    /// traffic), with `version` taken off the retired list.
    fn staging_deployment(&self, model: &str, old: Option<&ModelEntry>, version: u64) -> Option<Arc<Deployment>> {
        let mut deployment = self.deployment(model);
        if deployment.is_none()
            && let Some(serving) = old.and_then(|o| o.default_version())
        {
            deployment = Some(Arc::new(Deployment::stable(model, serving.version)));
        }
        if let Some(d) = deployment.as_mut().filter(|d| d.retired.contains(&version)) {
            Arc::make_mut(d).retired.remove(&version);
        }
        deployment
    }

    /// Registers a version already in the repository: gives the model a deployment when it has
    /// none (so the version takes no traffic), takes the version off the retired list, and
    /// loads it through the gate. It stays loaded while the version policy selects it or a
    /// deployment arm names it. The error names the gate's reason when it cannot serve.
    #[instrument(skip(self))]
    pub async fn stage_version(&self, model: &str, version: u64) -> Result<(), ServingError> {
        let _write = self.write.lock().await;
        let dir = self.model_dir(model)?;
        if !dir.versions.contains_key(&version) {
            return Err(ServingError::VersionNotFound { model: model.to_string(), version: version.to_string() });
        }
        let current = self.snapshot();
        let old = current.get(model);
        if old.is_some_and(|o| o.unloaded) {
            return Err(unloaded_conflict(model, "registering a version"));
        }
        let deployment = self.staging_deployment(model, old.map(|o| o.as_ref()), version);
        let pinned = BTreeSet::from([version]);
        let entry = self.sync_dir(&dir, old.map(|o| o.as_ref()), deployment.clone(), &pinned).await;
        let failure = match entry.versions.get(&version) {
            Some(VersionState::Ready(_)) => {
                info!(model, version, "repository version is ready; it takes traffic once a deployment names it");
                self.publish(entry, deployment);
                return Ok(());
            }
            Some(VersionState::Failed { reason, .. }) => format!("failed the validation gate: {reason}"),
            None => format!("could not be loaded: {}", entry.unavailable_reason()),
        };
        Err(ServingError::BadDeployment(format!("version {version} of model '{model}' {failure}")))
    }

    /// Sends `requests` single-row requests (zeros, shaped like the warm-up batch) one after
    /// another through the version's normal path ([`LoadedVersion::infer`]: queue, batcher,
    /// engine) and reports the wall-time percentiles against the config's `latency_budget_ms`.
    /// The requests count in the version's statistics like any other.
    #[instrument(skip(self))]
    pub async fn latency_check(
        &self,
        model: &str,
        version: u64,
        requests: usize,
    ) -> Result<LatencyReport, ServingError> {
        if requests == 0 {
            return Err(ServingError::BadDeployment("a latency check needs at least 1 request".into()));
        }
        let loaded = self.resolve(model, Some(&version.to_string()))?;
        let inputs: Vec<NamedTensor> = loaded
            .signature
            .inputs
            .iter()
            .zip(gate::warmup_inputs(&loaded.signature, 1))
            .map(|(spec, tensor)| NamedTensor { name: spec.name.clone(), tensor })
            .collect();
        let mut ms = Vec::with_capacity(requests);
        for _ in 0..requests {
            let started = Instant::now();
            loaded.infer(inputs.clone()).await?;
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        // Nearest rank: the smallest value with at least q of the samples at or below it.
        let rank = |q: f64| ms[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        let (p50_ms, p99_ms, max_ms) = (rank(0.5), rank(0.99), ms[n - 1]);
        let budget_ms = loaded.config.latency_budget_ms;
        let within_budget = budget_ms.is_none_or(|b| p99_ms <= b);
        Ok(LatencyReport { requests, p50_ms, p99_ms, max_ms, budget_ms, within_budget })
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
    /// selects among those the deployment has not retired (stepping back to older versions when
    /// a newer one fails the gate), plus every version a deployment arm names and the `pinned`
    /// ones; keeps ready ones that did not change, drops the rest.
    async fn sync_dir(
        &self,
        dir: &ModelDir,
        old: Option<&ModelEntry>,
        deployment: Option<Arc<Deployment>>,
        pinned: &BTreeSet<u64>,
    ) -> ModelEntry {
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
                    deployment,
                };
            }
        };
        let available: Vec<u64> = dir.versions.keys().copied().collect();
        let retired = deployment.as_ref().map(|d| d.retired.clone()).unwrap_or_default();
        let mut wanted: BTreeSet<u64> = deployment.as_ref().map(|d| d.versions()).unwrap_or_default();
        wanted.extend(pinned);
        let mut failed: BTreeMap<u64, VersionState> = BTreeMap::new();
        let mut admitted: BTreeMap<u64, VersionState> = BTreeMap::new();
        let mut stale: Vec<String> = Vec::new();
        loop {
            let candidates: Vec<u64> =
                available.iter().copied().filter(|v| !failed.contains_key(v) && !retired.contains(v)).collect();
            let mut selected: BTreeSet<u64> = config.version_policy.select(&candidates).into_iter().collect();
            selected.extend(wanted.iter().filter(|v| dir.versions.contains_key(v) && !failed.contains_key(v)));
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
                // A serving version whose file changed keeps serving what it loaded before when
                // the new file fails the gate (and that file is not tried again).
                let serving = match old_versions.get(v) {
                    Some(VersionState::Ready(loaded)) => Some(loaded.clone()),
                    _ => None,
                };
                let key = (name.clone(), *v);
                if let Some(loaded) = &serving
                    && self.rejected().get(&key) == Some(&fingerprint)
                {
                    stale.push(format!("version {v} serves its previous model file: the new one failed the gate"));
                    admitted.insert(*v, VersionState::Ready(loaded.clone()));
                    continue;
                }
                match self.admit(name, *v, dir, file.clone(), config.clone()).await {
                    Ok(loaded) => {
                        self.rejected().remove(&key);
                        self.attach_observer(&loaded);
                        info!(model = %name, version = v, "version passed the validation gate and is serving");
                        admitted.insert(*v, VersionState::Ready(Arc::new(loaded)));
                    }
                    Err(reason) => match serving {
                        Some(loaded) => {
                            error!(model = %name, version = v, %reason,
                                "the version's model file was replaced by one that failed the validation gate; it keeps serving the model loaded before");
                            self.rejected().insert(key, fingerprint);
                            stale.push(format!(
                                "version {v} serves its previous model file: the new one failed the gate: {reason}"
                            ));
                            admitted.insert(*v, VersionState::Ready(loaded));
                        }
                        None => {
                            error!(model = %name, version = v, %reason, "version failed the validation gate and will not serve");
                            failed.insert(*v, VersionState::Failed { reason, fingerprint, config: config.clone() });
                            progress = true;
                        }
                    },
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
        // Arms that cannot serve: the model keeps serving its other versions (requests routed to
        // such an arm fall back to the stable one). Said once, when it happens.
        for arm in deployment.iter().flat_map(|d| &d.arms) {
            let v = arm.version;
            if !dir.versions.contains_key(&v) {
                if old.is_none() || old_versions.contains_key(&v) {
                    error!(model = %name, version = v, arm = %arm.name,
                        "the deployment names a version that is not in the repository; serving the other versions");
                }
            } else if let Some(VersionState::Failed { reason, .. }) = failed.get(&v)
                && !matches!(old_versions.get(&v), Some(VersionState::Failed { .. }))
            {
                error!(model = %name, version = v, arm = %arm.name, %reason,
                    "a deployment arm's version failed the validation gate; serving the other versions");
            }
        }
        let error = if available.is_empty() {
            Some(format!("no version directory with a model.onnx in {}", dir.path.display()))
        } else if !stale.is_empty() {
            Some(stale.join("; "))
        } else {
            None
        };
        let mut versions = failed;
        versions.extend(admitted);
        ModelEntry { name: name.clone(), versions, error, unloaded: false, deployment }
    }

    fn rejected(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, u64), Option<Fingerprint>>> {
        // Only whole entries are inserted or removed under the lock.
        self.rejected_files.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

/// The refusal of a deployment change on a model unloaded through the repository API.
fn unloaded_conflict(model: &str, action: &str) -> ServingError {
    ServingError::Deployment(format!(
        "model '{model}' was unloaded through the repository API; load it before {action}"
    ))
}

/// Checks the name of a model to create in the repository: 1–128 characters, no path
/// separators, not starting with '.'.
fn check_model_name(model: &str) -> Result<(), ServingError> {
    let ok = (1..=128).contains(&model.len())
        && !model.starts_with('.')
        && !model.chars().any(|c| matches!(c, '/' | '\\' | '\0') || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(ServingError::BadDeployment(format!(
            "model name '{model}' is not valid: use 1 to 128 characters, no '/' or '\\', not starting with '.'"
        )))
    }
}

/// The files of a version to add to a model directory.
struct NewVersion {
    model_dir: PathBuf,
    onnx: Vec<u8>,
    /// Path relative to the version directory, and contents.
    samples: Option<(PathBuf, Vec<u8>)>,
}

/// A version written into the repository by [`NewVersion::write`].
struct WrittenVersion {
    version: u64,
    version_dir: PathBuf,
    /// The model directory was created for it (removed with it).
    created_model_dir: Option<PathBuf>,
}

impl NewVersion {
    /// Writes the version as `<model_dir>/<highest existing + 1>/`: into a dot-directory (which
    /// the repository scan ignores) first, every file synced, then renamed into place.
    fn write(self) -> Result<WrittenVersion, String> {
        let dir = &self.model_dir;
        let created_model_dir = if dir.is_dir() {
            None
        } else {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            Some(dir.clone())
        };
        let result = self.write_into(dir);
        if result.is_err()
            && let Some(created) = &created_model_dir
            && let Err(e) = std::fs::remove_dir_all(created)
        {
            warn!(path = %created.display(), error = %e, "cannot remove a model directory made for a version that was not written");
        }
        let (version, version_dir) = result?;
        Ok(WrittenVersion { version, version_dir, created_model_dir })
    }

    fn write_into(&self, dir: &Path) -> Result<(u64, PathBuf), String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let highest = entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok()).max();
        let version = match highest {
            None => 1,
            Some(v) => {
                v.checked_add(1).ok_or_else(|| format!("version {v} in {} is the highest possible", dir.display()))?
            }
        };
        let tmp = dir.join(format!(".{version}.tmp-{}", std::process::id()));
        let target = dir.join(version.to_string());
        if let Err(e) = self.write_files(&tmp, &target) {
            if tmp.exists()
                && let Err(cleanup) = std::fs::remove_dir_all(&tmp)
            {
                warn!(path = %tmp.display(), error = %cleanup, "cannot remove a half-written version directory");
            }
            return Err(format!("cannot write {}: {e}", target.display()));
        }
        Ok((version, target))
    }

    /// Writes the files into `tmp`, syncs them, renames `tmp` to `target`.
    fn write_files(&self, tmp: &Path, target: &Path) -> std::io::Result<()> {
        if tmp.exists() {
            std::fs::remove_dir_all(tmp)?;
        }
        std::fs::create_dir(tmp)?;
        write_synced(&tmp.join(MODEL_FILE), &self.onnx)?;
        if let Some((name, bytes)) = &self.samples {
            let path = tmp.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            write_synced(&path, bytes)?;
        }
        sync_directory(tmp)?;
        std::fs::rename(tmp, target)?;
        match target.parent() {
            Some(parent) => sync_directory(parent),
            None => Ok(()),
        }
    }
}

impl WrittenVersion {
    /// Takes the version (and a model directory made for it) out of the repository again.
    fn remove(&self) -> Result<(), String> {
        let path = self.created_model_dir.as_ref().unwrap_or(&self.version_dir);
        std::fs::remove_dir_all(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes a directory's entries durable (a no-op where directories cannot be opened).
fn sync_directory(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(path)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
