//! Fleet mode: replicas that share one store (MySQL). This module owns
//!
//! - who evaluates alert rules ([`Evaluation`]): in a fleet, the replica holding the store's
//!   evaluator lease ([`run_lease`]: taken or renewed every third of its time to live, so a dead
//!   holder is replaced within one time to live); `local` for a single process, `off` when a
//!   Prometheus and Alertmanager evaluate the exported rule file instead;
//! - the state sync ([`run_sync`]): every poll interval a replica reads the store's state
//!   revision and, when it moved, applies what other replicas wrote: deployments (traffic
//!   splits, canaries, rollbacks), silences and the evaluator's alerts. Tokens are reloaded by
//!   the auth module's own refresh; the audit trail and the logs are shared tables. A replica's
//!   own deployment change is written compare-and-set on the document version it last saw
//!   (`deployments::commit`), so of two replicas changing one model at once, one is refused.
//! - `GET /api/v1/fleet` (this replica, the store, who evaluates) and
//!   `GET|POST /api/v1/fleet/query[_range]`: the fleet's series from the configured Prometheus
//!   (which scrapes every replica), for the dashboard's Fleet page.

use crate::AppState;
use crate::deployments::DOCUMENT_PREFIX;
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use recserve_alerting::Alerting;
use recserve_serving::Deployment;
use recserve_store::{Lease, Store};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{error, info, warn};

/// The lease whose holder evaluates alert rules and sends notifications.
pub const EVALUATOR_LEASE: &str = "alert-evaluator";
/// Default time to live of the evaluator lease.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// Default interval of the state sync.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How long a proxied Prometheus query may take.
const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(30);

/// Who evaluates alert rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Evaluation {
    /// `leader` with a MySQL store, `local` with SQLite.
    #[default]
    Auto,
    /// This process, always (one process per store).
    Local,
    /// The replica holding the evaluator lease.
    Leader,
    /// Nobody here: Prometheus evaluates the exported rules and Alertmanager notifies.
    Off,
}

impl std::str::FromStr for Evaluation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Evaluation::Auto),
            "local" => Ok(Evaluation::Local),
            "leader" => Ok(Evaluation::Leader),
            "off" => Ok(Evaluation::Off),
            other => Err(format!("unknown alert evaluation {other:?}: expected auto, local, leader or off")),
        }
    }
}

impl Evaluation {
    /// `auto` made concrete for a store of `backend`.
    pub fn resolve(self, backend: recserve_store::Backend) -> Evaluation {
        match (self, backend) {
            (Evaluation::Auto, recserve_store::Backend::MySql) => Evaluation::Leader,
            (Evaluation::Auto, recserve_store::Backend::Sqlite) => Evaluation::Local,
            (other, _) => other,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Evaluation::Auto => "auto",
            Evaluation::Local => "local",
            Evaluation::Leader => "leader",
            Evaluation::Off => "off",
        }
    }
}

/// How this replica takes part in the fleet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// This replica's name: the lease holder and the `replica` of its log records.
    pub replica: String,
    /// Whether it was given (`--replica`) or made up from the host name and process id.
    pub replica_given: bool,
    /// Who evaluates (never `Auto` here: see [`Evaluation::resolve`]).
    pub evaluation: Evaluation,
    pub lease_ttl: Duration,
    pub sync_interval: Duration,
    /// Base URL of the Prometheus that scrapes the fleet.
    pub prometheus_url: Option<String>,
}

impl FleetConfig {
    /// A replica name for processes started without `--replica`: the host name and the
    /// process id (unique among live processes sharing a store).
    pub fn default_replica() -> String {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "recserve".into());
        format!("{host}-{}", std::process::id())
    }
}

