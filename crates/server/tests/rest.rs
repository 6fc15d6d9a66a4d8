use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use recserve_engine::json::NamedTensorJson;
use recserve_engine::{Tensor, TensorData};
use recserve_server::{AppState, Limits, rest};
use recserve_testkit::{assert_close, golden, loaded_registry, repository_with};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    header_length: Option<usize>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        let end = self.header_length.unwrap_or(self.body.len());
        serde_json::from_slice(&self.body[..end])
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    fn error(&self) -> String {
        self.json()["error"].as_str().expect("error field").to_string()
    }
}

async fn call(app: &axum::Router, method: &str, path: &str, body: Vec<u8>, headers: &[(&str, String)]) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let status = resp.status();
    let header_length =
        resp.headers().get("inference-header-content-length").map(|v| v.to_str().unwrap().parse().unwrap());
    let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    Reply { status, header_length, body }
}

async fn get(app: &axum::Router, path: &str) -> Reply {
    call(app, "GET", path, vec![], &[]).await
}

async fn post_json(app: &axum::Router, path: &str, body: Value) -> Reply {
    call(app, "POST", path, serde_json::to_vec(&body).unwrap(), &[]).await
}

/// Posts a binary-extension body whose JSON header is `header_length` bytes long.
async fn post_binary(app: &axum::Router, path: &str, body: Vec<u8>, header_length: usize) -> Reply {
    call(app, "POST", path, body, &[("inference-header-content-length", header_length.to_string())]).await
}

async fn app_with(models: &[&str]) -> (axum::Router, tempfile::TempDir, AppState) {
    let repo = repository_with(models);
    let state = AppState::new(loaded_registry(repo.path()).await);
    (rest::router(state.clone()), repo, state)
}

fn json_inputs(inputs: &[(String, Tensor)]) -> Value {
    let v: Vec<Value> = inputs.iter().map(|(n, t)| serde_json::to_value(NamedTensorJson::new(n, t)).unwrap()).collect();
    json!(v)
}

fn tensor_of(output: &Value) -> Tensor {
    let text = output.to_string();
    let t: recserve_engine::json::JsonTensor = serde_json::from_str(&text).unwrap();
    t.to_tensor().unwrap()
}

