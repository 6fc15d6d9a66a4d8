//! The demo's real reference statistics (examples/ecommerce/models/ranker/training_stats.json, written by
//! train.py): they parse, and values drawn from their own bins show no drift while shifted ones
//! do.

use recserve_drift::{
    DriftConfig, DriftMonitor, FeatureKind, FeatureReference, FeatureValue, NumericReference, ReferenceStats, Verdict,
};

use crate::common::{Rng, feature};

fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ecommerce/models/ranker/training_stats.json")
}

fn load() -> ReferenceStats {
    ReferenceStats::load(path()).expect("the demo's reference statistics parse")
}

/// A value in a bin drawn in proportion to the reference counts, uniform inside the bin (the
/// open outer bins extend one unit beyond their finite edge).
fn sample_numeric(reference: &NumericReference, rng: &mut Rng) -> f64 {
    let bin = rng.weighted(reference.counts());
    let edges = reference.edges();
    let (lo, hi) = match (bin.checked_sub(1).map(|i| edges[i]), edges.get(bin)) {
        (None, Some(&hi)) => (hi - 1.0, hi),
        (Some(lo), None) => (lo, lo + 1.0),
        (Some(lo), Some(&hi)) => (lo, hi),
        (None, None) => (-1.0, 1.0),
    };
    lo + rng.unit() * (hi - lo)
}

/// One request's values drawn from the reference, numeric ones moved by `shift`.
fn sample_request<'a>(stats: &'a ReferenceStats, rng: &mut Rng, shift: f64) -> Vec<(&'a str, FeatureValue<'a>)> {
    stats
        .features()
        .iter()
        .map(|(name, f)| {
            let value = match f {
                FeatureReference::Numeric(n) => FeatureValue::Numeric(sample_numeric(n, rng) + shift),
                FeatureReference::Categorical(c) => {
                    let mut weights = c.counts().to_vec();
                    weights.push(c.missing());
                    let i = rng.weighted(&weights);
                    c.categories().get(i).map_or(FeatureValue::Missing, |s| FeatureValue::Categorical(s))
                }
            };
            (name.as_str(), value)
        })
        .collect()
}

#[test]
fn parses_the_demo_reference() {
    let stats = load();
    assert_eq!(stats.features().len(), 19);
    let kind = |name: &str| stats.feature(name).map(FeatureReference::kind);
    assert_eq!(kind("device"), Some(FeatureKind::Categorical));
    assert_eq!(kind("item_brand_hash"), Some(FeatureKind::Categorical));
    assert_eq!(kind("user_log_tenure"), Some(FeatureKind::Numeric));
    let Some(FeatureReference::Categorical(device)) = stats.feature("device") else {
        panic!("device is categorical");
    };
    assert_eq!(device.categories(), &["desktop", "mobile", "tablet"].map(String::from));
    assert_eq!(device.counts(), &[53_823, 87_963, 16_593]);
    let Some(FeatureReference::Numeric(price_level)) = stats.feature("user_price_level") else {
        panic!("user_price_level is numeric");
    };
    assert_eq!(price_level.bins(), 8);
    assert_eq!(price_level.missing(), 51_176);
    // train.py binned every row (missing ones at their default): the counts cover all rows.
    assert_eq!(price_level.counts().iter().sum::<u64>(), 158_379);
    let score = stats.score().expect("score");
    assert_eq!(score.bins(), 10);
    assert_eq!(score.edges()[0], 0.004_942_21);
    // Written back and read again, nothing changes.
    let text = stats.to_json().expect("json");
    assert_eq!(ReferenceStats::from_json(&text).expect("reads back"), stats);
}

#[test]
fn values_from_its_own_bins_show_no_drift() {
    let stats = load();
    let score = stats.score().cloned().expect("score");
    let monitor = DriftMonitor::new(stats.clone(), DriftConfig::default()).expect("monitor");
    let mut rng = Rng::new(42);
    for i in 0..5_000u64 {
        let request = sample_request(&stats, &mut rng, 0.0);
        let s = sample_numeric(&score, &mut rng);
        monitor.record_at(i * 10, &request, &[s]);
    }
    let snap = monitor.snapshot_at(50_000);
    assert_eq!(snap.features.len(), 19);
    for f in snap.features.iter().chain(snap.score.as_ref()) {
        assert_eq!(f.n, 5_000, "{f:?}");
        assert_eq!(f.verdict, Verdict::Ok, "{f:?}");
        assert!(f.psi.expect("psi") < 0.05, "{f:?}");
        assert!(f.js.expect("js") < 0.1, "{f:?}");
        assert_eq!((f.unseen, f.invalid), (0, 0), "{f:?}");
    }
}

#[test]
fn shifted_values_raise_psi_above_significant() {
    let stats = load();
    let monitor = DriftMonitor::new(stats.clone(), DriftConfig::default()).expect("monitor");
    let mut rng = Rng::new(3);
    for i in 0..2_000u64 {
        let mut request = sample_request(&stats, &mut rng, 1.0);
        // Every shopper on a phone.
        for (name, value) in &mut request {
            if *name == "device" {
                *value = FeatureValue::Categorical("mobile");
            }
        }
        monitor.record_at(i, &request, &[]);
    }
    let snap = monitor.snapshot_at(2_000);
    // Numeric features whose reference spread is about one unit (standardised) move by one
    // standard deviation or more.
    for name in ["user_log_tenure", "item_log_price", "item_log_popularity", "retrieval_score"] {
        let f = feature(&snap, name);
        assert_eq!(f.verdict, Verdict::Significant, "{f:?}");
        assert!(f.psi.expect("psi") > 0.2, "{f:?}");
    }
    let device = feature(&snap, "device");
    assert_eq!(device.verdict, Verdict::Significant, "{device:?}");
    // Categorical features other than device were drawn from their reference.
    assert_eq!(feature(&snap, "user_segment").verdict, Verdict::Ok);
    assert_eq!(snap.score.as_ref().map(|s| s.verdict), Some(Verdict::InsufficientData));
}
