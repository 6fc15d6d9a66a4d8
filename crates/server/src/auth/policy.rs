//! Which role each endpoint needs: one table for REST ([`rest_access`]) and one for gRPC
//! ([`grpc_access`]), so the whole policy reads in one place.
//!
//! - open: the Kubernetes probes (`/v2/health/live`, `/v2/health/ready`, gRPC `ServerLive` and
//!   `ServerReady`), the dashboard's static files, `GET /api/v1/auth/status` and
//!   `POST /api/v1/auth/sign-in` (which checks the token it is given itself);
//! - any token ([`Access::AnyToken`]): what a client reads before it calls — server and model
//!   metadata and readiness (REST `GET /v2`, `/v2/models/{m}[/versions/{v}][/ready]`; gRPC
//!   `ServerMetadata`, `ModelMetadata`, `ModelReady`: tritonclient asks for them before `infer`)
//!   and `/v1/scenarios` (the dashboard's viewers and the shop's clients both list them);
//! - inference ([`Role::Inference`]): V2 inference (REST and gRPC), `/v1/recommend`, `/v1/feedback`;
//! - operator ([`Role::Operator`]): deployment changes, silences, rule reloads, table reloads, repository
//!   load/unload;
//! - admin ([`Role::Admin`]): `/api/v1/tokens`;
//! - viewer ([`Role::Viewer`]): everything else (metadata, statistics, queries, logs, alerts, rules,
//!   audit, experiments, drift, deployments listing, `/metrics`), and unknown paths, so an
//!   unauthenticated caller learns nothing about which endpoints exist.

use super::Role;
use axum::http::Method;

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, even when authentication is enforced.
    Open,
    /// Any usable token, whatever its role.
    AnyToken,
    /// A token whose role includes this one.
    Need(Role),
}

/// The access a REST request needs.
pub fn rest_access(method: &Method, path: &str) -> Access {
    let path = path.trim_end_matches('/');
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let post = method == Method::POST;
    match parts.as_slice() {
        ["v2", "health", "live" | "ready"] => Access::Open,
        [] | ["dashboard", ..] => Access::Open,
        ["api", "v1", "auth", "status"] => Access::Open,
        ["api", "v1", "auth", "sign-in"] => Access::Open,
        ["v2", "models", _, "infer"] | ["v2", "models", _, "versions", _, "infer"] => Access::Need(Role::Inference),
        ["v2", "models", "stats"] => Access::Need(Role::Viewer),
        ["v2"]
        | ["v2", "models", _]
        | ["v2", "models", _, "ready"]
        | ["v2", "models", _, "versions", _]
        | ["v2", "models", _, "versions", _, "ready"]
            if method == Method::GET =>
        {
            Access::AnyToken
        }
        ["v1", "scenarios"] => Access::AnyToken,
        ["v1", "recommend" | "feedback"] => Access::Need(Role::Inference),
        ["v2", "repository", "models", _, "load" | "unload"] => Access::Need(Role::Operator),
        ["v1", "tables", "reload"] => Access::Need(Role::Operator),
        ["api", "v1", "rules", "reload"] | ["-", "reload"] => Access::Need(Role::Operator),
        ["api", "v2", "silences"] if post => Access::Need(Role::Operator),
        ["api", "v2", "silence", _] if method == Method::DELETE => Access::Need(Role::Operator),
        ["api", "v1", "deployments", ..] if post => Access::Need(Role::Operator),
        ["api", "v1", "tokens", ..] => Access::Need(Role::Admin),
        _ => Access::Need(Role::Viewer),
    }
}

