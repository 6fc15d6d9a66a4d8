//! Conversion between the gRPC messages of `inference.GRPCInferenceService` and the
//! transport-neutral values of [`crate::inference`] and [`crate::metadata`]. Pure functions, no
//! I/O: every check a request's bytes need before inference (datatype names, shapes, element
//! counts, raw versus typed contents) happens here and fails with an [`ApiError`] that names the
//! input, the expected and the received value.
//!
//! Input data arrives either as `raw_input_contents` (one little-endian blob per input, in input
//! order; what `tritonclient.grpc` sends) or as typed `contents` per input, never both. Outputs
//! always go back as `raw_output_contents`, as Triton answers.

use super::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use super::proto::model_infer_response::InferOutputTensor;
use super::proto::model_metadata_response::TensorMetadata as ProtoTensorMetadata;
use super::proto::repository_index_response::ModelIndex;
use super::proto::{
    DataType as ConfigDataType, InferParameter, InferStatistics, InferTensorContents, ModelConfig, ModelInferRequest,
    ModelInferResponse, ModelInput, ModelMetadataResponse, ModelOutput, ModelStatistics, StatisticDuration,
};
use crate::error::ApiError;
use crate::inference::{InferCall, InferReply, RequestedOutput};
use crate::metadata::{ModelMetadata, PLATFORM, TensorMetadata, VersionStatistics, config_dims};
use recserve_engine::{DataType, ModelSignature, Tensor, TensorData};
use recserve_serving::{IndexEntry, NamedTensor};
use std::collections::HashMap;
use std::fmt::Display;

/// Triton's backend name for ONNX models, reported by ModelConfig beside [`PLATFORM`].
pub const BACKEND: &str = "onnxruntime";

/// Parameters that ask for Triton's shared-memory extension, which recserve does not implement.
const SHARED_MEMORY_PARAMETERS: [&str; 3] = ["shared_memory_region", "shared_memory_byte_size", "shared_memory_offset"];

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

/// Decodes a `ModelInfer` request into an [`InferCall`]. Every output is asked for in binary
/// form: the answer carries them in `raw_output_contents`.
pub fn infer_call(request: ModelInferRequest) -> Result<InferCall, ApiError> {
    let ModelInferRequest { model_name, model_version, id, parameters: _, inputs, outputs, raw_input_contents } =
        request;
    let model = model_name;
    let uses_typed = inputs.iter().find(|i| i.contents.as_ref().is_some_and(|c| !contents_fields(c).is_empty()));
    if !raw_input_contents.is_empty() {
        if let Some(input) = uses_typed {
            return Err(bad(format!(
                "model '{model}': input '{}' has typed contents while the request also has raw_input_contents; \
                 send every input one way: all in raw_input_contents or all as typed contents",
                input.name
            )));
        }
        if raw_input_contents.len() != inputs.len() {
            return Err(bad(format!(
                "model '{model}': the request has {} inputs but {} raw_input_contents entries; \
                 raw_input_contents needs exactly one entry per input, in input order",
                inputs.len(),
                raw_input_contents.len()
            )));
        }
    }
    let mut raw = raw_input_contents.into_iter();
    let mut decoded = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.into_iter().enumerate() {
        decoded.push(decode_input(&model, index, input, raw.next())?);
    }
    let outputs = outputs.into_iter().map(|o| requested_output(&model, o)).collect::<Result<Vec<_>, _>>()?;
    Ok(InferCall {
        version: Some(model_version).filter(|v| !v.is_empty()),
        id: Some(id).filter(|i| !i.is_empty()),
        model,
        inputs: decoded,
        outputs,
        binary_default: true,
    })
}

fn requested_output(model: &str, output: InferRequestedOutputTensor) -> Result<RequestedOutput, ApiError> {
    if let Some(p) = SHARED_MEMORY_PARAMETERS.iter().find(|p| output.parameters.contains_key(**p)) {
        return Err(ApiError::Unimplemented(format!(
            "model '{model}': output '{}' asks for shared memory (parameter '{p}'), which recserve does not support; \
             omit the parameter to receive the output in raw_output_contents",
            output.name
        )));
    }
    if output.parameters.contains_key("classification") {
        return Err(ApiError::Unimplemented(format!(
            "model '{model}': output '{}' asks for classification (parameter 'classification'), \
             which recserve does not support; request the output without it",
            output.name
        )));
    }
    Ok(RequestedOutput { name: output.name, binary: true })
}

