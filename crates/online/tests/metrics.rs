//! Recording, windowing, snapshots and control comparisons of `OnlineMetrics`.

use std::sync::Arc;

use recserve_online::{ArmKey, ArmStats, ConfigError, Counts, Event, OnlineConfig, OnlineMetrics, OnlineSnapshot};

fn metrics() -> OnlineMetrics {
    OnlineMetrics::new(OnlineConfig::default()).expect("default config")
}

fn key(arm: &str, version: &str) -> ArmKey {
    ArmKey::new("home", "ranker", arm, version)
}

fn arm<'a>(snapshot: &'a OnlineSnapshot, key: &ArmKey) -> &'a ArmStats {
    snapshot.arms.iter().find(|a| &a.key == key).unwrap_or_else(|| panic!("{key:?} not in snapshot"))
}

/// `requests` requests of 10 items each and `clicks` clicks, at `t_ms`.
fn serve(metrics: &OnlineMetrics, key: &ArmKey, t_ms: u64, requests: u64, clicks: u64) {
    for _ in 0..requests {
        metrics.record_request(key, t_ms, 10);
    }
    for _ in 0..clicks {
        metrics.record_event(key, Event::Click, 0.0, t_ms);
    }
}

#[test]
fn defaults() {
    let config = OnlineConfig::default();
    assert_eq!((config.window_ms, config.buckets), (600_000, 10));
    assert_eq!(config.control_arm, "stable");
    assert_eq!((config.min_impressions, config.confidence), (200, 0.95));
}

#[test]
fn invalid_configs_are_rejected() {
    let with = |f: fn(&mut OnlineConfig)| {
        let mut config = OnlineConfig::default();
        f(&mut config);
        OnlineMetrics::new(config).err()
    };
    assert_eq!(with(|c| c.buckets = 0), Some(ConfigError::NoBuckets));
    assert_eq!(with(|c| c.window_ms = 0), Some(ConfigError::EmptyWindow));
    assert_eq!(with(|c| c.window_ms = 1_001), Some(ConfigError::WindowNotDivisible { window_ms: 1_001, buckets: 10 }));
    assert_eq!(with(|c| c.confidence = 1.0), Some(ConfigError::Confidence(1.0)));
    assert_eq!(with(|c| c.confidence = 0.0), Some(ConfigError::Confidence(0.0)));
    assert!(matches!(with(|c| c.confidence = f64::NAN), Some(ConfigError::Confidence(_))));
    let message = with(|c| c.confidence = 1.5).map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("confidence") && message.contains("1.5"), "{message}");
}

#[test]
fn counts_every_kind_of_record() {
    let m = metrics();
    let k = key("stable", "3");
    m.record_request(&k, 1_000, 10);
    m.record_request(&k, 1_000, 6);
    for event in [Event::Impression, Event::Impression, Event::Click, Event::AddToCart] {
        m.record_event(&k, event, 0.0, 1_100);
    }
    m.record_event(&k, Event::Purchase, 20.0, 1_200);
    m.record_event(&k, Event::Purchase, 12.5, 1_200);
    // Revenue counts for purchases only; a non-finite price does not poison the sum.
    m.record_event(&k, Event::Click, 99.0, 1_200);
    m.record_event(&k, Event::Purchase, f64::NAN, 1_200);

    let snapshot = m.snapshot_at(2_000);
    assert_eq!(snapshot.window_ms, 600_000);
    let stats = arm(&snapshot, &k);
    let expected = Counts {
        requests: 2,
        impressions: 16,
        impression_events: 2,
        clicks: 2,
        add_to_carts: 1,
        purchases: 3,
        revenue: 32.5,
    };
    assert_eq!(stats.window, expected);
    assert_eq!(stats.totals, expected);
    assert_eq!(stats.ctr, Some(2.0 / 16.0));
    assert_eq!(stats.conversion, Some(3.0 / 16.0));
    assert_eq!(stats.revenue_per_request, Some(16.25));
    let (lo, hi) = stats.ctr_interval.expect("interval");
    assert!(lo < 0.125 && 0.125 < hi, "{lo} {hi}");
    assert!(stats.conversion_interval.is_some());
    // The only arm, and the control: nothing to compare with.
    assert_eq!(stats.vs_control, None);
}

