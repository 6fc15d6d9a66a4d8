//! Text matching: owns the tokenizer shared with train.py (FORMAT.md: lowercase, split on every
//! character that is not alphanumeric, empty tokens dropped), the `query.overlap` feature, and
//! a BM25 index over one item text column for search retrieval.
//!
//! BM25 is our own (an inverted index over a few short title fields does not justify
//! tantivy's build): Okapi BM25 with k1 = 1.2, b = 0.75 and Lucene's non-negative idf
//! `ln(1 + (N − df + 0.5) / (df + 0.5))`; a term's frequency counts its occurrences in the
//! field, document length is the field's token count; repeated query terms count once.
//! Scores are accumulated in a dense per-thread vector (one f32 per item, ~0.4 MB for 100k
//! items, reused across requests), which beats a hash map for the common terms of titles; only
//! the documents a query term touched are then filtered, ranked and reset, so a search costs
//! the postings of its terms, not the size of the catalog.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::features::fnv1a;

/// BM25 term-frequency saturation.
pub const K1: f32 = 1.2;
/// BM25 length normalisation.
pub const B: f32 = 0.75;

/// Tokens of `s`: lowercase, split on every non-alphanumeric character, empty tokens dropped.
pub fn tokenize(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(|t| t.to_lowercase())
}

/// Token hashes of a query, in order, repeats kept (what `query.overlap` counts).
pub fn query_tokens(query: &str) -> Vec<u64> {
    tokenize(query).map(|t| fnv1a(t.as_bytes())).collect()
}

/// Distinct token hashes of a query, sorted (BM25 terms).
pub fn distinct_query_tokens(query: &str) -> Vec<u64> {
    let mut t = query_tokens(query);
    t.sort_unstable();
    t.dedup();
    t
}

/// `query.overlap`: the share of the query's tokens (repeats counted, as train.py does) found
/// among the title's distinct tokens (`title`: sorted hashes); 0 for an empty query.
pub fn overlap(query: &[u64], title: &[u64]) -> f64 {
    if query.is_empty() {
        return 0.0;
    }
    let hits = query.iter().filter(|q| title.binary_search(q).is_ok()).count();
    hits as f64 / query.len() as f64
}

/// An inverted index with BM25 scoring over one text per document.
#[derive(Debug, Default)]
pub struct Bm25Index {
    postings: HashMap<u64, Vec<(u32, u16)>>,
    doc_len: Vec<f32>,
    avg_len: f32,
}

impl Bm25Index {
    /// Indexes `docs` (document id = position).
    pub fn build<'a>(docs: impl Iterator<Item = &'a str>) -> Bm25Index {
        let mut postings: HashMap<u64, Vec<(u32, u16)>> = HashMap::new();
        let mut doc_len = Vec::new();
        let mut counts: HashMap<u64, u16> = HashMap::new();
        for (d, text) in docs.enumerate() {
            counts.clear();
            let mut len = 0u32;
            for t in tokenize(text) {
                len += 1;
                let c = counts.entry(fnv1a(t.as_bytes())).or_insert(0);
                *c = c.saturating_add(1);
            }
            for (t, c) in &counts {
                postings.entry(*t).or_default().push((d as u32, *c));
            }
            doc_len.push(len as f32);
        }
        for p in postings.values_mut() {
            p.sort_unstable();
        }
        let avg_len = if doc_len.is_empty() { 0.0 } else { doc_len.iter().sum::<f32>() / doc_len.len() as f32 };
        Bm25Index { postings, doc_len, avg_len }
    }

    pub fn len(&self) -> usize {
        self.doc_len.len()
    }

    pub fn is_empty(&self) -> bool {
        self.doc_len.is_empty()
    }

    /// Lucene's idf of a term found in `df` of the documents.
    pub fn idf(&self, df: usize) -> f32 {
        let n = self.doc_len.len() as f32;
        (1.0 + (n - df as f32 + 0.5) / (df as f32 + 0.5)).ln()
    }

    /// BM25 score of every document for `query` (0 for documents without a query term).
    pub fn scores(&self, query: &str) -> Vec<f32> {
        let mut scores = vec![0.0f32; self.doc_len.len()];
        let mut touched = Vec::new();
        self.accumulate(query, &mut scores, &mut touched);
        scores
    }

    /// Adds the BM25 contribution of each distinct term of `query` to `scores` (all zero on
    /// entry for the documents involved), pushing each document to `touched` the first time it
    /// scores. Every contribution is positive (idf > 0, tf ≥ 1), so "first time" is "was 0".
    fn accumulate(&self, query: &str, scores: &mut [f32], touched: &mut Vec<u32>) {
        let avg_len = self.avg_len.max(f32::MIN_POSITIVE);
        for term in distinct_query_tokens(query) {
            let Some(p) = self.postings.get(&term) else { continue };
            let idf = self.idf(p.len());
            for &(d, tf) in p {
                let tf = f32::from(tf);
                let norm = K1 * (1.0 - B + B * self.doc_len[d as usize] / avg_len);
                let s = &mut scores[d as usize];
                if *s == 0.0 {
                    touched.push(d);
                }
                *s += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
    }

    /// Up to `k` documents with a positive score among those `keep` accepts, best first
    /// (ties by document id).
    pub fn search(&self, query: &str, k: usize, keep: &dyn Fn(usize) -> bool) -> Vec<(u32, f32)> {
        SCRATCH.with_borrow_mut(|(scores, touched)| {
            if scores.len() < self.doc_len.len() {
                scores.resize(self.doc_len.len(), 0.0);
            }
            touched.clear();
            self.accumulate(query, scores, touched);
            let mut hits = Vec::with_capacity(touched.len());
            for &d in touched.iter() {
                let s = std::mem::replace(&mut scores[d as usize], 0.0);
                if s > 0.0 && keep(d as usize) {
                    hits.push((d, s));
                }
            }
            crate::ann::top_k(hits, k)
        })
    }
}

thread_local! {
    /// Per-thread score accumulator (all zeros between searches) and the documents touched.
    static SCRATCH: RefCell<(Vec<f32>, Vec<u32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}
