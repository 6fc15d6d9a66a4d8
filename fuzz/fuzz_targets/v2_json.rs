//! The V2 REST inference request decoder on a JSON body (no `Inference-Header-Content-Length`):
//! `rest::codec::decode_request`, which reads the request with the engine's JSON tensor codec.
//! A decoded request must be self-consistent, and encoding its inputs back as a response must
//! not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recserve_server::inference::{InferReply, ReplyOutput};
use recserve_server::rest::codec::{decode_request, encode_response};

fuzz_target!(|body: &[u8]| {
    let Ok(call) = decode_request("m", Some("1"), body, None) else { return };
    for input in &call.inputs {
        let expected: usize = input.tensor.shape.iter().product();
        assert_eq!(expected, input.tensor.data.len(), "decoded tensor '{}' disagrees with its shape", input.name);
    }
    let reply = InferReply {
        model_name: call.model,
        model_version: "1".into(),
        id: call.id,
        outputs: call
            .inputs
            .into_iter()
            .enumerate()
            .map(|(i, t)| ReplyOutput { name: t.name, tensor: t.tensor, binary: i % 2 == 1 })
            .collect(),
    };
    let _ = encode_response(&reply);
});
