//! recserve's alerting: Prometheus rule files, rule evaluation with Prometheus's alert states
//! over the embedded series store, Alertmanager-style notifications (webhook payload v4 and
//! pushes to a real Alertmanager), silences, and the bundled default rules.
//!
//! # Modules
//!
//! - [`rules`]: rule files, validation with `file:line:col` diagnostics ([`rules::check_file`]);
//! - [`eval`]: the [`Evaluator`] (states, `for`, `keep_firing_for`, `ALERTS`, views);
//! - [`notify`]: grouping, timers, dedup, silencing, payloads ([`notify::Dispatcher`]);
//! - [`delivery`]: queues, retries with backoff, counters, the notification log;
//! - [`silence`]: silences; [`persist`]: state across restarts; [`template`]: annotations.
//!
//! # Wiring (what the server does)
//!
//! ```no_run
//! # async fn wire(store: std::sync::Arc<recserve_telemetry::SeriesStore>) -> Result<(), recserve_alerting::AlertingError> {
//! use std::sync::Arc;
//! use recserve_alerting::{Alerting, AlertingConfig, JsonFilePersistence, RuleSource};
//!
//! let mut config = AlertingConfig::default();
//! config.rule_sources.push(RuleSource::File("rules.yml".into()));
//! config.webhooks.push("http://127.0.0.1:9000/hook".into());
//! let persistence = Arc::new(JsonFilePersistence::new("data/alerting".as_ref())?);
//! let alerting = tokio::task::spawn_blocking(move || Alerting::new(config, store, Some(persistence)))
//!     .await
//!     .expect("join")?;
//! let tasks = alerting.start(); // evaluator, dispatcher, deliveries, rule-file watcher
//! let _sighup = alerting.reload_on_sighup();
//! // GET /api/v1/alerts → ApiResponse::success(alerting.alerts()), /api/v1/rules → alerting.rules()
//! tasks.shutdown().await;
//! # Ok(()) }
//! ```

pub mod delivery;
pub mod error;
pub mod eval;
pub mod notify;
pub mod persist;
pub mod rules;
pub mod silence;
pub mod template;
pub mod time;
mod yamlpos;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use recserve_telemetry::SeriesStore;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use delivery::{
    NotificationLog, NotificationLogEntry, NotificationSink, RetryConfig, Target, TargetKind, TargetStatsView,
};
pub use error::{AlertingError, PersistError, SilenceError};
pub use eval::{
    Alert, AlertState, AlertsData, EvalConfig, EvalOutput, Evaluator, PersistedAlert, RuleHealth, RulesData,
};
pub use notify::{Dispatcher, NflogEntry, NotifyAlert, RouteConfig, WebhookPayload};
pub use persist::{AlertStatePersistence, JsonFilePersistence};
pub use rules::{Diagnostic, RuleFiles, RuleSource, check_file};
pub use silence::{Matcher, NewSilence, Silence, SilenceView, Silences};

use delivery::{DeliveryQueue, Notification};

/// The label that asks recserve to act when an alert starts firing. Its one value today is
/// `rollback`: roll back the canary named by the alert's `model` and `version` labels (see
/// [`Remediation`]). Prometheus and Alertmanager carry the label like any other.
pub const ACTION_LABEL: &str = "recserve_action";

/// Acts on alerts that carry [`ACTION_LABEL`] when they start firing (once per firing episode;
/// silenced alerts are left alone). Called on the evaluator's blocking thread: hand slow work
/// to a task.
pub trait Remediation: Send + Sync {
    fn on_fired(&self, alert: &Alert);
}

/// The bundled default rules for model serving (`deploy/rules/recserve.rules.yml`).
pub fn default_rules() -> &'static str {
    include_str!("../../../deploy/rules/recserve.rules.yml")
}

/// The name the bundled rules are shown under.
pub const DEFAULT_RULES_NAME: &str = "recserve.rules.yml (bundled)";

/// Prometheus's API envelope: `{"status": "success", "data": …}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiResponse<T> {
    /// Always `success`.
    pub status: &'static str,
    /// The payload.
    pub data: T,
}

