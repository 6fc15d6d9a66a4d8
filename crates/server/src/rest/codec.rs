//! The V2 REST wire format of an inference request and response: JSON tensors, and the binary
//! tensor data extension (`Inference-Header-Content-Length`, per-input `binary_data_size`,
//! `binary_data_output`, per-output `binary_data`). Decoding is pure (bytes in, [`InferCall`]
//! out) so it can be tested and fuzzed without a server.

use crate::error::ApiError;
use crate::inference::{InferCall, InferReply, RequestedOutput};
use recserve_engine::json::{DataJson, JsonDataError, decode_shape, tensor_from_json};
use recserve_engine::{DataType, Tensor, TensorData};
use recserve_serving::NamedTensor;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The header that separates the JSON part from the binary part of a body.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

#[derive(Deserialize)]
struct RequestJson<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(borrow)]
    inputs: Vec<InputJson<'a>>,
    #[serde(default)]
    outputs: Option<Vec<OutputJson>>,
}

#[derive(Deserialize)]
struct InputJson<'a> {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct OutputJson {
    name: String,
    #[serde(default)]
    parameters: Option<Parameters>,
}

/// The parameters recserve reads; others (sequence_id, priority, timeout, ...) are accepted
/// and ignored.
#[derive(Deserialize, Default)]
struct Parameters {
    #[serde(default)]
    binary_data_size: Option<u64>,
    #[serde(default)]
    binary_data_output: Option<bool>,
    #[serde(default)]
    binary_data: Option<bool>,
    #[serde(default)]
    classification: Option<serde_json::Value>,
}

/// Decodes a request body. `header_length` is the value of `Inference-Header-Content-Length`
/// when the client sent it.
pub fn decode_request(
    model: &str,
    version: Option<&str>,
    body: &[u8],
    header_length: Option<&str>,
) -> Result<InferCall, ApiError> {
    let (json, mut binary) = match header_length {
        None => (body, &[][..]),
        Some(text) => {
            let n: usize = text.trim().parse().map_err(|_| {
                ApiError::BadRequest(format!("Inference-Header-Content-Length must be a byte count, received '{text}'"))
            })?;
            if n > body.len() {
                return Err(ApiError::BadRequest(format!(
                    "Inference-Header-Content-Length is {n}, but the body has only {} bytes",
                    body.len()
                )));
            }
            body.split_at(n)
        }
    };
    let request: RequestJson = serde_json::from_slice(json)
        .map_err(|e| ApiError::BadRequest(format!("malformed inference request JSON: {e}")))?;
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in &request.inputs {
        let binary_size = input.parameters.as_ref().and_then(|p| p.binary_data_size);
        let tensor = match (binary_size, input.data) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest(format!(
                    "input '{}' has both 'data' and parameters.binary_data_size; give one",
                    input.name
                )));
            }
            (Some(size), None) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > binary.len() {
                    return Err(ApiError::BadRequest(format!(
                        "input '{}': binary_data_size is {size} bytes, but only {} bytes of binary data remain (truncated body?)",
                        input.name,
                        binary.len()
                    )));
                }
                let (mine, rest) = binary.split_at(size);
                binary = rest;
                binary_tensor(&input.name, &input.datatype, &input.shape, mine)?
            }
            (None, Some(data)) => tensor_from_json(&input.datatype, &input.shape, Some(data))
                .map_err(|e| ApiError::BadRequest(format!("input '{}': {e}", input.name)))?,
            (None, None) => {
                return Err(ApiError::BadRequest(format!(
                    "input '{}' has no 'data' and no parameters.binary_data_size",
                    input.name
                )));
            }
        };
        inputs.push(NamedTensor { name: input.name.clone(), tensor });
    }
    if !binary.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "{} bytes of binary data follow the inputs but no input claims them (check binary_data_size)",
            binary.len()
        )));
    }
    let binary_default = request.parameters.as_ref().and_then(|p| p.binary_data_output).unwrap_or(false);
    let mut outputs = Vec::new();
    for o in request.outputs.unwrap_or_default() {
        let params = o.parameters.unwrap_or_default();
        if params.classification.is_some() {
            return Err(ApiError::BadRequest(format!(
                "output '{}': the classification extension is not supported; request the raw output",
                o.name
            )));
        }
        outputs.push(RequestedOutput { name: o.name, binary: params.binary_data.unwrap_or(binary_default) });
    }
    Ok(InferCall {
        model: model.to_string(),
        version: version.map(str::to_string),
        id: request.id,
        inputs,
        outputs,
        binary_default,
    })
}

fn binary_tensor(name: &str, datatype: &str, shape: &[i64], raw: &[u8]) -> Result<Tensor, ApiError> {
    let bad = |msg: String| ApiError::BadRequest(format!("input '{name}': {msg}"));
    let dt = DataType::from_wire_name(datatype)
        .ok_or_else(|| bad(JsonDataError::UnknownDatatype(datatype.into()).to_string()))?;
    let shape = decode_shape(shape).map_err(|e| bad(e.to_string()))?;
    let data = TensorData::from_le_bytes(dt, raw).map_err(|e| bad(e.to_string()))?;
    let expected: usize = shape.iter().product();
    if data.len() != expected {
        return Err(bad(format!(
            "shape {shape:?} holds {expected} elements, but its {} bytes of binary data hold {}",
            raw.len(),
            data.len()
        )));
    }
    Ok(Tensor { shape, data })
}

#[derive(Serialize)]
struct ResponseJson<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<OutputJsonOut<'a>>,
}

#[derive(Serialize)]
struct OutputJsonOut<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryParam>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<DataJson<'a>>,
}

#[derive(Serialize)]
struct BinaryParam {
    binary_data_size: usize,
}

