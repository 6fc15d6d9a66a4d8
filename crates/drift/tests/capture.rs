//! Capturing a reference from the first requests, alone and inside a monitor.

use recserve_drift::{DriftConfig, DriftMonitor, FeatureReference, FeatureValue, ReferenceCapture, Verdict};

use crate::common::{Rng, feature};

#[test]
fn numeric_deciles_like_numpy() {
    let mut capture = ReferenceCapture::new(100);
    for i in 1..=100 {
        let done = capture.observe(&[("x", FeatureValue::Numeric(f64::from(i)))], &[]);
        assert_eq!(done, i == 100);
    }
    let stats = capture.finish();
    let Some(FeatureReference::Numeric(x)) = stats.feature("x") else {
        panic!("x is numeric");
    };
    // numpy.quantile(1..=100, k/10) = 1 + 9.9·k: 10.9, 20.8, …, 90.1
    let expected: Vec<f64> = (1..10).map(|k| 1.0 + 9.9 * f64::from(k)).collect();
    assert_eq!(x.edges().len(), 9);
    for (e, want) in x.edges().iter().zip(&expected) {
        assert!((e - want).abs() < 1e-9, "edges {:?}", x.edges());
    }
    assert_eq!(x.counts(), &[10; 10]);
    assert_eq!(x.mean(), Some(50.5));
    assert!(stats.score().is_none());
}

#[test]
fn tied_values_give_deduplicated_edges() {
    let mut capture = ReferenceCapture::new(50);
    for i in 0..50 {
        // 80 % zeros, then 1..=10
        let x = if i < 40 { 0.0 } else { f64::from(i - 39) };
        capture.observe(&[("x", FeatureValue::Numeric(x))], &[]);
    }
    let stats = capture.finish();
    let Some(FeatureReference::Numeric(x)) = stats.feature("x") else {
        panic!("x is numeric");
    };
    // Sorted positions q·49: deciles 0.1..0.7 (positions 4.9..34.3) are all 0.0, one edge;
    // 0.8 → position 39.2 → 0 + 0.2·(1 - 0) = 0.2; 0.9 → position 44.1 → 5 + 0.1·(6 - 5) = 5.1.
    let edges = x.edges();
    assert_eq!(edges.len(), 3, "{edges:?}");
    assert_eq!(edges[0], 0.0);
    assert!((edges[1] - 0.2).abs() < 1e-9, "{edges:?}");
    assert!((edges[2] - 5.1).abs() < 1e-9, "{edges:?}");
    // [−∞, 0): none; [0, 0.2): the 40 zeros; [0.2, 5.1): 1..=5; [5.1, ∞): 6..=10
    assert_eq!(x.counts(), &[0, 40, 5, 5]);
}

