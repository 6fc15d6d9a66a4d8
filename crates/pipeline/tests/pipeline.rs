//! The whole pipeline against the brute-force reference of make_fixtures.py (exact retrieval,
//! BM25, every transform, the same ONNX models in onnxruntime, the rules), and the business
//! rules and cold start on their own.

use std::collections::HashMap;
use std::sync::OnceLock;

use recserve_pipeline::{Pipelines, RecommendRequest, RecommendResponse};
use serde_json::Value;

use crate::common::{TractRunner, shop, shop_copy};

fn pipelines() -> &'static Pipelines {
    static P: OnceLock<Pipelines> = OnceLock::new();
    P.get_or_init(|| Pipelines::load(&shop().join("pipelines.toml")).unwrap())
}

fn run(p: &Pipelines, req: Value) -> RecommendResponse {
    let req = RecommendRequest::from_value(req).unwrap();
    let runner = TractRunner::new(&shop().join("models"));
    futures::executor::block_on(p.recommend(req, &runner)).unwrap()
}

fn check_against_reference(p: &Pipelines) {
    let expected: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(shop().join("expected.json")).unwrap()).unwrap();
    assert_eq!(expected.len(), 8);
    for case in expected {
        let name = case["name"].as_str().unwrap();
        let got = run(p, case["request"].clone());
        let want = case["expected"]["items"].as_array().unwrap();
        let got_ids: Vec<&str> = got.items.iter().map(|i| i.item_id.as_str()).collect();
        let want_ids: Vec<&str> = want.iter().map(|i| i["item_id"].as_str().unwrap()).collect();
        assert_eq!(got_ids, want_ids, "{name}");
        for (g, w) in got.items.iter().zip(want) {
            assert!(
                (f64::from(g.score) - w["score"].as_f64().unwrap()).abs() < 1e-4,
                "{name}: {} {}",
                g.score,
                w["score"]
            );
            assert_eq!(g.retrieved_by, w["retrieved_by"].as_str().unwrap(), "{name} {}", g.item_id);
        }
        let versions: HashMap<String, String> =
            serde_json::from_value(case["expected"]["model_versions"].clone()).unwrap();
        assert_eq!(got.model_versions.len(), versions.len(), "{name}");
        assert_eq!(got.cold_start, name.contains("cold"), "{name}");
    }
}

#[test]
fn matches_brute_force_reference() {
    check_against_reference(pipelines());
}

#[test]
fn matches_reference_with_hnsw_retrieval() {
    // Force the HNSW path (exact_below = 0); on 240 items with ef 200 it finds the exact top.
    let dir = shop_copy();
    let cfg = dir.path().join("pipelines.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replace("[tables]", "[ann]\nexact_below = 0\nexact_filtered_below = 0\n\n[tables]");
    std::fs::write(&cfg, text).unwrap();
    check_against_reference(&Pipelines::load(&cfg).unwrap());
}

#[test]
fn business_rules_hold() {
    let p = pipelines();
    for user in ["U0000001", "U0000002", "U0000020", "nobody"] {
        let r = run(
            p,
            serde_json::json!({"scenario": "home_feed", "user_id": user, "k": 12,
            "filters": {"min_price": 30.0, "max_price": 400.0, "exclude_items": ["I000080", "I999999"]}}),
        );
        let mut seen = std::collections::HashSet::new();
        let mut per_cat: HashMap<&str, usize> = HashMap::new();
        for it in &r.items {
            assert!(seen.insert(&it.item_id), "duplicate {}", it.item_id);
            assert!(it.stock > 0, "out of stock {}", it.item_id);
            assert!((30.0..=400.0).contains(&it.price));
            assert_ne!(it.item_id, "I000080");
            *per_cat.entry(&it.category).or_default() += 1;
            let info = p.item(&it.item_id).unwrap();
            assert_eq!(info.title, it.title);
        }
        assert!(per_cat.values().all(|n| *n <= 3), "{per_cat:?}");
        assert!(r.items.len() <= 12);
        assert!(r.items.windows(2).all(|w| w[0].score >= w[1].score));
    }
    // category filter: category or subcategory names
    let r = run(
        p,
        serde_json::json!({"scenario": "search", "user_id": "U0000004", "query": "black",
        "filters": {"categories": ["shoes", "electronics"]}, "k": 20}),
    );
    assert!(!r.items.is_empty());
    assert!(r.items.iter().all(|i| i.subcategory == "shoes" || i.category == "electronics"));
    let r =
        run(p, serde_json::json!({"scenario": "home_feed", "user_id": "U0000004", "filters": {"brands": ["Acme"]}}));
    assert!(r.items.iter().all(|i| i.brand == "Acme"));
}

#[test]
fn cold_start_is_served_by_popularity_without_user_tower() {
    let p = pipelines();
    let req =
        RecommendRequest::from_value(serde_json::json!({"scenario": "home_feed", "user_id": "brand-new"})).unwrap();
    let runner = TractRunner::new(&shop().join("models"));
    let r = futures::executor::block_on(p.recommend(req, &runner)).unwrap();
    assert!(r.cold_start);
    assert_eq!(r.items.len(), 10);
    assert!(r.items.iter().all(|i| i.retrieved_by == "popularity"));
    assert_eq!(r.model_versions.keys().collect::<Vec<_>>(), ["ranker"]);
    let calls = runner.calls.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0], ("ranker".to_string(), vec![60, 17]));
}

