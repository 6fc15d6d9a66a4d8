//! The telemetry crate's PromQL subset: parse, then evaluate as an instant query and as a
//! short range query over a small in-memory series store (counters with a reset, a classic
//! histogram, a gauge that goes stale), as the query API (`/api/v1/query`,
//! `/api/v1/query_range`) and the alert evaluator do.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use recserve_telemetry::labels::LabelSet;
use recserve_telemetry::promql::{instant_query, range_query};
use recserve_telemetry::store::{SeriesStore, StoreConfig, stale_nan};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const STEP: i64 = 15_000;
const POINTS: i64 = 120; // 30 minutes

fn store() -> &'static SeriesStore {
    static STORE: OnceLock<SeriesStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = SeriesStore::new(StoreConfig::default());
        let mut samples = Vec::new();
        for i in 0..POINTS {
            let t = T0 + i * STEP;
            for (model, version, rate) in [("ranker", "1", 3.0), ("ranker", "2", 1.0), ("user_tower", "1", 5.0)] {
                for (outcome, share) in [("ok", 0.95), ("error", 0.05)] {
                    // A counter that restarts halfway (a process restart).
                    let v = (if i < 60 { i } else { i - 60 }) as f64 * rate * share;
                    let labels = LabelSet::from_pairs([
                        ("__name__", "recserve_inference_requests_total"),
                        ("model", model),
                        ("version", version),
                        ("outcome", outcome),
                    ]);
                    samples.push((labels, t, v));
                }
                let mut cumulative = 0.0;
                for (le, share) in [("0.001", 0.1), ("0.005", 0.4), ("0.01", 0.3), ("0.1", 0.15), ("+Inf", 0.05)] {
                    cumulative += share * rate * i as f64;
                    let labels = LabelSet::from_pairs([
                        ("__name__", "recserve_request_duration_seconds_bucket"),
                        ("model", model),
                        ("version", version),
                        ("le", le),
                    ]);
                    samples.push((labels, t, cumulative));
                }
            }
            // A gauge that stops being scraped two thirds of the way in.
            let gauge = LabelSet::from_pairs([("__name__", "recserve_queue_depth"), ("model", "ranker")]);
            if i < 80 {
                samples.push((gauge, t, ((i * 7) % 11) as f64 - 3.0));
            } else if i == 80 {
                samples.push((gauge, t, stale_nan()));
            }
            let up = LabelSet::from_pairs([("__name__", "up"), ("job", "recserve"), ("instance", "a:9090")]);
            samples.push((up, t, if i % 17 == 0 { 0.0 } else { 1.0 }));
        }
        store.append(&samples);
        store
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let store = store();
    let end = T0 + (POINTS - 1) * STEP;
    let _ = instant_query(store, query, end);
    let _ = instant_query(store, query, T0 - 1);
    let _ = range_query(store, query, T0, end, 300_000);
});
