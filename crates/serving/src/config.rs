//! Per-model configuration: the optional `<repo>/<model>/config.toml`, its defaults, and how it
//! is parsed and checked. Knob names follow Triton's where Triton has one.
//!
//! ```toml
//! max_batch_size = 32              # rows per engine run; 0 disables batching
//! instance_count = 1               # inference threads for each loaded version
//! latency_budget_ms = 50           # p99 budget, used by alerts and the deployment gate
//!
//! [dynamic_batching]
//! max_queue_delay_microseconds = 0 # how long the first request waits for more (0: take what is queued)
//! max_queue_size = 1024            # queued requests before new ones get "overloaded" (429)
//! inline_when_idle = false         # tiny models: run on the caller's thread when nothing waits
//!
//! [version_policy]                 # one of: latest = N | all = true | specific = [1, 3]
//! latest = 1
//!
//! [[input]]                        # optional overrides of what the ONNX file says
//! name = "features"
//! dims = [16]                      # without the batch dimension; -1 for variable
//!
//! [validation]                     # samples checked before a version takes traffic
//! samples = "validation.json"      # relative to the version directory, then the model directory
//! tolerance = 1e-4
//! ```

use serde::Deserialize;
use std::path::Path;

/// Default number of rows one engine run may hold when the config does not say.
pub const DEFAULT_MAX_BATCH_SIZE: usize = 64;
/// Most elements the fixed `dims` of one `[[input]]`/`[[output]]` may give a row (2^24: 64 MB of
/// FP32). A larger number is a typo, and the warm-up batch and latency checks built from the
/// dims would try to allocate it.
pub const MAX_ROW_ELEMENTS: u64 = 1 << 24;
/// Default bound of a version's request queue.
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 1024;
/// Default absolute tolerance when checking validation samples.
pub const DEFAULT_TOLERANCE: f64 = 1e-4;

/// Everything `config.toml` may say about a model. Every field has a default, so a model
/// without a config file serves with what its ONNX file declares.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Largest number of rows in one engine run. 0 disables batching across requests.
    #[serde(default = "default_max_batch_size")]
    pub max_batch_size: usize,
    /// Inference threads per loaded version.
    #[serde(default = "default_instance_count")]
    pub instance_count: usize,
    /// The p99 latency the model should keep, in milliseconds.
    #[serde(default)]
    pub latency_budget_ms: Option<f64>,
    #[serde(default)]
    pub dynamic_batching: DynamicBatching,
    #[serde(default)]
    pub version_policy: VersionPolicy,
    #[serde(default, rename = "input")]
    pub inputs: Vec<TensorOverride>,
    #[serde(default, rename = "output")]
    pub outputs: Vec<TensorOverride>,
    #[serde(default)]
    pub validation: Option<ValidationConfig>,
    /// Rows in the synthetic warm-up batch run before validation (0 skips warm-up).
    #[serde(default = "default_warmup_rows")]
    pub warmup_rows: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            instance_count: 1,
            latency_budget_ms: None,
            dynamic_batching: DynamicBatching::default(),
            version_policy: VersionPolicy::default(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            validation: None,
            warmup_rows: 1,
        }
    }
}

fn default_max_batch_size() -> usize {
    DEFAULT_MAX_BATCH_SIZE
}
fn default_instance_count() -> usize {
    1
}
fn default_warmup_rows() -> usize {
    1
}
fn default_max_queue_size() -> usize {
    DEFAULT_MAX_QUEUE_SIZE
}
fn default_tolerance() -> f64 {
    DEFAULT_TOLERANCE
}

/// Triton's `dynamic_batching` block.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicBatching {
    /// How long the first request of a batch waits for others, in microseconds. With 0 the
    /// batch is whatever is already queued when an inference thread becomes free, which adds
    /// no latency and still batches under load.
    #[serde(default)]
    pub max_queue_delay_microseconds: u64,
    /// Requests that may wait in the queue; one more is refused at once as overloaded.
    #[serde(default = "default_max_queue_size")]
    pub max_queue_size: usize,
    /// When no request is waiting, run a request on the caller's thread (an async worker)
    /// instead of handing it to an inference thread and back. Only for models whose run takes
    /// a few tens of microseconds (the demo's user tower: ~70 µs for one row): two thread
    /// hand-offs cost more than that on a busy machine, but a longer run would hold up the
    /// async worker's other requests. Requests that find others waiting are batched as usual.
    #[serde(default)]
    pub inline_when_idle: bool,
}

impl Default for DynamicBatching {
    fn default() -> Self {
        DynamicBatching {
            max_queue_delay_microseconds: 0,
            max_queue_size: DEFAULT_MAX_QUEUE_SIZE,
            inline_when_idle: false,
        }
    }
}

/// Which versions found on disk are served.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum VersionPolicy {
    /// The N highest version numbers.
    Latest(usize),
    /// Every version on disk (`all = true`).
    All(bool),
    /// Exactly these versions.
    Specific(Vec<u64>),
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy::Latest(1)
    }
}

impl VersionPolicy {
    /// The versions to serve out of those available (any order in, ascending out).
    pub fn select(&self, available: &[u64]) -> Vec<u64> {
        let mut sorted = available.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        match self {
            VersionPolicy::Latest(n) => {
                let skip = sorted.len().saturating_sub(*n);
                sorted.split_off(skip)
            }
            VersionPolicy::All(true) => sorted,
            VersionPolicy::All(false) => VersionPolicy::Latest(1).select(&sorted),
            VersionPolicy::Specific(wanted) => sorted.into_iter().filter(|v| wanted.contains(v)).collect(),
        }
    }
}

