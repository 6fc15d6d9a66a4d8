//! The monitor: buckets, sliding window, minimum sample size, verdicts, threads.

use std::sync::Arc;

use recserve_drift::{
    ConfigError, DriftConfig, DriftMonitor, FeatureKind, FeatureValue, ReferenceStats, Thresholds, Verdict,
};

use crate::common::feature;

const REFERENCE: &str = r#"{
  "version": 1,
  "features": {
    "x": {"kind": "numeric", "bins": [null, 0.0, 1.0, null], "counts": [25, 50, 25], "missing": 3},
    "c": {"kind": "categorical", "counts": {"a": 50, "b": 50}, "missing": 0}
  },
  "score": {"kind": "numeric", "bins": [null, 0.5, null], "counts": [50, 50], "missing": 0}
}"#;

fn monitor(config: DriftConfig) -> DriftMonitor {
    let reference = ReferenceStats::from_json(REFERENCE).expect("reference");
    DriftMonitor::new(reference, config).expect("config")
}

/// A plain minimum of 100 observations (no per-bucket rule), so small hand-made histograms get
/// a verdict.
fn small_sample_config() -> DriftConfig {
    DriftConfig { min_samples: 100, min_samples_per_bucket: 0, ..DriftConfig::default() }
}

/// Records `n` values of `x` spread like the reference: 1 in 4 below 0, 2 in 4 in [0, 1),
/// 1 in 4 at or above 1.
fn record_matching(monitor: &DriftMonitor, t_ms: u64, n: usize) {
    for i in 0..n {
        let x = [-0.5, 0.0, 0.99, 1.0][i % 4];
        monitor.record_at(t_ms, &[("x", FeatureValue::Numeric(x))], &[]);
    }
}

#[test]
fn defaults() {
    let config = DriftConfig::default();
    assert_eq!((config.window_ms, config.sub_buckets), (600_000, 10));
    assert_eq!((config.min_samples, config.min_samples_per_bucket), (100, 50));
    assert_eq!(config.capture_requests, 1000);
    assert_eq!(config.thresholds, Thresholds { psi_moderate: 0.1, psi_significant: 0.2, js_moderate: 0.1 });
}

#[test]
fn verdict_thresholds() {
    let t = Thresholds::default();
    assert_eq!(t.verdict(0.0, 0.0), Verdict::Ok);
    assert_eq!(t.verdict(0.099, 0.099), Verdict::Ok);
    assert_eq!(t.verdict(0.1, 0.0), Verdict::Moderate);
    assert_eq!(t.verdict(0.05, 0.1), Verdict::Moderate);
    assert_eq!(t.verdict(0.2, 0.0), Verdict::Significant);
    assert_eq!(t.verdict(0.199, 0.9), Verdict::Moderate);
}

#[test]
fn matching_distribution_has_no_drift() {
    let m = monitor(small_sample_config());
    record_matching(&m, 5_000, 400);
    let snap = m.snapshot_at(5_000);
    let x = feature(&snap, "x");
    assert_eq!((x.kind, x.n, x.missing, x.invalid), (FeatureKind::Numeric, 400, 0, 0));
    assert!(x.psi.expect("psi") < 1e-12);
    assert!(x.js.expect("js") < 1e-6);
    assert_eq!(x.verdict, Verdict::Ok);
    // Nothing recorded for c and the score.
    assert_eq!(feature(&snap, "c").n, 0);
    assert_eq!(feature(&snap, "c").verdict, Verdict::InsufficientData);
    assert_eq!(snap.score.as_ref().map(|s| (s.n, s.psi)), Some((0, None)));
}

#[test]
fn numeric_histogram_matches_hand_computed_psi() {
    let m = monitor(small_sample_config());
    // live bins [50, 30, 20] against reference [25, 50, 25]
    for (x, n) in [(-1.0, 50), (0.5, 30), (7.0, 20)] {
        for _ in 0..n {
            m.record_at(0, &[("x", FeatureValue::Numeric(x))], &[]);
        }
    }
    // e = [0.25, 0.5, 0.25], a = [0.5, 0.3, 0.2]
    // PSI = 0.25·ln 2 + (-0.2)·ln 0.6 + (-0.05)·ln 0.8 = 0.1732868 + 0.1021651 + 0.0111572
    //     = 0.2866091 → Significant
    let snap = m.snapshot_at(0);
    let x = feature(&snap, "x");
    assert!((x.psi.expect("psi") - 0.286_609_1).abs() < 1e-6, "{x:?}");
    assert_eq!(x.verdict, Verdict::Significant);
}

