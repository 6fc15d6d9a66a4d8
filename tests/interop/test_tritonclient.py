"""recserve through NVIDIA's own Python client, unchanged: tritonclient.http (JSON and binary
tensors) and tritonclient.grpc against a running server.

The server's addresses come from RECSERVE_HTTP_URL and RECSERVE_GRPC_URL (host:port, no
scheme); tests/interop/run.sh starts `recserve serve` over fixtures/models and sets both.
Expected values come from fixtures/golden/<model>.json, made by fixtures/make_fixtures.py with
onnxruntime.
"""

import json
import math
import os
import pathlib

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

ROOT = pathlib.Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "fixtures" / "golden"
HTTP_URL = os.environ.get("RECSERVE_HTTP_URL")
GRPC_URL = os.environ.get("RECSERVE_GRPC_URL")
if not HTTP_URL or not GRPC_URL:
    raise RuntimeError(
        "set RECSERVE_HTTP_URL and RECSERVE_GRPC_URL to a running recserve (host:port); "
        "tests/interop/run.sh starts one and sets them"
    )

TOLERANCE = 1e-4
# The model the unload/load test takes out of service and back; no other test uses it.
RELOADED_MODEL = "multi_io"


def golden(name):
    return json.loads((GOLDEN / f"{name}.json").read_text())


def to_numpy(tensor):
    """A golden tensor as the numpy array tritonclient sends (None in float data is NaN)."""
    dt = tensor["datatype"]
    data = tensor["data"]
    if dt == "BYTES":
        arr = np.array([s.encode("utf-8") for s in data], dtype=np.object_)
    elif dt in ("FP16", "FP32", "FP64"):
        arr = np.array([math.nan if v is None else v for v in data], dtype=triton_to_np_dtype(dt))
    else:
        arr = np.array(data, dtype=triton_to_np_dtype(dt))
    return arr.reshape(tensor["shape"])


def as_bytes_list(arr):
    return [x if isinstance(x, bytes) else str(x).encode("utf-8") for x in arr.flatten()]


def assert_matches(got, want, what):
    """Exact for integers, BOOL and BYTES; within TOLERANCE (NaN equal to NaN) for floats."""
    assert got is not None, f"{what}: output missing from the response"
    assert list(got.shape) == list(want.shape), f"{what}: shape {got.shape}, golden {want.shape}"
    if want.dtype == np.object_:
        assert as_bytes_list(got) == as_bytes_list(want), what
    elif np.issubdtype(want.dtype, np.floating):
        assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, golden {want.dtype}"
        np.testing.assert_allclose(
            got.astype(np.float64), want.astype(np.float64), rtol=0, atol=TOLERANCE, equal_nan=True, err_msg=what
        )
    else:
        assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, golden {want.dtype}"
        np.testing.assert_array_equal(got, want, err_msg=what)


def ints(values):
    """Shapes and counts: gRPC messages turned to JSON give 64-bit integers as strings."""
    return [int(v) for v in values]


class Protocol:
    """One way of talking to recserve: HTTP with JSON tensors, HTTP with binary tensors, gRPC."""

    def __init__(self, kind):
        self.kind = kind
        self.grpc = kind == "grpc"
        self.binary = kind != "http-json"
        self.module = grpcclient if self.grpc else httpclient
        self.client = (
            grpcclient.InferenceServerClient(GRPC_URL) if self.grpc else httpclient.InferenceServerClient(HTTP_URL)
        )

    def __repr__(self):
        return self.kind

    def as_dict(self, answer):
        """Metadata answers as plain dicts (the gRPC client returns protobuf messages)."""
        if self.grpc:
            from google.protobuf.json_format import MessageToDict

            return MessageToDict(answer, preserving_proto_field_name=True)
        return answer

    def make_input(self, name, arr, datatype):
        inp = self.module.InferInput(name, list(arr.shape), datatype)
        if self.grpc:
            inp.set_data_from_numpy(arr)
        else:
            inp.set_data_from_numpy(arr, binary_data=self.binary)
        return inp

    def make_output(self, name):
        if self.grpc:
            return grpcclient.InferRequestedOutput(name)
        return httpclient.InferRequestedOutput(name, binary_data=self.binary)

    def infer(self, model, tensors, outputs=None, **kwargs):
        """Infers golden-format input tensors. JSON mode names every output so that none comes
        back binary (an unnamed output list asks for binary outputs)."""
        inputs = [self.make_input(t["name"], to_numpy(t), t["datatype"]) for t in tensors]
        if outputs is None and self.kind == "http-json":
            outputs = [o["name"] for o in self.as_dict(self.client.get_model_metadata(model))["outputs"]]
        requested = None if outputs is None else [self.make_output(n) for n in outputs]
        return self.client.infer(model, inputs, outputs=requested, **kwargs)


@pytest.fixture(params=["http-json", "http-binary", "grpc"], scope="module")
def proto(request):
    p = Protocol(request.param)
    yield p
    p.client.close()


# --- health and metadata -----------------------------------------------------------------------


def test_server_live_and_ready(proto):
    assert proto.client.is_server_live()
    assert proto.client.is_server_ready()


