//! Transports of recserve: the Open Inference Protocol (KServe V2) over REST (axum) and gRPC
//! (tonic), the shop's recommendation API (`/v1/recommend`, `/v1/feedback`), and the one mapping of errors to HTTP statuses and gRPC codes. Handlers decode the
//! wire format, call the transport-neutral operations in [`inference`] and [`metadata`], and
//! encode the answer; they never reach into the serving layer's internals.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod dashboard;
pub mod deployments;
pub mod error;
pub mod experiments;
pub mod fleet;
pub mod grpc;
pub mod inference;
pub mod limits;
pub mod listen;
pub mod logs;
pub mod metadata;
pub mod observe;
pub mod request_log;
pub mod rest;
pub mod shop;
mod state;
pub mod tls;

pub use error::{ApiError, ErrorBody};
pub use listen::{serve, serve_tls};
pub use state::{AppState, AppStateData, Limits, ServerInfo};
