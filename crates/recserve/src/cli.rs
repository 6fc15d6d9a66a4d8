//! Command-line interface: every flag is also a `RECSERVE_*` environment variable, and `serve`
//! reads the same settings from a TOML file given with `--config` (flags and environment win
//! over the file, the file over the built-in defaults).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "recserve", version, about = "Model serving and monitoring for e-commerce search and recommendation")]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the models of a model repository over the Open Inference Protocol (REST and gRPC).
    Serve(ServeArgs),
    /// Run the demo shop: serve the bundled shop models and recommendation pipelines on
    /// localhost, with simulated shoppers browsing, searching and clicking in the background.
    /// Takes every `serve` flag; the model repository and pipelines default to the bundled shop.
    Demo(DemoArgs),
    /// Load-test a running server with V2 inference requests (like Triton's perf_analyzer).
    Bench(recserve_loadgen::BenchArgs),
    /// Alert rule files: check them, or print the bundled ones.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Deploy model versions on a running server: register, canary, A/B, promote, roll back.
    Deploy(DeployArgs),
    /// The synthetic shop (catalog, shoppers, ground truth) behind the e-commerce example.
    #[command(subcommand)]
    Shop(ShopCommand),
    /// API tokens (bearer tokens with a role): create, list, revoke. Works on the store
    /// directly (the same --data-dir / --store / --config as `serve`), so it creates the first
    /// admin token before any server runs; a running server picks changes up within seconds.
    Token(TokenArgs),
}

#[derive(Args, Debug)]
pub struct LogArgs {
    /// Log filter (error, warn, info, debug, trace, or a tracing filter such as
    /// "recserve_serving=debug"). RUST_LOG wins when set.
    #[arg(long, env = "RECSERVE_LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,
    /// Log line format: "json" (one JSON object per line, on stdout) or "text" (readable, on
    /// stderr). Default: json for `serve`, text for the other commands. Either way, `serve` and
    /// `demo` also keep the events in the store, searchable at /api/v1/logs?kind=service.
    #[arg(long, env = "RECSERVE_LOG_FORMAT", value_parser = ["json", "text"], global = true)]
    pub log_format: Option<String>,
}

