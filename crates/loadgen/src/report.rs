//! Results of one concurrency level or request rate ([`Report`]) and how they are printed and
//! saved.

use std::fmt;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::LoadgenError;

/// Measured results of one concurrency level (closed loop) or request rate (open loop).
///
/// `requests` counts every measured request that got an answer or failed, errors included;
/// throughput, rows/s and latencies cover only successful (HTTP 200) requests. In an open-loop
/// report, latencies count from each request's scheduled send time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The model, or `/v1/recommend` for recommendation requests.
    pub model: String,
    /// Recommendation requests (`POST /v1/recommend`) rather than V2 inference.
    pub recommend: bool,
    pub binary: bool,
    /// Closed loop: concurrent workers. Open loop: the most requests in flight at once.
    pub concurrency: u32,
    /// Open loop: the scheduled rate, requests per second; absent for the closed loop.
    pub request_rate: Option<f64>,
    /// Rows per request.
    pub rows: u64,
    pub requests: u64,
    pub errors: u64,
    /// The most frequent distinct errors (at most [`MAX_ERROR_KINDS`]), most frequent first.
    pub error_messages: Vec<ErrorCount>,
    /// From the end of warm-up to the last answer, in seconds.
    pub duration_s: f64,
    /// Successful requests per second.
    pub throughput_rps: f64,
    /// Rows of successful requests per second.
    pub rows_per_s: f64,
    pub latency_ms: LatencySummary,
    /// Open loop: how late measured requests left after their scheduled time (the load
    /// generator's own timer and waiting for a free connection), in milliseconds; included in
    /// `latency_ms`. Absent for the closed loop.
    pub send_lag_ms: Option<LatencySummary>,
}

/// Latency percentiles of successful requests, in milliseconds (all 0 when there were none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// One distinct error and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    /// HTTP status, absent for transport errors (refused connection, timeout, reset).
    pub status: Option<u16>,
    /// The server's `{"error": ...}` message, or the transport error.
    pub message: String,
    pub count: u64,
}

/// How many distinct error messages a report keeps.
pub const MAX_ERROR_KINDS: usize = 10;

impl LatencySummary {
    pub(crate) fn from_histogram(h: &hdrhistogram::Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        // The histogram holds microseconds.
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

const HEADER: &str = "concurrency  rows   requests   errors        req/s       rows/s   p50 ms   p90 ms   p95 ms   p99 ms   max ms  mean ms";
const RATE_HEADER: &str = "rate req/s   rows   requests   errors        req/s       rows/s   p50 ms   p90 ms   p95 ms   p99 ms   max ms  mean ms";

/// The header line matching [`Report`]'s `Display` for closed-loop reports.
pub fn table_header() -> &'static str {
    HEADER
}

/// The header line matching [`Report`]'s `Display` for open-loop (`--request-rate`) reports:
/// the first column is the scheduled rate instead of the concurrency.
pub fn rate_table_header() -> &'static str {
    RATE_HEADER
}

impl fmt::Display for Report {
    /// One table row; see [`table_header`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_ms;
        let first = match self.request_rate {
            Some(rate) => format!("{rate:>11.1}"),
            None => format!("{:>11}", self.concurrency),
        };
        write!(
            f,
            "{first} {:>5} {:>10} {:>8} {:>12.1} {:>12.1} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            self.rows,
            self.requests,
            self.errors,
            self.throughput_rps,
            self.rows_per_s,
            l.p50,
            l.p90,
            l.p95,
            l.p99,
            l.max,
            l.mean
        )
    }
}

/// Formats a sweep as a table: a title, the header, one row per report, then the errors.
pub fn format_table(reports: &[Report]) -> String {
    let mut out = String::new();
    let open_loop = reports.first().is_some_and(|r| r.request_rate.is_some());
    if let Some(first) = reports.first() {
        if first.recommend {
            out.push_str("POST /v1/recommend · JSON bodies");
        } else {
            out.push_str(&format!(
                "model {} · {} tensors · {} row(s) per request",
                first.model,
                if first.binary { "binary" } else { "JSON" },
                first.rows
            ));
        }
        if open_loop {
            out.push_str(&format!(
                " · open loop, at most {} in flight, latency from the scheduled send time",
                first.concurrency
            ));
        }
        out.push('\n');
    }
    out.push_str(if open_loop { RATE_HEADER } else { HEADER });
    out.push('\n');
    for r in reports {
        out.push_str(&r.to_string());
        out.push('\n');
    }
    for r in reports {
        if let (Some(rate), Some(lag)) = (r.request_rate, &r.send_lag_ms) {
            out.push_str(&format!(
                "send lag at {rate}/s (included above): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms\n",
                lag.p50, lag.p99, lag.max
            ));
        }
    }
    for r in reports.iter().filter(|r| r.errors > 0) {
        let level = match r.request_rate {
            Some(rate) => format!("rate {rate}/s"),
            None => format!("concurrency {}", r.concurrency),
        };
        out.push_str(&format!("errors at {level} ({} of {} requests):\n", r.errors, r.requests));
        for e in &r.error_messages {
            let status = e.status.map_or_else(|| "transport".to_owned(), |s| format!("HTTP {s}"));
            out.push_str(&format!("  {:>8} × {status}: {}\n", e.count, e.message));
        }
    }
    out
}

/// Writes [`format_table`] to `w`.
pub fn print_table(reports: &[Report], w: &mut impl Write) -> std::io::Result<()> {
    w.write_all(format_table(reports).as_bytes())?;
    w.flush()
}

/// Writes the reports as a pretty JSON array to `path` (`-` for stdout).
pub fn write_json(reports: &[Report], path: &Path) -> Result<(), LoadgenError> {
    let wrap = |source| LoadgenError::WriteOutput { path: path.to_owned(), source };
    let mut text = serde_json::to_string_pretty(reports).map_err(|e| wrap(e.into()))?;
    text.push('\n');
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes()).map_err(wrap)?;
        out.flush().map_err(wrap)
    } else {
        std::fs::write(path, text).map_err(wrap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_line_up_with_the_header() {
        let mut r = Report {
            model: "m".into(),
            recommend: false,
            binary: false,
            concurrency: 32,
            request_rate: None,
            rows: 1,
            requests: 123_456,
            errors: 2,
            error_messages: vec![ErrorCount { status: Some(400), message: "bad".into(), count: 2 }],
            duration_s: 10.0,
            throughput_rps: 12_345.4,
            rows_per_s: 12_345.4,
            latency_ms: LatencySummary { p50: 1.0, p90: 2.0, p95: 3.0, p99: 4.0, max: 5.0, mean: 1.5 },
            send_lag_ms: None,
        };
        assert_eq!(r.to_string().len(), table_header().len());
        let table = format_table(std::slice::from_ref(&r));
        assert!(table.contains("HTTP 400: bad"), "{table}");

        r.request_rate = Some(500.0);
        r.recommend = true;
        r.send_lag_ms = Some(LatencySummary { p50: 0.1, p90: 0.2, p95: 0.2, p99: 0.3, max: 0.9, mean: 0.1 });
        assert_eq!(r.to_string().len(), rate_table_header().len());
        let table = format_table(&[r]);
        assert!(table.starts_with("POST /v1/recommend"), "{table}");
        assert!(table.contains("rate req/s") && table.contains("send lag at 500/s"), "{table}");
        assert!(table.contains("errors at rate 500/s"), "{table}");
    }
}
