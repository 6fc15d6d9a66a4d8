//! The tensor type every layer shares: a datatype (the V2 protocol's set), a shape and
//! row-major data, with the operations the batcher and the wire codecs need (row counts,
//! concatenation and splitting along the batch axis, little-endian raw bytes).

use half::f16;
use std::fmt;

/// Element types of the Open Inference Protocol that ONNX also has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    F32,
    F64,
    Bytes,
}

impl DataType {
    pub const ALL: [DataType; 13] = [
        DataType::Bool,
        DataType::U8,
        DataType::U16,
        DataType::U32,
        DataType::U64,
        DataType::I8,
        DataType::I16,
        DataType::I32,
        DataType::I64,
        DataType::F16,
        DataType::F32,
        DataType::F64,
        DataType::Bytes,
    ];

    /// The V2 protocol's name ("FP32", "INT64", "BYTES", ...).
    pub fn wire_name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::U16 => "UINT16",
            DataType::U32 => "UINT32",
            DataType::U64 => "UINT64",
            DataType::I8 => "INT8",
            DataType::I16 => "INT16",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F16 => "FP16",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Parses a V2 protocol datatype name.
    pub fn from_wire_name(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.wire_name() == name)
    }

    /// Bytes per element in the raw little-endian encoding; `None` for BYTES (length-prefixed).
    pub fn fixed_size(self) -> Option<usize> {
        Some(match self {
            DataType::Bool | DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 | DataType::F16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::U64 | DataType::I64 | DataType::F64 => 8,
            DataType::Bytes => return None,
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// Row-major tensor contents, one variant per datatype.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F16(Vec<f16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

/// Applies `$body` to the inner vector of any variant, binding it as `$v`.
#[macro_export]
macro_rules! for_each_variant {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::TensorData::Bool($v) => $body,
            $crate::TensorData::U8($v) => $body,
            $crate::TensorData::U16($v) => $body,
            $crate::TensorData::U32($v) => $body,
            $crate::TensorData::U64($v) => $body,
            $crate::TensorData::I8($v) => $body,
            $crate::TensorData::I16($v) => $body,
            $crate::TensorData::I32($v) => $body,
            $crate::TensorData::I64($v) => $body,
            $crate::TensorData::F16($v) => $body,
            $crate::TensorData::F32($v) => $body,
            $crate::TensorData::F64($v) => $body,
            $crate::TensorData::Bytes($v) => $body,
        }
    };
}

impl TensorData {
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::U8(_) => DataType::U8,
            TensorData::U16(_) => DataType::U16,
            TensorData::U32(_) => DataType::U32,
            TensorData::U64(_) => DataType::U64,
            TensorData::I8(_) => DataType::I8,
            TensorData::I16(_) => DataType::I16,
            TensorData::I32(_) => DataType::I32,
            TensorData::I64(_) => DataType::I64,
            TensorData::F16(_) => DataType::F16,
            TensorData::F32(_) => DataType::F32,
            TensorData::F64(_) => DataType::F64,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }

    pub fn len(&self) -> usize {
        for_each_variant!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty vector of the given datatype with room for `capacity` elements.
    pub fn with_capacity(datatype: DataType, capacity: usize) -> TensorData {
        match datatype {
            DataType::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
            DataType::U8 => TensorData::U8(Vec::with_capacity(capacity)),
            DataType::U16 => TensorData::U16(Vec::with_capacity(capacity)),
            DataType::U32 => TensorData::U32(Vec::with_capacity(capacity)),
            DataType::U64 => TensorData::U64(Vec::with_capacity(capacity)),
            DataType::I8 => TensorData::I8(Vec::with_capacity(capacity)),
            DataType::I16 => TensorData::I16(Vec::with_capacity(capacity)),
            DataType::I32 => TensorData::I32(Vec::with_capacity(capacity)),
            DataType::I64 => TensorData::I64(Vec::with_capacity(capacity)),
            DataType::F16 => TensorData::F16(Vec::with_capacity(capacity)),
            DataType::F32 => TensorData::F32(Vec::with_capacity(capacity)),
            DataType::F64 => TensorData::F64(Vec::with_capacity(capacity)),
            DataType::Bytes => TensorData::Bytes(Vec::with_capacity(capacity)),
        }
    }

    /// Appends elements `range` of `other` (same datatype) to `self`.
    fn extend_from(&mut self, other: &TensorData, range: std::ops::Range<usize>) -> Result<(), TensorError> {
        macro_rules! ext {
            ($($var:ident),*) => {
                match (self, other) {
                    $((TensorData::$var(a), TensorData::$var(b)) => a.extend_from_slice(&b[range]),)*
                    (a, b) => {
                        return Err(TensorError::DatatypeMismatch {
                            expected: a.datatype(),
                            received: b.datatype(),
                        })
                    }
                }
            };
        }
        ext!(Bool, U8, U16, U32, U64, I8, I16, I32, I64, F16, F32, F64, Bytes);
        Ok(())
    }

    /// Decodes little-endian raw bytes (the binary tensor extension and gRPC raw contents).
    /// BOOL is one byte per element; BYTES elements are a 4-byte little-endian length then the
    /// bytes.
    pub fn from_le_bytes(datatype: DataType, raw: &[u8]) -> Result<TensorData, TensorError> {
        fn chunks<const N: usize, T>(raw: &[u8], f: impl Fn([u8; N]) -> T) -> Result<Vec<T>, TensorError> {
            if !raw.len().is_multiple_of(N) {
                return Err(TensorError::RawSize { raw_len: raw.len(), element_size: N });
            }
            Ok(raw
                .chunks_exact(N)
                .map(|c| {
                    let mut a = [0u8; N];
                    a.copy_from_slice(c);
                    f(a)
                })
                .collect())
        }
        Ok(match datatype {
            DataType::Bool => TensorData::Bool(raw.iter().map(|b| *b != 0).collect()),
            DataType::U8 => TensorData::U8(raw.to_vec()),
            DataType::I8 => TensorData::I8(raw.iter().map(|b| *b as i8).collect()),
            DataType::U16 => TensorData::U16(chunks(raw, u16::from_le_bytes)?),
            DataType::I16 => TensorData::I16(chunks(raw, i16::from_le_bytes)?),
            DataType::F16 => TensorData::F16(chunks(raw, f16::from_le_bytes)?),
            DataType::U32 => TensorData::U32(chunks(raw, u32::from_le_bytes)?),
            DataType::I32 => TensorData::I32(chunks(raw, i32::from_le_bytes)?),
            DataType::F32 => TensorData::F32(chunks(raw, f32::from_le_bytes)?),
            DataType::U64 => TensorData::U64(chunks(raw, u64::from_le_bytes)?),
            DataType::I64 => TensorData::I64(chunks(raw, i64::from_le_bytes)?),
            DataType::F64 => TensorData::F64(chunks(raw, f64::from_le_bytes)?),
            DataType::Bytes => {
                let mut out = Vec::new();
                let mut rest = raw;
                while !rest.is_empty() {
                    if rest.len() < 4 {
                        return Err(TensorError::TruncatedBytes { offset: raw.len() - rest.len() });
                    }
                    let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    rest = &rest[4..];
                    if rest.len() < n {
                        return Err(TensorError::TruncatedBytes { offset: raw.len() - rest.len() - 4 });
                    }
                    out.push(rest[..n].to_vec());
                    rest = &rest[n..];
                }
                TensorData::Bytes(out)
            }
        })
    }

    /// Appends the little-endian raw encoding to `out` (inverse of [`TensorData::from_le_bytes`]).
    pub fn write_le_bytes(&self, out: &mut Vec<u8>) {
        macro_rules! put {
            ($v:expr) => {
                for x in $v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            };
        }
        match self {
            TensorData::Bool(v) => out.extend(v.iter().map(|b| *b as u8)),
            TensorData::U8(v) => out.extend_from_slice(v),
            TensorData::I8(v) => out.extend(v.iter().map(|b| *b as u8)),
            TensorData::U16(v) => put!(v),
            TensorData::I16(v) => put!(v),
            TensorData::F16(v) => put!(v),
            TensorData::U32(v) => put!(v),
            TensorData::I32(v) => put!(v),
            TensorData::F32(v) => put!(v),
            TensorData::U64(v) => put!(v),
            TensorData::I64(v) => put!(v),
            TensorData::F64(v) => put!(v),
            TensorData::Bytes(v) => {
                for b in v {
                    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    out.extend_from_slice(b);
                }
            }
        }
    }

    /// The little-endian raw encoding as a new vector.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.datatype().fixed_size().unwrap_or(8) * self.len());
        self.write_le_bytes(&mut out);
        out
    }
}

