//! Runs the REST and gRPC transports on listeners the caller bound, until a shutdown future
//! resolves; in-flight requests finish before the returned future completes. Both transports
//! authenticate through [`crate::auth`].
//!
//! With TLS ([`serve_tls`]), each port has its own accept loop: it accepts TCP connections and
//! runs every handshake in a task of its own, under [`HANDSHAKE_TIMEOUT`], so a slow or broken
//! client never holds up the next accept; finished handshakes are handed to axum (through
//! [`axum::serve::Listener`]) and to tonic (as its incoming stream). The certificate comes from
//! a [`crate::tls::CertResolver`] at every handshake, which is what lets it be replaced without a
//! restart (tonic's own `ServerTlsConfig` cannot). A plain-HTTP request on the HTTPS port gets a
//! `400` saying so; anything else that is not TLS is closed and counted.

use crate::AppState;
use crate::tls::{ALPN_GRPC, ALPN_HTTP, CertResolver};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress per port; accepting waits while this many are.
const MAX_HANDSHAKES: usize = 1024;

/// Errors of a transport task.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error("gRPC server failed: {0}")]
    Grpc(tonic::transport::Error),
    #[error("TLS configuration failed: {0}")]
    Tls(rustls::Error),
}

/// Serves HTTP on `http` and gRPC on `grpc` until `shutdown` resolves, then drains.
pub async fn serve(
    state: AppState,
    http: TcpListener,
    grpc: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ListenError> {
    serve_tls(state, http, grpc, None, shutdown).await
}

/// As [`serve`]; with `tls`, HTTPS on `http` and gRPC over TLS on `grpc`, the certificate taken
/// from `tls` at each handshake (run [`CertResolver::watch`] to reload it).
pub async fn serve_tls(
    state: AppState,
    http: TcpListener,
    grpc: TcpListener,
    tls: Option<Arc<CertResolver>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ListenError> {
    let router = crate::rest::router(state.clone());
    let grpc_auth = crate::auth::GrpcAuthLayer::new(state.auth.clone());
    let grpc_service = crate::grpc::service(state);
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let grpc_server = tonic::transport::Server::builder().layer(grpc_auth).add_service(grpc_service);
    let (h, g) = match tls {
        None => {
            let http_task = axum::serve(http, router.into_make_service_with_connect_info::<PeerAddr>())
                .with_graceful_shutdown(wait(rx.clone()));
            let grpc_task = grpc_server
                .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(grpc), wait(rx));
            tokio::join!(http_task.into_future(), grpc_task)
        }
        Some(tls) => {
            let http_config = tls.server_config(ALPN_HTTP).map_err(ListenError::Tls)?;
            let grpc_config = tls.server_config(ALPN_GRPC).map_err(ListenError::Tls)?;
            let http = TlsListener::spawn(http, http_config, Transport::Http, tls.clone(), rx.clone())
                .map_err(ListenError::Http)?;
            let grpc =
                TlsListener::spawn(grpc, grpc_config, Transport::Grpc, tls, rx.clone()).map_err(ListenError::Http)?;
            let http_task = axum::serve(http, router.into_make_service_with_connect_info::<PeerAddr>())
                .with_graceful_shutdown(wait(rx.clone()));
            let grpc_task = grpc_server.serve_with_incoming_shutdown(grpc.into_stream(), wait(rx));
            tokio::join!(http_task.into_future(), grpc_task)
        }
    };
    h.map_err(ListenError::Http)?;
    g.map_err(ListenError::Grpc)?;
    Ok(())
}

/// Which port a TLS listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Http,
    Grpc,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Grpc => "grpc",
        }
    }
}

/// A TLS connection whose handshake is done.
pub struct TlsConnection {
    stream: TlsStream<TcpStream>,
    remote: SocketAddr,
}

impl TlsConnection {
    /// The client's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.get_ref().0.connect_info()
    }
}

/// The peer address of a REST connection, plain or TLS, in each request's extensions as
/// `ConnectInfo<PeerAddr>` (the per-client limits of [`crate::limits`] read it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>> for PeerAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for PeerAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// Connections whose TLS handshake finished, from a port's accept loop.
pub struct TlsListener {
    ready: mpsc::Receiver<TlsConnection>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts the accept loop of `listener`; it stops when `stop` turns true.
    fn spawn(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        transport: Transport,
        resolver: Arc<CertResolver>,
        stop: watch::Receiver<bool>,
    ) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), transport, resolver, tx, stop));
        Ok(TlsListener { ready, local })
    }

    fn into_stream(self) -> impl futures::Stream<Item = Result<TlsConnection, io::Error>> + Send + 'static {
        futures::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(self.ready), Ok)
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => {
                let remote = conn.remote;
                (conn, remote)
            }
            // The accept loop stopped (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Accepts TCP connections and hands each to a handshake task, until `stop`.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    transport: Transport,
    resolver: Arc<CertResolver>,
    ready: mpsc::Sender<TlsConnection>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (tcp, remote) = tokio::select! {
            _ = stopped(&mut stop) => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let (acceptor, resolver, ready) = (acceptor.clone(), resolver.clone(), ready.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&acceptor, tcp, transport)).await {
                Ok(Ok(stream)) => {
                    let _ = ready.send(TlsConnection { stream, remote }).await;
                }
                Ok(Err(e)) => {
                    debug!(%remote, transport = transport.label(), error = %e, "TLS handshake failed");
                    resolver.count_handshake_failure(transport.label());
                }
                Err(_) => {
                    debug!(%remote, transport = transport.label(), "TLS handshake timed out");
                    resolver.count_handshake_failure(transport.label());
                }
            }
        });
    }
}

/// The TLS handshake; a plain HTTP/1 request on the HTTPS port is answered with a 400 first.
async fn handshake(
    acceptor: &TlsAcceptor,
    mut tcp: TcpStream,
    transport: Transport,
) -> io::Result<TlsStream<TcpStream>> {
    /// The first byte of a TLS handshake record.
    const TLS_HANDSHAKE: u8 = 0x16;
    let mut first = [0u8; 1];
    let n = tcp.peek(&mut first).await?;
    if n == 1 && first[0] != TLS_HANDSHAKE {
        if transport == Transport::Http && first[0].is_ascii_uppercase() {
            let body = "this port serves HTTPS: use https://\n";
            let reply = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(reply.as_bytes()).await;
            let _ = tcp.shutdown().await;
        }
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a TLS connection"));
    }
    acceptor.accept(tcp).await
}

/// Resolves when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// As axum's listener: errors of one connection are skipped; others (out of file descriptors)
/// are logged and accepting pauses for a second.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    warn!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
