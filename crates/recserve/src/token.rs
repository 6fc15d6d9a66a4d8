//! `recserve token create | list | revoke`: API tokens, managed on the store directly (SQLite in
//! the data directory, or the MySQL of `--store`), found the way `serve` finds it: flags and
//! environment, then `data_dir` and `store` in the `--config` file, then the defaults. This is
//! how the first admin token is made, before any server runs; a running server re-reads the
//! tokens every few seconds. The secret is printed once, alone on stdout (so
//! `TOKEN=$(recserve token create …)` works); everything else goes to stderr.
//!
//! [`server_auth`] is `serve`'s (and `demo`'s) start-up policy: authentication is set up over
//! the store's tokens, and a server that would answer unauthenticated requests on an address
//! other than loopback refuses to start unless `--allow-unauthenticated` says so.

use crate::cli::{TokenArgs, TokenCommand};
use anyhow::{Context, bail};
use recserve_alerting::time::rfc3339;
use recserve_server::auth::Role;
use recserve_server::auth::api::expires_at;
use recserve_server::auth::{Auth, AuthMode};
use recserve_store::{Retention, Store, StoreConfig, TokenRecord};
use recserve_telemetry::metrics::Registry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let config = store_config(&args)?;
    let store = Store::open(&config).await.context("cannot open the store")?;
    let result = match args.command {
        TokenCommand::Create { name, role, expires_days } => create(&store, &name, &role, expires_days).await,
        TokenCommand::List => list(&store).await,
        TokenCommand::Revoke { id } => revoke(&store, &id).await,
    };
    store.close().await;
    result
}

/// The store `serve` would open with the same flags, environment and config file.
fn store_config(args: &TokenArgs) -> anyhow::Result<StoreConfig> {
    let file = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
            toml::from_str::<toml::Table>(&text).with_context(|| format!("invalid config file {}", path.display()))?
        }
        None => toml::Table::new(),
    };
    let text = |key: &str| file.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let data_dir: PathBuf =
        args.data_dir.clone().or_else(|| text("data_dir").map(PathBuf::from)).unwrap_or_else(|| "recserve-data".into());
    Ok(StoreConfig { url: args.store.clone().or_else(|| text("store")), data_dir, retention: Retention::default() })
}

async fn create(store: &Store, name: &str, role: &str, expires_days: Option<u64>) -> anyhow::Result<()> {
    let role: Role = role.parse().map_err(|e: String| anyhow::anyhow!("--role: {e}"))?;
    let expires_ms = expires_at(expires_days).map_err(|e| anyhow::anyhow!("--expires-days {e}"))?;
    let token = store.create_token(name, role.as_str(), expires_ms).await.context("cannot create the token")?;
    let r = &token.record;
    eprintln!(
        "created token {} named {:?} with role {} (expires {}) in {}",
        r.id,
        r.name,
        r.role,
        r.expires_ms.map(rfc3339).unwrap_or_else(|| "never".into()),
        store.describe()
    );
    eprintln!("the secret follows; it is not stored and will not be shown again:");
    println!("{}", token.secret);
    Ok(())
}

async fn list(store: &Store) -> anyhow::Result<()> {
    let tokens = store.list_tokens().await.context("cannot read the tokens")?;
    if tokens.is_empty() {
        eprintln!("no tokens in {} (authentication is off on loopback until one exists)", store.describe());
        return Ok(());
    }
    println!("{:<21} {:<24} {:<9} {:<24} {:<24} {:<24} state", "id", "name", "role", "created", "expires", "last used");
    let now = recserve_alerting::time::now_ms();
    for t in &tokens {
        println!("{}", row(t, now));
    }
    Ok(())
}

fn row(t: &TokenRecord, now: i64) -> String {
    let time = |ms: Option<i64>, none: &str| ms.map(rfc3339).unwrap_or_else(|| none.to_string());
    let state = match (t.revoked_ms, t.expires_ms) {
        (Some(at), _) => format!("revoked {}", rfc3339(at)),
        (None, Some(e)) if e <= now => "expired".to_string(),
        _ => "active".to_string(),
    };
    format!(
        "{:<21} {:<24} {:<9} {:<24} {:<24} {:<24} {state}",
        t.id,
        t.name,
        t.role,
        rfc3339(t.created_ms),
        time(t.expires_ms, "never"),
        time(t.last_used_ms, "never")
    )
}

async fn revoke(store: &Store, id: &str) -> anyhow::Result<()> {
    match store.revoke_token(id).await.context("cannot revoke the token")? {
        Some(t) => {
            eprintln!(
                "revoked token {} named {:?} (role {}); running servers refuse it within seconds",
                t.id, t.name, t.role
            );
            Ok(())
        }
        None => bail!("no token with id {id:?} in {} (`recserve token list` shows them)", store.describe()),
    }
}

/// Sets up authentication for a server listening on `addrs` (see the module docs). Warns on
/// stderr when it serves unauthenticated.
pub async fn server_auth(
    settings: &crate::serve::Settings,
    store: &Store,
    registry: &Registry,
    addrs: &[SocketAddr],
) -> anyhow::Result<Arc<Auth>> {
    let auth = Auth::new(settings.auth, Some(store.clone()), Some(registry));
    let tokens = auth.reload().await.context("cannot read the API tokens from the store")?;
    if auth.enforcing() {
        tracing::info!(mode = settings.auth.as_str(), tokens, "authentication enforced: requests need a bearer token");
        return Ok(auth);
    }
    let exposed: Vec<String> = addrs.iter().filter(|a| !a.ip().is_loopback()).map(ToString::to_string).collect();
    let why = if settings.auth == AuthMode::Off { "--auth off was given" } else { "the store holds no API token" };
    if !exposed.is_empty() && !settings.allow_unauthenticated {
        bail!(
            "refusing to serve without authentication on {} (not a loopback address): {why}. \
             Create an admin token first (`recserve token create --name admin --role admin`, with the same \
             --data-dir or --store), or pass --allow-unauthenticated to serve openly anyway",
            exposed.join(", ")
        );
    }
    tracing::warn!(reason = why, "authentication is off: every request is allowed");
    eprintln!(
        "recserve: WARNING: authentication is off ({why}); anyone who can reach {} may use every API. \
         `recserve token create --name admin --role admin` turns it on.",
        addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and ")
    );
    Ok(auth)
}
