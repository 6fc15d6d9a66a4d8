//! Bearer tokens and roles on both transports: 401 without, with a wrong, malformed, revoked
//! or expired token; 403 for a role that does not include the one needed; each role doing what
//! it may; the token API (create, list, revoke, bad input); the dashboard's sign-in; the audit
//! trail naming the token; the refusal counter; and authentication off while no token exists.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use recserve_server::auth::{Auth, AuthMode};
use recserve_server::grpc::GrpcInferenceServiceClient;
use recserve_server::grpc::proto::model_infer_request::InferInputTensor;
use recserve_server::grpc::proto::*;
use recserve_server::{AppState, rest};
use recserve_store::Store;
use recserve_testkit::{TestServer, loaded_registry, repository_with};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A server state over the `mlp` fixture with a store and authentication in `mode`.
struct Fixture {
    state: AppState,
    store: Store,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Fixture {
    async fn new(mode: AuthMode) -> Fixture {
        let repo = repository_with(&["mlp"]);
        let store_dir = tempfile::tempdir().unwrap();
        let store = Store::open(&recserve_store::StoreConfig::sqlite_in(store_dir.path())).await.unwrap();
        let mut state = AppState::new(loaded_registry(repo.path()).await);
        state.store = Some(store.clone());
        let registry = state.telemetry.as_ref().map(|t| t.registry.clone());
        state.auth = Auth::new(mode, Some(store.clone()), registry.as_deref());
        state.auth.reload().await.unwrap();
        Fixture { state, store, _dirs: (repo, store_dir) }
    }

    /// Creates a token and reloads the server's table; returns its secret.
    async fn token(&self, name: &str, role: &str) -> String {
        let t = self.store.create_token(name, role, None).await.unwrap();
        self.state.auth.reload().await.unwrap();
        t.secret
    }

    fn app(&self) -> axum::Router {
        rest::router(self.state.clone())
    }
}

/// One REST call; `token` goes in `Authorization: Bearer`, `raw_auth` replaces that header.
async fn call_with(
    app: &axum::Router,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Value,
) -> (StatusCode, Value, Option<String>) {
    let mut req = Request::builder().method(method).uri(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(a) = authorization {
        req = req.header(header::AUTHORIZATION, a);
    }
    let body = if body.is_null() { Body::empty() } else { Body::from(body.to_string()) };
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let challenge = resp.headers().get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_string());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::String(text)), challenge)
}

async fn call(app: &axum::Router, method: &str, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let (s, b, _) = call_with(app, method, path, auth.as_deref(), body).await;
    (s, b)
}

fn infer_body() -> Value {
    json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 16], "data": vec![0.25f32; 16]}]})
}

