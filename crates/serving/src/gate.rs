//! The validation gate every version passes before it takes traffic: load the file, apply the
//! config's input/output overrides, warm up with a synthetic batch, and check the model's
//! validation samples (inputs, expected outputs, tolerance) when it ships them. Runs on a
//! blocking thread; a failure comes back as a sentence that says what went wrong.

use crate::batcher::{BatchOptions, BatchQueue};
use crate::config::{ModelConfig, TensorOverride};
use crate::stats::VersionStats;
use crate::version::{Fingerprint, LoadedVersion, NamedTensor, check_inputs};
use recserve_engine::json::JsonTensor;
use recserve_engine::{DataType, Dim, Engine, EngineError, ModelSignature, Tensor, TensorData, TensorSpec};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Loads an engine from a model file. The default is tract; tests substitute their own.
pub type EngineLoader = Arc<dyn Fn(&Path) -> Result<Arc<dyn Engine>, EngineError> + Send + Sync>;

/// The tract loader.
pub fn tract_loader() -> EngineLoader {
    Arc::new(|path: &Path| Ok(Arc::new(recserve_engine::TractEngine::load(path)?) as Arc<dyn Engine>))
}

/// What the gate needs to know about one version.
pub struct GateInput<'a> {
    pub model: &'a str,
    pub version: u64,
    pub model_dir: &'a Path,
    pub file: &'a Path,
    pub config: Arc<ModelConfig>,
}

/// Loads, checks and starts a version. The error is the reason, for the API and the log.
pub fn admit(input: GateInput<'_>, loader: &EngineLoader) -> Result<LoadedVersion, String> {
    let GateInput { model, version, model_dir, file, config } = input;
    let fingerprint = Fingerprint::of(file);
    let engine = loader(file).map_err(|e| format!("load failed: {e}"))?;
    let signature = apply_overrides(engine.signature(), &config)?;
    if config.warmup_rows > 0 {
        check_warmup_size(&signature, config.warmup_rows)?;
        let inputs = warmup_inputs(&signature, config.warmup_rows);
        engine.run(inputs).map_err(|e| format!("warm-up failed: {e}"))?;
    }
    if let Some(validation) = &config.validation {
        let version_dir = file.parent().unwrap_or(model_dir);
        let path = [version_dir.join(&validation.samples), model_dir.join(&validation.samples)]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "validation samples '{}' not found in {} or {}",
                    validation.samples,
                    version_dir.display(),
                    model_dir.display()
                )
            })?;
        check_samples(model, &signature, engine.as_ref(), &path, validation.tolerance)?;
    }
    let stats = Arc::new(VersionStats::default());
    let options = BatchOptions {
        max_batch_size: config.max_batch_size,
        max_queue_delay: Duration::from_micros(config.dynamic_batching.max_queue_delay_microseconds),
        max_queue_size: config.dynamic_batching.max_queue_size,
        threads: config.instance_count,
        inline_when_idle: config.dynamic_batching.inline_when_idle,
    };
    let queue = BatchQueue::start(model, version, engine, options, stats.clone())
        .map_err(|e| format!("cannot start inference threads: {e}"))?;
    Ok(LoadedVersion {
        model: model.to_string(),
        version,
        path: file.to_path_buf(),
        fingerprint,
        signature,
        config,
        stats,
        loaded_at: SystemTime::now(),
        queue,
    })
}