/// An encoded response body and, when it carries binary outputs, the JSON length for the
/// `Inference-Header-Content-Length` header.
pub struct EncodedResponse {
    pub body: Vec<u8>,
    pub header_length: Option<usize>,
}

/// Encodes the answer: JSON, followed by the raw bytes of outputs asked for in binary.
pub fn encode_response(reply: &InferReply) -> EncodedResponse {
    let mut raws: Vec<Vec<u8>> = Vec::new();
    let outputs = reply
        .outputs
        .iter()
        .map(|o| {
            let (parameters, data) = if o.binary {
                let raw = o.tensor.data.to_le_bytes();
                let size = raw.len();
                raws.push(raw);
                (Some(BinaryParam { binary_data_size: size }), None)
            } else {
                (None, Some(DataJson(&o.tensor.data)))
            };
            OutputJsonOut {
                name: &o.name,
                datatype: o.tensor.datatype().wire_name(),
                shape: &o.tensor.shape,
                parameters,
                data,
            }
        })
        .collect();
    let json = ResponseJson {
        model_name: &reply.model_name,
        model_version: &reply.model_version,
        id: reply.id.as_deref(),
        outputs,
    };
    let mut body = Vec::with_capacity(256);
    // Serializing these plain structs cannot fail (no maps with non-string keys).
    let _ = serde_json::to_writer(&mut body, &json);
    if raws.is_empty() {
        return EncodedResponse { body, header_length: None };
    }
    let header_length = body.len();
    for raw in raws {
        body.extend_from_slice(&raw);
    }
    EncodedResponse { body, header_length: Some(header_length) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::ReplyOutput;

    fn decode(body: &[u8], header: Option<&str>) -> Result<InferCall, ApiError> {
        decode_request("m", None, body, header)
    }

    #[test]
    fn json_request_decodes() {
        let call = decode(
            br#"{"id":"7","inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[[1,2]]}],
                "outputs":[{"name":"y","parameters":{"binary_data":true}}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(call.id.as_deref(), Some("7"));
        assert_eq!(call.inputs[0].tensor.data, TensorData::F32(vec![1.0, 2.0]));
        assert_eq!(call.outputs, vec![RequestedOutput { name: "y".into(), binary: true }]);
    }

    #[test]
    fn binary_request_decodes() {
        let json = br#"{"inputs":[{"name":"a","shape":[2],"datatype":"INT64","parameters":{"binary_data_size":16}},
            {"name":"b","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":7}}],
            "parameters":{"binary_data_output":true}}"#;
        let mut body = json.to_vec();
        body.extend_from_slice(&TensorData::I64(vec![5, -1]).to_le_bytes());
        body.extend_from_slice(&TensorData::Bytes(vec![b"abc".to_vec()]).to_le_bytes());
        let call = decode(&body, Some(&json.len().to_string())).unwrap();
        assert_eq!(call.inputs[0].tensor.data, TensorData::I64(vec![5, -1]));
        assert_eq!(call.inputs[1].tensor.data, TensorData::Bytes(vec![b"abc".to_vec()]));
        assert!(call.binary_default);
    }

    #[test]
    fn malformed_requests_are_explained() {
        let e = decode(b"{not json", None).unwrap_err();
        assert!(e.to_string().starts_with("malformed inference request JSON"), "{e}");
        let e = decode(br#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}"#, None).unwrap_err();
        assert!(e.to_string().contains("input 'x'") && e.to_string().contains("3 elements"), "{e}");
        let e = decode(br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#, None).unwrap_err();
        assert!(e.to_string().contains("no 'data'"), "{e}");
        let json = br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
        let mut body = json.to_vec();
        body.extend_from_slice(&[0, 0, 0, 0]);
        let e = decode(&body, Some(&json.len().to_string())).unwrap_err();
        assert!(e.to_string().contains("binary_data_size is 8 bytes, but only 4"), "{e}");
        let e = decode(&body, Some("99999")).unwrap_err();
        assert!(e.to_string().contains("Inference-Header-Content-Length is 99999"), "{e}");
        let e = decode(&body, Some("abc")).unwrap_err();
        assert!(e.to_string().contains("received 'abc'"), "{e}");
        let json = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#;
        let mut body = json.to_vec();
        body.extend_from_slice(&[0; 6]);
        let e = decode(&body, Some(&json.len().to_string())).unwrap_err();
        assert!(e.to_string().contains("2 bytes of binary data follow"), "{e}");
        let json = br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#;
        let mut body = json.to_vec();
        body.extend_from_slice(&[0; 4]);
        let e = decode(&body, Some(&json.len().to_string())).unwrap_err();
        assert!(e.to_string().contains("holds 2 elements") && e.to_string().contains("hold 1"), "{e}");
    }

    #[test]
    fn response_mixes_json_and_binary() {
        let reply = InferReply {
            model_name: "m".into(),
            model_version: "1".into(),
            id: None,
            outputs: vec![
                ReplyOutput {
                    name: "a".into(),
                    tensor: Tensor::new(vec![1], TensorData::F32(vec![2.0])).unwrap(),
                    binary: false,
                },
                ReplyOutput {
                    name: "b".into(),
                    tensor: Tensor::new(vec![1], TensorData::F32(vec![1.0])).unwrap(),
                    binary: true,
                },
            ],
        };
        let enc = encode_response(&reply);
        let n = enc.header_length.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&enc.body[..n]).unwrap();
        assert_eq!(json["outputs"][0]["data"], serde_json::json!([2.0]));
        assert_eq!(json["outputs"][1]["parameters"]["binary_data_size"], 4);
        assert!(json["outputs"][1].get("data").is_none());
        assert_eq!(&enc.body[n..], &[0, 0, 0x80, 0x3f]);
    }
}
