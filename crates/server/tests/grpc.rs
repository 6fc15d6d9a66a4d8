//! The gRPC transport end to end: a tonic server with `recserve_server::grpc::service` on
//! 127.0.0.1:0 over a registry of fixture models (copied into a temp repository per test, so
//! loads and unloads in one test do not touch another), driven by the generated tonic client.
//! Inference results are compared with `fixtures/golden/<model>.json`.

use half::f16;
use recserve_engine::{DataType, TensorData};
use recserve_server::grpc::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use recserve_server::grpc::proto::*;
// The configuration enum is generated as `DataType`, which the engine's `DataType` shadows here.
use recserve_server::grpc::proto::DataType as DataType_;
use recserve_server::grpc::{self, GrpcInferenceServiceClient};
use recserve_server::{AppState, Limits};
use recserve_serving::{ModelRegistry, tract_loader};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::sync::oneshot;
use tonic::Code;
use tonic::transport::Channel;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

/// A running gRPC server over a temp repository holding copies of some fixture models.
struct TestServer {
    client: GrpcInferenceServiceClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
    _repo: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(models: &[&str]) -> TestServer {
    start_with(models, Limits::default()).await
}

async fn start_with(models: &[&str], limits: Limits) -> TestServer {
    let repo = tempfile::tempdir().expect("temp repo");
    for m in models {
        copy_dir(&fixtures().join("models").join(m), &repo.path().join(m));
    }
    let registry = ModelRegistry::new(repo.path(), tract_loader());
    registry.poll().await;
    let mut state = AppState::new(registry);
    state.limits = limits;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tonic::transport::Server::builder().add_service(grpc::service(state)).serve_with_incoming_shutdown(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        async {
            let _ = stopped.await;
        },
    );
    tokio::spawn(server);
    let client = GrpcInferenceServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect to the test server")
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    TestServer { client, stop: Some(stop), _repo: repo }
}

fn golden(model: &str) -> Value {
    let path = fixtures().join("golden").join(format!("{model}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden JSON")
}

fn shape_of(t: &Value) -> Vec<i64> {
    t["shape"].as_array().expect("shape").iter().map(|d| d.as_i64().expect("dim")).collect()
}

/// The golden tensor's data in the engine's representation.
fn data_of(t: &Value) -> TensorData {
    let dt = DataType::from_wire_name(t["datatype"].as_str().expect("datatype")).expect("known datatype");
    let v = t["data"].as_array().expect("data");
    let f = |x: &Value| x.as_f64().unwrap_or(f64::NAN);
    let i = |x: &Value| x.as_i64().expect("integer");
    let u = |x: &Value| x.as_u64().expect("unsigned integer");
    match dt {
        DataType::Bool => TensorData::Bool(v.iter().map(|x| x.as_bool().expect("bool")).collect()),
        DataType::U8 => TensorData::U8(v.iter().map(|x| u(x) as u8).collect()),
        DataType::U16 => TensorData::U16(v.iter().map(|x| u(x) as u16).collect()),
        DataType::U32 => TensorData::U32(v.iter().map(|x| u(x) as u32).collect()),
        DataType::U64 => TensorData::U64(v.iter().map(u).collect()),
        DataType::I8 => TensorData::I8(v.iter().map(|x| i(x) as i8).collect()),
        DataType::I16 => TensorData::I16(v.iter().map(|x| i(x) as i16).collect()),
        DataType::I32 => TensorData::I32(v.iter().map(|x| i(x) as i32).collect()),
        DataType::I64 => TensorData::I64(v.iter().map(i).collect()),
        DataType::F16 => TensorData::F16(v.iter().map(|x| f16::from_f64(f(x))).collect()),
        DataType::F32 => TensorData::F32(v.iter().map(|x| f(x) as f32).collect()),
        DataType::F64 => TensorData::F64(v.iter().map(f).collect()),
        DataType::Bytes => {
            TensorData::Bytes(v.iter().map(|x| x.as_str().expect("string").as_bytes().to_vec()).collect())
        }
    }
}

fn raw_input(name: &str, datatype: &str, shape: Vec<i64>) -> InferInputTensor {
    InferInputTensor { name: name.into(), datatype: datatype.into(), shape, parameters: HashMap::new(), contents: None }
}

/// A request carrying the golden case's inputs as raw contents.
fn raw_request(model: &str, case: &Value) -> ModelInferRequest {
    let mut req = ModelInferRequest { model_name: model.into(), ..Default::default() };
    for t in case["inputs"].as_array().expect("inputs") {
        req.inputs.push(raw_input(t["name"].as_str().expect("name"), t["datatype"].as_str().expect("dt"), shape_of(t)));
        req.raw_input_contents.push(data_of(t).to_le_bytes());
    }
    req
}

fn output<'a>(resp: &'a ModelInferResponse, name: &str) -> (usize, &'a model_infer_response::InferOutputTensor) {
    resp.outputs
        .iter()
        .enumerate()
        .find(|(_, o)| o.name == name)
        .unwrap_or_else(|| panic!("output {name} missing from {:?}", resp.outputs))
}

fn assert_close_f32(got: &[u8], want: &TensorData, what: &str) {
    let TensorData::F32(want) = want else { panic!("{what}: golden output is not FP32") };
    let got = match TensorData::from_le_bytes(DataType::F32, got).expect("FP32 raw output") {
        TensorData::F32(v) => v,
        other => panic!("{what}: decoded {other:?}"),
    };
    assert_eq!(got.len(), want.len(), "{what}: element count");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-4, "{what}[{k}]: got {g}, golden {w}");
    }
}