/// The signature the file declares, tightened by the config's `[[input]]`/`[[output]]`.
/// Public for the fuzz targets (`fuzz/`); the gate is its only caller in the product.
#[doc(hidden)]
pub fn apply_overrides(file: &ModelSignature, config: &ModelConfig) -> Result<ModelSignature, String> {
    let mut sig = file.clone();
    let apply = |specs: &mut Vec<TensorSpec>, overrides: &[TensorOverride], kind: &str| -> Result<(), String> {
        for o in overrides {
            let names = specs.iter().map(|s| s.name.clone()).collect::<Vec<_>>().join(", ");
            let spec = specs
                .iter_mut()
                .find(|s| s.name == o.name)
                .ok_or_else(|| format!("config names {kind} '{}', but the model's {kind}s are: {names}", o.name))?;
            if let Some(dt) = &o.datatype {
                let want = DataType::from_wire_name(dt)
                    .ok_or_else(|| format!("{kind} '{}': unknown datatype '{dt}'", o.name))?;
                if want != spec.datatype {
                    return Err(format!(
                        "config says {kind} '{}' is {want}, but the model file declares {}",
                        o.name, spec.datatype
                    ));
                }
            }
            if let Some(dims) = &o.dims {
                let skip = usize::from(file.batched);
                let file_dims = &spec.shape[skip.min(spec.shape.len())..];
                if file_dims.len() != dims.len() {
                    return Err(format!(
                        "config gives {kind} '{}' dims {dims:?}, but the model file declares {} dimensions after the batch dimension",
                        o.name,
                        file_dims.len()
                    ));
                }
                let mut shape: Vec<Dim> = spec.shape[..skip.min(spec.shape.len())].to_vec();
                for (file_dim, want) in file_dims.iter().zip(dims) {
                    let want = if *want < 0 { Dim::Variable } else { Dim::Fixed(*want as usize) };
                    match (file_dim, want) {
                        (Dim::Fixed(a), Dim::Fixed(b)) if *a != b => {
                            return Err(format!(
                                "config gives {kind} '{}' dims {dims:?}, but the model file fixes a dimension at {a}",
                                o.name
                            ));
                        }
                        (Dim::Fixed(a), _) => shape.push(Dim::Fixed(*a)),
                        (Dim::Variable, w) => shape.push(w),
                    }
                }
                spec.shape = shape;
            }
        }
        Ok(())
    };
    apply(&mut sig.inputs, &config.inputs, "input")?;
    apply(&mut sig.outputs, &config.outputs, "output")?;
    Ok(sig)
}

/// Most elements one input of the warm-up batch may hold (2^26: 256 MB of FP32).
pub const MAX_WARMUP_ELEMENTS: usize = 1 << 26;

/// Refuses a warm-up batch of `rows` rows that would be too large to allocate: `warmup_rows`
/// is the config's, and a typo (`warmup_rows = 1000000000000`) aborted the process on the
/// allocation (found by fuzz/model_config).
pub fn check_warmup_size(signature: &ModelSignature, rows: usize) -> Result<(), String> {
    for spec in &signature.inputs {
        let elements = spec.shape.iter().enumerate().try_fold(1usize, |acc, (i, d)| match d {
            Dim::Fixed(n) => acc.checked_mul(*n),
            Dim::Variable if i == 0 && signature.batched => acc.checked_mul(rows),
            Dim::Variable => Some(acc),
        });
        if elements.is_none_or(|n| n > MAX_WARMUP_ELEMENTS) {
            return Err(format!(
                "the warm-up batch of {rows} rows would hold more than {MAX_WARMUP_ELEMENTS} elements of input '{}'; \
                 lower warmup_rows in config.toml",
                spec.name
            ));
        }
    }
    Ok(())
}

/// A zero-filled batch matching the signature (variable dimensions of size 1).
pub fn warmup_inputs(signature: &ModelSignature, rows: usize) -> Vec<Tensor> {
    signature
        .inputs
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec
                .shape
                .iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Dim::Fixed(n) => *n,
                    Dim::Variable if i == 0 && signature.batched => rows,
                    Dim::Variable => 1,
                })
                .collect();
            let n: usize = shape.iter().product();
            Tensor { shape, data: zeros(spec.datatype, n) }
        })
        .collect()
}

fn zeros(datatype: DataType, n: usize) -> TensorData {
    use half::f16;
    match datatype {
        DataType::Bool => TensorData::Bool(vec![false; n]),
        DataType::U8 => TensorData::U8(vec![0; n]),
        DataType::U16 => TensorData::U16(vec![0; n]),
        DataType::U32 => TensorData::U32(vec![0; n]),
        DataType::U64 => TensorData::U64(vec![0; n]),
        DataType::I8 => TensorData::I8(vec![0; n]),
        DataType::I16 => TensorData::I16(vec![0; n]),
        DataType::I32 => TensorData::I32(vec![0; n]),
        DataType::I64 => TensorData::I64(vec![0; n]),
        DataType::F16 => TensorData::F16(vec![f16::ZERO; n]),
        DataType::F32 => TensorData::F32(vec![0.0; n]),
        DataType::F64 => TensorData::F64(vec![0.0; n]),
        DataType::Bytes => TensorData::Bytes(vec![Vec::new(); n]),
    }
}

