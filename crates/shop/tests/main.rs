//! Tests of the synthetic shop: determinism, the export's files, and the ground truth.

#![allow(clippy::unwrap_used)]
