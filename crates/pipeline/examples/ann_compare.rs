//! The measurement behind the HNSW crate choice (ARCHITECTURE.md, "ANN retrieval"):
//! hnsw_rs against instant-distance (through `ItemIndex`), both on the shifted inner-product
//! distance `M² − a·b` with queries scaled to norm `M`: build time, recall@100 against exact
//! search, single-thread query latency.
//!
//! `cargo run --release -p recserve-pipeline --example ann_compare [-- N [random|clustered|both]]`
//! (N items, default 100000; both datasets by default).

#![allow(clippy::unwrap_used)]

#[path = "../tests/vectors.rs"]
mod vectors;

use std::time::Instant;

use hnsw_rs::prelude::{Distance, Hnsw};
use recserve_pipeline::ann::{AnnParams, ItemIndex, dot, top_k};

const DIM: usize = 32;
const K: usize = 100;
const QUERIES: usize = 300;

struct Shifted(f32);

impl Distance<f32> for Shifted {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (self.0 - dot(a, b)).max(0.0)
    }
}

fn report(
    name: &str,
    build: f64,
    queries: &[f32],
    exact: &[Vec<(u32, f32)>],
    search: impl Fn(&[f32]) -> Vec<(u32, f32)>,
) {
    let t = Instant::now();
    let mut rec = 0.0;
    for (q, ex) in queries.chunks_exact(DIM).zip(exact) {
        rec += vectors::recall(&search(q), ex);
    }
    let per_q = t.elapsed().as_secs_f64() / QUERIES as f64;
    println!("{name:<44} build {build:>7.2} s  recall@100 {:.4}  query {:>7.1} µs", rec / QUERIES as f64, per_q * 1e6);
}

fn main() {
    let n: usize = std::env::args().nth(1).map(|a| a.parse().unwrap()).unwrap_or(100_000);
    let which = std::env::args().nth(2).unwrap_or_else(|| "both".into());
    let mut sets = Vec::new();
    if which != "clustered" {
        sets.push(("random", vectors::random(n, DIM, 1), vectors::random(QUERIES, DIM, 2)));
    }
    if which != "random" {
        // queries: further draws around the same centres (not items of the catalog)
        let mut all = vectors::clustered(n + QUERIES, DIM, 200, 3);
        let queries = all.split_off(n * DIM);
        sets.push(("clustered", all, queries));
    }
    for (name, data, queries) in sets {
        println!("== {name}: {n} items, dim {DIM}, {QUERIES} queries, k {K}");
        let exact: Vec<Vec<(u32, f32)>> = queries
            .chunks_exact(DIM)
            .map(|q| top_k(data.chunks_exact(DIM).map(|v| dot(q, v)).zip(0u32..).map(|(s, r)| (r, s)).collect(), K))
            .collect();
        let max2 = data.chunks_exact(DIM).map(|v| dot(v, v)).fold(0.0f32, f32::max) * 1.001;

        for m in [32] {
            let t = Instant::now();
            let mut h = Hnsw::<f32, Shifted>::new(m, n, 16, 100, Shifted(max2));
            let rows: Vec<(&[f32], usize)> = data.chunks_exact(DIM).zip(0..).collect();
            h.parallel_insert_slice(&rows);
            h.set_searching_mode(true);
            let build = t.elapsed().as_secs_f64();
            for ef in [100, 256] {
                report(&format!("hnsw_rs M={m} efC=100 efS={ef}"), build, &queries, &exact, |q| {
                    let s = max2.sqrt() / dot(q, q).sqrt();
                    let qs: Vec<f32> = q.iter().map(|x| x * s).collect();
                    h.search(&qs, K, ef).iter().map(|nb| (nb.d_id as u32, 0.0)).collect()
                });
            }
        }
        for ef in [100, 256] {
            let t = Instant::now();
            let index = ItemIndex::build(data.clone(), DIM, AnnParams { ef_construction: 100, ef_search: ef }).unwrap();
            let build = t.elapsed().as_secs_f64();
            report(&format!("instant-distance M=32 efC=100 efS={ef}"), build, &queries, &exact, |q| {
                index.search(q, K, None)
            });
        }
    }
}
