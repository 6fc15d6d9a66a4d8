//! Retrieval benchmark: recall@100 against exact search and single-thread queries per second
//! of `ItemIndex` (usearch HNSW on the MIPS→L2 reduction) on clustered 32-dim vectors,
//! plus the BM25 search over synthetic titles.
//!
//! `cargo bench -p recserve-pipeline --bench retrieval` runs 100k items;
//! `RECSERVE_BENCH_1M=1` adds 1M items (minutes of index build on 2 cores).
//! Prints one line per configuration; the numbers go to BENCHMARKS.md.

#![allow(clippy::unwrap_used)]

#[path = "../tests/vectors.rs"]
mod vectors;

use std::time::Instant;

use recserve_pipeline::ann::{AnnParams, ItemIndex};
use recserve_pipeline::text::Bm25Index;

const DIM: usize = 32;
const QUERIES: usize = 500;

fn ann(n: usize) {
    let mut all = vectors::clustered(n + QUERIES, DIM, 200, 3);
    let queries = all.split_off(n * DIM);
    let t = Instant::now();
    let index = ItemIndex::build(all, DIM, AnnParams::default()).unwrap();
    let build = t.elapsed().as_secs_f64();
    let exact: Vec<_> = queries.chunks_exact(DIM).map(|q| index.exact(q, 100, None)).collect();
    for k in [100, 200] {
        let t = Instant::now();
        let results: Vec<_> = queries.chunks_exact(DIM).map(|q| index.search(q, k, None)).collect();
        let secs = t.elapsed().as_secs_f64();
        let recall: f64 =
            results.iter().zip(&exact).map(|(r, e)| vectors::recall(&r[..r.len().min(100)], e)).sum::<f64>()
                / QUERIES as f64;
        println!(
            "ann n={n} dim={DIM} ef_search={} k={k}: build {build:.1} s, recall@100 {recall:.4}, {:.0} queries/s ({:.0} µs/query, 1 thread)",
            index.params().ef_search,
            QUERIES as f64 / secs,
            secs / QUERIES as f64 * 1e6
        );
    }
    // filtered: in stock (85 % of items pass)
    let keep = |r: usize| !r.is_multiple_of(7);
    let t = Instant::now();
    for q in queries.chunks_exact(DIM) {
        std::hint::black_box(index.search(q, 200, Some(&keep)));
    }
    let secs = t.elapsed().as_secs_f64();
    println!("ann n={n} filtered (6/7 pass) k=200: {:.0} µs/query", secs / QUERIES as f64 * 1e6);
}

fn bm25(n: usize) {
    let words =
        ["red", "blue", "wireless", "classic", "lamp", "shoe", "jacket", "phone", "bike", "ball", "black", "premium"];
    let mut rng = vectors::Rng::new(5);
    let titles: Vec<String> = (0..n)
        .map(|_| (0..5).map(|_| words[(rng.next_u64() % words.len() as u64) as usize]).collect::<Vec<_>>().join(" "))
        .collect();
    let t = Instant::now();
    let ix = Bm25Index::build(titles.iter().map(String::as_str));
    let build = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let rounds = 200;
    for i in 0..rounds {
        std::hint::black_box(ix.search(if i % 2 == 0 { "red wireless phone" } else { "classic lamp" }, 200, &|_| true));
    }
    let secs = t.elapsed().as_secs_f64();
    println!("bm25 n={n}: build {build:.2} s, {:.0} µs/query", secs / rounds as f64 * 1e6);
}

/// Answers the user tower with a fixed unit vector and the ranker with a score per row, so the
/// timing is the pipeline's own CPU work (validation, retrieval, feature assembly, rules).
struct StubRunner {
    dim: usize,
}

impl recserve_pipeline::ModelRunner for StubRunner {
    fn run<'a>(
        &'a self,
        model: &'a str,
        inputs: Vec<(String, recserve_engine::Tensor)>,
    ) -> futures::future::BoxFuture<'a, Result<recserve_pipeline::ModelOutput, recserve_pipeline::RunnerError>> {
        use recserve_engine::{Tensor, TensorData};
        let rows = inputs[0].1.shape[0];
        let out = if model == "user_tower" {
            let v = 1.0 / (self.dim as f32).sqrt();
            ("user_embedding".to_string(), Tensor::new(vec![rows, self.dim], TensorData::F32(vec![v; rows * self.dim])))
        } else {
            let p: Vec<f32> = (0..rows * 2).map(|i| (i % 97) as f32 / 97.0).collect();
            ("probabilities".to_string(), Tensor::new(vec![rows, 2], TensorData::F32(p)))
        };
        Box::pin(async move {
            Ok(recserve_pipeline::ModelOutput { version: "1".into(), outputs: vec![(out.0, out.1.unwrap())] })
        })
    }
}

/// The demo pipelines' own CPU cost per request (models stubbed).
fn demo_pipeline() {
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ecommerce/pipelines.toml");
    let Ok(p) = recserve_pipeline::Pipelines::load(&cfg) else { return };
    let runner = StubRunner { dim: p.feature_spec().embedding_dim };
    let bodies = [
        r#"{"scenario":"home_feed","user_id":"U0000001","context":{"device":"mobile"}}"#,
        r#"{"scenario":"search","user_id":"U0000002","query":"wireless headphones black"}"#,
        r#"{"scenario":"home_feed","user_id":"new-user","filters":{"max_price":100}}"#,
    ];
    for body in bodies {
        let rounds = 500;
        let t = Instant::now();
        let mut stages = recserve_pipeline::StageTimings::default();
        for _ in 0..rounds {
            let req = recserve_pipeline::RecommendRequest::from_json(body.as_bytes()).unwrap();
            let r = futures::executor::block_on(p.recommend(req, &runner)).unwrap();
            stages.retrieval += r.stages.retrieval;
            stages.preprocess += r.stages.preprocess;
            stages.rules += r.stages.rules;
        }
        let per = t.elapsed().as_secs_f64() / rounds as f64 * 1e6;
        println!(
            "pipeline (models stubbed) {body}: {per:.0} µs/request (retrieval {:.0} µs, ranker rows {:.0} µs, rules {:.0} µs)",
            stages.retrieval.as_secs_f64() / rounds as f64 * 1e6,
            stages.preprocess.as_secs_f64() / rounds as f64 * 1e6,
            stages.rules.as_secs_f64() / rounds as f64 * 1e6
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        ann(2_000);
        return;
    }
    demo_pipeline();
    ann(100_000);
    bm25(100_000);
    if std::env::var_os("RECSERVE_BENCH_1M").is_some() {
        ann(1_000_000);
        bm25(1_000_000);
    }
}
