//! Every transform against hand-computed values; defaults for missing, empty and unparseable
//! values; spec errors.

use recserve_pipeline::features::{Feature, FeatureDef, FeatureSpec, Raw, fnv1a};
use serde_json::json;

fn feature(def: serde_json::Value) -> Feature {
    let def: FeatureDef = serde_json::from_value(def).unwrap();
    Feature::compile(&def).unwrap()
}

fn eval(f: &Feature, raw: Raw<'_>) -> Vec<f32> {
    let mut out = vec![f32::NAN; f.width()];
    f.eval(raw, &mut out);
    out
}

fn one(transforms: serde_json::Value, default: serde_json::Value) -> Feature {
    feature(json!({"name": "f", "source": "item.x", "default": default, "transforms": transforms}))
}

#[test]
fn fnv1a_matches_reference_vectors() {
    // FNV-1a 64 test vectors (Fowler/Noll/Vo), also computed with Python in make_fixtures.py.
    assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    assert_eq!(fnv1a(b"mobile"), 0x1c89_7668_dc73_ab37);
}

#[test]
fn hash_is_fnv1a_modulo_buckets() {
    let f = one(json!([{"op": "hash", "buckets": 7}]), json!("mobile"));
    assert_eq!(eval(&f, Raw::Str("mobile")), [4.0]); // 0x1c897668dc73ab37 % 7
    assert_eq!(eval(&f, Raw::Str("desktop")), [5.0]); // 0xe177654e8aeb6b13 % 7
    let f = one(json!([{"op": "hash", "buckets": 1000}]), json!(""));
    assert_eq!(eval(&f, Raw::Str("foobar")), [968.0]);
    // a number hashes as its text, integral values without ".0"
    let f = one(json!([{"op": "hash", "buckets": 1000}]), json!("x"));
    assert_eq!(eval(&f, Raw::Num(3.0)), eval(&f, Raw::Str("3")));
}

#[test]
fn clip_log1p_standardize() {
    let f = one(json!([{"op": "clip", "min": 0.0, "max": 100.0}]), json!(0));
    assert_eq!(eval(&f, Raw::Num(-5.0)), [0.0]);
    assert_eq!(eval(&f, Raw::Num(150.0)), [100.0]);
    assert_eq!(eval(&f, Raw::Str(" 42.5 ")), [42.5]);
    let f = one(json!([{"op": "clip", "max": 1.0}]), json!(0));
    assert_eq!(eval(&f, Raw::Num(-7.0)), [-7.0]);
    let f = one(json!([{"op": "log1p"}, {"op": "standardize", "mean": 3.0, "std": 2.0}]), json!(0));
    // ln(1 + 41) = 3.7376696, (3.7376696 - 3) / 2 = 0.3688348
    assert!((eval(&f, Raw::Num(41.0))[0] - 0.368_834_8).abs() < 1e-6);
    let f = one(json!([{"op": "standardize", "mean": 4.0, "std": 0.0}]), json!(0));
    assert_eq!(eval(&f, Raw::Num(10.0)), [6.0], "std 0 means x - mean");
}

#[test]
fn log1p_below_minus_one_falls_back_to_default() {
    let f = one(json!([{"op": "log1p"}]), json!(0.0));
    assert_eq!(eval(&f, Raw::Num(-1.0)), [0.0]);
    assert_eq!(eval(&f, Raw::Num(-3.0)), [0.0]);
}

#[test]
fn bucketize_counts_boundaries_at_or_below() {
    let f = one(json!([{"op": "bucketize", "boundaries": [10.0, 100.0, 250.0]}]), json!(0));
    for (x, want) in [(-1.0, 0.0), (9.99, 0.0), (10.0, 1.0), (99.0, 1.0), (100.0, 2.0), (250.0, 3.0), (1e9, 3.0)] {
        assert_eq!(eval(&f, Raw::Num(x)), [want], "x = {x}");
    }
}

