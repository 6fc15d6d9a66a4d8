//! `pipelines.toml`: owns the pipeline configuration file's format, its defaults and its
//! checks. The format is documented in the crate docs and in examples/ecommerce/PIPELINES.md.

use std::path::PathBuf;

use serde::Deserialize;

use crate::ann::AnnParams;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelinesConfig {
    /// Path of `feature_spec.json` (relative to the config file's folder).
    pub feature_spec: PathBuf,
    pub tables: TablesConfig,
    #[serde(default)]
    pub ann: AnnConfig,
    #[serde(rename = "scenario")]
    pub scenarios: Vec<ScenarioConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablesConfig {
    pub users: TableConfig,
    pub items: TableConfig,
    /// Item column used for popularity (cold start).
    #[serde(default = "default_popularity")]
    pub popularity_column: String,
}

fn default_popularity() -> String {
    "popularity".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    pub path: PathBuf,
    pub key: String,
}

/// Index parameters and the exact-search cut-offs.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnConfig {
    /// HNSW candidate list size while building.
    pub ef_construction: usize,
    /// HNSW candidate list size while searching, at least (a scenario retrieving more uses its
    /// `retrieve`).
    pub ef_search: usize,
    /// HNSW neighbours per node (`M`).
    pub connectivity: usize,
    /// Catalogs with fewer items than this are searched exactly.
    pub exact_below: usize,
    /// A category filter whose categories hold at most this many items is searched exactly
    /// over those items (filtered HNSW search loses recall when few items pass).
    pub exact_filtered_below: usize,
}

impl Default for AnnConfig {
    fn default() -> Self {
        let p = AnnParams::default();
        AnnConfig {
            ef_construction: p.ef_construction,
            ef_search: p.ef_search,
            connectivity: p.connectivity,
            exact_below: 1000,
            exact_filtered_below: 20_000,
        }
    }
}

impl AnnConfig {
    /// Index parameters.
    pub fn params(&self) -> AnnParams {
        AnnParams { ef_construction: self.ef_construction, ef_search: self.ef_search, connectivity: self.connectivity }
    }
}

/// How ANN and text candidates are merged before ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergePolicy {
    /// Alternate text and ANN candidates (text first), skipping duplicates.
    #[default]
    Interleave,
    /// All text candidates, then ANN candidates.
    TextFirst,
    /// All ANN candidates, then text candidates.
    AnnFirst,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// BM25 candidates to retrieve.
    pub candidates: usize,
    /// The item column matched against the query.
    #[serde(default = "default_text_field")]
    pub field: String,
}

fn default_text_field() -> String {
    "title".into()
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiversityConfig {
    /// At most this many results per top-level category.
    pub per_category: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioConfig {
    pub name: String,
    /// ANN (or popularity, for cold start) candidates to retrieve.
    pub retrieve: usize,
    /// Candidates ranked after merging (the rest are dropped); default: all.
    #[serde(default)]
    pub rank: Option<usize>,
    pub default_k: usize,
    pub max_k: usize,
    #[serde(default = "yes")]
    pub in_stock_only: bool,
    #[serde(default)]
    pub diversity: Option<DiversityConfig>,
    /// Text retrieval (search scenarios).
    #[serde(default)]
    pub text: Option<TextConfig>,
    #[serde(default)]
    pub merge: MergePolicy,
    /// Reject requests without a non-empty `query` (400 naming `query`).
    #[serde(default)]
    pub require_query: bool,
    /// Longest accepted query, in bytes.
    #[serde(default = "default_max_query")]
    pub max_query_len: usize,
    /// For cold-start users, a `context` key whose value, when it names a known category,
    /// restricts popularity candidates to it.
    #[serde(default)]
    pub cold_start_context_category: Option<String>,
}

fn yes() -> bool {
    true
}

fn default_max_query() -> usize {
    512
}

impl PipelinesConfig {
    /// Checks what serde cannot: names unique, ranges sensible.
    pub fn check(&self) -> Result<(), String> {
        if self.scenarios.is_empty() {
            return Err("at least one [[scenario]] is required".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &self.scenarios {
            let e = |m: &str| Err(format!("scenario '{}': {m}", s.name));
            if s.name.is_empty() {
                return Err("a scenario has an empty name".into());
            }
            if !names.insert(s.name.as_str()) {
                return e("duplicate name");
            }
            if s.max_k == 0 || s.default_k == 0 || s.default_k > s.max_k {
                return e("need 1 ≤ default_k ≤ max_k");
            }
            if s.retrieve == 0 && s.text.is_none() {
                return e("retrieve must be at least 1");
            }
            if s.rank == Some(0) {
                return e("rank must be at least 1");
            }
            if s.diversity.is_some_and(|d| d.per_category == 0) {
                return e("diversity.per_category must be at least 1");
            }
            if s.require_query && s.text.is_none() {
                return e("require_query needs text retrieval ([scenario.text])");
            }
        }
        if self.ann.ef_construction == 0 || self.ann.ef_search == 0 || self.ann.connectivity < 2 {
            return Err("[ann]: ef_construction ≥ 1, ef_search ≥ 1 and connectivity ≥ 2 are required".into());
        }
        Ok(())
    }
}