#[derive(serde::Deserialize)]
struct SampleFile<'a> {
    #[serde(borrow)]
    cases: Vec<SampleCase<'a>>,
}

#[derive(serde::Deserialize)]
struct SampleCase<'a> {
    #[serde(borrow)]
    inputs: Vec<JsonTensor<'a>>,
    #[serde(borrow)]
    outputs: Vec<JsonTensor<'a>>,
}

/// Runs every validation case and compares each expected output.
pub fn check_samples(
    model: &str,
    signature: &ModelSignature,
    engine: &dyn Engine,
    path: &Path,
    tolerance: f64,
) -> Result<(), String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read validation samples {shown}: {e}"))?;
    let file: SampleFile =
        serde_json::from_str(&text).map_err(|e| format!("invalid validation samples {shown}: {e}"))?;
    if file.cases.is_empty() {
        return Err(format!("validation samples {shown} hold no cases"));
    }
    for (n, case) in file.cases.iter().enumerate() {
        let at = |msg: String| format!("validation case {n} of {shown}: {msg}");
        let inputs = case
            .inputs
            .iter()
            .map(|t| t.to_tensor().map(|tensor| NamedTensor { name: t.name.clone(), tensor }))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| at(e.to_string()))?;
        let (ordered, _) = check_inputs(model, signature, 0, inputs).map_err(|e| at(e.to_string()))?;
        let outputs = engine.run(ordered).map_err(|e| at(format!("inference failed: {e}")))?;
        for want in &case.outputs {
            let pos = signature
                .outputs
                .iter()
                .position(|s| s.name == want.name)
                .ok_or_else(|| at(format!("the model has no output '{}'", want.name)))?;
            let want_tensor = want.to_tensor().map_err(|e| at(format!("output '{}': {e}", want.name)))?;
            compare(&outputs[pos], &want_tensor, tolerance).map_err(|e| at(format!("output '{}': {e}", want.name)))?;
        }
    }
    Ok(())
}

/// Compares a computed tensor with an expected one: floats within `tolerance`, the rest exactly.
pub fn compare(got: &Tensor, want: &Tensor, tolerance: f64) -> Result<(), String> {
    if got.shape != want.shape {
        return Err(format!("shape {:?}, expected {:?}", got.shape, want.shape));
    }
    let close = |i: usize, g: f64, w: f64| -> Result<(), String> {
        if (g - w).abs() <= tolerance || (g.is_nan() && w.is_nan()) || g == w {
            Ok(())
        } else {
            Err(format!("element {i} is {g}, expected {w} (tolerance {tolerance})"))
        }
    };
    match (&got.data, &want.data) {
        (TensorData::F32(g), TensorData::F32(w)) => {
            g.iter().zip(w).enumerate().try_for_each(|(i, (g, w))| close(i, *g as f64, *w as f64))
        }
        (TensorData::F64(g), TensorData::F64(w)) => {
            g.iter().zip(w).enumerate().try_for_each(|(i, (g, w))| close(i, *g, *w))
        }
        (TensorData::F16(g), TensorData::F16(w)) => {
            g.iter().zip(w).enumerate().try_for_each(|(i, (g, w))| close(i, g.to_f64(), w.to_f64()))
        }
        (g, w) if g.datatype() != w.datatype() => Err(format!("datatype {}, expected {}", g.datatype(), w.datatype())),
        (g, w) if g == w => Ok(()),
        _ => Err("values differ from the expected ones".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_batches_too_large_to_allocate_are_refused() {
        let spec = |shape| TensorSpec { name: "x".into(), datatype: DataType::F32, shape };
        let sig =
            ModelSignature { inputs: vec![spec(vec![Dim::Variable, Dim::Fixed(4)])], outputs: vec![], batched: true };
        assert!(check_warmup_size(&sig, 64).is_ok());
        // Found by fuzz/model_config: warmup_rows = 1000000000000 aborted the process.
        let err = check_warmup_size(&sig, 1_000_000_000_000).unwrap_err();
        assert!(err.contains("lower warmup_rows") && err.contains("'x'"), "{err}");
        assert!(check_warmup_size(&sig, usize::MAX).is_err());
        let sig = ModelSignature {
            inputs: vec![spec(vec![Dim::Fixed(1 << 20), Dim::Fixed(1 << 20)])],
            outputs: vec![],
            batched: false,
        };
        assert!(check_warmup_size(&sig, 1).is_err());
    }
}
