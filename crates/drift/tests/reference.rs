//! Parsing, validation and writing of reference statistics.

use recserve_drift::{FeatureKind, FeatureReference, ReferenceError, ReferenceStats};

const GOOD: &str = r#"{
  "version": 1,
  "features": {
    "price": {"kind": "numeric", "bins": [null, -1.0, 0.0, 2.5, null], "counts": [1, 2, 3, 4],
              "mean": 0.3, "std": 1.1, "missing": 7, "extra": "ignored"},
    "device": {"kind": "categorical", "counts": {"mobile": 6, "desktop": 4}, "missing": 2}
  },
  "score": {"kind": "numeric", "bins": [null, 0.5, null], "counts": [5, 5], "missing": 0}
}"#;

fn with_feature(entry: &str) -> String {
    format!(r#"{{"version": 1, "features": {{"f": {entry}}}}}"#)
}

fn error_of(text: &str) -> String {
    match ReferenceStats::from_json(text) {
        Ok(stats) => panic!("accepted: {stats:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn parses_both_kinds_and_the_score() {
    let stats = ReferenceStats::from_json(GOOD).expect("valid");
    let Some(FeatureReference::Numeric(price)) = stats.feature("price") else {
        panic!("price is numeric");
    };
    assert_eq!(price.edges(), &[-1.0, 0.0, 2.5]);
    assert_eq!(price.counts(), &[1, 2, 3, 4]);
    assert_eq!((price.mean(), price.std(), price.missing()), (Some(0.3), Some(1.1), 7));
    let Some(FeatureReference::Categorical(device)) = stats.feature("device") else {
        panic!("device is categorical");
    };
    assert_eq!(device.categories(), &["desktop".to_owned(), "mobile".to_owned()]);
    assert_eq!(device.counts(), &[4, 6]);
    assert_eq!(device.missing(), 2);
    assert_eq!(device.position("mobile"), Some(1));
    assert_eq!(device.position("tv"), None);
    // Monitor layout: categories, __other__, missing.
    assert_eq!(stats.feature("device").map(FeatureReference::histogram), Some(vec![4, 6, 0, 2]));
    assert_eq!(stats.feature("price").map(FeatureReference::kind), Some(FeatureKind::Numeric));
    assert_eq!(stats.score().map(|s| s.counts().to_vec()), Some(vec![5, 5]));
}

#[test]
fn bins_follow_the_writer_rule_lower_edge_inclusive() {
    let stats = ReferenceStats::from_json(GOOD).expect("valid");
    let Some(FeatureReference::Numeric(price)) = stats.feature("price") else {
        panic!("price is numeric");
    };
    // numpy searchsorted(inner, x, side="right"): bin j holds e_j <= x < e_(j+1).
    assert_eq!(price.bin_of(f64::NEG_INFINITY), 0);
    assert_eq!(price.bin_of(-1.000_001), 0);
    assert_eq!(price.bin_of(-1.0), 1);
    assert_eq!(price.bin_of(-0.5), 1);
    assert_eq!(price.bin_of(0.0), 2);
    assert_eq!(price.bin_of(2.499), 2);
    assert_eq!(price.bin_of(2.5), 3);
    assert_eq!(price.bin_of(f64::INFINITY), 3);
}

#[test]
fn score_is_optional() {
    let stats = ReferenceStats::from_json(r#"{"version": 1, "features": {}}"#).expect("valid");
    assert!(stats.score().is_none());
    assert!(stats.features().is_empty());
}

#[test]
fn writes_the_format_back() {
    let stats = ReferenceStats::from_json(GOOD).expect("valid");
    let text = stats.to_json().expect("serialises");
    assert_eq!(ReferenceStats::from_json(&text).expect("reads back"), stats);
    let value: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(value["features"]["price"]["bins"], serde_json::json!([null, -1.0, 0.0, 2.5, null]));
    assert_eq!(value["features"]["device"]["counts"]["mobile"], 6);
}

#[test]
fn unknown_kind_names_the_feature() {
    let msg = error_of(&with_feature(r#"{"kind": "histogram", "counts": [1]}"#));
    assert!(msg.contains("feature `f`"), "{msg}");
    assert!(msg.contains("unknown variant `histogram`"), "{msg}");
}

#[test]
fn counts_must_be_one_per_bin() {
    let msg = error_of(&with_feature(
        r#"{"kind": "numeric", "bins": [null, 0.0, 1.0, null], "counts": [1, 2], "missing": 0}"#,
    ));
    assert_eq!(msg, "feature `f`: 2 counts for 4 bin edges; expected one count per bin (3 counts)");
}

#[test]
fn edges_must_increase() {
    let msg =
        error_of(&with_feature(r#"{"kind": "numeric", "bins": [null, 0.0, 2.0, 2.0, null], "counts": [1, 2, 3, 4]}"#));
    assert_eq!(msg, "feature `f`: bin edges must be strictly increasing: edge 3 (2) <= the edge before it (2)");
    let msg = error_of(&with_feature(r#"{"kind": "numeric", "bins": [null, 3.0, 1.0, null], "counts": [1, 2, 3]}"#));
    assert!(msg.contains("edge 2 (1) <= the edge before it (3)"), "{msg}");
}

#[test]
fn bins_must_be_open_at_both_ends_and_only_there() {
    let msg = error_of(&with_feature(r#"{"kind": "numeric", "bins": [0.0, 1.0, null], "counts": [1, 2]}"#));
    assert!(msg.contains("must start and end with null"), "{msg}");
    let msg = error_of(&with_feature(r#"{"kind": "numeric", "bins": [null], "counts": []}"#));
    assert!(msg.contains("must start and end with null"), "{msg}");
    let msg =
        error_of(&with_feature(r#"{"kind": "numeric", "bins": [null, 0.0, null, 1.0, null], "counts": [1, 2, 3, 4]}"#));
    assert!(msg.contains("bin edge 2 is null"), "{msg}");
}

#[test]
fn wrong_types_and_empty_references_are_rejected() {
    let msg = error_of(&with_feature(r#"{"kind": "numeric", "bins": [null, null], "counts": [-1]}"#));
    assert!(msg.starts_with("feature `f`: invalid value: integer `-1`"), "{msg}");
    let msg = error_of(&with_feature(r#"{"kind": "categorical", "missing": 0}"#));
    assert!(msg.contains("missing field `counts`"), "{msg}");
    let msg = error_of(&with_feature(r#"{"kind": "categorical", "counts": {}, "missing": 0}"#));
    assert_eq!(msg, "feature `f`: no observations: every count is 0");
    let msg = error_of(&with_feature(r#"{"kind": "numeric", "bins": [null, 1.0, null], "counts": [0, 0]}"#));
    assert_eq!(msg, "feature `f`: no observations: every count is 0");
}

#[test]
fn top_level_problems() {
    assert!(error_of("{not json").starts_with("not valid JSON"));
    assert_eq!(error_of(r#"{"features": {}}"#), "missing field `version`");
    assert_eq!(error_of(r#"{"version": 2, "features": {}}"#), "unsupported version 2 (this reader knows version 1)");
    assert!(error_of(r#"{"version": 1}"#).contains("missing field `features`"));
    let msg = error_of(r#"{"version": 1, "features": {}, "score": {"kind": "categorical", "counts": {"a": 1}}}"#);
    assert_eq!(msg, "score: the score must be numeric, not categorical");
}

#[test]
fn load_errors_name_the_path() {
    let dir = std::env::temp_dir().join(format!("recserve-drift-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let missing = dir.join("absent.json");
    let err = ReferenceStats::load(&missing).expect_err("no file");
    assert!(matches!(err, ReferenceError::Read { .. }));
    assert!(err.to_string().contains("absent.json"), "{err}");

    let bad = dir.join("bad.json");
    std::fs::write(&bad, with_feature(r#"{"kind": "numeric", "bins": [null, null], "counts": [1, 2]}"#))
        .expect("write");
    let msg = ReferenceStats::load(&bad).expect_err("bad file").to_string();
    assert!(msg.starts_with("reference statistics "), "{msg}");
    assert!(msg.contains("bad.json: feature `f`: 2 counts for 2 bin edges"), "{msg}");

    let good = dir.join("good.json");
    std::fs::write(&good, GOOD).expect("write");
    assert_eq!(ReferenceStats::load(&good).expect("loads").features().len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}
