//! Integration tests of the open loop (`--request-rate`) and of recommendation requests
//! (`--recommend`, `--bodies`) against a small server started in the test on 127.0.0.1:0 that
//! serves `/v1/scenarios` and `/v1/recommend` and records the bodies it received. Request counts
//! are exact (the schedule sends rate × duration requests); no timing assertions.

use std::sync::{Arc, Mutex};

use super::{Cli, parse};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::{CommandFactory, Parser};
use recserve_loadgen::{BenchArgs, LoadgenError};
use serde_json::{Value, json};

fn rejected(args: &[&str]) -> bool {
    let mut argv = vec!["bench"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).is_err()
}

#[derive(Default)]
struct Seen {
    /// Bodies of /v1/recommend requests, in arrival order.
    bodies: Vec<Value>,
    /// Requests per path.
    v2: u64,
}

type Shared = Arc<Mutex<Seen>>;

async fn scenarios() -> Response {
    axum::Json(json!({"scenarios": [{"name": "home_feed"}, {"name": "search"}]})).into_response()
}

async fn recommend(State(s): State<Shared>, body: Bytes) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "malformed JSON"}))).into_response();
    };
    s.lock().expect("lock").bodies.push(value);
    axum::Json(json!({"request_id": "r", "items": []})).into_response()
}

async fn v2_metadata() -> Response {
    axum::Json(json!({
        "name": "m", "versions": ["1"], "platform": "onnx",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}]
    }))
    .into_response()
}

