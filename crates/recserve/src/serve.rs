//! `recserve serve`: resolves settings (flags and environment, then the config file, then
//! defaults), opens the store (SQLite in the data directory, or MySQL), loads the model
//! repository and the recommendation pipelines, starts the REST and gRPC listeners, polls the
//! repository, and shuts down cleanly on SIGTERM or SIGINT, letting in-flight requests finish.
//! Telemetry (sampler, series scraper) starts with the server and its history lives in the
//! store; the request log and the service log go to the store's writer. Shutdown takes a last
//! scrape so the final counters persist, then commits every queued log record.
//! `recserve demo` starts the same server through [`start`].

use crate::alert_store::{StoreAlertState, StoreNotificationLog};
use crate::cli::ServeArgs;
use anyhow::{Context, bail};
use recserve_alerting::{Alerting, AlertingConfig, AlertingTasks, DEFAULT_RULES_NAME, RuleSource};
use recserve_pipeline::Pipelines;
use recserve_server::auth::AuthMode;
use recserve_server::deployments::AutoRollback;
use recserve_server::experiments::{Experiments, ExperimentsConfig};
use recserve_server::fleet::{DEFAULT_LEASE_TTL, DEFAULT_SYNC_INTERVAL, Evaluation, Fleet, FleetConfig};
use recserve_server::observe::LogWriterCollector;
use recserve_server::request_log::{RequestLog, RequestLogConfig};
use recserve_server::shop::ShopApi;
use recserve_server::tls::{CertResolver, TlsFiles};
use recserve_server::{AppState, Limits};
use recserve_serving::{ModelRegistry, tract_loader};
use recserve_store::{LogWriter, Pseudonymizer, Retention, SqlSeriesPersistence, Store, WriterConfig};
use recserve_telemetry::{StoreConfig, Telemetry, TelemetryConfig, TelemetryTasks};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Notification log entries waiting for the store.
const NOTIFICATION_QUEUE: usize = 10_000;

/// How often log retention (age and size) is enforced.
const RETENTION_CHECK: Duration = Duration::from_secs(300);

/// The settings `serve` runs with, after layering.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub model_repository: PathBuf,
    /// The recommendation pipelines' config file, when the shop API is served.
    pub pipelines: Option<PathBuf>,
    pub host: String,
    pub http_port: u16,
    pub grpc_port: u16,
    pub data_dir: PathBuf,
    pub repository_poll: Duration,
    pub max_body_bytes: usize,
    pub max_request_elements: usize,
    pub max_in_flight_per_client: usize,
    /// `None`: no limit.
    pub request_timeout: Option<Duration>,
    pub shutdown_grace: Duration,
    /// How often the series store snapshots the metrics.
    pub scrape_interval: Duration,
    /// How much metric history is kept.
    pub retention: Duration,
    /// The store's URL (`None`: SQLite in the data directory).
    pub store: Option<String>,
    /// How long request and service logs are kept.
    pub log_retention: Duration,
    /// Largest size of the logs in the store, in bytes.
    pub log_max_bytes: u64,
    /// Request-log sampling and privacy settings.
    pub request_log: RequestLogConfig,
    /// The key user ids are pseudonymised with (`None`: RECSERVE_PSEUDONYM_KEY, else the key file
    /// in the data directory, created on first start).
    pub pseudonym_key: Option<String>,
    /// This replica's name in shared logs (`None`: made up from the host name and process id).
    pub replica: Option<String>,
    /// Who evaluates alert rules.
    pub alert_evaluation: Evaluation,
    /// Time to live of the evaluator lease.
    pub evaluator_lease: Duration,
    /// Interval of the state sync with other replicas.
    pub state_sync: Duration,
    /// The Prometheus that scrapes the fleet.
    pub prometheus_url: Option<String>,
    /// Alert rules, receivers and timers.
    pub alerting: AlertingSettings,
    /// Online metrics and drift monitoring.
    pub experiments: ExperimentsConfig,
    /// When requests must carry a bearer token.
    pub auth: AuthMode,
    /// Serve unauthenticated on a non-loopback address anyway.
    pub allow_unauthenticated: bool,
    /// The certificate and key files (`None`: plain HTTP and gRPC).
    pub tls: Option<TlsFiles>,
}

