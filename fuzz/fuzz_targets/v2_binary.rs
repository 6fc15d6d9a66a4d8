//! The V2 binary tensor extension: a body whose first `Inference-Header-Content-Length` bytes
//! are the JSON header and whose rest is the inputs' raw little-endian data
//! (`parameters.binary_data_size` per input).
//!
//! Input layout: the first two bytes (little-endian u16) are the header length the fuzzer
//! "sends" (0xFFFF sends a header that is not a number), the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recserve_server::rest::codec::decode_request;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let n = u16::from_le_bytes([data[0], data[1]]);
    let body = &data[2..];
    let header = if n == u16::MAX { " 1x".to_string() } else { n.to_string() };
    let Ok(call) = decode_request("m", None, body, Some(&header)) else { return };
    for input in &call.inputs {
        let expected: usize = input.tensor.shape.iter().product();
        assert_eq!(expected, input.tensor.data.len(), "decoded tensor '{}' disagrees with its shape", input.name);
        // Raw data survives a re-encode unchanged (compared as bytes: NaN != NaN).
        let raw = input.tensor.data.to_le_bytes();
        let again = recserve_engine::TensorData::from_le_bytes(input.tensor.datatype(), &raw)
            .expect("the encoding of decoded data decodes");
        assert_eq!(again.to_le_bytes(), raw);
    }
});
