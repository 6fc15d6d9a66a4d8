//! Command-line arguments of `recserve bench` ([`BenchArgs`]) and the concurrency sweep syntax
//! ([`ConcurrencyRange`]).
//!
//! Two load modes: closed loop (`--concurrency`, the default: each worker sends again as soon as
//! its answer arrives) and open loop (`--request-rate`: requests leave on a fixed schedule
//! whatever the answers, and latency counts from the scheduled time, so queueing in the server
//! shows up instead of slowing the load down — no coordinated omission). Two request kinds: V2
//! inference (`--model`) and recommendations (`--recommend`, `POST /v1/recommend`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::BoolishValueParser;

use crate::LoadgenError;

/// Options of a benchmark against an Open Inference Protocol (KServe V2) server or recserve's
/// recommendation API.
///
/// Every flag can also be given as an environment variable `RECSERVE_BENCH_<FLAG>`; a flag on
/// the command line wins over the variable.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Base URL of the server (plain HTTP; a path prefix is kept).
    #[arg(long, env = "RECSERVE_BENCH_URL", default_value = "http://127.0.0.1:8000", value_name = "URL")]
    pub url: String,

    /// Name of the model to send inference requests to (required unless --recommend).
    #[arg(
        long,
        env = "RECSERVE_BENCH_MODEL",
        value_name = "NAME",
        default_value = "",
        hide_default_value = true,
        required_unless_present = "recommend"
    )]
    pub model: String,

    /// Model version; without it the server picks its default version.
    #[arg(long, env = "RECSERVE_BENCH_MODEL_VERSION", value_name = "VERSION")]
    pub model_version: Option<String>,

    /// Number of concurrent workers, each with its own keep-alive connection, each sending its
    /// next request as soon as the previous answer arrives (closed loop). Not used with
    /// --request-rate.
    #[arg(
        long,
        env = "RECSERVE_BENCH_CONCURRENCY",
        default_value_t = 1,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=MAX_CONCURRENCY as i64)
    )]
    pub concurrency: u32,

    /// Sweep several concurrency levels, one report each: START:END[:STEP], END included.
    /// STEP is added (`1:8:2` → 1,3,5,7; default step 1); prefix it with `x` or `*` to multiply
    /// instead (`1:64:x2` → 1,2,4,…,64). Wins over --concurrency.
    #[arg(
        long,
        env = "RECSERVE_BENCH_CONCURRENCY_RANGE",
        value_name = "START:END[:STEP]",
        value_parser = ConcurrencyRange::from_str
    )]
    pub concurrency_range: Option<ConcurrencyRange>,

    /// Rows per request: the size of the batch dimension (the first dimension when the model
    /// declares it as -1). Other variable dimensions are sent as 1.
    #[arg(
        long,
        env = "RECSERVE_BENCH_ROWS",
        default_value_t = 1,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..=1_000_000)
    )]
    pub rows: u64,

    /// Open loop: send requests at this constant rate (requests per second), one every 1/N s
    /// whatever the answers, instead of the closed loop. Latency is measured from each
    /// request's scheduled send time, so time spent waiting for a free connection (queueing)
    /// counts (no coordinated omission). Several rates, comma-separated (`250,500,1000`), give
    /// one report each. A duration run sends exactly rate × duration measured requests (plus
    /// rate × warm-up before them).
    #[arg(
        long,
        env = "RECSERVE_BENCH_REQUEST_RATE",
        value_name = "N[,N...]",
        value_delimiter = ',',
        value_parser = parse_rate
    )]
    pub request_rate: Vec<f64>,

    /// Open loop: most requests in flight at once (one keep-alive connection each). A request
    /// whose time comes while all are busy waits, and its wait counts in its latency.
    #[arg(
        long,
        env = "RECSERVE_BENCH_MAX_IN_FLIGHT",
        default_value_t = 64,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=MAX_CONCURRENCY as i64)
    )]
    pub max_in_flight: u32,

    /// Send recommendation requests (`POST /v1/recommend`, JSON) instead of V2 inference
    /// requests; --model, --model-version, --rows, --input-data and --binary do not apply.
    /// The bodies come from --bodies, or else are drawn from the synthetic demo shop's
    /// shoppers (`Shop::next_action`: about 55 % home_feed and 45 % search, 5 % unknown users,
    /// k = --k), the same stream whatever the server, for a given --seed.
    #[arg(
        long,
        env = "RECSERVE_BENCH_RECOMMEND",
        value_parser = BoolishValueParser::new(),
        default_value_t = false,
        num_args = 0,
        default_missing_value = "true",
        conflicts_with_all = ["model_version", "input_data", "binary"]
    )]
    pub recommend: bool,

    /// With --recommend: a file of request bodies, one JSON object per line (blank lines
    /// skipped), sent in order and cycled.
    #[arg(long, env = "RECSERVE_BENCH_BODIES", value_name = "FILE", requires = "recommend")]
    pub bodies: Option<PathBuf>,

    /// With --recommend and no --bodies: `k` of the generated requests.
    #[arg(
        long,
        env = "RECSERVE_BENCH_K",
        default_value_t = 20,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub k: u32,

    /// With --recommend and no --bodies: seed of the simulated shoppers' requests.
    #[arg(long, env = "RECSERVE_BENCH_SEED", default_value_t = 7, value_name = "N")]
    pub seed: u64,

    /// Measured time per concurrency level, in seconds (fractions allowed).
    #[arg(
        long,
        env = "RECSERVE_BENCH_DURATION",
        default_value_t = 10.0,
        value_name = "SECS",
        value_parser = parse_positive_secs
    )]
    pub duration: f64,

    /// Measure exactly this many requests per concurrency level instead of a duration
    /// (wins over --duration). Warm-up requests come on top of them.
    #[arg(
        long,
        env = "RECSERVE_BENCH_REQUESTS",
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub requests: Option<u64>,

    /// Unmeasured warm-up before each concurrency level, in seconds (0 for none).
    #[arg(
        long,
        env = "RECSERVE_BENCH_WARMUP",
        default_value_t = 1.0,
        value_name = "SECS",
        value_parser = parse_non_negative_secs
    )]
    pub warmup: f64,

    /// A V2 inference request body (JSON) to send as is, instead of one generated from the
    /// model's metadata. With --binary its tensors are re-encoded with the binary extension.
    #[arg(long, env = "RECSERVE_BENCH_INPUT_DATA", value_name = "FILE")]
    pub input_data: Option<PathBuf>,

    /// Send tensors with the binary tensor data extension (JSON header followed by raw
    /// little-endian bytes) and ask for binary outputs, instead of JSON tensors.
    #[arg(
        long,
        env = "RECSERVE_BENCH_BINARY",
        value_parser = BoolishValueParser::new(),
        default_value_t = false,
        num_args = 0,
        default_missing_value = "true"
    )]
    pub binary: bool,

    /// Also write the reports as a JSON array to FILE (`-` for stdout, the table then goes to
    /// stderr).
    #[arg(long, env = "RECSERVE_BENCH_JSON_OUTPUT", value_name = "FILE")]
    pub json_output: Option<PathBuf>,

    /// Per-request timeout in milliseconds; a request that takes longer counts as an error and
    /// its connection is reopened. 0 disables the timeout.
    #[arg(long, env = "RECSERVE_BENCH_TIMEOUT_MS", default_value_t = 10_000, value_name = "MS")]
    pub timeout_ms: u64,

    /// Do not print progress lines (once a second, to stderr) during the run.
    #[arg(
        long,
        short = 'q',
        env = "RECSERVE_BENCH_QUIET",
        value_parser = BoolishValueParser::new(),
        default_value_t = false,
        num_args = 0,
        default_missing_value = "true"
    )]
    pub quiet: bool,
}

