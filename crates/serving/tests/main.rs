//! Integration tests of the serving layer with scripted engines (no model files needed):
//! batching, admission control, abandoned requests, the registry's gate, version policy and
//! hot swaps.

#![allow(clippy::unwrap_used)]

mod batching;
mod fake;
mod registry;
