//! JSON tensor data as the Open Inference Protocol writes it: `data` is row-major, flat or
//! nested; BOOL as true/false, BYTES as strings, every number type as JSON numbers. Used by the
//! V2 REST codec and by validation-sample files, so both read tensors the same way.

use crate::{DataType, Tensor, TensorData};
use half::f16;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;

/// A named tensor in the V2 JSON shape (`{"name", "datatype", "shape", "data"}`), with `data`
/// kept raw until the datatype is known.
#[derive(Debug, Deserialize)]
pub struct JsonTensor<'a> {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    #[serde(borrow)]
    pub data: Option<&'a RawValue>,
}

/// Why JSON tensor data could not be decoded; the caller adds the tensor's name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonDataError {
    #[error("unknown datatype '{0}' (expected one of BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64, BYTES)")]
    UnknownDatatype(String),
    #[error("shape {0:?} has a negative dimension")]
    NegativeDim(Vec<i64>),
    #[error("shape {0:?} holds more elements than this machine can count")]
    ShapeTooLarge(Vec<i64>),
    #[error("data is not valid {datatype}: {message}")]
    Invalid { datatype: DataType, message: String },
    #[error("shape {shape:?} holds {expected} elements, but data has {received}")]
    ElementCount { shape: Vec<usize>, expected: usize, received: usize },
}

/// One element type readable from JSON.
trait JsonElement: Sized {
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_str(_: &str) -> Option<Self> {
        None
    }
}

macro_rules! int_element {
    ($($t:ty),*) => {$(
        impl JsonElement for $t {
            fn from_u64(v: u64) -> Option<Self> { <$t>::try_from(v).ok() }
            fn from_i64(v: i64) -> Option<Self> { <$t>::try_from(v).ok() }
            fn from_f64(v: f64) -> Option<Self> {
                // Accept 3.0 for an integer type, never 3.5.
                if v.fract() == 0.0 && v >= <$t>::MIN as f64 && v <= <$t>::MAX as f64 { Some(v as $t) } else { None }
            }
        }
    )*};
}
int_element!(u8, u16, u32, u64, i8, i16, i32, i64);

impl JsonElement for f32 {
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f32)
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f32)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v as f32)
    }
}
impl JsonElement for f64 {
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
}
impl JsonElement for f16 {
    fn from_u64(v: u64) -> Option<Self> {
        Some(f16::from_f64(v as f64))
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(f16::from_f64(v as f64))
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(f16::from_f64(v))
    }
}
impl JsonElement for bool {
    fn from_bool(v: bool) -> Option<Self> {
        Some(v)
    }
}
impl JsonElement for Vec<u8> {
    fn from_str(v: &str) -> Option<Self> {
        Some(v.as_bytes().to_vec())
    }
}

/// A row-major vector read from a JSON array of any nesting depth.
struct Flat<T>(Vec<T>);

struct FlatVisitor<'v, T>(&'v mut Vec<T>);

