//! The one error type of the serving layer. Transports map each variant to an HTTP status and a
//! gRPC code in one place (the server crate); messages are written for the person who sent the
//! request: they name the model, the input, the expected and the received value.

use recserve_engine::EngineError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServingError {
    #[error("unknown model '{model}'")]
    ModelNotFound { model: String },
    #[error("unknown version '{version}' of model '{model}'")]
    VersionNotFound { model: String, version: String },
    #[error("model '{model}' is not ready: {reason}")]
    NotReady { model: String, reason: String },
    #[error("{0}")]
    InvalidInput(String),
    #[error("model '{model}' version {version} is overloaded: its queue of {capacity} requests is full; retry later")]
    Overloaded { model: String, version: u64, capacity: usize },
    #[error("inference failed for model '{model}' version {version}: {reason}")]
    Inference { model: String, version: u64, reason: String },
    #[error("server is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Repository(String),
    /// A deployment change that does not fit the current state: a canary already running, a
    /// version that fails the gate, a model unloaded through the API.
    #[error("{0}")]
    Deployment(String),
    /// A deployment change with wrong arguments: a percent out of range, a bad arm name, an
    /// uploaded model that fails the validation gate.
    #[error("{0}")]
    BadDeployment(String),
}

impl From<crate::deployment::DeployError> for ServingError {
    fn from(e: crate::deployment::DeployError) -> ServingError {
        use crate::deployment::DeployError;
        match e {
            DeployError::Conflict(m) => ServingError::Deployment(m),
            DeployError::Invalid(m) => ServingError::BadDeployment(m),
        }
    }
}

impl ServingError {
    pub(crate) fn inference(model: &str, version: u64, e: impl std::fmt::Display) -> ServingError {
        ServingError::Inference { model: model.to_string(), version, reason: e.to_string() }
    }

    /// Maps engine errors: input problems are the caller's, the rest are ours.
    pub(crate) fn from_engine(model: &str, version: u64, e: EngineError) -> ServingError {
        match e {
            EngineError::BadInput { .. } | EngineError::InputCount { .. } | EngineError::Tensor(_) => {
                ServingError::InvalidInput(format!("model '{model}': {e}"))
            }
            other => ServingError::inference(model, version, other),
        }
    }
}