fn features(rows: usize, cols: usize) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "mlp".into(),
        inputs: vec![raw_input("features", "FP32", vec![rows as i64, cols as i64])],
        raw_input_contents: vec![TensorData::F32(vec![0.5; rows * cols]).to_le_bytes()],
        ..Default::default()
    }
}

#[tokio::test]
async fn health_and_server_metadata() {
    let mut s = start(&["mlp"]).await;
    assert!(s.client.server_live(ServerLiveRequest {}).await.expect("live").into_inner().live);
    assert!(s.client.server_ready(ServerReadyRequest {}).await.expect("ready").into_inner().ready);
    let meta = s.client.server_metadata(ServerMetadataRequest {}).await.expect("metadata").into_inner();
    assert_eq!(meta.name, "recserve");
    assert!(!meta.version.is_empty());
    assert!(meta.extensions.iter().any(|e| e == "binary_tensor_data"), "{:?}", meta.extensions);
}

#[tokio::test]
async fn model_ready_metadata_and_config() {
    let mut s = start(&["mlp"]).await;
    let ready = |name: &str, version: &str| ModelReadyRequest { name: name.into(), version: version.into() };
    assert!(s.client.model_ready(ready("mlp", "")).await.expect("ready").into_inner().ready);
    assert!(s.client.model_ready(ready("mlp", "1")).await.expect("ready v1").into_inner().ready);
    // As Triton answers: unknown models and versions are not ready, not an error.
    assert!(!s.client.model_ready(ready("nope", "")).await.expect("ready nope").into_inner().ready);
    assert!(!s.client.model_ready(ready("mlp", "7")).await.expect("ready v7").into_inner().ready);

    let m = s
        .client
        .model_metadata(ModelMetadataRequest { name: "mlp".into(), version: String::new() })
        .await
        .expect("model metadata")
        .into_inner();
    assert_eq!(m.name, "mlp");
    assert_eq!(m.versions, vec!["1"]);
    assert_eq!(m.platform, "onnxruntime_onnx");
    assert_eq!(m.inputs.len(), 1);
    assert_eq!((m.inputs[0].name.as_str(), m.inputs[0].datatype.as_str()), ("features", "FP32"));
    assert_eq!(m.inputs[0].shape, vec![-1, 16]);
    assert_eq!((m.outputs[0].name.as_str(), m.outputs[0].datatype.as_str()), ("score", "FP32"));
    assert_eq!(m.outputs[0].shape, vec![-1, 1]);

    let missing = s
        .client
        .model_metadata(ModelMetadataRequest { name: "nope".into(), version: String::new() })
        .await
        .expect_err("unknown model");
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.message().contains("nope"), "{}", missing.message());

    let c = s
        .client
        .model_config(ModelConfigRequest { name: "mlp".into(), version: String::new() })
        .await
        .expect("model config")
        .into_inner()
        .config
        .expect("config");
    assert_eq!(c.name, "mlp");
    assert_eq!(c.platform, "onnxruntime_onnx");
    assert!(c.max_batch_size > 0, "mlp batches: {}", c.max_batch_size);
    assert_eq!(c.input[0].name, "features");
    assert_eq!(c.input[0].data_type, DataType_::TypeFp32 as i32);
    assert_eq!(c.input[0].dims, vec![16]);
    assert_eq!(c.output[0].dims, vec![1]);
}

