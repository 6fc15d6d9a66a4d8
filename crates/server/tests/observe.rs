//! Telemetry through the transports: one observation per V2 request (REST JSON, REST binary,
//! gRPC) with exact counters, labels, stage and histogram counts in `/metrics`; batch and queue
//! figures from the batcher; the Prometheus HTTP API on live data; `promtool check metrics` on
//! the live exposition and `promtool check config` on `deploy/prometheus/prometheus.yml`; and
//! `/v1/recommend` observed once with the pipeline's stages.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use recserve_server::grpc::GrpcInferenceServiceClient;
use recserve_server::grpc::proto::ModelInferRequest;
use recserve_server::grpc::proto::model_infer_request::InferInputTensor;
use recserve_server::{AppState, rest};
use recserve_telemetry::store::now_ms;
use recserve_testkit::{TestServer, loaded_registry, repository_with, shop_state};
use serde_json::{Value, json};
use std::collections::HashMap;
use tower::ServiceExt;

async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> (StatusCode, String, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let status = resp.status();
    let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, ctype, resp.into_body().collect().await.unwrap().to_bytes().to_vec())
}

async fn get_json(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(app, "GET", uri, vec![], &[]).await;
    (status, serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{uri}: not JSON ({e})")))
}

fn features(rows: usize) -> Vec<f32> {
    (0..rows * 16).map(|i| (i % 7) as f32 / 7.0).collect()
}

fn mlp_json(rows: usize) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [rows, 16], "data": features(rows)}]}),
    )
    .unwrap()
}

/// The binary tensor extension: JSON header, then the raw little-endian floats.
fn mlp_binary(rows: usize) -> (Vec<u8>, usize) {
    let raw: Vec<u8> = features(rows).iter().flat_map(|f| f.to_le_bytes()).collect();
    let header = serde_json::to_vec(&json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [rows, 16],
        "parameters": {"binary_data_size": raw.len()}}]}))
    .unwrap();
    let n = header.len();
    ([header, raw].concat(), n)
}

/// `name{labels}` → value, for every sample line of an exposition.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse::<f64>().unwrap())
        })
        .collect()
}

fn value(s: &HashMap<String, f64>, series: &str) -> f64 {
    *s.get(series).unwrap_or_else(|| panic!("no series {series} in /metrics"))
}

const MLP: &str = r#"model="mlp",version="1",pipeline="none""#;