#[tokio::test]
async fn every_role_does_what_it_may_and_no_more() {
    let fx = Fixture::new(AuthMode::Auto).await;
    let admin = fx.token("root", "admin").await;
    let ops = fx.token("ops", "operator").await;
    let viewer = fx.token("grafana", "viewer").await;
    let client = fx.token("shop-frontend", "inference").await;
    let app = fx.app();
    assert!(fx.state.auth.enforcing());

    // The probes and the dashboard's files stay open.
    assert_eq!(call(&app, "GET", "/v2/health/live", None, Value::Null).await.0, StatusCode::OK);
    assert_eq!(call(&app, "GET", "/v2/health/ready", None, Value::Null).await.0, StatusCode::OK);
    assert_eq!(call(&app, "GET", "/", None, Value::Null).await.0, StatusCode::OK);

    // No token: 401 in the server's error format, with a challenge.
    let (status, body, challenge) = call_with(&app, "GET", "/api/v1/query?query=up", None, Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("Authorization: Bearer"), "{body}");
    assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="recserve""#));
    // A wrong token and a malformed header: 401 too.
    let (status, body, _) = call_with(&app, "GET", "/v2/models/mlp", Some("Bearer rs_not-a-token"), Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "the bearer token is not valid");
    for malformed in [viewer.as_str(), &format!("Basic {viewer}"), "Bearer", &format!("Bearer {viewer} extra")] {
        let (status, body, _) = call_with(&app, "GET", "/v2/models/mlp", Some(malformed), Value::Null).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{malformed}: {body}");
        assert!(body["error"].as_str().unwrap().contains("malformed Authorization header"), "{body}");
    }

    // Viewer: reads, but no deployment change and no inference.
    assert_eq!(call(&app, "GET", "/v2/models/mlp", Some(&viewer), Value::Null).await.0, StatusCode::OK);
    assert_eq!(call(&app, "GET", "/api/v1/query?query=up", Some(&viewer), Value::Null).await.0, StatusCode::OK);
    assert_eq!(call(&app, "GET", "/metrics", Some(&viewer), Value::Null).await.0, StatusCode::OK);
    let (status, body) = call(&app, "POST", "/api/v1/deployments/mlp/rollback", Some(&viewer), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("\"grafana\" has role viewer") && error.contains("needs role operator"), "{error}");
    let (status, _) = call(&app, "POST", "/v2/models/mlp/infer", Some(&viewer), infer_body()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Inference: infers, reads nothing else.
    let (status, body) = call(&app, "POST", "/v2/models/mlp/infer", Some(&client), infer_body()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(&app, "GET", "/api/v1/query?query=up", Some(&client), Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap().contains("needs role viewer"), "{body}");
    // Metadata and readiness are for any token (clients read them before they infer).
    assert_eq!(call(&app, "GET", "/v2/models/mlp/ready", Some(&client), Value::Null).await.0, StatusCode::OK);
    let (status, body) = call(&app, "GET", "/v2/models/mlp/stats", Some(&client), Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "statistics are the viewers': {body}");

    // Operator: control-plane changes (this rollback is refused by the deployment itself, not
    // by authentication), inference, reads; not the token API.
    let (status, body) = call(&app, "POST", "/api/v1/deployments/mlp/rollback", Some(&ops), json!({})).await;
    assert!(status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN, "{status} {body}");
    assert_eq!(call(&app, "POST", "/v2/models/mlp/infer", Some(&ops), infer_body()).await.0, StatusCode::OK);
    assert_eq!(call(&app, "GET", "/api/v1/tokens", Some(&ops), Value::Null).await.0, StatusCode::FORBIDDEN);

    // Admin: everything.
    let (status, body) = call(&app, "GET", "/api/v1/tokens", Some(&admin), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 4);
    assert!(!body.to_string().contains(&admin) && !body.to_string().contains("hash"), "no secrets listed: {body}");
    assert_eq!(call(&app, "GET", "/v2/models/mlp", Some(&admin), Value::Null).await.0, StatusCode::OK);

    // The refused deployment change is audited with the token as the actor and its role.
    let (status, body) = call(&app, "GET", "/api/v1/audit?action=deploy.", Some(&viewer), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let record = &body["data"]["records"][0];
    assert_eq!((record["actor"].as_str(), record["role"].as_str()), (Some("token:ops"), Some("operator")), "{body}");

    // Refusals are counted by reason.
    let (_, metrics) = call(&app, "GET", "/metrics", Some(&viewer), Value::Null).await;
    let text = metrics.as_str().unwrap();
    for reason in ["missing", "unknown", "malformed", "forbidden"] {
        assert!(text.contains(&format!("recserve_auth_failures_total{{reason=\"{reason}\"}}")), "{reason}:\n{text}");
    }
}

#[tokio::test]
async fn revoked_and_expired_tokens_are_refused() {
    let fx = Fixture::new(AuthMode::Auto).await;
    let viewer = fx.token("reader", "viewer").await;
    let soon = fx.store.create_token("short-lived", "viewer", Some(recserve_telemetry::store::now_ms() + 300)).await;
    let soon = soon.unwrap().secret;
    fx.state.auth.reload().await.unwrap();
    let app = fx.app();
    assert_eq!(call(&app, "GET", "/v2/models/mlp", Some(&soon), Value::Null).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (status, body) = call(&app, "GET", "/v2/models/mlp", Some(&soon), Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "the token \"short-lived\" has expired");

    // By name: tokens list by creation time, and both may have been created in the same ms.
    let tokens = fx.store.list_tokens().await.unwrap();
    let id = tokens.iter().find(|t| t.name == "reader").expect("the reader token").id.clone();
    fx.store.revoke_token(&id).await.unwrap();
    assert_eq!(call(&app, "GET", "/v2/models/mlp", Some(&viewer), Value::Null).await.0, StatusCode::OK, "until reload");
    fx.state.auth.reload().await.unwrap();
    let (status, body) = call(&app, "GET", "/v2/models/mlp", Some(&viewer), Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "the token \"reader\" was revoked");
    // Every token revoked or expired: still enforcing (revoking never opens the server).
    assert!(fx.state.auth.enforcing());
    assert_eq!(call(&app, "GET", "/v2/models/mlp", None, Value::Null).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_api_creates_lists_and_revokes() {
    let fx = Fixture::new(AuthMode::Auto).await;
    let admin = fx.token("root", "admin").await;
    let app = fx.app();

    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/tokens",
        Some(&admin),
        json!({"name": "ci", "role": "operator", "expires_days": 30}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = body["data"]["token"].as_str().unwrap().to_string();
    let id = body["data"]["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("rs_"));
    assert_eq!((body["data"]["role"].as_str(), body["data"]["usable"].as_bool()), (Some("operator"), Some(true)));
    // Usable at once (the API reloads the table).
    let (status, _) = call(&app, "POST", "/api/v1/rules/reload", Some(&secret), Value::Null).await;
    assert_ne!(status, StatusCode::UNAUTHORIZED);
    assert_ne!(status, StatusCode::FORBIDDEN);

    // Bad input: an unknown role names the roles; unknown fields, bad expiry, bad names.
    let (status, body) = call(&app, "POST", "/api/v1/tokens", Some(&admin), json!({"name": "x", "role": "root"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("the roles are admin, operator, viewer, inference"), "{body}");
    let bad = [
        json!({"name": "x", "role": "viewer", "expires_days": 0}),
        json!({"name": "x", "role": "viewer", "ttl": 3}),
        json!({"name": "has space", "role": "viewer"}),
        json!({"name": "ci", "role": "viewer"}),
    ];
    for b in bad {
        let (status, body) = call(&app, "POST", "/api/v1/tokens", Some(&admin), b.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: {body}");
    }

    // Revoke: refused at once; unknown ids are 404.
    let (status, body) = call(&app, "DELETE", &format!("/api/v1/tokens/{id}"), Some(&admin), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["usable"], false);
    let (status, _) = call(&app, "GET", "/v2/models/mlp", Some(&secret), Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&app, "DELETE", "/api/v1/tokens/tok_nope", Some(&admin), Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Both changes are audited as the admin token.
    let (_, body) = call(&app, "GET", "/api/v1/audit?action=token.", Some(&admin), Value::Null).await;
    let records = body["data"]["records"].as_array().unwrap();
    let seen: Vec<(&str, &str)> =
        records.iter().map(|r| (r["action"].as_str().unwrap(), r["actor"].as_str().unwrap())).collect();
    assert_eq!(seen, vec![("token.revoke", "token:root"), ("token.create", "token:root")]);
    assert!(!body.to_string().contains(&secret), "the audit trail never holds a secret");
}

#[tokio::test]
async fn sign_in_answers_name_and_role_and_is_audited() {
    let fx = Fixture::new(AuthMode::Auto).await;
    let viewer = fx.token("alice", "viewer").await;
    let app = fx.app();
    let (status, body) = call(&app, "GET", "/api/v1/auth/status", None, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((body["data"]["enforcing"].as_bool(), &body["data"]["identity"]), (Some(true), &Value::Null));

    let (status, body) = call(&app, "POST", "/api/v1/auth/sign-in", None, json!({"token": viewer})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["data"]["name"].as_str(), body["data"]["role"].as_str()), (Some("alice"), Some("viewer")));
    let (status, body) = call(&app, "POST", "/api/v1/auth/sign-in", None, json!({"token": "rs_wrong"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = call(&app, "POST", "/api/v1/auth/sign-in", None, json!({"secret": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body) = call(&app, "GET", "/api/v1/auth/status", Some(&viewer), Value::Null).await;
    assert_eq!(body["data"]["identity"]["name"], "alice");

    let (_, body) = call(&app, "GET", "/api/v1/audit?action=auth.sign_in", Some(&viewer), Value::Null).await;
    let records = body["data"]["records"].as_array().unwrap();
    let seen: Vec<(&str, &str)> =
        records.iter().map(|r| (r["actor"].as_str().unwrap(), r["outcome"].as_str().unwrap())).collect();
    assert_eq!(seen, vec![("anonymous", "denied"), ("token:alice", "ok")]);
}

#[tokio::test]
async fn auth_is_off_until_the_first_token_exists() {
    let fx = Fixture::new(AuthMode::Auto).await;
    let app = fx.app();
    assert!(!fx.state.auth.enforcing());
    assert_eq!(call(&app, "GET", "/v2/models/mlp", None, Value::Null).await.0, StatusCode::OK);
    // Open, the token API makes the first token; from then on every request needs one.
    let (status, body) = call(&app, "POST", "/api/v1/tokens", None, json!({"name": "first", "role": "admin"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let admin = body["data"]["token"].as_str().unwrap().to_string();
    assert!(fx.state.auth.enforcing());
    assert_eq!(call(&app, "GET", "/v2/models/mlp", None, Value::Null).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, "GET", "/v2/models/mlp", Some(&admin), Value::Null).await.0, StatusCode::OK);
    // `off` ignores tokens; `required` needs one even with none stored.
    let off = Auth::new(AuthMode::Off, Some(fx.store.clone()), None);
    off.reload().await.unwrap();
    assert!(!off.enforcing());
    let empty = tempfile::tempdir().unwrap();
    let store = Store::open(&recserve_store::StoreConfig::sqlite_in(empty.path())).await.unwrap();
    let required = Auth::new(AuthMode::Required, Some(store), None);
    required.reload().await.unwrap();
    assert!(required.enforcing());
}

fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(t) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    request
}

fn grpc_infer() -> ModelInferRequest {
    ModelInferRequest {
        model_name: "mlp".into(),
        inputs: vec![InferInputTensor {
            name: "features".into(),
            datatype: "FP32".into(),
            shape: vec![1, 16],
            contents: Some(InferTensorContents { fp32_contents: vec![0.25; 16], ..Default::default() }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn grpc_calls_are_authenticated_and_authorised() {
    let fx = Fixture::new(AuthMode::Auto).await;
    let viewer = fx.token("dash", "viewer").await;
    let client_token = fx.token("frontend", "inference").await;
    let server = TestServer::start(fx.state.clone()).await;
    let mut client = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc)).await.unwrap();

    // Liveness and readiness stay open.
    assert!(client.server_live(with_token(ServerLiveRequest {}, None)).await.unwrap().into_inner().live);
    assert!(client.server_ready(with_token(ServerReadyRequest {}, None)).await.is_ok());

    let e = client.model_infer(with_token(grpc_infer(), None)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
    let e = client.model_infer(with_token(grpc_infer(), Some("rs_wrong"))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
    let e = client.model_infer(with_token(grpc_infer(), Some(&viewer))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    assert!(e.message().contains("needs role inference"), "{e}");
    let reply = client.model_infer(with_token(grpc_infer(), Some(&client_token))).await.unwrap().into_inner();
    assert_eq!(reply.model_name, "mlp");

    let meta = ModelMetadataRequest { name: "mlp".into(), version: String::new() };
    assert!(client.model_metadata(with_token(meta.clone(), Some(&viewer))).await.is_ok());
    // tritonclient asks for metadata before it infers: any token may.
    assert!(client.model_metadata(with_token(meta.clone(), Some(&client_token))).await.is_ok());
    let e = client.model_metadata(with_token(meta, None)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let unload = RepositoryModelUnloadRequest { model_name: "mlp".into(), ..Default::default() };
    let e = client.repository_model_unload(with_token(unload, Some(&viewer))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    // REST on the same server.
    let resp = get_status(&server.url("/v2/models/mlp")).await;
    assert_eq!(resp, 401);
}

/// A bare HTTP GET over a TCP socket (the dev-dependencies have no HTTP client); the status.
async fn get_status(url: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_once('/').unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET /{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}