impl<'de, T: JsonElement> de::DeserializeSeed<'de> for FlatVisitor<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: JsonElement> Visitor<'de> for FlatVisitor<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of elements")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.0.reserve(n);
        }
        while seq.next_element_seed(FlatVisitor(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        push(self.0, T::from_bool(v), || format!("boolean {v}"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        push(self.0, T::from_u64(v), || format!("number {v}"))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        push(self.0, T::from_i64(v), || format!("number {v}"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        push(self.0, T::from_f64(v), || format!("number {v}"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        push(self.0, T::from_str(v), || format!("string {v:?}"))
    }
}

fn push<T, E: de::Error>(out: &mut Vec<T>, v: Option<T>, what: impl FnOnce() -> String) -> Result<(), E> {
    match v {
        Some(v) => {
            out.push(v);
            Ok(())
        }
        None => Err(E::custom(format!("element {} is {}, out of range or of the wrong kind", out.len(), what()))),
    }
}

impl<'de, T: JsonElement> Deserialize<'de> for Flat<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        de::DeserializeSeed::deserialize(FlatVisitor(&mut out), d)?;
        Ok(Flat(out))
    }
}

fn parse<T: JsonElement>(datatype: DataType, raw: &str) -> Result<Vec<T>, JsonDataError> {
    serde_json::from_str::<Flat<T>>(raw)
        .map(|f| f.0)
        .map_err(|e| JsonDataError::Invalid { datatype, message: e.to_string() })
}

/// Decodes JSON `data` of the given datatype (flat or nested arrays).
pub fn decode_data(datatype: DataType, raw: &str) -> Result<TensorData, JsonDataError> {
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(parse(datatype, raw)?),
        DataType::U8 => TensorData::U8(parse(datatype, raw)?),
        DataType::U16 => TensorData::U16(parse(datatype, raw)?),
        DataType::U32 => TensorData::U32(parse(datatype, raw)?),
        DataType::U64 => TensorData::U64(parse(datatype, raw)?),
        DataType::I8 => TensorData::I8(parse(datatype, raw)?),
        DataType::I16 => TensorData::I16(parse(datatype, raw)?),
        DataType::I32 => TensorData::I32(parse(datatype, raw)?),
        DataType::I64 => TensorData::I64(parse(datatype, raw)?),
        DataType::F16 => TensorData::F16(parse(datatype, raw)?),
        DataType::F32 => TensorData::F32(parse(datatype, raw)?),
        DataType::F64 => TensorData::F64(parse(datatype, raw)?),
        DataType::Bytes => TensorData::Bytes(parse(datatype, raw)?),
    })
}

/// Checks a wire shape and returns it as sizes.
pub fn decode_shape(shape: &[i64]) -> Result<Vec<usize>, JsonDataError> {
    let dims: Vec<usize> = shape
        .iter()
        .map(|d| usize::try_from(*d).map_err(|_| JsonDataError::NegativeDim(shape.to_vec())))
        .collect::<Result<_, _>>()?;
    // Callers multiply the dimensions: a shape whose element count overflows is refused here.
    if dims.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d)).is_none() {
        return Err(JsonDataError::ShapeTooLarge(shape.to_vec()));
    }
    Ok(dims)
}

impl JsonTensor<'_> {
    /// The datatype, shape and data as a [`Tensor`], checking that the element count matches.
    pub fn to_tensor(&self) -> Result<Tensor, JsonDataError> {
        tensor_from_json(&self.datatype, &self.shape, self.data)
    }
}

/// Builds a tensor from the V2 JSON fields, checking datatype name, shape and element count.
pub fn tensor_from_json(datatype: &str, shape: &[i64], data: Option<&RawValue>) -> Result<Tensor, JsonDataError> {
    let datatype =
        DataType::from_wire_name(datatype).ok_or_else(|| JsonDataError::UnknownDatatype(datatype.to_string()))?;
    let shape = decode_shape(shape)?;
    let data = match data {
        Some(raw) => decode_data(datatype, raw.get())?,
        None => TensorData::with_capacity(datatype, 0),
    };
    let expected: usize = shape.iter().product();
    if expected != data.len() {
        return Err(JsonDataError::ElementCount { shape, expected, received: data.len() });
    }
    Ok(Tensor { shape, data })
}

/// Serializes tensor data as a flat JSON array (the form Triton answers with).
#[derive(Debug)]
pub struct DataJson<'a>(pub &'a TensorData);

impl Serialize for DataJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn all<S: Serializer, T: Serialize>(s: S, v: &[T]) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for x in v {
                seq.serialize_element(x)?;
            }
            seq.end()
        }
        match self.0 {
            TensorData::Bool(v) => all(s, v),
            TensorData::U8(v) => all(s, v),
            TensorData::U16(v) => all(s, v),
            TensorData::U32(v) => all(s, v),
            TensorData::U64(v) => all(s, v),
            TensorData::I8(v) => all(s, v),
            TensorData::I16(v) => all(s, v),
            TensorData::I32(v) => all(s, v),
            TensorData::I64(v) => all(s, v),
            TensorData::F16(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for x in v {
                    seq.serialize_element(&x.to_f32())?;
                }
                seq.end()
            }
            TensorData::F32(v) => all(s, v),
            TensorData::F64(v) => all(s, v),
            TensorData::Bytes(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for x in v {
                    seq.serialize_element(&String::from_utf8_lossy(x))?;
                }
                seq.end()
            }
        }
    }
}

/// An owned tensor in the V2 JSON shape, for writing sample files and test fixtures.
#[derive(Debug, Serialize)]
pub struct NamedTensorJson<'a> {
    pub name: &'a str,
    pub datatype: &'static str,
    pub shape: &'a [usize],
    pub data: DataJson<'a>,
}