/// The access a gRPC call needs, from its path `/inference.GRPCInferenceService/<Method>`.
pub fn grpc_access(path: &str) -> Access {
    let method = path.rsplit('/').next().unwrap_or("");
    match method {
        "ServerLive" | "ServerReady" => Access::Open,
        "ServerMetadata" | "ModelMetadata" | "ModelReady" => Access::AnyToken,
        "ModelInfer" | "ModelStreamInfer" => Access::Need(Role::Inference),
        "RepositoryModelLoad"
        | "RepositoryModelUnload"
        | "SystemSharedMemoryRegister"
        | "SystemSharedMemoryUnregister"
        | "CudaSharedMemoryRegister"
        | "CudaSharedMemoryUnregister"
        | "TraceSetting"
        | "LogSettings" => Access::Need(Role::Operator),
        _ => Access::Need(Role::Viewer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(method: Method, path: &str) -> Access {
        rest_access(&method, path)
    }

    #[test]
    fn rest_table() {
        use Access::*;
        use Role::*;
        assert_eq!(need(Method::GET, "/v2/health/live"), Open);
        assert_eq!(need(Method::GET, "/v2/health/ready"), Open);
        assert_eq!(need(Method::GET, "/"), Open);
        assert_eq!(need(Method::GET, "/dashboard/js/app.js"), Open);
        assert_eq!(need(Method::POST, "/api/v1/auth/sign-in"), Open);
        assert_eq!(need(Method::POST, "/v2/models/m/infer"), Need(Inference));
        assert_eq!(need(Method::POST, "/v2/models/m/versions/2/infer"), Need(Inference));
        assert_eq!(need(Method::POST, "/v1/recommend"), Need(Inference));
        assert_eq!(need(Method::GET, "/v1/scenarios"), AnyToken);
        assert_eq!(need(Method::GET, "/v2/models/m"), AnyToken);
        assert_eq!(need(Method::GET, "/v2/models/m/versions/1/ready"), AnyToken);
        assert_eq!(need(Method::GET, "/v2"), AnyToken);
        assert_eq!(need(Method::GET, "/v2/models/stats"), Need(Viewer));
        assert_eq!(need(Method::GET, "/v2/models/m/stats"), Need(Viewer));
        assert_eq!(need(Method::GET, "/v2/models/m/config"), Need(Viewer));
        assert_eq!(need(Method::POST, "/v2/repository/index"), Need(Viewer));
        assert_eq!(need(Method::POST, "/v2/repository/models/m/load"), Need(Operator));
        assert_eq!(need(Method::POST, "/api/v1/query"), Need(Viewer));
        assert_eq!(need(Method::GET, "/metrics"), Need(Viewer));
        assert_eq!(need(Method::GET, "/api/v2/silences"), Need(Viewer));
        assert_eq!(need(Method::POST, "/api/v2/silences"), Need(Operator));
        assert_eq!(need(Method::DELETE, "/api/v2/silence/x"), Need(Operator));
        assert_eq!(need(Method::GET, "/api/v2/silence/x"), Need(Viewer));
        assert_eq!(need(Method::POST, "/-/reload"), Need(Operator));
        assert_eq!(need(Method::GET, "/api/v1/deployments"), Need(Viewer));
        assert_eq!(need(Method::POST, "/api/v1/deployments/ranker/rollback"), Need(Operator));
        assert_eq!(need(Method::GET, "/api/v1/tokens"), Need(Admin));
        assert_eq!(need(Method::GET, "/api/v1/fleet"), Need(Viewer));
        assert_eq!(need(Method::POST, "/api/v1/fleet/query_range"), Need(Viewer));
        assert_eq!(need(Method::DELETE, "/api/v1/tokens/tok_1"), Need(Admin));
        assert_eq!(need(Method::GET, "/no/such/thing"), Need(Viewer));
        assert_eq!(need(Method::POST, "/v1/tables/reload/"), Need(Operator), "a trailing slash changes nothing");
    }

    #[test]
    fn grpc_table() {
        let p = |m: &str| grpc_access(&format!("/inference.GRPCInferenceService/{m}"));
        assert_eq!(p("ServerLive"), Access::Open);
        assert_eq!(p("ModelInfer"), Access::Need(Role::Inference));
        assert_eq!(p("ModelMetadata"), Access::AnyToken);
        assert_eq!(p("ModelReady"), Access::AnyToken);
        assert_eq!(p("ModelStatistics"), Access::Need(Role::Viewer));
        assert_eq!(p("RepositoryModelUnload"), Access::Need(Role::Operator));
    }
}
