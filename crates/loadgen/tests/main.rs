//! Integration tests of the load generator against a small V2 server started in the test on
//! 127.0.0.1:0. The server checks every request body against the metadata it advertised and
//! records what it saw; the tests compare that with the reports. No timing assertions.

#![allow(clippy::unwrap_used)]

mod open_loop;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::{CommandFactory, Parser};
use recserve_loadgen::{BenchArgs, LoadgenError, Report};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn parse(args: &[&str]) -> BenchArgs {
    let mut argv = vec!["bench"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).expect("arguments parse").bench
}

/// What the test server advertises and how it answers.
struct Behaviour {
    /// Metadata of model "m" (and of "slow", whose infer never answers in time).
    metadata: Value,
    /// Expected size of the batch dimension.
    rows: u64,
    /// Answer 400 "every third" to request numbers divisible by 3, "every fifth" to the other
    /// multiples of 5.
    fail_some: bool,
}

#[derive(Default)]
struct Seen {
    /// Infer requests received, by path.
    requests: BTreeMap<String, u64>,
    /// Requests whose body did not match the metadata, with the reason.
    invalid: Vec<String>,
    /// Distinct raw bodies received.
    bodies: Vec<Vec<u8>>,
    /// Infer requests that used the binary extension.
    binary: u64,
}

struct TestServer {
    behaviour: Behaviour,
    count: AtomicU64,
    seen: Mutex<Seen>,
}

type Shared = Arc<TestServer>;

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

async fn metadata(State(s): State<Shared>, Path(model): Path<String>) -> Response {
    if model == "m" || model == "slow" {
        let mut meta = s.behaviour.metadata.clone();
        meta["name"] = json!(model);
        axum::Json(meta).into_response()
    } else {
        error(StatusCode::NOT_FOUND, &format!("unknown model '{model}': the repository has m"))
    }
}

async fn metadata_versioned(state: State<Shared>, Path((model, _version)): Path<(String, String)>) -> Response {
    metadata(state, Path(model)).await
}

async fn infer(State(s): State<Shared>, Path(model): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    answer(&s, format!("/v2/models/{model}/infer"), &model, &headers, &body).await
}

async fn infer_versioned(
    State(s): State<Shared>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v2/models/{model}/versions/{version}/infer");
    answer(&s, path, &model, &headers, &body).await
}

async fn answer(s: &TestServer, path: String, model: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let n = s.count.fetch_add(1, Ordering::SeqCst) + 1;
    let header_len = headers
        .get("inference-header-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let check = check_body(&s.behaviour, header_len, body);
    {
        let mut seen = s.seen.lock().expect("lock");
        *seen.requests.entry(path).or_insert(0) += 1;
        if header_len.is_some() {
            seen.binary += 1;
        }
        if !seen.bodies.iter().any(|b| b == body) {
            seen.bodies.push(body.to_vec());
        }
        if let Err(reason) = &check {
            seen.invalid.push(reason.clone());
        }
    }
    if model == "slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    if let Err(reason) = check {
        return error(StatusCode::BAD_REQUEST, &reason);
    }
    if s.behaviour.fail_some {
        if n.is_multiple_of(3) {
            return error(StatusCode::BAD_REQUEST, "every third");
        }
        if n.is_multiple_of(5) {
            return error(StatusCode::BAD_REQUEST, "every fifth");
        }
    }
    axum::Json(json!({
        "model_name": model,
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 1], "data": [0.5]}]
    }))
    .into_response()
}

