//! The hub: one monitor per model version, shipped or captured references, retain, snapshots.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use recserve_drift::{
    ConfigError, DriftConfig, DriftHub, FeatureValue, ReferenceLookup, ReferenceSource, ReferenceStats, Verdict,
    shipped_reference,
};

const REFERENCE: &str = r#"{
  "version": 1,
  "features": {
    "x": {"kind": "numeric", "bins": [null, 0.0, 1.0, null], "counts": [25, 50, 25], "missing": 0}
  }
}"#;

fn reference() -> ReferenceStats {
    ReferenceStats::from_json(REFERENCE).expect("reference")
}

/// A lookup that ships a reference for the "ranker" model only, counting its calls.
fn lookup(calls: &Arc<AtomicUsize>) -> ReferenceLookup {
    let calls = Arc::clone(calls);
    Arc::new(move |model: &str, _version: u64| {
        calls.fetch_add(1, Ordering::SeqCst);
        (model == "ranker").then(reference)
    })
}

fn hub(calls: &Arc<AtomicUsize>) -> DriftHub {
    let config = DriftConfig { capture_requests: 3, ..DriftConfig::default() };
    DriftHub::new(config, lookup(calls)).expect("config")
}

fn listed(hub: &DriftHub) -> Vec<(String, u64, ReferenceSource)> {
    hub.snapshots_at(1_000).into_iter().map(|v| (v.model, v.version, v.reference)).collect()
}

#[test]
fn shipped_and_capturing_references() {
    let calls = Arc::new(AtomicUsize::new(0));
    let hub = hub(&calls);
    let shipped = hub.monitor("ranker", 1);
    let captured = hub.monitor("retriever", 1);
    assert!(shipped.reference().is_some());
    assert!(captured.reference().is_none());
    assert_eq!(
        listed(&hub),
        [("ranker".into(), 1, ReferenceSource::Shipped), ("retriever".into(), 1, ReferenceSource::Capturing)]
    );
    let snapshots = hub.snapshots_at(1_000);
    assert_eq!(snapshots[0].snapshot.features.len(), 1);
    assert_eq!(snapshots[1].snapshot.capturing.map(|c| (c.requests, c.target)), Some((0, 3)));

    // Three requests complete the capture.
    for i in 0..3 {
        captured.record_at(1_000, &[("y", FeatureValue::Numeric(f64::from(i)))], &[]);
    }
    assert_eq!(listed(&hub)[1].2, ReferenceSource::Captured);
    let snapshots = hub.snapshots_at(1_000);
    assert_eq!(snapshots[1].snapshot.capturing, None);
    assert_eq!(snapshots[1].snapshot.features[0].name, "y");
}