/// An override of one input or output as the ONNX file declares it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorOverride {
    pub name: String,
    /// V2 datatype name; must agree with the file when given.
    #[serde(default)]
    pub datatype: Option<String>,
    /// Dimensions without the batch dimension; -1 for variable.
    #[serde(default)]
    pub dims: Option<Vec<i64>>,
}

/// Validation samples and how close outputs must be.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    pub samples: String,
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
}

/// A config file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("invalid {path}: {message}")]
    Parse { path: String, message: String },
}

impl ModelConfig {
    /// Reads `<model_dir>/config.toml`, or the defaults when the file is absent.
    pub fn load(model_dir: &Path) -> Result<ModelConfig, ConfigError> {
        let path = model_dir.join("config.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => ModelConfig::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ModelConfig::default()),
            Err(source) => Err(ConfigError::Io { path: path.display().to_string(), source }),
        }
    }

    /// Parses config text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ModelConfig, ConfigError> {
        let config: ModelConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: origin.to_string(), message: e.to_string() })?;
        config.check().map_err(|message| ConfigError::Parse { path: origin.to_string(), message })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.instance_count == 0 {
            return Err("instance_count must be at least 1".into());
        }
        if self.dynamic_batching.max_queue_size == 0 {
            return Err("dynamic_batching.max_queue_size must be at least 1".into());
        }
        if let VersionPolicy::Latest(0) = self.version_policy {
            return Err("version_policy.latest must be at least 1".into());
        }
        if let Some(v) = &self.validation
            && (v.tolerance.is_nan() || v.tolerance < 0.0)
        {
            return Err(format!("validation.tolerance must be a number >= 0, got {}", v.tolerance));
        }
        if let Some(b) = self.latency_budget_ms
            && (b.is_nan() || b <= 0.0)
        {
            return Err(format!("latency_budget_ms must be > 0, got {b}"));
        }
        for o in self.inputs.iter().chain(&self.outputs) {
            if let Some(d) = &o.datatype
                && recserve_engine::DataType::from_wire_name(d).is_none()
            {
                return Err(format!("'{}': unknown datatype '{d}'", o.name));
            }
            if let Some(dims) = &o.dims {
                if dims.iter().any(|d| *d < -1 || *d == 0) {
                    return Err(format!("'{}': dims must be positive or -1, got {dims:?}", o.name));
                }
                let row = dims.iter().filter(|d| **d > 0).try_fold(1u64, |acc, d| acc.checked_mul(*d as u64));
                if row.is_none_or(|n| n > MAX_ROW_ELEMENTS) {
                    return Err(format!(
                        "'{}': dims {dims:?} give a row more than {MAX_ROW_ELEMENTS} elements",
                        o.name
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_defaults() {
        assert_eq!(ModelConfig::parse("", "x").unwrap(), ModelConfig::default());
    }

    #[test]
    fn full_config_parses() {
        let c = ModelConfig::parse(
            r#"
            max_batch_size = 8
            instance_count = 2
            latency_budget_ms = 20
            [dynamic_batching]
            max_queue_delay_microseconds = 500
            max_queue_size = 10
            inline_when_idle = true
            [version_policy]
            specific = [1, 3]
            [[input]]
            name = "x"
            dims = [-1, 4]
            [validation]
            samples = "v.json"
            "#,
            "x",
        )
        .unwrap();
        assert_eq!(c.max_batch_size, 8);
        assert_eq!(c.instance_count, 2);
        assert_eq!(c.dynamic_batching.max_queue_delay_microseconds, 500);
        assert!(c.dynamic_batching.inline_when_idle);
        assert!(!ModelConfig::default().dynamic_batching.inline_when_idle);
        assert_eq!(c.version_policy, VersionPolicy::Specific(vec![1, 3]));
        assert_eq!(c.inputs[0].dims, Some(vec![-1, 4]));
        assert_eq!(c.validation.unwrap().tolerance, DEFAULT_TOLERANCE);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = ModelConfig::parse("max_batch = 3", "m/config.toml").unwrap_err().to_string();
        assert!(err.contains("m/config.toml") && err.contains("max_batch"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(ModelConfig::parse("instance_count = 0", "x").is_err());
        assert!(ModelConfig::parse("[version_policy]\nlatest = 0", "x").is_err());
        assert!(ModelConfig::parse("[[input]]\nname='a'\ndatatype='FLOAT'", "x").is_err());
        assert!(ModelConfig::parse("latency_budget_ms = -1", "x").is_err());
        // Found by fuzz/model_config: dims this large made the gate's warm-up batch (and the
        // latency check) allocate terabytes and abort the process.
        let err = ModelConfig::parse("[[input]]\nname='a'\ndims=[100000000000]", "x").unwrap_err().to_string();
        assert!(err.contains("more than 16777216 elements"), "{err}");
        assert!(ModelConfig::parse("[[input]]\nname='a'\ndims=[4096, 4097, -1]", "x").is_err());
        assert!(ModelConfig::parse("[[input]]\nname='a'\ndims=[4096, 4096, -1]", "x").is_ok());
    }

    #[test]
    fn version_policies_select() {
        let avail = [3, 1, 2, 10];
        assert_eq!(VersionPolicy::Latest(1).select(&avail), vec![10]);
        assert_eq!(VersionPolicy::Latest(2).select(&avail), vec![3, 10]);
        assert_eq!(VersionPolicy::Latest(9).select(&avail), vec![1, 2, 3, 10]);
        assert_eq!(VersionPolicy::All(true).select(&avail), vec![1, 2, 3, 10]);
        assert_eq!(VersionPolicy::Specific(vec![2, 7]).select(&avail), vec![2]);
    }
}