/// The names of the typed-contents fields that hold values.
fn contents_fields(c: &InferTensorContents) -> Vec<&'static str> {
    let mut set = Vec::new();
    let fields: [(&'static str, bool); 8] = [
        ("bool_contents", !c.bool_contents.is_empty()),
        ("int_contents", !c.int_contents.is_empty()),
        ("int64_contents", !c.int64_contents.is_empty()),
        ("uint_contents", !c.uint_contents.is_empty()),
        ("uint64_contents", !c.uint64_contents.is_empty()),
        ("fp32_contents", !c.fp32_contents.is_empty()),
        ("fp64_contents", !c.fp64_contents.is_empty()),
        ("bytes_contents", !c.bytes_contents.is_empty()),
    ];
    for (name, present) in fields {
        if present {
            set.push(name);
        }
    }
    set
}

/// The typed-contents field that carries `datatype`, or `None` (FP16 travels raw only).
pub fn contents_field(datatype: DataType) -> Option<&'static str> {
    Some(match datatype {
        DataType::Bool => "bool_contents",
        DataType::I8 | DataType::I16 | DataType::I32 => "int_contents",
        DataType::I64 => "int64_contents",
        DataType::U8 | DataType::U16 | DataType::U32 => "uint_contents",
        DataType::U64 => "uint64_contents",
        DataType::F32 => "fp32_contents",
        DataType::F64 => "fp64_contents",
        DataType::Bytes => "bytes_contents",
        DataType::F16 => return None,
    })
}

fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

fn decode_input(
    model: &str,
    index: usize,
    input: InferInputTensor,
    raw: Option<Vec<u8>>,
) -> Result<NamedTensor, ApiError> {
    let InferInputTensor { name, datatype, shape, parameters, contents } = input;
    let at = |msg: String| bad(format!("model '{model}': input '{name}' {msg}"));
    if let Some(p) = SHARED_MEMORY_PARAMETERS.iter().find(|p| parameters.contains_key(**p)) {
        return Err(ApiError::Unimplemented(format!(
            "model '{model}': input '{name}' uses shared memory (parameter '{p}'), which recserve does not support; \
             send its data in raw_input_contents"
        )));
    }
    let Some(dt) = DataType::from_wire_name(&datatype) else {
        let known: Vec<&str> = DataType::ALL.iter().map(|d| d.wire_name()).collect();
        return Err(at(format!("has unknown datatype '{datatype}'; expected one of: {}", known.join(", "))));
    };
    let mut dims = Vec::with_capacity(shape.len());
    for d in &shape {
        match usize::try_from(*d) {
            Ok(n) => dims.push(n),
            Err(_) => {
                return Err(at(format!("has shape {shape:?} with a negative dimension; every dimension must be >= 0")));
            }
        }
    }
    let Some(count) = dims.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d)) else {
        return Err(at(format!("has shape {shape:?}, which holds more elements than can be addressed")));
    };
    let (data, source) = match raw {
        Some(raw) => (from_raw(dt, count, &dims, index, &raw).map_err(at)?, format!("raw_input_contents[{index}]")),
        None => (from_contents(dt, contents.unwrap_or_default()).map_err(at)?, typed_source(dt)),
    };
    // Fixed-size raw data was checked by byte length already; BYTES and typed data are checked here.
    let received = data.len();
    if received != count {
        return Err(at(format!(
            "has shape {} ({count} {dt} elements expected), but {source} holds {received} elements",
            shape_text(&dims)
        )));
    }
    let tensor = Tensor::new(dims, data).map_err(|e| at(e.to_string()))?;
    Ok(NamedTensor { name, tensor })
}

fn typed_source(dt: DataType) -> String {
    match contents_field(dt) {
        Some(f) => format!("contents.{f}"),
        None => "contents".into(),
    }
}

/// Decodes one raw entry. For fixed-size types the byte length is checked against the shape
/// before anything is allocated.
fn from_raw(dt: DataType, count: usize, dims: &[usize], index: usize, raw: &[u8]) -> Result<TensorData, String> {
    if let Some(size) = dt.fixed_size() {
        let expected = count.checked_mul(size);
        if expected != Some(raw.len()) {
            let received = if raw.len().is_multiple_of(size) {
                format!("{} bytes ({} elements)", raw.len(), raw.len() / size)
            } else {
                format!("{} bytes, not a whole number of {size}-byte elements", raw.len())
            };
            let expected = match expected {
                Some(bytes) => format!("{count} {dt} elements = {bytes} bytes"),
                None => format!("{count} {dt} elements"),
            };
            return Err(format!(
                "has shape {} ({expected} expected), but raw_input_contents[{index}] has {received}",
                shape_text(dims)
            ));
        }
    }
    TensorData::from_le_bytes(dt, raw).map_err(|e| format!("has malformed raw_input_contents[{index}]: {e}"))
}

