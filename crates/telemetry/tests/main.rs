//! Integration tests of recserve-telemetry, one binary with modules.
#![allow(clippy::unwrap_used)]

mod analysis;
mod api;
mod exposition;
mod percentiles;
mod promql;
mod serving;
mod store;

use recserve_telemetry::LabelSet;

/// Base timestamp of synthetic series (unix ms).
pub const T: i64 = 1_700_000_000_000;

/// Builds a label set.
pub fn ls(pairs: &[(&str, &str)]) -> LabelSet {
    LabelSet::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}