#[test]
fn arms_without_impressions_have_no_rates() {
    let m = metrics();
    let k = key("canary", "4");
    m.record_event(&k, Event::Click, 0.0, 1_000);
    let snapshot = m.snapshot_at(1_000);
    let stats = arm(&snapshot, &k);
    assert_eq!((stats.ctr, stats.ctr_interval, stats.conversion, stats.revenue_per_request), (None, None, None, None));
}

#[test]
fn old_records_leave_the_window_but_stay_in_the_totals() {
    // Window 600 s in ten 60 s slices: a record at 30 s (slice 0) is inside the window until
    // slice 9 ends (600 s), and out from slice 10 on.
    let m = metrics();
    let k = key("stable", "3");
    serve(&m, &k, 30_000, 3, 2);
    serve(&m, &k, 400_000, 1, 1);

    let inside = m.snapshot_at(599_999);
    assert_eq!((arm(&inside, &k).window.requests, arm(&inside, &k).window.clicks), (4, 3));

    let later = m.snapshot_at(600_000);
    let stats = arm(&later, &k);
    assert_eq!((stats.window.requests, stats.window.impressions, stats.window.clicks), (1, 10, 1));
    assert_eq!((stats.totals.requests, stats.totals.impressions, stats.totals.clicks), (4, 40, 3));

    let much_later = m.snapshot_at(10_000_000);
    let stats = arm(&much_later, &k);
    assert_eq!(stats.window, Counts::default());
    assert_eq!((stats.ctr, stats.totals.requests), (None, 4));
}

#[test]
fn a_record_older_than_the_window_counts_in_the_totals_only() {
    let m = metrics();
    let k = key("stable", "3");
    serve(&m, &k, 2_000_000, 1, 0);
    // Arrives late: 30 minutes before the newest record.
    serve(&m, &k, 200_000, 1, 1);
    let snapshot = m.snapshot_at(2_000_000);
    let stats = arm(&snapshot, &k);
    assert_eq!((stats.window.requests, stats.window.clicks), (1, 0));
    assert_eq!((stats.totals.requests, stats.totals.clicks), (2, 1));
}

#[test]
fn only_non_control_arms_of_the_same_model_are_compared() {
    let m = metrics();
    let stable = key("stable", "3");
    let canary = key("canary", "4");
    let other_model = ArmKey::new("home", "retriever", "canary", "2");
    let other_pipeline = ArmKey::new("search", "ranker", "canary", "4");
    for k in [&stable, &canary, &other_model, &other_pipeline] {
        serve(&m, k, 1_000, 50, 20);
    }
    let snapshot = m.snapshot_at(1_000);
    // Sorted by pipeline, model, arm, version.
    let order: Vec<_> = snapshot.arms.iter().map(|a| &a.key).collect();
    assert_eq!(order, [&canary, &stable, &other_model, &other_pipeline]);

    assert_eq!(arm(&snapshot, &stable).vs_control, None);
    let vs = arm(&snapshot, &canary).vs_control.as_ref().expect("canary vs stable");
    assert_eq!((vs.control_arm.as_str(), vs.control_version.as_str()), ("stable", "3"));
    // Neither model has a stable arm of its own.
    assert_eq!(arm(&snapshot, &other_model).vs_control, None);
    assert_eq!(arm(&snapshot, &other_pipeline).vs_control, None);
}