/// Narrows each value to the element type, naming the first that does not fit.
fn narrow<S, T>(values: &[S], field: &str, dt: DataType) -> Result<Vec<T>, String>
where
    S: Copy + Display,
    T: TryFrom<S>,
{
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            T::try_from(*v).map_err(|_| format!("has contents.{field}[{i}] = {v}, which does not fit in {dt}"))
        })
        .collect()
}

/// Takes the typed-contents field that matches `dt`; any other populated field is an error.
fn from_contents(dt: DataType, c: InferTensorContents) -> Result<TensorData, String> {
    let Some(field) = contents_field(dt) else {
        return Err(format!("has datatype {dt}, which has no typed contents field; send it in raw_input_contents"));
    };
    let others: Vec<&str> = contents_fields(&c).into_iter().filter(|f| *f != field).collect();
    if !others.is_empty() {
        return Err(format!(
            "has datatype {dt}, whose typed values go in contents.{field}, but the request set contents.{}",
            others.join(", contents.")
        ));
    }
    Ok(match dt {
        DataType::Bool => TensorData::Bool(c.bool_contents),
        DataType::I8 => TensorData::I8(narrow(&c.int_contents, field, dt)?),
        DataType::I16 => TensorData::I16(narrow(&c.int_contents, field, dt)?),
        DataType::I32 => TensorData::I32(c.int_contents),
        DataType::I64 => TensorData::I64(c.int64_contents),
        DataType::U8 => TensorData::U8(narrow(&c.uint_contents, field, dt)?),
        DataType::U16 => TensorData::U16(narrow(&c.uint_contents, field, dt)?),
        DataType::U32 => TensorData::U32(c.uint_contents),
        DataType::U64 => TensorData::U64(c.uint64_contents),
        DataType::F32 => TensorData::F32(c.fp32_contents),
        DataType::F64 => TensorData::F64(c.fp64_contents),
        DataType::Bytes => TensorData::Bytes(c.bytes_contents),
        DataType::F16 => return Err(format!("has datatype {dt}, which has no typed contents field")),
    })
}

fn wire_shape(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|d| i64::try_from(*d).unwrap_or(i64::MAX)).collect()
}

/// Encodes an [`InferReply`]: every output's bytes in `raw_output_contents`, in output order.
pub fn infer_response(reply: InferReply) -> ModelInferResponse {
    let mut outputs = Vec::with_capacity(reply.outputs.len());
    let mut raw = Vec::with_capacity(reply.outputs.len());
    for out in reply.outputs {
        outputs.push(InferOutputTensor {
            name: out.name,
            datatype: out.tensor.datatype().wire_name().to_string(),
            shape: wire_shape(&out.tensor.shape),
            parameters: HashMap::new(),
            contents: None,
        });
        raw.push(out.tensor.data.to_le_bytes());
    }
    ModelInferResponse {
        model_name: reply.model_name,
        model_version: reply.model_version,
        id: reply.id.unwrap_or_default(),
        parameters: HashMap::<String, InferParameter>::new(),
        outputs,
        raw_output_contents: raw,
    }
}

fn tensor_metadata(t: TensorMetadata) -> ProtoTensorMetadata {
    ProtoTensorMetadata { name: t.name, datatype: t.datatype.to_string(), shape: t.shape }
}

/// Encodes model metadata.
pub fn model_metadata_response(m: ModelMetadata) -> ModelMetadataResponse {
    ModelMetadataResponse {
        name: m.name,
        versions: m.versions,
        platform: m.platform.to_string(),
        inputs: m.inputs.into_iter().map(tensor_metadata).collect(),
        outputs: m.outputs.into_iter().map(tensor_metadata).collect(),
    }
}

fn duration(count: u64, ns: u64) -> Option<StatisticDuration> {
    Some(StatisticDuration { count, ns })
}

