//! Per-client limits on the data plane (V2 inference on both transports, `/v1/recommend`,
//! `/v1/feedback`): at most [`crate::Limits::max_in_flight_per_client`] requests of one client
//! at a time, and at most [`crate::Limits::request_timeout`] per request.
//!
//! A client is its token when it presented one (so clients behind one proxy are still told
//! apart), else its IP address, else — a transport that knows neither — one shared "anonymous"
//! client. A client over its share is answered at once with 429 / `RESOURCE_EXHAUSTED`: its
//! burst never takes queue places or engine time from the others, whose accepted requests keep
//! their latency. A request over its time is answered 504 / `DEADLINE_EXCEEDED` and its work is
//! dropped (a queued job whose caller left is skipped by the batcher). Both refusals are counted
//! in `recserve_limit_refusals_total{limit="client_concurrency"|"timeout"}` and logged at most
//! once per second per kind, so a flood cannot flood the log too.

use crate::auth::Identity;
use crate::error::ApiError;
use recserve_telemetry::Registry;
use recserve_telemetry::metrics::CounterVec;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// The metric counting refusals by limit.
pub const REFUSALS_METRIC: &str = "recserve_limit_refusals_total";

/// Who a request belongs to, for its concurrency share.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The token it presented (its id).
    Token(String),
    /// Its peer address.
    Address(IpAddr),
    /// Neither is known.
    Anonymous,
}

impl ClientKey {
    /// The client of a request authenticated as `identity` (if any) from `peer` (if known).
    pub fn of(identity: Option<&Identity>, peer: Option<IpAddr>) -> ClientKey {
        match (identity, peer) {
            (Some(identity), _) => ClientKey::Token(identity.token_id.clone()),
            (None, Some(ip)) => ClientKey::Address(ip),
            (None, None) => ClientKey::Anonymous,
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::Token(id) => write!(f, "token {id}"),
            ClientKey::Address(ip) => write!(f, "client {ip}"),
            ClientKey::Anonymous => f.write_str("anonymous clients"),
        }
    }
}

/// Requests in flight per client, and the refusal counter.
#[derive(Default)]
pub struct ClientLimiter {
    in_flight: Mutex<HashMap<ClientKey, usize>>,
    refusals: OnceLock<Option<CounterVec>>,
    /// Unix second of the last refusal log line, per kind (concurrency, timeout).
    logged: [AtomicI64; 2],
}

impl fmt::Debug for ClientLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientLimiter").field("clients", &self.lock().len()).finish_non_exhaustive()
    }
}

/// One admitted request's place in its client's share; dropping it frees the place.
#[derive(Debug)]
pub struct ClientPermit {
    limiter: Arc<ClientLimiter>,
    key: ClientKey,
}

