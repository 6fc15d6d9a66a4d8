#!/usr/bin/env python3
"""Reference inference service for recserve's benchmarks: "the usual in-house setup".

FastAPI under uvicorn (2 worker processes) serving one ONNX model with onnxruntime over the
Open Inference Protocol (KServe V2) REST API, JSON tensors only:

    GET  /v2/health/live, /v2/health/ready
    GET  /v2/models/{model}[/versions/{version}]          model metadata
    GET  /v2/models/{model}[/versions/{version}]/ready
    POST /v2/models/{model}[/versions/{version}]/infer    V2 JSON tensors

It is written the way a typical team writes such a service (pydantic request models, numpy
decoding, onnxruntime with default settings), neither slowed down nor tuned.

    python bench/reference/server.py --model fixtures/models/mlp/1/model.onnx --port 8001

The model path may also come from REFERENCE_MODEL_PATH; the model name defaults to the
repository layout's `<name>/<version>/model.onnx`, else the file name.
"""

from __future__ import annotations

import argparse
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

log = logging.getLogger("reference")

ORT_TO_V2 = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
V2_TO_NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


# ---------------------------------------------------------------------------------------------
# Wire types (Open Inference Protocol, REST)


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadataResponse(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any]


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[ResponseOutput]


# ---------------------------------------------------------------------------------------------
# The model


class OnnxModel:
    def __init__(self, path: Path, name: str, version: str) -> None:
        self.name = name
        self.version = version
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.inputs = [self._describe(i) for i in self.session.get_inputs()]
        self.outputs = [self._describe(o) for o in self.session.get_outputs()]
        self.inputs_by_name = {i.name: i for i in self.inputs}
        self.outputs_by_name = {o.name: o for o in self.outputs}

    @staticmethod
    def _describe(node: Any) -> TensorMetadata:
        datatype = ORT_TO_V2.get(node.type)
        if datatype is None:
            raise ValueError(f"unsupported ONNX type {node.type} for {node.name}")
        shape = [d if isinstance(d, int) and d >= 0 else -1 for d in node.shape]
        return TensorMetadata(name=node.name, datatype=datatype, shape=shape)

    def metadata(self) -> ModelMetadataResponse:
        return ModelMetadataResponse(
            name=self.name,
            versions=[self.version],
            platform="onnxruntime_onnx",
            inputs=self.inputs,
            outputs=self.outputs,
        )

    def decode(self, tensor: RequestInput) -> np.ndarray:
        expected = self.inputs_by_name.get(tensor.name)
        if expected is None:
            raise HTTPException(400, f"unexpected input '{tensor.name}' for model '{self.name}'")
        if tensor.datatype != expected.datatype:
            raise HTTPException(
                400,
                f"input '{tensor.name}': expected datatype {expected.datatype}, "
                f"got {tensor.datatype}",
            )
        if len(tensor.shape) != len(expected.shape) or any(
            e != -1 and e != s for e, s in zip(expected.shape, tensor.shape)
        ):
            raise HTTPException(
                400,
                f"input '{tensor.name}': expected shape {expected.shape}, got {tensor.shape}",
            )
        try:
            array = np.asarray(tensor.data, dtype=V2_TO_NUMPY[tensor.datatype])
            return array.reshape(tensor.shape)
        except (ValueError, TypeError) as e:
            raise HTTPException(400, f"input '{tensor.name}': {e}") from e

    def infer(self, request: InferenceRequest) -> InferenceResponse:
        feeds = {t.name: self.decode(t) for t in request.inputs}
        missing = [name for name in self.inputs_by_name if name not in feeds]
        if missing:
            raise HTTPException(400, f"missing inputs {missing} for model '{self.name}'")
        if request.outputs:
            names = [o.name for o in request.outputs]
            unknown = [n for n in names if n not in self.outputs_by_name]
            if unknown:
                raise HTTPException(400, f"unknown outputs {unknown} for model '{self.name}'")
        else:
            names = [o.name for o in self.outputs]
        try:
            results = self.session.run(names, feeds)
        except Exception as e:  # onnxruntime raises its own exception types
            raise HTTPException(400, f"inference failed: {e}") from e
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=request.id,
            outputs=[
                ResponseOutput(
                    name=name,
                    shape=list(result.shape),
                    datatype=self.outputs_by_name[name].datatype,
                    data=result.flatten().tolist(),
                )
                for name, result in zip(names, results)
            ],
        )


