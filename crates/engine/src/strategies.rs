//! proptest strategies for tensors (feature `proptest`): every V2 datatype, small shapes, and
//! data with or without the values JSON cannot carry. Shared by the codec property tests of this
//! crate (the JSON and raw codecs) and of recserve-server (the REST binary extension and gRPC).

use crate::{DataType, Tensor, TensorData};
use half::f16;
use proptest::prelude::*;

/// `default_cases` cases per property; `PROPTEST_CASES=10000` in the environment for a long run.
pub fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Any V2 datatype.
pub fn datatype() -> impl Strategy<Value = DataType> {
    proptest::sample::select(DataType::ALL.to_vec())
}

/// Shapes of rank 0 to `max_rank` with dimensions 0 to 4, at most `max_elements` elements.
pub fn shape(max_rank: usize, max_elements: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..5, 0..=max_rank)
        .prop_filter("too many elements", move |s| s.iter().product::<usize>() <= max_elements)
}

/// `n` elements of `datatype`. `json_safe` keeps to values JSON can carry exactly: finite
/// floats (JSON has no NaN or infinity) and UTF-8 strings for BYTES (JSON strings are text);
/// otherwise anything (NaN payloads, infinities, arbitrary bytes), as raw encodings carry it.
pub fn data(datatype: DataType, n: usize, json_safe: bool) -> BoxedStrategy<TensorData> {
    use prop::collection::vec;
    let half = any::<u16>().prop_map(f16::from_bits);
    match datatype {
        DataType::Bool => vec(any::<bool>(), n).prop_map(TensorData::Bool).boxed(),
        DataType::U8 => vec(any::<u8>(), n).prop_map(TensorData::U8).boxed(),
        DataType::U16 => vec(any::<u16>(), n).prop_map(TensorData::U16).boxed(),
        DataType::U32 => vec(any::<u32>(), n).prop_map(TensorData::U32).boxed(),
        DataType::U64 => vec(any::<u64>(), n).prop_map(TensorData::U64).boxed(),
        DataType::I8 => vec(any::<i8>(), n).prop_map(TensorData::I8).boxed(),
        DataType::I16 => vec(any::<i16>(), n).prop_map(TensorData::I16).boxed(),
        DataType::I32 => vec(any::<i32>(), n).prop_map(TensorData::I32).boxed(),
        DataType::I64 => vec(any::<i64>(), n).prop_map(TensorData::I64).boxed(),
        DataType::F16 if json_safe => {
            vec(half.prop_filter("finite", |x| x.is_finite()), n).prop_map(TensorData::F16).boxed()
        }
        DataType::F16 => vec(half, n).prop_map(TensorData::F16).boxed(),
        DataType::F32 if json_safe => {
            vec(any::<f32>().prop_filter("finite", |x| x.is_finite()), n).prop_map(TensorData::F32).boxed()
        }
        DataType::F32 => vec(any::<f32>(), n).prop_map(TensorData::F32).boxed(),
        DataType::F64 if json_safe => {
            vec(any::<f64>().prop_filter("finite", |x| x.is_finite()), n).prop_map(TensorData::F64).boxed()
        }
        DataType::F64 => vec(any::<f64>(), n).prop_map(TensorData::F64).boxed(),
        DataType::Bytes if json_safe => {
            vec(any::<String>().prop_map(String::into_bytes), n).prop_map(TensorData::Bytes).boxed()
        }
        DataType::Bytes => vec(vec(any::<u8>(), 0..12), n).prop_map(TensorData::Bytes).boxed(),
    }
}

/// A tensor of any datatype and of a shape as [`shape`] makes them.
pub fn tensor(json_safe: bool, max_rank: usize, max_elements: usize) -> impl Strategy<Value = Tensor> {
    (datatype(), shape(max_rank, max_elements)).prop_flat_map(move |(dt, shape)| {
        let n = shape.iter().product();
        data(dt, n, json_safe).prop_filter_map("shape and data disagree", move |d| Tensor::new(shape.clone(), d).ok())
    })
}

/// Tensor data compared exactly: floats by their bits (NaN payloads and the sign of zero count).
pub fn exact(d: &TensorData) -> (DataType, Vec<u8>) {
    (d.datatype(), d.to_le_bytes())
}