#[test]
fn the_control_can_be_named_per_model() {
    let m = metrics();
    let a = ArmKey::new("home", "ranker", "a", "3");
    let b = ArmKey::new("home", "ranker", "b", "4");
    let c = ArmKey::new("home", "ranker", "c", "5");
    let other = ArmKey::new("search", "ranker", "b", "1");
    for k in [&a, &b, &c, &other] {
        serve(&m, k, 1_000, 50, 20);
    }
    let snapshot = m.snapshot_at_with_control(1_000, |pipeline, _model| (pipeline == "home").then(|| "a".to_owned()));
    assert_eq!(arm(&snapshot, &a).vs_control, None);
    for k in [&b, &c] {
        let vs = arm(&snapshot, k).vs_control.as_ref().expect("compared with a");
        assert_eq!(vs.control_arm, "a");
    }
    assert_eq!(arm(&snapshot, &other).vs_control, None);
    // Under the default control name nobody is compared.
    assert!(m.snapshot_at(1_000).arms.iter().all(|s| s.vs_control.is_none()));
}

#[test]
fn the_control_version_with_most_window_impressions_is_the_control() {
    let m = metrics();
    serve(&m, &key("stable", "2"), 1_000, 5, 1);
    serve(&m, &key("stable", "3"), 1_000, 50, 5);
    serve(&m, &key("canary", "4"), 1_000, 50, 5);
    let snapshot = m.snapshot_at(1_000);
    let vs = arm(&snapshot, &key("canary", "4")).vs_control.as_ref().expect("compared");
    assert_eq!(vs.control_version, "3");
    assert_eq!(vs.ctr_difference, Some(0.0));
    // Another version of the control arm is not compared with the control.
    assert_eq!(arm(&snapshot, &key("stable", "2")).vs_control, None);
}

#[test]
fn no_significance_below_min_impressions() {
    let m = metrics();
    // 100 impressions each (10 requests of 10 items): 2 % against 30 % CTR.
    serve(&m, &key("stable", "3"), 1_000, 10, 30);
    serve(&m, &key("canary", "4"), 1_000, 10, 2);
    let snapshot = m.snapshot_at(1_000);
    let vs = arm(&snapshot, &key("canary", "4")).vs_control.as_ref().expect("compared");
    assert!(!vs.enough_samples);
    assert!(vs.p_value.expect("p") < 1e-4, "the test itself is clear: {vs:?}");
    assert!(!vs.significant);
    assert!(!vs.conversion_significant);
}

#[test]
fn a_clearly_worse_arm_is_significant_with_negative_lift() {
    let m = metrics();
    // 5,000 impressions each: 5 % CTR on stable, 2 % on the canary; conversions 1 % against 1 %.
    let (stable, canary) = (key("stable", "3"), key("canary", "4"));
    serve(&m, &stable, 1_000, 500, 250);
    serve(&m, &canary, 1_000, 500, 100);
    for _ in 0..50 {
        m.record_event(&stable, Event::Purchase, 10.0, 1_000);
        m.record_event(&canary, Event::Purchase, 10.0, 1_000);
    }
    let snapshot = m.snapshot_at(1_000);
    let stats = arm(&snapshot, &canary);
    assert_eq!(stats.ctr, Some(0.02));
    let vs = stats.vs_control.as_ref().expect("compared");
    assert!(vs.enough_samples);
    assert!(vs.significant);
    assert!((vs.ctr_lift.expect("lift") - -0.6).abs() < 1e-12);
    assert!((vs.ctr_difference.expect("difference") - -0.03).abs() < 1e-12);
    // The same counts as the stats tests' scipy case: z = -8.1619…, p = 3.3e-16.
    assert!((vs.z.expect("z") - -8.161943426864148).abs() < 1e-9);
    assert!(vs.p_value.expect("p") < 1e-12);
    // Equal conversions: no lift, not significant.
    assert_eq!(vs.conversion_lift, Some(0.0));
    assert_eq!(vs.conversion_p_value, Some(1.0));
    assert!(!vs.conversion_significant);
}