/// The fleet state of this replica (in [`AppState::fleet`]).
pub struct Fleet {
    pub config: FleetConfig,
    backend: &'static str,
    lease: Mutex<Option<Lease>>,
    /// The newest version of each deployment document this replica wrote or applied: the sync
    /// applies only newer ones, so a document read just before this replica changed the same
    /// deployment (applied in memory, then written) cannot undo that change.
    deployment_versions: Mutex<std::collections::HashMap<String, u64>>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Fleet {
    pub fn new(config: FleetConfig, backend: recserve_store::Backend) -> Result<Arc<Fleet>, String> {
        if let Some(url) = &config.prometheus_url {
            match reqwest::Url::parse(url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                Ok(u) => return Err(format!("--prometheus-url {url}: scheme {:?} is not http or https", u.scheme())),
                Err(e) => return Err(format!("--prometheus-url {url}: {e}")),
            }
        }
        let client = reqwest::Client::builder()
            .timeout(PROMETHEUS_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the Prometheus client: {e}"))?;
        let backend = match backend {
            recserve_store::Backend::Sqlite => "sqlite",
            recserve_store::Backend::MySql => "mysql",
        };
        Ok(Arc::new(Fleet {
            config,
            backend,
            lease: Mutex::new(None),
            deployment_versions: Mutex::new(std::collections::HashMap::new()),
            client,
        }))
    }

    fn lease(&self) -> Option<Lease> {
        self.lease.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_lease(&self, lease: Lease) {
        *self.lease.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease);
    }

    /// The version of model `model`'s deployment document this replica last wrote or applied
    /// (0: none), which its next change expects to replace.
    pub fn deployment_version(&self, model: &str) -> u64 {
        self.deployment_versions.lock().unwrap_or_else(|e| e.into_inner()).get(model).copied().unwrap_or(0)
    }

    /// Notes that `version` of model `model`'s deployment document is what this replica serves
    /// (it wrote it, or applied it); returns whether that is newer than what it had.
    pub fn note_deployment_version(&self, model: &str, version: u64) -> bool {
        let mut known = self.deployment_versions.lock().unwrap_or_else(|e| e.into_inner());
        let newer = known.get(model).is_none_or(|v| version > *v);
        if newer {
            known.insert(model.to_string(), version);
        }
        newer
    }
}

use recserve_telemetry::store::now_ms;

/// Starts or stops this replica's evaluation on a blocking thread (taking over reads the store).
async fn set_evaluating(alerting: &Arc<Alerting>, on: bool) -> bool {
    let a = alerting.clone();
    match tokio::task::spawn_blocking(move || a.set_evaluating(on)).await {
        Ok(changed) => changed,
        Err(e) => {
            error!(error = %e, "switching alert evaluation panicked");
            false
        }
    }
}

/// Keeps the evaluator lease (see the module docs) until `stop`, switching `alerting` on while
/// this replica holds it and off otherwise; releases it on the way out. `alerting` is switched
/// off first, so nothing is evaluated before the lease is held.
pub async fn run_lease(
    fleet: Arc<Fleet>,
    store: Store,
    alerting: Arc<Alerting>,
    evaluating: Option<recserve_telemetry::metrics::Gauge>,
    stop: impl std::future::Future<Output = ()>,
) {
    let me = fleet.config.replica.clone();
    let ttl_ms = fleet.config.lease_ttl.as_millis().max(1) as i64;
    let every = (fleet.config.lease_ttl / 3).max(Duration::from_millis(100));
    set_evaluating(&alerting, false).await;
    let mut held_until = 0i64;
    tokio::pin!(stop);
    loop {
        let now = now_ms();
        let mine = match store.try_acquire_lease(EVALUATOR_LEASE, &me, now, ttl_ms).await {
            Ok(lease) => {
                let mine = lease.held_by(&me, now);
                if mine {
                    held_until = lease.expires_ms;
                }
                let (holder, term) = (lease.holder.clone(), lease.term);
                fleet.set_lease(lease);
                if set_evaluating(&alerting, mine).await {
                    if mine {
                        info!(replica = %me, term, "this replica now evaluates alert rules (it holds the evaluator lease)");
                    } else {
                        info!(replica = %me, evaluator = %holder, term, "another replica evaluates alert rules");
                    }
                }
                mine
            }
            Err(e) => {
                // Without the store nobody can take the lease over before it expires, so the
                // holder keeps evaluating until then, and stops after.
                let still = now_ms() < held_until;
                warn!(error = %e, evaluating = still, "cannot renew the evaluator lease");
                if !still && set_evaluating(&alerting, false).await {
                    warn!(replica = %me, "stopped evaluating alert rules: the lease expired while the store was unreachable");
                }
                still
            }
        };
        if let Some(g) = &evaluating {
            g.set(if mine { 1.0 } else { 0.0 });
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = &mut stop => break,
        }
    }
    if alerting.is_evaluating() {
        match store.release_lease(EVALUATOR_LEASE, &me).await {
            Ok(true) => info!(replica = %me, "evaluator lease released for the next replica"),
            Ok(false) => {}
            Err(e) => warn!(error = %e, "cannot release the evaluator lease; another replica takes it when it expires"),
        }
    }
}

/// Applies what other replicas wrote to the store (see the module docs) every
/// `fleet.config.sync_interval` until `stop`, starting after state revision `revision` (what
/// start-up already read).
pub async fn run_sync(
    fleet: Arc<Fleet>,
    state: AppState,
    store: Store,
    mut revision: u64,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(fleet.config.sync_interval) => {}
            _ = &mut stop => return,
        }
        match sync_once(&state, &store, revision).await {
            Ok(now) => {
                if failing {
                    info!("state sync works again");
                    failing = false;
                }
                revision = now;
            }
            Err(e) => {
                if !failing {
                    warn!(error = %e, "cannot read other replicas' changes from the store; retrying");
                }
                failing = true;
            }
        }
    }
}