#[test]
fn known_user_makes_two_model_calls_with_batched_ranking() {
    let p = pipelines();
    let req =
        RecommendRequest::from_value(serde_json::json!({"scenario": "home_feed", "user_id": "U0000001"})).unwrap();
    let runner = TractRunner::new(&shop().join("models"));
    let r = futures::executor::block_on(p.recommend(req, &runner)).unwrap();
    assert_eq!(r.candidates, 60);
    let calls = runner.calls.lock().unwrap();
    assert_eq!(*calls, [("user_tower".to_string(), vec![1, 7]), ("ranker".to_string(), vec![60, 17])]);
    assert_eq!(r.model_versions.get("ranker").map(String::as_str), Some("1"));
    assert!(r.stages.total >= r.stages.ranking);
}

#[test]
fn config_lists_scenarios_models_and_errors() {
    let p = pipelines();
    assert_eq!(p.scenarios(), ["home_feed", "search"]);
    assert_eq!(p.required_models().into_iter().collect::<Vec<_>>(), ["ranker", "user_tower"]);
    assert!(p.item("I000001").is_some());
    assert!(p.item("I999999").is_none());

    let dir = shop_copy();
    let cfg = dir.path().join("pipelines.toml");
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, good.replace("retrieve = 60", "retrieve = 60\nretreive = 5")).unwrap();
    let e = Pipelines::load(&cfg).unwrap_err().to_string();
    assert!(e.contains("retreive"), "{e}");
    std::fs::write(&cfg, good.replace("max_k = 50", "max_k = 5")).unwrap();
    let e = Pipelines::load(&cfg).unwrap_err().to_string();
    assert!(e.contains("default_k"), "{e}");
    std::fs::write(&cfg, good.replace("user_features.csv", "missing.csv")).unwrap();
    let e = Pipelines::load(&cfg).unwrap_err().to_string();
    assert!(e.contains("missing.csv"), "{e}");
    std::fs::write(&cfg, good.replace("[tables]", "[ann]\nconnectivity = 1\n\n[tables]")).unwrap();
    let e = Pipelines::load(&cfg).unwrap_err().to_string();
    assert!(e.contains("connectivity"), "{e}");
}

#[test]
fn shipped_demo_config_loads() {
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ecommerce/pipelines.toml");
    if cfg.exists() && cfg.with_file_name("feature_spec.json").exists() {
        let p = Pipelines::load(&cfg).unwrap();
        assert!(p.scenarios().contains(&"home_feed".to_string()));
        assert!(p.scenarios().contains(&"search".to_string()));
    }
}

/// The demo's feature rows against the ones train.py wrote (examples/ecommerce/feature_samples.json):
/// the same spec, tables and raw requests must give the same model inputs in both languages.
#[test]
fn demo_feature_rows_match_train_py() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ecommerce");
    let (Ok(samples), true) =
        (std::fs::read_to_string(root.join("feature_samples.json")), root.join("pipelines.toml").exists())
    else {
        return;
    };
    let p = Pipelines::load(&root.join("pipelines.toml")).unwrap();
    let samples: Value = serde_json::from_str(&samples).unwrap();
    for case in samples["cases"].as_array().unwrap() {
        let user = case["user_id"].as_str().unwrap();
        let ctx = case["context"].as_object();
        let query = case["query"].as_str();
        let ids: Vec<&str> = case["item_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let emb: Vec<f32> = serde_json::from_value(case["user_embedding"].clone()).unwrap();
        let (urow, rows) = p.feature_rows(user, ctx, query, &ids, Some(&emb)).unwrap();
        let want_u: Vec<Vec<f32>> = serde_json::from_value(case["user_features"].clone()).unwrap();
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len(), "{user} {what}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{user} {what} column {i}: {x} vs {y}");
            }
        };
        close(&urow, &want_u[0], "user_features");
        let want_r: Vec<Vec<f32>> = serde_json::from_value(case["ranker_features"].clone()).unwrap();
        for (k, (g, w)) in rows.iter().zip(&want_r).enumerate() {
            close(g, w, &format!("ranker_features[{k}] ({})", ids[k]));
        }
    }
}