/// The `[alerting]` table of the config file (rules, webhooks and Alertmanagers add to the
/// flags' lists).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingSettings {
    /// Rule files.
    pub rules: Vec<PathBuf>,
    /// Whether the bundled rules are loaded too.
    pub default_rules: bool,
    /// Webhook URLs (Alertmanager's webhook payload, version 4).
    pub webhooks: Vec<String>,
    /// Alertmanager base URLs.
    pub alertmanagers: Vec<String>,
    /// Evaluation interval of groups that set none.
    pub evaluation_interval_secs: u64,
    /// Labels notifications are grouped by.
    pub group_by: Vec<String>,
    pub group_wait_secs: u64,
    pub group_interval_secs: u64,
    pub repeat_interval_secs: u64,
    pub send_resolved: bool,
    /// The URL alerts link back to [default: the server's own HTTP address].
    pub external_url: Option<String>,
}

impl Default for AlertingSettings {
    fn default() -> Self {
        AlertingSettings {
            rules: Vec::new(),
            default_rules: true,
            webhooks: Vec::new(),
            alertmanagers: Vec::new(),
            evaluation_interval_secs: 15,
            group_by: vec!["alertname".into()],
            group_wait_secs: 30,
            group_interval_secs: 300,
            repeat_interval_secs: 4 * 3600,
            send_resolved: true,
            external_url: None,
        }
    }
}

impl AlertingSettings {
    fn config(&self, http_addr: SocketAddr) -> AlertingConfig {
        let mut config = AlertingConfig::default();
        if self.default_rules {
            config.rule_sources.push(RuleSource::Embedded {
                name: DEFAULT_RULES_NAME.into(),
                text: recserve_alerting::default_rules().into(),
            });
        }
        config.rule_sources.extend(self.rules.iter().cloned().map(RuleSource::File));
        config.webhooks = self.webhooks.clone();
        config.alertmanagers = self.alertmanagers.clone();
        config.eval.default_interval_ms = self.evaluation_interval_secs.max(1) * 1000;
        config.eval.external_url = self.external_url.clone().unwrap_or_else(|| format!("http://{http_addr}"));
        config.route.group_by = self.group_by.clone();
        config.route.group_wait_ms = self.group_wait_secs * 1000;
        config.route.group_interval_ms = self.group_interval_secs.max(1) * 1000;
        config.route.repeat_interval_ms = self.repeat_interval_secs.max(1) * 1000;
        config.route.send_resolved = self.send_resolved;
        config
    }
}

/// The config file: the same keys as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    model_repository: Option<PathBuf>,
    pipelines: Option<PathBuf>,
    host: Option<String>,
    http_port: Option<u16>,
    grpc_port: Option<u16>,
    data_dir: Option<PathBuf>,
    repository_poll_secs: Option<u64>,
    max_body_bytes: Option<usize>,
    max_request_elements: Option<usize>,
    max_in_flight_per_client: Option<usize>,
    request_timeout_ms: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    scrape_interval_secs: Option<u64>,
    retention_hours: Option<u64>,
    store: Option<String>,
    log_retention_days: Option<u64>,
    log_max_mb: Option<u64>,
    pseudonym_key: Option<String>,
    replica: Option<String>,
    alert_evaluation: Option<String>,
    evaluator_lease_secs: Option<u64>,
    state_sync_ms: Option<u64>,
    prometheus_url: Option<String>,
    request_log: Option<RequestLogConfig>,
    alerting: Option<AlertingSettings>,
    auth: Option<String>,
    allow_unauthenticated: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// What `recserve demo` supplies when neither flags nor the config file name a model
/// repository or pipelines: it is called with the resolved data directory.
pub struct Fallback<'a> {
    pub what: &'a str,
    pub make: MakeFallback<'a>,
}

