//! The request log end to end through the transports: one record per request (V2 REST, gRPC,
//! /v1/recommend) with its id, stages, status and error; user ids pseudonymised (never stored in
//! the clear) yet searchable by raw id; sampling with errors always kept; `/api/v1/logs` filters,
//! paging, JSON-lines export and its errors; `x-request-id` in and out.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use recserve_server::request_log::{RequestLog, RequestLogConfig};
use recserve_server::{AppState, rest};
use recserve_store::{LogWriter, Pseudonymizer, Retention, Store, StoreConfig, WriterConfig};
use recserve_testkit::{TestServer, loaded_registry, repository_with, shop_state};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

struct Logged {
    state: AppState,
    writer: LogWriter,
    dir: tempfile::TempDir,
}

async fn with_log(mut state: AppState, config: RequestLogConfig) -> Logged {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open(&StoreConfig { url: None, data_dir: dir.path().to_path_buf(), retention: Retention::default() })
            .await
            .unwrap();
    let writer = store.start_writer(WriterConfig::default());
    let log = RequestLog::new(writer.sink(), Pseudonymizer::new(b"test key"), config, Some("replica-a".into()));
    state.request_log = Some(Arc::new(log));
    state.store = Some(store);
    Logged { state, writer, dir }
}

struct Reply {
    status: StatusCode,
    request_id: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

async fn call(app: &axum::Router, method: &str, path: &str, body: String, id: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    let resp = app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let status = resp.status();
    let request_id = resp.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_string());
    let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    Reply { status, request_id, body }
}

async fn logs(app: &axum::Router, query: &str) -> Value {
    let r = call(app, "GET", &format!("/api/v1/logs?{query}"), String::new(), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    r.json()["data"].clone()
}

fn records(data: &Value) -> &Vec<Value> {
    data["records"].as_array().expect("records")
}

fn mlp_request() -> String {
    json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 16], "data": vec![0.5; 16]}]}).to_string()
}

#[tokio::test]
async fn v2_requests_are_logged_with_ids_stages_and_errors() {
    let repo = repository_with(&["mlp"]);
    let logged = with_log(AppState::new(loaded_registry(repo.path()).await), RequestLogConfig::default()).await;
    let app = rest::router(logged.state.clone());

    let ok = call(&app, "POST", "/v2/models/mlp/infer", mlp_request(), Some("client-id-1")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.request_id.as_deref(), Some("client-id-1"), "the client's id is kept");
    let generated = call(&app, "POST", "/v2/models/mlp/infer", mlp_request(), Some("bad id with spaces")).await;
    let generated_id = generated.request_id.clone().unwrap();
    assert_ne!(generated_id, "bad id with spaces");
    let bad = call(&app, "POST", "/v2/models/mlp/infer", "{not json".into(), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let missing = call(&app, "POST", "/v2/models/nope/infer", mlp_request(), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    logged.writer.flush().await;

    let data = logs(&app, "request_id=client-id-1").await;
    let [rec] = records(&data).as_slice() else { panic!("one record: {data}") };
    assert_eq!(rec["model"], "mlp");
    assert_eq!(rec["version"], "1");
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["replica"], "replica-a");
    let stages: Vec<&str> = rec["stages"].as_array().unwrap().iter().map(|s| s[0].as_str().unwrap()).collect();
    for stage in ["preprocess", "queue", "inference", "postprocess"] {
        assert!(stages.contains(&stage), "stage {stage} missing: {stages:?}");
    }
    let input: Value = serde_json::from_str(rec["input"].as_str().unwrap()).unwrap();
    assert_eq!(input[0]["name"], "features");
    assert_eq!(input[0]["shape"], json!([1, 16]));
    let output: Value = serde_json::from_str(rec["output"].as_str().unwrap()).unwrap();
    assert!(output[0]["data"].as_array().is_some_and(|d| !d.is_empty()), "{output}");
    assert!(rec["latency_ms"].as_f64().unwrap() > 0.0);

    let errors = logs(&app, "status=error").await;
    let errors = records(&errors);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().any(|r| r["status"] == 400 && r["error"].as_str().unwrap().contains("JSON")));
    assert!(errors.iter().any(|r| r["status"] == 404 && r["model"] == "nope"));
    assert_eq!(records(&logs(&app, "status=404").await).len(), 1);
    assert_eq!(records(&logs(&app, &format!("request_id={generated_id}")).await).len(), 1);
    assert_eq!(records(&logs(&app, "model=mlp&status=ok").await).len(), 2);
}