#[tokio::test]
async fn mlp_raw_inference_matches_golden() {
    let mut s = start(&["mlp"]).await;
    let g = golden("mlp");
    for (n, case) in g["cases"].as_array().expect("cases").iter().enumerate() {
        let mut req = raw_request("mlp", case);
        req.id = format!("case-{n}");
        let resp = s.client.model_infer(req).await.expect("infer").into_inner();
        assert_eq!(resp.model_name, "mlp");
        assert_eq!(resp.model_version, "1");
        assert_eq!(resp.id, format!("case-{n}"));
        assert_eq!(resp.raw_output_contents.len(), resp.outputs.len());
        for want in case["outputs"].as_array().expect("outputs") {
            let name = want["name"].as_str().expect("name");
            let (k, out) = output(&resp, name);
            assert_eq!(out.datatype, "FP32");
            assert_eq!(out.shape, shape_of(want), "case {n} {name} shape");
            assert_close_f32(&resp.raw_output_contents[k], &data_of(want), &format!("case {n} {name}"));
        }
    }
}

#[tokio::test]
async fn mlp_typed_contents_inference_matches_golden() {
    let mut s = start(&["mlp"]).await;
    let g = golden("mlp");
    for (n, case) in g["cases"].as_array().expect("cases").iter().enumerate() {
        let t = &case["inputs"][0];
        let TensorData::F32(values) = data_of(t) else { panic!("mlp input is FP32") };
        let req = ModelInferRequest {
            model_name: "mlp".into(),
            model_version: "1".into(),
            inputs: vec![InferInputTensor {
                contents: Some(InferTensorContents { fp32_contents: values, ..Default::default() }),
                ..raw_input("features", "FP32", shape_of(t))
            }],
            outputs: vec![InferRequestedOutputTensor { name: "score".into(), parameters: HashMap::new() }],
            ..Default::default()
        };
        let resp = s.client.model_infer(req).await.expect("infer").into_inner();
        let want = &case["outputs"][0];
        let (k, out) = output(&resp, "score");
        assert_eq!(out.shape, shape_of(want));
        assert_close_f32(&resp.raw_output_contents[k], &data_of(want), &format!("typed case {n}"));
    }
}

#[tokio::test]
async fn every_datatype_round_trips_through_identity() {
    let mut s = start(&["identity_all_types"]).await;
    let g = golden("identity_all_types");
    for (n, case) in g["cases"].as_array().expect("cases").iter().enumerate() {
        let resp = s.client.model_infer(raw_request("identity_all_types", case)).await.expect("infer").into_inner();
        let wanted = case["outputs"].as_array().expect("outputs");
        assert_eq!(resp.outputs.len(), wanted.len());
        for want in wanted {
            let name = want["name"].as_str().expect("name");
            let (k, out) = output(&resp, name);
            assert_eq!(out.datatype, want["datatype"].as_str().expect("dt"), "case {n} {name}");
            assert_eq!(out.shape, shape_of(want), "case {n} {name}");
            assert_eq!(resp.raw_output_contents[k], data_of(want).to_le_bytes(), "case {n} {name} bytes");
        }
    }
    // Every datatype the protocol has is covered by the fixture.
    let first = &g["cases"][0]["inputs"];
    for dt in DataType::ALL {
        assert!(
            first.as_array().expect("inputs").iter().any(|t| t["datatype"] == dt.wire_name()),
            "fixture lacks {dt}"
        );
    }
}

#[tokio::test]
async fn requested_outputs_come_back_in_the_order_asked() {
    let mut s = start(&["identity_all_types"]).await;
    let g = golden("identity_all_types");
    let case = &g["cases"][0];
    let mut req = raw_request("identity_all_types", case);
    req.outputs = ["out_BYTES", "out_FP16", "out_BOOL"]
        .iter()
        .map(|n| InferRequestedOutputTensor { name: (*n).into(), parameters: HashMap::new() })
        .collect();
    let resp = s.client.model_infer(req).await.expect("infer").into_inner();
    let names: Vec<&str> = resp.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["out_BYTES", "out_FP16", "out_BOOL"]);
    assert_eq!(resp.raw_output_contents.len(), 3);
    let want = |name: &str| {
        let t = case["outputs"].as_array().expect("outputs").iter().find(|t| t["name"] == name).expect("golden output");
        data_of(t).to_le_bytes()
    };
    assert_eq!(resp.raw_output_contents[0], want("out_BYTES"));
    assert_eq!(resp.raw_output_contents[1], want("out_FP16"));
    assert_eq!(resp.raw_output_contents[2], want("out_BOOL"));

    let mut req = raw_request("identity_all_types", case);
    req.outputs = vec![InferRequestedOutputTensor { name: "out_NOPE".into(), parameters: HashMap::new() }];
    let e = s.client.model_infer(req).await.expect_err("unknown output");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("out_NOPE"), "{}", e.message());
}

