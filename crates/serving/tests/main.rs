//! Integration tests of the serving layer: with scripted engines (no model files needed),
//! batching, admission control, abandoned requests, the registry's gate, version policy and
//! hot swaps; with the committed fixture models on tract, deployments and traffic split.

#![allow(clippy::unwrap_used)]

mod batching;
mod deployment;
mod fake;
mod registry;
