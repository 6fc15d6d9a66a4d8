//! Integration tests of the transports against the committed fixture models: the V2 REST API
//! (JSON and binary), its errors, the repository extension, and gRPC.

#![allow(clippy::unwrap_used)]

mod alerts;
mod auth;
mod dashboard;
mod drift;
mod grpc;
mod limits;
mod logs;
mod observe;
mod recommend;
mod rest;
mod tls;