#[tokio::test]
async fn unknown_model_and_version_are_not_found() {
    let mut s = start(&["mlp"]).await;
    let mut req = features(1, 16);
    req.model_name = "no_such_model".into();
    let e = s.client.model_infer(req).await.expect_err("unknown model");
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("no_such_model"), "{}", e.message());

    let mut req = features(1, 16);
    req.model_version = "9".into();
    let e = s.client.model_infer(req).await.expect_err("unknown version");
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains('9'), "{}", e.message());
}

#[tokio::test]
async fn bad_inputs_are_invalid_argument_naming_the_input() {
    let mut s = start(&["mlp"]).await;
    // Declared shape disagrees with the model's.
    let e = s.client.model_infer(features(1, 15)).await.expect_err("wrong shape");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("features") && e.message().contains("16"), "{}", e.message());

    // Declared shape disagrees with the data sent.
    let mut req = features(1, 16);
    req.raw_input_contents[0].truncate(60);
    let e = s.client.model_infer(req).await.expect_err("short data");
    assert_eq!(e.code(), Code::InvalidArgument);
    let msg = e.message();
    assert!(msg.contains("'features'") && msg.contains("64 bytes") && msg.contains("60 bytes"), "{msg}");

    // Wrong datatype.
    let mut req = features(1, 16);
    req.inputs[0].datatype = "FP64".into();
    req.raw_input_contents[0] = TensorData::F64(vec![0.0; 16]).to_le_bytes();
    let e = s.client.model_infer(req).await.expect_err("wrong datatype");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("features") && e.message().contains("FP32"), "{}", e.message());

    // Unknown input name.
    let mut req = features(1, 16);
    req.inputs[0].name = "feature".into();
    let e = s.client.model_infer(req).await.expect_err("unknown input");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("'feature'"), "{}", e.message());
}

#[tokio::test]
async fn raw_contents_must_match_the_inputs() {
    let mut s = start(&["mlp"]).await;
    let mut req = features(1, 16);
    req.raw_input_contents.push(vec![0; 4]);
    let e = s.client.model_infer(req).await.expect_err("two raw entries for one input");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("1 inputs but 2 raw_input_contents"), "{}", e.message());

    let mut req = features(1, 16);
    req.inputs[0].contents = Some(InferTensorContents { fp32_contents: vec![0.0; 16], ..Default::default() });
    let e = s.client.model_infer(req).await.expect_err("raw and typed together");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("features") && e.message().contains("raw_input_contents"), "{}", e.message());
}

#[tokio::test]
async fn repository_index_unload_and_load() {
    let mut s = start(&["mlp", "identity_all_types"]).await;
    let index = |ready: bool| RepositoryIndexRequest { repository_name: String::new(), ready };
    let rows = s.client.repository_index(index(false)).await.expect("index").into_inner().models;
    let mlp: Vec<_> = rows.iter().filter(|r| r.name == "mlp").collect();
    assert_eq!(mlp.len(), 1, "{rows:?}");
    assert_eq!((mlp[0].version.as_str(), mlp[0].state.as_str()), ("1", "READY"));
    assert!(rows.iter().any(|r| r.name == "identity_all_types" && r.state == "READY"), "{rows:?}");

    let unload = RepositoryModelUnloadRequest { model_name: "mlp".into(), ..Default::default() };
    s.client.repository_model_unload(unload).await.expect("unload");
    let ready = s
        .client
        .model_ready(ModelReadyRequest { name: "mlp".into(), version: String::new() })
        .await
        .expect("ready")
        .into_inner();
    assert!(!ready.ready);
    let e = s.client.model_infer(features(1, 16)).await.expect_err("infer on an unloaded model");
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains("mlp"), "{}", e.message());
    let rows = s.client.repository_index(index(false)).await.expect("index").into_inner().models;
    let row = rows.iter().find(|r| r.name == "mlp").expect("mlp still listed");
    assert_ne!(row.state, "READY");
    let ready_rows = s.client.repository_index(index(true)).await.expect("index").into_inner().models;
    assert!(ready_rows.iter().all(|r| r.name != "mlp" && r.state == "READY"), "{ready_rows:?}");

    let load = RepositoryModelLoadRequest { model_name: "mlp".into(), ..Default::default() };
    s.client.repository_model_load(load).await.expect("load");
    let resp = s.client.model_infer(features(2, 16)).await.expect("infer after load").into_inner();
    assert_eq!(resp.outputs[0].shape, vec![2, 1]);

    let load = RepositoryModelLoadRequest { model_name: "nope".into(), ..Default::default() };
    let e = s.client.repository_model_load(load).await.expect_err("load unknown");
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("nope"), "{}", e.message());

    let mut load = RepositoryModelLoadRequest { model_name: "mlp".into(), ..Default::default() };
    load.parameters.insert(
        "config".into(),
        ModelRepositoryParameter {
            parameter_choice: Some(model_repository_parameter::ParameterChoice::StringParam("{}".into())),
        },
    );
    let e = s.client.repository_model_load(load).await.expect_err("config override");
    assert_eq!(e.code(), Code::Unimplemented);
}