/// Settings of `recserve serve`. Each is optional here so that a config file can supply it;
/// the defaults are listed in each help text and applied in `serve::Settings`.
#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// Directory of models laid out as <model>/<version>/model.onnx, with an optional
    /// <model>/config.toml.
    #[arg(long, env = "RECSERVE_MODEL_REPOSITORY", value_name = "DIR")]
    pub model_repository: Option<PathBuf>,
    /// The recommendation pipelines' config (pipelines.toml; see examples/ecommerce/). Without
    /// it, /v1/recommend and /v1/feedback answer 404.
    #[arg(long, env = "RECSERVE_PIPELINES", value_name = "FILE")]
    pub pipelines: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "RECSERVE_HOST")]
    pub host: Option<String>,
    /// Port of the HTTP API (V2 REST) [default: 8000; 0 picks a free port].
    #[arg(long, env = "RECSERVE_HTTP_PORT")]
    pub http_port: Option<u16>,
    /// Port of the gRPC API (inference.GRPCInferenceService) [default: 8001; 0 picks a free port].
    #[arg(long, env = "RECSERVE_GRPC_PORT")]
    pub grpc_port: Option<u16>,
    /// Directory for recserve's own state [default: ./recserve-data].
    #[arg(long, env = "RECSERVE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML file with any of these settings (keys as the flags, with underscores:
    /// model_repository, host, http_port, ...).
    #[arg(long, env = "RECSERVE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seconds between scans of the model repository for new, changed or removed versions;
    /// 0 turns polling off (load and unload through the API still work) [default: 5].
    #[arg(long, env = "RECSERVE_REPOSITORY_POLL_SECS")]
    pub repository_poll_secs: Option<u64>,
    /// Largest request body or gRPC message, in bytes [default: 67108864 (64 MiB)].
    #[arg(long, env = "RECSERVE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most tensor elements (all inputs together) one V2 request may hand the engine; larger
    /// requests are refused with 413 / RESOURCE_EXHAUSTED before they queue [default: 16777216].
    #[arg(long, env = "RECSERVE_MAX_REQUEST_ELEMENTS")]
    pub max_request_elements: Option<usize>,
    /// Most inference, recommendation and feedback requests one client (its token, else its IP
    /// address) may have in flight; more are refused at once with 429 / RESOURCE_EXHAUSTED;
    /// 0 turns the limit off [default: 1024].
    #[arg(long, env = "RECSERVE_MAX_IN_FLIGHT_PER_CLIENT")]
    pub max_in_flight_per_client: Option<usize>,
    /// Milliseconds an inference, recommendation or feedback request may take before it is
    /// abandoned and answered 504 / DEADLINE_EXCEEDED; 0 turns the limit off [default: 30000].
    #[arg(long, env = "RECSERVE_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Seconds to let in-flight requests finish after SIGTERM or SIGINT [default: 30].
    #[arg(long, env = "RECSERVE_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds between snapshots of every metric into the embedded series store (the history
    /// behind /api/v1/query_range and the dashboard) [default: 5].
    #[arg(long, env = "RECSERVE_SCRAPE_INTERVAL_SECS")]
    pub scrape_interval_secs: Option<u64>,
    /// Hours of metric history kept in memory and in the store [default: 6].
    #[arg(long, env = "RECSERVE_RETENTION_HOURS")]
    pub retention_hours: Option<u64>,
    /// The store for logs and metric history: mysql://user:password@host:port/database for a
    /// MySQL or MariaDB server shared by replicas, or sqlite://PATH [default: SQLite in
    /// <data-dir>/recserve.db].
    #[arg(long, env = "RECSERVE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Days of request and service logs kept; older records are deleted [default: 7].
    #[arg(long, env = "RECSERVE_LOG_RETENTION_DAYS")]
    pub log_retention_days: Option<u64>,
    /// Largest size of the logs in the store, in MiB; the oldest records go first [default: 1024].
    #[arg(long, env = "RECSERVE_LOG_MAX_MB")]
    pub log_max_mb: Option<u64>,
    /// Share of successful requests kept in the request log, 0 to 1; failed requests are always
    /// kept. Per model and per pipeline rates go in the config file's [request_log] table
    /// [default: 1].
    #[arg(long, env = "RECSERVE_REQUEST_LOG_SAMPLE_RATE")]
    pub request_log_sample_rate: Option<f64>,
    /// Window of the online metrics (CTR, conversion per deployment arm) and their comparisons,
    /// in minutes [default: 10].
    #[arg(long, env = "RECSERVE_ONLINE_WINDOW_MINS")]
    pub online_window_mins: Option<u64>,
    /// Share of requests whose model inputs feed the drift monitors (0–1): recommendations (the
    /// user tower's row, the shown items' ranker features and scores) and V2 inferences (rows of
    /// 2-D FP32 inputs) [default: 0.25].
    #[arg(long, env = "RECSERVE_DRIFT_SAMPLE_RATE")]
    pub drift_sample_rate: Option<f64>,
    /// Name of this replica in a fleet sharing a MySQL store: its log records, notifications
    /// and audit entries carry it, and it holds the alert-evaluator lease under it. Must be
    /// unique in the fleet (the pod name on Kubernetes) [default: <host name>-<process id>].
    #[arg(long, env = "RECSERVE_REPLICA")]
    pub replica: Option<String>,
    /// Who evaluates alert rules and sends notifications: "leader" is the one replica holding
    /// the store's evaluator lease (another takes over within --evaluator-lease-secs when it
    /// dies; automatic rollbacks happen once), "local" is this process whatever else shares
    /// the store, "off" leaves evaluation to a Prometheus and Alertmanager loaded with the
    /// exported rule file (`recserve rules default`; no automatic rollback then), "auto" is
    /// leader with a MySQL store and local with SQLite [default: auto].
    #[arg(long, env = "RECSERVE_ALERT_EVALUATION", value_parser = ["auto", "local", "leader", "off"])]
    pub alert_evaluation: Option<String>,
    /// Time to live of the alert-evaluator lease in seconds; the holder renews it every third
    /// of that [default: 10].
    #[arg(long, env = "RECSERVE_EVALUATOR_LEASE_SECS")]
    pub evaluator_lease_secs: Option<u64>,
    /// Milliseconds between reads of what other replicas changed in the shared store
    /// (deployments, silences, alerts) [default: 1000].
    #[arg(long, env = "RECSERVE_STATE_SYNC_MS")]
    pub state_sync_ms: Option<u64>,
    /// Prometheus that scrapes every replica: the dashboard's Fleet page reads per-replica and
    /// combined series from its query API through /api/v1/fleet/query_range [default: none].
    #[arg(long, env = "RECSERVE_PROMETHEUS_URL", value_name = "URL")]
    pub prometheus_url: Option<String>,
    /// Alert rule file in Prometheus's format (repeatable; added to the config file's
    /// alerting.rules). Reloaded when it changes, on SIGHUP and on POST /api/v1/rules/reload.
    /// Check one with `recserve rules check FILE`.
    #[arg(long = "rules", value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// Leave out the bundled rules for model serving (`recserve rules default` prints them).
    #[arg(long)]
    pub no_default_rules: bool,
    /// Webhook that receives notifications in Alertmanager's webhook format, version 4
    /// (repeatable).
    #[arg(long = "alert-webhook", value_name = "URL")]
    pub alert_webhooks: Vec<String>,
    /// Alertmanager to push alerts to through /api/v2/alerts (repeatable).
    #[arg(long = "alertmanager-url", value_name = "URL")]
    pub alertmanager_urls: Vec<String>,
    /// Seconds between evaluations of rule groups that set no interval [default: 15].
    #[arg(long, env = "RECSERVE_EVALUATION_INTERVAL_SECS")]
    pub evaluation_interval_secs: Option<u64>,
    /// When requests must carry `Authorization: Bearer <token>`: "auto" as soon as the store
    /// holds any token (create one with `recserve token create`), "required" always, "off"
    /// never. The Kubernetes probes /v2/health/live and /v2/health/ready are always open
    /// [default: auto].
    #[arg(long, env = "RECSERVE_AUTH", value_parser = ["auto", "required", "off"])]
    pub auth: Option<String>,
    /// Start even though requests would be unauthenticated on an address other than loopback
    /// (no token in the store yet, or --auth off). Without it such a start is refused.
    #[arg(long, env = "RECSERVE_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// PEM file with the server's certificate chain, leaf first. With --tls-key, the HTTP port
    /// serves HTTPS (HTTP/2 and HTTP/1.1) and the gRPC port gRPC over TLS. Both files are
    /// watched: a renewed certificate (or SIGHUP) is served to new connections within seconds,
    /// without a restart; a file that does not load keeps the previous certificate, logs an
    /// error and counts in recserve_tls_reloads_total{outcome="failed"} [default: no TLS].
    #[arg(long, env = "RECSERVE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8, RSA PKCS#1 or EC SEC1); needed
    /// with --tls-cert.
    #[arg(long, env = "RECSERVE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

