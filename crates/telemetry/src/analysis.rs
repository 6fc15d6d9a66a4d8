//! Bottleneck analysis: which stage dominates latency, and whether the queue, the CPU or errors
//! explain what users see.
//!
//! This module owns [`bottleneck`], which runs a few PromQL queries over a window of the series
//! store and returns a [`BottleneckReport`]: findings ranked by severity (0–1), each with a
//! human-readable sentence, plus the dominant stage.

use std::time::Duration;

use serde::Serialize;

use crate::labels::OVERFLOW_VALUE;
use crate::promql::{Sample, instant_query};
use crate::sampler::names as sampler_names;
use crate::serving::names;
use crate::store::SeriesStore;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Share of request time spent in one stage.
    StageLatency,
    /// A batcher queue close to its capacity.
    QueueSaturation,
    /// The host's CPU close to fully busy.
    CpuSaturation,
    /// The hypervisor taking CPU time from this (virtual) machine: tails from outside recserve.
    CpuSteal,
    /// Requests failing on the server side.
    ErrorRatio,
}

/// One ranked finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Kind.
    pub kind: FindingKind,
    /// What it is about: a stage name, `model/version`, `host`, or `all requests`.
    pub subject: String,
    /// The measured figure (share, fill ratio, utilisation or error ratio, 0–1).
    pub value: f64,
    /// Severity used for ranking, 0–1.
    pub severity: f64,
    /// A sentence for people.
    pub sentence: String,
}

/// Per-stage latency figures over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageShare {
    /// Stage label value.
    pub stage: String,
    /// Fraction of all stage time spent in this stage (0–1).
    pub share: f64,
    /// Mean seconds per observation.
    pub mean_seconds: f64,
    /// 99th percentile seconds (bucket interpolation), NaN when unknown.
    pub p99_seconds: f64,
}

/// The result of [`bottleneck`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BottleneckReport {
    /// Window analysed, seconds.
    pub window_seconds: f64,
    /// Evaluation time, unix ms.
    pub at_ms: i64,
    /// Stages, largest share first.
    pub stages: Vec<StageShare>,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// One sentence naming the bottleneck (or saying there is too little data).
    pub summary: String,
}

fn q(store: &SeriesStore, query: &str, at: i64) -> Vec<Sample> {
    match instant_query(store, query, at).and_then(|v| v.into_vector()) {
        Ok(v) => v,
        Err(err) => {
            tracing::debug!(%err, query, "bottleneck query failed");
            Vec::new()
        }
    }
}

fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