/// Encodes one version's statistics in Triton's terms, with the same numbers the REST
/// statistics endpoint reports. recserve times whole requests, queue waits and model
/// executions: `success.ns` is the cumulative request time, `queue` counts the successful
/// requests, the compute stages count executions (one per batch) and only `compute_infer` has a
/// duration; the response cache does not exist, so its entries are zero.
pub fn model_statistics(s: VersionStatistics) -> ModelStatistics {
    ModelStatistics {
        name: s.name,
        version: s.version,
        last_inference: 0,
        inference_count: s.inference_count,
        execution_count: s.execution_count,
        inference_stats: Some(InferStatistics {
            success: duration(s.success_count, s.request_ns),
            fail: duration(s.failure_count, 0),
            queue: duration(s.success_count, s.queue_ns),
            compute_input: duration(s.execution_count, 0),
            compute_infer: duration(s.execution_count, s.compute_ns),
            compute_output: duration(s.execution_count, 0),
            cache_hit: duration(0, 0),
            cache_miss: duration(0, 0),
        }),
        batch_stats: Vec::new(),
        memory_usage: Vec::new(),
        response_stats: HashMap::new(),
    }
}

/// Encodes a row of the repository index.
pub fn model_index(e: IndexEntry) -> ModelIndex {
    ModelIndex {
        name: e.name,
        version: e.version.unwrap_or_default(),
        state: e.state.unwrap_or_default().to_string(),
        reason: e.reason.unwrap_or_default(),
    }
}

/// Triton's configuration datatype for a protocol datatype (BYTES is TYPE_STRING).
pub fn config_datatype(dt: DataType) -> ConfigDataType {
    match dt {
        DataType::Bool => ConfigDataType::TypeBool,
        DataType::U8 => ConfigDataType::TypeUint8,
        DataType::U16 => ConfigDataType::TypeUint16,
        DataType::U32 => ConfigDataType::TypeUint32,
        DataType::U64 => ConfigDataType::TypeUint64,
        DataType::I8 => ConfigDataType::TypeInt8,
        DataType::I16 => ConfigDataType::TypeInt16,
        DataType::I32 => ConfigDataType::TypeInt32,
        DataType::I64 => ConfigDataType::TypeInt64,
        DataType::F16 => ConfigDataType::TypeFp16,
        DataType::F32 => ConfigDataType::TypeFp32,
        DataType::F64 => ConfigDataType::TypeFp64,
        DataType::Bytes => ConfigDataType::TypeString,
    }
}