#[test]
fn categorical_unseen_and_missing_buckets() {
    let m = monitor(small_sample_config());
    for i in 0..200 {
        let value = match i % 4 {
            0 | 1 => FeatureValue::Categorical("a"),
            2 => FeatureValue::Categorical("zzz"),
            _ => FeatureValue::Missing,
        };
        m.record_at(0, &[("c", value)], &[]);
    }
    let snap = m.snapshot_at(0);
    let c = feature(&snap, "c");
    assert_eq!((c.kind, c.n, c.unseen, c.missing), (FeatureKind::Categorical, 200, 50, 50));
    // buckets [a, b, __other__, missing]: e = [0.5, 0.5, 1e-4, 1e-4], a = [0.5, 1e-4, 0.25, 0.25]
    // PSI = 0 + (1e-4 - 0.5)·ln(1e-4/0.5) + 2·(0.25 - 1e-4)·ln(0.25/1e-4)
    let expected = (1e-4 - 0.5) * (1e-4f64 / 0.5).ln() + 2.0 * (0.25 - 1e-4) * (0.25f64 / 1e-4).ln();
    assert!((c.psi.expect("psi") - expected).abs() < 1e-9, "{c:?}");
    // p = [0.5, 0.5, 0, 0], q = [0.5, 0, 0.25, 0.25]: only bucket a overlaps, m = [0.5, 0.25, 0.125, 0.125]
    // KL(p‖m) = 0.5·log2(2) = 0.5; KL(q‖m) = 2·0.25·log2(2) = 0.5 → JS = sqrt(0.5)
    assert!((c.js.expect("js") - 0.5f64.sqrt()).abs() < 1e-12, "{c:?}");
}

#[test]
fn numeric_missing_nan_and_wrong_kind_stay_outside_the_histogram() {
    let m = monitor(small_sample_config());
    record_matching(&m, 0, 100);
    m.record_at(0, &[("x", FeatureValue::Missing)], &[]);
    m.record_at(0, &[("x", FeatureValue::Numeric(f64::NAN))], &[]);
    m.record_at(0, &[("x", FeatureValue::Categorical("oops"))], &[]);
    m.record_at(0, &[("c", FeatureValue::Numeric(1.0))], &[]);
    m.record_at(0, &[("not_a_feature", FeatureValue::Numeric(1.0))], &[]);
    let snap = m.snapshot_at(0);
    let x = feature(&snap, "x");
    assert_eq!((x.n, x.missing, x.invalid), (100, 2, 1));
    assert!(x.psi.expect("psi") < 1e-12);
    let c = feature(&snap, "c");
    assert_eq!((c.n, c.invalid), (0, 1));
    assert_eq!(snap.features.len(), 2);
}

#[test]
fn minimum_sample_size() {
    let config = DriftConfig { min_samples: 40, min_samples_per_bucket: 0, ..DriftConfig::default() };
    let m = monitor(config);
    // Every value in the first bin: massive drift, but no verdict on 39 observations.
    for _ in 0..39 {
        m.record_at(0, &[("x", FeatureValue::Numeric(-3.0))], &[]);
    }
    let x = feature(&m.snapshot_at(0), "x").clone();
    assert_eq!((x.n, x.psi, x.js, x.verdict), (39, None, None, Verdict::InsufficientData));
    m.record_at(0, &[("x", FeatureValue::Numeric(-3.0))], &[]);
    let x = feature(&m.snapshot_at(0), "x").clone();
    assert_eq!((x.n, x.min_samples), (40, 40));
    assert_eq!(x.verdict, Verdict::Significant);
    assert!(x.psi.is_some() && x.js.is_some());
}

#[test]
fn sliding_window_forgets_old_data() {
    // Window 10 min in 1-minute slices: at time t the window holds the slice of t and the 9
    // before it.
    let m = monitor(small_sample_config());
    for _ in 0..150 {
        m.record_at(30_000, &[("x", FeatureValue::Numeric(-3.0))], &[]); // slice 0: drifted
    }
    let x = |t| feature(&m.snapshot_at(t), "x").clone();
    assert_eq!(x(0).n, 150);
    assert_eq!(x(599_999).n, 150);
    assert_eq!(x(599_999).verdict, Verdict::Significant);
    assert_eq!(x(600_000).n, 0);
    assert_eq!(x(600_000).verdict, Verdict::InsufficientData);

    // Matching data at minute 5 replaces the drifted data once minute 0 leaves the window.
    record_matching(&m, 300_000, 200);
    assert_eq!(x(599_999).n, 350);
    assert_eq!(x(599_999).verdict, Verdict::Significant);
    let later = x(650_000);
    assert_eq!(later.n, 200);
    assert_eq!(later.verdict, Verdict::Ok);
    assert_eq!(x(900_000).n, 0);
}

#[test]
fn reused_sub_buckets_are_reset_and_late_data_dropped() {
    let m = monitor(small_sample_config());
    record_matching(&m, 0, 100); // slice 0
    record_matching(&m, 600_000, 120); // slice 10 takes slice 0's place in the ring
    assert_eq!(feature(&m.snapshot_at(600_000), "x").n, 120);
    // A record for slice 0 arriving now is older than the window: dropped, not mixed in.
    record_matching(&m, 1_000, 50);
    assert_eq!(feature(&m.snapshot_at(600_000), "x").n, 120);
    // Slightly out of order within the window still counts.
    record_matching(&m, 590_000, 10);
    assert_eq!(feature(&m.snapshot_at(600_000), "x").n, 130);
}