def test_server_metadata(proto):
    meta = proto.as_dict(proto.client.get_server_metadata())
    assert meta["name"] == "recserve"
    assert meta["version"]
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata(proto):
    meta = proto.as_dict(proto.client.get_model_metadata("mlp"))
    assert meta["name"] == "mlp"
    assert meta["versions"] == ["1"]
    assert meta["platform"] == "onnxruntime_onnx"
    (inp,) = meta["inputs"]
    assert (inp["name"], inp["datatype"], ints(inp["shape"])) == ("features", "FP32", [-1, 16])
    (out,) = meta["outputs"]
    assert (out["name"], out["datatype"], ints(out["shape"])) == ("score", "FP32", [-1, 1])


def test_model_config(proto):
    config = proto.client.get_model_config("mlp")
    config = proto.as_dict(config)
    config = config.get("config", config)  # gRPC wraps it in ModelConfigResponse
    assert config["name"] == "mlp"
    assert int(config["max_batch_size"]) > 0
    assert config["input"][0]["name"] == "features"
    assert config["input"][0]["data_type"] == "TYPE_FP32"
    assert ints(config["input"][0]["dims"]) == [16]
    assert ints(config["output"][0]["dims"]) == [1]


def test_model_ready(proto):
    assert proto.client.is_model_ready("mlp")
    assert proto.client.is_model_ready("mlp", "1")
    assert not proto.client.is_model_ready("no_such_model")


def test_model_metadata_of_unknown_model_raises(proto):
    with pytest.raises(InferenceServerException) as e:
        proto.client.get_model_metadata("no_such_model")
    assert "no_such_model" in e.value.message()


# --- inference -----------------------------------------------------------------------------------

GOLDEN_FILES = ["mlp", "lightgbm_regressor", "lightgbm_classifier"]
# JSON has no NaN, so the missing-value cases go only over binary HTTP and gRPC.
NAN_GOLDEN_FILES = ["lightgbm_regressor.nan", "lightgbm_classifier.nan"]


def run_golden(proto, name):
    g = golden(name)
    model = g["model"]
    for n, case in enumerate(g["cases"]):
        result = proto.infer(model, case["inputs"], request_id=f"case-{n}")
        response = proto.as_dict(result.get_response())
        assert response["model_name"] == model
        assert response["model_version"] == "1"
        assert response.get("id") == f"case-{n}"
        for want in case["outputs"]:
            assert_matches(result.as_numpy(want["name"]), to_numpy(want), f"{name} case {n} {want['name']}")


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_inference_matches_golden(proto, name):
    run_golden(proto, name)


@pytest.mark.parametrize("name", NAN_GOLDEN_FILES)
def test_missing_values_match_golden(proto, name):
    if not proto.binary:
        pytest.skip("JSON cannot carry NaN")
    run_golden(proto, name)


def test_every_datatype_round_trips(proto):
    g = golden("identity_all_types")
    datatypes = {t["datatype"] for t in g["cases"][0]["inputs"]}
    assert {"BOOL", "BYTES", "FP16", "UINT64", "INT8"} <= datatypes
    for n, case in enumerate(g["cases"]):
        result = proto.infer("identity_all_types", case["inputs"])
        for want in case["outputs"]:
            got = result.as_numpy(want["name"])
            assert_matches(got, to_numpy(want), f"case {n} {want['name']}")
            output = proto.as_dict(result.get_output(want["name"]))
            assert output["datatype"] == want["datatype"]


def test_requested_output_subset(proto):
    case = golden("identity_all_types")["cases"][1]
    wanted = ["out_BYTES", "out_FP16", "out_BOOL"]
    result = proto.infer("identity_all_types", case["inputs"], outputs=wanted)
    response = proto.as_dict(result.get_response())
    assert [o["name"] for o in response["outputs"]] == wanted
    golden_outputs = {o["name"]: o for o in case["outputs"]}
    for name in wanted:
        assert_matches(result.as_numpy(name), to_numpy(golden_outputs[name]), name)
    assert result.as_numpy("out_INT8") is None


def test_unknown_model_raises_naming_it(proto):
    case = golden("mlp")["cases"][0]
    with pytest.raises(InferenceServerException) as e:
        proto.infer("no_such_model", case["inputs"], outputs=["score"])
    assert "no_such_model" in e.value.message()
    if proto.grpc:
        assert e.value.status() == "StatusCode.NOT_FOUND"
    else:
        assert e.value.status() == "404"


def test_bad_shape_raises_naming_the_input(proto):
    bad = {"name": "features", "datatype": "FP32", "shape": [1, 15], "data": [0.5] * 15}
    with pytest.raises(InferenceServerException) as e:
        proto.infer("mlp", [bad], outputs=["score"])
    msg = e.value.message()
    assert "features" in msg and "16" in msg, msg
    if proto.grpc:
        assert e.value.status() == "StatusCode.INVALID_ARGUMENT"
    else:
        assert e.value.status() == "400"


