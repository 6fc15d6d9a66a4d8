//! The request body every worker sends: generated from the model's V2 metadata or read from
//! `--input-data`, encoded once as JSON or with the binary tensor data extension.
//!
//! Generated data is deterministic (a fixed-seed generator): floats are multiples of 1/256 in
//! [-1, 1) (exact in FP16, BF16, FP32 and FP64), integers of every type are in 0..=9 so that
//! index-like inputs (embedding ids) stay in range, BOOL alternates at random, BYTES are short
//! ASCII strings.

use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::LoadgenError;

/// V2 model metadata, as far as the load generator needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelMetadata {
    pub name: String,
    #[serde(default)]
    pub versions: Vec<String>,
    #[serde(default)]
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    #[serde(default)]
    pub outputs: Vec<TensorMetadata>,
}

/// One input or output of [`ModelMetadata`]; `-1` in `shape` is a variable dimension.
#[derive(Debug, Clone, Deserialize)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// An encoded request body and what goes with it.
#[derive(Debug, Clone)]
pub(crate) struct Payload {
    pub body: Bytes,
    /// `Inference-Header-Content-Length` for the binary extension.
    pub header_len: Option<usize>,
    /// Rows per request (size of the batch dimension), for rows/s.
    pub rows: u64,
}

/// The V2 datatypes, with their element size in the binary extension (BYTES is variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Datatype {
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
    Bf16,
    F32,
    F64,
    Bytes,
}

impl Datatype {
    fn parse(s: &str) -> Option<Datatype> {
        Some(match s {
            "BOOL" => Datatype::Bool,
            "UINT8" => Datatype::U8,
            "UINT16" => Datatype::U16,
            "UINT32" => Datatype::U32,
            "UINT64" => Datatype::U64,
            "INT8" => Datatype::I8,
            "INT16" => Datatype::I16,
            "INT32" => Datatype::I32,
            "INT64" => Datatype::I64,
            "FP16" => Datatype::F16,
            "BF16" => Datatype::Bf16,
            "FP32" => Datatype::F32,
            "FP64" => Datatype::F64,
            "BYTES" => Datatype::Bytes,
            _ => return None,
        })
    }

    fn is_float(self) -> bool {
        matches!(self, Datatype::F16 | Datatype::Bf16 | Datatype::F32 | Datatype::F64)
    }
}

/// SplitMix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Builds the V2 JSON request for `meta` with `rows` in the batch dimension.
pub(crate) fn generate_request(meta: &ModelMetadata, rows: u64) -> Result<Value, LoadgenError> {
    let invalid = |reason: String| LoadgenError::InvalidMetadata { model: meta.name.clone(), reason };
    if meta.inputs.is_empty() {
        return Err(invalid("the model declares no inputs".to_owned()));
    }
    let mut rng = Rng(0x5EED_0F4E_C5E4_E5A7);
    let mut inputs = Vec::with_capacity(meta.inputs.len());
    for input in &meta.inputs {
        let datatype = Datatype::parse(&input.datatype)
            .ok_or_else(|| invalid(format!("input {:?} has unknown datatype {:?}", input.name, input.datatype)))?;
        let mut shape = Vec::with_capacity(input.shape.len());
        for (i, &dim) in input.shape.iter().enumerate() {
            let dim = match dim {
                -1 if i == 0 => rows,
                -1 => 1,
                d if d >= 0 => d as u64,
                d => {
                    return Err(invalid(format!(
                        "input {:?} has invalid dimension {d} in shape {:?}",
                        input.name, input.shape
                    )));
                }
            };
            shape.push(dim);
        }
        let count =
            shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).filter(|&n| n <= 64 * 1024 * 1024).ok_or_else(
                || invalid(format!("input {:?} with shape {shape:?} is too large to generate", input.name)),
            )?;
        let data: Vec<Value> = (0..count)
            .map(|_| match datatype {
                Datatype::Bool => Value::Bool(rng.below(2) == 1),
                Datatype::Bytes => Value::String(format!("item-{}", rng.below(10_000))),
                d if d.is_float() => json!((rng.below(512) as f64 - 256.0) / 256.0),
                _ => json!(rng.below(10)),
            })
            .collect();
        inputs.push(json!({
            "name": input.name,
            "shape": shape,
            "datatype": input.datatype,
            "data": data,
        }));
    }
    Ok(json!({ "inputs": inputs }))
}

