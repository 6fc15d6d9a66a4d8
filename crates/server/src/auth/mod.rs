//! Authentication with bearer tokens and roles, on both transports.
//!
//! Roles ([`Role`]): `admin` (tokens, configuration) ⊇ `operator` (deploy, roll back, silence,
//! reload rules and tables, load/unload models) ⊇ `viewer` (everything read-only: dashboard
//! data, queries, logs, alerts, audit, metadata, `/metrics`), and `inference` (V2 inference,
//! `/v1/recommend`, `/v1/feedback` only; like every token, it may also read model metadata,
//! readiness and `/v1/scenarios`, which clients read before they call). Admin and operator tokens may call
//! inference too (an operator checking a canary by hand should not need a second token); a
//! viewer may not (reading the dashboard must not spend model capacity). [`policy`] maps every
//! endpoint to the role it needs.
//!
//! Tokens live hashed in the store (`recserve_store::tokens`). [`Auth`] keeps an in-memory
//! table hash → (id, name, role, expiry, revoked), built by [`Auth::reload`] at start, after
//! every change made through the API, and every few seconds ([`Auth::start_refresh`], which
//! picks up tokens made by the CLI or by other replicas and writes `last_used` lazily); a
//! request never reaches the store. A presented token is hashed (SHA-256) and looked up;
//! comparing in constant time is unnecessary because what is compared is the hash of the
//! caller's own guess, and timing reveals at most where that hash sits in a hash map, nothing
//! about any stored secret.
//!
//! Modes ([`AuthMode`]): `auto` (the default) enforces as soon as the store holds any token,
//! revoked and expired ones included, so revoking every token never opens the server; `required`
//! always enforces; `off` never does. Whether a server may start open is `recserve serve`'s
//! decision (loopback, or `--allow-unauthenticated`).
//!
//! Enforcement: [`require`] is the REST middleware, [`GrpcAuthLayer`] wraps the gRPC server.
//! No or a wrong token → 401 / `UNAUTHENTICATED`, too low a role → 403 / `PERMISSION_DENIED`;
//! each refusal is a `warn` event (path, role needed, token id and name when known, never the
//! secret) and a count in `recserve_auth_failures_total{reason}`. An accepted request carries
//! its [`Identity`] in its extensions, which `crate::audit::Actor` turns into the audit
//! trail's actor `token:<name>`. [`api`] holds the token API and the dashboard's sign-in.

pub mod api;
mod grpc;
pub mod policy;

pub use grpc::GrpcAuthLayer;
pub use policy::{Access, grpc_access, rest_access};

use crate::AppState;
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use recserve_store::{Store, StoreError, StoredToken};
use recserve_telemetry::metrics::{CounterVec, Registry};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The metric counting refused requests, by reason.
pub const FAILURES_METRIC: &str = "recserve_auth_failures_total";

/// How often a running server re-reads the tokens (and writes their last use).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
    Viewer,
    Inference,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Viewer, Role::Inference];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Inference => "inference",
        }
    }

    /// Whether a token with this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        use Role::*;
        match needed {
            Admin => self == Admin,
            Operator => matches!(self, Admin | Operator),
            Viewer => matches!(self, Admin | Operator | Viewer),
            Inference => matches!(self, Admin | Operator | Inference),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: the roles are admin, operator, viewer, inference"))
    }
}

/// When authentication is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// As soon as the store holds a token.
    #[default]
    Auto,
    /// Always (no token yet: only the open endpoints answer).
    Required,
    /// Never.
    Off,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Auto => "auto",
            AuthMode::Required => "required",
            AuthMode::Off => "off",
        }
    }
}

impl FromStr for AuthMode {
    type Err = String;

    fn from_str(s: &str) -> Result<AuthMode, String> {
        match s {
            "auto" => Ok(AuthMode::Auto),
            "required" => Ok(AuthMode::Required),
            "off" => Ok(AuthMode::Off),
            _ => Err(format!("unknown auth mode {s:?}: expected auto, required or off")),
        }
    }
}

/// Who made an authenticated request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub token_id: String,
    pub name: String,
    pub role: Role,
}