fn pct1(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// Steal below this share of the CPU is not reported.
const STEAL_WORTH_NAMING: f64 = 0.01;

fn ms(v: f64) -> String {
    if v.is_nan() { "n/a".into() } else { format!("{:.2} ms", v * 1000.0) }
}

/// Analyses the window `[at_ms - window, at_ms]` of `store`.
pub fn bottleneck(store: &SeriesStore, at_ms: i64, window: Duration) -> BottleneckReport {
    let w = format!("{}s", window.as_secs().max(1));
    let stage_sum = names::STAGE_DURATION.to_string() + "_sum";
    let stage_count = names::STAGE_DURATION.to_string() + "_count";
    let stage_bucket = names::STAGE_DURATION.to_string() + "_bucket";

    // Stage shares.
    let time = q(store, &format!("sum by (stage) (increase({stage_sum}[{w}]))"), at_ms);
    let count = q(store, &format!("sum by (stage) (increase({stage_count}[{w}]))"), at_ms);
    let p99 = q(store, &format!("histogram_quantile(0.99, sum by (stage, le) (increase({stage_bucket}[{w}])))"), at_ms);
    let total: f64 = time.iter().map(|s| s.value).filter(|v| v.is_finite() && *v > 0.0).sum();
    let find = |v: &[Sample], stage: &str| {
        v.iter().find(|s| s.labels.get("stage") == Some(stage)).map(|s| s.value).unwrap_or(f64::NAN)
    };
    let mut stages: Vec<StageShare> = time
        .iter()
        .filter_map(|s| {
            let stage = s.labels.get("stage")?.to_string();
            let n = find(&count, &stage);
            Some(StageShare {
                share: if total > 0.0 { s.value / total } else { 0.0 },
                mean_seconds: if n > 0.0 { s.value / n } else { f64::NAN },
                p99_seconds: find(&p99, &stage),
                stage,
            })
        })
        .collect();
    stages.sort_by(|a, b| b.share.total_cmp(&a.share));

    let mut findings = Vec::new();
    for s in &stages {
        findings.push(Finding {
            kind: FindingKind::StageLatency,
            subject: s.stage.clone(),
            value: s.share,
            severity: s.share * 0.9,
            sentence: format!(
                "{} takes {} of request time over the last {w} (mean {}, p99 {}).",
                s.stage,
                pct(s.share),
                ms(s.mean_seconds),
                ms(s.p99_seconds)
            ),
        });
    }

    // Queue saturation.
    let fill = q(
        store,
        &format!("avg_over_time({}[{w}]) / max_over_time({}[{w}]) > 0", names::QUEUE_DEPTH, names::QUEUE_CAPACITY),
        at_ms,
    );
    let peak = q(
        store,
        &format!("max_over_time({}[{w}]) / max_over_time({}[{w}])", names::QUEUE_DEPTH, names::QUEUE_CAPACITY),
        at_ms,
    );
    for s in fill.iter().filter(|s| s.value.is_finite()) {
        let model = s.labels.get("model").unwrap_or(OVERFLOW_VALUE);
        let version = s.labels.get("version").unwrap_or("");
        let peak_v = peak.iter().find(|p| p.labels == s.labels).map(|p| p.value).unwrap_or(s.value);
        let value = s.value.min(1.0);
        findings.push(Finding {
            kind: FindingKind::QueueSaturation,
            subject: format!("{model}/{version}"),
            value,
            severity: value,
            sentence: format!(
                "The batcher queue of {model} version {version} is {} full on average (peak {}){}",
                pct(value),
                pct(peak_v.min(1.0)),
                if value >= 0.8 { ": requests wait for the engine, add instances or shed load." } else { "." }
            ),
        });
    }

    // CPU saturation.
    let host = q(store, &format!("avg_over_time({}[{w}])", sampler_names::HOST_CPU), at_ms);
    let proc_cpu = q(store, &format!("avg_over_time({}[{w}])", sampler_names::PROCESS_CPU), at_ms);
    if let Some(h) = host.first().map(|s| s.value).filter(|v| v.is_finite()) {
        let p = proc_cpu.first().map(|s| s.value).unwrap_or(f64::NAN);
        let severity = ((h - 0.5) / 0.5).clamp(0.0, 1.0);
        let verdict = if h >= 0.9 {
            "the CPU is saturated"
        } else if h >= 0.7 {
            "the CPU is busy"
        } else {
            "the CPU has headroom"
        };
        findings.push(Finding {
            kind: FindingKind::CpuSaturation,
            subject: "host".into(),
            value: h,
            severity,
            sentence: format!(
                "Host CPU is {} busy on average over the last {w}, recserve uses {}: {verdict}.",
                pct(h),
                if p.is_nan() { "n/a".into() } else { pct(p) }
            ),
        });
    }

    // CPU steal: on a shared virtual machine, time the hypervisor runs other guests while this
    // one's threads are ready. It stalls whatever runs at that moment, so it shows in the tail
    // however light the load; at 10 % it decides the p99 (BENCHMARKS.md, `/v1/recommend`).
    let steal = q(store, &format!("avg_over_time({}[{w}])", sampler_names::HOST_CPU_STEAL), at_ms);
    if let Some(st) = steal.first().map(|s| s.value).filter(|v| v.is_finite() && *v >= STEAL_WORTH_NAMING) {
        findings.push(Finding {
            kind: FindingKind::CpuSteal,
            subject: "host".into(),
            value: st,
            severity: (st / 0.1).clamp(0.0, 1.0),
            sentence: format!(
                "The hypervisor took {} of this machine's CPU over the last {w} (steal): threads \
                 that are ready wait for it, so latency tails come from outside recserve; a less \
                 crowded or dedicated host removes them.",
                pct1(st)
            ),
        });
    }

    // Error ratio.
    let failed =
        format!("sum(increase({}{{outcome=~\"error|timeout|unavailable|overloaded\"}}[{w}]))", names::REQUESTS);
    let all = format!("sum(increase({}[{w}]))", names::REQUESTS);
    let failed_v = q(store, &failed, at_ms).first().map(|s| s.value).unwrap_or(0.0);
    let all_v = q(store, &all, at_ms).first().map(|s| s.value).unwrap_or(0.0);
    if all_v > 0.0 {
        let ratio = (failed_v / all_v).clamp(0.0, 1.0);
        findings.push(Finding {
            kind: FindingKind::ErrorRatio,
            subject: "all requests".into(),
            value: ratio,
            severity: (ratio / 0.05).min(1.0),
            sentence: format!(
                "{} of requests failed on the server side over the last {w} ({:.0} of {:.0}).",
                pct(ratio),
                failed_v,
                all_v
            ),
        });
    }

    findings.sort_by(|a, b| b.severity.total_cmp(&a.severity));
    let summary = match (findings.first(), stages.first()) {
        (None, _) => format!("Not enough data in the last {w} to name a bottleneck."),
        (Some(top), Some(stage)) if top.kind == FindingKind::StageLatency => format!(
            "The bottleneck is the {} stage: {} of request time (p99 {}).",
            stage.stage,
            pct(stage.share),
            ms(stage.p99_seconds)
        ),
        (Some(top), _) => format!("The bottleneck: {}", top.sentence),
    };
    BottleneckReport { window_seconds: window.as_secs_f64(), at_ms, stages, findings, summary }
}
