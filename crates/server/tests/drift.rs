//! Drift of V2 tensor inputs: each row of a 2-D FP32 input is one observation with features
//! `<input>[<i>]`, the model's one-score-per-row output is its score; a model without a shipped
//! reference captures one from its first sampled rows, then a shifted column drifts.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use recserve_server::experiments::{Experiments, ExperimentsConfig};
use recserve_server::{AppState, rest};
use recserve_testkit::{loaded_registry, repository_with};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

async fn call(app: &axum::Router, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder().method(method).uri(path).body(Body::from(body.to_string())).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Standard normal draws from a fixed seed (xorshift and Box–Muller), so the test is repeatable.
struct Normal(u64);

impl Normal {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn next(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

/// Sends `requests` requests of `rows` rows of 16 normal features to `mlp`; `shift` is added to
/// column 0.
async fn send(app: &axum::Router, rng: &mut Normal, requests: usize, rows: usize, shift: f32) {
    for _ in 0..requests {
        let data: Vec<f32> = (0..rows * 16).map(|i| rng.next() + if i % 16 == 0 { shift } else { 0.0 }).collect();
        let body = json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [rows, 16], "data": data}]});
        let (status, reply) = call(app, "POST", "/v2/models/mlp/infer", body).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
    }
}

fn mlp_drift(drift: &Value) -> &Value {
    drift["data"].as_array().unwrap().iter().find(|v| v["model"] == "mlp").unwrap_or_else(|| panic!("{drift}"))
}

fn feature<'a>(version: &'a Value, name: &str) -> &'a Value {
    version["snapshot"]["features"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap()
}

#[tokio::test]
async fn v2_rows_are_captured_as_a_reference_then_a_shifted_column_drifts() {
    let repo = repository_with(&["mlp", "embedding"]);
    let registry = loaded_registry(repo.path()).await;
    let mut config = ExperimentsConfig { drift_sample_rate: 1.0, ..ExperimentsConfig::default() };
    config.drift.capture_requests = 2000;
    let mut state = AppState::new(registry.clone());
    state.experiments = Some(Arc::new(Experiments::new(registry, config).unwrap()));
    let app = rest::router(state);
    let mut rng = Normal(0x5eed_1234_abcd_0001);

    send(&app, &mut rng, 10, 50, 0.0).await;
    let (_, drift) = call(&app, "GET", "/api/v1/drift", Value::Null).await;
    let mlp = mlp_drift(&drift);
    assert_eq!(mlp["reference"], "capturing", "{mlp}");
    assert_eq!(mlp["snapshot"]["capturing"]["requests"], 500, "one observation per row: {mlp}");
    let (status, answer) = call(&app, "GET", "/api/v1/drift/reference?model=mlp&version=1", Value::Null).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("500 of 2000"), "{answer}");

    send(&app, &mut rng, 30, 50, 0.0).await;
    send(&app, &mut rng, 20, 50, 0.0).await;
    let (_, drift) = call(&app, "GET", "/api/v1/drift", Value::Null).await;
    let mlp = mlp_drift(&drift);
    assert_eq!(mlp["reference"], "captured", "{mlp}");
    assert_eq!(mlp["snapshot"]["features"].as_array().unwrap().len(), 16, "one feature per column: {mlp}");
    for i in 0..16 {
        let f = feature(mlp, &format!("features[{i}]"));
        assert_eq!(f["n"], 1000, "{f}");
        assert_ne!(f["verdict"], "significant", "undrifted rows: {f}");
    }
    assert_eq!(mlp["snapshot"]["score"]["n"], 1000, "the [n, 1] output is the score: {mlp}");

    send(&app, &mut rng, 40, 50, 2.0).await;
    let (_, drift) = call(&app, "GET", "/api/v1/drift", Value::Null).await;
    let mlp = mlp_drift(&drift);
    let shifted = feature(mlp, "features[0]");
    assert_eq!(shifted["verdict"], "significant", "{shifted}");
    assert!(shifted["psi"].as_f64().unwrap() > 0.25, "{shifted}");
    assert_ne!(feature(mlp, "features[7]")["verdict"], "significant", "{mlp}");
    let (status, reference) = call(&app, "GET", "/api/v1/drift/reference?model=mlp&version=1", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{reference}");
    assert!(reference["features"]["features[15]"].is_object(), "the captured reference, shippable: {reference}");

    // INT64 ids are not feature columns: no monitor for the embedding model.
    let ids = json!({"inputs": [{"name": "item_ids", "datatype": "INT64", "shape": [1, 4], "data": [1, 2, 3, 4]}]});
    let (status, reply) = call(&app, "POST", "/v2/models/embedding/infer", ids).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (_, drift) = call(&app, "GET", "/api/v1/drift", Value::Null).await;
    assert!(drift["data"].as_array().unwrap().iter().all(|v| v["model"] != "embedding"), "{drift}");
}
