//! TLS on both transports, end to end on loopback: a CA and server certificates generated with
//! rcgen into a temp dir; HTTPS (reqwest trusting only that CA) and gRPC over TLS (tonic); ALPN;
//! plain HTTP on the HTTPS port answered with a 400 while the server keeps serving; a client that
//! never finishes its handshake does not hold up others; the certificate replaced on disk and
//! served to new connections without a restart; a garbage file keeping the old certificate, with
//! the failure logged and counted; start-up errors naming the file and the problem.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber};
use recserve_server::grpc::GrpcInferenceServiceClient;
use recserve_server::grpc::proto::ServerLiveRequest;
use recserve_server::tls::{CertResolver, TlsError, TlsFiles};
use recserve_server::{AppState, serve_tls};
use recserve_testkit::{loaded_registry, repository_with};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// A test CA that signs server certificates for `localhost` and 127.0.0.1.
struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and its key, as PEM and the leaf's DER.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "recserve test CA");
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        Pki { ca_pem: ca.pem(), issuer: Issuer::new(params, key) }
    }

    /// A leaf named `cn` with `serial`, valid until 1 January of `until`.
    fn leaf(&self, cn: &str, serial: u64, until: i32) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().clone() }
    }
}

/// Unix seconds of 1 January `year`, 00:00 UTC.
fn new_year(year: i32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(year, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp()
}

/// Writes `contents` to `path` through a rename, as certificate managers do.
fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Both transports with TLS over the `mlp` fixture, reloading every 200 ms.
struct Server {
    http: SocketAddr,
    grpc: SocketAddr,
    files: TlsFiles,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(leaf: &Leaf) -> Server {
    let repo = repository_with(&["mlp"]);
    let certs = tempfile::tempdir().unwrap();
    let files = TlsFiles { cert: certs.path().join("cert.pem"), key: certs.path().join("key.pem") };
    std::fs::write(&files.cert, &leaf.cert_pem).unwrap();
    std::fs::write(&files.key, &leaf.key_pem).unwrap();
    let state = AppState::new(loaded_registry(repo.path()).await);
    let registry = state.telemetry.as_ref().map(|t| t.registry.clone());
    let resolver = CertResolver::load(files.clone(), registry.as_deref()).await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (h, g) = (http.local_addr().unwrap(), grpc.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stopped = futures::future::FutureExt::shared(async move {
        let _ = rx.await;
    });
    resolver.watch(Duration::from_millis(200), stopped.clone());
    tokio::spawn(serve_tls(state, http, grpc, Some(resolver), stopped));
    Server { http: h, grpc: g, files, stop: Some(tx), _dirs: (repo, certs) }
}

fn https_client(pki: &Pki) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

/// A rustls client trusting only the test CA, offering `alpn`.
fn connector(pki: &Pki, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(recserve_server::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// The leaf certificate and ALPN protocol a fresh connection to `addr` gets.
async fn handshake(pki: &Pki, addr: SocketAddr, alpn: &[&[u8]]) -> (CertificateDer<'static>, Option<Vec<u8>>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls =
        connector(pki, alpn).connect(ServerName::try_from("localhost").unwrap(), tcp).await.expect("TLS handshake");
    let (_, conn) = tls.get_ref();
    let leaf = conn.peer_certificates().expect("a certificate")[0].clone().into_owned();
    (leaf, conn.alpn_protocol().map(|p| p.to_vec()))
}

/// `GET /v2/health/ready` over HTTPS.
async fn ready(pki: &Pki, server: &Server) -> reqwest::Response {
    let url = format!("https://127.0.0.1:{}/v2/health/ready", server.http.port());
    https_client(pki).get(url).send().await.unwrap()
}

/// gRPC `ServerLive` over TLS on a new channel.
async fn live(pki: &Pki, server: &Server) -> bool {
    let mut client = grpc_client(pki, server.grpc).await.unwrap();
    client.server_live(ServerLiveRequest {}).await.unwrap().into_inner().live
}

async fn metrics(pki: &Pki, server: &Server) -> String {
    let url = format!("https://127.0.0.1:{}/metrics", server.http.port());
    https_client(pki).get(url).send().await.unwrap().text().await.unwrap()
}

/// The value of the sample `series` (name and labels as exposed) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn grpc_client(
    pki: &Pki,
    addr: SocketAddr,
) -> Result<GrpcInferenceServiceClient<tonic::transport::Channel>, String> {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig};
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca_pem)).domain_name("localhost");
    let channel = Channel::from_shared(format!("https://127.0.0.1:{}", addr.port()))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(GrpcInferenceServiceClient::new(channel))
}

#[tokio::test]
async fn https_and_grpc_over_tls_with_alpn() {
    let pki = Pki::new();
    let leaf = pki.leaf("recserve one", 1, 2040);
    let server = start(&leaf).await;

    let ready = ready(&pki, &server).await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.version(), reqwest::Version::HTTP_2, "ALPN picks h2 on the REST port");
    let http1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()])
        .http1_only()
        .resolve("localhost", server.http)
        .build()
        .unwrap()
        .get(format!("https://localhost:{}/v2/health/live", server.http.port()))
        .send()
        .await;
    let http1 = http1.unwrap();
    assert_eq!((http1.status().as_u16(), http1.version()), (200, reqwest::Version::HTTP_11));

    assert!(live(&pki, &server).await);

    let (cert, alpn) = handshake(&pki, server.http, &[b"http/1.1"]).await;
    assert_eq!(cert, leaf.der);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (cert, alpn) = handshake(&pki, server.grpc, &[b"h2", b"http/1.1"]).await;
    assert_eq!(cert, leaf.der);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "the gRPC port speaks h2 only");

    let text = metrics(&pki, &server).await;
    assert_eq!(
        sample(&text, "recserve_tls_certificate_expiry_timestamp_seconds"),
        Some(new_year(2040) as f64),
        "{text}"
    );
    assert_eq!(sample(&text, r#"recserve_tls_reloads_total{outcome="failed"}"#), Some(0.0));
}

#[tokio::test]
async fn plain_and_stalled_clients_fail_cleanly_and_the_server_keeps_serving() {
    let pki = Pki::new();
    let server = start(&pki.leaf("recserve", 1, 2040)).await;

    // A client that connects and never sends its ClientHello holds a handshake slot, not the
    // accept loop.
    let _stalled = tokio::net::TcpStream::connect(server.http).await.unwrap();
    let _stalled_grpc = tokio::net::TcpStream::connect(server.grpc).await.unwrap();

    let mut plain = tokio::net::TcpStream::connect(server.http).await.unwrap();
    plain.write_all(b"GET /v2/health/ready HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(5), plain.read_to_string(&mut reply)).await.unwrap().unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("https://"), "{reply}");

    let e = reqwest::get(format!("http://127.0.0.1:{}/v2/health/ready", server.grpc.port())).await;
    assert!(e.is_err() || !e.unwrap().status().is_success(), "plain HTTP on the gRPC TLS port fails");
    let plain_grpc = GrpcInferenceServiceClient::connect(format!("http://127.0.0.1:{}", server.grpc.port())).await;
    if let Ok(mut c) = plain_grpc {
        assert!(c.server_live(ServerLiveRequest {}).await.is_err(), "plaintext gRPC on the TLS port fails");
    }

    let ready = ready(&pki, &server).await;
    assert_eq!(ready.status(), 200);
    assert!(live(&pki, &server).await);
    let text = metrics(&pki, &server).await;
    assert!(sample(&text, r#"recserve_tls_handshake_failures_total{transport="http"}"#) >= Some(1.0), "{text}");
    assert!(sample(&text, r#"recserve_tls_handshake_failures_total{transport="grpc"}"#) >= Some(1.0), "{text}");
}

/// Log lines written while the guard lives (this test's runtime is on its thread).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_replaced_certificate_is_served_without_restart_and_a_bad_one_is_refused() {
    let logs = Captured::default();
    let writer = logs.clone();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish(),
    );
    let pki = Pki::new();
    let first = pki.leaf("recserve one", 1, 2040);
    let server = start(&first).await;
    assert_eq!(handshake(&pki, server.http, &[b"h2"]).await.0, first.der);
    let mut grpc = grpc_client(&pki, server.grpc).await.unwrap();

    // A renewed certificate: key first, then the certificate, each through a rename.
    let second = pki.leaf("recserve two", 2, 2041);
    replace(&server.files.key, &second.key_pem);
    replace(&server.files.cert, &second.cert_pem);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (http_cert, _) = handshake(&pki, server.http, &[b"h2"]).await;
        let (grpc_cert, _) = handshake(&pki, server.grpc, &[b"h2"]).await;
        if http_cert == second.der && grpc_cert == second.der {
            break;
        }
        assert!(Instant::now() < deadline, "the new certificate is not served within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(grpc.server_live(ServerLiveRequest {}).await.unwrap().into_inner().live, "open connections go on");
    let text = metrics(&pki, &server).await;
    assert!(sample(&text, r#"recserve_tls_reloads_total{outcome="ok"}"#) >= Some(1.0), "{text}");
    assert_eq!(sample(&text, "recserve_tls_certificate_expiry_timestamp_seconds"), Some(new_year(2041) as f64));
    let failed_before = sample(&text, r#"recserve_tls_reloads_total{outcome="failed"}"#).unwrap();

    // A garbage certificate (say, a half-written file): refused, the previous one stays.
    std::fs::write(&server.files.cert, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = metrics(&pki, &server).await;
        if sample(&text, r#"recserve_tls_reloads_total{outcome="failed"}"#) > Some(failed_before) {
            break;
        }
        assert!(Instant::now() < deadline, "the failed reload is not counted within 5 s: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(handshake(&pki, server.http, &[b"h2"]).await.0, second.der, "the previous certificate stays");
    assert_eq!(handshake(&pki, server.grpc, &[b"h2"]).await.0, second.der);
    let ready = ready(&pki, &server).await;
    assert_eq!(ready.status(), 200);
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line =
        logged.lines().find(|l| l.contains("TLS certificate reload failed")).unwrap_or_else(|| panic!("{logged}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains(&server.files.cert.display().to_string()), "{line}");

    // Fixed again: served.
    let third = pki.leaf("recserve three", 3, 2042);
    replace(&server.files.key, &third.key_pem);
    replace(&server.files.cert, &third.cert_pem);
    let deadline = Instant::now() + Duration::from_secs(5);
    while handshake(&pki, server.http, &[b"h2"]).await.0 != third.der {
        assert!(Instant::now() < deadline, "the fixed certificate is not served within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn start_up_errors_name_the_file_and_the_problem() {
    let pki = Pki::new();
    let leaf = pki.leaf("recserve", 1, 2040);
    let other = pki.leaf("other", 2, 2040);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let files = TlsFiles { cert: cert.clone(), key: key.clone() };
    let load = |files: TlsFiles| async move { CertResolver::load(files, None).await.map(|_| ()).unwrap_err() };

    let e = load(files.clone()).await;
    assert!(matches!(e, TlsError::Read { what: "certificate", .. }), "{e}");
    assert!(e.to_string().contains(&cert.display().to_string()), "{e}");

    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    let e = load(files.clone()).await;
    assert!(matches!(e, TlsError::Read { what: "key", .. }), "{e}");
    assert!(e.to_string().contains(&key.display().to_string()), "{e}");

    std::fs::write(&key, "just some text\n").unwrap();
    let e = load(files.clone()).await;
    assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
    assert!(e.to_string().contains("holds no private key"), "{e}");

    std::fs::write(&key, &other.key_pem).unwrap();
    let e = load(files.clone()).await;
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("does not match the certificate"), "{e}");

    std::fs::write(&cert, &leaf.key_pem).unwrap();
    let e = load(files.clone()).await;
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
    assert!(e.to_string().contains(&cert.display().to_string()), "{e}");

    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    let e = load(files.clone()).await;
    assert!(matches!(e, TlsError::BadCertificate { .. } | TlsError::CertificatePem { .. }), "{e}");

    // A key the provider does not support (an Ed448-less PKCS#8 blob of the wrong algorithm).
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n").unwrap();
    let e = load(files).await;
    assert!(matches!(e, TlsError::UnsupportedKey { .. }), "{e}");
    assert!(e.to_string().contains(&key.display().to_string()), "{e}");
}