/// Rows of a request: the first dimension of its first input.
pub(crate) fn request_rows(request: &Value) -> Option<u64> {
    request.get("inputs")?.get(0)?.get("shape")?.get(0)?.as_u64()
}

/// Encodes a V2 JSON request as JSON.
pub(crate) fn encode_json(request: &Value) -> Result<Bytes, String> {
    serde_json::to_vec(request).map(Bytes::from).map_err(|e| e.to_string())
}

/// Re-encodes a V2 JSON request with the binary tensor data extension: each input's `data`
/// moves, as raw little-endian bytes, behind the JSON header, and the header asks for binary
/// outputs unless the request already says which outputs it wants. Returns the body and the
/// header length.
pub(crate) fn encode_binary(request: &Value) -> Result<(Bytes, usize), String> {
    let mut header = request.clone();
    let obj = header.as_object_mut().ok_or("the request is not a JSON object")?;
    let inputs = obj.get_mut("inputs").and_then(Value::as_array_mut).ok_or("the request has no \"inputs\" array")?;
    let mut raw = BytesMut::new();
    for input in inputs.iter_mut() {
        let input = input.as_object_mut().ok_or("an input is not an object")?;
        let name = input.get("name").and_then(Value::as_str).unwrap_or("?").to_owned();
        let datatype_name = input
            .get("datatype")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("input {name:?} has no datatype"))?;
        let datatype = Datatype::parse(&datatype_name)
            .ok_or_else(|| format!("input {name:?} has unknown datatype {datatype_name:?}"))?;
        let data = input.remove("data").ok_or_else(|| format!("input {name:?} has no data"))?;
        let before = raw.len();
        let mut flat = Vec::new();
        flatten(&data, &mut flat);
        for v in flat {
            encode_element(datatype, v, &mut raw)
                .ok_or_else(|| format!("input {name:?}: {v} is not a valid {datatype_name}"))?;
        }
        let size = raw.len() - before;
        let params = input.entry("parameters").or_insert_with(|| Value::Object(Map::new()));
        params
            .as_object_mut()
            .ok_or_else(|| format!("input {name:?}: parameters is not an object"))?
            .insert("binary_data_size".to_owned(), json!(size));
    }
    if !obj.contains_key("outputs") {
        let params = obj.entry("parameters").or_insert_with(|| Value::Object(Map::new()));
        if let Some(params) = params.as_object_mut() {
            params.entry("binary_data_output").or_insert(Value::Bool(true));
        }
    }
    let header = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    let header_len = header.len();
    let mut body = BytesMut::with_capacity(header_len + raw.len());
    body.put_slice(&header);
    body.put_slice(&raw);
    Ok((body.freeze(), header_len))
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

fn encode_element(datatype: Datatype, v: &Value, out: &mut BytesMut) -> Option<()> {
    let int = || -> Option<i128> { v.as_i64().map(i128::from).or_else(|| v.as_u64().map(i128::from)) };
    match datatype {
        Datatype::Bool => out.put_u8(u8::from(v.as_bool().or_else(|| v.as_u64().filter(|&n| n <= 1).map(|n| n == 1))?)),
        Datatype::U8 => out.put_u8(u8::try_from(int()?).ok()?),
        Datatype::U16 => out.put_u16_le(u16::try_from(int()?).ok()?),
        Datatype::U32 => out.put_u32_le(u32::try_from(int()?).ok()?),
        Datatype::U64 => out.put_u64_le(u64::try_from(int()?).ok()?),
        Datatype::I8 => out.put_i8(i8::try_from(int()?).ok()?),
        Datatype::I16 => out.put_i16_le(i16::try_from(int()?).ok()?),
        Datatype::I32 => out.put_i32_le(i32::try_from(int()?).ok()?),
        Datatype::I64 => out.put_i64_le(i64::try_from(int()?).ok()?),
        Datatype::F16 => out.put_slice(&half::f16::from_f64(v.as_f64()?).to_le_bytes()),
        Datatype::Bf16 => out.put_slice(&half::bf16::from_f64(v.as_f64()?).to_le_bytes()),
        Datatype::F32 => out.put_f32_le(v.as_f64()? as f32),
        Datatype::F64 => out.put_f64_le(v.as_f64()?),
        Datatype::Bytes => {
            let s = v.as_str()?.as_bytes();
            out.put_u32_le(u32::try_from(s.len()).ok()?);
            out.put_slice(s);
        }
    }
    Some(())
}

