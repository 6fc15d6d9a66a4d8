//! Runs the REST and gRPC transports on listeners the caller bound, until a shutdown future
//! resolves; in-flight requests finish before the returned future completes. Both transports
//! authenticate through [`crate::auth`].

use crate::AppState;
use std::future::Future;
use tokio::net::TcpListener;

/// Errors of a transport task.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error("gRPC server failed: {0}")]
    Grpc(tonic::transport::Error),
}

/// Serves HTTP on `http` and gRPC on `grpc` until `shutdown` resolves, then drains.
pub async fn serve(
    state: AppState,
    http: TcpListener,
    grpc: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ListenError> {
    let router = crate::rest::router(state.clone());
    let grpc_auth = crate::auth::GrpcAuthLayer::new(state.auth.clone());
    let grpc_service = crate::grpc::service(state);
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let http_task = axum::serve(http, router).with_graceful_shutdown(wait(rx.clone()));
    let grpc_task = tonic::transport::Server::builder()
        .layer(grpc_auth)
        .add_service(grpc_service)
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(grpc), wait(rx));
    let (h, g) = tokio::join!(http_task, grpc_task);
    h.map_err(ListenError::Http)?;
    g.map_err(ListenError::Grpc)?;
    Ok(())
}