/// Given the data directory, yields (model repository, pipelines file).
pub type MakeFallback<'a> = Box<dyn FnOnce(&std::path::Path) -> anyhow::Result<(PathBuf, PathBuf)> + 'a>;

impl Settings {
    /// Flags and environment first, then the config file, then the defaults.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Settings> {
        Settings::resolve_or(args, None)
    }

    /// As [`Settings::resolve`]; a missing model repository or pipelines file is taken from
    /// `fallback` (the demo's bundle) instead of being an error.
    pub fn resolve_or(args: &ServeArgs, fallback: Option<Fallback<'_>>) -> anyhow::Result<Settings> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<FileSettings>(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => FileSettings::default(),
        };
        let data_dir: PathBuf = args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| "recserve-data".into());
        let mut model_repository = args.model_repository.clone().or(file.model_repository);
        let mut pipelines = args.pipelines.clone().or(file.pipelines);
        if let Some(fallback) = fallback
            && (model_repository.is_none() || pipelines.is_none())
        {
            let (repo, pipes) =
                (fallback.make)(&data_dir).with_context(|| format!("cannot prepare {}", fallback.what))?;
            model_repository.get_or_insert(repo);
            pipelines.get_or_insert(pipes);
        }
        let mut request_log = file.request_log.unwrap_or_default();
        if let Some(rate) = args.request_log_sample_rate {
            request_log.sample_rate = rate;
        }
        request_log.validate().map_err(|e| anyhow::anyhow!("invalid request log settings: {e}"))?;
        let mut alerting = file.alerting.unwrap_or_default();
        alerting.rules.extend(args.rules.iter().cloned());
        alerting.webhooks.extend(args.alert_webhooks.iter().cloned());
        alerting.alertmanagers.extend(args.alertmanager_urls.iter().cloned());
        if args.no_default_rules {
            alerting.default_rules = false;
        }
        if let Some(secs) = args.evaluation_interval_secs {
            alerting.evaluation_interval_secs = secs;
        }
        let mut experiments = ExperimentsConfig::default();
        if let Some(mins) = args.online_window_mins {
            if mins == 0 {
                bail!("--online-window-mins must be at least 1");
            }
            experiments.online.window_ms = mins * 60_000;
        }
        if let Some(rate) = args.drift_sample_rate {
            if !(0.0..=1.0).contains(&rate) {
                bail!("--drift-sample-rate must be between 0 and 1, got {rate}");
            }
            experiments.drift_sample_rate = rate;
        }
        let auth = match args.auth.clone().or(file.auth) {
            Some(mode) => mode.parse::<AuthMode>().map_err(|e| anyhow::anyhow!("--auth: {e}"))?,
            None => AuthMode::default(),
        };
        let tls = match (args.tls_cert.clone().or(file.tls_cert), args.tls_key.clone().or(file.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => bail!(
                "--tls-cert is given but --tls-key is missing: TLS needs both (or tls_cert and tls_key in the config file)"
            ),
            (None, Some(_)) => bail!(
                "--tls-key is given but --tls-cert is missing: TLS needs both (or tls_cert and tls_key in the config file)"
            ),
        };
        let alert_evaluation = match args.alert_evaluation.clone().or(file.alert_evaluation) {
            Some(e) => e.parse::<Evaluation>().map_err(|e| anyhow::anyhow!("--alert-evaluation: {e}"))?,
            None => Evaluation::default(),
        };
        let Some(model_repository) = model_repository else {
            bail!(
                "no model repository given: pass --model-repository DIR (or RECSERVE_MODEL_REPOSITORY, or model_repository in the config file)"
            );
        };
        Ok(Settings {
            model_repository,
            pipelines,
            host: args.host.clone().or(file.host).unwrap_or_else(|| "127.0.0.1".into()),
            http_port: args.http_port.or(file.http_port).unwrap_or(8000),
            grpc_port: args.grpc_port.or(file.grpc_port).unwrap_or(8001),
            data_dir,
            repository_poll: Duration::from_secs(args.repository_poll_secs.or(file.repository_poll_secs).unwrap_or(5)),
            max_body_bytes: args.max_body_bytes.or(file.max_body_bytes).unwrap_or(64 * 1024 * 1024),
            max_request_elements: args
                .max_request_elements
                .or(file.max_request_elements)
                .unwrap_or(Limits::DEFAULT_MAX_REQUEST_ELEMENTS),
            max_in_flight_per_client: args
                .max_in_flight_per_client
                .or(file.max_in_flight_per_client)
                .unwrap_or(Limits::DEFAULT_MAX_IN_FLIGHT_PER_CLIENT),
            request_timeout: match args.request_timeout_ms.or(file.request_timeout_ms) {
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
                None => Some(Limits::DEFAULT_REQUEST_TIMEOUT),
            },
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs.or(file.shutdown_grace_secs).unwrap_or(30)),
            scrape_interval: Duration::from_secs(
                args.scrape_interval_secs.or(file.scrape_interval_secs).unwrap_or(5).max(1),
            ),
            retention: Duration::from_secs(
                args.retention_hours.or(file.retention_hours).unwrap_or(6).max(1).saturating_mul(3600),
            ),
            store: args.store.clone().or(file.store),
            log_retention: Duration::from_secs(
                args.log_retention_days.or(file.log_retention_days).unwrap_or(7).max(1).saturating_mul(86_400),
            ),
            log_max_bytes: args.log_max_mb.or(file.log_max_mb).unwrap_or(1024).max(1).saturating_mul(1 << 20),
            request_log,
            pseudonym_key: file.pseudonym_key,
            replica: args.replica.clone().or(file.replica),
            alert_evaluation,
            evaluator_lease: match args.evaluator_lease_secs.or(file.evaluator_lease_secs) {
                Some(0) => bail!("--evaluator-lease-secs must be at least 1"),
                Some(secs) => Duration::from_secs(secs),
                None => DEFAULT_LEASE_TTL,
            },
            state_sync: match args.state_sync_ms.or(file.state_sync_ms) {
                Some(0) => bail!("--state-sync-ms must be at least 1"),
                Some(ms) => Duration::from_millis(ms),
                None => DEFAULT_SYNC_INTERVAL,
            },
            prometheus_url: args.prometheus_url.clone().or(file.prometheus_url),
            alerting,
            experiments,
            auth,
            allow_unauthenticated: args.allow_unauthenticated || file.allow_unauthenticated.unwrap_or(false),
            tls,
        })
    }
}