impl BenchArgs {
    /// Arguments with the documented defaults for `model`.
    pub fn new(model: impl Into<String>) -> Self {
        BenchArgs {
            url: "http://127.0.0.1:8000".to_owned(),
            model: model.into(),
            model_version: None,
            concurrency: 1,
            concurrency_range: None,
            request_rate: Vec::new(),
            max_in_flight: 64,
            recommend: false,
            bodies: None,
            k: 20,
            seed: 7,
            rows: 1,
            duration: 10.0,
            requests: None,
            warmup: 1.0,
            input_data: None,
            binary: false,
            json_output: None,
            timeout_ms: 10_000,
            quiet: false,
        }
    }

    /// True for an open-loop run (`--request-rate`).
    pub fn open_loop(&self) -> bool {
        !self.request_rate.is_empty()
    }

    /// The concurrency levels this run measures, in order.
    pub fn concurrency_levels(&self) -> Vec<u32> {
        match &self.concurrency_range {
            Some(range) => range.levels(),
            None => vec![self.concurrency],
        }
    }

    /// Checks values that clap cannot (the struct may also be built by hand).
    pub(crate) fn validate(&self) -> Result<(), LoadgenError> {
        let bad = |arg, reason: &str| Err(LoadgenError::InvalidArgument { arg, reason: reason.to_owned() });
        if self.model.is_empty() && !self.recommend {
            return bad("--model", "is required (or --recommend for /v1/recommend)");
        }
        if self.recommend && (self.input_data.is_some() || self.binary || self.model_version.is_some()) {
            return bad("--recommend", "cannot be combined with --input-data, --binary or --model-version");
        }
        if self.bodies.is_some() && !self.recommend {
            return bad("--bodies", "needs --recommend");
        }
        if self.k == 0 {
            return bad("--k", "must be at least 1");
        }
        if let Some(rate) = self.request_rate.iter().find(|r| !(r.is_finite() && **r > 0.0 && **r <= MAX_RATE)) {
            return bad("--request-rate", &format!("{rate} is not a rate between 0 and 1000000 requests/s"));
        }
        if self.max_in_flight == 0 || self.max_in_flight > MAX_CONCURRENCY {
            return bad("--max-in-flight", "must be between 1 and 100000");
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return bad("--concurrency", "must be between 1 and 100000");
        }
        if self.rows == 0 {
            return bad("--rows", "must be at least 1");
        }
        if self.requests == Some(0) {
            return bad("--requests", "must be at least 1");
        }
        if !(self.duration.is_finite() && self.duration > 0.0 && self.duration <= MAX_SECS) {
            return bad("--duration", "must be a positive number of seconds (at most 1e7)");
        }
        if !(self.warmup.is_finite() && self.warmup >= 0.0 && self.warmup <= MAX_SECS) {
            return bad("--warmup", "must be zero or a positive number of seconds (at most 1e7)");
        }
        if let Some(range) = &self.concurrency_range
            && (range.levels().is_empty() || range.end > MAX_CONCURRENCY)
        {
            return bad("--concurrency-range", "must give levels between 1 and 100000");
        }
        Ok(())
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        (self.timeout_ms > 0).then(|| Duration::from_millis(self.timeout_ms))
    }
}

