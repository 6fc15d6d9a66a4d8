//! A loaded, validated model version ready for traffic: its effective signature (the file's,
//! tightened by config overrides), its batcher, its statistics, and the checks every request's
//! inputs pass before they are queued.

use crate::batcher::{BatchObserver, BatchQueue, JobTimings};
use crate::config::ModelConfig;
use crate::error::ServingError;
use crate::stats::VersionStats;
use recserve_engine::{Dim, ModelSignature, Tensor, TensorSpec};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// A request input: its name and tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub tensor: Tensor,
}

/// Identifies the file a version was loaded from, so a changed file is reloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub len: u64,
    pub modified: Option<SystemTime>,
}

impl Fingerprint {
    pub fn of(path: &std::path::Path) -> Option<Fingerprint> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Fingerprint { len: meta.len(), modified: meta.modified().ok() })
    }
}

/// A version that passed the validation gate and takes traffic.
pub struct LoadedVersion {
    pub model: String,
    pub version: u64,
    pub path: PathBuf,
    pub fingerprint: Option<Fingerprint>,
    pub signature: ModelSignature,
    pub config: Arc<ModelConfig>,
    pub stats: Arc<VersionStats>,
    pub loaded_at: SystemTime,
    pub(crate) queue: BatchQueue,
}

impl std::fmt::Debug for LoadedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedVersion").field("model", &self.model).field("version", &self.version).finish()
    }
}

impl LoadedVersion {
    /// Rows one request may carry: the configured `max_batch_size` when the model batches,
    /// otherwise 0 (the model has no batch dimension).
    pub fn max_batch_size(&self) -> usize {
        if self.signature.batched { self.config.max_batch_size } else { 0 }
    }

    /// Requests waiting in this version's queue.
    pub fn queue_depth(&self) -> usize {
        self.queue.depth()
    }

    /// Capacity of this version's queue (requests that may wait).
    pub fn queue_capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// Sets (or removes) the observer told of every batch this version executes.
    pub fn set_batch_observer(&self, observer: Option<Arc<dyn BatchObserver>>) {
        self.queue.set_observer(observer);
    }

    /// Checks the inputs, queues them for the batcher and returns the outputs in signature
    /// order.
    pub async fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<Tensor>, ServingError> {
        self.infer_timed(inputs).await.0
    }

    /// As [`LoadedVersion::infer`], also saying where the request's time went in the batcher.
    /// This is the one path that updates [`VersionStats`] for a request.
    pub async fn infer_timed(&self, inputs: Vec<NamedTensor>) -> (Result<Vec<Tensor>, ServingError>, JobTimings) {
        let started = Instant::now();
        let (ordered, rows) = match check_inputs(&self.model, &self.signature, self.config.max_batch_size, inputs) {
            Ok(v) => v,
            Err(e) => {
                self.stats.failure.inc();
                return (Err(e), JobTimings::default());
            }
        };
        let (result, timings) = self.queue.submit_timed(ordered, rows).await;
        match &result {
            Ok(_) => self.stats.success.inc(),
            Err(ServingError::Overloaded { .. }) => {}
            Err(_) => self.stats.failure.inc(),
        }
        self.stats.request_time.record(started.elapsed());
        (result, timings)
    }
}

