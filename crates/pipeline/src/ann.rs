//! Approximate nearest-neighbour retrieval over item embeddings: owns the HNSW index
//! ([`instant_distance`], chosen over `hnsw_rs` by measurement — see ARCHITECTURE.md, "ANN
//! retrieval") and the exact brute-force search used as its reference and fallback.
//!
//! Retrieval is by maximum inner product (the `retrieval.score` feature is the dot product of
//! the user embedding and the item embedding). The graph is built and searched with the
//! inner-product "distance" `M² − a·b` (`M` = the largest item norm: hnswlib's `ip` space
//! shifted to stay non-negative), and queries are scaled to norm `M` (which does not change
//! their ranking), so every distance is ≥ 0. Returned scores are the exact dot products with
//! the unscaled query.
//!
//! instant-distance fixes `ef_search` when the graph is built, so the index is built with the
//! largest `ef` any scenario needs. A filtered search walks the `ef` nearest items and keeps
//! those the filter accepts; when fewer than `k` pass (a selective filter), it falls back to an
//! exact scan of the accepted items, so filters never lose results.

use std::cell::RefCell;

use instant_distance::{Builder, HnswMap, Search};

/// Index construction and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnParams {
    /// Candidate list size while building.
    pub ef_construction: usize,
    /// Candidate list size while searching: the most items one search can return.
    pub ef_search: usize,
}

impl Default for AnnParams {
    fn default() -> Self {
        AnnParams { ef_construction: 100, ef_search: 256 }
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
}

/// One item (or scaled query) in the graph, with the shift `M²`.
#[derive(Clone)]
struct IpPoint {
    v: Box<[f32]>,
    max_norm2: f32,
}

impl instant_distance::Point for IpPoint {
    fn distance(&self, other: &Self) -> f32 {
        (self.max_norm2 - dot(&self.v, &other.v)).max(0.0)
    }
}

/// [`IpPoint`] for 32-dim embeddings (the demo's), stored inline: the graph's points then sit
/// in one contiguous array (no pointer to chase per distance) and the dot product has a fixed
/// length the compiler unrolls. Distances are most of the search's time (profile in
/// BENCHMARKS.md, "Recommendation pipeline").
#[derive(Clone)]
struct IpPoint32 {
    v: [f32; 32],
    max_norm2: f32,
}

impl instant_distance::Point for IpPoint32 {
    fn distance(&self, other: &Self) -> f32 {
        (self.max_norm2 - dot32(&self.v, &other.v)).max(0.0)
    }
}

/// Dot product of two 32-value arrays, eight independent accumulators.
#[inline]
fn dot32(a: &[f32; 32], b: &[f32; 32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7])
}

/// The HNSW graph, with inline points for the common dimension.
enum Graph {
    Dim32(HnswMap<IpPoint32, u32>),
    Any(HnswMap<IpPoint, u32>),
}

/// Feeds the rows of `map`'s search for `q`, nearest first, to `f` until it returns false.
fn walk<P: instant_distance::Point>(map: &HnswMap<P, u32>, q: &P, mut f: impl FnMut(usize) -> bool) {
    SEARCH.with_borrow_mut(|search| {
        for item in map.search(q, search) {
            if !f(*item.value as usize) {
                break;
            }
        }
    });
}

thread_local! {
    static SEARCH: RefCell<Search> = RefCell::new(Search::default());
}

/// Item embeddings and the HNSW index over them. Rows are item positions (0-based) in the
/// item table.
pub struct ItemIndex {
    dim: usize,
    vectors: Vec<f32>,
    map: Option<Graph>,
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
    /// cores (rayon): 100k 32-dim items take tens of seconds on 2 cores.
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
        // Headroom so rounding in the dot product cannot push a distance below zero.
        let max_norm2 = max_norm2 * 1.001 + f32::MIN_POSITIVE;
        let map = (n > 0).then(|| {
            let builder =
                Builder::default().ef_construction(params.ef_construction.max(1)).ef_search(params.ef_search.max(1));
            let rows = (0..n as u32).collect();
            let inline: Option<Vec<IpPoint32>> =
                vectors.chunks_exact(dim).map(|v| Some(IpPoint32 { v: v.try_into().ok()?, max_norm2 })).collect();
            match inline {
                Some(points) => Graph::Dim32(builder.build(points, rows)),
                None => {
                    let points = vectors.chunks_exact(dim).map(|v| IpPoint { v: v.into(), max_norm2 }).collect();
                    Graph::Any(builder.build(points, rows))
                }
            }
        });
        Ok(ItemIndex { dim, vectors, map, max_norm2, params })
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

    /// The `ef_search` the index was built with (the most rows one search returns).
    pub fn ef_search(&self) -> usize {
        self.params.ef_search
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
    /// rows `keep` accepts, best first, with their exact dot products. At most `ef_search` rows
    /// without a filter. A query of the wrong length returns no rows.
    pub fn search(&self, query: &[f32], k: usize, keep: Option<&dyn Fn(usize) -> bool>) -> Vec<(u32, f32)> {
        let Some(map) = &self.map else { return Vec::new() };
        if query.len() != self.dim || k == 0 {
            return Vec::new();
        }
        let norm = dot(query, query).sqrt();
        let scale = if norm > 0.0 { self.max_norm2.sqrt() / norm } else { 1.0 };
        let scaled: Vec<f32> = query.iter().map(|x| x * scale).collect();
        let mut out: Vec<(u32, f32)> = Vec::with_capacity(k);
        let take = |row: usize| {
            if keep.is_none_or(|f| f(row)) {
                out.push((row as u32, self.score(query, row)));
            }
            out.len() < k
        };
        match map {
            Graph::Dim32(map) => {
                let Ok(v) = <[f32; 32]>::try_from(scaled.as_slice()) else { return Vec::new() };
                walk(map, &IpPoint32 { v, max_norm2: self.max_norm2 }, take);
            }
            Graph::Any(map) => walk(map, &IpPoint { v: scaled.into(), max_norm2: self.max_norm2 }, take),
        }
        if out.len() < k && keep.is_some() && self.len() > self.params.ef_search {
            // A selective filter left too few of the ef nearest: scan the accepted rows exactly.
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