#[test]
fn vocabulary_with_oov() {
    let f = one(json!([{"op": "vocabulary", "values": ["a", "b", "c"]}]), json!("a"));
    assert_eq!(eval(&f, Raw::Str("b")), [1.0]);
    assert_eq!(eval(&f, Raw::Str("c")), [2.0]);
    assert_eq!(eval(&f, Raw::Str("zzz")), [3.0], "OOV is len(values)");
    assert_eq!(eval(&f, Raw::Missing), [0.0], "missing → default 'a'");
    // a later numeric transform uses the index
    let f = one(
        json!([{"op": "vocabulary", "values": ["a", "b"]}, {"op": "standardize", "mean": 1, "std": 2}]),
        json!("a"),
    );
    assert_eq!(eval(&f, Raw::Str("b")), [0.0]);
}

#[test]
fn one_hot_columns() {
    let f = one(json!([{"op": "one_hot", "values": ["mobile", "desktop", "tablet"]}]), json!("mobile"));
    assert_eq!(f.width(), 3);
    assert_eq!(eval(&f, Raw::Str("desktop")), [0.0, 1.0, 0.0]);
    assert_eq!(eval(&f, Raw::Str("tv")), [0.0, 0.0, 0.0], "unknown → all zero");
    assert_eq!(eval(&f, Raw::Str("")), [1.0, 0.0, 0.0], "empty → default");
    assert_eq!(eval(&f, Raw::Missing), [1.0, 0.0, 0.0]);
}

#[test]
fn defaults_for_missing_empty_unparseable() {
    let f = one(json!([{"op": "clip", "min": 0}, {"op": "log1p"}]), json!(30));
    let d = (31.0f64).ln() as f32;
    assert_eq!(eval(&f, Raw::Missing), [d]);
    assert_eq!(eval(&f, Raw::Str("")), [d]);
    assert_eq!(eval(&f, Raw::Str("   ")), [d]);
    assert_eq!(eval(&f, Raw::Str("n/a")), [d]);
    assert_eq!(eval(&f, Raw::Str("NaN")), [d]);
    assert_eq!(eval(&f, Raw::Num(f64::INFINITY)), [d]);
    // no transforms: the number itself; a string that is not a number → default
    let f = one(json!([]), json!(0.5));
    assert_eq!(eval(&f, Raw::Str("2.25")), [2.25]);
    assert_eq!(eval(&f, Raw::Str("abc")), [0.5]);
}

#[test]
fn spec_errors_name_the_feature() {
    let bad = |t: serde_json::Value, d: serde_json::Value| {
        let def: FeatureDef =
            serde_json::from_value(json!({"name": "broken", "source": "item.x", "default": d, "transforms": t}))
                .unwrap();
        Feature::compile(&def).unwrap_err().to_string()
    };
    assert!(bad(json!([{"op": "one_hot", "values": ["a"]}, {"op": "log1p"}]), json!("a")).contains("last"));
    assert!(bad(json!([{"op": "bucketize", "boundaries": [3, 1]}]), json!(0)).contains("ascending"));
    assert!(bad(json!([{"op": "log1p"}]), json!("abc")).contains("default"));
    assert!(bad(json!([{"op": "hash", "buckets": 0}]), json!("a")).contains("buckets"));
    assert!(bad(json!([]), json!(null)).contains("broken"));
    let def: Result<FeatureDef, _> =
        serde_json::from_value(json!({"name": "x", "source": "item.x", "default": 0, "transforms": [{"op": "sqrt"}]}));
    assert!(def.is_err());
    let def: FeatureDef = serde_json::from_value(json!({"name": "x", "source": "nowhere.y", "default": 0})).unwrap();
    assert!(Feature::compile(&def).unwrap_err().to_string().contains("unknown source"));
}

#[test]
fn fixture_spec_compiles_with_expected_widths() {
    let spec =
        FeatureSpec::parse(&std::fs::read_to_string(crate::common::shop().join("feature_spec.json")).unwrap()).unwrap();
    assert_eq!(spec.user_tower.width, 7);
    assert_eq!(spec.ranker.width, 17);
    assert_eq!(spec.embedding_dim, 8);
}

#[test]
fn shipped_demo_spec_compiles() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ecommerce/feature_spec.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        FeatureSpec::parse(&text).unwrap();
    }
}
