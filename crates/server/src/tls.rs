//! TLS for both transports: the server's certificate and key, loaded from PEM files, served to
//! every handshake through a [`ResolvesServerCert`] that holds the current [`CertifiedKey`] in an
//! [`ArcSwap`], so a renewed certificate takes effect for new connections without a restart.
//!
//! [`CertResolver`] owns:
//! - loading: the certificate chain (PEM, leaf first) and the private key (PEM: PKCS#8, PKCS#1
//!   or SEC1), checked against each other; every error names the file and the problem;
//! - reloading: [`CertResolver::watch`] polls both files' size and modification time every few
//!   seconds and reloads when either changed (after a short settle, so a file caught mid-write
//!   is not read until it stops changing), and reloads on SIGHUP. Files are read on
//!   `spawn_blocking`, never on the runtime. A failed reload keeps the previous certificate,
//!   logs an error naming the file, and is counted;
//! - its metrics: `recserve_tls_reloads_total{outcome="ok|failed"}`,
//!   `recserve_tls_certificate_expiry_timestamp_seconds` (the leaf's notAfter) and
//!   `recserve_tls_handshake_failures_total{transport="http|grpc"}` (counted by
//!   [`crate::listen`], which performs the handshakes).
//!
//! Connections already open keep the certificate they were established with.

use arc_swap::ArcSwap;
use recserve_telemetry::Registry;
use recserve_telemetry::metrics::{Counter, CounterVec, Gauge};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use tracing::{error, info, warn};

/// How often [`CertResolver::watch`] looks at the files when the server runs it.
pub const RELOAD_POLL: Duration = Duration::from_secs(5);

/// Counter of certificate reloads, by outcome.
pub const RELOADS_METRIC: &str = "recserve_tls_reloads_total";
/// Gauge of the served certificate's notAfter, in Unix seconds.
pub const EXPIRY_METRIC: &str = "recserve_tls_certificate_expiry_timestamp_seconds";
/// Counter of TLS handshakes that failed or timed out, by transport.
pub const HANDSHAKE_FAILURES_METRIC: &str = "recserve_tls_handshake_failures_total";

/// ALPN protocols of the REST port.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];
/// ALPN protocols of the gRPC port.
pub const ALPN_GRPC: &[&[u8]] = &[b"h2"];

/// The PEM files the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
}

/// Why a certificate or key could not be loaded. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} file {}: {source}", path.display())]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("certificate file {} is not valid PEM: {detail}", path.display())]
    CertificatePem { path: PathBuf, detail: String },
    #[error("certificate file {} holds no certificate (expected a PEM `BEGIN CERTIFICATE` block)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("certificate file {} holds an invalid certificate: {detail}", path.display())]
    BadCertificate { path: PathBuf, detail: String },
    #[error(
        "key file {} holds no private key (expected a PEM `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` block): {detail}",
        path.display()
    )]
    NoKey { path: PathBuf, detail: String },
    #[error("key file {}: unsupported or invalid private key: {detail}", path.display())]
    UnsupportedKey { path: PathBuf, detail: String },
    #[error("key file {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("the certificate loader stopped: {0}")]
    Task(String),
}

impl TlsError {
    /// The file the error is about (the key file for a mismatch).
    pub fn path(&self) -> Option<&Path> {
        match self {
            TlsError::Read { path, .. }
            | TlsError::CertificatePem { path, .. }
            | TlsError::NoCertificate { path }
            | TlsError::BadCertificate { path, .. }
            | TlsError::NoKey { path, .. }
            | TlsError::UnsupportedKey { path, .. } => Some(path),
            TlsError::KeyMismatch { key, .. } => Some(key),
            TlsError::Task(_) => None,
        }
    }
}

/// The process's rustls crypto provider: the one already installed, else aws-lc-rs (the provider
/// the rest of the tree — reqwest, tonic — is built with), installed once.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            if CryptoProvider::get_default().is_none() {
                // Losing a race to another installer is fine: the default is then theirs.
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            }
            CryptoProvider::get_default()
                .cloned()
                .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        })
        .clone()
}

/// A certificate and key read from their files.
struct Loaded {
    key: Arc<CertifiedKey>,
    /// The leaf's notAfter, in Unix seconds, when it could be read.
    not_after: Option<i64>,
}