impl Identity {
    /// The audit trail's actor: `token:<name>`.
    pub fn actor(&self) -> String {
        format!("token:{}", self.name)
    }
}

/// Why a request was refused. The reason label of each is bounded (see [`Refusal::reason`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer <token>`.
    Malformed,
    /// No such token.
    Unknown,
    /// The token's expiry has passed.
    Expired(Identity),
    /// The token was revoked.
    Revoked(Identity),
    /// The token's role does not include the one needed.
    Forbidden { identity: Identity, needed: Role },
}

impl Refusal {
    /// The `reason` label of `recserve_auth_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::Unknown => "unknown",
            Refusal::Expired(_) => "expired",
            Refusal::Revoked(_) => "revoked",
            Refusal::Forbidden { .. } => "forbidden",
        }
    }

    /// The token's identity, when the token was recognised.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Refusal::Expired(i) | Refusal::Revoked(i) | Refusal::Forbidden { identity: i, .. } => Some(i),
            _ => None,
        }
    }

    /// The error answered (401 or 403), in the server's error format.
    pub fn error(&self, what: &str) -> ApiError {
        match self {
            Refusal::Missing => ApiError::Unauthenticated(format!(
                "authentication required for {what}: send `Authorization: Bearer <token>` (an admin creates tokens with `recserve token create`)"
            )),
            Refusal::Malformed => ApiError::Unauthenticated(
                "malformed Authorization header: expected `Bearer <token>`, one token of visible ASCII".to_string(),
            ),
            Refusal::Unknown => ApiError::Unauthenticated("the bearer token is not valid".to_string()),
            Refusal::Expired(i) => ApiError::Unauthenticated(format!("the token {:?} has expired", i.name)),
            Refusal::Revoked(i) => ApiError::Unauthenticated(format!("the token {:?} was revoked", i.name)),
            Refusal::Forbidden { identity, needed } => ApiError::Forbidden(format!(
                "the token {:?} has role {}; {what} needs role {needed}{}",
                identity.name,
                identity.role,
                match needed {
                    Role::Viewer => " (or operator, admin)",
                    Role::Operator => " (or admin)",
                    Role::Inference => " (or operator, admin)",
                    Role::Admin => "",
                }
            )),
        }
    }
}

/// One token of the in-memory table.
#[derive(Debug)]
struct Entry {
    identity: Identity,
    expires_ms: Option<i64>,
    revoked: bool,
    /// When a request last used it (unix ms, 0: not since the last reload).
    used_ms: AtomicI64,
}

#[derive(Debug, Default)]
struct Table {
    by_hash: HashMap<String, Arc<Entry>>,
    /// The store holds at least one token (of any state): `auto` enforces.
    any: bool,
}

/// The token table and the enforcement policy shared by both transports.
pub struct Auth {
    mode: AuthMode,
    store: Option<Store>,
    table: RwLock<Arc<Table>>,
    failures: Option<CounterVec>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("mode", &self.mode).field("enforcing", &self.enforcing()).finish_non_exhaustive()
    }
}

impl Auth {
    /// Authentication in `mode` over the tokens of `store` (call [`Auth::reload`] before
    /// serving); refusals are counted in `registry` when given.
    pub fn new(mode: AuthMode, store: Option<Store>, registry: Option<&Registry>) -> Arc<Auth> {
        let failures = registry.and_then(|r| {
            r.counter_vec(FAILURES_METRIC, "Requests refused by authentication, by reason.", &["reason"])
                .map_err(|err| tracing::warn!(%err, "cannot register {FAILURES_METRIC}"))
                .ok()
        });
        Arc::new(Auth { mode, store, table: RwLock::new(Arc::new(Table::default())), failures })
    }