/// Checks a request body against the advertised metadata, independently of the generator's
/// own encoder.
fn check_body(b: &Behaviour, header_len: Option<usize>, body: &[u8]) -> Result<(), String> {
    let (json_part, mut raw) = match header_len {
        Some(n) if n <= body.len() => (&body[..n], &body[n..]),
        Some(n) => return Err(format!("header length {n} > body {}", body.len())),
        None => (body, &[][..]),
    };
    let req: Value = serde_json::from_slice(json_part).map_err(|e| format!("not JSON: {e}"))?;
    let inputs = req["inputs"].as_array().ok_or("no inputs")?;
    let declared = b.metadata["inputs"].as_array().ok_or("metadata")?;
    if inputs.len() != declared.len() {
        return Err(format!("{} inputs, expected {}", inputs.len(), declared.len()));
    }
    for decl in declared {
        let name = decl["name"].as_str().ok_or("metadata")?;
        let input = inputs.iter().find(|i| i["name"] == decl["name"]).ok_or(format!("input {name} missing"))?;
        let datatype = decl["datatype"].as_str().ok_or("metadata")?;
        if input["datatype"] != decl["datatype"] {
            return Err(format!("{name}: datatype {}", input["datatype"]));
        }
        let expected: Vec<u64> = decl["shape"]
            .as_array()
            .ok_or("metadata")?
            .iter()
            .enumerate()
            .map(|(i, d)| match d.as_i64() {
                Some(-1) if i == 0 => b.rows,
                Some(-1) => 1,
                Some(d) => d as u64,
                None => 0,
            })
            .collect();
        let shape: Vec<u64> =
            serde_json::from_value(input["shape"].clone()).map_err(|e| format!("{name}: shape {e}"))?;
        if shape != expected {
            return Err(format!("{name}: shape {shape:?}, expected {expected:?}"));
        }
        let count: u64 = shape.iter().product();
        if header_len.is_none() {
            let data = input["data"].as_array().ok_or(format!("{name}: no data"))?;
            if data.len() as u64 != count {
                return Err(format!("{name}: {} elements, expected {count}", data.len()));
            }
            for v in data {
                let ok = match datatype {
                    "BOOL" => v.is_boolean(),
                    "BYTES" => v.is_string(),
                    "FP16" | "FP32" | "FP64" | "BF16" => v.is_number(),
                    t if t.starts_with("UINT") => v.is_u64(),
                    _ => v.is_i64(),
                };
                if !ok {
                    return Err(format!("{name}: {v} is not {datatype}"));
                }
            }
        } else {
            if input.get("data").is_some() {
                return Err(format!("{name}: binary input also has JSON data"));
            }
            let size = input["parameters"]["binary_data_size"].as_u64().ok_or(format!("{name}: no binary_data_size"))?
                as usize;
            if size > raw.len() {
                return Err(format!("{name}: binary_data_size {size} past the body end"));
            }
            let (mine, rest) = raw.split_at(size);
            raw = rest;
            let expected_size = match datatype {
                "BYTES" => {
                    let mut at = 0usize;
                    for _ in 0..count {
                        let len_bytes: [u8; 4] = mine
                            .get(at..at + 4)
                            .and_then(|s| s.try_into().ok())
                            .ok_or(format!("{name}: truncated BYTES"))?;
                        at += 4 + u32::from_le_bytes(len_bytes) as usize;
                    }
                    at
                }
                "BOOL" | "INT8" | "UINT8" => count as usize,
                "INT16" | "UINT16" | "FP16" | "BF16" => 2 * count as usize,
                "INT32" | "UINT32" | "FP32" => 4 * count as usize,
                _ => 8 * count as usize,
            };
            if expected_size != size {
                return Err(format!("{name}: {size} bytes, expected {expected_size}"));
            }
        }
    }
    if !raw.is_empty() {
        return Err(format!("{} unclaimed bytes after the tensors", raw.len()));
    }
    Ok(())
}

async fn spawn_server(behaviour: Behaviour) -> (String, Shared) {
    let state = Arc::new(TestServer { behaviour, count: AtomicU64::new(0), seen: Mutex::new(Seen::default()) });
    let app = Router::new()
        .route("/v2/models/{m}", get(metadata))
        .route("/v2/models/{m}/versions/{v}", get(metadata_versioned))
        .route("/v2/models/{m}/infer", post(infer))
        .route("/v2/models/{m}/versions/{v}/infer", post(infer_versioned))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (format!("http://{addr}"), state)
}

fn simple_metadata() -> Value {
    json!({
        "name": "m", "versions": ["1", "2"], "platform": "onnx",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 16]}],
        "outputs": [{"name": "score", "datatype": "FP32", "shape": [-1, 1]}]
    })
}

fn all_types_metadata() -> Value {
    let types = [
        "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "BF16", "FP32",
        "FP64", "BYTES",
    ];
    let mut inputs: Vec<Value> = types
        .iter()
        .map(|t| json!({"name": format!("in_{}", t.to_lowercase()), "datatype": t, "shape": [-1, 3]}))
        .collect();
    inputs.push(json!({"name": "var", "datatype": "INT64", "shape": [-1, -1, 2]}));
    inputs.push(json!({"name": "fixed", "datatype": "FP32", "shape": [2, 2]}));
    json!({"name": "m", "versions": ["1"], "platform": "onnx", "inputs": inputs, "outputs": []})
}

fn behaviour(metadata: Value, rows: u64, fail_some: bool) -> Behaviour {
    Behaviour { metadata, rows, fail_some }
}