def test_unknown_output_raises_naming_it(proto):
    case = golden("mlp")["cases"][0]
    with pytest.raises(InferenceServerException) as e:
        proto.infer("mlp", case["inputs"], outputs=["not_an_output"])
    assert "not_an_output" in e.value.message()


# --- repository and statistics ------------------------------------------------------------------


def repository_rows(proto):
    index = proto.client.get_model_repository_index()
    if proto.grpc:
        return proto.as_dict(index).get("models", [])
    return index


def test_repository_index(proto):
    rows = repository_rows(proto)
    by_name = {}
    for row in rows:
        by_name.setdefault(row["name"], []).append(row)
    for model in ["mlp", "identity_all_types", "lightgbm_regressor", "lightgbm_classifier"]:
        assert model in by_name, f"{model} missing from {sorted(by_name)}"
        assert any(r.get("state") == "READY" and r.get("version") == "1" for r in by_name[model]), by_name[model]


def test_unload_then_load(proto):
    case = golden(RELOADED_MODEL)["cases"][0]
    assert proto.client.is_model_ready(RELOADED_MODEL)
    proto.client.unload_model(RELOADED_MODEL)
    try:
        assert not proto.client.is_model_ready(RELOADED_MODEL)
        with pytest.raises(InferenceServerException) as e:
            proto.infer(RELOADED_MODEL, case["inputs"], outputs=[o["name"] for o in case["outputs"]])
        assert RELOADED_MODEL in e.value.message()
        rows = [r for r in repository_rows(proto) if r["name"] == RELOADED_MODEL]
        assert rows and all(r.get("state") != "READY" for r in rows), rows
    finally:
        proto.client.load_model(RELOADED_MODEL)
    assert proto.client.is_model_ready(RELOADED_MODEL)
    result = proto.infer(RELOADED_MODEL, case["inputs"])
    for want in case["outputs"]:
        assert_matches(result.as_numpy(want["name"]), to_numpy(want), f"after reload: {want['name']}")


def test_load_unknown_model_raises(proto):
    with pytest.raises(InferenceServerException) as e:
        proto.client.load_model("no_such_model")
    assert "no_such_model" in e.value.message()


def test_inference_statistics(proto):
    def mlp_stats():
        stats = proto.as_dict(proto.client.get_inference_statistics("mlp"))
        (entry,) = stats["model_stats"]
        assert (entry["name"], entry["version"]) == ("mlp", "1")
        return entry

    before = mlp_stats()
    case = golden("mlp")["cases"][1]  # 5 rows
    rows = case["inputs"][0]["shape"][0]
    proto.infer("mlp", case["inputs"])
    after = mlp_stats()
    assert int(after.get("inference_count", 0)) - int(before.get("inference_count", 0)) == rows
    success = lambda s: int(s.get("inference_stats", {}).get("success", {}).get("count", 0))  # noqa: E731
    assert success(after) - success(before) == 1
    assert int(after["inference_stats"]["success"]["ns"]) > 0
    assert int(after.get("execution_count", 0)) > int(before.get("execution_count", 0))

    everything = proto.as_dict(proto.client.get_inference_statistics())
    assert any(m["name"] == "mlp" for m in everything["model_stats"])


# --- gRPC only ------------------------------------------------------------------------------------


def test_grpc_unsupported_rpcs_are_unimplemented():
    client = grpcclient.InferenceServerClient(GRPC_URL)
    try:
        for call in (
            client.get_system_shared_memory_status,
            client.get_cuda_shared_memory_status,
            client.get_trace_settings,
            client.get_log_settings,
        ):
            with pytest.raises(InferenceServerException) as e:
                call()
            assert e.value.status() == "StatusCode.UNIMPLEMENTED", (call.__name__, e.value)
        # The connection still serves afterwards.
        assert client.is_server_live()
    finally:
        client.close()


def test_grpc_typed_contents_are_accepted():
    """tritonclient always sends raw contents; this sends typed fp32_contents through its
    compiled protos to check the other encoding the protocol allows."""
    from tritonclient.grpc import service_pb2, service_pb2_grpc
    import grpc

    case = golden("mlp")["cases"][2]
    t = case["inputs"][0]
    request = service_pb2.ModelInferRequest(model_name="mlp")
    tensor = request.inputs.add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
    tensor.contents.fp32_contents.extend(t["data"])
    with grpc.insecure_channel(GRPC_URL) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    result = grpcclient.InferResult(response)
    want = case["outputs"][0]
    assert_matches(result.as_numpy(want["name"]), to_numpy(want), "typed contents")


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_and_responses(proto, algorithm):
    """tritonclient's compression options: HTTP request/response compression, gRPC message
    compression."""
    g = golden("mlp")
    case = g["cases"][0]
    if proto.grpc:
        kwargs = {"compression_algorithm": algorithm}
    else:
        kwargs = {"request_compression_algorithm": algorithm, "response_compression_algorithm": algorithm}
    result = proto.infer(g["model"], case["inputs"], **kwargs)
    for want in case["outputs"]:
        assert_matches(result.as_numpy(want["name"]), to_numpy(want), f"mlp {algorithm} {want['name']}")
