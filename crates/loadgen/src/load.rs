//! The two load loops.
//!
//! Closed loop ([`run_level`]): one worker task per concurrent client, each on its own
//! keep-alive connection, sending the pre-encoded request again as soon as the previous answer
//! arrives.
//!
//! Open loop ([`run_rate`]): a scheduler thread releases request `i` at `start + i / rate`
//! (`std::thread::sleep`, finer than tokio's millisecond timer) into a queue that up to
//! `max_in_flight` workers, each with its own connection, take from. Latency is measured from
//! the scheduled time, so a late send (no free connection, a slow loop) counts against the
//! server instead of silently lowering the load; the send lag itself is reported apart.
//!
//! The hot path allocates little: the bodies are shared [`Bytes`], the URI and header values are
//! cloned by reference count, latencies go into a per-worker histogram that is merged at the
//! end, and the only shared writes are relaxed counters for progress and `--requests`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};

use crate::LoadgenError;
use crate::endpoint::{Endpoint, Sender, error_message};
use crate::payload::Payload;
use crate::report::{ErrorCount, LatencySummary, MAX_ERROR_KINDS, Report};

/// Distinct error messages one worker keeps apart; the rest are lumped together.
const MAX_ERROR_KINDS_PER_WORKER: usize = 64;
/// Largest error body read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Pause after a failed connection attempt, so a dead server is not hammered in a tight loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

static INFERENCE_HEADER_CONTENT_LENGTH: HeaderName = HeaderName::from_static("inference-header-content-length");

/// Everything needed to build the request each time: one body, or several sent in turn.
#[derive(Debug)]
pub(crate) struct RequestTemplate {
    uri: Uri,
    host: HeaderValue,
    content_type: HeaderValue,
    header_len: Option<HeaderValue>,
    /// Never empty.
    bodies: Vec<Bytes>,
}

impl RequestTemplate {
    pub fn new(endpoint: &Endpoint, path: &str, payload: &Payload) -> Result<Self, LoadgenError> {
        let uri = Uri::from_maybe_shared(Bytes::copy_from_slice(path.as_bytes()))
            .map_err(|e| LoadgenError::InvalidUrl { url: format!("{}{path}", endpoint.url), reason: e.to_string() })?;
        let content_type = HeaderValue::from_static(if payload.header_len.is_some() {
            "application/octet-stream"
        } else {
            "application/json"
        });
        Ok(RequestTemplate {
            uri,
            host: endpoint.host.clone(),
            content_type,
            header_len: payload.header_len.map(HeaderValue::from),
            bodies: vec![payload.body.clone()],
        })
    }

    /// JSON requests to `path` with `bodies` (not empty), request `i` carrying body `i % len`.
    pub fn json_bodies(endpoint: &Endpoint, path: &str, bodies: Vec<Bytes>) -> Result<Self, LoadgenError> {
        if bodies.is_empty() {
            return Err(LoadgenError::Worker("no request bodies".to_owned()));
        }
        let payload = Payload { body: Bytes::new(), header_len: None, rows: 1 };
        let template = RequestTemplate::new(endpoint, path, &payload)?;
        Ok(RequestTemplate { bodies, ..template })
    }

    /// Request number `i`.
    fn build(&self, i: u64) -> Request<Full<Bytes>> {
        let body = &self.bodies[(i % self.bodies.len() as u64) as usize];
        let mut req = Request::new(Full::new(body.clone()));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.uri.clone();
        let headers = req.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(CONTENT_TYPE, self.content_type.clone());
        if let Some(len) = &self.header_len {
            headers.insert(INFERENCE_HEADER_CONTENT_LENGTH.clone(), len.clone());
        }
        req
    }
}

/// How one concurrency level runs.
#[derive(Debug, Clone)]
pub(crate) struct LevelPlan {
    pub model: String,
    pub recommend: bool,
    pub binary: bool,
    pub rows: u64,
    pub concurrency: u32,
    pub warmup: Duration,
    /// Exactly this many measured requests; else `duration`.
    pub requests: Option<u64>,
    pub duration: Duration,
    pub timeout: Option<Duration>,
    pub progress: bool,
}

struct Shared {
    endpoint: Endpoint,
    template: Arc<RequestTemplate>,
    measure_start: Instant,
    /// End of issuing in duration mode.
    measure_end: Instant,
    /// Total measured requests in count mode.
    total: Option<u64>,
    /// Tickets handed out in count mode.
    issued: AtomicU64,
    /// Answers received, warm-up included (progress only).
    completed: AtomicU64,
    /// Failed requests, warm-up included (progress only).
    failed: AtomicU64,
    timeout: Option<Duration>,
    /// Number of workers (the stride of their body numbers).
    workers: u64,
}

