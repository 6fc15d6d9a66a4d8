//! One inference call, independent of the transport: resolve the version, run the inputs
//! through its batcher, keep the requested outputs. REST (JSON and binary) and gRPC decode into
//! an [`InferCall`] and encode the [`InferReply`].

use crate::AppState;
use crate::error::ApiError;
use crate::observe::Observed;
use recserve_engine::Tensor;
use recserve_serving::NamedTensor;

/// An output the client asked for, and whether it wants it as raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedOutput {
    pub name: String,
    pub binary: bool,
}

/// A decoded inference request.
#[derive(Debug, Clone)]
pub struct InferCall {
    pub model: String,
    pub version: Option<String>,
    pub id: Option<String>,
    pub inputs: Vec<NamedTensor>,
    /// Empty: every output, in the encoding `binary_default` says.
    pub outputs: Vec<RequestedOutput>,
    pub binary_default: bool,
}

/// One output of the answer.
#[derive(Debug, Clone)]
pub struct ReplyOutput {
    pub name: String,
    pub tensor: Tensor,
    pub binary: bool,
}

/// The answer to an [`InferCall`].
#[derive(Debug, Clone)]
pub struct InferReply {
    pub model_name: String,
    pub model_version: String,
    pub id: Option<String>,
    pub outputs: Vec<ReplyOutput>,
}

/// A well-spread key per request (SplitMix64 over a counter), for deployments' traffic split.
fn next_route_key() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut z = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The version that serves a request for `model`: the one named, else the one its deployment's
/// traffic split picks. A tensor request has no user to stick to, so requests naming no version
/// are spread over the arms one by one.
pub fn choose_version(
    state: &AppState,
    model: &str,
    version: Option<&str>,
) -> Result<std::sync::Arc<recserve_serving::LoadedVersion>, recserve_serving::ServingError> {
    match version.filter(|v| !v.is_empty()) {
        Some(v) => state.registry.resolve(model, Some(v)),
        None => state.registry.route(model, next_route_key()).map(|r| r.version),
    }
}

/// Refuses a call whose inputs hold more than `limit` elements in all.
fn check_elements(call: &InferCall, limit: usize) -> Result<(), ApiError> {
    let total = call.inputs.iter().fold(0usize, |acc, i| acc.saturating_add(i.tensor.data.len()));
    if total > limit {
        return Err(ApiError::TooLarge(format!(
            "the request's inputs hold {total} tensor elements; this server accepts at most {limit} per request \
             (--max-request-elements)"
        )));
    }
    Ok(())
}

/// Runs one call.
pub async fn infer(state: &AppState, call: InferCall) -> Result<InferReply, ApiError> {
    infer_observed(state, call, &mut Observed::off()).await
}

/// Runs one call, recording its batcher stages (`queue`, `inference`), and its inputs and
/// outputs for the request log, in `obs`.
pub async fn infer_observed(state: &AppState, call: InferCall, obs: &mut Observed) -> Result<InferReply, ApiError> {
    let loaded = match obs.routed() {
        Some(routed) => routed.clone(),
        None => choose_version(state, &call.model, call.version.as_deref())?,
    };
    for wanted in &call.outputs {
        if !loaded.signature.outputs.iter().any(|o| o.name == wanted.name) {
            let names: Vec<&str> = loaded.signature.outputs.iter().map(|o| o.name.as_str()).collect();
            return Err(ApiError::BadRequest(format!(
                "model '{}' has no output '{}'; its outputs are: {}",
                call.model,
                wanted.name,
                names.join(", ")
            )));
        }
    }
    check_elements(&call, state.limits.max_request_elements)?;
    if let Some(log) = obs.log() {
        log.input_tensors(&call.inputs);
    }
    let experiments = crate::experiments::of(state);
    let drift = experiments.and_then(|e| e.v2_sample(&call.inputs));
    let (tensors, timings) = loaded.infer_timed(call.inputs).await;
    obs.batcher(timings);
    let tensors = tensors?;
    if let (Some(experiments), Some(sample)) = (experiments, &drift) {
        experiments.observe_v2(&loaded.model, loaded.version, sample, &tensors);
    }
    let mut outputs = Vec::with_capacity(tensors.len());
    for (spec, tensor) in loaded.signature.outputs.iter().zip(tensors) {
        if call.outputs.is_empty() {
            outputs.push(ReplyOutput { name: spec.name.clone(), tensor, binary: call.binary_default });
        } else if let Some(w) = call.outputs.iter().find(|w| w.name == spec.name) {
            outputs.push(ReplyOutput { name: spec.name.clone(), tensor, binary: w.binary });
        }
    }
    if !call.outputs.is_empty() {
        // Answer in the order the client asked.
        outputs.sort_by_key(|o| call.outputs.iter().position(|w| w.name == o.name));
    }
    if let Some(log) = obs.log() {
        log.output_tensors(&outputs);
    }
    Ok(InferReply { model_name: call.model, model_version: loaded.version.to_string(), id: call.id, outputs })
}
