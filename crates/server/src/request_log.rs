//! The request log and request ids.
//!
//! This module owns the one record each client request leaves in the store (V2 inference over
//! REST and gRPC, and `/v1/recommend`), its sampling, the pseudonymisation of user ids, and the
//! request ids that correlate a request's record, its service-log events (the `request` span's
//! `request_id` field) and its answer (the `x-request-id` header or gRPC metadata).
//!
//! Records go to the store's writer through a [`LogSink`], which never blocks: a full queue drops
//! the record and counts it (`recserve_log_records_dropped_total`). Sampling is decided from the
//! request id, so it is stable for a request: the pipeline's rate when one is configured for it,
//! else the model's, else the default (1.0: every request). Failed requests are always kept; a
//! failed request that was not sampled is kept without its inputs (they were not captured).

use crate::inference::ReplyOutput;
use recserve_engine::json::NamedTensorJson;
use recserve_engine::{Tensor, TensorData};
use recserve_serving::NamedTensor;
use recserve_store::{LogRecord, LogSink, Pseudonymizer, RequestRecord};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The header (and gRPC metadata key) that carries a request id in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest request id accepted from a client; longer ones are replaced by a generated id.
pub const MAX_CLIENT_REQUEST_ID: usize = 128;

/// Generates request ids: `<process start, hex>-<counter>`, unique within a process and, in
/// practice, across restarts and replicas.
#[derive(Debug)]
pub struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        let started = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
        RequestIds { prefix: format!("{:x}", started & 0xffff_ffff_ffff), next: AtomicU64::new(1) }
    }
}