def model_identity(path: Path) -> tuple[str, str]:
    """`<repo>/<name>/<version>/model.onnx` → (name, version); else (file stem, "1")."""
    if path.parent.name.isdigit() and path.parent.parent.name:
        return path.parent.parent.name, path.parent.name
    return path.stem, "1"


_model: OnnxModel | None = None


@asynccontextmanager
async def lifespan(app: FastAPI):
    global _model
    path = os.environ.get("REFERENCE_MODEL_PATH")
    if not path:
        raise RuntimeError("set REFERENCE_MODEL_PATH (or pass --model) to the ONNX model")
    name, version = model_identity(Path(path))
    name = os.environ.get("REFERENCE_MODEL_NAME") or name
    _model = OnnxModel(Path(path), name, version)
    log.info("loaded %s version %s from %s", name, version, path)
    yield
    _model = None


app = FastAPI(title="reference inference service", lifespan=lifespan)


def get_model(name: str, version: str | None = None) -> OnnxModel:
    if _model is None or name != _model.name:
        raise HTTPException(404, f"unknown model '{name}'")
    if version is not None and version != _model.version:
        raise HTTPException(404, f"unknown version '{version}' of model '{name}'")
    return _model


@app.exception_handler(HTTPException)
async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)


@app.exception_handler(RequestValidationError)
async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return JSONResponse(
        {"error": f"invalid request: {where}: {first.get('msg', 'malformed')}"}, status_code=400
    )


@app.get("/v2/health/live")
def live() -> dict:
    return {}


@app.get("/v2/health/ready")
def ready() -> JSONResponse:
    return JSONResponse({}, status_code=200 if _model is not None else 503)


@app.get("/v2/models/{model_name}", response_model=ModelMetadataResponse)
def model_metadata(model_name: str) -> ModelMetadataResponse:
    return get_model(model_name).metadata()


@app.get("/v2/models/{model_name}/versions/{version}", response_model=ModelMetadataResponse)
def model_version_metadata(model_name: str, version: str) -> ModelMetadataResponse:
    return get_model(model_name, version).metadata()


@app.get("/v2/models/{model_name}/ready")
def model_ready(model_name: str) -> dict:
    get_model(model_name)
    return {}


@app.get("/v2/models/{model_name}/versions/{version}/ready")
def model_version_ready(model_name: str, version: str) -> dict:
    get_model(model_name, version)
    return {}


# `async def` with the (short, CPU-bound) onnxruntime call inline, as most such services do; a
# plain `def` handler, which FastAPI runs in its thread pool, measured clearly slower here.
@app.post("/v2/models/{model_name}/infer", response_model=InferenceResponse)
async def infer(model_name: str, request: InferenceRequest) -> InferenceResponse:
    return get_model(model_name).infer(request)


@app.post("/v2/models/{model_name}/versions/{version}/infer", response_model=InferenceResponse)
async def infer_version(
    model_name: str, version: str, request: InferenceRequest
) -> InferenceResponse:
    return get_model(model_name, version).infer(request)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.environ.get("REFERENCE_MODEL_PATH"),
                        help="path to model.onnx (env REFERENCE_MODEL_PATH)")
    parser.add_argument("--model-name", default=os.environ.get("REFERENCE_MODEL_NAME"),
                        help="model name to serve under (default: from the path)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args()
    if not args.model:
        parser.error("--model (or REFERENCE_MODEL_PATH) is required")
    # The worker processes read the model from the environment.
    os.environ["REFERENCE_MODEL_PATH"] = str(Path(args.model).resolve())
    if args.model_name:
        os.environ["REFERENCE_MODEL_NAME"] = args.model_name
    uvicorn.run(
        "server:app",
        app_dir=str(Path(__file__).resolve().parent),
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        access_log=args.access_log,
    )


if __name__ == "__main__":
    main()