#[tokio::test]
async fn recommendations_keep_pseudonyms_never_raw_user_ids() {
    let logged = with_log(shop_state().await, RequestLogConfig::default()).await;
    let app = rest::router(logged.state.clone());
    let user = "U0000042";
    let body = json!({"scenario": "home_feed", "user_id": user, "k": 5}).to_string();
    let reply = call(&app, "POST", "/v1/recommend", body, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let request_id = reply.json()["request_id"].as_str().unwrap().to_string();
    assert_eq!(reply.request_id.as_deref(), Some(request_id.as_str()), "header and body name the same request");
    let bad = json!({"scenario": "no_such", "user_id": "U0000043"}).to_string();
    assert_eq!(call(&app, "POST", "/v1/recommend", bad, None).await.status, StatusCode::BAD_REQUEST);
    logged.writer.flush().await;

    let data = logs(&app, &format!("user={user}")).await;
    let [rec] = records(&data).as_slice() else { panic!("one record for the user: {data}") };
    assert_eq!(rec["request_id"], request_id.as_str());
    assert_eq!(rec["pipeline"], "home_feed");
    assert_eq!(rec["model"], "ranker");
    let pseudonym = rec["user"].as_str().unwrap();
    assert_eq!(pseudonym.len(), 64, "HMAC-SHA-256 in hex");
    assert!(rec["raw_user"].is_null());
    assert!(!rec["input"].as_str().unwrap().contains(user), "the input keeps no raw user id");
    let output: Value = serde_json::from_str(rec["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["items"].as_array().unwrap().len(), 5);
    let stages: Vec<&str> = rec["stages"].as_array().unwrap().iter().map(|s| s[0].as_str().unwrap()).collect();
    assert!(stages.contains(&"retrieval") && stages.contains(&"ranking"), "{stages:?}");

    let failed = logs(&app, "user=U0000043").await;
    let [f] = records(&failed).as_slice() else { panic!("the failed request is found by its user: {failed}") };
    assert_eq!(f["status"], 400);
    assert!(f["error"].as_str().unwrap().contains("no_such"));

    // Nothing in the store's files holds a raw user id.
    logged.writer.flush().await;
    logged.state.store.as_ref().unwrap().close().await;
    for entry in std::fs::read_dir(logged.dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        for raw in [user, "U0000043"] {
            assert!(!bytes.windows(raw.len()).any(|w| w == raw.as_bytes()), "{raw} stored in the clear");
        }
    }
}

#[tokio::test]
async fn sampling_keeps_every_error_and_a_share_of_successes() {
    let repo = repository_with(&["mlp"]);
    let config = RequestLogConfig { sample_rate: 0.0, ..RequestLogConfig::default() };
    let logged = with_log(AppState::new(loaded_registry(repo.path()).await), config).await;
    let app = rest::router(logged.state.clone());
    for _ in 0..20 {
        assert_eq!(call(&app, "POST", "/v2/models/mlp/infer", mlp_request(), None).await.status, StatusCode::OK);
    }
    for _ in 0..3 {
        call(&app, "POST", "/v2/models/mlp/infer", "[]".into(), None).await;
    }
    logged.writer.flush().await;
    let all = logs(&app, "").await;
    assert_eq!(records(&all).len(), 3, "only the failures: {all}");

    let mut config = RequestLogConfig::default();
    config.model_sample_rates.insert("mlp".into(), 0.5);
    let logged = with_log(AppState::new(loaded_registry(repo.path()).await), config).await;
    let app = rest::router(logged.state.clone());
    for _ in 0..200 {
        call(&app, "POST", "/v2/models/mlp/infer", mlp_request(), None).await;
    }
    logged.writer.flush().await;
    let mut kept = 0;
    let mut cursor = String::new();
    loop {
        let data = logs(&app, &format!("limit=50{cursor}")).await;
        kept += records(&data).len();
        match data["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert!((60..=140).contains(&kept), "about half of 200 kept, got {kept}");
}

#[tokio::test]
async fn logs_api_pages_exports_and_explains_errors() {
    let repo = repository_with(&["mlp"]);
    let logged = with_log(AppState::new(loaded_registry(repo.path()).await), RequestLogConfig::default()).await;
    let app = rest::router(logged.state.clone());
    for i in 0..25 {
        call(&app, "POST", "/v2/models/mlp/infer", mlp_request(), Some(&format!("req-{i}"))).await;
    }
    logged.writer.flush().await;
    let mut seen = Vec::new();
    let mut query = "limit=10".to_string();
    loop {
        let data = logs(&app, &query).await;
        seen.extend(records(&data).iter().map(|r| r["request_id"].as_str().unwrap().to_string()));
        match data["next_cursor"].as_str() {
            Some(c) => query = format!("limit=10&cursor={c}"),
            None => break,
        }
    }
    let want: Vec<String> = (0..25).rev().map(|i| format!("req-{i}")).collect();
    assert_eq!(seen, want, "every record once, newest first");

    let export = call(&app, "GET", "/api/v1/logs?format=jsonl&model=mlp", String::new(), None).await;
    assert_eq!(export.status, StatusCode::OK);
    let text = String::from_utf8(export.body).unwrap();
    assert_eq!(text.lines().count(), 25);
    for line in text.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }

    for (query, word) in [("status=fine", "status"), ("limit=0", "limit"), ("kind=x", "kind"), ("colour=red", "colour")]
    {
        let r = call(&app, "GET", &format!("/api/v1/logs?{query}"), String::new(), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(r.json()["error"].as_str().unwrap().contains(word), "{query}: {}", r.json());
    }
    // A server without a store says so.
    let bare = rest::router(AppState::new(loaded_registry(repo.path()).await));
    let r = call(&bare, "GET", "/api/v1/logs", String::new(), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"].as_str().unwrap().contains("store"));
}

#[tokio::test]
async fn grpc_requests_are_logged_with_their_metadata_id() {
    use recserve_server::grpc::GrpcInferenceServiceClient;
    use recserve_server::grpc::proto::{InferTensorContents, ModelInferRequest, model_infer_request};
    let repo = repository_with(&["mlp"]);
    let logged = with_log(AppState::new(loaded_registry(repo.path()).await), RequestLogConfig::default()).await;
    let server = TestServer::start(logged.state.clone()).await;
    let mut client = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc)).await.unwrap();
    let input = model_infer_request::InferInputTensor {
        name: "features".into(),
        datatype: "FP32".into(),
        shape: vec![1, 16],
        contents: Some(InferTensorContents { fp32_contents: vec![0.25; 16], ..Default::default() }),
        ..Default::default()
    };
    let mut request =
        tonic::Request::new(ModelInferRequest { model_name: "mlp".into(), inputs: vec![input], ..Default::default() });
    request.metadata_mut().insert("x-request-id", "grpc-call-7".parse().unwrap());
    let response = client.model_infer(request).await.unwrap();
    assert_eq!(response.metadata().get("x-request-id").unwrap(), "grpc-call-7");
    logged.writer.flush().await;
    let app = rest::router(logged.state.clone());
    let data = logs(&app, "request_id=grpc-call-7").await;
    let [rec] = records(&data).as_slice() else { panic!("one record: {data}") };
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["model"], "mlp");
}
