//! Integration tests of recserve-pipeline (one test binary, modules per area).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod pipeline;
mod requests;
mod retrieval;
mod tables;
mod text;
mod transforms;
mod vectors;