/// Builds the payload: from `--input-data` (sent as is in JSON mode) or generated from `meta`.
pub(crate) fn from_request(
    request: &Value,
    raw_json: Option<Bytes>,
    binary: bool,
    default_rows: u64,
) -> Result<Payload, String> {
    let rows = request_rows(request).unwrap_or(default_rows);
    if binary {
        let (body, header_len) = encode_binary(request)?;
        return Ok(Payload { body, header_len: Some(header_len), rows });
    }
    let body = match raw_json {
        Some(raw) => raw,
        None => encode_json(request)?,
    };
    Ok(Payload { body, header_len: None, rows })
}

/// Reads and checks `--input-data`.
pub(crate) fn load_input_data(path: &Path, binary: bool, default_rows: u64) -> Result<Payload, LoadgenError> {
    let raw = std::fs::read(path).map_err(|source| LoadgenError::ReadInputData { path: path.to_owned(), source })?;
    let invalid = |reason: String| LoadgenError::InvalidInputData { path: path.to_owned(), reason };
    let request: Value = serde_json::from_slice(&raw).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let inputs = request
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("expected a V2 inference request with an \"inputs\" array".into()))?;
    if inputs.is_empty() {
        return Err(invalid("\"inputs\" is empty".into()));
    }
    from_request(&request, Some(Bytes::from(raw)), binary, default_rows).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(inputs: &[(&str, &str, &[i64])]) -> ModelMetadata {
        ModelMetadata {
            name: "m".into(),
            versions: vec![],
            platform: String::new(),
            inputs: inputs
                .iter()
                .map(|(n, d, s)| TensorMetadata { name: (*n).into(), datatype: (*d).into(), shape: s.to_vec() })
                .collect(),
            outputs: vec![],
        }
    }

    #[test]
    fn generated_shapes_follow_metadata() {
        let m = meta(&[("a", "FP32", &[-1, 4]), ("b", "INT64", &[-1, -1, 2])]);
        let req = generate_request(&m, 3).expect("generate");
        assert_eq!(req["inputs"][0]["shape"], json!([3, 4]));
        assert_eq!(req["inputs"][0]["data"].as_array().map(Vec::len), Some(12));
        assert_eq!(req["inputs"][1]["shape"], json!([3, 1, 2]));
        assert_eq!(req["inputs"][1]["data"].as_array().map(Vec::len), Some(6));
        assert_eq!(request_rows(&req), Some(3));
        // Deterministic.
        assert_eq!(req, generate_request(&m, 3).expect("generate"));
    }

    #[test]
    fn bad_metadata_is_rejected() {
        assert!(generate_request(&meta(&[]), 1).is_err());
        assert!(generate_request(&meta(&[("a", "FLOAT", &[1])]), 1).is_err());
        assert!(generate_request(&meta(&[("a", "FP32", &[-2])]), 1).is_err());
    }

    #[test]
    fn binary_encoding_is_little_endian_and_sized() {
        let req = json!({"inputs": [
            {"name": "f", "datatype": "FP16", "shape": [2], "data": [1.0, -0.5]},
            {"name": "s", "datatype": "BYTES", "shape": [1], "data": ["ab"]},
            {"name": "b", "datatype": "BOOL", "shape": [1, 2], "data": [[true, false]]},
            {"name": "i", "datatype": "INT16", "shape": [1], "data": [-2]},
        ]});
        let (body, header_len) = encode_binary(&req).expect("encode");
        let header: Value = serde_json::from_slice(&body[..header_len]).expect("header");
        assert_eq!(header["parameters"]["binary_data_output"], json!(true));
        let sizes: Vec<u64> = header["inputs"]
            .as_array()
            .expect("inputs")
            .iter()
            .map(|i| i["parameters"]["binary_data_size"].as_u64().expect("size"))
            .collect();
        assert_eq!(sizes, vec![4, 6, 2, 2]);
        assert!(header["inputs"][0].get("data").is_none());
        assert_eq!(&body[header_len..], &[0x00, 0x3C, 0x00, 0xB8, 2, 0, 0, 0, b'a', b'b', 1, 0, 0xFE, 0xFF]);
        let bad = json!({"inputs": [{"name": "u", "datatype": "UINT8", "shape": [1], "data": [300]}]});
        assert!(encode_binary(&bad).is_err());
    }
}