impl<T> ApiResponse<T> {
    /// Wraps `data`.
    pub fn success(data: T) -> Self {
        Self { status: "success", data }
    }
}

/// Settings of [`Alerting`].
#[derive(Debug, Clone)]
pub struct AlertingConfig {
    /// Rule files (`--rules FILE`) and embedded rule sets, in order.
    pub rule_sources: Vec<RuleSource>,
    /// Evaluation settings (default interval, resend delay, external URL and labels).
    pub eval: EvalConfig,
    /// Grouping and timers of the webhook notifications.
    pub route: RouteConfig,
    /// Webhook URLs (`--alert-webhook URL`).
    pub webhooks: Vec<String>,
    /// Alertmanager base URLs (`--alertmanager-url URL`).
    pub alertmanagers: Vec<String>,
    /// Retries of failed deliveries.
    pub retry: RetryConfig,
    /// Notifications kept per target while it is down (default 10,000).
    pub queue_capacity: usize,
    /// Entries of the in-memory notification log (default 1,000).
    pub notification_log_capacity: usize,
    /// How often rule files are checked for changes (default 5 s).
    pub watch_interval: Duration,
    /// How often the evaluator checks for due groups (default 1 s).
    pub eval_tick: Duration,
    /// How often the dispatcher checks for due groups (default 250 ms).
    pub dispatch_tick: Duration,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            rule_sources: Vec::new(),
            eval: EvalConfig::default(),
            route: RouteConfig::default(),
            webhooks: Vec::new(),
            alertmanagers: Vec::new(),
            retry: RetryConfig::default(),
            queue_capacity: 10_000,
            notification_log_capacity: 1_000,
            watch_interval: Duration::from_secs(5),
            eval_tick: Duration::from_secs(1),
            dispatch_tick: Duration::from_millis(250),
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadOutcome {
    /// Groups now loaded.
    pub groups: usize,
    /// Rules now loaded.
    pub rules: usize,
}

struct Shared {
    /// Whether this process evaluates and notifies ([`Alerting::set_evaluating`]).
    evaluating: AtomicBool,
    remediation: Mutex<Option<Arc<dyn Remediation>>>,
    config: AlertingConfig,
    store: Arc<SeriesStore>,
    evaluator: Mutex<Evaluator>,
    dispatcher: Mutex<Dispatcher>,
    silences: Silences,
    persistence: Option<Arc<dyn AlertStatePersistence>>,
    webhook_queues: Vec<Arc<DeliveryQueue>>,
    am_queues: Vec<Arc<DeliveryQueue>>,
    log: Arc<NotificationLog>,
    client: reqwest::Client,
    mtimes: Mutex<Vec<Option<SystemTime>>>,
    last_reload_error: Mutex<Option<Vec<Diagnostic>>>,
}

/// Alerting as a whole: rules, evaluator, notifier, silences.
#[derive(Clone)]
pub struct Alerting {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

/// The tasks started by [`Alerting::start`].
#[derive(Debug)]
pub struct AlertingTasks {
    shutdown: watch::Sender<bool>,
    /// The task handles (evaluator, dispatcher, one per target, watcher).
    pub handles: Vec<JoinHandle<()>>,
}

impl AlertingTasks {
    /// Stops every task and waits for them (the last state is saved by the evaluator task).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for h in self.handles.drain(..) {
            let _ = h.await;
        }
    }
}

impl Drop for AlertingTasks {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn mtimes(sources: &[RuleSource]) -> Vec<Option<SystemTime>> {
    sources
        .iter()
        .map(|s| match s {
            RuleSource::File(p) => std::fs::metadata(p).and_then(|m| m.modified()).ok(),
            RuleSource::Embedded { .. } => None,
        })
        .collect()
}

fn check_url(url: &str) -> Result<(), AlertingError> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(()),
        Ok(u) => Err(AlertingError::BadUrl {
            url: url.into(),
            reason: format!("scheme {:?} is not http or https", u.scheme()),
        }),
        Err(e) => Err(AlertingError::BadUrl { url: url.into(), reason: e.to_string() }),
    }
}

