//! The gRPC side of [`super::Auth`]: a tower layer around the tonic server that reads the
//! `authorization` metadata and the method path of each call (which a plain tonic interceptor
//! does not see), refuses with `UNAUTHENTICATED` or `PERMISSION_DENIED`, and otherwise passes
//! the call on with its [`super::Identity`] in the request extensions.

use super::{Auth, grpc_access};
use axum::http::{self, header};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Wraps a gRPC service (or a tonic server's routes) with authentication.
#[derive(Clone)]
pub struct GrpcAuthLayer {
    auth: Arc<Auth>,
}

impl GrpcAuthLayer {
    pub fn new(auth: Arc<Auth>) -> GrpcAuthLayer {
        GrpcAuthLayer { auth }
    }
}

impl<S> tower::Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuth<S>;

    fn layer(&self, inner: S) -> GrpcAuth<S> {
        GrpcAuth { auth: self.auth.clone(), inner }
    }
}

/// The service [`GrpcAuthLayer`] makes.
#[derive(Clone)]
pub struct GrpcAuth<S> {
    auth: Arc<Auth>,
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for GrpcAuth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let access = grpc_access(request.uri().path());
        match self.auth.check(request.headers().get(header::AUTHORIZATION), access) {
            Ok(identity) => {
                if let Some(identity) = identity {
                    request.extensions_mut().insert(identity);
                }
                // The clone that was made ready serves this call (tower's usual swap).
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                Box::pin(ready.call(request))
            }
            Err(refusal) => {
                let what = format!("gRPC {}", request.uri().path());
                self.auth.refused(&refusal, &what, access);
                let status = tonic::Status::from(refusal.error(&what));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}
