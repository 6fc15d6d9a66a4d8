//! Results of one concurrency level ([`Report`]) and how they are printed and saved.

use std::fmt;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::LoadgenError;

/// Measured results of one concurrency level.
///
/// `requests` counts every measured request that got an answer or failed, errors included;
/// throughput, rows/s and latencies cover only successful (HTTP 200) requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub model: String,
    pub binary: bool,
    pub concurrency: u32,
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

/// The header line matching [`Report`]'s `Display`.
pub fn table_header() -> &'static str {
    HEADER
}

impl fmt::Display for Report {
    /// One table row; see [`table_header`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_ms;
        write!(
            f,
            "{:>11} {:>5} {:>10} {:>8} {:>12.1} {:>12.1} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            self.concurrency,
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
    if let Some(first) = reports.first() {
        out.push_str(&format!(
            "model {} · {} tensors · {} row(s) per request\n",
            first.model,
            if first.binary { "binary" } else { "JSON" },
            first.rows
        ));
    }
    out.push_str(HEADER);
    out.push('\n');
    for r in reports {
        out.push_str(&r.to_string());
        out.push('\n');
    }
    for r in reports.iter().filter(|r| r.errors > 0) {
        out.push_str(&format!("errors at concurrency {} ({} of {} requests):\n", r.concurrency, r.errors, r.requests));
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
        let r = Report {
            model: "m".into(),
            binary: false,
            concurrency: 32,
            rows: 1,
            requests: 123_456,
            errors: 2,
            error_messages: vec![ErrorCount { status: Some(400), message: "bad".into(), count: 2 }],
            duration_s: 10.0,
            throughput_rps: 12_345.4,
            rows_per_s: 12_345.4,
            latency_ms: LatencySummary { p50: 1.0, p90: 2.0, p95: 3.0, p99: 4.0, max: 5.0, mean: 1.5 },
        };
        assert_eq!(r.to_string().len(), table_header().len());
        let table = format_table(&[r]);
        assert!(table.contains("HTTP 400: bad"), "{table}");
    }
}