impl RequestIds {
    /// A fresh id.
    pub fn next(&self) -> String {
        format!("{}-{}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// The client's id when it is usable (1 to [`MAX_CLIENT_REQUEST_ID`] characters of letters,
    /// digits and `-_.:`), otherwise a fresh one.
    pub fn from_client(&self, given: Option<&str>) -> String {
        match given {
            Some(id) if is_valid_request_id(id) => id.to_string(),
            _ => self.next(),
        }
    }
}

/// Whether a client-given request id is kept as is.
pub fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_REQUEST_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Settings of the request log (`[request_log]` in the config file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestLogConfig {
    /// Share of successful requests recorded, 0.0 to 1.0 (failed ones are always recorded).
    pub sample_rate: f64,
    /// Rates per model name (V2 requests, and recommendations by their ranker).
    pub model_sample_rates: HashMap<String, f64>,
    /// Rates per pipeline (scenario); they win over the model's.
    pub pipeline_sample_rates: HashMap<String, f64>,
    /// Inputs whose encoding is larger than this are stored as a SHA-256 digest.
    pub max_input_bytes: usize,
    /// Store raw user ids next to their pseudonyms. Off by default: only the keyed hash is kept.
    pub store_raw_user_ids: bool,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        RequestLogConfig {
            sample_rate: 1.0,
            model_sample_rates: HashMap::new(),
            pipeline_sample_rates: HashMap::new(),
            max_input_bytes: 16 * 1024,
            store_raw_user_ids: false,
        }
    }
}

impl RequestLogConfig {
    /// Checks every rate is within 0..=1.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |what: String, r: f64| {
            (!(0.0..=1.0).contains(&r)).then(|| format!("{what} sample rate {r} is not between 0 and 1"))
        };
        if let Some(e) = bad("the default".into(), self.sample_rate) {
            return Err(e);
        }
        for (m, r) in &self.model_sample_rates {
            if let Some(e) = bad(format!("model '{m}'"), *r) {
                return Err(e);
            }
        }
        for (p, r) in &self.pipeline_sample_rates {
            if let Some(e) = bad(format!("pipeline '{p}'"), *r) {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// The request log of a server: where records go and how they are made.
pub struct RequestLog {
    sink: LogSink,
    pseudonymizer: Pseudonymizer,
    config: RequestLogConfig,
    replica: Option<String>,
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLog").field("config", &self.config).field("replica", &self.replica).finish()
    }
}

impl RequestLog {
    pub fn new(
        sink: LogSink,
        pseudonymizer: Pseudonymizer,
        config: RequestLogConfig,
        replica: Option<String>,
    ) -> RequestLog {
        RequestLog { sink, pseudonymizer, config, replica }
    }

    /// The pseudonym of a raw user id (what the store keeps, and what log queries match).
    pub fn pseudonymize(&self, raw_user: &str) -> String {
        self.pseudonymizer.pseudonymize(raw_user)
    }

    /// The writer's queue, for its statistics.
    pub fn sink(&self) -> &LogSink {
        &self.sink
    }

    fn rate(&self, model: Option<&str>, pipeline: Option<&str>) -> f64 {
        pipeline
            .and_then(|p| self.config.pipeline_sample_rates.get(p))
            .or_else(|| model.and_then(|m| self.config.model_sample_rates.get(m)))
            .copied()
            .unwrap_or(self.config.sample_rate)
    }

    /// A new record for the request `request_id`, started now.
    pub fn draft(self: &Arc<Self>, request_id: &str) -> LogDraft {
        LogDraft {
            log: self.clone(),
            sampled: None,
            record: RequestRecord {
                replica: self.replica.clone(),
                ..RequestRecord::new(request_id, recserve_telemetry::store::now_ms())
            },
        }
    }
}

/// A number in [0, 1) from the request id (FNV-1a, then MurmurHash3's finaliser so that ids
/// differing only in their last digits spread evenly), so a request is sampled or not for good.
fn unit_hash(id: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// One request's record while the request runs.
#[derive(Debug)]
pub struct LogDraft {
    log: Arc<RequestLog>,
    /// The sampling decision, once made (the model and pipeline it depends on reset it).
    sampled: Option<bool>,
    record: RequestRecord,
}

impl LogDraft {
    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.record.request_id
    }

    /// Whether this request's successful outcome is recorded (inputs and outputs are captured
    /// only then).
    pub fn sampled(&self) -> bool {
        self.sampled.unwrap_or_else(|| self.decide())
    }

    fn decide(&self) -> bool {
        let rate = self.log.rate(self.record.model.as_deref(), self.record.pipeline.as_deref());
        rate >= 1.0 || (rate > 0.0 && unit_hash(&self.record.request_id) < rate)
    }

    /// [`LogDraft::sampled`], remembered.
    fn sample(&mut self) -> bool {
        let sampled = self.sampled();
        self.sampled = Some(sampled);
        sampled
    }

    /// The model and version that serve (or were asked for).
    pub fn model(&mut self, model: &str, version: Option<&str>) {
        self.record.model = Some(truncate(model, 256));
        self.record.version = version.map(|v| truncate(v, 64));
        self.sampled = None;
    }

    /// The pipeline (scenario).
    pub fn pipeline(&mut self, pipeline: &str) {
        self.record.pipeline = Some(truncate(pipeline, 256));
        self.sampled = None;
    }

    /// The user, pseudonymised (and kept raw only when the config says so).
    pub fn user(&mut self, raw_user: &str) {
        self.record.user = Some(self.log.pseudonymize(raw_user));
        if self.log.config.store_raw_user_ids {
            self.record.raw_user = Some(raw_user.to_string());
        }
    }

    /// Time spent in one stage.
    pub fn stage(&mut self, name: &'static str, duration: Duration) {
        self.record.stages.push((name.into(), duration.as_secs_f64() * 1e3));
    }

    /// The request's input as JSON text (or its digest when over the size cap).
    pub fn input_json(&mut self, json: String) {
        if self.sample() {
            self.record.input = Some(recserve_store::input_or_digest(json, self.log.config.max_input_bytes));
        }
    }

    /// The request's input tensors (or their digest when over the size cap).
    pub fn input_tensors(&mut self, inputs: &[NamedTensor]) {
        if !self.sample() {
            return;
        }
        let cap = self.log.config.max_input_bytes;
        let size: usize = inputs.iter().map(|t| tensor_bytes(&t.tensor)).sum();
        self.record.input = Some(if size > cap {
            let mut hash = Sha256::new();
            for t in inputs {
                hash.update(t.name.as_bytes());
                hash.update(t.tensor.data.to_le_bytes());
            }
            format!("sha256:{} ({size} bytes of tensor data)", hex::encode(hash.finalize()))
        } else {
            let named: Vec<NamedTensorJson<'_>> =
                inputs.iter().map(|t| NamedTensorJson::new(&t.name, &t.tensor)).collect();
            json_text(&named, size).unwrap_or_else(|e| format!("unencodable input: {e}"))
        });
    }

    /// The answer's output tensors (up to the same size cap; larger outputs are summarised by
    /// name, type and shape).
    pub fn output_tensors(&mut self, outputs: &[ReplyOutput]) {
        if !self.sample() {
            return;
        }
        let size: usize = outputs.iter().map(|o| tensor_bytes(&o.tensor)).sum();
        let json = if size > self.log.config.max_input_bytes {
            let shapes: Vec<_> = outputs
                .iter()
                .map(|o| serde_json::json!({"name": o.name, "datatype": o.tensor.datatype().wire_name(), "shape": o.tensor.shape}))
                .collect();
            serde_json::to_string(&shapes)
        } else {
            let named: Vec<NamedTensorJson<'_>> =
                outputs.iter().map(|o| NamedTensorJson::new(&o.name, &o.tensor)).collect();
            json_text(&named, size)
        };
        self.record.output = Some(json.unwrap_or_else(|e| format!("unencodable output: {e}")));
    }

    /// The answer as JSON text.
    pub fn output_json(&mut self, json: String) {
        if self.sample() {
            self.record.output = Some(json);
        }
    }

    /// Hands the record to the writer (never waits): failed requests always, successful ones
    /// when sampled.
    pub fn finish(mut self, status: u16, error: Option<String>, latency: Duration) {
        let failed = status >= 400;
        if !failed && !self.sampled() {
            return;
        }
        self.record.status = status;
        self.record.error = error;
        self.record.latency_ms = latency.as_secs_f64() * 1e3;
        // A full queue counts the drop in the sink's statistics (exported as a metric).
        let _accepted = self.log.sink.submit(LogRecord::Request(self.record));
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// `value` as JSON text, written into a buffer sized for tensors of `data_bytes` bytes (their
/// numbers as text take a few times their binary size) instead of growing from 128 bytes.
fn json_text<T: serde::Serialize + ?Sized>(value: &T, data_bytes: usize) -> Result<String, serde_json::Error> {
    let mut buf = Vec::with_capacity(96 + data_bytes * 3);
    serde_json::to_writer(&mut buf, value)?;
    // serde_json writes UTF-8 only.
    String::from_utf8(buf).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

/// Bytes of a tensor's data.
fn tensor_bytes(t: &Tensor) -> usize {
    match &t.data {
        TensorData::Bytes(items) => items.iter().map(|b| b.len() + 4).sum(),
        data => data.len() * t.datatype().fixed_size().unwrap_or(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_sane() {
        let ids = RequestIds::default();
        assert_eq!(ids.from_client(Some("abc-123_x.y:z")), "abc-123_x.y:z");
        assert_ne!(ids.from_client(Some("has space")), "has space");
        assert_ne!(ids.from_client(Some("")), "");
        let long = "a".repeat(MAX_CLIENT_REQUEST_ID + 1);
        assert_ne!(ids.from_client(Some(&long)), long);
        assert_ne!(ids.next(), ids.next());
    }

    #[test]
    fn unit_hash_spreads_ids_evenly() {
        let ids = RequestIds::default();
        let n = 20_000;
        let below = (0..n).filter(|_| unit_hash(&ids.next()) < 0.25).count();
        let share = below as f64 / n as f64;
        assert!((share - 0.25).abs() < 0.02, "share {share}");
    }

    #[test]
    fn rates_are_validated() {
        let mut c = RequestLogConfig::default();
        assert!(c.validate().is_ok());
        c.model_sample_rates.insert("ranker".into(), 1.5);
        assert!(c.validate().unwrap_err().contains("model 'ranker'"));
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