/// Reads and checks the certificate chain and key (blocking: call on `spawn_blocking`).
fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<Loaded, TlsError> {
    let cert_pem = std::fs::read(&files.cert).map_err(|source| TlsError::Read {
        what: "certificate",
        path: files.cert.clone(),
        source,
    })?;
    let key_pem =
        std::fs::read(&files.key).map_err(|source| TlsError::Read { what: "key", path: files.key.clone(), source })?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::CertificatePem { path: files.cert.clone(), detail: e.to_string() })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate { path: files.cert.clone() });
    };
    let not_after = not_after(leaf);
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsError::NoKey { path: files.key.clone(), detail: e.to_string() })?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::UnsupportedKey { path: files.key.clone(), detail: e.to_string() })?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        // A key that cannot tell its public half (rare) is not a mismatch.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch { cert: files.cert.clone(), key: files.key.clone() });
        }
        Err(e) => return Err(TlsError::BadCertificate { path: files.cert.clone(), detail: e.to_string() }),
    }
    Ok(Loaded { key: Arc::new(certified), not_after })
}

/// What a file looked like: its size and modification time (`None` when it cannot be read).
type FileStamp = Option<(u64, Option<SystemTime>)>;

/// Both files' stamps (blocking).
fn stamp(files: &TlsFiles) -> (FileStamp, FileStamp) {
    let of = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.len(), m.modified().ok()));
    (of(&files.cert), of(&files.key))
}

/// The resolver's metric handles (absent without a registry, or when the names are taken).
#[derive(Default)]
struct TlsMetrics {
    reload_ok: Option<Counter>,
    reload_failed: Option<Counter>,
    expiry: Option<Gauge>,
    handshake_failures: Option<CounterVec>,
}

impl TlsMetrics {
    fn register(registry: &Registry) -> TlsMetrics {
        fn warn_on<T>(name: &str, r: Result<T, recserve_telemetry::MetricsError>) -> Option<T> {
            r.map_err(|err| warn!(%err, "cannot register {name}")).ok()
        }
        let reloads = warn_on(
            RELOADS_METRIC,
            registry.counter_vec(RELOADS_METRIC, "Reloads of the TLS certificate and key, by outcome.", &["outcome"]),
        );
        let child = |outcome: &str| reloads.as_ref().and_then(|r| warn_on(RELOADS_METRIC, r.with(&[outcome])));
        TlsMetrics {
            reload_ok: child("ok"),
            reload_failed: child("failed"),
            expiry: warn_on(
                EXPIRY_METRIC,
                registry
                    .gauge(EXPIRY_METRIC, "When the served TLS certificate expires (its notAfter), in Unix seconds."),
            ),
            handshake_failures: warn_on(
                HANDSHAKE_FAILURES_METRIC,
                registry.counter_vec(
                    HANDSHAKE_FAILURES_METRIC,
                    "TLS handshakes that failed or timed out, by transport.",
                    &["transport"],
                ),
            ),
        }
    }
}

/// The server's certificate, swapped in place on reload; give it to [`CertResolver::server_config`]
/// and run [`CertResolver::watch`].
pub struct CertResolver {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// The files' stamps when they were last read (successfully or not).
    seen: Mutex<(FileStamp, FileStamp)>,
    metrics: TlsMetrics,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver").field("files", &self.files).finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl CertResolver {
    /// Loads the certificate and key (on `spawn_blocking`); its metrics go to `registry` when
    /// given.
    pub async fn load(files: TlsFiles, registry: Option<&Registry>) -> Result<Arc<CertResolver>, TlsError> {
        let provider = crypto_provider();
        let (seen, loaded) = {
            let (files, provider) = (files.clone(), provider.clone());
            tokio::task::spawn_blocking(move || (stamp(&files), load(&files, &provider)))
                .await
                .map_err(|e| TlsError::Task(e.to_string()))?
        };
        let loaded = loaded?;
        let metrics = registry.map(TlsMetrics::register).unwrap_or_default();
        if let (Some(gauge), Some(t)) = (&metrics.expiry, loaded.not_after) {
            gauge.set(t as f64);
        }
        Ok(Arc::new(CertResolver {
            files,
            provider,
            current: ArcSwap::new(loaded.key),
            seen: Mutex::new(seen),
            metrics,
        }))
    }

