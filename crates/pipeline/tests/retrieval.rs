//! HNSW retrieval against exact search.

use recserve_pipeline::ann::{AnnParams, ItemIndex};

use crate::vectors;

#[test]
fn recall_at_100_on_clustered_vectors() {
    let dim = 16;
    let data = vectors::clustered(5000, dim, 40, 11);
    let index = ItemIndex::build(data, dim, AnnParams::default()).unwrap();
    let queries = vectors::clustered(50, dim, 40, 11);
    let mut total = 0.0;
    for q in queries.chunks_exact(dim) {
        let exact = index.exact(q, 100, None);
        let approx = index.search(q, 100, None);
        assert_eq!(approx.len(), 100);
        // scores are exact dot products, best first
        assert!(approx.windows(2).all(|w| w[0].1 >= w[1].1));
        for (r, s) in &approx {
            assert!((index.score(q, *r as usize) - s).abs() < 1e-5);
        }
        total += vectors::recall(&approx, &exact);
    }
    let recall = total / 50.0;
    assert!(recall >= 0.95, "recall@100 {recall}");
}

#[test]
fn a_search_for_more_rows_than_ef_search_explores_that_many() {
    let dim = 16;
    let data = vectors::clustered(5000, dim, 40, 12);
    let params = AnnParams { ef_search: 16, ..AnnParams::default() };
    let index = ItemIndex::build(data, dim, params).unwrap();
    let queries = vectors::clustered(20, dim, 40, 12);
    let mut total = 0.0;
    for q in queries.chunks_exact(dim) {
        let approx = index.search(q, 300, None);
        assert_eq!(approx.len(), 300);
        total += vectors::recall(&approx, &index.exact(q, 300, None));
    }
    let recall = total / 20.0;
    assert!(recall >= 0.95, "recall@300 with ef_search 16: {recall}");
    // More rows than the catalog holds: all of them.
    let q = &vectors::random(1, dim, 4);
    let tiny = ItemIndex::build(vectors::random(40, dim, 5), dim, AnnParams::default()).unwrap();
    assert_eq!(tiny.search(q, 100, None).len(), 40);
}

#[test]
fn filtered_search_only_returns_kept_rows() {
    let dim = 8;
    let index = ItemIndex::build(vectors::clustered(3000, dim, 20, 5), dim, AnnParams::default()).unwrap();
    let q = vectors::random(1, dim, 9);
    let keep = |r: usize| r.is_multiple_of(3);
    let got = index.search(&q, 50, Some(&keep));
    assert!(!got.is_empty());
    assert!(got.iter().all(|(r, _)| r.is_multiple_of(3)));
    let exact = index.exact(&q, 50, Some(&keep));
    assert!(vectors::recall(&got, &exact) >= 0.9);
}

#[test]
fn bad_embeddings_are_errors() {
    assert!(ItemIndex::build(vec![1.0; 10], 3, AnnParams::default()).is_err());
    assert!(ItemIndex::build(vec![1.0, f32::NAN], 2, AnnParams::default()).is_err());
    assert!(ItemIndex::build(vec![], 0, AnnParams::default()).is_err());
}
