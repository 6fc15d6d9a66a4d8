//! Inference engine layer: owns the in-memory tensor type shared by every other crate, the
//! model signature (names, datatypes, shapes of inputs and outputs), and the [`Engine`] trait
//! that runs one batch synchronously. The tract implementation lives in [`tract_engine`].
//! Nothing here is async and nothing knows about HTTP.

// Unit tests may unwrap; the workspace lint is for library code.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod json;
#[cfg(feature = "proptest")]
pub mod strategies;
mod tensor;
#[cfg(test)]
mod test_models;
pub mod tract_engine;
mod tree_ensemble_classifier;
mod tree_ensemble_regressor;
mod tree_scores;

pub use tensor::{DataType, Tensor, TensorData, TensorError};
pub use tract_engine::TractEngine;

use std::fmt;

/// The declared shape of one dimension: a fixed size, or variable (`-1` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Dim {
    Fixed(usize),
    Variable,
}

impl Dim {
    /// The V2 protocol's number for this dimension (`-1` when variable).
    pub fn to_wire(self) -> i64 {
        match self {
            Dim::Fixed(n) => n as i64,
            Dim::Variable => -1,
        }
    }

    /// Whether a concrete size fits this declared dimension.
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Dim::Fixed(m) => m == n,
            Dim::Variable => true,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Variable => write!(f, "-1"),
        }
    }
}

/// Name, datatype and declared shape of one model input or output.
///
/// `shape` is the full shape including the batch dimension when the model has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<Dim>,
}

impl TensorSpec {
    /// The shape as the V2 protocol prints it (`-1` for variable dimensions).
    pub fn wire_shape(&self) -> Vec<i64> {
        self.shape.iter().map(|d| d.to_wire()).collect()
    }
}

/// Inputs and outputs of a loaded model, in the model's own order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSignature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// True when the first dimension of every input and output is the batch dimension
    /// (declared symbolic, unnamed or unknown in the file), so rows of several requests
    /// can be concatenated into one run.
    pub batched: bool,
}

/// Errors of the engine layer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot read model file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("cannot load model {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("input '{name}': {reason}")]
    BadInput { name: String, reason: String },
    #[error("model expects {expected} inputs, received {received}")]
    InputCount { expected: usize, received: usize },
    #[error("inference failed: {0}")]
    Run(String),
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// A loaded model that runs one batch at a time.
///
/// `run` is synchronous and may take milliseconds: callers run it on dedicated threads,
/// never on the async runtime. Inputs come in the order of `signature().inputs`, outputs are
/// returned in the order of `signature().outputs`.
pub trait Engine: Send + Sync + 'static {
    fn signature(&self) -> &ModelSignature;
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EngineError>;
}