/// Highest accepted --request-rate, in requests per second.
const MAX_RATE: f64 = 1e6;

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of requests per second"))?;
    if !(v.is_finite() && v > 0.0 && v <= MAX_RATE) {
        return Err(format!("{s:?} must be greater than 0 and at most 1000000 requests per second"));
    }
    Ok(v)
}

/// Most concurrent workers accepted.
const MAX_CONCURRENCY: u32 = 100_000;

/// Longest accepted --duration and --warmup (about 115 days).
const MAX_SECS: f64 = 1e7;

fn parse_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || v > MAX_SECS {
        return Err(format!("{s:?} is not a usable number of seconds"));
    }
    Ok(v)
}

fn parse_positive_secs(s: &str) -> Result<f64, String> {
    let v = parse_secs(s)?;
    if v <= 0.0 {
        return Err(format!("{s:?} must be greater than 0"));
    }
    Ok(v)
}

fn parse_non_negative_secs(s: &str) -> Result<f64, String> {
    let v = parse_secs(s)?;
    if v < 0.0 {
        return Err(format!("{s:?} must not be negative"));
    }
    Ok(v)
}

/// How a concurrency sweep goes from one level to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Add this many workers (≥ 1).
    Add(u32),
    /// Multiply the number of workers by this factor (≥ 2).
    Multiply(u32),
}