/// (model, version, features as (name, debug value), scores) of one observation.
type Observation = (String, String, Vec<(String, String)>, Vec<f64>);

/// Collects what the pipeline hands to its model observer.
#[derive(Default)]
struct Collector {
    want: bool,
    seen: std::sync::Mutex<Vec<Observation>>,
}

impl recserve_pipeline::ModelObserver for Collector {
    fn wants(&self) -> bool {
        self.want
    }
    fn observe(
        &self,
        model: &str,
        version: &str,
        features: &[(&str, recserve_pipeline::FeatureValue<'_>)],
        scores: &[f64],
    ) {
        let features = features.iter().map(|(n, v)| (n.to_string(), format!("{v:?}"))).collect();
        self.seen.lock().unwrap().push((model.to_string(), version.to_string(), features, scores.to_vec()));
    }
}

#[test]
fn the_observer_sees_the_user_tower_row_and_each_shown_item_with_raw_categories_and_model_values() {
    let p = Pipelines::load(&shop().join("pipelines.toml")).unwrap();
    let collector = std::sync::Arc::new(Collector { want: true, ..Default::default() });
    p.set_observer(collector.clone()).map_err(|_| "set twice").unwrap();
    assert!(p.set_observer(collector.clone()).is_err(), "the observer is set once");
    let got =
        run(&p, serde_json::json!({"scenario": "home_feed", "user_id": "U0000003", "context": {"device": "desktop"}}));
    let seen = collector.seen.lock().unwrap();
    let value = |features: &[(String, String)], name: &str| {
        features.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap()
    };
    let (tower, ranked): (Vec<_>, Vec<_>) = seen.iter().partition(|o| o.0 == "user_tower");
    assert_eq!(tower.len(), 1, "one user tower row per request");
    let (_, version, features, scores) = tower[0];
    assert_eq!(version, "1");
    assert!(scores.is_empty(), "the tower's output is an embedding, not a score");
    assert_eq!(features.len(), 4, "every user tower feature");
    assert!(value(features, "u_segment").starts_with("Categorical("), "{}", value(features, "u_segment"));
    assert!(value(features, "u_tenure").starts_with("Numeric("), "{}", value(features, "u_tenure"));
    assert_eq!(ranked.len(), got.items.len(), "one ranker observation per shown item");
    for ((model, version, features, scores), item) in ranked.into_iter().zip(&got.items) {
        assert_eq!((model.as_str(), version.as_str()), ("ranker", "1"));
        assert_eq!(scores.len(), 1);
        assert!((scores[0] - f64::from(item.score)).abs() < 1e-9);
        assert_eq!(features.len(), 12, "every ranker feature");
        // one_hot / vocabulary: the raw value; numeric chains: the number the model sees.
        assert_eq!(value(features, "c_device"), "Categorical(\"desktop\")");
        assert_eq!(value(features, "i_category"), format!("Categorical({:?})", item.category));
        assert!(value(features, "u_segment").starts_with("Categorical("), "{}", value(features, "u_segment"));
        assert!(value(features, "i_log_price").starts_with("Numeric("), "{}", value(features, "i_log_price"));
        assert!(value(features, "i_brand_hash").starts_with("Numeric("), "hash then standardize ends numeric");
    }
    drop(seen);

    let quiet = Pipelines::load(&shop().join("pipelines.toml")).unwrap();
    let collector = std::sync::Arc::new(Collector::default());
    quiet.set_observer(collector.clone()).map_err(|_| "set twice").unwrap();
    run(&quiet, serde_json::json!({"scenario": "home_feed", "user_id": "U0000003"}));
    assert!(collector.seen.lock().unwrap().is_empty(), "an observer that does not want the request sees nothing");
}