fn shape_text(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// Orders `inputs` as the signature lists them and checks names, datatypes, shapes and the
/// batch size. Returns the ordered tensors and the number of rows (1 for unbatched models).
pub fn check_inputs(
    model: &str,
    signature: &ModelSignature,
    max_batch_size: usize,
    mut inputs: Vec<NamedTensor>,
) -> Result<(Vec<Tensor>, usize), ServingError> {
    let bad = |msg: String| ServingError::InvalidInput(format!("model '{model}': {msg}"));
    let expected_names = || signature.inputs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
    for (i, input) in inputs.iter().enumerate() {
        if !signature.inputs.iter().any(|s| s.name == input.name) {
            return Err(bad(format!("unknown input '{}'; the model's inputs are: {}", input.name, expected_names())));
        }
        if inputs[..i].iter().any(|o| o.name == input.name) {
            return Err(bad(format!("input '{}' is given twice", input.name)));
        }
    }
    let mut ordered = Vec::with_capacity(signature.inputs.len());
    let mut rows: Option<(usize, &str)> = None;
    for spec in &signature.inputs {
        let Some(pos) = inputs.iter().position(|i| i.name == spec.name) else {
            let given: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(bad(format!(
                "missing input '{}' ({} {}); the request has: [{}]",
                spec.name,
                spec.datatype,
                shape_text(&spec.shape),
                given.join(", ")
            )));
        };
        let input = inputs.swap_remove(pos);
        check_one(spec, &input.tensor).map_err(bad)?;
        if signature.batched {
            let n = input.tensor.shape[0];
            if n == 0 {
                return Err(bad(format!(
                    "input '{}' has an empty batch dimension (shape {:?})",
                    spec.name, input.tensor.shape
                )));
            }
            match rows {
                Some((m, other)) if m != n => {
                    return Err(bad(format!(
                        "inputs '{other}' and '{}' disagree on the batch size: {m} and {n} rows",
                        spec.name
                    )));
                }
                _ => rows = Some((n, &spec.name)),
            }
            if max_batch_size > 0 && n > max_batch_size {
                return Err(bad(format!(
                    "input '{}' has {n} rows, more than the model's max_batch_size of {max_batch_size}",
                    spec.name
                )));
            }
        }
        ordered.push(input.tensor);
    }
    Ok((ordered, rows.map(|r| r.0).unwrap_or(1)))
}

fn check_one(spec: &TensorSpec, tensor: &Tensor) -> Result<(), String> {
    if tensor.datatype() != spec.datatype {
        return Err(format!("input '{}' has datatype {}, expected {}", spec.name, tensor.datatype(), spec.datatype));
    }
    let fits =
        tensor.shape.len() == spec.shape.len() && spec.shape.iter().zip(&tensor.shape).all(|(d, n)| d.accepts(*n));
    if !fits {
        return Err(format!(
            "input '{}' has shape {:?}, expected {} (-1 = any size)",
            spec.name,
            tensor.shape,
            shape_text(&spec.shape)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use recserve_engine::{DataType, TensorData};

    fn sig() -> ModelSignature {
        ModelSignature {
            inputs: vec![
                TensorSpec { name: "a".into(), datatype: DataType::F32, shape: vec![Dim::Variable, Dim::Fixed(2)] },
                TensorSpec { name: "b".into(), datatype: DataType::I64, shape: vec![Dim::Variable, Dim::Fixed(1)] },
            ],
            outputs: vec![],
            batched: true,
        }
    }

    fn a(rows: usize) -> NamedTensor {
        NamedTensor {
            name: "a".into(),
            tensor: Tensor::new(vec![rows, 2], TensorData::F32(vec![0.0; rows * 2])).unwrap(),
        }
    }
    fn b(rows: usize) -> NamedTensor {
        NamedTensor { name: "b".into(), tensor: Tensor::new(vec![rows, 1], TensorData::I64(vec![0; rows])).unwrap() }
    }
    fn err(inputs: Vec<NamedTensor>) -> String {
        check_inputs("m", &sig(), 4, inputs).unwrap_err().to_string()
    }

    #[test]
    fn orders_inputs_by_signature() {
        let (ordered, rows) = check_inputs("m", &sig(), 4, vec![b(3), a(3)]).unwrap();
        assert_eq!(rows, 3);
        assert_eq!(ordered[0].datatype(), DataType::F32);
        assert_eq!(ordered[1].datatype(), DataType::I64);
    }

    #[test]
    fn each_mistake_is_named() {
        assert!(err(vec![a(1)]).contains("missing input 'b' (INT64 [-1, 1])"));
        let mut extra = b(1);
        extra.name = "c".into();
        assert!(err(vec![a(1), b(1), extra]).contains("unknown input 'c'; the model's inputs are: a, b"));
        assert!(err(vec![a(1), a(1), b(1)]).contains("given twice"));
        assert!(err(vec![a(2), b(3)]).contains("disagree on the batch size: 2 and 3"));
        assert!(err(vec![a(5), b(5)]).contains("5 rows, more than the model's max_batch_size of 4"));
        let wrong_type =
            NamedTensor { name: "b".into(), tensor: Tensor::new(vec![1, 1], TensorData::I32(vec![0])).unwrap() };
        assert!(err(vec![a(1), wrong_type]).contains("input 'b' has datatype INT32, expected INT64"));
        let wrong_shape =
            NamedTensor { name: "a".into(), tensor: Tensor::new(vec![1, 3], TensorData::F32(vec![0.0; 3])).unwrap() };
        assert!(err(vec![wrong_shape, b(1)]).contains("input 'a' has shape [1, 3], expected [-1, 2]"));
        assert!(err(vec![a(0), b(0)]).contains("empty batch"));
    }
}
