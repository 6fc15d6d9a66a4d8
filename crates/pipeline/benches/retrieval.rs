//! Retrieval benchmark: recall@100 against exact search and single-thread queries per second
//! of `ItemIndex` (instant-distance HNSW, shifted inner product) on clustered 32-dim vectors,
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
            index.ef_search(),
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

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        ann(2_000);
        return;
    }
    ann(100_000);
    bm25(100_000);
    if std::env::var_os("RECSERVE_BENCH_1M").is_some() {
        ann(1_000_000);
        bm25(1_000_000);
    }
}
