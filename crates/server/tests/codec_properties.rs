//! Property tests of the transports' tensor codecs (issue 8): the V2 REST binary tensor
//! extension (`rest::codec::decode_request` with `Inference-Header-Content-Length`) and the gRPC
//! request conversion (`grpc::convert::infer_call` with `raw_input_contents`) give back exactly
//! the tensors that were encoded, for every datatype and shape, and answer arbitrary bytes with
//! an error, never a panic. The JSON codec's own properties are in the engine crate's
//! `tests/codec_properties.rs`; the fuzz targets in `fuzz/` push the decoders much further.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use prost::Message;
use recserve_engine::json::NamedTensorJson;
use recserve_engine::strategies::{self, exact};
use recserve_engine::{Tensor, TensorData};
use recserve_server::grpc::convert::infer_call;
use recserve_server::grpc::proto::ModelInferRequest;
use recserve_server::grpc::proto::model_infer_request::InferInputTensor;
use recserve_server::rest::codec::decode_request;

fn config() -> ProptestConfig {
    strategies::config(64)
}

/// Any tensor of rank 0 to 3 with at most 32 elements (NaNs, infinities and non-UTF-8 BYTES
/// included: raw bytes carry them all).
fn tensor() -> impl Strategy<Value = Tensor> {
    strategies::tensor(false, 3, 32)
}

/// Up to four tensors, each sent in binary (`true`) or as JSON `data`.
fn inputs() -> impl Strategy<Value = Vec<(Tensor, bool)>> {
    prop::collection::vec((tensor(), any::<bool>()), 0..4)
}

/// Whether JSON can carry this data exactly (finite floats, UTF-8 strings).
fn json_safe(d: &TensorData) -> bool {
    match d {
        TensorData::F16(v) => v.iter().all(|x| x.is_finite()),
        TensorData::F32(v) => v.iter().all(|x| x.is_finite()),
        TensorData::F64(v) => v.iter().all(|x| x.is_finite()),
        TensorData::Bytes(v) => v.iter().all(|b| std::str::from_utf8(b).is_ok()),
        _ => true,
    }
}

/// A V2 REST body: the JSON header, then the binary inputs' raw bytes in input order.
fn rest_body(inputs: &[(Tensor, bool)]) -> (Vec<u8>, usize) {
    let mut header = Vec::new();
    let mut binary = Vec::new();
    for (i, (t, as_binary)) in inputs.iter().enumerate() {
        let name = format!("in{i}");
        if *as_binary || !json_safe(&t.data) {
            let raw = t.data.to_le_bytes();
            header.push(serde_json::json!({
                "name": name,
                "datatype": t.datatype().wire_name(),
                "shape": t.shape,
                "parameters": {"binary_data_size": raw.len()},
            }));
            binary.extend_from_slice(&raw);
        } else {
            header.push(serde_json::to_value(NamedTensorJson::new(&name, t)).unwrap());
        }
    }
    let mut body = serde_json::to_vec(&serde_json::json!({"inputs": header})).unwrap();
    let n = body.len();
    body.extend_from_slice(&binary);
    (body, n)
}

proptest! {
    #![proptest_config(config())]

    /// Binary extension (mixed with JSON inputs): decode gives the encoded tensors back.
    #[test]
    fn rest_binary_round_trip(inputs in inputs()) {
        let (body, n) = rest_body(&inputs);
        let call = decode_request("m", None, &body, Some(&n.to_string())).unwrap();
        prop_assert_eq!(call.inputs.len(), inputs.len());
        for (i, (got, (want, _))) in call.inputs.iter().zip(&inputs).enumerate() {
            prop_assert_eq!(&got.name, &format!("in{i}"));
            prop_assert_eq!(&got.tensor.shape, &want.shape);
            prop_assert_eq!(exact(&got.tensor.data), exact(&want.data));
        }
    }

    /// Any header length over a valid body: the same request, or an error (never a panic, never
    /// a request whose tensors disagree with their shapes).
    #[test]
    fn rest_wrong_header_length_is_an_error(inputs in inputs(), delta in -8i64..8) {
        let (body, n) = rest_body(&inputs);
        let claimed = (n as i64 + delta).max(0);
        if let Ok(call) = decode_request("m", None, &body, Some(&claimed.to_string())) {
            for input in &call.inputs {
                prop_assert_eq!(input.tensor.shape.iter().product::<usize>(), input.tensor.data.len());
            }
        }
    }

    /// Arbitrary bytes with an arbitrary header length: a request or an error.
    #[test]
    fn rest_decoder_never_panics(body in prop::collection::vec(any::<u8>(), 0..256), n in 0usize..300) {
        let _ = decode_request("m", None, &body, Some(&n.to_string()));
        let _ = decode_request("m", None, &body, None);
    }

    /// gRPC with raw_input_contents, through the protobuf encoding: the encoded tensors come back.
    #[test]
    fn grpc_raw_round_trip(inputs in prop::collection::vec(tensor(), 1..4)) {
        let request = ModelInferRequest {
            model_name: "m".into(),
            inputs: inputs
                .iter()
                .enumerate()
                .map(|(i, t)| InferInputTensor {
                    name: format!("in{i}"),
                    datatype: t.datatype().wire_name().into(),
                    shape: t.shape.iter().map(|d| *d as i64).collect(),
                    ..Default::default()
                })
                .collect(),
            raw_input_contents: inputs.iter().map(|t| t.data.to_le_bytes()).collect(),
            ..Default::default()
        };
        let bytes = request.encode_to_vec();
        let call = infer_call(ModelInferRequest::decode(bytes.as_slice()).unwrap()).unwrap();
        prop_assert_eq!(call.inputs.len(), inputs.len());
        for (got, want) in call.inputs.iter().zip(&inputs) {
            prop_assert_eq!(&got.tensor.shape, &want.shape);
            prop_assert_eq!(exact(&got.tensor.data), exact(&want.data));
        }
    }

    /// Arbitrary bytes as a gRPC request: protobuf decode, then conversion; errors only.
    #[test]
    fn grpc_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(request) = ModelInferRequest::decode(bytes.as_slice())
            && let Ok(call) = infer_call(request)
        {
            for input in &call.inputs {
                prop_assert_eq!(input.tensor.shape.iter().product::<usize>(), input.tensor.data.len());
            }
        }
    }
}