#[test]
fn the_same_monitor_on_every_call_and_one_lookup() {
    let calls = Arc::new(AtomicUsize::new(0));
    let hub = hub(&calls);
    let first = hub.monitor("ranker", 7);
    let second = hub.monitor("ranker", 7);
    assert!(Arc::ptr_eq(&first, &second));
    assert!(hub.get("ranker", 7).is_some_and(|m| Arc::ptr_eq(&m, &first)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // What one handler records, the hub's snapshot sees.
    second.record_at(1_000, &[("x", FeatureValue::Numeric(0.5))], &[]);
    assert_eq!(hub.snapshots_at(1_000)[0].snapshot.features[0].n, 1);
    // A version that was never asked for is not created by `get`.
    assert!(hub.get("ranker", 8).is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn racing_first_calls_look_the_reference_up_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let hub = Arc::new(hub(&calls));
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (hub, barrier) = (Arc::clone(&hub), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                hub.monitor("ranker", 1)
            })
        })
        .collect();
    let monitors: Vec<_> = threads.into_iter().map(|t| t.join().expect("thread")).collect();
    assert!(monitors.iter().all(|m| Arc::ptr_eq(m, &monitors[0])));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn snapshots_are_sorted_by_model_then_version() {
    let calls = Arc::new(AtomicUsize::new(0));
    let hub = hub(&calls);
    for (model, version) in [("ranker", 10), ("embedder", 2), ("ranker", 9)] {
        hub.monitor(model, version);
    }
    let order: Vec<_> = listed(&hub).into_iter().map(|(m, v, _)| (m, v)).collect();
    assert_eq!(order, [("embedder".into(), 2), ("ranker".into(), 9), ("ranker".into(), 10)]);
    assert!(hub.snapshots().len() == 3);
}

#[test]
fn retain_forgets_versions_no_longer_loaded() {
    let calls = Arc::new(AtomicUsize::new(0));
    let hub = hub(&calls);
    let old = hub.monitor("ranker", 1);
    hub.monitor("ranker", 2);
    hub.monitor("retriever", 1);
    hub.retain(|model, version| model == "ranker" && version == 2);
    assert_eq!(listed(&hub), [("ranker".into(), 2, ReferenceSource::Shipped)]);
    assert!(hub.get("ranker", 1).is_none());
    assert!(hub.get("retriever", 1).is_none());
    // Asked for again, a forgotten version starts afresh with a new lookup.
    let again = hub.monitor("ranker", 1);
    assert!(!Arc::ptr_eq(&old, &again));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    hub.retain(|_, _| false);
    assert!(hub.snapshots_at(1_000).is_empty());
}

#[test]
fn an_invalid_window_is_rejected_up_front() {
    let calls = Arc::new(AtomicUsize::new(0));
    let config = DriftConfig { sub_buckets: 0, ..DriftConfig::default() };
    assert_eq!(DriftHub::new(config, lookup(&calls)).err(), Some(ConfigError::NoSubBuckets));
}

#[test]
fn serializes_reference_source_and_verdicts_in_snake_case() {
    let calls = Arc::new(AtomicUsize::new(0));
    let hub = hub(&calls);
    hub.monitor("ranker", 1);
    hub.monitor("retriever", 3);
    let json = serde_json::to_value(hub.snapshots_at(1_000)).expect("serialize");
    assert_eq!(json[0]["model"], "ranker");
    assert_eq!(json[0]["version"], 1);
    assert_eq!(json[0]["reference"], "shipped");
    assert_eq!(json[0]["snapshot"]["features"][0]["verdict"], "insufficient_data");
    assert_eq!(json[1]["reference"], "capturing");
    assert_eq!(json[1]["snapshot"]["capturing"]["target"], 3);
    assert_eq!(serde_json::to_value(ReferenceSource::Captured).expect("serialize"), "captured");
    assert_eq!(serde_json::to_value(Verdict::Significant).expect("serialize"), "significant");
}

#[test]
fn shipped_reference_falls_back_to_capturing_on_a_missing_or_invalid_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.json");
    let bad = dir.path().join("bad.json");
    std::fs::write(&good, REFERENCE).expect("write");
    std::fs::write(&bad, r#"{"version": 2, "features": {}}"#).expect("write");
    assert_eq!(shipped_reference(&good), Some(reference()));
    assert_eq!(shipped_reference(&bad), None);
    assert_eq!(shipped_reference(dir.path().join("absent.json")), None);

    // Wired into a hub: the bad file's version captures.
    let (good, bad) = (good.clone(), bad.clone());
    let lookup: ReferenceLookup =
        Arc::new(move |model: &str, _| shipped_reference(if model == "good" { &good } else { &bad }));
    let hub = DriftHub::new(DriftConfig::default(), lookup).expect("config");
    hub.monitor("good", 1);
    hub.monitor("bad", 1);
    let sources: Vec<_> = hub.snapshots_at(0).into_iter().map(|v| (v.model, v.reference)).collect();
    assert_eq!(sources, [("bad".into(), ReferenceSource::Capturing), ("good".into(), ReferenceSource::Shipped)]);
}
