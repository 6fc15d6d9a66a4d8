//! gRPC `ModelInfer`: prost-decodes a `ModelInferRequest` from the bytes (what tonic does with
//! a request frame), then converts it into the server's `InferCall`
//! (`grpc::convert::infer_call`: raw_input_contents or typed contents, datatype, shape and
//! element-count checks). A converted request must be self-consistent and its answer encodable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use recserve_server::grpc::convert::{infer_call, infer_response};
use recserve_server::grpc::proto::ModelInferRequest;
use recserve_server::inference::{InferReply, ReplyOutput};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = ModelInferRequest::decode(data) else { return };
    let Ok(call) = infer_call(request) else { return };
    for input in &call.inputs {
        let expected: usize = input.tensor.shape.iter().product();
        assert_eq!(expected, input.tensor.data.len(), "decoded tensor '{}' disagrees with its shape", input.name);
    }
    let reply = InferReply {
        model_name: call.model,
        model_version: call.version.unwrap_or_default(),
        id: call.id,
        outputs: call
            .inputs
            .into_iter()
            .map(|t| ReplyOutput { name: t.name, tensor: t.tensor, binary: true })
            .collect(),
    };
    let _ = infer_response(reply).encode_to_vec();
});