/// Drives a known mix of V2 requests through REST (JSON, binary) and gRPC; returns the router.
async fn drive_mix(state: &AppState) -> axum::Router {
    let app = rest::router(state.clone());
    // REST JSON: 3 ok (1, 2 and 3 rows).
    for rows in 1..=3 {
        let (status, _, body) = send(&app, "POST", "/v2/models/mlp/infer", mlp_json(rows), &[]).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    // REST binary: 1 ok with 4 rows, through the version's own URL.
    let (body, n) = mlp_binary(4);
    let (status, _, _) = send(
        &app,
        "POST",
        "/v2/models/mlp/versions/1/infer",
        body,
        &[("inference-header-content-length", n.to_string())],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Malformed JSON: refused while decoding (no stage reached).
    let (status, _, _) = send(&app, "POST", "/v2/models/mlp/infer", b"{not json".to_vec(), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Wrong input name: decoded, then refused by the input check before the queue.
    let wrong = serde_json::to_vec(
        &json!({"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1, 16], "data": features(1)}]}),
    )
    .unwrap();
    let (status, _, _) = send(&app, "POST", "/v2/models/mlp/infer", wrong, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A model that does not exist: labelled unknown, never by the name in the URL.
    let (status, _, _) = send(&app, "POST", "/v2/models/no_such_model/infer", mlp_json(1), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // gRPC: 1 ok with 2 rows.
    let server = TestServer::start(state.clone()).await;
    let mut client = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc)).await.unwrap();
    let raw: Vec<u8> = features(2).iter().flat_map(|f| f.to_le_bytes()).collect();
    let reply = client
        .model_infer(ModelInferRequest {
            model_name: "mlp".into(),
            inputs: vec![InferInputTensor {
                name: "features".into(),
                datatype: "FP32".into(),
                shape: vec![2, 16],
                ..Default::default()
            }],
            raw_input_contents: vec![raw],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.model_name, "mlp");
    app
}

#[tokio::test]
async fn metrics_count_every_v2_request_once_with_its_stages() {
    let repo = repository_with(&["mlp", "fixed_shape"]);
    let state = AppState::new(loaded_registry(repo.path()).await);
    let app = drive_mix(&state).await;

    let (status, ctype, body) = send(&app, "GET", "/metrics", vec![], &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ctype, recserve_telemetry::exposition::CONTENT_TYPE);
    let text = String::from_utf8(body).unwrap();
    let s = samples(&text);
    let req =
        |labels: &str, outcome: &str| value(&s, &format!("recserve_requests_total{{{labels},outcome=\"{outcome}\"}}"));
    assert_eq!(req(MLP, "ok"), 5.0, "3 JSON + 1 binary + 1 gRPC");
    assert_eq!(req(MLP, "bad_request"), 2.0);
    assert_eq!(req(MLP, "not_found"), 0.0);
    assert_eq!(req(MLP, "cancelled"), 0.0);
    let unknown = r#"model="unknown",version="none",pipeline="none""#;
    assert_eq!(req(unknown, "not_found"), 1.0);
    assert!(!text.contains("no_such_model"), "a request's model name became a label value");

    // End-to-end latency: one observation per request.
    assert_eq!(value(&s, &format!("recserve_request_duration_seconds_count{{{MLP}}}")), 7.0);
    assert_eq!(value(&s, &format!("recserve_request_duration_seconds_bucket{{{MLP},le=\"+Inf\"}}")), 7.0);
    assert_eq!(value(&s, &format!("recserve_request_duration_seconds_count{{{unknown}}}")), 1.0);
    // Stages, each at most once per request: preprocess for the 6 decoded requests, the batcher
    // stages and postprocess for the 5 that ran.
    let stage = |st: &str| value(&s, &format!("recserve_stage_duration_seconds_count{{{MLP},stage=\"{st}\"}}"));
    assert_eq!(stage("preprocess"), 6.0);
    assert_eq!(stage("queue"), 5.0);
    assert_eq!(stage("inference"), 5.0);
    assert_eq!(stage("postprocess"), 5.0);
    assert_eq!(stage("retrieval"), 0.0);
    assert_eq!(stage("ranking"), 0.0);
    assert!(value(&s, &format!("recserve_stage_duration_seconds_sum{{{MLP},stage=\"inference\"}}")) > 0.0);
    assert_eq!(value(&s, &format!("recserve_in_flight_requests{{{MLP}}}")), 0.0);

    // The batcher: requests were sequential, so 5 batches of 1, 2, 3, 4 and 2 rows.
    assert_eq!(value(&s, r#"recserve_batch_size_count{model="mlp",version="1"}"#), 5.0);
    assert_eq!(value(&s, r#"recserve_batch_size_sum{model="mlp",version="1"}"#), 12.0);
    assert_eq!(value(&s, r#"recserve_batch_size_bucket{model="mlp",version="1",le="1"}"#), 1.0);
    assert_eq!(value(&s, r#"recserve_queue_capacity{model="mlp",version="1"}"#), 1024.0);
    assert_eq!(value(&s, r#"recserve_queue_depth{model="mlp",version="1"}"#), 0.0);
    // Memory estimate of every loaded version, requests or not.
    let file = std::fs::metadata(repo.path().join("mlp/1/model.onnx")).unwrap().len();
    assert_eq!(
        value(&s, r#"recserve_model_memory_bytes{model="mlp",version="1"}"#),
        (file * recserve_server::observe::MODEL_MEMORY_FACTOR) as f64
    );
    assert!(value(&s, r#"recserve_model_memory_bytes{model="fixed_shape",version="1"}"#) > 0.0);
    assert!(text.contains("process_resident_memory_bytes"), "standard process metrics missing");

    // The statistics endpoint counts the same requests (one path records both).
    let (_, stats) = get_json(&app, "/v2/models/mlp/stats").await;
    let m = &stats["model_stats"][0];
    assert_eq!(m["inference_stats"]["success"]["count"], 5);
    assert_eq!(m["execution_count"], 5);
    assert_eq!(m["inference_count"], 12);
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn query_api_answers_in_prometheus_shape_on_live_data() {
    let repo = repository_with(&["mlp"]);
    let state = AppState::new(loaded_registry(repo.path()).await);
    let app = drive_mix(&state).await;
    let telemetry = state.telemetry.clone().unwrap();
    let t0 = now_ms();
    telemetry.store.scrape(&telemetry.registry, t0 - 2_000);
    telemetry.store.scrape(&telemetry.registry, t0);

    let q = enc(r#"sum by (outcome) (recserve_requests_total{model="mlp"})"#);
    let (status, v) = get_json(&app, &format!("/api/v1/query?query={q}&time={}", t0 as f64 / 1000.0)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "vector");
    let by: HashMap<String, String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["metric"]["outcome"].as_str().unwrap().to_string(), r["value"][1].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(by["ok"], "5");
    assert_eq!(by["bad_request"], "2");
    assert_eq!(v["data"]["result"][0]["value"][0].as_f64().unwrap(), t0 as f64 / 1000.0);

    // POST with a form body, as Grafana sends it.
    let form = format!("query={}&time={}", enc("recserve_stage_duration_seconds_count{stage=\"queue\"}"), t0 / 1000);
    let (status, _, body) = send(
        &app,
        "POST",
        "/api/v1/query",
        form.into_bytes(),
        &[("content-type", "application/x-www-form-urlencoded".to_string())],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["data"]["result"][0]["metric"]["model"], "mlp");
    assert_eq!(v["data"]["result"][0]["value"][1], "5");

    let range = format!(
        "/api/v1/query_range?query={}&start={}&end={}&step=1",
        enc(r#"recserve_batch_size_count{model="mlp"}"#),
        (t0 - 2_000) / 1000,
        t0 / 1000
    );
    let (status, v) = get_json(&app, &range).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    let points = v["data"]["result"][0]["values"].as_array().unwrap();
    assert!(!points.is_empty() && points.iter().all(|p| p[1] == "5"), "{points:?}");

    let (_, v) =
        get_json(&app, &format!("/api/v1/series?match[]={}", enc("recserve_requests_total{outcome=\"ok\"}"))).await;
    assert_eq!(v["status"], "success");
    assert!(
        v["data"].as_array().unwrap().iter().any(|m| m["model"] == "mlp" && m["__name__"] == "recserve_requests_total")
    );
    let (_, v) = get_json(&app, "/api/v1/labels").await;
    let names: Vec<&str> = v["data"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    for l in ["__name__", "model", "version", "pipeline", "stage", "outcome", "le"] {
        assert!(names.contains(&l), "labels lack {l}: {names:?}");
    }
    let (_, v) = get_json(&app, "/api/v1/label/stage/values").await;
    assert_eq!(v["data"], json!(["inference", "postprocess", "preprocess", "queue", "ranking", "retrieval"]));

    // Errors in Prometheus's shape.
    let (status, v) = get_json(&app, &format!("/api/v1/query?query={}", enc("sum(("))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "bad_data");

    // The bottleneck analysis over the same data.
    let (status, v) = get_json(&app, "/api/v1/bottleneck?window=5m").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["window_seconds"], 300.0);
    assert!(v["summary"].is_string());
    let (status, _) = get_json(&app, "/api/v1/bottleneck?window=soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn promtool_accepts_the_live_metrics() {
    let repo = repository_with(&["mlp"]);
    let state = AppState::new(loaded_registry(repo.path()).await);
    let app = drive_mix(&state).await;
    let (_, _, body) = send(&app, "GET", "/metrics", vec![], &[]).await;
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match promtool {
        Ok(c) => c,
        Err(e) => return promtool_unavailable(&e),
    };
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    let complaints = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && complaints.trim().is_empty(), "promtool check metrics complains:\n{complaints}");
}

/// `/api/v1/percentiles`: the exact p50/max of known latencies (recorded through the server's
/// telemetry), the estimate beside them, a stable shape, and 400 on a bad window.
#[tokio::test]
async fn percentiles_endpoint_reports_exact_latencies_beside_the_bucket_estimate() {
    let repo = repository_with(&["mlp"]);
    let state = AppState::new(loaded_registry(repo.path()).await);
    let telemetry = state.telemetry.clone().unwrap();
    let target = telemetry.serving.target("ranker", "3", "home").unwrap();
    let t0 = now_ms();
    telemetry.store.scrape(&telemetry.registry, t0 - 10_000);
    for ms in [4u64, 8, 12, 16, 20] {
        target.start().finish_with_duration(recserve_telemetry::Outcome::Ok, std::time::Duration::from_millis(ms));
    }
    telemetry.store.scrape(&telemetry.registry, t0 - 5_000);
    let app = rest::router(state.clone());
    let (status, v) = get_json(&app, "/api/v1/percentiles?window=60s").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["window_seconds"], 60.0);
    let row = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["model"] == "ranker" && t["version"] == "3" && t["pipeline"] == "home")
        .unwrap_or_else(|| panic!("no ranker row: {v}"));
    assert_eq!(row["count"], 5);
    let near = |x: &Value, want: f64| (x.as_f64().unwrap() - want).abs() <= want * 1e-3;
    assert!(near(&row["exact"]["p50"], 0.012), "{row}");
    assert!(near(&row["exact"]["max"], 0.020), "{row}");
    for q in ["p50", "p95", "p99", "max"] {
        assert!(row["exact"][q].is_f64(), "{row}");
        assert!(row["bucket_estimate"][q].is_f64(), "{row}");
    }
    let (status, _) = get_json(&app, "/api/v1/percentiles").await;
    assert_eq!(status, StatusCode::OK);
    for bad in ["soon", "0s", "-5s"] {
        let (status, _) = get_json(&app, &format!("/api/v1/percentiles?window={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "window={bad}");
    }
}

/// `deploy/prometheus/prometheus.yml` is a valid Prometheus configuration (`promtool check
/// config`, which also fails on a `rule_files` entry naming a missing file) scraping `/metrics`
/// as job `recserve` every 5 s.
#[test]
fn promtool_accepts_the_deploy_scrape_config() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/prometheus.yml");
    let text = std::fs::read_to_string(&config).unwrap();
    for needle in ["job_name: recserve", "metrics_path: /metrics", "scrape_interval: 5s"] {
        assert!(text.contains(needle), "{} lacks `{needle}`", config.display());
    }
    let out = match std::process::Command::new("promtool").arg("check").arg("config").arg(&config).output() {
        Ok(out) => out,
        Err(e) => return promtool_unavailable(&e),
    };
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool check config rejects {}:\n{said}", config.display());
    assert!(said.contains("SUCCESS"), "{said}");
}

#[tokio::test]
async fn recommend_is_one_observation_with_the_pipeline_stages() {
    let state = shop_state().await;
    let app = rest::router(state.clone());
    let post = |body: Value| {
        let app = app.clone();
        async move { send(&app, "POST", "/v1/recommend", serde_json::to_vec(&body).unwrap(), &[]).await.0 }
    };
    assert_eq!(post(json!({"scenario": "home_feed", "user_id": "U0000042", "k": 5})).await, StatusCode::OK);
    assert_eq!(post(json!({"scenario": "home_feed", "user_id": "U0000043", "k": 5})).await, StatusCode::OK);
    assert_eq!(
        post(json!({"scenario": "search", "user_id": "U0000042", "query": "running shoes", "k": 5})).await,
        StatusCode::OK
    );
    // A known scenario that fails validation, and a scenario nobody configured.
    assert_eq!(post(json!({"scenario": "search", "user_id": "U0000042", "k": 5})).await, StatusCode::BAD_REQUEST);
    assert_eq!(post(json!({"scenario": "drop table", "user_id": "U0000042"})).await, StatusCode::BAD_REQUEST);

    let (_, _, body) = send(&app, "GET", "/metrics", vec![], &[]).await;
    let text = String::from_utf8(body).unwrap();
    let s = samples(&text);
    let home = r#"model="ranker",version="1",pipeline="home_feed""#;
    let search = r#"model="ranker",version="1",pipeline="search""#;
    assert_eq!(value(&s, &format!("recserve_requests_total{{{home},outcome=\"ok\"}}")), 2.0);
    assert_eq!(value(&s, &format!("recserve_requests_total{{{search},outcome=\"ok\"}}")), 1.0);
    assert_eq!(
        value(&s, r#"recserve_requests_total{model="ranker",version="none",pipeline="search",outcome="bad_request"}"#),
        1.0
    );
    assert_eq!(
        value(&s, r#"recserve_requests_total{model="ranker",version="none",pipeline="unknown",outcome="bad_request"}"#),
        1.0
    );
    assert!(!text.contains("drop table"));
    for st in ["retrieval", "preprocess", "ranking", "postprocess"] {
        assert_eq!(value(&s, &format!("recserve_stage_duration_seconds_count{{{home},stage=\"{st}\"}}")), 2.0, "{st}");
    }
    for st in ["queue", "inference"] {
        assert_eq!(value(&s, &format!("recserve_stage_duration_seconds_count{{{home},stage=\"{st}\"}}")), 0.0, "{st}");
    }
    // The pipeline's model calls are not requests of their own, but their batches count.
    assert!(
        !text.contains(r#"recserve_requests_total{model="ranker",version="1",pipeline="none""#)
            || value(&s, r#"recserve_requests_total{model="ranker",version="1",pipeline="none",outcome="ok"}"#) == 0.0
    );
    assert_eq!(value(&s, r#"recserve_batch_size_count{model="ranker",version="1"}"#), 3.0);
    assert!(value(&s, r#"recserve_batch_size_count{model="user_tower",version="1"}"#) >= 2.0);
    let in_flight = r#"recserve_in_flight_requests{model="ranker",version="none",pipeline="home_feed"}"#;
    assert_eq!(value(&s, in_flight), 0.0, "every finished request left the count");

    // While a recommendation runs it is in flight under its scenario (the version is not chosen yet).
    let body = serde_json::to_vec(&json!({"scenario": "home_feed", "user_id": "U0000042"})).unwrap();
    let running = [
        recserve_server::observe::enter_recommend(&state, Some("home_feed"), Some(&body)),
        recserve_server::observe::enter_recommend(&state, None, Some(&body)),
    ];
    let unknown = recserve_server::observe::enter_recommend(&state, None, Some(b"not json"));
    let unconfigured = recserve_server::observe::enter_recommend(&state, Some("no_such_scenario"), None);
    let (_, _, body) = send(&app, "GET", "/metrics", vec![], &[]).await;
    let s = samples(&String::from_utf8(body).unwrap());
    assert_eq!(value(&s, in_flight), 2.0);
    assert_eq!(value(&s, r#"recserve_in_flight_requests{model="ranker",version="none",pipeline="unknown"}"#), 2.0);
    drop((running, unknown, unconfigured));
    let (_, _, body) = send(&app, "GET", "/metrics", vec![], &[]).await;
    assert_eq!(value(&samples(&String::from_utf8(body).unwrap()), in_flight), 0.0);
}

/// promtool could not be started: a failure in CI (RECSERVE_REQUIRE_PROMTOOL=1), else a skip.
fn promtool_unavailable(e: &std::io::Error) {
    assert!(
        std::env::var("RECSERVE_REQUIRE_PROMTOOL").as_deref() != Ok("1"),
        "promtool is required (RECSERVE_REQUIRE_PROMTOOL=1) but cannot run: {e}"
    );
    eprintln!("SKIPPED: promtool not found (apt-get install prometheus)");
}
