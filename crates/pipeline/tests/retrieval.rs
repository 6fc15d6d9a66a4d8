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