    /// No authentication (the state tests and benchmarks start from).
    pub fn off() -> Arc<Auth> {
        Auth::new(AuthMode::Off, None, None)
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Whether requests must carry a token now.
    pub fn enforcing(&self) -> bool {
        match self.mode {
            AuthMode::Off => false,
            AuthMode::Required => true,
            AuthMode::Auto => self.table().any,
        }
    }

    /// The store the tokens live in.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes the last use of tokens used since the previous reload, then re-reads the tokens
    /// from the store. Returns how many there are.
    pub async fn reload(&self) -> Result<usize, StoreError> {
        let Some(store) = &self.store else { return Ok(0) };
        let used: Vec<(String, i64)> = self
            .table()
            .by_hash
            .values()
            .filter_map(|e| {
                let at = e.used_ms.swap(0, Ordering::Relaxed);
                (at > 0).then(|| (e.identity.token_id.clone(), at))
            })
            .collect();
        if let Err(e) = store.touch_tokens(&used).await {
            tracing::warn!(error = %e, "cannot record when tokens were last used");
        }
        let tokens = store.token_hashes().await?;
        let n = tokens.len();
        let table = Arc::new(build_table(tokens));
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = table;
        Ok(n)
    }

    /// Reloads every `every` until `stop` resolves (errors are logged; the table in use stays).
    pub fn start_refresh(
        self: &Arc<Self>,
        every: Duration,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let auth = self.clone();
        tokio::spawn(async move {
            tokio::pin!(stop);
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tick.tick() => {
                        if let Err(e) = auth.reload().await {
                            tracing::warn!(error = %e, "cannot re-read the tokens; the ones in memory stay in use");
                        }
                    }
                }
            }
            // Last uses since the last tick are written on the way out.
            let _ = auth.reload().await;
        })
    }

    /// The identity of a presented secret, if it is a usable token.
    pub fn verify_secret(&self, secret: &str) -> Result<Identity, Refusal> {
        let hash = recserve_store::tokens::hash_secret(secret);
        let table = self.table();
        let entry = table.by_hash.get(&hash).ok_or(Refusal::Unknown)?;
        if entry.revoked {
            return Err(Refusal::Revoked(entry.identity.clone()));
        }
        let now = recserve_telemetry::store::now_ms();
        if entry.expires_ms.is_some_and(|e| e <= now) {
            return Err(Refusal::Expired(entry.identity.clone()));
        }
        entry.used_ms.store(now, Ordering::Relaxed);
        Ok(entry.identity.clone())
    }

    /// Decides a request: `Ok(Some(identity))` authenticated, `Ok(None)` allowed without one
    /// (an open endpoint, or not enforcing and no usable token given), `Err` refused.
    pub fn check(&self, authorization: Option<&HeaderValue>, access: Access) -> Result<Option<Identity>, Refusal> {
        let enforcing = self.enforcing();
        let needed = match access {
            Access::Need(role) if enforcing => Some(role),
            Access::AnyToken if enforcing => None,
            // Open, or not enforcing: a usable token still names the actor.
            _ => return Ok(authorization.and_then(|h| bearer(h).ok()).and_then(|s| self.verify_secret(s).ok())),
        };
        let secret = bearer(authorization.ok_or(Refusal::Missing)?)?;
        let identity = self.verify_secret(secret)?;
        if let Some(needed) = needed
            && !identity.role.allows(needed)
        {
            return Err(Refusal::Forbidden { identity, needed });
        }
        Ok(Some(identity))
    }

    /// Logs and counts a refusal of `what` (e.g. `POST /api/v1/tokens`).
    pub fn refused(&self, refusal: &Refusal, what: &str, access: Access) {
        if let Some(c) = self.failures.as_ref().and_then(|f| f.with(&[refusal.reason()]).ok()) {
            c.inc();
        }
        let needed = match access {
            Access::Need(r) => r.as_str(),
            Access::AnyToken => "any",
            Access::Open => "none",
        };
        let identity = refusal.identity();
        tracing::warn!(
            request = what,
            needed,
            reason = refusal.reason(),
            token_id = identity.map(|i| i.token_id.as_str()),
            token_name = identity.map(|i| i.name.as_str()),
            "request refused by authentication"
        );
    }

    /// The role of a usable token named `name` (for the audit trail's `role` column).
    pub fn role_of(&self, name: &str) -> Option<Role> {
        let now = recserve_telemetry::store::now_ms();
        self.table()
            .by_hash
            .values()
            .find(|e| e.identity.name == name && !e.revoked && e.expires_ms.is_none_or(|x| x > now))
            .map(|e| e.identity.role)
    }
}

