//! recserve-pipeline: the recommendation and search pipelines behind `POST /v1/recommend`.
//!
//! One [`Pipelines`] holds every scenario of a `pipelines.toml` and the tables and indexes they
//! share. A request runs:
//!
//! 1. **validate** the request against its scenario (`k` range, filters, query) — every error
//!    names its field ([`PipelineError::BadRequest`]);
//! 2. **user tower**: the user's row of the user table and the request context, preprocessed
//!    per `feature_spec.json`, go to the user-tower model in one call (skipped for a user not in
//!    the table: cold start);
//! 3. **retrieve**: approximate maximum-inner-product search over the item embeddings (HNSW by
//!    usearch, [`ann`]); a cold-start user gets the most popular items instead; scenarios with `text`
//!    also match the query against an item text column with BM25 ([`text`]); the lists are
//!    merged without duplicates. Filters and stock apply during retrieval;
//! 4. **rank**: all candidates' feature rows (user/context columns once, item columns
//!    precomputed at table load, derived columns per candidate) go to the ranker model in one
//!    batch;
//! 5. **rules**: in stock only, no duplicates, request filters, a per-category cap; top-k by
//!    score.
//!
//! Model calls go through a [`ModelRunner`] (the server implements it over the same batchers
//! that serve V2 requests). Tables reload atomically ([`Pipelines::reload_tables`]).
//!
//! # `pipelines.toml`
//!
//! Paths are relative to the file's folder. Unknown keys are errors.
//!
//! ```toml
//! feature_spec = "feature_spec.json"      # FORMAT.md §2; names the models and item embeddings
//!
//! [tables]
//! users = { path = "data/user_features.csv", key = "user_id" }
//! items = { path = "data/item_features.csv", key = "item_id" }
//! popularity_column = "popularity"        # item column for cold start (default "popularity")
//!
//! [ann]                                   # all optional; these are the defaults
//! ef_construction = 128                   # HNSW (usearch) candidate list while building
//! ef_search = 256                         # … while searching (at least; `retrieve` if larger)
//! connectivity = 32                       # neighbours per node (M)
//! exact_below = 1000                      # smaller catalogs are searched exactly
//! exact_filtered_below = 20000            # category filters covering ≤ this many items: exact
//!
//! [[scenario]]
//! name = "home_feed"
//! retrieve = 200                          # ANN (or popularity) candidates
//! rank = 200                              # candidates ranked after merging (default: all)
//! default_k = 20                          # k when the request has none
//! max_k = 100                             # k above this is a 400
//! in_stock_only = true                    # default true
//! diversity = { per_category = 5 }        # optional: at most 5 results per category
//! cold_start_context_category = "category" # optional: context key restricting popularity
//!
//! [[scenario]]
//! name = "search"
//! retrieve = 100
//! text = { candidates = 200, field = "title" }   # BM25 over this item column
//! merge = "interleave"                    # or "text_first", "ann_first"
//! require_query = true                    # missing/empty query → 400 naming `query`
//! max_query_len = 512                     # bytes (default 512)
//! rank = 300
//! default_k = 20
//! max_k = 100
//! ```
//!
//! The item table needs `title`, `category`, `price` and `stock`; `subcategory`, `brand` and
//! the popularity column are optional. `cross.category_affinity` reads the user column
//! `aff_<category>`, `cross.price_ratio` the user column `avg_price`.

pub mod ann;
pub mod config;
pub mod features;
mod pipeline;
pub mod request;
pub mod tables;
pub mod text;

pub use config::PipelinesConfig;
pub use features::{FeatureSpec, SpecError};
pub use pipeline::{ConfigError, ItemInfo, Pipelines};
pub use request::{
    ErrorClass, FeatureValue, Filters, ModelObserver, ModelOutput, ModelRunner, PipelineError, RecommendRequest,
    RecommendResponse, RecommendedItem, RunnerError, RunnerErrorKind, StageTimings,
};