async fn v2_infer(State(s): State<Shared>) -> Response {
    s.lock().expect("lock").v2 += 1;
    axum::Json(
        json!({"model_name": "m", "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 1], "data": [0.5]}]}),
    )
    .into_response()
}

/// A server with `/v1/recommend` when `pipelines`, and a V2 model "m" always.
async fn spawn_server(pipelines: bool) -> (String, Shared) {
    let state: Shared = Arc::default();
    let mut app = Router::new().route("/v2/models/{m}", get(v2_metadata)).route("/v2/models/{m}/infer", post(v2_infer));
    if pipelines {
        app = app.route("/v1/scenarios", get(scenarios)).route("/v1/recommend", post(recommend));
    }
    let app = app.with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (format!("http://{addr}"), state)
}

#[test]
fn open_loop_and_recommend_arguments_are_checked() {
    let args = parse(&["--recommend", "--request-rate", "250,500,1000"]);
    assert!(args.recommend && args.model.is_empty());
    assert_eq!(args.request_rate, vec![250.0, 500.0, 1000.0]);
    assert!(args.open_loop());
    assert_eq!(args.max_in_flight, 64);
    assert_eq!((args.k, args.seed, args.bodies.as_deref()), (20, 7, None));
    let args = parse(&["--model", "m", "--request-rate", "12.5", "--max-in-flight", "3"]);
    assert_eq!((args.request_rate.clone(), args.max_in_flight), (vec![12.5], 3));
    assert!(!parse(&["--model", "m"]).open_loop());

    assert!(rejected(&[]), "--model or --recommend is required");
    for bad in ["0", "-5", "abc", "inf", "NaN", "2000000", "100,0"] {
        assert!(rejected(&["--model", "m", "--request-rate", bad]), "--request-rate {bad} accepted");
    }
    assert!(rejected(&["--model", "m", "--request-rate", "10", "--max-in-flight", "0"]));
    assert!(rejected(&["--model", "m", "--bodies", "b.jsonl"]), "--bodies needs --recommend");
    assert!(rejected(&["--recommend", "--binary"]));
    assert!(rejected(&["--recommend", "--input-data", "x.json"]));
    assert!(rejected(&["--recommend", "--model-version", "2"]));
    assert!(rejected(&["--recommend", "--k", "0"]));

    let help = Cli::command().render_long_help().to_string();
    for flag in ["REQUEST_RATE", "MAX_IN_FLIGHT", "RECOMMEND", "BODIES", "K", "SEED"] {
        assert!(help.contains(&format!("[env: RECSERVE_BENCH_{flag}")), "{flag} missing in:\n{help}");
    }
    assert!(help.contains("scheduled send time"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_built_arguments_are_validated() {
    let mut args = BenchArgs::new("m");
    args.request_rate = vec![f64::NAN];
    let err = recserve_loadgen::run(&args).await.expect_err("NaN rate");
    assert!(matches!(err, LoadgenError::InvalidArgument { arg: "--request-rate", .. }), "{err}");

    let mut args = BenchArgs::new("");
    let err = recserve_loadgen::run(&args).await.expect_err("no model");
    assert!(err.to_string().contains("--recommend"), "{err}");
    args.bodies = Some("b.jsonl".into());
    args.recommend = false;
    args.model = "m".into();
    let err = recserve_loadgen::run(&args).await.expect_err("bodies without recommend");
    assert!(matches!(err, LoadgenError::InvalidArgument { arg: "--bodies", .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_rate_times_duration_requests() {
    let (url, seen) = spawn_server(true).await;
    // 200/s for 0.5 s after 0.1 s of warm-up: 100 measured requests, 20 warm-up ones.
    let args =
        parse(&["--url", &url, "--model", "m", "--request-rate", "200", "--duration", "0.5", "--warmup", "0.1", "-q"]);
    let reports = recserve_loadgen::run(&args).await.expect("run");
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.requests, 100);
    assert_eq!(r.errors, 0);
    assert_eq!(r.request_rate, Some(200.0));
    assert_eq!(r.concurrency, 64, "the in-flight cap");
    assert!(r.send_lag_ms.is_some());
    assert!(r.throughput_rps > 0.0);
    assert!(r.latency_ms.p50 <= r.latency_ms.p99 && r.latency_ms.p99 <= r.latency_ms.max);
    assert_eq!(seen.lock().expect("lock").v2, 120);
    let table = recserve_loadgen::format_table(&reports);
    assert!(table.contains(recserve_loadgen::rate_table_header()) && table.contains("send lag at 200/s"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_rates_and_request_counts() {
    let (url, seen) = spawn_server(true).await;
    let args =
        parse(&["--url", &url, "--model", "m", "--request-rate", "300,600", "--requests", "40", "--warmup", "0", "-q"]);
    let reports = recserve_loadgen::run(&args).await.expect("run");
    let rates: Vec<_> = reports.iter().map(|r| (r.request_rate, r.requests)).collect();
    assert_eq!(rates, vec![(Some(300.0), 40), (Some(600.0), 40)]);
    assert_eq!(seen.lock().expect("lock").v2, 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_bodies_are_cycled_in_order() {
    let (url, seen) = spawn_server(true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bodies.jsonl");
    std::fs::write(
        &file,
        "{\"scenario\": \"home_feed\", \"user_id\": \"U0000001\"}\n\n{\"scenario\":\"search\",\"user_id\":\"U0000002\",\"query\":\"lamp\"}\n{\"scenario\":\"home_feed\",\"user_id\":\"U0000003\",\"k\":5}\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf-8");
    let args = parse(&[
        "--url",
        &url,
        "--recommend",
        "--bodies",
        path,
        "--request-rate",
        "500",
        "--requests",
        "9",
        "--warmup",
        "0",
        "--max-in-flight",
        "1",
        "-q",
    ]);
    let reports = recserve_loadgen::run(&args).await.expect("run");
    let r = &reports[0];
    assert!(r.recommend);
    assert_eq!(r.model, "/v1/recommend");
    assert_eq!((r.requests, r.errors), (9, 0));
    {
        let seen = seen.lock().expect("lock");
        let users: Vec<&str> = seen.bodies.iter().map(|b| b["user_id"].as_str().expect("user")).collect();
        assert_eq!(users, ["U0000001", "U0000002", "U0000003"].repeat(3), "one connection: in order");
        assert_eq!(seen.bodies[1]["query"], "lamp");
        assert_eq!(seen.v2, 0);
        assert!(recserve_loadgen::format_table(&reports).starts_with("POST /v1/recommend"));
    }
    // The closed loop sends them too.
    let args = parse(&["--url", &url, "--recommend", "--bodies", path, "--requests", "6", "--concurrency", "2", "-q"]);
    let r = &recserve_loadgen::run(&args).await.expect("run")[0];
    assert_eq!((r.requests, r.errors, r.request_rate), (6, 0, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_recommend_bodies_come_from_the_demo_shop() {
    let (url, seen) = spawn_server(true).await;
    let args =
        parse(&["--url", &url, "--recommend", "--request-rate", "1000", "--requests", "60", "--warmup", "0", "-q"]);
    let r = &recserve_loadgen::run(&args).await.expect("run")[0];
    assert_eq!((r.requests, r.errors), (60, 0));
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.bodies.len(), 60);
    for b in &seen.bodies {
        assert_eq!(b["k"], 20);
        assert!(b["user_id"].as_str().is_some_and(|u| u.starts_with('U')), "{b}");
        match b["scenario"].as_str() {
            Some("home_feed") => assert!(b.get("query").is_none(), "{b}"),
            Some("search") => assert!(b["query"].is_string(), "{b}"),
            other => panic!("scenario {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_files_are_clear_errors() {
    let (url, seen) = spawn_server(true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |file: std::path::PathBuf| {
        let url = url.clone();
        async move {
            let path = file.to_str().expect("utf-8").to_owned();
            let args = parse(&["--url", &url, "--recommend", "--bodies", &path, "--requests", "1", "-q"]);
            recserve_loadgen::run(&args).await.expect_err("bad --bodies")
        }
    };

    let err = run(dir.path().join("missing.jsonl")).await;
    assert!(matches!(err, LoadgenError::ReadBodies { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.jsonl"), "{err}");

    let cases = [
        ("notjson.jsonl", "{\"scenario\": \"search\"}\n{oops\n", "line 2: not JSON"),
        ("array.jsonl", "[1, 2]\n", "line 1: a request body must be a JSON object"),
        ("empty.jsonl", "\n  \n", "no request bodies"),
    ];
    for (name, text, expected) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("write");
        let err = run(file).await;
        assert!(matches!(err, LoadgenError::InvalidBodies { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(expected) && message.contains(name), "{message}");
    }
    assert!(seen.lock().expect("lock").bodies.is_empty(), "no load was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_against_a_server_without_pipelines_is_a_clear_error() {
    let (url, _seen) = spawn_server(false).await;
    let args = parse(&["--url", &url, "--recommend", "--requests", "1", "-q"]);
    let err = recserve_loadgen::run(&args).await.expect_err("no pipelines");
    assert!(matches!(err, LoadgenError::NoPipelines { status: 404, .. }), "{err:?}");
    assert!(err.to_string().contains("--pipelines"), "{err}");
}
