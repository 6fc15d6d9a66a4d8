//! What the store logs: [`RequestRecord`] (one per served request), [`ServiceRecord`] (one per
//! tracing event) and [`LogRecord`], what the writer's channel carries. Also the level ordering
//! used by "at least this level" queries.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// One served request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    /// The request id (cut to 255 characters when stored).
    pub request_id: String,
    /// When it was received, unix milliseconds.
    pub time_ms: i64,
    /// The replica that served it.
    pub replica: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// Model version that served it.
    pub version: Option<String>,
    /// Deployment arm (stable, canary, A/B arm).
    pub arm: Option<String>,
    /// Pipeline (scenario), if any.
    pub pipeline: Option<String>,
    /// Pseudonymised user id ([`crate::Pseudonymizer`]).
    pub user: Option<String>,
    /// The raw user id, only when explicitly allowed by configuration.
    pub raw_user: Option<String>,
    /// Input features as JSON text, or a digest when over the size cap ([`crate::input_or_digest`]).
    pub input: Option<String>,
    /// Outputs or top-k items, JSON text.
    pub output: Option<String>,
    /// Latency per stage: (stage name, milliseconds). Names are the server's own static
    /// strings when recorded (no allocation per stage), owned when read back.
    pub stages: Vec<(Cow<'static, str>, f64)>,
    /// End-to-end latency, milliseconds.
    pub latency_ms: f64,
    /// HTTP-style status: 200 ok, 4xx/5xx errors.
    pub status: u16,
    /// Error message for failed requests.
    pub error: Option<String>,
}

impl RequestRecord {
    /// A record with the id and time set, status 200 and everything else empty.
    pub fn new(request_id: impl Into<String>, time_ms: i64) -> Self {
        Self {
            request_id: request_id.into(),
            time_ms,
            replica: None,
            model: None,
            version: None,
            arm: None,
            pipeline: None,
            user: None,
            raw_user: None,
            input: None,
            output: None,
            stages: Vec::new(),
            latency_ms: 0.0,
            status: 200,
            error: None,
        }
    }
}

/// One service log event (a tracing event).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ServiceRecord {
    /// When, unix milliseconds.
    pub time_ms: i64,
    /// The replica that logged it.
    pub replica: Option<String>,
    /// ERROR, WARN, INFO, DEBUG or TRACE (stored upper-case).
    pub level: String,
    /// The tracing target (module path).
    pub target: String,
    /// The message.
    pub message: String,
    /// The event's other fields, a JSON object as text.
    pub fields: String,
    /// The request the event belongs to, if any.
    pub request_id: Option<String>,
}

/// What the log writer's channel carries.
#[derive(Clone, Debug, PartialEq)]
pub enum LogRecord {
    /// A request log record.
    Request(RequestRecord),
    /// A service log record.
    Service(ServiceRecord),
}

impl LogRecord {
    /// The request record, if this is one.
    pub fn as_request(&self) -> Option<&RequestRecord> {
        match self {
            LogRecord::Request(r) => Some(r),
            LogRecord::Service(_) => None,
        }
    }

    /// The service record, if this is one.
    pub fn as_service(&self) -> Option<&ServiceRecord> {
        match self {
            LogRecord::Service(r) => Some(r),
            LogRecord::Request(_) => None,
        }
    }
}

impl From<RequestRecord> for LogRecord {
    fn from(r: RequestRecord) -> Self {
        LogRecord::Request(r)
    }
}

impl From<ServiceRecord> for LogRecord {
    fn from(r: ServiceRecord) -> Self {
        LogRecord::Service(r)
    }
}

/// The numeric order of a level (TRACE 1 … ERROR 5), `None` for an unknown name.
/// Case-insensitive; `WARNING` is `WARN`.
pub fn level_number(level: &str) -> Option<i32> {
    match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some(1),
        "DEBUG" => Some(2),
        "INFO" => Some(3),
        "WARN" | "WARNING" => Some(4),
        "ERROR" => Some(5),
        _ => None,
    }
}

/// The canonical upper-case name stored for `level` (unknown names are kept, upper-cased, and
/// ordered as INFO).
pub(crate) fn normalize_level(level: &str) -> (String, i32) {
    match level_number(level) {
        Some(4) => ("WARN".to_string(), 4),
        Some(n) => (level.trim().to_ascii_uppercase(), n),
        None => (level.trim().to_ascii_uppercase(), 3),
    }
}