/// `recserve serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args)?;
    start(settings).await?.wait_for_shutdown().await
}

/// A started server: listening, models loaded, pipelines ready.
pub struct Running {
    pub http_addr: SocketAddr,
    /// The served certificate when the transports use TLS.
    pub tls: Option<Arc<CertResolver>>,
    pub grpc_addr: SocketAddr,
    /// Cancelled when the server shuts down; background tasks stop on it.
    pub stop: CancellationToken,
    /// Metrics, series store and query API of this server.
    pub telemetry: Arc<Telemetry>,
    telemetry_tasks: TelemetryTasks,
    settings: Settings,
    servers: tokio::task::JoinHandle<Result<(), recserve_server::listen::ListenError>>,
    /// Logs and metric history.
    pub store: Store,
    writer: LogWriter,
    retention_task: tokio::task::JoinHandle<()>,
    alerting_tasks: AlertingTasks,
    fleet_stop: CancellationToken,
    lease_task: Option<tokio::task::JoinHandle<()>>,
}

/// Binds the listeners, loads the repository and the pipelines, and starts serving.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    if !settings.model_repository.is_dir() {
        bail!("model repository {} is not a directory", settings.model_repository.display());
    }
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create data directory {}", settings.data_dir.display()))?;
    let pipelines = match &settings.pipelines {
        Some(path) => {
            let path = path.clone();
            let loaded = tokio::task::spawn_blocking(move || Pipelines::load(&path))
                .await
                .context("pipeline loader panicked")?
                .with_context(|| format!("cannot load pipelines from {}", settings.pipelines_display()))?;
            Some(Arc::new(loaded))
        }
        None => None,
    };

    let http = bind(&settings.host, settings.http_port, "HTTP").await?;
    let grpc = bind(&settings.host, settings.grpc_port, "gRPC").await?;
    let (http_addr, grpc_addr) = (http.local_addr()?, grpc.local_addr()?);

    let store_config = recserve_store::StoreConfig {
        url: settings.store.clone(),
        data_dir: settings.data_dir.clone(),
        retention: Retention { max_age: Some(settings.log_retention), max_bytes: Some(settings.log_max_bytes) },
    };
    let store = Store::open(&store_config).await.context("cannot open the store")?;
    info!(store = %store.describe(), "store open");
    let writer = store.start_writer(WriterConfig::default());
    crate::logging::attach(writer.sink(), settings.replica.clone());
    let retention_task = store.start_retention(RETENTION_CHECK);
    let pseudonymizer = Pseudonymizer::load_or_create(&settings.data_dir, settings.pseudonym_key.as_deref())
        .context("cannot set up the key that pseudonymises user ids")?;

    // Replicas sharing a MySQL store keep their metric history apart (under their name); one
    // process on SQLite keeps it unscoped, as before fleets existed.
    let replica = settings.replica.clone().unwrap_or_else(FleetConfig::default_replica);
    let series_scope = match store.backend() {
        recserve_store::Backend::MySql => Some(replica.clone()),
        recserve_store::Backend::Sqlite => settings.replica.clone(),
    };
    // A replica also removes the history of replicas that have had no sample for as long as
    // history is kept (pods replaced under new names): nothing of it was still shown.
    let persistence = {
        let config = store_config.clone();
        let retention = settings.retention;
        tokio::task::spawn_blocking(move || {
            let scoped = series_scope.is_some();
            let mut persistence = SqlSeriesPersistence::open_scoped(&config, series_scope)?;
            if scoped && let Err(err) = persistence.forget_stale_scopes(retention) {
                tracing::warn!(%err, "could not remove the metric history of replicas that are gone; will retry at the next compaction");
            }
            Ok::<_, recserve_store::StoreError>(persistence)
        })
        .await
        .context("metric history loader panicked")?
        .context("cannot open the metric history in the store")?
    };
    let telemetry_config = TelemetryConfig {
        store: StoreConfig { scrape_interval: settings.scrape_interval, retention: settings.retention },
        ..TelemetryConfig::default()
    };
    let telemetry =
        tokio::task::spawn_blocking(move || Telemetry::with_persistence(telemetry_config, Box::new(persistence)))
            .await
            .context("metric history loader panicked")?
            .context("cannot load the metric history from the store")?;
    let telemetry = Arc::new(telemetry);
    telemetry.registry.register_collector(Box::new(LogWriterCollector::new(writer.sink())));
    let tls = match &settings.tls {
        Some(files) => {
            Some(CertResolver::load(files.clone(), Some(&telemetry.registry)).await.context("cannot set up TLS")?)
        }
        None => None,
    };

    let registry = ModelRegistry::new(&settings.model_repository, tract_loader());
    let restored =
        recserve_server::deployments::restore(&store, &registry).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if restored.deployments > 0 {
        info!(deployments = restored.deployments, "deployments restored from the store");
    }
    let state_revision = restored.revision;
    let mut state = AppState::with_telemetry(registry.clone(), Some(telemetry.clone()));
    let telemetry_tasks = telemetry.start();
    state.limits = Limits {
        max_body_bytes: settings.max_body_bytes,
        max_request_elements: settings.max_request_elements,
        max_in_flight_per_client: settings.max_in_flight_per_client,
        request_timeout: settings.request_timeout,
    };
    state.request_log = Some(Arc::new(RequestLog::new(
        writer.sink(),
        pseudonymizer,
        settings.request_log.clone(),
        settings.replica.clone(),
    )));
    state.store = Some(store.clone());
    let evaluation = settings.alert_evaluation.resolve(store.backend());
    let fleet = Fleet::new(
        FleetConfig {
            replica,
            replica_given: settings.replica.is_some(),
            evaluation,
            lease_ttl: settings.evaluator_lease,
            sync_interval: settings.state_sync,
            prometheus_url: settings.prometheus_url.clone(),
        },
        store.backend(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (model, version) in &restored.versions {
        fleet.note_deployment_version(model, *version);
    }
    state.fleet = Some(fleet.clone());
    state.auth = crate::token::server_auth(&settings, &store, &telemetry.registry, &[http_addr, grpc_addr]).await?;
    let experiments = Arc::new(
        Experiments::new(registry.clone(), settings.experiments.clone())
            .map_err(|e| anyhow::anyhow!("invalid experiment settings: {e}"))?,
    );
    recserve_server::experiments::register_collector(&telemetry.registry, experiments.clone());
    state.experiments = Some(experiments.clone());
    if let Some(pipelines) = &pipelines {
        state.shop = Some(Arc::new(ShopApi::with_experiments(pipelines.clone(), registry.clone(), experiments)));
    }

    let alerting = {
        let mut config = settings.alerting.config(http_addr);
        if tls.is_some() && settings.alerting.external_url.is_none() {
            config.eval.external_url = format!("https://{http_addr}");
        }
        let series = telemetry.store.clone();
        let store_config = store_config.clone();
        tokio::task::spawn_blocking(move || {
            let persistence = StoreAlertState::open(&store_config)
                .map_err(|e| anyhow::anyhow!("cannot open the alert state in the store: {e}"))?;
            Alerting::new(config, series, Some(Arc::new(persistence))).context("cannot set up alerting")
        })
        .await
        .context("alerting set-up panicked")??
    };
    alerting.set_notification_sink(Arc::new(StoreNotificationLog::new(
        store.start_notification_recorder(NOTIFICATION_QUEUE),
        settings.replica.clone(),
    )));
    let auto_rollback = AutoRollback::new(tokio::runtime::Handle::current());
    alerting.set_remediation(auto_rollback.clone());
    let alerting = Arc::new(alerting);
    // A replica that may not evaluate yet must not evaluate at the first tick.
    if evaluation != Evaluation::Local {
        alerting.set_evaluating(false);
    }
    let alerting_tasks = alerting.start();
    if let Err(e) = alerting.reload_on_sighup() {
        warn!(error = %e, "cannot listen for SIGHUP; reload rules with POST /api/v1/rules/reload");
    }
    info!(rules = alerting.rules().groups.iter().map(|g| g.rules.len()).sum::<usize>(), "alert rules loaded");
    state.alerting = Some(alerting.clone());
    auto_rollback.set_state(state.clone());

    let stop = CancellationToken::new();
    // The lease outlives the transports: it is released after alerting saved its last state.
    let fleet_stop = CancellationToken::new();
    let lease_task = (evaluation == Evaluation::Leader).then(|| {
        let gauge = telemetry
            .registry
            .gauge("recserve_alert_evaluator", "1 while this replica evaluates alert rules (holds the evaluator lease)")
            .map_err(|e| warn!(error = %e, "cannot register recserve_alert_evaluator"))
            .ok();
        tokio::spawn(recserve_server::fleet::run_lease(
            fleet.clone(),
            store.clone(),
            alerting.clone(),
            gauge,
            fleet_stop.clone().cancelled_owned(),
        ))
    });
    tokio::spawn(recserve_server::fleet::run_sync(
        fleet.clone(),
        state.clone(),
        store.clone(),
        state_revision,
        stop.clone().cancelled_owned(),
    ));
    info!(replica = %fleet.config.replica, evaluation = ?evaluation, "fleet role");
    state.auth.start_refresh(recserve_server::auth::REFRESH_INTERVAL, stop.clone().cancelled_owned());
    if let Some(tls) = &tls {
        tls.watch(recserve_server::tls::RELOAD_POLL, stop.clone().cancelled_owned());
    }
    let servers =
        tokio::spawn(recserve_server::serve_tls(state, http, grpc, tls.clone(), stop.clone().cancelled_owned()));
    info!(http = %http_addr, grpc = %grpc_addr, tls = tls.is_some(), repository = %settings.model_repository.display(), "recserve listening; loading models");
    match &tls {
        Some(_) => eprintln!("recserve: HTTPS on https://{http_addr}  gRPC (TLS) on {grpc_addr}"),
        None => eprintln!("recserve: HTTP on http://{http_addr}  gRPC on {grpc_addr}"),
    }

    registry.poll().await;
    let models = registry.snapshot();
    let ready = models.values().filter(|e| e.default_version().is_some()).count();
    info!(models = models.len(), ready, "model repository loaded");
    if let Some(pipelines) = &pipelines {
        for model in pipelines.required_models() {
            if registry.resolve(&model, None).is_err() {
                warn!(model = %model, "a pipeline needs this model but it is not ready; recommendations fail until it is");
            }
        }
        info!(scenarios = ?pipelines.scenarios(), "recommendation pipelines ready");
    }
    if !settings.repository_poll.is_zero() {
        tokio::spawn(registry.clone().watch(settings.repository_poll, stop.clone().cancelled_owned()));
    }
    Ok(Running {
        http_addr,
        tls,
        grpc_addr,
        stop,
        telemetry,
        telemetry_tasks,
        settings,
        servers,
        store,
        writer,
        retention_task,
        alerting_tasks,
        fleet_stop,
        lease_task,
    })
}

impl Settings {
    fn pipelines_display(&self) -> String {
        self.pipelines.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
    }
}

impl Running {
    /// Waits for SIGTERM or SIGINT, then stops accepting connections and drains.
    pub async fn wait_for_shutdown(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        info!(
            grace_secs = self.settings.shutdown_grace.as_secs(),
            "shutting down: no new connections, draining in-flight requests"
        );
        self.stop.cancel();
        match tokio::time::timeout(self.settings.shutdown_grace, self.servers).await {
            Ok(Ok(Ok(()))) => info!("shut down cleanly"),
            Ok(Ok(Err(e))) => warn!(error = %e, "a transport ended with an error"),
            Ok(Err(e)) => warn!(error = %e, "a transport task panicked"),
            Err(_) => warn!("grace period over; exiting with requests still in flight"),
        }
        // Stop the sampler and scraper, then take a last scrape: it is persisted at once.
        drop(self.telemetry_tasks);
        let telemetry = self.telemetry.clone();
        let saved = tokio::task::spawn_blocking(move || {
            telemetry.store.scrape(&telemetry.registry, recserve_telemetry::store::now_ms())
        })
        .await;
        match saved {
            Ok(()) => info!("metric history saved"),
            Err(e) => warn!(error = %e, "the last metric snapshot failed"),
        }
        self.retention_task.abort();
        // Stops evaluation and delivery and saves the alert states and silences.
        self.alerting_tasks.shutdown().await;
        // Then hand the evaluator lease over at once instead of after its time to live.
        self.fleet_stop.cancel();
        if let Some(task) = self.lease_task {
            let _ = task.await;
        }
        // Everything the transports logged is committed before the process ends.
        let stats = self.writer.shutdown().await;
        eprintln!(
            "recserve: logs saved: {} records committed, {} dropped, {} failed",
            stats.committed, stats.dropped, stats.failed
        );
        self.store.close().await;
        Ok(())
    }
}

async fn bind(host: &str, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    let addr = format!("{host}:{port}");
    let addr: SocketAddr = tokio::net::lookup_host(&addr)
        .await
        .with_context(|| format!("cannot resolve {what} address {addr}"))?
        .next()
        .with_context(|| format!("{what} address {addr} resolves to nothing"))?;
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen for {what} on {addr}"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => info!("SIGINT received"),
        _ = term => info!("SIGTERM received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "model_repository = '/m'\nhttp_port = 9000\ngrpc_port = 9001\n").unwrap();
        let args = ServeArgs { config: Some(file), grpc_port: Some(7001), ..Default::default() };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.model_repository, PathBuf::from("/m"));
        assert_eq!(s.http_port, 9000);
        assert_eq!(s.grpc_port, 7001);
        assert_eq!(s.host, "127.0.0.1");
        assert_eq!(s.repository_poll, Duration::from_secs(5));
    }

    #[test]
    fn missing_repository_and_bad_file_are_explained() {
        let e = Settings::resolve(&ServeArgs::default()).unwrap_err().to_string();
        assert!(e.contains("--model-repository"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "http_prot = 1\n").unwrap();
        let e = Settings::resolve(&ServeArgs { config: Some(file), ..Default::default() }).unwrap_err();
        assert!(format!("{e:#}").contains("http_prot"), "{e:#}");
    }

    #[test]
    fn store_request_log_and_alerting_settings_layer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "model_repository = '/m'\nstore = 'mysql://u:p@db:3306/r'\nlog_retention_days = 3\nlog_max_mb = 10\n\
             [request_log]\nsample_rate = 0.5\nmodel_sample_rates = { ranker = 0.1 }\n\
             [alerting]\nrules = ['/etc/a.yml']\nwebhooks = ['http://h/1']\ngroup_wait_secs = 5\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            rules: vec!["/etc/b.yml".into()],
            request_log_sample_rate: Some(0.25),
            no_default_rules: true,
            ..Default::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.store.as_deref(), Some("mysql://u:p@db:3306/r"));
        assert_eq!(s.log_retention, Duration::from_secs(3 * 86_400));
        assert_eq!(s.log_max_bytes, 10 << 20);
        assert_eq!(s.request_log.sample_rate, 0.25, "the flag wins");
        assert_eq!(s.request_log.model_sample_rates.get("ranker"), Some(&0.1));
        assert_eq!(s.alerting.rules, vec![PathBuf::from("/etc/a.yml"), PathBuf::from("/etc/b.yml")]);
        assert_eq!(s.alerting.webhooks, vec!["http://h/1".to_string()]);
        assert!(!s.alerting.default_rules);
        let config = s.alerting.config("127.0.0.1:8000".parse().unwrap());
        assert_eq!(config.route.group_wait_ms, 5_000);
        assert_eq!(config.eval.external_url, "http://127.0.0.1:8000");
        assert_eq!(config.rule_sources.len(), 2, "no bundled rules");

        let bad = ServeArgs { request_log_sample_rate: Some(2.0), ..args };
        let e = Settings::resolve(&bad).unwrap_err().to_string();
        assert!(e.contains("sample rate 2"), "{e}");
        std::fs::write(&file, "model_repository = '/m'\n[alerting]\nwebhook = ['x']\n").unwrap();
        let e = Settings::resolve(&ServeArgs { config: Some(file), ..Default::default() }).unwrap_err();
        assert!(format!("{e:#}").contains("webhook"), "{e:#}");
    }

    #[test]
    fn tls_files_layer_and_need_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "model_repository = '/m'\ntls_cert = '/etc/c.pem'\ntls_key = '/etc/k.pem'\n").unwrap();
        let args = ServeArgs { config: Some(file.clone()), tls_key: Some("/run/k.pem".into()), ..Default::default() };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.tls, Some(TlsFiles { cert: "/etc/c.pem".into(), key: "/run/k.pem".into() }), "the flag wins");
        let plain = ServeArgs { model_repository: Some("/m".into()), ..Default::default() };
        assert_eq!(Settings::resolve(&plain).unwrap().tls, None);
        let e = Settings::resolve(&ServeArgs { tls_cert: Some("/c".into()), ..plain.clone() }).unwrap_err();
        assert!(e.to_string().contains("--tls-key is missing"), "{e}");
        let e = Settings::resolve(&ServeArgs { tls_key: Some("/k".into()), ..plain }).unwrap_err();
        assert!(e.to_string().contains("--tls-cert is missing"), "{e}");
    }
}