/// A concurrency sweep `START:END[:STEP]`, END included; see [`BenchArgs::concurrency_range`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencyRange {
    pub start: u32,
    pub end: u32,
    pub step: Step,
}

impl ConcurrencyRange {
    /// The levels of the sweep: from `start`, stepping while the level stays ≤ `end`.
    pub fn levels(&self) -> Vec<u32> {
        let mut levels = Vec::new();
        let mut level = self.start;
        while level <= self.end {
            levels.push(level);
            let next = match self.step {
                Step::Add(n) => level.checked_add(n),
                Step::Multiply(n) => level.checked_mul(n),
            };
            match next {
                Some(next) if next > level => level = next,
                _ => break,
            }
        }
        levels
    }
}

impl FromStr for ConcurrencyRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || format!("{s:?} is not START:END[:STEP] (e.g. 1:16, 4:32:4 or 1:64:x2)");
        let parts: Vec<&str> = s.trim().split(':').map(str::trim).collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(syntax());
        }
        let num = |p: &str| p.parse::<u32>().map_err(|_| syntax());
        let start = num(parts[0])?;
        let end = num(parts[1])?;
        if start == 0 {
            return Err(format!("{s:?}: START must be at least 1"));
        }
        if end < start {
            return Err(format!("{s:?}: END must not be less than START"));
        }
        if end > MAX_CONCURRENCY {
            return Err(format!("{s:?}: END must be at most 100000"));
        }
        let step = match parts.get(2) {
            None => Step::Add(1),
            Some(p) => match p.strip_prefix(['x', 'X', '*']) {
                Some(factor) => {
                    let factor = num(factor)?;
                    if factor < 2 {
                        return Err(format!("{s:?}: a multiplying STEP must be at least x2"));
                    }
                    Step::Multiply(factor)
                }
                None => {
                    let add = num(p)?;
                    if add == 0 {
                        return Err(format!("{s:?}: STEP must be at least 1"));
                    }
                    Step::Add(add)
                }
            },
        };
        Ok(ConcurrencyRange { start, end, step })
    }
}

impl fmt::Display for ConcurrencyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Step::Add(n) => write!(f, "{}:{}:{}", self.start, self.end, n),
            Step::Multiply(n) => write!(f, "{}:{}:x{}", self.start, self.end, n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_add_and_multiply() {
        let r: ConcurrencyRange = "1:8:2".parse().expect("parse");
        assert_eq!(r.levels(), vec![1, 3, 5, 7]);
        let r: ConcurrencyRange = "1:4".parse().expect("parse");
        assert_eq!(r.levels(), vec![1, 2, 3, 4]);
        let r: ConcurrencyRange = "1:64:x2".parse().expect("parse");
        assert_eq!(r.levels(), vec![1, 2, 4, 8, 16, 32, 64]);
        let r: ConcurrencyRange = "2:50:*3".parse().expect("parse");
        assert_eq!(r.levels(), vec![2, 6, 18]);
        let r: ConcurrencyRange = "5:5".parse().expect("parse");
        assert_eq!(r.levels(), vec![5]);
        assert_eq!(r.to_string(), "5:5:1");
    }

    #[test]
    fn bad_ranges_are_rejected() {
        for bad in ["", "4", "0:4", "4:2", "1:4:0", "1:4:x1", "a:b", "1:2:3:4", "1:4:x"] {
            assert!(bad.parse::<ConcurrencyRange>().is_err(), "{bad:?} accepted");
        }
    }
}