#[tokio::test]
async fn health_and_metadata() {
    let (app, _repo, _) = app_with(&["mlp", "multi_io"]).await;
    assert_eq!(get(&app, "/v2/health/live").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/v2/health/ready").await.status, StatusCode::OK);
    let server = get(&app, "/v2").await.json();
    assert_eq!(server["name"], "recserve");
    assert!(server["extensions"].as_array().unwrap().contains(&json!("binary_tensor_data")));
    let meta = get(&app, "/v2/models/mlp").await.json();
    assert_eq!(meta["name"], "mlp");
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(meta["platform"], "onnxruntime_onnx");
    assert_eq!(meta["inputs"], json!([{"name": "features", "datatype": "FP32", "shape": [-1, 16]}]));
    assert_eq!(meta["outputs"], json!([{"name": "score", "datatype": "FP32", "shape": [-1, 1]}]));
    let meta = get(&app, "/v2/models/multi_io/versions/1").await.json();
    assert_eq!(meta["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(meta["outputs"].as_array().unwrap().len(), 2);
    assert_eq!(get(&app, "/v2/models/mlp/ready").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/v2/models/mlp/versions/1/ready").await.status, StatusCode::OK);
    let missing = get(&app, "/v2/models/nope/ready").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error(), "unknown model 'nope'");
    let missing = get(&app, "/v2/models/mlp/versions/7").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error(), "unknown version '7' of model 'mlp'");
    assert_eq!(get(&app, "/v3/whatever").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn json_inference_matches_onnxruntime_on_every_fixture() {
    let models = [
        "mlp",
        "embedding",
        "multi_io",
        "fixed_shape",
        "lightgbm_regressor",
        "lightgbm_classifier",
        "xgboost_classifier",
        "sklearn_rf_classifier",
    ];
    let (app, _repo, _) = app_with(&models).await;
    for model in models {
        for (i, case) in golden(model).iter().enumerate() {
            let reply = post_json(
                &app,
                &format!("/v2/models/{model}/infer"),
                json!({"id": format!("c{i}"), "inputs": json_inputs(&case.inputs)}),
            )
            .await;
            assert_eq!(reply.status, StatusCode::OK, "{model}: {:?}", String::from_utf8_lossy(&reply.body));
            let body = reply.json();
            assert_eq!(body["model_name"], model);
            assert_eq!(body["model_version"], "1");
            assert_eq!(body["id"], format!("c{i}"));
            for (name, want) in &case.outputs {
                let out = body["outputs"].as_array().unwrap().iter().find(|o| o["name"] == name.as_str()).unwrap();
                assert_close(&tensor_of(out), want, 1e-4, &format!("{model} case {i} {name}"));
            }
        }
    }
}

/// Builds a binary request body: JSON header, then each input's raw bytes.
fn binary_body(inputs: &[(String, Tensor)], params: Value, outputs: Option<Value>) -> (Vec<u8>, usize) {
    let mut raw = Vec::new();
    let header_inputs: Vec<Value> = inputs
        .iter()
        .map(|(n, t)| {
            let bytes = t.data.to_le_bytes();
            let size = bytes.len();
            raw.extend(bytes);
            json!({"name": n, "datatype": t.datatype().wire_name(), "shape": t.shape, "parameters": {"binary_data_size": size}})
        })
        .collect();
    let mut header = json!({"inputs": header_inputs, "parameters": params});
    if let Some(o) = outputs {
        header["outputs"] = o;
    }
    let mut body = serde_json::to_vec(&header).unwrap();
    let n = body.len();
    body.extend(raw);
    (body, n)
}

#[tokio::test]
async fn binary_inference_round_trips_every_datatype() {
    let (app, _repo, _) = app_with(&["identity_all_types"]).await;
    for case in golden("identity_all_types") {
        let (body, n) = binary_body(&case.inputs, json!({"binary_data_output": true}), None);
        let reply = post_binary(&app, "/v2/models/identity_all_types/infer", body, n).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", String::from_utf8_lossy(&reply.body));
        let header_len = reply.header_length.expect("binary response sets the header");
        let json = reply.json();
        let mut offset = header_len;
        for out in json["outputs"].as_array().unwrap() {
            let size = out["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
            let dt = recserve_engine::DataType::from_wire_name(out["datatype"].as_str().unwrap()).unwrap();
            let data = TensorData::from_le_bytes(dt, &reply.body[offset..offset + size]).unwrap();
            offset += size;
            let name = out["name"].as_str().unwrap();
            let (_, want) = case.outputs.iter().find(|(n, _)| n == name).unwrap();
            assert_eq!(&data, &want.data, "{name}");
        }
        assert_eq!(offset, reply.body.len());

        // The same request with JSON outputs, and only two of them, in the order asked.
        let (body, n) = binary_body(
            &case.inputs,
            json!({}),
            Some(json!([{"name": "out_BYTES", "parameters": {"binary_data": false}}, {"name": "out_INT64"}])),
        );
        let reply = post_binary(&app, "/v2/models/identity_all_types/infer", body, n).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.header_length.is_none());
        let outs = reply.json()["outputs"].as_array().unwrap().clone();
        assert_eq!(outs.len(), 2);
        assert_eq!(outs[0]["name"], "out_BYTES");
        assert_eq!(outs[1]["name"], "out_INT64");
        let (_, want) = case.outputs.iter().find(|(n, _)| n == "out_BYTES").unwrap();
        assert_eq!(tensor_of(&outs[0]).data, want.data);
    }
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_the_server_keeps_serving() {
    let repo = repository_with(&["mlp", "multi_io"]);
    let mut state = AppState::new(loaded_registry(repo.path()).await);
    state.limits = Limits { max_body_bytes: 4096, max_request_elements: 40, ..Limits::default() };
    let app = rest::router(state);
    let row = |n: usize| json!([{"name": "features", "datatype": "FP32", "shape": [1, n], "data": vec![0.5; n]}]);
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "/v2/models/nope/infer",
            serde_json::to_vec(&json!({"inputs": row(16)})).unwrap(),
            StatusCode::NOT_FOUND,
            "unknown model 'nope'",
        ),
        (
            "/v2/models/mlp/versions/3/infer",
            serde_json::to_vec(&json!({"inputs": row(16)})).unwrap(),
            StatusCode::NOT_FOUND,
            "unknown version '3' of model 'mlp'",
        ),
        (
            "/v2/models/mlp/infer",
            serde_json::to_vec(&json!({"inputs": row(15)})).unwrap(),
            StatusCode::BAD_REQUEST,
            "input 'features' has shape [1, 15], expected [-1, 16]",
        ),
        (
            "/v2/models/mlp/infer",
            serde_json::to_vec(
                &json!({"inputs": [{"name": "features", "datatype": "INT64", "shape": [1, 16], "data": vec![1; 16]}]}),
            )
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "input 'features' has datatype INT64, expected FP32",
        ),
        (
            "/v2/models/mlp/infer",
            serde_json::to_vec(
                &json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 16], "data": vec![1; 16]}]}),
            )
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "input 'features': shape [2, 16] holds 32 elements, but data has 16",
        ),
        (
            "/v2/models/mlp/infer",
            serde_json::to_vec(
                &json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [3, 16], "data": vec![1; 48]}]}),
            )
            .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request's inputs hold 48 tensor elements; this server accepts at most 40 per request",
        ),
        (
            "/v2/models/mlp/infer",
            serde_json::to_vec(
                &json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [4294967296u64, 4294967296u64], "data": []}]}),
            )
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "input 'features': shape [4294967296, 4294967296] holds more elements than this machine can count",
        ),
        (
            "/v2/models/mlp/infer",
            b"{\"inputs\": [".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed inference request JSON",
        ),
        (
            "/v2/models/mlp/infer",
            serde_json::to_vec(
                &json!({"inputs": [{"name": "feature", "datatype": "FP32", "shape": [1, 16], "data": vec![1; 16]}]}),
            )
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "unknown input 'feature'; the model's inputs are: features",
        ),
        (
            "/v2/models/multi_io/infer",
            serde_json::to_vec(
                &json!({"inputs": [{"name": "user", "datatype": "FP32", "shape": [1, 8], "data": vec![1; 8]}]}),
            )
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "missing input 'item' (FP32 [-1, 8])",
        ),
        (
            "/v2/models/mlp/infer",
            serde_json::to_vec(&json!({"inputs": row(16), "outputs": [{"name": "scores"}]})).unwrap(),
            StatusCode::BAD_REQUEST,
            "model 'mlp' has no output 'scores'; its outputs are: score",
        ),
        (
            "/v2/models/mlp/infer",
            vec![b' '; 5000],
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than the limit of 4096 bytes",
        ),
    ];
    for (path, body, status, message) in cases {
        let reply = call(&app, "POST", path, body, &[]).await;
        assert_eq!(reply.status, status, "{path}: {:?}", String::from_utf8_lossy(&reply.body));
        let error = reply.error();
        assert!(error.contains(message), "{path}: expected {message:?} in {error:?}");
    }
    // A truncated binary payload.
    let x = Tensor::new(vec![1, 16], TensorData::F32(vec![0.5; 16])).unwrap();
    let (mut body, n) = binary_body(&[("features".to_string(), x.clone())], json!({}), None);
    body.truncate(body.len() - 10);
    let reply = post_binary(&app, "/v2/models/mlp/infer", body, n).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.error().contains("input 'features': binary_data_size is 64 bytes, but only 54"), "{}", reply.error());

    // After all that, a good request still works.
    let reply = post_json(&app, "/v2/models/mlp/infer", json!({"inputs": row(16)})).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn gzip_request_bodies_are_accepted() {
    use std::io::Write;
    let (app, _repo, _) = app_with(&["mlp"]).await;
    let case = &golden("mlp")[0];
    let body = serde_json::to_vec(&json!({"inputs": json_inputs(&case.inputs)})).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&body).unwrap();
    let reply =
        call(&app, "POST", "/v2/models/mlp/infer", gz.finish().unwrap(), &[("content-encoding", "gzip".into())]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let out = &reply.json()["outputs"][0];
    assert_close(&tensor_of(out), &case.outputs[0].1, 1e-4, "gzip mlp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_get_their_own_answer() {
    let (app, _repo, state) = app_with(&["mlp"]).await;
    let cases = golden("mlp");
    let mut tasks = Vec::new();
    for round in 0..64 {
        let app = app.clone();
        let case = &cases[round % cases.len()];
        let body = json!({"inputs": json_inputs(&case.inputs)});
        let want = case.outputs[0].1.clone();
        tasks.push(tokio::spawn(async move {
            let reply = post_json(&app, "/v2/models/mlp/infer", body).await;
            assert_eq!(reply.status, StatusCode::OK);
            assert_close(&tensor_of(&reply.json()["outputs"][0]), &want, 1e-4, "concurrent mlp");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = get(&app, "/v2/models/mlp/stats").await.json();
    let s = &stats["model_stats"][0];
    assert_eq!(s["name"], "mlp");
    assert!(s["inference_stats"]["success"]["count"].as_u64().unwrap() >= 64);
    let loaded = state.registry.resolve("mlp", None).unwrap();
    assert!(loaded.stats.executions.get() <= loaded.stats.success.get());
}

#[tokio::test]
async fn repository_extension_lists_loads_and_unloads() {
    let (app, _repo, _) = app_with(&["mlp", "multi_io"]).await;
    let index = call(&app, "POST", "/v2/repository/index", vec![], &[]).await.json();
    assert_eq!(
        index,
        json!([{"name": "mlp", "version": "1", "state": "READY"}, {"name": "multi_io", "version": "1", "state": "READY"}])
    );
    assert_eq!(call(&app, "POST", "/v2/repository/models/mlp/unload", vec![], &[]).await.status, StatusCode::OK);
    assert_eq!(get(&app, "/v2/models/mlp/ready").await.status, StatusCode::SERVICE_UNAVAILABLE);
    let infer = post_json(&app, "/v2/models/mlp/infer", json!({"inputs": []})).await;
    assert_eq!(infer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(infer.error().contains("unloaded"), "{}", infer.error());
    let ready_only = post_json(&app, "/v2/repository/index", json!({"ready": true})).await.json();
    assert_eq!(ready_only.as_array().unwrap().len(), 1);
    assert_eq!(call(&app, "POST", "/v2/repository/models/mlp/load", vec![], &[]).await.status, StatusCode::OK);
    assert_eq!(get(&app, "/v2/models/mlp/ready").await.status, StatusCode::OK);
    let missing = call(&app, "POST", "/v2/repository/models/nope/load", vec![], &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let config = get(&app, "/v2/models/mlp/config").await.json();
    assert_eq!(config["max_batch_size"], 64);
    assert_eq!(config["input"][0]["data_type"], "TYPE_FP32");
    assert_eq!(config["input"][0]["dims"], json!([16]));
}

#[tokio::test]
async fn validation_samples_gate_a_version() {
    let repo = repository_with(&["mlp"]);
    let samples = std::fs::read_to_string(recserve_testkit::golden_path("mlp")).unwrap();
    std::fs::write(repo.path().join("mlp/validation.json"), &samples).unwrap();
    std::fs::write(
        repo.path().join("mlp/config.toml"),
        "[validation]\nsamples = \"validation.json\"\ntolerance = 1e-5\n",
    )
    .unwrap();
    let registry = loaded_registry(repo.path()).await;
    assert!(registry.resolve("mlp", None).is_ok(), "{}", registry.entry("mlp").unwrap().unavailable_reason());

    // Version 2 is the same file but its samples expect other scores: it must not serve.
    let mut tampered: Value = serde_json::from_str(&samples).unwrap();
    let first = &mut tampered["cases"][0]["outputs"][0]["data"][0];
    *first = json!(first.as_f64().unwrap() + 0.01);
    recserve_testkit::copy_dir(&repo.path().join("mlp/1"), &repo.path().join("mlp/2"));
    std::fs::write(repo.path().join("mlp/2/validation.json"), tampered.to_string()).unwrap();
    registry.poll().await;
    let serving = registry.resolve("mlp", None).unwrap();
    assert_eq!(serving.version, 1, "the version already serving keeps serving");
    let index = registry.index();
    let v2 = index.iter().find(|r| r.version.as_deref() == Some("2")).unwrap();
    assert_eq!(v2.state, Some("UNAVAILABLE"));
    let reason = v2.reason.clone().unwrap();
    assert!(reason.contains("validation case 0") && reason.contains("output 'score': element 0"), "{reason}");
}