impl Alerting {
    /// Loads the rules (every diagnostic of every file is returned on error), restores saved
    /// alerts and silences. Blocking (file reads): call it before the runtime starts or from
    /// `spawn_blocking`.
    pub fn new(
        config: AlertingConfig,
        store: Arc<SeriesStore>,
        persistence: Option<Arc<dyn AlertStatePersistence>>,
    ) -> Result<Self, AlertingError> {
        for url in config.webhooks.iter().chain(&config.alertmanagers) {
            check_url(url)?;
        }
        let files = RuleFiles::load(&config.rule_sources).map_err(AlertingError::Rules)?;
        let mut evaluator = Evaluator::new(files, store.clone(), config.eval.clone());
        let silences = Silences::new();
        if let Some(p) = &persistence {
            let restored = evaluator.restore(p.load_alerts()?);
            silences.restore(p.load_silences()?);
            tracing::info!(restored, "restored alert state");
        }
        let log = Arc::new(NotificationLog::new(config.notification_log_capacity));
        let queue = |kind, url: &String| {
            let receiver = match kind {
                TargetKind::Webhook => config.route.receiver.clone(),
                TargetKind::Alertmanager => "alertmanager".to_string(),
            };
            Arc::new(DeliveryQueue::new(
                Target { kind, url: url.clone(), receiver },
                config.queue_capacity,
                log.clone(),
            ))
        };
        let webhook_queues = config.webhooks.iter().map(|u| queue(TargetKind::Webhook, u)).collect();
        let am_queues = config.alertmanagers.iter().map(|u| queue(TargetKind::Alertmanager, u)).collect();
        let client = reqwest::Client::builder()
            .user_agent(concat!("recserve-alerting/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AlertingError::Http(e.to_string()))?;
        let dispatcher = Dispatcher::new(config.route.clone(), config.eval.external_url.clone());
        Ok(Self {
            shared: Arc::new(Shared {
                evaluating: AtomicBool::new(true),
                remediation: Mutex::new(None),
                mtimes: Mutex::new(mtimes(&config.rule_sources)),
                config,
                store,
                evaluator: Mutex::new(evaluator),
                dispatcher: Mutex::new(dispatcher),
                silences,
                persistence,
                webhook_queues,
                am_queues,
                log,
                client,
                last_reload_error: Mutex::new(None),
            }),
        })
    }

    fn evaluator(&self) -> std::sync::MutexGuard<'_, Evaluator> {
        self.shared.evaluator.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dispatcher(&self) -> std::sync::MutexGuard<'_, Dispatcher> {
        self.shared.dispatcher.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The series store rules run over.
    pub fn store(&self) -> &Arc<SeriesStore> {
        &self.shared.store
    }

    /// Evaluates the groups due at `t_ms`, hands their alerts to the dispatcher and the
    /// Alertmanager queues (leaving out silenced alerts), and saves the state when it changed.
    /// Blocking; the evaluator task calls it on a blocking thread.
    pub fn evaluate_at(&self, t_ms: i64) -> EvalOutput {
        let (out, persisted) = {
            let mut ev = self.evaluator();
            let out = ev.evaluate_at(t_ms);
            let persisted = (out.state_changed && self.shared.persistence.is_some()).then(|| ev.persisted());
            (out, persisted)
        };
        if !out.to_send.is_empty() {
            self.dispatcher().put(&out.to_send, t_ms);
            let pushed: Vec<notify::PostableAlert> = out
                .to_send
                .iter()
                .filter(|a| self.shared.silences.muting(&a.labels, t_ms).is_empty())
                .map(NotifyAlert::postable)
                .collect();
            if !pushed.is_empty() {
                let firing =
                    pushed.iter().any(|a| a.ends_at.as_deref().and_then(time::parse_rfc3339).is_none_or(|e| e > t_ms));
                let n = Notification {
                    group_key: "alertmanager".into(),
                    status: if firing { "firing" } else { "resolved" }.into(),
                    alerts: pushed.len(),
                    body: serde_json::to_value(&pushed).unwrap_or(serde_json::Value::Null),
                };
                for q in &self.shared.am_queues {
                    q.push(n.clone());
                }
            }
        }
        let acting: Vec<&Alert> = out
            .fired
            .iter()
            .filter(|a| {
                a.labels.contains_key(ACTION_LABEL)
                    && self
                        .shared
                        .silences
                        .muting(&recserve_telemetry::LabelSet::from_pairs(a.labels.clone()), t_ms)
                        .is_empty()
            })
            .collect();
        if !acting.is_empty() {
            let remediation = self.shared.remediation.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for alert in acting {
                match &remediation {
                    Some(r) => r.on_fired(alert),
                    None => tracing::warn!(
                        alert = alert.labels.get("alertname").map(String::as_str).unwrap_or(""),
                        action = alert.labels.get(ACTION_LABEL).map(String::as_str).unwrap_or(""),
                        "an alert asks for an action but nothing acts on alerts in this process"
                    ),
                }
            }
        }
        if let (Some(p), Some(alerts)) = (&self.shared.persistence, persisted)
            && let Err(err) = p.save_alerts(&alerts)
        {
            tracing::warn!(%err, "could not save the alert state");
        }
        out
    }

    /// Flushes the notification groups due at `t_ms` into the webhook queues; returns the
    /// payloads queued (one per group, each queued to every webhook). When something was
    /// queued, the notification log is saved (blocking, with a persistence).
    pub fn flush_at(&self, t_ms: i64) -> Vec<WebhookPayload> {
        let silences = &self.shared.silences;
        let (payloads, nflog) = {
            let mut dispatcher = self.dispatcher();
            let payloads = dispatcher.flush(t_ms, &|l| !silences.muting(l, t_ms).is_empty());
            let nflog = (!payloads.is_empty() && self.shared.persistence.is_some()).then(|| dispatcher.nflog());
            (payloads, nflog)
        };
        if let (Some(p), Some(nflog)) = (&self.shared.persistence, nflog)
            && let Err(err) = p.save_nflog(&nflog)
        {
            tracing::warn!(%err, "could not save the notification log");
        }
        for p in &payloads {
            let n = Notification {
                group_key: p.group_key.clone(),
                status: p.status.clone(),
                alerts: p.alerts.len(),
                body: serde_json::to_value(p).unwrap_or(serde_json::Value::Null),
            };
            for q in &self.shared.webhook_queues {
                q.push(n.clone());
            }
        }
        payloads
    }

    /// Starts the evaluator, the dispatcher, one delivery task per target and the rule-file
    /// watcher on the current tokio runtime.
    pub fn start(&self) -> AlertingTasks {
        let (tx, rx) = watch::channel(false);
        let mut handles = Vec::new();
        for q in self.shared.webhook_queues.iter().chain(&self.shared.am_queues) {
            handles.push(tokio::spawn(q.clone().run(
                self.shared.client.clone(),
                self.shared.config.retry.clone(),
                rx.clone(),
            )));
        }
        handles.push(tokio::spawn(self.clone().eval_loop(rx.clone())));
        handles.push(tokio::spawn(self.clone().dispatch_loop(rx.clone())));
        handles.push(tokio::spawn(self.clone().watch_loop(rx)));
        AlertingTasks { shutdown: tx, handles }
    }

    async fn eval_loop(self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.shared.config.eval_tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            if !self.is_evaluating() {
                continue;
            }
            let me = self.clone();
            if let Err(err) = tokio::task::spawn_blocking(move || me.evaluate_at(time::now_ms())).await {
                tracing::error!(%err, "rule evaluation panicked");
            }
        }
        if self.is_evaluating() {
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.save_state()).await;
        }
    }

