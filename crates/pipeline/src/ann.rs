//! Approximate nearest-neighbour retrieval over item embeddings: owns the HNSW index
//! ([`usearch`], chosen over instant-distance and hnsw_rs by measurement — see ARCHITECTURE.md,
//! "ANN retrieval") and the exact brute-force search used as its reference and fallback.
//!
//! Retrieval is by maximum inner product (the `retrieval.score` feature is the dot product of
//! the user embedding and the item embedding). The graph is built on the MIPS→L2 reduction: each
//! item `x` gets one more coordinate `sqrt(M² − |x|²)` (`M` = the largest item norm), so every
//! item lies on the sphere of radius `M` and `|q' − x'|² = |q|² + M² − 2·q·x` for a query
//! `q' = (q, 0)`: the nearest items in squared L2 are the largest dot products. Queries are
//! scaled to norm `M` (onto the items' sphere; the ranking does not change). Returned scores are
//! the exact dot products with the unscaled query.
//!
//! A search for `k` rows explores `max(ef_search, k)` candidates. A filtered search asks the
//! graph for rows the filter accepts; when fewer than `k` come back (a selective filter), it falls
//! back to an exact scan of the accepted rows, so filters never lose results.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

/// Index construction and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnParams {
    /// Candidate list size while building (usearch's `expansion_add`).
    pub ef_construction: usize,
    /// Candidate list size while searching, at least (a search for `k` rows uses the larger of
    /// the two).
    pub ef_search: usize,
    /// Neighbours per node (HNSW's `M`).
    pub connectivity: usize,
}

impl Default for AnnParams {
    fn default() -> Self {
        AnnParams { ef_construction: 128, ef_search: 256, connectivity: 32 }
    }
}

/// Errors building an index.
#[derive(Debug, thiserror::Error)]
pub enum AnnError {
    #[error("embedding dimension must be at least 1")]
    ZeroDim,
    #[error("{len} embedding values is not a multiple of the dimension {dim}")]
    Ragged { len: usize, dim: usize },
    #[error("embedding row {row} holds a value that is not finite")]
    NotFinite { row: usize },
    #[error("building the HNSW index failed: {0}")]
    Index(String),
}

/// Searches that can run at once (usearch keeps one search context per concurrent caller; a
/// search finding none free falls back to the exact scan). Serving threads are far fewer.
const SEARCH_CONTEXTS: usize = 64;

/// Builds of at least this many items log their start, each quarter done and their end (a 1M
/// catalog takes minutes on 2 cores).
const LOG_PROGRESS_FROM: usize = 50_000;

/// Item embeddings and the HNSW index over them. Rows are item positions (0-based) in the
/// item table.
pub struct ItemIndex {
    dim: usize,
    vectors: Vec<f32>,
    graph: Option<Index>,
    max_norm2: f32,
    params: AnnParams,
}

impl std::fmt::Debug for ItemIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemIndex").field("dim", &self.dim).field("items", &self.len()).finish_non_exhaustive()
    }
}

