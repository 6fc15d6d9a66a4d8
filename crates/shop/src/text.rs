//! Text matching as FORMAT.md defines it for `query.overlap`: tokens are lowercase, split on every
//! character that is not alphanumeric, empty tokens dropped; the overlap is the share of the
//! query's tokens that occur among the title's tokens.

/// Lowercase alphanumeric tokens of `text`, in order (duplicates kept).
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase).collect()
}

/// Share of `query`'s tokens that occur among `title`'s tokens; 0 for an empty query.
pub fn query_overlap(query: &str, title: &str) -> f64 {
    let q = tokenize(query);
    if q.is_empty() {
        return 0.0;
    }
    let t = tokenize(title);
    overlap_tokens(&q, &t)
}

/// As [`query_overlap`] on already tokenized text.
pub(crate) fn overlap_tokens(query: &[String], title: &[String]) -> f64 {
    if query.is_empty() {
        return 0.0;
    }
    let hits = query.iter().filter(|q| title.iter().any(|t| t == *q)).count();
    hits as f64 / query.len() as f64
}
