//! tract engine latency per call on fixture models, at batch 1, 32 and 256. One call is what
//! the batcher pays: input checks, copy into tract, the run, copy out.
//!
//! `cargo bench -p recserve-engine --bench engine`; compare with
//! `fixtures/bench_onnxruntime.py` (same models, batches and input distributions).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use recserve_engine::{Engine, Tensor, TensorData, TractEngine};

const BATCHES: [usize; 3] = [1, 32, 256];

fn model(name: &str) -> TractEngine {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models").join(name).join("1/model.onnx");
    TractEngine::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// xorshift32: the same stream as `fixtures/bench_onnxruntime.py`.
fn stream(seed: u32) -> impl FnMut() -> u32 {
    let mut s = seed;
    move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s
    }
}

/// Uniform floats in [-2, 2).
fn floats(n: usize, seed: u32) -> Vec<f32> {
    let mut next = stream(seed);
    (0..n).map(|_| (next() % 4000) as f32 / 1000.0 - 2.0).collect()
}

fn input(name: &str, batch: usize) -> Tensor {
    let t = match name {
        "mlp" => Tensor::new(vec![batch, 16], TensorData::F32(floats(batch * 16, 1))),
        "lightgbm_regressor" => Tensor::new(vec![batch, 12], TensorData::F32(floats(batch * 12, 2))),
        "embedding" => {
            let mut next = stream(3);
            Tensor::new(vec![batch, 4], TensorData::I64((0..batch * 4).map(|_| (next() % 1000) as i64).collect()))
        }
        other => panic!("no input for {other}"),
    };
    t.unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn engine(c: &mut Criterion) {
    for name in ["mlp", "lightgbm_regressor", "embedding"] {
        let engine = model(name);
        let mut group = c.benchmark_group(format!("tract/{name}"));
        for batch in BATCHES {
            let x = input(name, batch);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::from_parameter(batch), &x, |b, x| {
                b.iter(|| black_box(engine.run(vec![x.clone()]).unwrap_or_else(|e| panic!("{e}"))))
            });
        }
        group.finish();
    }
    ranker(c);
}

/// The demo shop's ranker (200-tree LightGBM classifier, 24 features) on rows of its
/// validation samples, at the sizes the pipeline sends: 1 and 32 rows, and 200 candidates
/// (mixed rows, and one request's candidates).
fn ranker(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/ecommerce/models/ranker");
    let engine = TractEngine::load(&dir.join("1/model.onnx")).unwrap_or_else(|e| panic!("ranker: {e}"));
    let text = std::fs::read_to_string(dir.join("validation.json")).unwrap_or_else(|e| panic!("validation.json: {e}"));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("validation.json: {e}"));
    let pool: Vec<f32> = json["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|case| case["inputs"][0]["data"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_f64().map(|v| v as f32))
        .collect();
    assert!(pool.len() >= 24, "validation.json holds no feature rows");
    let mut group = c.benchmark_group("tract/ranker");
    for batch in [1usize, 32, 200] {
        let data: Vec<f32> = pool.iter().copied().cycle().take(batch * 24).collect();
        let x = Tensor::new(vec![batch, 24], TensorData::F32(data)).unwrap_or_else(|e| panic!("{e}"));
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &x, |b, x| {
            b.iter(|| black_box(engine.run(vec![x.clone()]).unwrap_or_else(|e| panic!("{e}"))))
        });
    }
    // What `/v1/recommend` sends: one shopper's candidates, which share the user's and the
    // context's columns (the second validation case is one logged request, tiled to 200 rows).
    let request: Vec<f32> = json["cases"][1]["inputs"][0]["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_f64().map(|v| v as f32))
        .collect();
    assert!(request.len() >= 24, "validation.json's second case holds no feature rows");
    let data: Vec<f32> = request.iter().copied().cycle().take(200 * 24).collect();
    let x = Tensor::new(vec![200, 24], TensorData::F32(data)).unwrap_or_else(|e| panic!("{e}"));
    group.throughput(Throughput::Elements(200));
    group.bench_with_input(BenchmarkId::new("request", 200), &x, |b, x| {
        b.iter(|| black_box(engine.run(vec![x.clone()]).unwrap_or_else(|e| panic!("{e}"))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = engine
}
criterion_main!(benches);