impl Drop for ClientPermit {
    fn drop(&mut self) {
        let mut map = self.limiter.lock();
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl ClientLimiter {
    /// Counts refusals in `registry` from now on (the first registry given wins).
    pub fn count_in(&self, registry: &Registry) {
        self.refusals.get_or_init(|| {
            registry
                .counter_vec(REFUSALS_METRIC, "Data-plane requests refused by a per-client limit.", &["limit"])
                .map_err(|err| tracing::warn!(%err, "cannot register {REFUSALS_METRIC}"))
                .ok()
        });
    }

    /// Admits one request of `key` when it has fewer than `limit` in flight (0: no limit, and
    /// no permit); otherwise the 429 answer, naming the client and the limit.
    pub fn admit(self: &Arc<Self>, key: ClientKey, limit: usize) -> Result<Option<ClientPermit>, ApiError> {
        if limit == 0 {
            return Ok(None);
        }
        {
            let mut map = self.lock();
            let n = map.entry(key.clone()).or_insert(0);
            if *n < limit {
                *n += 1;
                return Ok(Some(ClientPermit { limiter: self.clone(), key }));
            }
        }
        self.refused(0, "client_concurrency", || format!("{key} is at its limit of {limit} requests in flight"));
        Err(ApiError::Overloaded(format!(
            "{key} already has {limit} requests in flight, the most one client may have \
             (--max-in-flight-per-client); retry when one has been answered"
        )))
    }

    /// Runs `work` for at most `limit` (`None`: no limit); past it, the 504 answer.
    pub async fn within<T>(
        &self,
        limit: Option<Duration>,
        work: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let Some(limit) = limit else { return work.await };
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => {
                self.refused(1, "timeout", || format!("a request took longer than {limit:?}"));
                Err(ApiError::Timeout(format!(
                    "the request was not answered within {} ms (--request-timeout-ms) and was abandoned",
                    limit.as_millis()
                )))
            }
        }
    }

    /// Requests of `key` in flight now.
    pub fn in_flight(&self, key: &ClientKey) -> usize {
        self.lock().get(key).copied().unwrap_or(0)
    }

    fn refused(&self, kind: usize, limit: &str, what: impl FnOnce() -> String) {
        if let Some(c) = self.refusals.get().and_then(Option::as_ref).and_then(|f| f.with(&[limit]).ok()) {
            c.inc();
        }
        let now = recserve_telemetry::store::now_ms() / 1000;
        if self.logged[kind].swap(now, Ordering::Relaxed) != now {
            tracing::warn!(limit, "request refused by a per-client limit: {}", what());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, usize>> {
        // Only counts change under the lock; a panic cannot leave them half-written.
        self.in_flight.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a REST path is data plane (limited per client).
pub fn is_data_plane(path: &str) -> bool {
    path.ends_with("/infer") || matches!(path.trim_end_matches('/'), "/v1/recommend" | "/v1/feedback")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_share_and_the_places_come_back() {
        let limiter = Arc::new(ClientLimiter::default());
        let a = ClientKey::Token("tok_a".into());
        let b = ClientKey::Address("10.0.0.2".parse().unwrap());
        let first = limiter.admit(a.clone(), 2).unwrap();
        let second = limiter.admit(a.clone(), 2).unwrap();
        let refused = limiter.admit(a.clone(), 2).unwrap_err();
        assert!(refused.to_string().contains("token tok_a already has 2 requests in flight"), "{refused}");
        assert!(limiter.admit(b.clone(), 2).unwrap().is_some(), "another client is not affected");
        drop(first);
        assert_eq!(limiter.in_flight(&a), 1);
        let third = limiter.admit(a.clone(), 2).unwrap();
        drop((second, third));
        assert_eq!(limiter.in_flight(&a), 0);
        assert!(limiter.lock().is_empty(), "idle clients leave no entry behind");
        assert!(limiter.admit(a, 0).unwrap().is_none(), "0 is no limit");
    }

    #[test]
    fn data_plane_paths() {
        assert!(is_data_plane("/v2/models/m/infer"));
        assert!(is_data_plane("/v2/models/m/versions/2/infer"));
        assert!(is_data_plane("/v1/recommend"));
        assert!(is_data_plane("/v1/feedback/"));
        assert!(!is_data_plane("/metrics"));
        assert!(!is_data_plane("/v2/health/ready"));
        assert!(!is_data_plane("/api/v1/deployments/ranker/rollback"));
    }

    #[tokio::test]
    async fn slow_work_is_abandoned_at_the_limit() {
        let limiter = ClientLimiter::default();
        let slow = limiter.within(Some(Duration::from_millis(20)), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, ApiError>(())
        });
        let e = slow.await.unwrap_err();
        assert!(matches!(e, ApiError::Timeout(_)), "{e}");
        assert_eq!(e.http_status(), axum::http::StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(e.grpc_code(), tonic::Code::DeadlineExceeded);
        let fast = limiter.within(Some(Duration::from_secs(5)), async { Ok::<_, ApiError>(7) });
        assert_eq!(fast.await.unwrap(), 7);
    }
}
