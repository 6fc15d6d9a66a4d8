//! The serving crate's `config.toml` parser and validator (`ModelConfig::parse`), then what the
//! gate does with an accepted config before the model takes traffic: the version policy picks
//! from the versions on disk, the `[[input]]`/`[[output]]` overrides tighten the model file's
//! signature, and the warm-up batch is built from the result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recserve_engine::{DataType, Dim, ModelSignature, TensorSpec};
use recserve_serving::ModelConfig;
use recserve_serving::gate::{apply_overrides, check_warmup_size, warmup_inputs};

fn signature() -> ModelSignature {
    let spec = |name: &str, datatype, shape: Vec<Dim>| TensorSpec { name: name.into(), datatype, shape };
    ModelSignature {
        inputs: vec![
            spec("user_features", DataType::F32, vec![Dim::Variable, Dim::Fixed(4)]),
            spec("item_ids", DataType::I64, vec![Dim::Variable, Dim::Variable]),
            spec("query", DataType::Bytes, vec![Dim::Variable]),
        ],
        outputs: vec![spec("score", DataType::F32, vec![Dim::Variable, Dim::Fixed(1)])],
        batched: true,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = ModelConfig::parse(text, "models/fuzz/config.toml") else { return };
    let _ = config.version_policy.select(&[3, 1, 2, 10, u64::MAX]);
    let Ok(sig) = apply_overrides(&signature(), &config) else { return };
    if config.warmup_rows > 0 && check_warmup_size(&sig, config.warmup_rows).is_ok() {
        let inputs = warmup_inputs(&sig, config.warmup_rows);
        assert_eq!(inputs.len(), sig.inputs.len());
    }
});