/// One sync step: returns the revision now applied.
pub async fn sync_once(state: &AppState, store: &Store, revision: u64) -> Result<u64, recserve_store::StoreError> {
    if store.state_revision().await? == revision {
        return Ok(revision);
    }
    let changes = store.documents_changed_since(revision).await?;
    let mut alerting_changed = false;
    for doc in &changes.documents {
        if let Some(model) = doc.name.strip_prefix(DOCUMENT_PREFIX) {
            if state.fleet.as_ref().is_some_and(|f| !f.note_deployment_version(model, doc.version)) {
                continue;
            }
            apply_deployment(state, model, &doc.body).await;
        } else if doc.name.starts_with("alerting/") {
            alerting_changed = true;
        }
    }
    if alerting_changed && let Some(alerting) = &state.alerting {
        let a = alerting.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || a.follow()).await {
            error!(error = %e, "reading the fleet's alerts panicked");
        }
    }
    Ok(changes.revision)
}

/// Serves the deployment in `body` (a deployment document) unless it already serves it; a
/// document that cannot serve here is logged and the current deployment kept.
pub(crate) async fn apply_deployment(state: &AppState, model: &str, body: &str) {
    let deployment: Deployment = match serde_json::from_str(body) {
        Ok(d) => d,
        Err(e) => {
            error!(model, error = %e, "a deployment written by another replica is unreadable; keeping this one");
            return;
        }
    };
    if state.registry.deployment(model).is_some_and(|d| *d == deployment) {
        return;
    }
    let described = deployment.to_string();
    match state.registry.apply_deployment(deployment).await {
        Ok(()) => info!(model, deployment = %described, "deployment changed by another replica applied"),
        Err(e) => error!(
            model, deployment = %described, error = %e,
            "a deployment changed by another replica cannot serve here; this replica keeps its current one"
        ),
    }
}

/// `GET /api/v1/fleet`.
pub async fn status(State(state): State<AppState>) -> Result<Response, ApiError> {
    let fleet = state.fleet.as_ref().ok_or_else(|| ApiError::Unavailable("this server runs without a store".into()))?;
    let evaluating = state.alerting.as_ref().is_some_and(|a| a.is_evaluating());
    let evaluator = match fleet.config.evaluation {
        Evaluation::Leader => fleet.lease().map(|l| {
            json!({
                "holder": l.holder,
                "expires_ms": l.expires_ms,
                "term": l.term,
                "this_replica": l.holder == fleet.config.replica && evaluating,
            })
        }),
        Evaluation::Local | Evaluation::Auto => Some(json!({
            "holder": fleet.config.replica, "expires_ms": null, "term": null, "this_replica": true,
        })),
        Evaluation::Off => None,
    };
    Ok(Json(json!({
        "status": "success",
        "data": {
            "replica": fleet.config.replica_given.then(|| fleet.config.replica.clone()),
            "instance": fleet.config.replica,
            "store": fleet.backend,
            "evaluation": fleet.config.evaluation.as_str(),
            "evaluating": evaluating,
            "evaluator": evaluator,
            "prometheus": fleet.config.prometheus_url,
        }
    }))
    .into_response())
}