    async fn dispatch_loop(self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.shared.config.dispatch_tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            if !self.is_evaluating() {
                continue;
            }
            let me = self.clone();
            if let Err(err) = tokio::task::spawn_blocking(move || me.flush_at(time::now_ms())).await {
                tracing::error!(%err, "notification flush panicked");
            }
        }
    }

    async fn watch_loop(self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.shared.config.watch_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.reload_if_changed()).await {
                Ok(Some(Err(err))) => {
                    tracing::error!(%err, "rule files changed but do not load; keeping the old rules")
                }
                Ok(Some(Ok(outcome))) => {
                    tracing::info!(groups = outcome.groups, rules = outcome.rules, "rule files reloaded")
                }
                Ok(None) => {}
                Err(err) => tracing::error!(%err, "rule reload panicked"),
            }
        }
    }

    /// Reloads the rules when a rule file's modification time changed; `None` when none did.
    pub fn reload_if_changed(&self) -> Option<Result<ReloadOutcome, AlertingError>> {
        let now = mtimes(&self.shared.config.rule_sources);
        let changed = *self.shared.mtimes.lock().unwrap_or_else(|e| e.into_inner()) != now;
        changed.then(|| self.reload())
    }

    /// Re-reads every rule source (the SIGHUP and API entry point). On error the old rules stay
    /// and the diagnostics are kept for [`Alerting::last_reload_error`].
    pub fn reload(&self) -> Result<ReloadOutcome, AlertingError> {
        let sources = &self.shared.config.rule_sources;
        *self.shared.mtimes.lock().unwrap_or_else(|e| e.into_inner()) = mtimes(sources);
        match RuleFiles::load(sources) {
            Ok(files) => {
                let outcome = ReloadOutcome { groups: files.groups.len(), rules: files.rule_count() };
                self.evaluator().reload(files);
                *self.shared.last_reload_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(outcome)
            }
            Err(diags) => {
                *self.shared.last_reload_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(diags.clone());
                Err(AlertingError::Rules(diags))
            }
        }
    }

    /// Reloads on every SIGHUP (Unix).
    #[cfg(unix)]
    pub fn reload_on_sighup(&self) -> std::io::Result<JoinHandle<()>> {
        let mut sig = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let me = self.clone();
        Ok(tokio::spawn(async move {
            while sig.recv().await.is_some() {
                let me2 = me.clone();
                match tokio::task::spawn_blocking(move || me2.reload()).await {
                    Ok(Ok(o)) => tracing::info!(groups = o.groups, rules = o.rules, "SIGHUP: rules reloaded"),
                    Ok(Err(err)) => tracing::error!(%err, "SIGHUP: rules not reloaded"),
                    Err(err) => tracing::error!(%err, "SIGHUP: reload panicked"),
                }
            }
        }))
    }

    /// The diagnostics of the last failed reload (cleared by a successful one).
    pub fn last_reload_error(&self) -> Option<Vec<Diagnostic>> {
        self.shared.last_reload_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The rule sources.
    pub fn rule_sources(&self) -> &[RuleSource] {
        &self.shared.config.rule_sources
    }

    /// Whether this process evaluates rules and sends notifications (true unless
    /// [`Alerting::set_evaluating`] turned it off).
    pub fn is_evaluating(&self) -> bool {
        self.shared.evaluating.load(Ordering::Acquire)
    }

    /// Starts or stops rule evaluation and notification; returns whether that changed
    /// anything. In a fleet the replica holding the evaluator lease evaluates and the others
    /// follow ([`Alerting::follow`]). Taking over first reloads what the previous evaluator
    /// saved: the active alerts (firing ones keep their start time, and are not pending again),
    /// the silences, and the notification log, so what was already notified is not notified
    /// twice. Blocking (store reads): call it from a blocking thread.
    pub fn set_evaluating(&self, on: bool) -> bool {
        if self.is_evaluating() == on {
            return false;
        }
        if on && let Some(p) = &self.shared.persistence {
            self.follow();
            match p.load_nflog() {
                Ok(nflog) => {
                    let mut dispatcher =
                        Dispatcher::new(self.shared.config.route.clone(), self.shared.config.eval.external_url.clone());
                    dispatcher.restore_nflog(nflog);
                    *self.dispatcher() = dispatcher;
                }
                Err(err) => tracing::warn!(%err, "cannot read the notification log; groups may be notified again"),
            }
        }
        self.shared.evaluating.store(on, Ordering::Release);
        true
    }

    /// Reads what other replicas saved: the silences (added through any replica), and, when
    /// this replica does not evaluate, the active alerts the evaluating replica wrote, so this
    /// replica's API shows the fleet's alerts. Blocking.
    pub fn follow(&self) {
        let Some(p) = &self.shared.persistence else { return };
        if !self.is_evaluating() {
            match p.load_alerts() {
                Ok(alerts) => {
                    self.evaluator().replace_active(alerts);
                }
                Err(err) => tracing::warn!(%err, "cannot read the saved alert state"),
            }
        }
        match p.load_silences() {
            Ok(silences) => self.shared.silences.replace(silences),
            Err(err) => tracing::warn!(%err, "cannot read the saved silences"),
        }
    }

    /// Saves alerts, silences and the notification log now (blocking).
    pub fn save_state(&self) {
        let Some(p) = &self.shared.persistence else { return };
        let alerts = self.evaluator().persisted();
        if let Err(err) = p.save_alerts(&alerts) {
            tracing::warn!(%err, "could not save the alert state");
        }
        let nflog = self.dispatcher().nflog();
        if let Err(err) = p.save_nflog(&nflog) {
            tracing::warn!(%err, "could not save the notification log");
        }
        if let Err(err) = p.save_silences(&self.shared.silences.snapshot()) {
            tracing::warn!(%err, "could not save the silences");
        }
    }

    /// `/api/v1/alerts` data (pending and firing alerts).
    pub fn alerts(&self) -> AlertsData {
        self.evaluator().alerts_view()
    }

    /// `/api/v1/rules` data (groups, rules with health, last evaluation, last error, alerts).
    pub fn rules(&self) -> RulesData {
        self.evaluator().rules_view()
    }

    /// Silences with their state now.
    pub fn silences(&self) -> Vec<SilenceView> {
        self.shared.silences.list(time::now_ms())
    }

    /// Adds a silence (saved at once; blocking when a persistence is set).
    pub fn add_silence(&self, new: NewSilence) -> Result<Silence, SilenceError> {
        let s = self.shared.silences.add(new, time::now_ms())?;
        self.save_silences();
        Ok(s)
    }

    /// Expires a silence (saved at once).
    pub fn expire_silence(&self, id: &str) -> Result<Silence, SilenceError> {
        let s = self.shared.silences.expire(id, time::now_ms())?;
        self.save_silences();
        Ok(s)
    }

    fn save_silences(&self) {
        if let Some(p) = &self.shared.persistence
            && let Err(err) = p.save_silences(&self.shared.silences.snapshot())
        {
            tracing::warn!(%err, "could not save the silences");
        }
    }

    /// The silences themselves (for tests and the manual clock).
    pub fn silence_set(&self) -> &Silences {
        &self.shared.silences
    }

    /// Every delivery attempt, oldest first (bounded).
    pub fn notification_log(&self) -> Vec<NotificationLogEntry> {
        self.shared.log.entries()
    }

    /// Sets the hook that acts on alerts asking for an action (label [`ACTION_LABEL`]) when
    /// they start firing.
    pub fn set_remediation(&self, remediation: Arc<dyn Remediation>) {
        *self.shared.remediation.lock().unwrap_or_else(|e| e.into_inner()) = Some(remediation);
    }

    /// Sets the hook each notification log entry is also given to (the store).
    pub fn set_notification_sink(&self, sink: Arc<dyn NotificationSink>) {
        self.shared.log.set_sink(sink);
    }

    /// Counters per target (sent, failed attempts, dropped, queued).
    pub fn target_stats(&self) -> Vec<TargetStatsView> {
        self.shared.webhook_queues.iter().chain(&self.shared.am_queues).map(|q| q.stats_view()).collect()
    }

    /// The rule files and embedded sources as paths (files only).
    pub fn rule_files(&self) -> Vec<PathBuf> {
        self.shared
            .config
            .rule_sources
            .iter()
            .filter_map(|s| match s {
                RuleSource::File(p) => Some(p.clone()),
                RuleSource::Embedded { .. } => None,
            })
            .collect()
    }
}
