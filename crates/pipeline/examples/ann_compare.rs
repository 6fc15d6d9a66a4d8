//! The measurement behind the HNSW crate choice (ARCHITECTURE.md, "ANN retrieval"): hnsw_rs and
//! instant-distance on the shifted inner-product distance `M² − a·b` (queries scaled to norm
//! `M`), against `ItemIndex` (usearch on the MIPS→L2 reduction): build time on all cores,
//! recall@k against exact search, single-thread query latency (timed apart from the recall
//! computation).
//!
//! `cargo run --release -p recserve-pipeline --example ann_compare [-- N [random|clustered|both] [K]]`
//! (N items, default 100000; both datasets by default; K default 100).

#![allow(clippy::unwrap_used)]

#[path = "../tests/vectors.rs"]
mod vectors;

use std::time::Instant;

use hnsw_rs::prelude::{Distance, Hnsw};
use recserve_pipeline::ann::{AnnParams, ItemIndex, dot, top_k};

const DIM: usize = 32;
const QUERIES: usize = 300;

struct Shifted(f32);

impl Distance<f32> for Shifted {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (self.0 - dot(a, b)).max(0.0)
    }
}

#[derive(Clone)]
struct IdPoint {
    v: Vec<f32>,
    max2: f32,
}

impl instant_distance::Point for IdPoint {
    fn distance(&self, other: &Self) -> f32 {
        (self.max2 - dot(&self.v, &other.v)).max(0.0)
    }
}

fn report(
    name: &str,
    k: usize,
    build: f64,
    queries: &[f32],
    exact: &[Vec<(u32, f32)>],
    search: impl Fn(&[f32]) -> Vec<(u32, f32)>,
) {
    let mut rec = 0.0;
    for (q, ex) in queries.chunks_exact(DIM).zip(exact) {
        rec += vectors::recall(&search(q), ex);
    }
    let rounds = 3;
    let t = Instant::now();
    let mut found = 0;
    for _ in 0..rounds {
        for q in queries.chunks_exact(DIM) {
            found += search(q).len();
        }
    }
    let per_q = t.elapsed().as_secs_f64() / (rounds * QUERIES) as f64;
    assert!(found > 0);
    println!("{name:<48} build {build:>7.2} s  recall@{k} {:.4}  query {:>7.1} µs", rec / QUERIES as f64, per_q * 1e6);
}

fn main() {
    let n: usize = std::env::args().nth(1).map(|a| a.parse().unwrap()).unwrap_or(100_000);
    let which = std::env::args().nth(2).unwrap_or_else(|| "both".into());
    let k: usize = std::env::args().nth(3).map(|a| a.parse().unwrap()).unwrap_or(100);
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
        println!("== {name}: {n} items, dim {DIM}, {QUERIES} queries, k {k}");
        let exact: Vec<Vec<(u32, f32)>> = queries
            .chunks_exact(DIM)
            .map(|q| top_k(data.chunks_exact(DIM).map(|v| dot(q, v)).zip(0u32..).map(|(s, r)| (r, s)).collect(), k))
            .collect();
        let max2 = data.chunks_exact(DIM).map(|v| dot(v, v)).fold(0.0f32, f32::max) * 1.001;
        let scaled = |q: &[f32]| -> Vec<f32> {
            let s = max2.sqrt() / dot(q, q).sqrt();
            q.iter().map(|x| x * s).collect()
        };

        let t = Instant::now();
        let h = Hnsw::<f32, Shifted>::new(32, n, 16, 100, Shifted(max2));
        let rows: Vec<(&[f32], usize)> = data.chunks_exact(DIM).zip(0..).collect();
        h.parallel_insert_slice(&rows);
        let build = t.elapsed().as_secs_f64();
        report("hnsw_rs M=32 efC=100 efS=256", k, build, &queries, &exact, |q| {
            h.search(&scaled(q), k, 256.max(k)).iter().map(|nb| (nb.d_id as u32, 0.0)).collect()
        });
        drop(h);

        let t = Instant::now();
        let points: Vec<IdPoint> = data.chunks_exact(DIM).map(|v| IdPoint { v: v.to_vec(), max2 }).collect();
        let map = instant_distance::Builder::default()
            .ef_construction(100)
            .ef_search(256.max(k))
            .build(points, (0..n as u32).collect());
        let build = t.elapsed().as_secs_f64();
        report("instant-distance M=32 efC=100 efS=256", k, build, &queries, &exact, |q| {
            let mut search = instant_distance::Search::default();
            let p = IdPoint { v: scaled(q), max2 };
            map.search(&p, &mut search).take(k).map(|item| (*item.value, 0.0)).collect()
        });
        drop(map);

        for (connectivity, ef_search) in [(16, 200), (16, 256), (32, 256)] {
            let params = AnnParams { ef_construction: 128, ef_search, connectivity };
            let t = Instant::now();
            let index = ItemIndex::build(data.clone(), DIM, params).unwrap();
            let build = t.elapsed().as_secs_f64();
            report(
                &format!("usearch (ItemIndex) M={connectivity} efC=128 efS={ef_search}"),
                k,
                build,
                &queries,
                &exact,
                |q| index.search(q, k, None),
            );
        }
    }
}