    /// The files it reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The certificate chain and key served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// A rustls server configuration (TLS 1.2 and 1.3, no client certificates) taking its
    /// certificate from this resolver, offering `alpn` ([`ALPN_HTTP`], [`ALPN_GRPC`]).
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, rustls::Error> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// Counts a failed or timed-out handshake on `transport` ("http" or "grpc").
    pub fn count_handshake_failure(&self, transport: &str) {
        if let Some(c) = self.metrics.handshake_failures.as_ref().and_then(|v| v.with(&[transport]).ok()) {
            c.inc();
        }
    }

    /// Reads both files again and serves them from the next handshake on. On failure the
    /// previous certificate stays, and the error is logged (naming the file) and counted.
    pub async fn reload(&self) -> Result<(), TlsError> {
        let (files, provider) = (self.files.clone(), self.provider.clone());
        let read = tokio::task::spawn_blocking(move || (stamp(&files), load(&files, &provider))).await;
        let result = match read {
            Ok((seen, loaded)) => {
                *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = seen;
                loaded
            }
            Err(e) => Err(TlsError::Task(e.to_string())),
        };
        match result {
            Ok(loaded) => {
                self.current.store(loaded.key);
                if let (Some(gauge), Some(t)) = (&self.metrics.expiry, loaded.not_after) {
                    gauge.set(t as f64);
                }
                if let Some(c) = &self.metrics.reload_ok {
                    c.inc();
                }
                info!(
                    cert = %self.files.cert.display(),
                    key = %self.files.key.display(),
                    not_after = loaded.not_after,
                    "TLS certificate reloaded"
                );
                Ok(())
            }
            Err(e) => {
                if let Some(c) = &self.metrics.reload_failed {
                    c.inc();
                }
                error!(
                    file = %e.path().map(|p| p.display().to_string()).unwrap_or_default(),
                    error = %e,
                    "TLS certificate reload failed; still serving the previous certificate"
                );
                Err(e)
            }
        }
    }

    /// Reloads when either file's size or modification time differs from the last read, and has
    /// stayed the same for `settle` (a file being written is left for the next look). Returns
    /// `None` when nothing was reloaded.
    pub async fn reload_if_changed(&self, settle: Duration) -> Option<Result<(), TlsError>> {
        let look = || {
            let files = self.files.clone();
            async move { tokio::task::spawn_blocking(move || stamp(&files)).await.ok() }
        };
        let now = look().await?;
        if now == *self.seen.lock().unwrap_or_else(|e| e.into_inner()) {
            return None;
        }
        tokio::time::sleep(settle).await;
        if look().await? != now {
            return None;
        }
        Some(self.reload().await)
    }

    /// Looks at the files every `poll` (reloading changed ones) and reloads on SIGHUP, until
    /// `stop` resolves.
    pub fn watch(
        self: &Arc<Self>,
        poll: Duration,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let settle = (poll / 4).min(Duration::from_millis(500));
        tokio::spawn(async move {
            let mut hangup = hangup_signal();
            let mut ticks = tokio::time::interval(poll);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = ticks.tick() => {
                        let _ = this.reload_if_changed(settle).await;
                    }
                    _ = next_hangup(&mut hangup) => {
                        info!("SIGHUP: reloading the TLS certificate");
                        let _ = this.reload().await;
                    }
                }
            }
        })
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(
                |e| warn!(error = %e, "cannot listen for SIGHUP; the TLS certificate reloads when its files change"),
            )
            .ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

async fn next_hangup(signal: &mut Hangup) {
    #[cfg(unix)]
    if let Some(s) = signal {
        if s.recv().await.is_some() {
            return;
        }
        *signal = None;
    }
    #[cfg(not(unix))]
    let _ = signal;
    std::future::pending::<()>().await
}

/// The certificate's notAfter in Unix seconds (`None` when it does not parse as X.509).
fn not_after(cert: &[u8]) -> Option<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_after_is_the_leafs_expiry() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2040, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(not_after(cert.der()), Some(2_208_988_800));
        assert_eq!(not_after(b"not a certificate"), None);
    }
}
