//! Time helpers shared by the crate: unix milliseconds ↔ RFC 3339 (the format of every
//! Prometheus and Alertmanager API), serde adapters for both, and Prometheus durations
//! (`1h30m`, `5m`, `90s`, `500ms`, `2d`, `1w`, `1y`).

use chrono::{DateTime, SecondsFormat, Utc};

/// Alertmanager's zero time, the `endsAt` of an alert that is still firing.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The current time in unix milliseconds.
pub fn now_ms() -> i64 {
    recserve_telemetry::store::now_ms()
}

/// Formats unix milliseconds as RFC 3339 in UTC (`2024-01-02T03:04:05.678Z`).
pub fn rfc3339(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => ZERO_TIME.to_string(),
    }
}

/// Parses an RFC 3339 time into unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}

/// Serde adapter: `i64` unix ms as an RFC 3339 string.
pub mod serde_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serializes.
    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*ms))
    }

    /// Deserializes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339(&s).ok_or_else(|| D::Error::custom(format!("invalid RFC 3339 time {s:?}")))
    }
}

/// Serde adapter: `Option<i64>` unix ms as an RFC 3339 string or null.
pub mod serde_opt_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serializes.
    pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_str(&super::rfc3339(*ms)),
            None => s.serialize_none(),
        }
    }

    /// Deserializes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => super::parse_rfc3339(&s)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("invalid RFC 3339 time {s:?}"))),
        }
    }
}

/// Parses a Prometheus duration (`[0-9]+(ms|s|m|h|d|w|y)`, units in decreasing order, each at
/// most once; `0` alone is allowed) into milliseconds: the query API's parser
/// ([`recserve_telemetry::api::parse_prometheus_duration`]), so rule files and queries agree.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    recserve_telemetry::api::parse_prometheus_duration(s)
}

/// Formats milliseconds as a Prometheus duration (`1h30m`, `0s`).
pub fn format_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (u, size) in recserve_telemetry::api::DURATION_UNITS {
        if rest >= size {
            out.push_str(&format!("{}{u}", rest / size));
            rest %= size;
        }
    }
    out
}