fn only(reports: Vec<Report>) -> Report {
    assert_eq!(reports.len(), 1, "{reports:?}");
    reports.into_iter().next().expect("one report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_count_is_exact() {
    let (url, server) = spawn_server(behaviour(simple_metadata(), 1, false)).await;
    let args =
        parse(&["--url", &url, "--model", "m", "--requests", "137", "--concurrency", "4", "--warmup", "0", "--quiet"]);
    let r = only(recserve_loadgen::run(&args).await.expect("run"));
    assert_eq!(r.requests, 137);
    assert_eq!(r.errors, 0);
    assert_eq!(r.concurrency, 4);
    assert_eq!(r.rows, 1);
    assert!(r.error_messages.is_empty());
    assert!(r.throughput_rps > 0.0);
    assert_eq!(r.rows_per_s, r.throughput_rps);
    assert!(r.latency_ms.p50 <= r.latency_ms.p99 && r.latency_ms.p99 <= r.latency_ms.max);
    assert_eq!(server.count.load(Ordering::SeqCst), 137);
    let seen = server.seen.lock().expect("lock");
    assert_eq!(seen.requests, BTreeMap::from([("/v2/models/m/infer".to_owned(), 137)]));
    assert!(seen.invalid.is_empty(), "{:?}", seen.invalid);
    assert_eq!(seen.bodies.len(), 1, "the same body every time");
    assert_eq!(seen.binary, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_counted_with_their_messages() {
    let (url, server) = spawn_server(behaviour(simple_metadata(), 1, true)).await;
    let args = parse(&["--url", &url, "--model", "m", "--requests", "30", "--concurrency", "3", "--warmup", "0", "-q"]);
    let r = only(recserve_loadgen::run(&args).await.expect("run"));
    // Requests 1..=30: ten multiples of 3, and 5, 10, 20, 25.
    assert_eq!(r.requests, 30);
    assert_eq!(r.errors, 14);
    let messages: Vec<(Option<u16>, &str, u64)> =
        r.error_messages.iter().map(|e| (e.status, e.message.as_str(), e.count)).collect();
    assert_eq!(messages, vec![(Some(400), "every third", 10), (Some(400), "every fifth", 4)]);
    assert!(server.seen.lock().expect("lock").invalid.is_empty());
    let table = recserve_loadgen::format_table(&[r]);
    assert!(table.contains("HTTP 400: every third"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_json_body_matches_the_metadata() {
    let (url, server) = spawn_server(behaviour(all_types_metadata(), 3, false)).await;
    let args = parse(&["--url", &url, "--model", "m", "--rows", "3", "--requests", "5", "--warmup", "0", "-q"]);
    let r = only(recserve_loadgen::run(&args).await.expect("run"));
    assert_eq!((r.requests, r.errors, r.rows), (5, 0, 3));
    assert!((r.rows_per_s - 3.0 * r.throughput_rps).abs() <= 1e-9 * r.rows_per_s);
    let seen = server.seen.lock().expect("lock");
    assert!(seen.invalid.is_empty(), "{:?}", seen.invalid);
    assert_eq!(seen.bodies.len(), 1);
    let body: Value = serde_json::from_slice(&seen.bodies[0]).expect("JSON body");
    let fp16 = &body["inputs"][9];
    assert_eq!(fp16["name"], "in_fp16");
    assert_eq!(fp16["shape"], json!([3, 3]));
    assert_eq!(body["inputs"][14]["shape"], json!([3, 1, 2]));
    assert_eq!(body["inputs"][15]["shape"], json!([2, 2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_binary_body_matches_the_metadata() {
    let (url, server) = spawn_server(behaviour(all_types_metadata(), 2, false)).await;
    let args =
        parse(&["--url", &url, "--model", "m", "--rows", "2", "--requests", "7", "--warmup", "0", "--binary", "-q"]);
    let r = only(recserve_loadgen::run(&args).await.expect("run"));
    assert_eq!((r.requests, r.errors), (7, 0), "{r:?}");
    assert!(r.binary);
    let seen = server.seen.lock().expect("lock");
    assert!(seen.invalid.is_empty(), "{:?}", seen.invalid);
    assert_eq!(seen.binary, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_gives_one_report_per_level() {
    let (url, server) = spawn_server(behaviour(simple_metadata(), 1, false)).await;
    let args = parse(&[
        "--url",
        &url,
        "--model",
        "m",
        "--concurrency-range",
        "1:4:x2",
        "--requests",
        "20",
        "--warmup",
        "0",
        "-q",
    ]);
    let reports = recserve_loadgen::run(&args).await.expect("run");
    let levels: Vec<u32> = reports.iter().map(|r| r.concurrency).collect();
    assert_eq!(levels, vec![1, 2, 4]);
    assert!(reports.iter().all(|r| r.requests == 20 && r.errors == 0));
    assert_eq!(server.count.load(Ordering::SeqCst), 60);

    let args = parse(&[
        "--url",
        &url,
        "--model",
        "m",
        "--concurrency-range",
        "2:6:2",
        "--concurrency",
        "9",
        "--requests",
        "3",
        "--warmup",
        "0",
        "-q",
    ]);
    let levels: Vec<u32> = recserve_loadgen::run(&args).await.expect("run").iter().map(|r| r.concurrency).collect();
    assert_eq!(levels, vec![2, 4, 6], "the range wins over --concurrency");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_mode_with_warmup_measures_something() {
    let (url, server) = spawn_server(behaviour(simple_metadata(), 1, false)).await;
    let args =
        parse(&["--url", &url, "--model", "m", "--duration", "0.3", "--warmup", "0.1", "--concurrency", "2", "-q"]);
    let r = only(recserve_loadgen::run(&args).await.expect("run"));
    assert!(r.requests > 0);
    assert_eq!(r.errors, 0);
    assert!(r.duration_s > 0.0);
    // Warm-up requests reach the server but are not in the report.
    assert!(server.count.load(Ordering::SeqCst) >= r.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_version_goes_into_the_path() {
    let (url, server) = spawn_server(behaviour(simple_metadata(), 1, false)).await;
    let args =
        parse(&["--url", &url, "--model", "m", "--model-version", "2", "--requests", "4", "--warmup", "0", "-q"]);
    let r = only(recserve_loadgen::run(&args).await.expect("run"));
    assert_eq!((r.requests, r.errors), (4, 0));
    let seen = server.seen.lock().expect("lock");
    assert_eq!(seen.requests, BTreeMap::from([("/v2/models/m/versions/2/infer".to_owned(), 4)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_data_is_sent_as_is_or_re_encoded() {
    let (url, server) = spawn_server(behaviour(simple_metadata(), 2, false)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("request.json");
    let data: Vec<f64> = (0..32).map(|i| f64::from(i) / 8.0).collect();
    let text = format!(
        "{{ \"id\": \"fixed\",\n  \"inputs\": [{{\"name\": \"features\", \"datatype\": \"FP32\", \"shape\": [2, 16], \"data\": {}}}] }}\n",
        serde_json::to_string(&data).expect("json")
    );
    std::fs::write(&path, &text).expect("write");
    let file = path.to_str().expect("utf-8 path");

    let args = parse(&["--url", &url, "--model", "m", "--input-data", file, "--requests", "3", "--warmup", "0", "-q"]);
    let r = only(recserve_loadgen::run(&args).await.expect("run"));
    assert_eq!((r.requests, r.errors, r.rows), (3, 0, 2));
    {
        let seen = server.seen.lock().expect("lock");
        assert_eq!(seen.bodies, vec![text.clone().into_bytes()]);
        assert!(seen.invalid.is_empty(), "{:?}", seen.invalid);
    }

    let args = parse(&[
        "--url",
        &url,
        "--model",
        "m",
        "--input-data",
        file,
        "--requests",
        "3",
        "--warmup",
        "0",
        "--binary",
        "-q",
    ]);
    let r = only(recserve_loadgen::run(&args).await.expect("run"));
    assert_eq!((r.requests, r.errors), (3, 0));
    {
        let seen = server.seen.lock().expect("lock");
        assert_eq!(seen.binary, 3);
        assert!(seen.invalid.is_empty(), "{:?}", seen.invalid);
        let binary = seen.bodies.last().expect("binary body");
        // The raw FP32 values follow the header: 0.0, 0.125, ...
        let tail = &binary[binary.len() - 32 * 4..];
        assert_eq!(&tail[4..8], &0.125f32.to_le_bytes());
    }

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"nope\": 1}").expect("write");
    let args = parse(&["--url", &url, "--model", "m", "--input-data", bad.to_str().expect("utf-8"), "-q"]);
    let err = recserve_loadgen::run(&args).await.expect_err("bad input data");
    assert!(matches!(err, LoadgenError::InvalidInputData { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}");
    let args = parse(&["--url", &url, "--model", "m", "--requests", "1", "-q"]);
    let err = recserve_loadgen::run(&args).await.expect_err("nothing listens");
    assert!(matches!(err, LoadgenError::Connect { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("cannot reach the server"), "{message}");
    assert!(message.contains(&url), "{message}");

    let args = parse(&["--url", "localhost:8000", "--model", "m", "-q"]);
    let err = recserve_loadgen::run(&args).await.expect_err("no scheme");
    assert!(matches!(err, LoadgenError::InvalidUrl { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_model_is_a_clear_error() {
    let (url, server) = spawn_server(behaviour(simple_metadata(), 1, false)).await;
    let args = parse(&["--url", &url, "--model", "nope", "--requests", "1", "-q"]);
    let err = recserve_loadgen::run(&args).await.expect_err("unknown model");
    assert!(matches!(&err, LoadgenError::ModelNotFound { status: 404, .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("\"nope\"") && message.contains("the repository has m"), "{message}");
    assert_eq!(server.count.load(Ordering::SeqCst), 0, "no load was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_count_as_transport_errors() {
    let (url, _server) = spawn_server(behaviour(simple_metadata(), 1, false)).await;
    let args =
        parse(&["--url", &url, "--model", "slow", "--requests", "2", "--warmup", "0", "--timeout-ms", "50", "-q"]);
    let r = only(recserve_loadgen::run(&args).await.expect("run"));
    assert_eq!((r.requests, r.errors), (2, 2));
    assert_eq!(r.throughput_rps, 0.0);
    assert_eq!(r.error_messages.len(), 1);
    assert_eq!(r.error_messages[0].status, None);
    assert!(r.error_messages[0].message.contains("timed out after 50 ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_written() {
    let (url, _server) = spawn_server(behaviour(simple_metadata(), 1, false)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("report.json");
    let args = parse(&[
        "--url",
        &url,
        "--model",
        "m",
        "--requests",
        "10",
        "--warmup",
        "0",
        "--json-output",
        out.to_str().expect("utf-8"),
        "-q",
    ]);
    let reports = recserve_loadgen::run_and_report(&args).await.expect("run");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).expect("read")).expect("JSON");
    // serde_json parses floats to within an ulp only, so compare them loosely.
    assert_eq!(written.as_array().map(Vec::len), Some(1));
    let first = &written[0];
    assert_eq!(first["requests"], 10);
    assert_eq!(first["model"], "m");
    let rps = first["throughput_rps"].as_f64().expect("number");
    assert!((rps - reports[0].throughput_rps).abs() <= 1e-9 * rps);
    for key in ["p50", "p90", "p95", "p99", "max", "mean"] {
        assert!(first["latency_ms"][key].is_number(), "{key}");
    }
    for key in ["concurrency", "rows", "errors", "error_messages", "duration_s", "throughput_rps", "rows_per_s"] {
        assert!(first.get(key).is_some(), "{key}");
    }
}

#[test]
fn defaults_help_and_env_names() {
    let args = parse(&["--model", "m"]);
    assert_eq!(args.url, "http://127.0.0.1:8000");
    assert_eq!(args.concurrency, 1);
    assert_eq!(args.rows, 1);
    assert_eq!(args.duration, 10.0);
    assert_eq!(args.warmup, 1.0);
    assert_eq!(args.requests, None);
    assert!(!args.binary && !args.quiet);
    assert_eq!(args.concurrency_levels(), vec![1]);

    assert!(Cli::try_parse_from(["bench"]).is_err(), "--model is required");
    assert!(Cli::try_parse_from(["bench", "--model", "m", "--concurrency", "0"]).is_err());
    assert!(Cli::try_parse_from(["bench", "--model", "m", "--duration", "-1"]).is_err());
    assert!(Cli::try_parse_from(["bench", "--model", "m", "--concurrency-range", "4:1"]).is_err());

    let help = Cli::command().render_long_help().to_string();
    for flag in [
        "URL",
        "MODEL",
        "MODEL_VERSION",
        "CONCURRENCY",
        "CONCURRENCY_RANGE",
        "ROWS",
        "DURATION",
        "REQUESTS",
        "WARMUP",
        "INPUT_DATA",
        "BINARY",
        "JSON_OUTPUT",
        "TIMEOUT_MS",
        "QUIET",
    ] {
        assert!(help.contains(&format!("[env: RECSERVE_BENCH_{flag}")), "{flag} missing in:\n{help}");
    }
}