fn prometheus_error(status: StatusCode, kind: &str, message: String) -> Response {
    (status, Json(json!({"status": "error", "errorType": kind, "error": message}))).into_response()
}

async fn proxy(state: &AppState, endpoint: &str, query: Option<&str>, body: &[u8]) -> Response {
    let Some(base) = state.fleet.as_ref().and_then(|f| f.config.prometheus_url.as_deref().map(|u| (f, u))) else {
        return prometheus_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no Prometheus is configured: start recserve with --prometheus-url URL to see the whole fleet".into(),
        );
    };
    let (fleet, base) = base;
    let url = format!("{}/api/v1/{endpoint}", base.trim_end_matches('/'));
    let form = crate::observe::form_pairs(query, body);
    let answer = match fleet.client.post(&url).form(&form).send().await {
        Ok(a) => a,
        Err(e) => {
            return prometheus_error(
                StatusCode::BAD_GATEWAY,
                "unavailable",
                format!("cannot reach Prometheus at {base}: {e}"),
            );
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    match answer.bytes().await {
        Ok(bytes) => {
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response()
        }
        Err(e) => prometheus_error(
            StatusCode::BAD_GATEWAY,
            "unavailable",
            format!("Prometheus at {base} broke off its answer: {e}"),
        ),
    }
}

/// `GET|POST /api/v1/fleet/query`: an instant query on the fleet's Prometheus.
pub async fn query(State(state): State<AppState>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    proxy(&state, "query", q.as_deref(), &body).await
}

/// `GET|POST /api/v1/fleet/query_range`: a range query on the fleet's Prometheus.
pub async fn query_range(State(state): State<AppState>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    proxy(&state, "query_range", q.as_deref(), &body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_newer_deployment_documents_are_applied() {
        let config = FleetConfig {
            replica: "r".into(),
            replica_given: true,
            evaluation: Evaluation::Leader,
            lease_ttl: DEFAULT_LEASE_TTL,
            sync_interval: DEFAULT_SYNC_INTERVAL,
            prometheus_url: None,
        };
        let fleet = Fleet::new(config, recserve_store::Backend::MySql).unwrap();
        assert!(fleet.note_deployment_version("ranker", 3), "first seen");
        assert!(!fleet.note_deployment_version("ranker", 3), "the same version again");
        assert!(!fleet.note_deployment_version("ranker", 2), "an older one read late");
        assert!(fleet.note_deployment_version("ranker", 4));
        assert!(fleet.note_deployment_version("tower", 1), "per model");
    }

    #[test]
    fn evaluation_parses_and_resolves() {
        assert_eq!("leader".parse::<Evaluation>(), Ok(Evaluation::Leader));
        assert!("sometimes".parse::<Evaluation>().unwrap_err().contains("auto, local, leader or off"));
        assert_eq!(Evaluation::Auto.resolve(recserve_store::Backend::MySql), Evaluation::Leader);
        assert_eq!(Evaluation::Auto.resolve(recserve_store::Backend::Sqlite), Evaluation::Local);
        assert_eq!(Evaluation::Off.resolve(recserve_store::Backend::MySql), Evaluation::Off);
    }

    #[test]
    fn a_made_up_replica_name_names_the_process() {
        let name = FleetConfig::default_replica();
        assert!(name.ends_with(&format!("-{}", std::process::id())), "{name}");
    }

    #[test]
    fn a_bad_prometheus_url_is_refused() {
        let config = FleetConfig {
            replica: "r".into(),
            replica_given: true,
            evaluation: Evaluation::Local,
            lease_ttl: DEFAULT_LEASE_TTL,
            sync_interval: DEFAULT_SYNC_INTERVAL,
            prometheus_url: Some("ftp://prom".into()),
        };
        let e = Fleet::new(config, recserve_store::Backend::Sqlite).unwrap_err();
        assert!(e.contains("not http or https"), "{e}");
    }
}