impl ItemIndex {
    /// Builds the index over `vectors` (row-major, `dim` values per item). Blocking; uses all
    /// cores: 100k 32-dim items take several seconds on 2 cores.
    pub fn build(vectors: Vec<f32>, dim: usize, params: AnnParams) -> Result<ItemIndex, AnnError> {
        if dim == 0 {
            return Err(AnnError::ZeroDim);
        }
        if !vectors.len().is_multiple_of(dim) {
            return Err(AnnError::Ragged { len: vectors.len(), dim });
        }
        let n = vectors.len() / dim;
        let mut max_norm2 = 0.0f32;
        for (row, v) in vectors.chunks_exact(dim).enumerate() {
            if v.iter().any(|x| !x.is_finite()) {
                return Err(AnnError::NotFinite { row });
            }
            max_norm2 = max_norm2.max(dot(v, v));
        }
        // Headroom so rounding cannot make the extra coordinate's square negative.
        let max_norm2 = max_norm2 * 1.001 + f32::MIN_POSITIVE;
        let graph = if n > 0 { Some(build_graph(&vectors, dim, max_norm2, params)?) } else { None };
        Ok(ItemIndex { dim, vectors, graph, max_norm2, params })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.vectors.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// The parameters the index was built with.
    pub fn params(&self) -> AnnParams {
        self.params
    }

    /// The embedding of item row `row`.
    pub fn vector(&self, row: usize) -> &[f32] {
        &self.vectors[row * self.dim..(row + 1) * self.dim]
    }

    /// The dot product of `query` and item row `row`.
    pub fn score(&self, query: &[f32], row: usize) -> f32 {
        dot(query, self.vector(row))
    }

    /// Up to `k` item rows with the (approximately) largest dot product with `query`, among the
    /// rows `keep` accepts, best first, with their exact dot products. A query of the wrong
    /// length returns no rows.
    pub fn search(&self, query: &[f32], k: usize, keep: Option<&dyn Fn(usize) -> bool>) -> Vec<(u32, f32)> {
        let Some(graph) = &self.graph else { return Vec::new() };
        if query.len() != self.dim || k == 0 {
            return Vec::new();
        }
        let k = k.min(self.len());
        let norm = dot(query, query).sqrt();
        let scale = if norm > 0.0 { self.max_norm2.sqrt() / norm } else { 1.0 };
        let mut scaled: Vec<f32> = query.iter().map(|x| x * scale).collect();
        scaled.push(0.0);
        let found = match keep {
            None => graph.search(&scaled, k),
            Some(f) => graph.filtered_search(&scaled, k, |key| f(key as usize)),
        };
        let mut out: Vec<(u32, f32)> = match found {
            Ok(m) => m.keys.iter().map(|&key| (key as u32, self.score(query, key as usize))).collect(),
            Err(err) => {
                tracing::warn!(%err, "HNSW search failed; searching exactly");
                return self.exact(query, k, keep);
            }
        };
        if out.len() < k && keep.is_some() {
            // A selective filter left too few rows within reach: scan the accepted rows exactly.
            return self.exact(query, k, keep);
        }
        sort_best_first(&mut out);
        out
    }

    /// The exact top `k` rows by dot product among the rows `keep` accepts (brute force), best
    /// first. The reference for recall measurements and the fallback for tiny catalogs.
    pub fn exact(&self, query: &[f32], k: usize, keep: Option<&dyn Fn(usize) -> bool>) -> Vec<(u32, f32)> {
        if query.len() != self.dim || k == 0 {
            return Vec::new();
        }
        let all =
            (0..self.len()).filter(|&r| keep.is_none_or(|f| f(r))).map(|r| (r as u32, self.score(query, r))).collect();
        top_k(all, k)
    }
}

/// The usearch graph over the items, each extended by `sqrt(max_norm2 − |x|²)`, added from all
/// cores.
/// Catalogs of at least this many items build their graph from all cores.
const PARALLEL_BUILD_FROM: usize = 20_000;

fn build_graph(vectors: &[f32], dim: usize, max_norm2: f32, params: AnnParams) -> Result<Index, AnnError> {
    let options = IndexOptions {
        dimensions: dim + 1,
        metric: MetricKind::L2sq,
        quantization: ScalarKind::F32,
        connectivity: params.connectivity.max(2),
        expansion_add: params.ef_construction.max(1),
        expansion_search: params.ef_search.max(1),
        multi: false,
    };
    let index = Index::new(&options).map_err(err)?;
    let n = vectors.len() / dim;
    // Concurrent inserts make the graph depend on thread timing, and an unlucky graph can miss
    // an item that another build finds (seen once in CI on the 240-item test shop). A catalog
    // below PARALLEL_BUILD_FROM builds in well under a second on one thread, into the same graph
    // on every start.
    let threads = if n < PARALLEL_BUILD_FROM {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |t| t.get()).min(n).max(1)
    };
    index.reserve_capacity_and_threads(n, SEARCH_CONTEXTS.max(threads)).map_err(err)?;
    let log = n >= LOG_PROGRESS_FROM;
    let started = Instant::now();
    if log {
        tracing::info!(
            items = n,
            dim,
            threads,
            connectivity = options.connectivity,
            ef_construction = options.expansion_add,
            "building the HNSW index"
        );
    }
    let done = AtomicUsize::new(0);
    let quarter = n.div_ceil(4);
    let add = |t: usize| -> Result<(), AnnError> {
        let mut point = vec![0.0f32; dim + 1];
        for (row, v) in vectors.chunks_exact(dim).enumerate().skip(t).step_by(threads) {
            point[..dim].copy_from_slice(v);
            point[dim] = (max_norm2 - dot(v, v)).max(0.0).sqrt();
            index.add(row as u64, &point).map_err(err)?;
            let added = done.fetch_add(1, Ordering::Relaxed) + 1;
            if log && added.is_multiple_of(quarter) && added < n {
                tracing::info!(added, of = n, elapsed_s = started.elapsed().as_secs_f64(), "HNSW index build progress");
            }
        }
        Ok(())
    };
    std::thread::scope(|s| {
        let workers: Vec<_> = (1..threads).map(|t| s.spawn(move || add(t))).collect();
        let mut result = add(0);
        for w in workers {
            let r = w.join().unwrap_or_else(|_| Err(AnnError::Index("an index builder thread panicked".into())));
            result = result.and(r);
        }
        result
    })?;
    if log {
        tracing::info!(items = n, elapsed_s = started.elapsed().as_secs_f64(), "HNSW index built");
    }
    Ok(index)
}

fn err(e: impl std::fmt::Display) -> AnnError {
    AnnError::Index(e.to_string())
}

/// Dot product of two equally long slices.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four independent accumulators let the compiler vectorise without -ffast-math.
    let mut acc = [0.0f32; 4];
    let mut ca = a.chunks_exact(4);
    let mut cb = b.chunks_exact(4);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    acc[0] + acc[1] + acc[2] + acc[3] + tail
}

/// Sorts by score, highest first; ties by row, lowest first (deterministic output).
pub fn sort_best_first(v: &mut [(u32, f32)]) {
    v.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
}

/// The `k` best of `v` (by score, ties by row), best first.
pub fn top_k(mut v: Vec<(u32, f32)>, k: usize) -> Vec<(u32, f32)> {
    let cmp = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if v.len() > k && k > 0 {
        v.select_nth_unstable_by(k - 1, cmp);
        v.truncate(k);
    } else if k == 0 {
        v.clear();
    }
    v.sort_unstable_by(cmp);
    v
}