impl<'a> NamedTensorJson<'a> {
    pub fn new(name: &'a str, t: &'a Tensor) -> Self {
        NamedTensorJson { name, datatype: t.datatype().wire_name(), shape: &t.shape, data: DataJson(&t.data) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(json: &str) -> Result<Tensor, JsonDataError> {
        let t: JsonTensor = serde_json::from_str(json).unwrap();
        t.to_tensor()
    }

    #[test]
    fn nested_and_flat_data_agree() {
        let a = tensor(r#"{"name":"x","datatype":"FP32","shape":[2,2],"data":[[1,2],[3.5,4]]}"#).unwrap();
        let b = tensor(r#"{"name":"x","datatype":"FP32","shape":[2,2],"data":[1,2,3.5,4]}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.data, TensorData::F32(vec![1.0, 2.0, 3.5, 4.0]));
    }

    #[test]
    fn every_datatype_decodes() {
        let cases = [
            ("BOOL", "[true,false]", TensorData::Bool(vec![true, false])),
            ("UINT8", "[0,255]", TensorData::U8(vec![0, 255])),
            ("INT8", "[-128,127]", TensorData::I8(vec![-128, 127])),
            ("UINT64", "[18446744073709551615,0]", TensorData::U64(vec![u64::MAX, 0])),
            ("INT64", "[-9223372036854775808,1]", TensorData::I64(vec![i64::MIN, 1])),
            ("FP16", "[1.5,-2]", TensorData::F16(vec![f16::from_f32(1.5), f16::from_f32(-2.0)])),
            ("FP64", "[0.1,2]", TensorData::F64(vec![0.1, 2.0])),
            ("BYTES", r#"["ab",""]"#, TensorData::Bytes(vec![b"ab".to_vec(), vec![]])),
            ("INT32", "[3.0,4]", TensorData::I32(vec![3, 4])),
        ];
        for (dt, data, want) in cases {
            let t = tensor(&format!(r#"{{"name":"x","datatype":"{dt}","shape":[2],"data":{data}}}"#)).unwrap();
            assert_eq!(t.data, want, "{dt}");
        }
    }

    #[test]
    fn wrong_kinds_and_ranges_are_named() {
        let e = tensor(r#"{"name":"x","datatype":"UINT8","shape":[1],"data":[256]}"#).unwrap_err();
        assert!(e.to_string().contains("UINT8") && e.to_string().contains("256"), "{e}");
        let e = tensor(r#"{"name":"x","datatype":"INT32","shape":[1],"data":[1.5]}"#).unwrap_err();
        assert!(e.to_string().contains("1.5"), "{e}");
        let e = tensor(r#"{"name":"x","datatype":"FP32","shape":[1],"data":["a"]}"#).unwrap_err();
        assert!(e.to_string().contains("string"), "{e}");
        let e = tensor(r#"{"name":"x","datatype":"BOOL","shape":[1],"data":[1]}"#).unwrap_err();
        assert!(e.to_string().contains("BOOL"), "{e}");
    }

    #[test]
    fn element_count_and_shape_checked() {
        let e = tensor(r#"{"name":"x","datatype":"FP32","shape":[2,3],"data":[1,2,3]}"#).unwrap_err();
        assert_eq!(e, JsonDataError::ElementCount { shape: vec![2, 3], expected: 6, received: 3 });
        let e = tensor(r#"{"name":"x","datatype":"FP32","shape":[-1],"data":[1]}"#).unwrap_err();
        assert_eq!(e, JsonDataError::NegativeDim(vec![-1]));
        let e = tensor(r#"{"name":"x","datatype":"FLOAT","shape":[1],"data":[1]}"#).unwrap_err();
        assert!(matches!(e, JsonDataError::UnknownDatatype(_)));
        // 2^32 · 2^32 overflows a 64-bit count: refused, never wrapped to 0 (which empty data
        // would match) nor a panic.
        let huge = r#"{"name":"x","datatype":"FP32","shape":[4294967296,4294967296],"data":[]}"#;
        assert_eq!(tensor(huge).unwrap_err(), JsonDataError::ShapeTooLarge(vec![1 << 32, 1 << 32]));
    }

    #[test]
    fn data_serializes_flat() {
        let t = Tensor::new(vec![2], TensorData::Bytes(vec![b"a".to_vec(), b"b".to_vec()])).unwrap();
        let s = serde_json::to_string(&NamedTensorJson::new("o", &t)).unwrap();
        assert_eq!(s, r#"{"name":"o","datatype":"BYTES","shape":[2],"data":["a","b"]}"#);
        let t = Tensor::new(vec![1], TensorData::F16(vec![f16::from_f32(0.5)])).unwrap();
        assert_eq!(serde_json::to_string(&DataJson(&t.data)).unwrap(), "[0.5]");
    }
}
