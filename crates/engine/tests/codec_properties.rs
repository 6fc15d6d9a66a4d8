//! Property tests of the tensor codecs (issue 8): the V2 JSON codec (`engine::json`) and the raw
//! little-endian encoding (`TensorData::{to_le_bytes, from_le_bytes}`, the binary tensor
//! extension and gRPC raw contents) round-trip every datatype and shape, and the decoders answer
//! arbitrary input with an error, never a panic. The fuzz targets in `fuzz/` push the same
//! decoders much further; these run in every `cargo nextest run`, so the case counts are small.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use recserve_engine::json::{DataJson, JsonTensor, NamedTensorJson, decode_data, decode_shape, tensor_from_json};
use recserve_engine::strategies::{self, data, datatype, exact};
use recserve_engine::{DataType, Tensor, TensorData};
use serde_json::value::RawValue;

fn config() -> ProptestConfig {
    strategies::config(96)
}

/// Shapes of rank 0 to 4, at most 48 elements.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    strategies::shape(4, 48)
}

fn tensor(json_safe: bool) -> impl Strategy<Value = Tensor> {
    strategies::tensor(json_safe, 4, 48)
}

/// The JSON form of row-major `values` nested along `shape` (what clients that send nested
/// arrays write); rank 0 is the bare flat list.
fn nest(values: &[serde_json::Value], shape: &[usize]) -> serde_json::Value {
    match shape {
        [] | [_] => serde_json::Value::Array(values.to_vec()),
        [first, rest @ ..] => {
            let inner: usize = rest.iter().product();
            if inner == 0 {
                return serde_json::Value::Array((0..*first).map(|_| nest(&[], rest)).collect());
            }
            serde_json::Value::Array(values.chunks(inner).map(|c| nest(c, rest)).collect())
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// JSON encode → decode gives the tensor back, for every datatype and shape.
    #[test]
    fn json_round_trip(t in tensor(true)) {
        let text = serde_json::to_string(&NamedTensorJson::new("t", &t)).unwrap();
        let parsed: JsonTensor = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&parsed.name, "t");
        let back = parsed.to_tensor().unwrap();
        prop_assert_eq!(&back.shape, &t.shape);
        prop_assert_eq!(exact(&back.data), exact(&t.data), "{}", text);
    }

    /// Nested `data` (one array level per dimension) decodes to the same tensor as flat `data`.
    #[test]
    fn nested_json_data_decodes_like_flat(t in tensor(true)) {
        let flat: serde_json::Value = serde_json::to_value(DataJson(&t.data)).unwrap();
        let nested = nest(flat.as_array().unwrap(), &t.shape);
        let raw = RawValue::from_string(nested.to_string()).unwrap();
        let wire: Vec<i64> = t.shape.iter().map(|d| *d as i64).collect();
        let back = tensor_from_json(t.datatype().wire_name(), &wire, Some(&raw)).unwrap();
        prop_assert_eq!(exact(&back.data), exact(&t.data));
    }

    /// BYTES elements that are not UTF-8 go out as text with replacement characters (JSON
    /// strings are text); the element count and shape survive.
    #[test]
    fn json_bytes_keep_their_count(t in (shape(), Just(DataType::Bytes))
        .prop_flat_map(|(s, dt)| { let n = s.iter().product(); data(dt, n, false).prop_map(move |d| Tensor::new(s.clone(), d).unwrap()) }))
    {
        let text = serde_json::to_string(&NamedTensorJson::new("t", &t)).unwrap();
        let back = serde_json::from_str::<JsonTensor>(&text).unwrap().to_tensor().unwrap();
        prop_assert_eq!(&back.shape, &t.shape);
        let TensorData::Bytes(back) = back.data else { panic!("not BYTES") };
        let TensorData::Bytes(orig) = &t.data else { unreachable!() };
        for (b, o) in back.iter().zip(orig) {
            prop_assert_eq!(b, &String::from_utf8_lossy(o).as_bytes().to_vec());
        }
    }

    /// Raw little-endian encode → decode gives the data back exactly, NaNs and all.
    #[test]
    fn raw_round_trip(t in tensor(false)) {
        let raw = t.data.to_le_bytes();
        if let Some(size) = t.datatype().fixed_size() {
            prop_assert_eq!(raw.len(), size * t.data.len());
        }
        let back = TensorData::from_le_bytes(t.datatype(), &raw).unwrap();
        prop_assert_eq!(back.len(), t.data.len());
        prop_assert_eq!(exact(&back), exact(&t.data));
    }

    /// Arbitrary bytes: the raw decoder answers with data or an error. Fixed-size types accept
    /// exactly the whole multiples of their element size, and what they accept re-encodes to the
    /// same bytes (BOOL reads any non-zero byte as true, so it re-encodes as 0/1).
    #[test]
    fn raw_decoder_never_panics(dt in datatype(), raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let decoded = TensorData::from_le_bytes(dt, &raw);
        match dt.fixed_size() {
            Some(size) => {
                prop_assert_eq!(decoded.is_ok(), raw.len() % size == 0);
                if let Ok(d) = decoded {
                    prop_assert_eq!(d.len(), raw.len() / size);
                    let expect: Vec<u8> = if dt == DataType::Bool {
                        raw.iter().map(|b| u8::from(*b != 0)).collect()
                    } else {
                        raw.clone()
                    };
                    prop_assert_eq!(d.to_le_bytes(), expect);
                }
            }
            None => {
                if let Ok(d) = decoded {
                    prop_assert_eq!(d.to_le_bytes(), raw);
                }
            }
        }
    }

    /// Arbitrary text as JSON `data` of any datatype: decoded or refused, never a panic.
    #[test]
    fn json_data_decoder_never_panics(dt in datatype(), text in any::<String>()) {
        let _ = decode_data(dt, &text);
    }

    /// Arbitrary JSON-ish text (made of the characters JSON tensors use) as data.
    #[test]
    fn json_like_data_never_panics(dt in datatype(), text in "[\\[\\]0-9eE.,+\\-\" truefalsn]{0,40}") {
        let _ = decode_data(dt, &text);
    }

    /// Any wire shape: accepted with a countable element number, or refused.
    #[test]
    fn shape_decoder_never_panics(shape in prop::collection::vec(any::<i64>(), 0..6)) {
        if let Ok(dims) = decode_shape(&shape) {
            prop_assert!(dims.iter().try_fold(1usize, |a, d| a.checked_mul(*d)).is_some());
        }
    }

    /// A whole JSON tensor with arbitrary datatype name, shape and data: a consistent tensor or
    /// an error.
    #[test]
    fn json_tensor_decoder_never_panics(
        name in "[A-Z0-9]{0,8}",
        shape in prop::collection::vec(-2i64..6, 0..4),
        data in "[\\[\\]0-9.,\\-\"a ]{0,30}",
    ) {
        let text = format!(r#"{{"name":"x","datatype":"{name}","shape":{shape:?},"data":{data}}}"#);
        if let Ok(t) = serde_json::from_str::<JsonTensor>(&text)
            && let Ok(tensor) = t.to_tensor()
        {
            prop_assert_eq!(tensor.shape.iter().product::<usize>(), tensor.data.len());
        }
    }
}

/// Regression: serde_json's default float parser is not correctly rounded, so these FP64 values
/// came back 1 ulp off through the JSON codec (found by `json_round_trip`); the workspace now
/// enables serde_json's `float_roundtrip`.
#[test]
fn fp64_json_values_are_exact() {
    for x in [1.7709259280611904e-214, -8.018808854468235e155, 0.1, f64::MAX, f64::MIN_POSITIVE, 5e-324] {
        let t = Tensor::new(vec![1], TensorData::F64(vec![x])).unwrap();
        let text = serde_json::to_string(&NamedTensorJson::new("t", &t)).unwrap();
        let back = serde_json::from_str::<JsonTensor>(&text).unwrap().to_tensor().unwrap();
        assert_eq!(exact(&back.data), exact(&t.data), "{text}");
    }
}