#[test]
fn scores_are_each_one_observation() {
    let m = monitor(small_sample_config());
    for _ in 0..60 {
        m.record_at(0, &[], &[0.1, 0.9, f64::NAN]);
    }
    let snap = m.snapshot_at(0);
    let score = snap.score.expect("score monitored");
    assert_eq!(score.name, "score");
    assert_eq!((score.n, score.missing), (120, 60));
    assert!(score.psi.expect("psi") < 1e-12);
}

#[test]
fn invalid_window_configurations() {
    let reference = ReferenceStats::from_json(REFERENCE).expect("reference");
    let bad = DriftConfig { sub_buckets: 0, ..DriftConfig::default() };
    assert_eq!(DriftMonitor::new(reference.clone(), bad).map(|_| ()), Err(ConfigError::NoSubBuckets));
    let bad = DriftConfig { window_ms: 1_000, sub_buckets: 3, ..DriftConfig::default() };
    let err = DriftMonitor::capturing(bad).map(|_| ()).expect_err("not divisible");
    assert_eq!(err.to_string(), "drift window: window_ms (1000) must be a positive multiple of sub_buckets (3)");
}

#[test]
fn snapshot_serialises_for_series_and_dashboard() {
    let m = monitor(small_sample_config());
    record_matching(&m, 0, 100);
    let json = serde_json::to_value(m.snapshot_at(0)).expect("json");
    let x = &json["features"].as_array().expect("features").iter().find(|f| f["name"] == "x").cloned().expect("x");
    assert_eq!(x["kind"], "numeric");
    assert_eq!(x["verdict"], "ok");
    assert_eq!(x["n"], 100);
    assert_eq!(json["features"][0]["verdict"], "insufficient_data");
    assert_eq!(json["window_ms"], 600_000);
}

#[test]
fn records_from_several_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DriftMonitor>();

    let m = Arc::new(monitor(small_sample_config()));
    let threads: Vec<_> = (0..4)
        .map(|k| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for i in 0..5_000u64 {
                    let x = [-0.5, 0.5, 0.5, 1.5][(i % 4) as usize];
                    let c = if (i + k) % 2 == 0 { "a" } else { "b" };
                    // Times cross slice boundaries, slightly out of order between threads.
                    m.record_at(
                        i * 20 + k,
                        &[("x", FeatureValue::Numeric(x)), ("c", FeatureValue::Categorical(c))],
                        &[0.25, 0.75],
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("recording thread");
    }
    let snap = m.snapshot_at(100_000);
    assert_eq!(feature(&snap, "x").n, 20_000);
    assert_eq!(feature(&snap, "c").n, 20_000);
    assert_eq!(snap.score.as_ref().map(|s| s.n), Some(40_000));
    assert!(feature(&snap, "x").psi.expect("psi") < 1e-12);
    assert!(feature(&snap, "c").psi.expect("psi") < 1e-12);
}

#[test]
fn minimum_sample_size_scales_with_the_reference_buckets() {
    // Default rule: max(100, 50 × non-empty reference buckets).
    let reference = ReferenceStats::from_json(
        r#"{"version": 1, "features": {
            "x": {"kind": "numeric", "bins": [null, 1, 2, 3, 4, null], "counts": [10, 10, 0, 10, 10]},
            "c": {"kind": "categorical", "counts": {"a": 1}, "missing": 0},
            "m": {"kind": "categorical", "counts": {"a": 5, "b": 5}, "missing": 1}}}"#,
    )
    .expect("reference");
    let m = DriftMonitor::new(reference, DriftConfig::default()).expect("monitor");
    let mut values = Vec::new();
    for i in 0..199 {
        values.clear();
        values.push(("x", FeatureValue::Numeric([0.5, 1.5, 3.5, 4.5][i % 4])));
        values.push(("c", FeatureValue::Categorical("a")));
        m.record_at(0, &values, &[]);
    }
    let snap = m.snapshot_at(0);
    // x: 4 non-empty bins → 200; c: one category → the floor of 100; m: a, b and missing → 150.
    let x = feature(&snap, "x");
    assert_eq!((x.n, x.min_samples, x.verdict), (199, 200, Verdict::InsufficientData));
    assert_eq!(x.psi, None);
    let c = feature(&snap, "c");
    assert_eq!((c.n, c.min_samples, c.verdict), (199, 100, Verdict::Ok));
    assert_eq!(feature(&snap, "m").min_samples, 150);
    m.record_at(0, &[("x", FeatureValue::Numeric(0.5))], &[]);
    let x = feature(&m.snapshot_at(0), "x").clone();
    assert_eq!((x.n, x.verdict), (200, Verdict::Ok));
}