/// The model configuration Triton's ModelConfig RPC reports, as far as recserve has it.
/// `max_batch_size` is 0 for a model without a batch dimension, and then `dims` are the full
/// shape.
pub fn model_config(name: &str, signature: &ModelSignature, max_batch_size: usize) -> ModelConfig {
    let batched = max_batch_size > 0;
    ModelConfig {
        name: name.to_string(),
        platform: PLATFORM.to_string(),
        backend: BACKEND.to_string(),
        max_batch_size: i32::try_from(max_batch_size).unwrap_or(i32::MAX),
        input: signature
            .inputs
            .iter()
            .map(|s| ModelInput {
                name: s.name.clone(),
                data_type: config_datatype(s.datatype) as i32,
                dims: config_dims(s, batched),
            })
            .collect(),
        output: signature
            .outputs
            .iter()
            .map(|s| ModelOutput {
                name: s.name.clone(),
                data_type: config_datatype(s.datatype) as i32,
                dims: config_dims(s, batched),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::ReplyOutput;
    use recserve_engine::Dim;
    use recserve_engine::TensorSpec;

    fn input(name: &str, datatype: &str, shape: &[i64]) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
            parameters: HashMap::new(),
            contents: None,
        }
    }

    fn typed(name: &str, datatype: &str, shape: &[i64], contents: InferTensorContents) -> InferInputTensor {
        InferInputTensor { contents: Some(contents), ..input(name, datatype, shape) }
    }

    fn request(inputs: Vec<InferInputTensor>, raw: Vec<Vec<u8>>) -> ModelInferRequest {
        ModelInferRequest {
            model_name: "m".into(),
            model_version: String::new(),
            id: String::new(),
            parameters: HashMap::new(),
            inputs,
            outputs: vec![],
            raw_input_contents: raw,
        }
    }

    fn err(req: ModelInferRequest) -> (tonic::Code, String) {
        let e = infer_call(req).expect_err("the request should be refused");
        (e.grpc_code(), e.to_string())
    }

    fn only_tensor(req: ModelInferRequest) -> Tensor {
        let mut call = infer_call(req).expect("the request should decode");
        assert_eq!(call.inputs.len(), 1);
        call.inputs.remove(0).tensor
    }

    #[test]
    fn raw_inputs_decode_in_input_order() {
        let a = TensorData::F32(vec![1.0, 2.0, 3.0, 4.0]);
        let b = TensorData::I64(vec![7, -8]);
        let req = ModelInferRequest {
            model_version: "3".into(),
            id: "req-1".into(),
            outputs: vec![InferRequestedOutputTensor { name: "y".into(), parameters: HashMap::new() }],
            ..request(
                vec![input("a", "FP32", &[2, 2]), input("b", "INT64", &[2, 1])],
                vec![a.to_le_bytes(), b.to_le_bytes()],
            )
        };
        let call = infer_call(req).expect("decodes");
        assert_eq!(call.model, "m");
        assert_eq!(call.version.as_deref(), Some("3"));
        assert_eq!(call.id.as_deref(), Some("req-1"));
        assert_eq!(call.inputs[0].name, "a");
        assert_eq!(call.inputs[0].tensor, Tensor::new(vec![2, 2], a).expect("tensor"));
        assert_eq!(call.inputs[1].name, "b");
        assert_eq!(call.inputs[1].tensor, Tensor::new(vec![2, 1], b).expect("tensor"));
        assert_eq!(call.outputs, vec![RequestedOutput { name: "y".into(), binary: true }]);
        assert!(call.binary_default);
    }

    #[test]
    fn empty_version_and_id_mean_none() {
        let call = infer_call(request(vec![], vec![])).expect("decodes");
        assert_eq!(call.version, None);
        assert_eq!(call.id, None);
    }

    #[test]
    fn every_datatype_round_trips_raw() {
        let samples = vec![
            TensorData::Bool(vec![true, false, true]),
            TensorData::U8(vec![0, 255, 7]),
            TensorData::U16(vec![1, 65535, 3]),
            TensorData::U32(vec![7, u32::MAX, 0]),
            TensorData::U64(vec![9, u64::MAX, 0]),
            TensorData::I8(vec![-128, 127, 0]),
            TensorData::I16(vec![-2, 300, i16::MIN]),
            TensorData::I32(vec![-5, i32::MAX, i32::MIN]),
            TensorData::I64(vec![i64::MIN, 42, i64::MAX]),
            TensorData::F16(vec![half::f16::from_f32(1.5), half::f16::from_f32(-0.25), half::f16::ZERO]),
            TensorData::F32(vec![1.0, -2.5, f32::MAX]),
            TensorData::F64(vec![std::f64::consts::PI, -0.0, 1e300]),
            TensorData::Bytes(vec![b"hello".to_vec(), vec![], "ß∂ƒ".as_bytes().to_vec()]),
        ];
        for data in samples {
            let dt = data.datatype().wire_name();
            let tensor = only_tensor(request(vec![input("x", dt, &[1, 3])], vec![data.to_le_bytes()]));
            assert_eq!(tensor, Tensor::new(vec![1, 3], data.clone()).expect("tensor"), "{dt}");
            // And back: the reply carries the same bytes.
            let reply = InferReply {
                model_name: "m".into(),
                model_version: "1".into(),
                id: None,
                outputs: vec![ReplyOutput { name: "y".into(), tensor, binary: true }],
            };
            let resp = infer_response(reply);
            assert_eq!(resp.outputs[0].datatype, dt);
            assert_eq!(resp.outputs[0].shape, vec![1, 3]);
            assert_eq!(resp.raw_output_contents, vec![data.to_le_bytes()]);
        }
    }

    #[test]
    fn every_typed_field_decodes() {
        let c = InferTensorContents::default;
        let cases: Vec<(&str, InferTensorContents, TensorData)> = vec![
            (
                "BOOL",
                InferTensorContents { bool_contents: vec![true, false], ..c() },
                TensorData::Bool(vec![true, false]),
            ),
            ("INT8", InferTensorContents { int_contents: vec![-128, 127], ..c() }, TensorData::I8(vec![-128, 127])),
            ("INT16", InferTensorContents { int_contents: vec![-300, 300], ..c() }, TensorData::I16(vec![-300, 300])),
            (
                "INT32",
                InferTensorContents { int_contents: vec![i32::MIN, 1], ..c() },
                TensorData::I32(vec![i32::MIN, 1]),
            ),
            (
                "INT64",
                InferTensorContents { int64_contents: vec![i64::MIN, 1], ..c() },
                TensorData::I64(vec![i64::MIN, 1]),
            ),
            ("UINT8", InferTensorContents { uint_contents: vec![0, 255], ..c() }, TensorData::U8(vec![0, 255])),
            ("UINT16", InferTensorContents { uint_contents: vec![0, 65535], ..c() }, TensorData::U16(vec![0, 65535])),
            (
                "UINT32",
                InferTensorContents { uint_contents: vec![0, u32::MAX], ..c() },
                TensorData::U32(vec![0, u32::MAX]),
            ),
            (
                "UINT64",
                InferTensorContents { uint64_contents: vec![0, u64::MAX], ..c() },
                TensorData::U64(vec![0, u64::MAX]),
            ),
            ("FP32", InferTensorContents { fp32_contents: vec![0.5, -1.0], ..c() }, TensorData::F32(vec![0.5, -1.0])),
            ("FP64", InferTensorContents { fp64_contents: vec![0.25, -2.0], ..c() }, TensorData::F64(vec![0.25, -2.0])),
            (
                "BYTES",
                InferTensorContents { bytes_contents: vec![b"a".to_vec(), vec![]], ..c() },
                TensorData::Bytes(vec![b"a".to_vec(), vec![]]),
            ),
        ];
        for (dt, contents, want) in cases {
            let tensor = only_tensor(request(vec![typed("x", dt, &[2], contents)], vec![]));
            assert_eq!(tensor, Tensor::new(vec![2], want).expect("tensor"), "{dt}");
        }
    }

    #[test]
    fn typed_values_out_of_range_are_named() {
        let contents = InferTensorContents { int_contents: vec![1, 200], ..Default::default() };
        let (code, msg) = err(request(vec![typed("x", "INT8", &[2], contents)], vec![]));
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(msg.contains("input 'x'") && msg.contains("int_contents[1] = 200") && msg.contains("INT8"), "{msg}");
        let contents = InferTensorContents { uint_contents: vec![70000], ..Default::default() };
        let (_, msg) = err(request(vec![typed("x", "UINT16", &[1], contents)], vec![]));
        assert!(msg.contains("uint_contents[0] = 70000"), "{msg}");
    }

    #[test]
    fn typed_contents_in_the_wrong_field_are_refused() {
        let contents = InferTensorContents { int64_contents: vec![1, 2], ..Default::default() };
        let (code, msg) = err(request(vec![typed("x", "FP32", &[2], contents)], vec![]));
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(msg.contains("contents.fp32_contents") && msg.contains("contents.int64_contents"), "{msg}");
    }

    #[test]
    fn fp16_needs_raw_contents() {
        let contents = InferTensorContents { fp32_contents: vec![1.0], ..Default::default() };
        let (code, msg) = err(request(vec![typed("h", "FP16", &[1], contents)], vec![]));
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(msg.contains("input 'h'") && msg.contains("raw_input_contents"), "{msg}");
    }

    #[test]
    fn mixing_raw_and_typed_is_refused() {
        let contents = InferTensorContents { fp32_contents: vec![1.0], ..Default::default() };
        let req = request(
            vec![input("a", "FP32", &[1]), typed("b", "FP32", &[1], contents)],
            vec![TensorData::F32(vec![1.0]).to_le_bytes()],
        );
        let (code, msg) = err(req);
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(msg.contains("input 'b'") && msg.contains("raw_input_contents"), "{msg}");
    }

    #[test]
    fn an_empty_contents_message_is_not_mixing() {
        let req = request(
            vec![InferInputTensor { contents: Some(InferTensorContents::default()), ..input("a", "FP32", &[1]) }],
            vec![TensorData::F32(vec![2.0]).to_le_bytes()],
        );
        assert_eq!(only_tensor(req).data, TensorData::F32(vec![2.0]));
    }

    #[test]
    fn raw_count_must_match_input_count() {
        let req = request(
            vec![input("a", "FP32", &[1]), input("b", "FP32", &[1])],
            vec![TensorData::F32(vec![1.0]).to_le_bytes()],
        );
        let (code, msg) = err(req);
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(msg.contains("2 inputs but 1 raw_input_contents"), "{msg}");
        let req = request(vec![input("a", "FP32", &[1])], vec![vec![0; 4], vec![0; 4]]);
        assert!(err(req).1.contains("1 inputs but 2 raw_input_contents"));
    }

    #[test]
    fn element_count_mismatch_names_input_expected_and_received() {
        // Raw, fixed size: 15 floats for a [1, 16] shape.
        let req =
            request(vec![input("features", "FP32", &[1, 16])], vec![TensorData::F32(vec![0.0; 15]).to_le_bytes()]);
        let (code, msg) = err(req);
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(msg.contains("input 'features'"), "{msg}");
        assert!(msg.contains("16 FP32 elements = 64 bytes"), "{msg}");
        assert!(msg.contains("60 bytes (15 elements)"), "{msg}");
        // Raw, not a whole number of elements.
        let req = request(vec![input("features", "FP32", &[1, 1])], vec![vec![0; 5]]);
        assert!(err(req).1.contains("5 bytes, not a whole number of 4-byte elements"));
        // Raw BYTES: counted after decoding.
        let raw = TensorData::Bytes(vec![b"a".to_vec(), b"b".to_vec()]).to_le_bytes();
        let (_, msg) = err(request(vec![input("s", "BYTES", &[3])], vec![raw]));
        assert!(
            msg.contains("input 's'") && msg.contains("3 BYTES elements expected") && msg.contains("holds 2"),
            "{msg}"
        );
        // Typed.
        let contents = InferTensorContents { int64_contents: vec![1, 2, 3], ..Default::default() };
        let (_, msg) = err(request(vec![typed("ids", "INT64", &[1, 4], contents)], vec![]));
        assert!(msg.contains("input 'ids'") && msg.contains("4 INT64 elements expected"), "{msg}");
        assert!(msg.contains("contents.int64_contents holds 3 elements"), "{msg}");
        // No data at all.
        let (_, msg) = err(request(vec![input("x", "FP32", &[2])], vec![]));
        assert!(msg.contains("input 'x'") && msg.contains("holds 0 elements"), "{msg}");
    }

    #[test]
    fn bad_datatype_and_shape_are_refused() {
        let (code, msg) = err(request(vec![input("x", "FLOAT", &[1])], vec![vec![0; 4]]));
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(msg.contains("input 'x'") && msg.contains("unknown datatype 'FLOAT'") && msg.contains("FP32"), "{msg}");
        let (_, msg) = err(request(vec![input("x", "FP32", &[-1, 2])], vec![vec![0; 8]]));
        assert!(msg.contains("negative dimension"), "{msg}");
        let (_, msg) = err(request(vec![input("x", "FP32", &[i64::MAX, i64::MAX])], vec![vec![0; 8]]));
        assert!(msg.contains("more elements than can be addressed"), "{msg}");
        // An element count that fits usize but whose byte size does not.
        let (_, msg) = err(request(vec![input("x", "FP64", &[1 << 62])], vec![vec![0; 8]]));
        assert!(msg.contains("input 'x'") && msg.contains("8 bytes (1 elements)"), "{msg}");
    }

    #[test]
    fn truncated_raw_bytes_are_refused() {
        let (code, msg) = err(request(vec![input("s", "BYTES", &[1])], vec![vec![9, 0, 0, 0, b'a']]));
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(msg.contains("input 's'") && msg.contains("raw_input_contents[0]"), "{msg}");
    }

    #[test]
    fn shared_memory_and_classification_are_unimplemented() {
        let mut shm = input("x", "FP32", &[1]);
        shm.parameters.insert("shared_memory_region".into(), InferParameter::default());
        let (code, msg) = err(request(vec![shm], vec![]));
        assert_eq!(code, tonic::Code::Unimplemented);
        assert!(msg.contains("input 'x'") && msg.contains("shared memory"), "{msg}");
        let mut out = InferRequestedOutputTensor { name: "y".into(), parameters: HashMap::new() };
        out.parameters.insert("classification".into(), InferParameter::default());
        let req = ModelInferRequest { outputs: vec![out], ..request(vec![], vec![]) };
        let (code, msg) = err(req);
        assert_eq!(code, tonic::Code::Unimplemented);
        assert!(msg.contains("output 'y'") && msg.contains("classification"), "{msg}");
    }

    #[test]
    fn reply_keeps_output_order_and_id() {
        let reply = InferReply {
            model_name: "m".into(),
            model_version: "2".into(),
            id: Some("abc".into()),
            outputs: vec![
                ReplyOutput {
                    name: "b".into(),
                    tensor: Tensor::new(vec![2], TensorData::I64(vec![1, 2])).expect("tensor"),
                    binary: false,
                },
                ReplyOutput {
                    name: "a".into(),
                    tensor: Tensor::new(vec![1, 1], TensorData::F32(vec![0.5])).expect("tensor"),
                    binary: true,
                },
            ],
        };
        let resp = infer_response(reply);
        assert_eq!((resp.model_name.as_str(), resp.model_version.as_str(), resp.id.as_str()), ("m", "2", "abc"));
        let names: Vec<&str> = resp.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(resp.outputs[0].datatype, "INT64");
        assert_eq!(resp.outputs[1].shape, vec![1, 1]);
        assert!(resp.outputs.iter().all(|o| o.contents.is_none()));
        assert_eq!(resp.raw_output_contents[0], TensorData::I64(vec![1, 2]).to_le_bytes());
        assert_eq!(resp.raw_output_contents[1], 0.5f32.to_le_bytes().to_vec());
    }

    #[test]
    fn statistics_map_to_triton_fields() {
        let s = VersionStatistics {
            name: "m".into(),
            version: "1".into(),
            inference_count: 10,
            execution_count: 4,
            success_count: 6,
            failure_count: 2,
            rejected_count: 1,
            abandoned_count: 0,
            queue_ns: 100,
            compute_ns: 200,
            request_ns: 300,
            queue_depth: 0,
        };
        let p = model_statistics(s);
        assert_eq!((p.inference_count, p.execution_count), (10, 4));
        let i = p.inference_stats.expect("inference stats");
        assert_eq!(i.success, Some(StatisticDuration { count: 6, ns: 300 }));
        assert_eq!(i.fail, Some(StatisticDuration { count: 2, ns: 0 }));
        assert_eq!(i.queue, Some(StatisticDuration { count: 6, ns: 100 }));
        assert_eq!(i.compute_infer, Some(StatisticDuration { count: 4, ns: 200 }));
        assert_eq!(i.compute_input, Some(StatisticDuration { count: 4, ns: 0 }));
        assert_eq!(i.cache_hit, Some(StatisticDuration { count: 0, ns: 0 }));
    }

    #[test]
    fn index_rows_fill_empty_strings() {
        let row = model_index(IndexEntry { name: "m".into(), version: None, state: None, reason: None });
        assert_eq!(
            row,
            ModelIndex { name: "m".into(), version: String::new(), state: String::new(), reason: String::new() }
        );
        let row = model_index(IndexEntry {
            name: "m".into(),
            version: Some("2".into()),
            state: Some("UNAVAILABLE"),
            reason: Some("bad file".into()),
        });
        assert_eq!((row.version.as_str(), row.state.as_str(), row.reason.as_str()), ("2", "UNAVAILABLE", "bad file"));
    }

    #[test]
    fn model_config_drops_the_batch_dimension() {
        let sig = ModelSignature {
            inputs: vec![TensorSpec {
                name: "x".into(),
                datatype: DataType::Bytes,
                shape: vec![Dim::Variable, Dim::Fixed(3)],
            }],
            outputs: vec![TensorSpec {
                name: "y".into(),
                datatype: DataType::F32,
                shape: vec![Dim::Variable, Dim::Fixed(1)],
            }],
            batched: true,
        };
        let cfg = model_config("m", &sig, 8);
        assert_eq!((cfg.name.as_str(), cfg.platform.as_str(), cfg.max_batch_size), ("m", PLATFORM, 8));
        assert_eq!(cfg.input[0].dims, vec![3]);
        assert_eq!(cfg.input[0].data_type, ConfigDataType::TypeString as i32);
        assert_eq!(cfg.output[0].dims, vec![1]);
        assert_eq!(cfg.output[0].data_type, ConfigDataType::TypeFp32 as i32);
        let unbatched = model_config("m", &sig, 0);
        assert_eq!(unbatched.input[0].dims, vec![-1, 3]);
    }

    #[test]
    fn metadata_converts_field_by_field() {
        let m = ModelMetadata {
            name: "m".into(),
            versions: vec!["2".into(), "1".into()],
            platform: PLATFORM,
            inputs: vec![TensorMetadata { name: "x".into(), datatype: "FP32", shape: vec![-1, 16] }],
            outputs: vec![TensorMetadata { name: "y".into(), datatype: "INT64", shape: vec![-1] }],
        };
        let p = model_metadata_response(m);
        assert_eq!(p.versions, vec!["2", "1"]);
        assert_eq!(p.platform, PLATFORM);
        assert_eq!(p.inputs[0], ProtoTensorMetadata { name: "x".into(), datatype: "FP32".into(), shape: vec![-1, 16] });
        assert_eq!(p.outputs[0].datatype, "INT64");
    }
}
