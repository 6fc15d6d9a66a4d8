//! Tokenizer, query overlap and BM25 on a tiny corpus checked by hand.

use recserve_pipeline::text::{Bm25Index, distinct_query_tokens, overlap, query_tokens, tokenize};

#[test]
fn tokenizer_lowercases_and_splits_on_non_alphanumerics() {
    let t: Vec<String> = tokenize("Nordlys wireless, noise-cancelling  HEADPHONES (black)!").collect();
    assert_eq!(t, ["nordlys", "wireless", "noise", "cancelling", "headphones", "black"]);
    assert_eq!(tokenize(" --- ").count(), 0);
}

#[test]
fn overlap_is_share_of_distinct_query_tokens() {
    let title = distinct_query_tokens("red wireless headphones");
    assert_eq!(overlap(&query_tokens("Red shoes"), &title), 0.5);
    // repeats count, as in train.py: 2 of 3 query tokens are in the title
    assert!((overlap(&query_tokens("red red shoes"), &title) - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(overlap(&query_tokens("headphones, RED!"), &title), 1.0);
    assert_eq!(overlap(&query_tokens(""), &title), 0.0);
}

#[test]
fn bm25_hand_checked() {
    // docs: 0 "red shoe" (len 2), 1 "blue shoe shoe" (len 3), 2 "red hat" (len 2); avgdl = 7/3
    let ix = Bm25Index::build(["red shoe", "blue shoe shoe", "red hat"].into_iter());
    // idf(df = 2 of N = 3) = ln(1 + (3 - 2 + 0.5) / 2.5) = ln 1.6
    assert!((ix.idf(2) - 1.6f32.ln()).abs() < 1e-6);
    let s = ix.scores("shoe");
    let idf = 1.6f32.ln();
    let d0 = idf * 2.2 / (1.0 + 1.2 * (0.25 + 0.75 * 2.0 / (7.0 / 3.0)));
    let d1 = idf * 2.0 * 2.2 / (2.0 + 1.2 * (0.25 + 0.75 * 3.0 / (7.0 / 3.0)));
    assert!((s[0] - d0).abs() < 1e-5, "{} vs {d0}", s[0]);
    assert!((s[1] - d1).abs() < 1e-5, "{} vs {d1}", s[1]);
    assert_eq!(s[2], 0.0);
    // "red shoe": doc 0 has both terms and ranks first
    let hits = ix.search("Red SHOE", 10, &|_| true);
    assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [0, 1, 2]);
    // filter and k
    let hits = ix.search("red shoe", 1, &|d| d != 0);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].0, 1);
    assert!(ix.search("umbrella", 10, &|_| true).is_empty());
}

#[test]
fn bm25_search_matches_the_dense_scores_and_leaves_no_state_behind() {
    let words = ["red", "blue", "shoe", "hat", "lamp", "wool", "black", "classic"];
    let docs: Vec<String> = (0..500usize)
        .map(|i| (0..1 + i % 4).map(|j| words[(i * 7 + j * 3 + i / 5) % words.len()]).collect::<Vec<_>>().join(" "))
        .collect();
    let ix = Bm25Index::build(docs.iter().map(String::as_str));
    let keep = |d: usize| !d.is_multiple_of(3);
    for round in 0..2 {
        for query in ["red shoe", "lamp", "black wool hat hat", "umbrella", "classic blue"] {
            let scores = ix.scores(query);
            let mut want: Vec<(u32, f32)> =
                scores.iter().enumerate().filter(|(d, s)| **s > 0.0 && keep(*d)).map(|(d, s)| (d as u32, *s)).collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            want.truncate(40);
            assert_eq!(ix.search(query, 40, &keep), want, "round {round}, query {query:?}");
        }
    }
    // A smaller index on the same thread after a bigger one.
    let small = Bm25Index::build(["red shoe", "blue hat"].into_iter());
    assert_eq!(small.search("red", 5, &|_| true).iter().map(|h| h.0).collect::<Vec<_>>(), [0]);
}
