//! Exact percentiles from the hdrhistogram window beside the bucket estimate of the same data.

use std::time::Duration;

use recserve_telemetry::percentiles::percentiles;
use recserve_telemetry::{Outcome, Registry, SeriesStore, ServingMetrics, ServingMetricsConfig, StoreConfig};

use crate::T;

fn close(got: Option<f64>, want: f64) -> bool {
    // hdrhistogram keeps 3 significant digits.
    got.is_some_and(|g| (g - want).abs() <= want * 1e-3)
}

#[test]
fn exact_quantiles_match_the_recorded_latencies_and_the_estimate_is_reported_beside_them() {
    let r = Registry::new();
    let m = ServingMetrics::new(&r, ServingMetricsConfig::default()).unwrap();
    let ranker = m.target("ranker", "2", "home").unwrap();
    let idle = m.target("mlp", "1", "none").unwrap();
    let st = SeriesStore::new(StoreConfig::default());
    st.scrape(&r, T);
    // 1 ms, 2 ms, ..., 100 ms: p50 = 50 ms, p95 = 95 ms, p99 = 99 ms, max = 100 ms.
    for i in 1..=100u64 {
        ranker.start().finish_with_duration(Outcome::Ok, Duration::from_millis(i));
    }
    st.scrape(&r, T + 5_000);
    st.scrape(&r, T + 10_000);
    let report = percentiles(&m, &st, T + 10_000, Duration::from_secs(60));
    assert_eq!(report.window_seconds, 60.0);
    assert_eq!(report.exact_window_seconds, Some(60.0));
    let labels: Vec<_> =
        report.targets.iter().map(|t| (t.model.as_str(), t.version.as_str(), t.pipeline.as_str())).collect();
    assert_eq!(labels, [("mlp", "1", "none"), ("ranker", "2", "home")]);
    let t = &report.targets[1];
    assert_eq!(t.count, 100);
    assert!(close(t.exact.p50, 0.050), "{:?}", t.exact);
    assert!(close(t.exact.p95, 0.095), "{:?}", t.exact);
    assert!(close(t.exact.p99, 0.099), "{:?}", t.exact);
    assert!(close(t.exact.max, 0.100), "{:?}", t.exact);
    // The estimate interpolates inside buckets: present, ordered, in the right bucket range.
    let e = t.bucket_estimate;
    let (p50, p95, p99, max) = (e.p50.unwrap(), e.p95.unwrap(), e.p99.unwrap(), e.max.unwrap());
    assert!(p50 <= p95 && p95 <= p99 && p99 <= max, "{e:?}");
    assert!(p50 > 0.025 && p50 <= 0.1, "{e:?}");
    assert!(max >= 0.1, "{e:?}");
    // A target with no requests: zero count, no quantiles, no estimate.
    let t = &report.targets[0];
    assert_eq!(t.count, 0);
    assert_eq!(t.exact, Default::default());
    assert_eq!(t.bucket_estimate.p50, None);
    drop(idle);
    // The JSON shape the endpoint serves.
    let v = serde_json::to_value(&report).unwrap();
    for key in ["window_seconds", "exact_window_seconds", "time", "targets"] {
        assert!(v.get(key).is_some(), "{v}");
    }
    for key in ["model", "version", "pipeline", "count", "exact", "bucket_estimate"] {
        assert!(v["targets"][1].get(key).is_some(), "{v}");
    }
    for q in ["p50", "p95", "p99", "max"] {
        assert!(v["targets"][1]["exact"][q].is_f64() && v["targets"][1]["bucket_estimate"][q].is_f64(), "{v}");
        assert!(v["targets"][0]["exact"][q].is_null(), "{v}");
    }
}
