//! Per-client limits on the data plane (see `recserve_server::limits`): a client at its share of
//! requests in flight is refused at once with 429 / RESOURCE_EXHAUSTED while other clients and
//! the control plane are served; a request past the time limit is answered 504 /
//! DEADLINE_EXCEEDED; both are counted in `recserve_limit_refusals_total`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use recserve_server::limits::ClientKey;
use recserve_server::{AppState, Limits, rest};
use recserve_testkit::{loaded_registry, repository_with};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tower::ServiceExt;

async fn call(app: &axum::Router, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder().method(method).uri(path).body(Body::from(body.to_string())).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())))
}

fn infer_body() -> Value {
    json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 16], "data": vec![0.5; 16]}]})
}

async fn metrics(app: &axum::Router) -> String {
    let req = Request::builder().uri("/metrics").body(Body::empty()).unwrap();
    let bytes = app.clone().oneshot(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_client_at_its_share_is_refused_at_once_and_others_are_served() {
    let repo = repository_with(&["mlp"]);
    let mut state = AppState::new(loaded_registry(repo.path()).await);
    state.limits = Limits { max_in_flight_per_client: 2, ..Limits::default() };
    let app = rest::router(state.clone());
    // Requests through the router without a socket or token belong to the anonymous client;
    // occupy its two places as two slow requests would.
    let held =
        [state.clients.admit(ClientKey::Anonymous, 2).unwrap(), state.clients.admit(ClientKey::Anonymous, 2).unwrap()];
    let started = Instant::now();
    let (status, body) = call(&app, "POST", "/v2/models/mlp/infer", infer_body()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "refused at once, not after waiting");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("anonymous clients already has 2 requests in flight"), "{error}");
    assert!(error.contains("--max-in-flight-per-client"), "{error}");
    let (status, body) = call(&app, "POST", "/v1/recommend", json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the recommendation API shares the limit: {body}");
    // The control plane and the probes are not the data plane's share.
    assert_eq!(call(&app, "GET", "/v2/health/ready", Value::Null).await.0, StatusCode::OK);
    assert_eq!(call(&app, "GET", "/v2/models/mlp", Value::Null).await.0, StatusCode::OK);
    // Another client's share is its own.
    let other = state.clients.admit(ClientKey::Address("10.1.2.3".parse().unwrap()), 2).unwrap();
    assert!(other.is_some());
    drop(held);
    let (status, body) = call(&app, "POST", "/v2/models/mlp/infer", infer_body()).await;
    assert_eq!(status, StatusCode::OK, "places come back when requests end: {body}");
    assert_eq!(state.clients.in_flight(&ClientKey::Anonymous), 0, "an answered request frees its place");
    let text = metrics(&app).await;
    assert!(text.contains(r#"recserve_limit_refusals_total{limit="client_concurrency"} 2"#), "{text}");
}

#[tokio::test]
async fn a_request_past_the_time_limit_is_answered_504_and_the_server_keeps_serving() {
    let repo = repository_with(&["mlp"]);
    // The batcher holds a lone request two seconds for company: longer than the limit.
    std::fs::write(repo.path().join("mlp/config.toml"), "[dynamic_batching]\nmax_queue_delay_microseconds = 2000000\n")
        .unwrap();
    let mut state = AppState::new(loaded_registry(repo.path()).await);
    state.limits = Limits { request_timeout: Some(Duration::from_millis(200)), ..Limits::default() };
    let app = rest::router(state.clone());
    let started = Instant::now();
    let (status, body) = call(&app, "POST", "/v2/models/mlp/infer", infer_body()).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(started.elapsed() < Duration::from_millis(1900), "answered at the limit, not when the work ended");
    assert!(body["error"].as_str().unwrap().contains("not answered within 200 ms"), "{body}");
    assert_eq!(state.clients.in_flight(&ClientKey::Anonymous), 0);
    let text = metrics(&app).await;
    assert!(text.contains(r#"recserve_limit_refusals_total{limit="timeout"} 1"#), "{text}");

    state.limits.request_timeout = None;
    let app = rest::router(state);
    let (status, body) = call(&app, "POST", "/v2/models/mlp/infer", infer_body()).await;
    assert_eq!(status, StatusCode::OK, "without the limit the slow batch is waited for: {body}");
}

/// POSTs `body` over a real socket (so the server sees the peer address); the status code.
async fn post_status(addr: std::net::SocketAddr, path: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn over_sockets_a_client_is_its_address_on_both_transports() {
    use recserve_server::grpc::GrpcInferenceServiceClient;
    use recserve_server::grpc::proto::ModelInferRequest;
    use recserve_server::grpc::proto::model_infer_request::InferInputTensor;
    let repo = repository_with(&["mlp"]);
    let mut state = AppState::new(loaded_registry(repo.path()).await);
    state.limits = Limits { max_in_flight_per_client: 1, ..Limits::default() };
    let server = recserve_testkit::TestServer::start(state.clone()).await;
    let grpc_request = || ModelInferRequest {
        model_name: "mlp".into(),
        inputs: vec![InferInputTensor {
            name: "features".into(),
            datatype: "FP32".into(),
            shape: vec![1, 16],
            contents: Some(recserve_server::grpc::proto::InferTensorContents {
                fp32_contents: vec![0.5; 16],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut client = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc)).await.unwrap();
    client.model_infer(grpc_request()).await.expect("within the share");
    let body = infer_body().to_string();
    assert_eq!(post_status(server.http, "/v2/models/mlp/infer", &body).await, 200);

    let loopback = ClientKey::Address("127.0.0.1".parse().unwrap());
    let held = state.clients.admit(loopback.clone(), 1).unwrap();
    let e = client.model_infer(grpc_request()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("client 127.0.0.1 already has 1 requests in flight"), "{}", e.message());
    assert_eq!(post_status(server.http, "/v2/models/mlp/infer", &body).await, 429, "REST knows the peer too");
    drop(held);
    client.model_infer(grpc_request()).await.expect("the place came back");
    assert_eq!(state.clients.in_flight(&loopback), 0);
}