enum Outcome {
    Ok,
    /// A non-200 answer.
    Status(StatusCode, String),
    /// No answer: connection refused or reset, timeout, malformed response.
    Transport(String),
}

struct WorkerStats {
    /// Latencies of successful requests, in microseconds.
    latency_us: Histogram<u64>,
    /// Open loop: how late each measured request was sent after its scheduled time, in µs.
    lag_us: Histogram<u64>,
    ok: u64,
    errors: u64,
    error_kinds: HashMap<(Option<u16>, String), u64>,
    last_end: Option<Instant>,
}

impl WorkerStats {
    fn new() -> Result<Self, LoadgenError> {
        Ok(WorkerStats {
            // Auto-resizing: starts small, grows to the largest latency seen.
            latency_us: Histogram::new(3).map_err(|e| LoadgenError::Worker(format!("latency histogram: {e}")))?,
            lag_us: Histogram::new(3).map_err(|e| LoadgenError::Worker(format!("lag histogram: {e}")))?,
            ok: 0,
            errors: 0,
            error_kinds: HashMap::new(),
            last_end: None,
        })
    }

    /// Counts one finished request in the shared progress counters and, when it is measured
    /// (`Some((end, latency))`), records its latency or its error.
    fn finish(
        &mut self,
        completed: &AtomicU64,
        failed: &AtomicU64,
        outcome: Outcome,
        measured: Option<(Instant, Duration)>,
    ) {
        completed.fetch_add(1, Ordering::Relaxed);
        if !matches!(outcome, Outcome::Ok) {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        let Some((end, latency)) = measured else { return };
        self.last_end = Some(end);
        match outcome {
            Outcome::Ok => {
                self.ok += 1;
                record_latency(&mut self.latency_us, latency);
            }
            Outcome::Status(status, message) => self.record_error(Some(status.as_u16()), message),
            Outcome::Transport(message) => self.record_error(None, message),
        }
    }

    fn record_error(&mut self, status: Option<u16>, message: String) {
        self.errors += 1;
        let key = if self.error_kinds.len() < MAX_ERROR_KINDS_PER_WORKER
            || self.error_kinds.contains_key(&(status, message.clone()))
        {
            (status, message)
        } else {
            (None, "(other errors)".to_owned())
        };
        *self.error_kinds.entry(key).or_insert(0) += 1;
    }
}

/// Runs one concurrency level and reports it.
pub(crate) async fn run_level(
    endpoint: &Endpoint,
    template: Arc<RequestTemplate>,
    plan: &LevelPlan,
) -> Result<Report, LoadgenError> {
    let begin = Instant::now();
    let measure_start = begin + plan.warmup;
    let shared = Arc::new(Shared {
        endpoint: endpoint.clone(),
        template,
        measure_start,
        measure_end: measure_start + plan.duration,
        total: plan.requests,
        issued: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        timeout: plan.timeout,
        workers: u64::from(plan.concurrency),
    });

    let mut workers = Vec::with_capacity(plan.concurrency as usize);
    for w in 0..plan.concurrency {
        let stats = WorkerStats::new()?;
        workers.push(tokio::spawn(worker(Arc::clone(&shared), stats, u64::from(w))));
    }
    let progress = plan.progress.then(|| tokio::spawn(progress(Arc::clone(&shared), plan.concurrency, begin)));

    let merged = merge_workers(workers).await;
    if let Some(p) = progress {
        p.abort();
    }
    let merged = merged?;
    let kind = ReportKind {
        model: plan.model.clone(),
        recommend: plan.recommend,
        binary: plan.binary,
        rows: plan.rows,
        concurrency: plan.concurrency,
        request_rate: None,
    };
    Ok(make_report(merged, measure_start, kind))
}

/// Awaits the workers and merges their statistics.
async fn merge_workers(workers: Vec<tokio::task::JoinHandle<WorkerStats>>) -> Result<WorkerStats, LoadgenError> {
    let mut merged = WorkerStats::new()?;
    let mut join_error = None;
    for w in workers {
        match w.await {
            Ok(stats) => {
                merged.ok += stats.ok;
                merged.errors += stats.errors;
                let merge_err = |e| LoadgenError::Worker(format!("merging latencies: {e:?}"));
                merged.latency_us.add(&stats.latency_us).map_err(merge_err)?;
                merged.lag_us.add(&stats.lag_us).map_err(merge_err)?;
                for (k, n) in stats.error_kinds {
                    *merged.error_kinds.entry(k).or_insert(0) += n;
                }
                merged.last_end = merged.last_end.max(stats.last_end);
            }
            Err(e) => join_error = Some(e.to_string()),
        }
    }
    match join_error {
        Some(e) => Err(LoadgenError::Worker(e)),
        None => Ok(merged),
    }
}

/// What a report describes, apart from the measurements.
struct ReportKind {
    model: String,
    recommend: bool,
    binary: bool,
    rows: u64,
    concurrency: u32,
    request_rate: Option<f64>,
}

fn make_report(merged: WorkerStats, measure_start: Instant, kind: ReportKind) -> Report {
    let duration_s = merged.last_end.map_or(0.0, |end| end.saturating_duration_since(measure_start).as_secs_f64());
    let per_s = |n: u64| {
        if duration_s > 0.0 { n as f64 / duration_s } else { 0.0 }
    };
    let mut error_messages: Vec<ErrorCount> = merged
        .error_kinds
        .into_iter()
        .map(|((status, message), count)| ErrorCount { status, message, count })
        .collect();
    error_messages.sort_by(|a, b| {
        b.count.cmp(&a.count).then_with(|| a.status.cmp(&b.status)).then_with(|| a.message.cmp(&b.message))
    });
    error_messages.truncate(MAX_ERROR_KINDS);
    Report {
        model: kind.model,
        recommend: kind.recommend,
        binary: kind.binary,
        concurrency: kind.concurrency,
        request_rate: kind.request_rate,
        rows: kind.rows,
        requests: merged.ok + merged.errors,
        errors: merged.errors,
        error_messages,
        duration_s,
        throughput_rps: per_s(merged.ok),
        rows_per_s: per_s(merged.ok.saturating_mul(kind.rows)),
        latency_ms: LatencySummary::from_histogram(&merged.latency_us),
        send_lag_ms: kind.request_rate.map(|_| LatencySummary::from_histogram(&merged.lag_us)),
    }
}

/// A closed-loop worker; `first` is its first body number (it then steps by the number of
/// workers, so that with several bodies the workers do not all send the same one).
async fn worker(shared: Arc<Shared>, mut stats: WorkerStats, first: u64) -> WorkerStats {
    let mut conn: Option<Sender> = None;
    let step = shared.workers;
    let mut next = first;
    loop {
        let body = next;
        next = next.wrapping_add(step);
        let start = Instant::now();
        let measured = start >= shared.measure_start;
        if measured {
            match shared.total {
                Some(total) => {
                    if shared.issued.fetch_add(1, Ordering::Relaxed) >= total {
                        break;
                    }
                }
                None => {
                    if start >= shared.measure_end {
                        break;
                    }
                }
            }
        }

        let outcome = attempt(&mut conn, &shared.endpoint, &shared.template, shared.timeout, body).await;
        let end = Instant::now();

        stats.finish(&shared.completed, &shared.failed, outcome, measured.then(|| (end, end.duration_since(start))));
    }
    stats
}

/// Sends request `body` on `conn`, (re)opening the connection first if needed and dropping it
/// after a transport error (its state is then unknown).
async fn attempt(
    conn: &mut Option<Sender>,
    endpoint: &Endpoint,
    template: &RequestTemplate,
    timeout: Option<Duration>,
    body: u64,
) -> Outcome {
    let mut connect_error = None;
    if conn.as_ref().is_none_or(|sender| sender.is_closed()) {
        *conn = None;
        match endpoint.open().await {
            Ok(sender) => *conn = Some(sender),
            Err(e) => connect_error = Some(e),
        }
    }
    let outcome = match conn.as_mut() {
        Some(sender) => send(sender, template, timeout, body).await,
        None => {
            tokio::time::sleep(RECONNECT_PAUSE).await;
            Outcome::Transport(match connect_error {
                Some(LoadgenError::Connect { reason, .. }) => format!("connect: {reason}"),
                Some(other) => other.to_string(),
                None => "no connection".to_owned(),
            })
        }
    };
    if matches!(outcome, Outcome::Transport(_)) {
        *conn = None;
    }
    outcome
}

/// How one open-loop rate runs.
#[derive(Debug, Clone)]
pub(crate) struct RatePlan {
    pub model: String,
    pub recommend: bool,
    pub binary: bool,
    pub rows: u64,
    /// Requests per second.
    pub rate: f64,
    pub max_in_flight: u32,
    pub warmup: Duration,
    /// Exactly this many measured requests; else rate × `duration`.
    pub requests: Option<u64>,
    pub duration: Duration,
    pub timeout: Option<Duration>,
    pub progress: bool,
}

impl RatePlan {
    /// (warm-up requests, measured requests): rate × warm-up rounded up, and `requests` or
    /// rate × duration rounded (at least 1).
    pub fn counts(&self) -> (u64, u64) {
        let warmup = (self.rate * self.warmup.as_secs_f64()).ceil() as u64;
        let measured =
            self.requests.unwrap_or_else(|| ((self.rate * self.duration.as_secs_f64()).round() as u64).max(1));
        (warmup, measured)
    }
}

/// A request's number and its scheduled send time.
type Ticket = (u64, Instant);

struct OpenShared {
    endpoint: Endpoint,
    template: Arc<RequestTemplate>,
    tickets: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Ticket>>,
    /// Tickets below this number are warm-up.
    warmup_requests: u64,
    timeout: Option<Duration>,
    /// Tickets released by the scheduler (progress only).
    released: AtomicU64,
    /// Answers received, warm-up included (progress only).
    completed: AtomicU64,
    /// Failed requests, warm-up included (progress only).
    failed: AtomicU64,
}

/// Runs one open-loop rate and reports it.
pub(crate) async fn run_rate(
    endpoint: &Endpoint,
    template: Arc<RequestTemplate>,
    plan: &RatePlan,
) -> Result<Report, LoadgenError> {
    let (warmup_requests, measured) = plan.counts();
    let total = warmup_requests.saturating_add(measured);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Ticket>();
    let shared = Arc::new(OpenShared {
        endpoint: endpoint.clone(),
        template,
        tickets: tokio::sync::Mutex::new(rx),
        warmup_requests,
        timeout: plan.timeout,
        released: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });

    // Connections are opened before the schedule starts, so its first requests do not pay for
    // them.
    let n = plan.max_in_flight as usize;
    let ready = Arc::new(tokio::sync::Barrier::new(n + 1));
    let mut workers = Vec::with_capacity(n);
    for _ in 0..n {
        let stats = WorkerStats::new()?;
        workers.push(tokio::spawn(open_worker(Arc::clone(&shared), stats, Arc::clone(&ready))));
    }
    ready.wait().await;

    let rate = plan.rate;
    let begin = Instant::now() + SCHEDULE_LEAD;
    let measure_start = begin + Duration::from_secs_f64(warmup_requests as f64 / rate);
    let sched_shared = Arc::clone(&shared);
    let scheduler = tokio::task::spawn_blocking(move || {
        for i in 0..total {
            let at = begin + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if tx.send((i, at)).is_err() {
                break;
            }
            sched_shared.released.fetch_add(1, Ordering::Relaxed);
        }
        // Dropping `tx` closes the queue: the workers stop once it is empty.
    });
    let progress = plan.progress.then(|| tokio::spawn(open_progress(Arc::clone(&shared), rate, begin, measure_start)));

    let merged = merge_workers(workers).await;
    if let Some(p) = progress {
        p.abort();
    }
    scheduler.await.map_err(|e| LoadgenError::Worker(format!("request scheduler: {e}")))?;
    let kind = ReportKind {
        model: plan.model.clone(),
        recommend: plan.recommend,
        binary: plan.binary,
        rows: plan.rows,
        concurrency: plan.max_in_flight,
        request_rate: Some(rate),
    };
    Ok(make_report(merged?, measure_start, kind))
}

/// Delay between opening the connections and the first scheduled request.
const SCHEDULE_LEAD: Duration = Duration::from_millis(5);

/// An open-loop worker: takes the next released request, sends it, records its latency from
/// the scheduled time.
async fn open_worker(shared: Arc<OpenShared>, mut stats: WorkerStats, ready: Arc<tokio::sync::Barrier>) -> WorkerStats {
    let mut conn = shared.endpoint.open().await.ok();
    ready.wait().await;
    loop {
        let ticket = shared.tickets.lock().await.recv().await;
        let Some((i, scheduled)) = ticket else { break };
        let measured = i >= shared.warmup_requests;
        let sent = Instant::now();
        let outcome = attempt(&mut conn, &shared.endpoint, &shared.template, shared.timeout, i).await;
        let end = Instant::now();

        if measured {
            record_latency(&mut stats.lag_us, sent.saturating_duration_since(scheduled));
        }
        stats.finish(
            &shared.completed,
            &shared.failed,
            outcome,
            measured.then(|| (end, end.saturating_duration_since(scheduled))),
        );
    }
    stats
}

/// Prints one line a second to stderr until aborted (open loop).
async fn open_progress(shared: Arc<OpenShared>, rate: f64, begin: Instant, measure_start: Instant) {
    let period = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at((begin + period).into(), period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last_n, mut last_t) = (0u64, begin);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let n = shared.completed.load(Ordering::Relaxed);
        let failed = shared.failed.load(Ordering::Relaxed);
        let in_flight = shared.released.load(Ordering::Relaxed).saturating_sub(n);
        let rps = (n - last_n) as f64 / now.duration_since(last_t).as_secs_f64().max(1e-9);
        let interval_start = last_t;
        (last_n, last_t) = (n, now);
        let phase = if interval_start < measure_start {
            "warm-up  ".to_owned()
        } else {
            format!("measuring {:>5.1}s", now.duration_since(measure_start).as_secs_f64())
        };
        let _ = writeln!(
            std::io::stderr(),
            "[rate {rate}/s] {phase} {rps:>10.0} answers/s, {in_flight} in flight or waiting, {failed} errors so far"
        );
    }
}

