//! Tests of recserve-alerting, one binary with modules.
#![allow(clippy::unwrap_used)]

mod alertmanager;
mod eval;
mod notify;
mod rules;
mod silence;
mod takeover;
mod template;
mod webhook;

use std::sync::Arc;

use recserve_alerting::rules::parse_rules;
use recserve_alerting::{RuleFiles, RuleSource};
use recserve_telemetry::{LabelSet, SeriesStore, StoreConfig};

/// Base timestamp of synthetic series (unix ms).
pub const T: i64 = 1_700_000_000_000;

/// Builds a label set.
pub fn ls(pairs: &[(&str, &str)]) -> LabelSet {
    LabelSet::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

/// An empty in-memory store.
pub fn store() -> Arc<SeriesStore> {
    Arc::new(SeriesStore::new(StoreConfig::default()))
}

/// Rule files from YAML text (panics with the diagnostics when invalid).
pub fn rule_files(text: &str) -> RuleFiles {
    let groups = parse_rules("test.yml", text).unwrap_or_else(|d| panic!("{d:?}"));
    RuleFiles { files: vec!["test.yml".into()], groups }
}

/// An embedded rule source named `test.yml`.
pub fn embedded(text: &str) -> RuleSource {
    RuleSource::Embedded { name: "test.yml".into(), text: text.into() }
}

/// Appends a sample of `errors{model}` (the metric the eval and takeover rules watch).
pub fn set_errors(store: &SeriesStore, model: &str, t: i64, v: f64) {
    store.append(&[(ls(&[("__name__", "errors"), ("model", model)]), t, v)]);
}
