//! The one mapping from serving errors to what clients see: an HTTP status with
//! `{"error": "..."}` for REST, a gRPC status code for gRPC. Every transport error goes
//! through [`ApiError`].

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use recserve_serving::ServingError;

/// An error answered to a client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Serving(#[from] ServingError),
    /// The request itself is malformed (JSON syntax, binary framing, headers).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unimplemented(String),
    /// A queue is full; the client should retry later.
    #[error("{0}")]
    Overloaded(String),
    /// Something the request needs is not ready (a model still loading or unloaded).
    #[error("{0}")]
    Unavailable(String),
    /// The request conflicts with the current state (e.g. a second canary while one runs).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
    /// No usable credentials (401 / UNAUTHENTICATED).
    #[error("{0}")]
    Unauthenticated(String),
    /// Credentials whose role does not allow the request (403 / PERMISSION_DENIED).
    #[error("{0}")]
    Forbidden(String),
    /// The request ran past the server's time limit (504 / DEADLINE_EXCEEDED).
    #[error("{0}")]
    Timeout(String),
}

impl ApiError {
    pub fn http_status(&self) -> StatusCode {
        match self {
            ApiError::Serving(e) => match e {
                ServingError::ModelNotFound { .. } | ServingError::VersionNotFound { .. } => StatusCode::NOT_FOUND,
                ServingError::NotReady { .. } | ServingError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
                ServingError::InvalidInput(_) => StatusCode::BAD_REQUEST,
                ServingError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
                ServingError::Inference { .. } | ServingError::Repository(_) => StatusCode::INTERNAL_SERVER_ERROR,
                ServingError::Deployment(_) => StatusCode::CONFLICT,
                ServingError::BadDeployment(_) => StatusCode::BAD_REQUEST,
            },
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unimplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn grpc_code(&self) -> tonic::Code {
        match self.http_status() {
            StatusCode::NOT_FOUND => tonic::Code::NotFound,
            StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
            StatusCode::BAD_REQUEST => tonic::Code::InvalidArgument,
            StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::ResourceExhausted,
            StatusCode::TOO_MANY_REQUESTS => tonic::Code::ResourceExhausted,
            StatusCode::NOT_IMPLEMENTED => tonic::Code::Unimplemented,
            StatusCode::CONFLICT => tonic::Code::FailedPrecondition,
            StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
            StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
            StatusCode::GATEWAY_TIMEOUT => tonic::Code::DeadlineExceeded,
            _ => tonic::Code::Internal,
        }
    }
}

/// The JSON error body of the Open Inference Protocol.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub struct ErrorBody {
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.http_status(), Json(ErrorBody { error: self.to_string() })).into_response()
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> tonic::Status {
        tonic::Status::new(e.grpc_code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_between_transports() {
        let overloaded = ApiError::from(ServingError::Overloaded { model: "m".into(), version: 1, capacity: 3 });
        assert_eq!(overloaded.http_status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(overloaded.grpc_code(), tonic::Code::ResourceExhausted);
        let missing = ApiError::from(ServingError::ModelNotFound { model: "m".into() });
        assert_eq!(missing.http_status(), StatusCode::NOT_FOUND);
        assert_eq!(missing.grpc_code(), tonic::Code::NotFound);
        let bad = ApiError::from(ServingError::InvalidInput("x".into()));
        assert_eq!(bad.grpc_code(), tonic::Code::InvalidArgument);
        assert_eq!(ApiError::TooLarge("big".into()).http_status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(ApiError::Unauthenticated("who".into()).grpc_code(), tonic::Code::Unauthenticated);
        assert_eq!(ApiError::Forbidden("no".into()).grpc_code(), tonic::Code::PermissionDenied);
    }
}