#[test]
fn categories_missing_values_kinds_and_scores() {
    let mut capture = ReferenceCapture::new(4);
    let requests: [&[(&str, FeatureValue<'_>)]; 5] = [
        &[("device", FeatureValue::Missing), ("always_missing", FeatureValue::Missing)],
        &[("device", FeatureValue::Categorical("mobile")), ("x", FeatureValue::Numeric(f64::NAN))],
        &[("device", FeatureValue::Categorical("mobile")), ("x", FeatureValue::Numeric(1.0))],
        // A number for a categorical feature is ignored.
        &[("device", FeatureValue::Numeric(3.0)), ("x", FeatureValue::Numeric(2.0))],
        // After the capture is complete: ignored.
        &[("device", FeatureValue::Categorical("tablet"))],
    ];
    for (i, features) in requests.iter().enumerate() {
        capture.observe(features, &[0.1 * i as f64, 0.5]);
    }
    assert_eq!((capture.requests(), capture.target()), (4, 4));
    let stats = capture.finish();
    let Some(FeatureReference::Categorical(device)) = stats.feature("device") else {
        panic!("device is categorical");
    };
    assert_eq!(device.categories(), &["mobile".to_owned()]);
    assert_eq!(device.counts(), &[2]);
    assert_eq!(device.missing(), 1);
    let Some(FeatureReference::Numeric(x)) = stats.feature("x") else {
        panic!("x is numeric");
    };
    assert_eq!(x.counts().iter().sum::<u64>(), 2);
    assert_eq!(x.missing(), 1);
    assert!(stats.feature("always_missing").is_none());
    // Every score of the four captured requests.
    let score = stats.score().expect("score captured");
    assert_eq!(score.counts().iter().sum::<u64>(), 8);
    // A captured reference writes out and reads back like a shipped one.
    let text = stats.to_json().expect("json");
    assert_eq!(recserve_drift::ReferenceStats::from_json(&text).expect("reads"), stats);
}

fn normal(rng: &mut Rng) -> f64 {
    // Box–Muller
    let u1 = rng.unit().max(1e-12);
    let u2 = rng.unit();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[test]
fn monitor_captures_then_monitors() {
    let config = DriftConfig { capture_requests: 500, ..DriftConfig::default() };
    let monitor = DriftMonitor::capturing(config).expect("config");
    let mut rng = Rng::new(7);
    let mut t = 0;
    let record = |monitor: &DriftMonitor, shift: f64, t: &mut u64, rng: &mut Rng| {
        let x = normal(rng) + shift;
        let device = if rng.unit() < 0.3 { "desktop" } else { "mobile" };
        let score = rng.unit() + shift;
        monitor.record_at(
            *t,
            &[("x", FeatureValue::Numeric(x)), ("device", FeatureValue::Categorical(device))],
            &[score],
        );
        *t += 100;
    };
    for i in 0..499 {
        record(&monitor, 0.0, &mut t, &mut rng);
        if i == 9 {
            let snap = monitor.snapshot_at(t);
            let progress = snap.capturing.expect("capturing");
            assert_eq!((progress.requests, progress.target), (10, 500));
            assert!(snap.features.is_empty() && snap.score.is_none());
            assert!(monitor.reference().is_none());
        }
    }
    assert!(monitor.reference().is_none());
    record(&monitor, 0.0, &mut t, &mut rng);
    let reference = monitor.reference().expect("frozen after 500 requests");
    let Some(FeatureReference::Numeric(x)) = reference.feature("x") else {
        panic!("x is numeric");
    };
    assert_eq!(x.edges().len(), 9);
    assert_eq!(x.counts().iter().sum::<u64>(), 500);

    // The captured requests are the reference, not part of the window.
    let snap = monitor.snapshot_at(t);
    assert!(snap.capturing.is_none());
    assert_eq!(feature(&snap, "x").n, 0);
    assert_eq!(feature(&snap, "x").verdict, Verdict::InsufficientData);

    // Same distribution: no drift. (t advances 100 ms per request: 1000 requests = 100 s.)
    for _ in 0..1000 {
        record(&monitor, 0.0, &mut t, &mut rng);
    }
    let snap = monitor.snapshot_at(t);
    for f in snap.features.iter().chain(snap.score.as_ref()) {
        assert_eq!(f.n, 1000, "{f:?}");
        assert_eq!(f.verdict, Verdict::Ok, "{f:?}");
    }

    // One standard deviation later, after the window has forgotten the undrifted requests.
    t += 700_000;
    for _ in 0..1000 {
        record(&monitor, 1.0, &mut t, &mut rng);
    }
    let snap = monitor.snapshot_at(t);
    let x = feature(&snap, "x");
    assert_eq!(x.n, 1000);
    assert_eq!(x.verdict, Verdict::Significant, "{x:?}");
    assert!(x.psi.expect("psi") > 0.2);
    assert_eq!(feature(&snap, "device").verdict, Verdict::Ok);
    assert_eq!(snap.score.as_ref().map(|s| s.verdict), Some(Verdict::Significant));
}