#[test]
fn equal_arms_are_not_significant() {
    let m = metrics();
    serve(&m, &key("stable", "3"), 1_000, 500, 250);
    serve(&m, &key("canary", "4"), 1_000, 500, 250);
    let snapshot = m.snapshot_at(1_000);
    let vs = arm(&snapshot, &key("canary", "4")).vs_control.as_ref().expect("compared");
    assert!(vs.enough_samples);
    assert_eq!((vs.ctr_lift, vs.z, vs.p_value), (Some(0.0), Some(0.0), Some(1.0)));
    assert!(!vs.significant);
    // No purchases anywhere: nothing to test.
    assert_eq!((vs.conversion_lift, vs.conversion_p_value), (None, None));
    assert!(!vs.conversion_significant);
}

#[test]
fn a_control_without_clicks_gives_no_lift() {
    let m = metrics();
    serve(&m, &key("stable", "3"), 1_000, 50, 0);
    serve(&m, &key("canary", "4"), 1_000, 50, 10);
    let snapshot = m.snapshot_at(1_000);
    let vs = arm(&snapshot, &key("canary", "4")).vs_control.as_ref().expect("compared");
    assert_eq!(vs.ctr_lift, None);
    assert_eq!(vs.ctr_difference, Some(0.02));
    assert!(vs.p_value.is_some());
}

#[test]
fn concurrent_recording_sums_correctly() {
    let m = Arc::new(metrics());
    let keys = [key("stable", "3"), key("canary", "4")];
    let threads: Vec<_> = (0..4u64)
        .map(|thread| {
            let m = Arc::clone(&m);
            let keys = keys.clone();
            std::thread::spawn(move || {
                for i in 0..5_000u64 {
                    let k = &keys[(i % 2) as usize];
                    // Spread over three slices of the window.
                    let t = 1_000 + (i % 3) * 60_000 + thread;
                    m.record_request(k, t, 3);
                    m.record_event(k, Event::Click, 0.0, t);
                    if i % 4 < 2 {
                        m.record_event(k, Event::Purchase, 2.5, t);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("recording thread");
    }
    let snapshot = m.snapshot_at(200_000);
    for k in &keys {
        let stats = arm(&snapshot, k);
        // Per key: 4 threads × 2,500 records, half of them with a purchase.
        assert_eq!(stats.window.requests, 10_000);
        assert_eq!(stats.window.impressions, 30_000);
        assert_eq!(stats.window.clicks, 10_000);
        assert_eq!(stats.window.purchases, 5_000);
        assert!((stats.window.revenue - 12_500.0).abs() < 1e-9);
        assert_eq!(stats.window, stats.totals);
    }
}

#[test]
fn serializes_flat_with_totals_apart() {
    let m = metrics();
    serve(&m, &key("stable", "3"), 1_000, 50, 10);
    serve(&m, &key("canary", "4"), 1_000, 50, 5);
    let json = serde_json::to_value(m.snapshot_at(1_000)).expect("serialize");
    let canary = &json["arms"][0];
    assert_eq!(canary["pipeline"], "home");
    assert_eq!(canary["arm"], "canary");
    assert_eq!(canary["version"], "4");
    assert_eq!(canary["impressions"], 500);
    assert_eq!(canary["totals"]["clicks"], 5);
    assert_eq!(canary["ctr"], 0.01);
    assert!(canary["ctr_interval"].as_array().is_some_and(|a| a.len() == 2));
    assert_eq!(canary["vs_control"]["control_arm"], "stable");
    assert_eq!(canary["vs_control"]["significant"], false);
    assert!(json["arms"][1]["vs_control"].is_null());
    assert_eq!(json["window_ms"], 600_000);
}

#[test]
fn events_use_snake_case_names() {
    let names: Vec<String> = [Event::Impression, Event::Click, Event::AddToCart, Event::Purchase]
        .iter()
        .map(|e| serde_json::to_string(e).expect("serialize"))
        .collect();
    assert_eq!(names, [r#""impression""#, r#""click""#, r#""add_to_cart""#, r#""purchase""#]);
    assert_eq!(Event::AddToCart.as_str(), "add_to_cart");
}
