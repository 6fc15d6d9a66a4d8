//! The measurement behind the HNSW crate choice (ARCHITECTURE.md, "ANN retrieval"):
//! hnsw_rs (through `ItemIndex`) against instant-distance on the same shifted inner-product (`M² − a·b`)
//! vectors: build time, recall@100 against exact search, single-thread query latency.
//!
//! `cargo run --release -p recserve-pipeline --example ann_compare [-- N]` (N items, default 100000).

#![allow(clippy::unwrap_used)]

#[path = "../tests/vectors.rs"]
mod vectors;

use std::time::Instant;

use recserve_pipeline::ann::{AnnParams, ItemIndex, dot, top_k};

const DIM: usize = 32;
const K: usize = 100;
const QUERIES: usize = 300;

#[derive(Clone)]
struct P(Vec<f32>, f32);

impl instant_distance::Point for P {
    fn distance(&self, other: &Self) -> f32 {
        (self.1 - dot(&self.0, &other.0)).max(0.0)
    }
}

fn main() {
    let n: usize = std::env::args().nth(1).map(|a| a.parse().unwrap()).unwrap_or(100_000);
    for (name, data, queries) in [
        ("random", vectors::random(n, DIM, 1), vectors::random(QUERIES, DIM, 2)),
        ("clustered", vectors::clustered(n, DIM, 200, 3), vectors::clustered(QUERIES, DIM, 200, 3)),
    ] {
        println!("== {name}: {n} items, dim {DIM}, {QUERIES} queries, k {K}");
        let exact: Vec<Vec<(u32, f32)>> = queries
            .chunks_exact(DIM)
            .map(|q| top_k(data.chunks_exact(DIM).map(|v| dot(q, v)).zip(0u32..).map(|(s, r)| (r, s)).collect(), K))
            .collect();

        let t = Instant::now();
        let params = AnnParams { max_connections: 16, ef_construction: 100, ef_search: 100 };
        let mut index = ItemIndex::build(data.clone(), DIM, params).unwrap();
        let build = t.elapsed();
        for ef in [100, 200] {
            index.set_ef_search(ef);
            let t = Instant::now();
            let mut rec = 0.0;
            for (q, ex) in queries.chunks_exact(DIM).zip(&exact) {
                rec += vectors::recall(&index.search(q, K, None), ex);
            }
            let per_q = t.elapsed() / QUERIES as u32;
            println!(
                "hnsw_rs          M=16 efC=100 efS={ef}: build {:>6.2} s  recall@100 {:.4}  query {:>7.1} µs",
                build.as_secs_f64(),
                rec / QUERIES as f64,
                per_q.as_secs_f64() * 1e6
            );
        }

        let mut max2 = 0.0f32;
        for v in data.chunks_exact(DIM) {
            max2 = max2.max(dot(v, v));
        }
        let points: Vec<P> = data
            .chunks_exact(DIM)
            .map(|v| {
                P(v.to_vec(), max2 * 1.001)
            })
            .collect();
        let t = Instant::now();
        let map = instant_distance::Builder::default()
            .ef_construction(100)
            .ef_search(100)
            .build(points.clone(), (0..n as u32).collect::<Vec<_>>());
        let build = t.elapsed();
        {
            let ef = 100;
            let mut search = instant_distance::Search::default();
            let t = Instant::now();
            let mut rec = 0.0;
            for (q, ex) in queries.chunks_exact(DIM).zip(&exact) {
                let scale = max2.sqrt() / dot(q, q).sqrt();
                let qa: Vec<f32> = q.iter().map(|x| x * scale).collect();
                let got: Vec<(u32, f32)> = map.search(&P(qa, max2 * 1.001), &mut search).take(K).map(|i| (*i.value, 0.0)).collect();
                rec += vectors::recall(&got, ex);
            }
            let per_q = t.elapsed() / QUERIES as u32;
            println!(
                "instant-distance M=32 efC=100 efS={ef}: build {:>6.2} s  recall@100 {:.4}  query {:>7.1} µs",
                build.as_secs_f64(),
                rec / QUERIES as f64,
                per_q.as_secs_f64() * 1e6
            );
        }
    }
}
