//! Telemetry cost (BENCHMARKS.md "Telemetry cost"): one request observation with 4 stages and
//! finish; rendering `/metrics` with 10 models × 3 versions registered; a 6-hour `query_range`
//! over a store holding 6 h of 5 s samples for 10 models × 3 versions.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use recserve_telemetry::promql::range_query;
use recserve_telemetry::store::now_ms;
use recserve_telemetry::{
    LabelSet, Outcome, SeriesStore, ServingMetricsConfig, Stage, StoreConfig, Telemetry, TelemetryConfig,
};

fn telemetry_with_targets() -> Telemetry {
    let t = Telemetry::new(TelemetryConfig { serving: ServingMetricsConfig::default(), ..Default::default() }).unwrap();
    for m in 0..10 {
        for v in 1..=3 {
            let target = t.serving.target(&format!("model{m}"), &v.to_string(), "none").unwrap();
            let mut obs = target.start();
            obs.stage(Stage::Queue, Duration::from_micros(100));
            obs.finish(Outcome::Ok);
        }
    }
    t
}

fn observe(c: &mut Criterion) {
    let t = telemetry_with_targets();
    let target = t.serving.target("model0", "1", "none").unwrap();
    c.bench_function("observe_request_4_stages_finish", |b| {
        b.iter(|| {
            let mut obs = target.start();
            obs.stage(Stage::Queue, Duration::from_micros(120));
            obs.stage(Stage::Preprocess, Duration::from_micros(40));
            obs.stage(Stage::Inference, Duration::from_micros(900));
            obs.stage(Stage::Postprocess, Duration::from_micros(30));
            black_box(obs.finish(Outcome::Ok))
        })
    });
}

fn render(c: &mut Criterion) {
    let t = telemetry_with_targets();
    c.bench_function("render_metrics_10_models_x_3_versions", |b| b.iter(|| black_box(t.render_metrics().len())));
}

fn query_range_6h(c: &mut Criterion) {
    let store = SeriesStore::new(StoreConfig::default());
    let end = now_ms() / 5_000 * 5_000;
    let start = end - 6 * 3600 * 1000;
    let mut samples = Vec::new();
    for m in 0..10 {
        for v in 1..=3 {
            let labels = LabelSet::from_pairs([
                ("__name__", "recserve_requests_total".to_string()),
                ("model", format!("model{m}")),
                ("version", v.to_string()),
                ("pipeline", "none".to_string()),
                ("outcome", "ok".to_string()),
            ]);
            let mut total = 0.0;
            let mut ts = start;
            while ts <= end {
                total += 50.0 + f64::from(m * 3 + v);
                samples.push((labels.clone(), ts, total));
                ts += 5_000;
            }
        }
    }
    samples.sort_by_key(|s| s.1);
    store.append(&samples);
    let q = "sum by (model) (rate(recserve_requests_total[1m]))";
    c.bench_function("query_range_6h_step_60s_10x3", |b| {
        b.iter(|| black_box(range_query(&store, q, start, end, 60_000).unwrap()))
    });
}

criterion_group!(benches, observe, render, query_range_6h);
criterion_main!(benches);