/// Errors building or reshaping tensors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    #[error("shape {shape:?} holds {expected} elements, but {received} were given")]
    ElementCount { shape: Vec<usize>, expected: usize, received: usize },
    #[error("datatype mismatch: expected {expected}, received {received}")]
    DatatypeMismatch { expected: DataType, received: DataType },
    #[error("{raw_len} raw bytes is not a multiple of the element size {element_size}")]
    RawSize { raw_len: usize, element_size: usize },
    #[error("BYTES element truncated at byte offset {offset}")]
    TruncatedBytes { offset: usize },
    #[error("cannot concatenate tensors with shapes {first:?} and {other:?} along the batch axis")]
    ConcatShape { first: Vec<usize>, other: Vec<usize> },
    #[error("tensor of rank 0 has no batch axis")]
    NoBatchAxis,
    #[error("split sizes add up to {sum} rows, but the tensor has {rows}")]
    SplitRows { sum: usize, rows: usize },
}

/// A tensor: shape and row-major data.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    /// Builds a tensor, checking that the element count matches the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor, TensorError> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(TensorError::ElementCount { shape, expected, received: data.len() });
        }
        Ok(Tensor { shape, data })
    }

    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }

    /// Size of the first (batch) dimension.
    pub fn rows(&self) -> Result<usize, TensorError> {
        self.shape.first().copied().ok_or(TensorError::NoBatchAxis)
    }

    /// Concatenates tensors along axis 0; all must share datatype and trailing dimensions.
    pub fn concat_rows(parts: &[&Tensor]) -> Result<Tensor, TensorError> {
        let Some(first) = parts.first() else {
            return Err(TensorError::NoBatchAxis);
        };
        if parts.len() == 1 {
            return Ok((*first).clone());
        }
        if first.shape.is_empty() {
            return Err(TensorError::NoBatchAxis);
        }
        let total_elems: usize = parts.iter().map(|t| t.data.len()).sum();
        let mut data = TensorData::with_capacity(first.datatype(), total_elems);
        let mut rows = 0;
        for t in parts {
            if t.shape.len() != first.shape.len() || t.shape[1..] != first.shape[1..] {
                return Err(TensorError::ConcatShape { first: first.shape.clone(), other: t.shape.clone() });
            }
            rows += t.shape[0];
            data.extend_from(&t.data, 0..t.data.len())?;
        }
        let mut shape = first.shape.clone();
        shape[0] = rows;
        Ok(Tensor { shape, data })
    }

    /// Splits along axis 0 into consecutive pieces of the given row counts.
    pub fn split_rows(&self, sizes: &[usize]) -> Result<Vec<Tensor>, TensorError> {
        let rows = self.rows()?;
        let sum: usize = sizes.iter().sum();
        if sum != rows {
            return Err(TensorError::SplitRows { sum, rows });
        }
        if sizes.len() == 1 {
            return Ok(vec![self.clone()]);
        }
        let row_len: usize = self.shape[1..].iter().product();
        let mut out = Vec::with_capacity(sizes.len());
        let mut start = 0;
        for &n in sizes {
            let mut data = TensorData::with_capacity(self.datatype(), n * row_len);
            data.extend_from(&self.data, start * row_len..(start + n) * row_len)?;
            let mut shape = self.shape.clone();
            shape[0] = n;
            out.push(Tensor { shape, data });
            start += n;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatype_names_round_trip() {
        for d in DataType::ALL {
            assert_eq!(DataType::from_wire_name(d.wire_name()), Some(d));
        }
        assert_eq!(DataType::from_wire_name("FLOAT"), None);
    }

    #[test]
    fn le_bytes_round_trip_every_type() {
        let samples = vec![
            TensorData::Bool(vec![true, false, true]),
            TensorData::U8(vec![0, 255]),
            TensorData::U16(vec![1, 65535]),
            TensorData::U32(vec![7, u32::MAX]),
            TensorData::U64(vec![9, u64::MAX]),
            TensorData::I8(vec![-128, 127]),
            TensorData::I16(vec![-2, 300]),
            TensorData::I32(vec![-5, i32::MAX]),
            TensorData::I64(vec![i64::MIN, 42]),
            TensorData::F16(vec![f16::from_f32(1.5), f16::from_f32(-0.25)]),
            TensorData::F32(vec![1.0, -2.5, f32::MAX]),
            TensorData::F64(vec![std::f64::consts::PI]),
            TensorData::Bytes(vec![b"hello".to_vec(), vec![], b"x".to_vec()]),
        ];
        for data in samples {
            let raw = data.to_le_bytes();
            assert_eq!(TensorData::from_le_bytes(data.datatype(), &raw).unwrap(), data);
        }
    }

    #[test]
    fn f32_le_layout_is_little_endian() {
        assert_eq!(TensorData::F32(vec![1.0]).to_le_bytes(), vec![0, 0, 0x80, 0x3f]);
    }

    #[test]
    fn raw_size_and_truncation_are_reported() {
        assert_eq!(
            TensorData::from_le_bytes(DataType::F32, &[0, 0, 0]),
            Err(TensorError::RawSize { raw_len: 3, element_size: 4 })
        );
        assert_eq!(
            TensorData::from_le_bytes(DataType::Bytes, &[5, 0, 0, 0, b'a']),
            Err(TensorError::TruncatedBytes { offset: 0 })
        );
        assert_eq!(TensorData::from_le_bytes(DataType::Bytes, &[1, 0]), Err(TensorError::TruncatedBytes { offset: 0 }));
    }

    #[test]
    fn element_count_checked() {
        let err = Tensor::new(vec![2, 3], TensorData::F32(vec![0.0; 5])).unwrap_err();
        assert_eq!(err, TensorError::ElementCount { shape: vec![2, 3], expected: 6, received: 5 });
    }

    #[test]
    fn concat_then_split_restores_parts() {
        let a = Tensor::new(vec![1, 2], TensorData::I64(vec![1, 2])).unwrap();
        let b = Tensor::new(vec![2, 2], TensorData::I64(vec![3, 4, 5, 6])).unwrap();
        let c = Tensor::concat_rows(&[&a, &b]).unwrap();
        assert_eq!(c.shape, vec![3, 2]);
        assert_eq!(c.data, TensorData::I64(vec![1, 2, 3, 4, 5, 6]));
        let parts = c.split_rows(&[1, 2]).unwrap();
        assert_eq!(parts, vec![a, b]);
    }

    #[test]
    fn concat_rejects_mismatched_rows() {
        let a = Tensor::new(vec![1, 2], TensorData::F32(vec![1.0, 2.0])).unwrap();
        let b = Tensor::new(vec![1, 3], TensorData::F32(vec![1.0, 2.0, 3.0])).unwrap();
        assert!(matches!(Tensor::concat_rows(&[&a, &b]), Err(TensorError::ConcatShape { .. })));
        let c = Tensor::new(vec![1, 2], TensorData::I32(vec![1, 2])).unwrap();
        assert!(matches!(Tensor::concat_rows(&[&a, &c]), Err(TensorError::DatatypeMismatch { .. })));
    }

    #[test]
    fn split_checks_row_sum() {
        let a = Tensor::new(vec![3], TensorData::F32(vec![1.0, 2.0, 3.0])).unwrap();
        assert_eq!(a.split_rows(&[1, 1]), Err(TensorError::SplitRows { sum: 2, rows: 3 }));
    }
}