/// Records `latency` in microseconds. `record` (not `saturating_record`, which clamps
/// instead) lets the auto-resizing histogram grow to any latency.
fn record_latency(h: &mut Histogram<u64>, latency: Duration) {
    let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

async fn send(sender: &mut Sender, template: &RequestTemplate, timeout: Option<Duration>, body: u64) -> Outcome {
    match timeout {
        None => exchange(sender, template, body).await,
        Some(timeout) => match tokio::time::timeout(timeout, exchange(sender, template, body)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Transport(format!("timed out after {} ms", timeout.as_millis())),
        },
    }
}

async fn exchange(sender: &mut Sender, template: &RequestTemplate, body: u64) -> Outcome {
    if let Err(e) = sender.ready().await {
        return Outcome::Transport(error_chain(&e));
    }
    let resp = match sender.send_request(template.build(body)).await {
        Ok(resp) => resp,
        Err(e) => return Outcome::Transport(error_chain(&e)),
    };
    let status = resp.status();
    if status == StatusCode::OK {
        // Drain without collecting: the connection is reusable once the body is read.
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            if let Err(e) = frame {
                return Outcome::Transport(format!("reading the response: {}", error_chain(&e)));
            }
        }
        return Outcome::Ok;
    }
    match Limited::new(resp.into_body(), MAX_ERROR_BODY).collect().await {
        Ok(body) => Outcome::Status(status, error_message(status, &body.to_bytes())),
        Err(e) => Outcome::Status(status, format!("(error body unreadable: {e})")),
    }
}