fn build_table(tokens: Vec<StoredToken>) -> Table {
    let any = !tokens.is_empty();
    let mut by_hash = HashMap::with_capacity(tokens.len());
    for t in tokens {
        let role = match t.record.role.parse::<Role>() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(token_id = %t.record.id, error = %e, "a stored token has an unknown role; it is refused");
                continue;
            }
        };
        let entry = Entry {
            identity: Identity { token_id: t.record.id, name: t.record.name, role },
            expires_ms: t.record.expires_ms,
            revoked: t.record.revoked_ms.is_some(),
            used_ms: AtomicI64::new(0),
        };
        by_hash.insert(t.hash, Arc::new(entry));
    }
    Table { by_hash, any }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer(value: &HeaderValue) -> Result<&str, Refusal> {
    let text = value.to_str().map_err(|_| Refusal::Malformed)?;
    let (scheme, token) = text.trim().split_once(' ').ok_or(Refusal::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(char::is_whitespace) {
        return Err(Refusal::Malformed);
    }
    Ok(token)
}

/// The REST middleware: lets the request through with its [`Identity`] in its extensions, or
/// answers 401 / 403 (see the module docs).
pub async fn require(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let access = rest_access(request.method(), request.uri().path());
    match state.auth.check(request.headers().get(header::AUTHORIZATION), access) {
        Ok(identity) => {
            if let Some(identity) = identity {
                request.extensions_mut().insert(identity);
            }
            next.run(request).await
        }
        Err(refusal) => {
            let what = format!("{} {}", request.method(), request.uri().path());
            state.auth.refused(&refusal, &what, access);
            refusal_response(&refusal, &what)
        }
    }
}

/// The REST answer to a refusal: the error body, with `WWW-Authenticate` on a 401.
pub fn refusal_response(refusal: &Refusal, what: &str) -> Response {
    let mut response = refusal.error(what).into_response();
    let challenge = match refusal {
        Refusal::Forbidden { .. } => None,
        Refusal::Missing => Some(r#"Bearer realm="recserve""#),
        _ => Some(r#"Bearer realm="recserve", error="invalid_token""#),
    };
    if let Some(c) = challenge {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest_and_inference_is_apart() {
        use Role::*;
        assert!(Admin.allows(Operator) && Admin.allows(Viewer) && Admin.allows(Inference) && Admin.allows(Admin));
        assert!(Operator.allows(Viewer) && Operator.allows(Inference) && !Operator.allows(Admin));
        assert!(Viewer.allows(Viewer) && !Viewer.allows(Operator) && !Viewer.allows(Inference));
        assert!(Inference.allows(Inference) && !Inference.allows(Viewer) && !Inference.allows(Operator));
        let e = "root".parse::<Role>().unwrap_err();
        assert!(e.contains("admin, operator, viewer, inference"), "{e}");
        assert_eq!("viewer".parse::<Role>(), Ok(Viewer));
    }

    #[test]
    fn bearer_headers() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(bearer(&h("Bearer rs_abc")), Ok("rs_abc"));
        assert_eq!(bearer(&h("bearer  rs_abc ")), Ok("rs_abc"));
        for bad in ["rs_abc", "Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Bearer "] {
            assert_eq!(bearer(&h(bad)), Err(Refusal::Malformed), "{bad}");
        }
        assert_eq!(bearer(&HeaderValue::from_bytes(b"Bearer \xff").unwrap()), Err(Refusal::Malformed));
    }

    #[test]
    fn off_lets_everything_through() {
        let auth = Auth::off();
        assert!(!auth.enforcing());
        assert_eq!(auth.check(None, Access::Need(Role::Admin)), Ok(None));
        let required = Auth::new(AuthMode::Required, None, None);
        assert_eq!(required.check(None, Access::Need(Role::Viewer)), Err(Refusal::Missing));
        assert_eq!(required.check(None, Access::Open), Ok(None));
    }
}