#[tokio::test]
async fn statistics_count_inferences() {
    let mut s = start(&["mlp"]).await;
    for rows in [1, 3] {
        s.client.model_infer(features(rows, 16)).await.expect("infer");
    }
    let _ = s.client.model_infer(features(1, 15)).await.expect_err("bad shape");
    let req = ModelStatisticsRequest { name: "mlp".into(), version: String::new() };
    let stats = s.client.model_statistics(req).await.expect("stats").into_inner().model_stats;
    assert_eq!(stats.len(), 1);
    let m = &stats[0];
    assert_eq!((m.name.as_str(), m.version.as_str()), ("mlp", "1"));
    assert_eq!(m.inference_count, 4);
    assert!(m.execution_count >= 1 && m.execution_count <= 2, "{}", m.execution_count);
    let i = m.inference_stats.as_ref().expect("inference_stats");
    let success = i.success.expect("success");
    assert_eq!(success.count, 2);
    assert!(success.ns > 0);
    assert_eq!(i.fail.expect("fail").count, 1);
    assert_eq!(i.queue.expect("queue").count, 2);
    let compute = i.compute_infer.expect("compute_infer");
    assert_eq!(compute.count, m.execution_count);
    assert!(compute.ns > 0);

    let all = s.client.model_statistics(ModelStatisticsRequest::default()).await.expect("all stats").into_inner();
    assert!(all.model_stats.iter().any(|m| m.name == "mlp"));
    let e = s
        .client
        .model_statistics(ModelStatisticsRequest { name: "nope".into(), version: String::new() })
        .await
        .expect_err("stats of an unknown model");
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn unsupported_rpcs_are_unimplemented() {
    let mut s = start(&["mlp"]).await;
    let e = s.client.system_shared_memory_status(SystemSharedMemoryStatusRequest::default()).await.expect_err("shm");
    assert_eq!(e.code(), Code::Unimplemented);
    assert!(e.message().contains("shared memory"), "{}", e.message());
    let e = s.client.cuda_shared_memory_register(CudaSharedMemoryRegisterRequest::default()).await.expect_err("cuda");
    assert_eq!(e.code(), Code::Unimplemented);
    let e = s.client.trace_setting(TraceSettingRequest::default()).await.expect_err("trace");
    assert_eq!(e.code(), Code::Unimplemented);
    let e = s.client.log_settings(LogSettingsRequest::default()).await.expect_err("log");
    assert_eq!(e.code(), Code::Unimplemented);
    let stream = tokio_stream::iter(vec![features(1, 16)]);
    let e = s.client.model_stream_infer(stream).await.expect_err("stream");
    assert_eq!(e.code(), Code::Unimplemented);
    // The server still answers afterwards.
    s.client.model_infer(features(1, 16)).await.expect("infer after unimplemented calls");
}

#[tokio::test]
async fn messages_over_the_limit_are_refused() {
    let mut s = start_with(&["mlp"], Limits { max_body_bytes: 4096, ..Limits::default() }).await;
    s.client.model_infer(features(4, 16)).await.expect("small request");
    let e = s.client.model_infer(features(100, 16)).await.expect_err("6.4 kB request over a 4 kB limit");
    // tonic refuses an oversized message with OUT_OF_RANGE before any handler runs.
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(e.message().contains("too large"), "{}", e.message());
}

#[tokio::test]
async fn requests_over_the_element_limit_are_refused_before_they_queue() {
    let mut s = start_with(&["mlp"], Limits { max_request_elements: 64, ..Limits::default() }).await;
    s.client.model_infer(features(4, 16)).await.expect("64 elements are within the limit");
    let e = s.client.model_infer(features(5, 16)).await.expect_err("80 elements");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("80 tensor elements") && e.message().contains("at most 64"), "{}", e.message());
    s.client.model_infer(features(1, 16)).await.expect("the server keeps serving");
}