/// `recserve rules`: alert rule files.
#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Check rule files: YAML, keys, durations, labels, templates, and that every expression is
    /// within recserve's PromQL subset. Prints `file:line:col: message` for each error and exits
    /// with status 1 when there is any.
    Check {
        /// Rule files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print the bundled rules for model serving (to load into Prometheus, or to edit).
    Default,
}

/// `recserve deploy`: talks to a running server's deployment API.
#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The server's HTTP address.
    #[arg(long, env = "RECSERVE_SERVER", default_value = "http://127.0.0.1:8000", global = true)]
    pub server: String,
    /// Bearer token sent to the server (an operator or admin token; needed once the server
    /// enforces authentication).
    #[arg(long, env = "RECSERVE_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: DeployCommand,
}

#[derive(Subcommand, Debug)]
pub enum DeployCommand {
    /// Show every model's deployment (or one model's): arms, traffic shares, versions.
    Status {
        /// Only this model.
        model: Option<String>,
    },
    /// Register a new version: upload an ONNX file (with its validation samples), or take a
    /// version directory already in the repository. It passes the validation gate and a latency
    /// check against the model's `latency_budget_ms`, then waits, loaded, for a canary or A/B.
    Register {
        model: String,
        /// The ONNX file to upload as the next version.
        #[arg(long, conflicts_with = "version", required_unless_present = "version")]
        file: Option<PathBuf>,
        /// Validation samples for the uploaded version (JSON, the format of validation.json).
        #[arg(long, requires = "file")]
        validation: Option<PathBuf>,
        /// The model's config.toml, for a model new to the repository (it applies to every
        /// version; a different one than the repository's is refused).
        #[arg(long, requires = "file")]
        config: Option<PathBuf>,
        /// A version already in the repository.
        #[arg(long)]
        version: Option<u64>,
        /// Requests of the latency check.
        #[arg(long, default_value_t = 50)]
        latency_requests: usize,
        /// Why (kept in the audit trail).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Send a share of the traffic (sticky per user) to a version as a canary.
    Canary {
        model: String,
        #[arg(long)]
        version: u64,
        /// Share of users, in percent (0–100, exclusive).
        #[arg(long)]
        percent: f64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Change the running canary's share of traffic.
    Percent {
        model: String,
        percent: f64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Split traffic between 2–4 named arms; the first is the control.
    Ab {
        model: String,
        /// An arm as NAME=VERSION:PERCENT, e.g. `control=3:50 treatment=4:50`.
        #[arg(long = "arm", required = true, num_args = 1..)]
        arms: Vec<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Make the canary (or the named A/B arm) the stable version.
    Promote {
        model: String,
        /// The A/B arm to promote.
        #[arg(long)]
        arm: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Send all traffic back to the stable (control) version; the others are retired.
    Rollback {
        model: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Settings of `recserve demo`: those of `serve`, plus the simulated shoppers.
#[derive(Args, Debug, Default, Clone)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Recommendation requests per second sent by the simulated shoppers (each followed by its
    /// impressions, clicks, add-to-carts and purchases as feedback); 0 turns them off.
    #[arg(long, env = "RECSERVE_DEMO_TRAFFIC_RATE", default_value_t = 20.0)]
    pub traffic_rate: f64,
    /// Seed of the simulated shoppers' choices.
    #[arg(long, env = "RECSERVE_DEMO_TRAFFIC_SEED", default_value_t = 7)]
    pub traffic_seed: u64,
    /// A scripted incident to watch on the dashboard: `bad-canary` (a worse ranker as a 50%
    /// canary, rolled back automatically when its click-through falls), `drift` (the shoppers'
    /// inputs shift away from the reference), `overload` (traffic at 25 times the rate).
    #[arg(long, env = "RECSERVE_DEMO_SCENARIO", value_enum)]
    pub scenario: Option<crate::demo::scenario::Scenario>,
    /// Seconds of normal traffic before the scenario starts.
    #[arg(long, env = "RECSERVE_DEMO_SCENARIO_DELAY_SECS", default_value_t = 60)]
    pub scenario_delay_secs: u64,
}

/// `recserve token`: where the store is, and what to do.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Directory of recserve's state, holding the SQLite store [default: ./recserve-data].
    #[arg(long, env = "RECSERVE_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// The store URL (mysql://… or sqlite://…), as for `serve` [default: SQLite in <data-dir>].
    #[arg(long, env = "RECSERVE_STORE", value_name = "URL", global = true)]
    pub store: Option<String>,
    /// `serve`'s config file: its data_dir and store are used unless given as flags.
    #[arg(long, env = "RECSERVE_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token and print its secret (on stdout, once: only its hash is stored).
    Create {
        /// Who or what holds it (the audit trail's actor is token:NAME).
        #[arg(long)]
        name: String,
        /// admin (tokens, configuration), operator (deploy, roll back, silence, reload),
        /// viewer (dashboard, queries, logs, read-only APIs) or inference (V2 infer,
        /// /v1/recommend, /v1/feedback, /v1/scenarios).
        #[arg(long)]
        role: String,
        /// Days until it stops working [default: never].
        #[arg(long)]
        expires_days: Option<u64>,
    },
    /// List every token: id, name, role, created, expires, last used, state.
    List,
    /// Revoke a token by its id (it is refused from the next refresh, within seconds).
    Revoke {
        /// The token's id (`recserve token list`).
        id: String,
    },
}

pub async fn bench(args: recserve_loadgen::BenchArgs) -> anyhow::Result<()> {
    recserve_loadgen::main(&args).await.map_err(|e| anyhow::anyhow!("{e}"))
}

#[derive(Subcommand, Debug)]
pub enum ShopCommand {
    /// Write the shop's catalog, shoppers and logged interactions as CSV files (items.csv,
    /// users.csv, interactions.csv) and meta.json, as examples/ecommerce/FORMAT.md describes.
    /// The same flags give byte-identical files on every machine.
    Export(ShopExportArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ShopExportArgs {
    /// Directory to write into; created if absent. The four files are replaced, anything else
    /// in it is left alone.
    #[arg(long, env = "RECSERVE_SHOP_OUT", value_name = "DIR")]
    pub out: PathBuf,
    /// Number of catalog items (1 to 1000000). The default shop is the bundled demo's.
    #[arg(long, env = "RECSERVE_SHOP_ITEMS", default_value_t = recserve_shop::ShopConfig::default().items)]
    pub items: usize,
    /// Number of shoppers (1 to 10000000).
    #[arg(long, env = "RECSERVE_SHOP_USERS", default_value_t = recserve_shop::ShopConfig::default().users)]
    pub users: usize,
    /// Seed of every random choice (catalog, shoppers, logs).
    #[arg(long, env = "RECSERVE_SHOP_SEED", default_value_t = recserve_shop::ShopConfig::default().seed)]
    pub seed: u64,
    /// Number of logged sessions (each one to six pages of 10 to 20 impressions).
    #[arg(long, env = "RECSERVE_SHOP_SESSIONS", default_value_t = recserve_shop::export::DEFAULT_SESSIONS)]
    pub sessions: usize,
}