/// `error: cause: cause`, as hyper's own `Display` omits the causes.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Prints one line a second to stderr until aborted.
async fn progress(shared: Arc<Shared>, concurrency: u32, begin: Instant) {
    let period = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at((begin + period).into(), period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last_n, mut last_t) = (0u64, begin);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let n = shared.completed.load(Ordering::Relaxed);
        let failed = shared.failed.load(Ordering::Relaxed);
        let rps = (n - last_n) as f64 / now.duration_since(last_t).as_secs_f64().max(1e-9);
        let interval_start = last_t;
        (last_n, last_t) = (n, now);
        let phase = if interval_start < shared.measure_start {
            "warm-up  ".to_owned()
        } else {
            let t = now.duration_since(shared.measure_start).as_secs_f64();
            match shared.total {
                Some(total) => {
                    format!("measuring {:>5.1}s {:>9}/{total}", t, shared.issued.load(Ordering::Relaxed).min(total))
                }
                None => format!("measuring {t:>5.1}s"),
            }
        };
        let _ = writeln!(
            std::io::stderr(),
            "[concurrency {concurrency}] {phase} {rps:>10.0} req/s, {failed} errors so far"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_of_any_size_are_recorded_exactly_enough() {
        let mut stats = WorkerStats::new().expect("histogram");
        for ms in [1u64, 15, 250, 4_000, 90_000] {
            record_latency(&mut stats.latency_us, Duration::from_millis(ms));
        }
        let summary = LatencySummary::from_histogram(&stats.latency_us);
        assert!((summary.p50 - 250.0).abs() < 0.5, "{summary:?}");
        assert!((summary.max - 90_000.0).abs() < 90.0, "{summary:?}");
        record_latency(&mut stats.latency_us, Duration::from_nanos(10));
        assert_eq!(stats.latency_us.min(), 1);
    }
}
