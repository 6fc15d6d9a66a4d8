//! [`Pipelines`]: owns the loaded configuration, the current table snapshot (users, items,
//! item embeddings and the indexes built over them, swapped atomically on reload) and the
//! request path: validate → user tower → retrieve → merge → assemble ranker rows → rank →
//! business rules → top-k.
//!
//! CPU work on the request path (retrieval, feature assembly for a few hundred candidates,
//! rules) runs inline on the caller's task: it takes well under a millisecond on a 100k-item
//! catalog (see benches/retrieval.rs), less than a hop to a blocking thread would cost. Model
//! calls go through the [`ModelRunner`], i.e. the served models' batchers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;

use recserve_engine::{Tensor, TensorData};

use crate::ann::{AnnError, ItemIndex, top_k};
use crate::config::{MergePolicy, PipelinesConfig, ScenarioConfig};
use crate::features::{FeatureSet, FeatureSpec, Raw, Source, SpecError};
use crate::request::{
    FeatureValue, ModelObserver, ModelRunner, PipelineError, RecommendRequest, RecommendResponse, RecommendedItem,
    RunnerError, RunnerErrorKind, StageTimings,
};
use crate::tables::{ItemCatalog, Table, TableError, load_embeddings};
use crate::text::{Bm25Index, overlap, query_tokens};

/// Errors loading or reloading the pipelines.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("item embeddings: {0}")]
    Ann(#[from] AnnError),
}

/// Public view of one catalog item.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ItemInfo {
    pub item_id: String,
    pub title: String,
    pub category: String,
    pub subcategory: String,
    pub brand: String,
    pub price: f64,
    pub stock: i64,
    pub popularity: f64,
}

/// Where one model input feature reads from, resolved against the loaded tables.
#[derive(Debug, Clone)]
enum Bound {
    UserColumn(usize),
    Context(String),
    /// Precomputed per item: columns `[offset, offset + width)` of the item matrix.
    ItemPrecomputed(usize),
    RetrievalScore,
    QueryOverlap,
    CategoryAffinity,
    PriceRatio,
}

/// The item side of a snapshot: rebuilt only when the item table or embeddings change.
struct ItemSide {
    catalog: ItemCatalog,
    index: ItemIndex,
    text: HashMap<String, Bm25Index>,
    /// Ranker features with an `item.*` source, evaluated per item at load: `rows × item_width`.
    item_matrix: Vec<f32>,
    item_width: usize,
    fingerprint: Vec<FileStamp>,
}

/// Everything a request reads, swapped as one.
struct Snapshot {
    users: Table,
    items: Arc<ItemSide>,
    user_tower: Vec<Bound>,
    ranker: Vec<Bound>,
    /// Users-table column `aff_<category>` per category id.
    affinity_columns: Vec<Option<usize>>,
    avg_price_column: Option<usize>,
    /// Item-table column of each ranker feature read from `item.*` (raw values for drift).
    ranker_item_columns: Vec<Option<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> FileStamp {
    let meta = std::fs::metadata(path).ok();
    FileStamp {
        path: path.to_path_buf(),
        len: meta.as_ref().map_or(0, |m| m.len()),
        modified: meta.and_then(|m| m.modified().ok()),
    }
}

/// All scenarios of one `pipelines.toml`, with the shared tables and indexes.
pub struct Pipelines {
    config_path: PathBuf,
    base: PathBuf,
    config: PipelinesConfig,
    spec: FeatureSpec,
    snapshot: ArcSwap<Snapshot>,
    reload_lock: Mutex<()>,
    observer: OnceLock<Arc<dyn ModelObserver>>,
}

impl std::fmt::Debug for Pipelines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipelines")
            .field("config", &self.config_path)
            .field("scenarios", &self.scenarios())
            .finish_non_exhaustive()
    }
}

impl Pipelines {
    /// Loads `pipelines.toml`, the feature spec, the tables and embeddings, and builds the
    /// indexes. Blocking (index construction takes seconds for 100k items). Paths in the file
    /// are relative to its folder.
    pub fn load(config_file: &Path) -> Result<Pipelines, ConfigError> {
        let text = std::fs::read_to_string(config_file)
            .map_err(|source| ConfigError::Io { path: config_file.to_path_buf(), source })?;
        let config: PipelinesConfig = toml::from_str(&text)
            .map_err(|e| ConfigError::Toml { path: config_file.to_path_buf(), message: e.to_string() })?;
        config.check().map_err(|message| ConfigError::Invalid { path: config_file.to_path_buf(), message })?;
        let base = config_file.parent().map(Path::to_path_buf).unwrap_or_default();
        let spec_path = base.join(&config.feature_spec);
        let spec_text = std::fs::read_to_string(&spec_path)
            .map_err(|source| ConfigError::Io { path: spec_path.clone(), source })?;
        let spec = FeatureSpec::parse(&spec_text)?;
        let snap = build_snapshot(&base, &config, &spec, None)?;
        Ok(Pipelines {
            config_path: config_file.to_path_buf(),
            base,
            config,
            spec,
            snapshot: ArcSwap::from_pointee(snap),
            reload_lock: Mutex::new(()),
            observer: OnceLock::new(),
        })
    }

    /// Sets the observer that sees the user tower's input and the ranker's features and score
    /// of every shown item (once; a second call returns the observer back as the error).
    pub fn set_observer(&self, observer: Arc<dyn ModelObserver>) -> Result<(), Arc<dyn ModelObserver>> {
        self.observer.set(observer)
    }

    /// Scenario names, in file order.
    pub fn scenarios(&self) -> Vec<String> {
        self.config.scenarios.iter().map(|s| s.name.clone()).collect()
    }

    /// The served models the pipelines call (the user tower and the ranker).
    pub fn required_models(&self) -> BTreeSet<String> {
        [self.spec.user_tower.model.clone(), self.spec.ranker.model.clone()].into_iter().collect()
    }

    /// The compiled feature spec (feature names, for drift monitoring).
    pub fn feature_spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// The scenario's configuration.
    pub fn scenario(&self, name: &str) -> Option<&ScenarioConfig> {
        self.config.scenarios.iter().find(|s| s.name == name)
    }

    /// Number of rows in the user and item tables currently served.
    pub fn table_sizes(&self) -> (usize, usize) {
        let s = self.snapshot.load();
        (s.users.len(), s.items.catalog.len())
    }

    /// One catalog item by id (the server validates feedback item ids with it).
    pub fn item(&self, item_id: &str) -> Option<ItemInfo> {
        let s = self.snapshot.load();
        let c = &s.items.catalog;
        let r = c.table.row(item_id)?;
        Some(ItemInfo {
            item_id: c.id(r).to_string(),
            title: c.title(r).to_string(),
            category: c.category_name(r).to_string(),
            subcategory: c.subcategory_name(r).to_string(),
            brand: c.brand_name(r).to_string(),
            price: c.price[r],
            stock: c.stock[r],
            popularity: c.popularity[r],
        })
    }

    /// Whether `user_id` is in the user table.
    pub fn knows_user(&self, user_id: &str) -> bool {
        self.snapshot.load().users.row(user_id).is_some()
    }

    /// Re-reads the tables and swaps them in atomically. The item side (catalog, embeddings,
    /// indexes) is rebuilt only when the item table or the embeddings file changed (size or
    /// modification time). On any error the tables in service stay. Blocking.
    pub fn reload_tables(&self) -> Result<(), ConfigError> {
        let _guard = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.snapshot.load_full();
        let snap = build_snapshot(&self.base, &self.config, &self.spec, Some(&current))?;
        tracing::info!(users = snap.users.len(), items = snap.items.catalog.len(), "pipeline tables reloaded");
        self.snapshot.store(Arc::new(snap));
        Ok(())
    }

    /// Serves one request: see the module docs for the stages.
    #[tracing::instrument(skip_all, fields(scenario = %req.scenario))]
    pub async fn recommend(
        &self,
        req: RecommendRequest,
        runner: &dyn ModelRunner,
    ) -> Result<RecommendResponse, PipelineError> {
        let t_start = Instant::now();
        let mut stages = StageTimings::default();
        let scenario = self
            .scenario(&req.scenario)
            .ok_or_else(|| PipelineError::UnknownScenario { name: req.scenario.clone(), known: self.scenarios() })?;
        let snap = self.snapshot.load_full();
        let items = &snap.items;
        let cat = &items.catalog;
        let v = validate(&req, scenario, cat)?;
        let user_row = snap.users.row(&req.user_id);
        let mut model_versions = BTreeMap::new();
        let observer = self.observer.get().filter(|o| o.wants());

        // User tower: one row, one call (skipped for a cold-start user).
        let mut embedding: Option<Vec<f32>> = None;
        if let Some(u) = user_row {
            let t = Instant::now();
            let set = &self.spec.user_tower;
            let mut row = vec![0.0f32; set.width];
            fill_request_features(set, &snap.user_tower, &snap.users, Some(u), req.context.as_ref(), &mut row);
            stages.user_features = t.elapsed();
            let observed = observer.map(|_| row.clone());
            let t = Instant::now();
            let out = run_model(runner, set, row, 1).await?;
            stages.user_tower = t.elapsed();
            if let (Some(observer), Some(row)) = (observer, observed) {
                let mut values = Vec::with_capacity(set.features.len());
                observed_features(set, &snap.user_tower, None, &snap, Some(u), req.context.as_ref(), &row, &mut values);
                observer.observe(&set.model, &out.0, &values, &[]);
            }
            let emb = out_column_values(&out.1, set, 1, None)?;
            if emb.len() != self.spec.embedding_dim {
                return Err(PipelineError::Internal(format!(
                    "model '{}' output '{}' has {} values, feature_spec.json says embedding_dim {}",
                    set.model,
                    set.output,
                    emb.len(),
                    self.spec.embedding_dim
                )));
            }
            model_versions.insert(set.model.clone(), out.0);
            embedding = Some(emb);
        }

        // Retrieval.
        let t = Instant::now();
        let keep = |r: usize| v.keep(cat, r);
        let main: Vec<(u32, f32)> = match &embedding {
            Some(e) => self.ann_candidates(items, e, scenario.retrieve, &v, &keep),
            None => popularity_candidates(cat, scenario, &req, scenario.retrieve, &keep),
        };
        let text: Vec<(u32, f32)> = match (&scenario.text, v.query.as_deref()) {
            (Some(tc), Some(q)) => {
                items.text.get(&tc.field).map_or_else(Vec::new, |ix| ix.search(q, tc.candidates, &keep))
            }
            _ => Vec::new(),
        };
        let main_tag = if embedding.is_some() { TAG_ANN } else { TAG_POP };
        let mut candidates = merge(&main, main_tag, &text, scenario.merge);
        candidates.truncate(scenario.rank.unwrap_or(usize::MAX));
        stages.retrieval = t.elapsed();
        let n = candidates.len();

        let mut scored: Vec<(u32, f32, u8, u32)> = Vec::new();
        let mut ranked: Option<(Vec<f32>, String)> = None;
        if n > 0 {
            // Ranker rows.
            let t = Instant::now();
            let set = &self.spec.ranker;
            let mut template = vec![0.0f32; set.width];
            fill_request_features(set, &snap.ranker, &snap.users, user_row, req.context.as_ref(), &mut template);
            let qtok = v.query.as_deref().map(query_tokens).unwrap_or_default();
            let mut rows = vec![0.0f32; n * set.width];
            for (row_out, &(r, _)) in rows.chunks_exact_mut(set.width).zip(&candidates) {
                row_out.copy_from_slice(&template);
                self.fill_candidate(&snap, user_row, embedding.as_deref(), &qtok, r as usize, row_out);
            }
            stages.preprocess = t.elapsed();
            let observed = observer.map(|_| rows.clone());
            let t = Instant::now();
            let out = run_model(runner, set, rows, n).await?;
            let scores = out_column_values(&out.1, set, n, set.output_column)?;
            stages.ranking = t.elapsed();
            scored =
                candidates.iter().zip(scores).enumerate().map(|(i, (&(r, tag), s))| (r, s, tag, i as u32)).collect();
            model_versions.insert(set.model.clone(), out.0.clone());
            ranked = observed.map(|rows| (rows, out.0));
        }

        // Business rules and top-k.
        let t = Instant::now();
        scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let cap = scenario.diversity.map_or(usize::MAX, |d| d.per_category);
        let mut per_category: HashMap<u32, usize> = HashMap::new();
        let mut seen = std::collections::HashSet::with_capacity(scored.len());
        let mut out_items = Vec::with_capacity(v.k);
        let mut shown = Vec::with_capacity(v.k);
        for (r, score, tag, idx) in scored {
            if out_items.len() == v.k {
                break;
            }
            let row = r as usize;
            if !seen.insert(r) || !v.keep(cat, row) {
                continue;
            }
            let c = per_category.entry(cat.category[row]).or_insert(0);
            if *c >= cap {
                continue;
            }
            *c += 1;
            shown.push((r as usize, idx as usize, score));
            out_items.push(RecommendedItem {
                item_id: cat.id(row).to_string(),
                score,
                title: cat.title(row).to_string(),
                category: cat.category_name(row).to_string(),
                subcategory: cat.subcategory_name(row).to_string(),
                brand: cat.brand_name(row).to_string(),
                price: cat.price[row],
                stock: cat.stock[row],
                retrieved_by: tag_name(tag).to_string(),
            });
        }
        stages.rules = t.elapsed();
        if let (Some(observer), Some((rows, version))) = (observer, &ranked) {
            self.observe_shown(observer.as_ref(), version, &snap, user_row, req.context.as_ref(), rows, &shown);
        }
        stages.total = t_start.elapsed();
        Ok(RecommendResponse {
            scenario: scenario.name.clone(),
            items: out_items,
            model_versions,
            cold_start: user_row.is_none(),
            candidates: n,
            stages,
        })
    }

    /// The model input rows the pipeline would build: the user tower's row for `user_id` and
    /// `context`, and one ranker row per item of `item_ids` (with `embedding` as the user
    /// embedding for `retrieval.score`). For checking against train.py's feature samples and
    /// for debugging; the request path does the same without this method's allocations.
    pub fn feature_rows(
        &self,
        user_id: &str,
        context: Option<&serde_json::Map<String, serde_json::Value>>,
        query: Option<&str>,
        item_ids: &[&str],
        embedding: Option<&[f32]>,
    ) -> Result<(Vec<f32>, Vec<Vec<f32>>), PipelineError> {
        let snap = self.snapshot.load_full();
        let user_row = snap.users.row(user_id);
        let ut = &self.spec.user_tower;
        let mut urow = vec![0.0f32; ut.width];
        fill_request_features(ut, &snap.user_tower, &snap.users, user_row, context, &mut urow);
        let set = &self.spec.ranker;
        let mut template = vec![0.0f32; set.width];
        fill_request_features(set, &snap.ranker, &snap.users, user_row, context, &mut template);
        let qtok = query.map(query_tokens).unwrap_or_default();
        let rows =
            item_ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let r =
                        snap.items.catalog.table.row(id).ok_or_else(|| {
                            PipelineError::bad(format!("item_ids[{i}]"), format!("unknown item '{id}'"))
                        })?;
                    let mut row = template.clone();
                    self.fill_candidate(&snap, user_row, embedding, &qtok, r, &mut row);
                    Ok(row)
                })
                .collect::<Result<Vec<_>, PipelineError>>()?;
        Ok((urow, rows))
    }

    fn ann_candidates(
        &self,
        items: &ItemSide,
        query: &[f32],
        k: usize,
        v: &Validated,
        keep: &dyn Fn(usize) -> bool,
    ) -> Vec<(u32, f32)> {
        if k == 0 {
            return Vec::new();
        }
        let ann = &self.config.ann;
        let cat = &items.catalog;
        if let Some(ids) = &v.categories {
            let total: usize = ids.iter().map(|c| cat.rows_of_category[*c as usize].len()).sum();
            if total <= ann.exact_filtered_below {
                let mut rows: Vec<u32> =
                    ids.iter().flat_map(|c| cat.rows_of_category[*c as usize].iter().copied()).collect();
                rows.sort_unstable();
                rows.dedup();
                let all = rows
                    .into_iter()
                    .filter(|r| keep(*r as usize))
                    .map(|r| (r, items.index.score(query, r as usize)))
                    .collect();
                return top_k(all, k);
            }
        }
        if cat.len() < ann.exact_below {
            return items.index.exact(query, k, Some(keep));
        }
        if v.filters_nothing { items.index.search(query, k, None) } else { items.index.search(query, k, Some(keep)) }
    }

    /// Hands the ranker features and score of each shown item to the observer. `rows` are the
    /// ranker's input rows; `shown` is (catalog row, candidate index, score) per shown item.
    #[allow(clippy::too_many_arguments)]
    fn observe_shown(
        &self,
        observer: &dyn ModelObserver,
        version: &str,
        snap: &Snapshot,
        user_row: Option<usize>,
        context: Option<&serde_json::Map<String, serde_json::Value>>,
        rows: &[f32],
        shown: &[(usize, usize, f32)],
    ) {
        let set = &self.spec.ranker;
        let mut values = Vec::with_capacity(set.features.len());
        for &(r, idx, score) in shown {
            let row = &rows[idx * set.width..(idx + 1) * set.width];
            let item = Some((r, snap.ranker_item_columns.as_slice()));
            observed_features(set, &snap.ranker, item, snap, user_row, context, row, &mut values);
            observer.observe(&set.model, version, &values, &[f64::from(score)]);
        }
    }

    /// Writes the candidate-dependent ranker columns of item row `r` into `row`.
    fn fill_candidate(
        &self,
        snap: &Snapshot,
        user_row: Option<usize>,
        embedding: Option<&[f32]>,
        qtok: &[u64],
        r: usize,
        row: &mut [f32],
    ) {
        let set = &self.spec.ranker;
        let items = &snap.items;
        let cat = &items.catalog;
        for ((f, b), &off) in set.features.iter().zip(&snap.ranker).zip(&set.offsets) {
            let out = &mut row[off..off + f.width()];
            match b {
                Bound::UserColumn(_) | Bound::Context(_) => {}
                Bound::ItemPrecomputed(io) => {
                    let start = r * items.item_width + io;
                    out.copy_from_slice(&items.item_matrix[start..start + f.width()]);
                }
                Bound::RetrievalScore => {
                    let raw = embedding.map_or(Raw::Missing, |e| Raw::Num(f64::from(items.index.score(e, r))));
                    f.eval(raw, out);
                }
                Bound::QueryOverlap => f.eval(Raw::Num(overlap(qtok, cat.title_tokens(r))), out),
                Bound::CategoryAffinity => {
                    let raw = match (user_row, snap.affinity_columns[cat.category[r] as usize]) {
                        (Some(u), Some(c)) => Raw::Str(snap.users.cell(u, c)),
                        _ => Raw::Missing,
                    };
                    f.eval(raw, out);
                }
                Bound::PriceRatio => {
                    let avg = match (user_row, snap.avg_price_column) {
                        (Some(u), Some(c)) => snap.users.cell(u, c).trim().parse::<f64>().ok(),
                        _ => None,
                    };
                    let raw = match avg {
                        Some(a) if a != 0.0 && a.is_finite() => Raw::Num(cat.price[r] / a),
                        _ => Raw::Missing,
                    };
                    f.eval(raw, out);
                }
            }
        }
    }
}

/// A raw categorical value, `None` when blank (the drift monitor counts it as missing).
fn text(s: &str) -> Option<&str> {
    if s.trim().is_empty() { None } else { Some(s) }
}

/// Loads the tables (reusing `current`'s item side when its files are unchanged) and binds
/// every feature to its column.
fn build_snapshot(
    base: &Path,
    config: &PipelinesConfig,
    spec: &FeatureSpec,
    current: Option<&Snapshot>,
) -> Result<Snapshot, ConfigError> {
    let users_path = base.join(&config.tables.users.path);
    let items_path = base.join(&config.tables.items.path);
    let emb_path = base.join(&spec.item_embeddings);
    let fingerprint = vec![stamp(&items_path), stamp(&emb_path)];
    let items = match current {
        Some(c) if c.items.fingerprint == fingerprint => Arc::clone(&c.items),
        _ => Arc::new(build_items(config, spec, &items_path, &emb_path, fingerprint)?),
    };
    let users = Table::load(&users_path, &config.tables.users.key)?;
    let bind = |set: &FeatureSet| -> Result<Vec<Bound>, ConfigError> {
        let mut item_off = 0;
        set.features
            .iter()
            .map(|f| {
                Ok(match &f.source {
                    Source::User(c) => Bound::UserColumn(users.require_column(c)?),
                    Source::Context(k) => Bound::Context(k.clone()),
                    Source::Item(_) => {
                        let b = Bound::ItemPrecomputed(item_off);
                        item_off += f.width();
                        b
                    }
                    Source::RetrievalScore => Bound::RetrievalScore,
                    Source::QueryOverlap => Bound::QueryOverlap,
                    Source::CategoryAffinity => Bound::CategoryAffinity,
                    Source::PriceRatio => Bound::PriceRatio,
                })
            })
            .collect()
    };
    let user_tower = bind(&spec.user_tower)?;
    let ranker = bind(&spec.ranker)?;
    let affinity_columns = items.catalog.categories.names.iter().map(|c| users.column(&format!("aff_{c}"))).collect();
    let avg_price_column = users.column("avg_price");
    let ranker_item_columns = spec
        .ranker
        .features
        .iter()
        .map(|f| match &f.source {
            Source::Item(c) => items.catalog.table.column(c),
            _ => None,
        })
        .collect();
    Ok(Snapshot { users, items, user_tower, ranker, affinity_columns, avg_price_column, ranker_item_columns })
}

/// Loads the item table and embeddings, builds the indexes and the item feature matrix.
fn build_items(
    config: &PipelinesConfig,
    spec: &FeatureSpec,
    items_path: &Path,
    emb_path: &Path,
    fingerprint: Vec<FileStamp>,
) -> Result<ItemSide, ConfigError> {
    let table = Table::load(items_path, &config.tables.items.key)?;
    let catalog = ItemCatalog::new(table, &config.tables.popularity_column)?;
    let dim = spec.embedding_dim;
    let vectors = load_embeddings(emb_path, catalog.len(), dim)?;
    let index = ItemIndex::build(vectors, dim, config.ann.params())?;
    let mut text = HashMap::new();
    for s in &config.scenarios {
        if let Some(t) = &s.text
            && !text.contains_key(&t.field)
        {
            let col = catalog.table.require_column(&t.field)?;
            let bm25 = Bm25Index::build((0..catalog.len()).map(|r| catalog.table.cell(r, col)));
            text.insert(t.field.clone(), bm25);
        }
    }
    // Item-side ranker features, evaluated once per item.
    let item_feats: Vec<(usize, &crate::features::Feature)> = spec
        .ranker
        .features
        .iter()
        .filter_map(|f| match &f.source {
            Source::Item(c) => Some((c, f)),
            _ => None,
        })
        .map(|(c, f)| Ok::<_, ConfigError>((catalog.table.require_column(c)?, f)))
        .collect::<Result<_, _>>()?;
    let item_width: usize = item_feats.iter().map(|(_, f)| f.width()).sum();
    let mut item_matrix = vec![0.0f32; catalog.len() * item_width];
    for (r, row) in item_matrix.chunks_exact_mut(item_width.max(1)).enumerate().take(catalog.len()) {
        let mut off = 0;
        for (col, f) in &item_feats {
            f.eval(Raw::Str(catalog.table.cell(r, *col)), &mut row[off..off + f.width()]);
            off += f.width();
        }
    }
    Ok(ItemSide { catalog, index, text, item_matrix, item_width, fingerprint })
}

const TAG_ANN: u8 = 1;
const TAG_TEXT: u8 = 2;
const TAG_POP: u8 = 4;

fn tag_name(tag: u8) -> &'static str {
    match tag {
        TAG_ANN => "ann",
        TAG_TEXT => "text",
        t if t == TAG_ANN | TAG_TEXT => "ann+text",
        t if t == TAG_POP | TAG_TEXT => "popularity+text",
        _ => "popularity",
    }
}

/// Merges the main (ANN or popularity) and text candidate lists without duplicates.
fn merge(main: &[(u32, f32)], main_tag: u8, text: &[(u32, f32)], policy: MergePolicy) -> Vec<(u32, u8)> {
    let mut out: Vec<(u32, u8)> = Vec::with_capacity(main.len() + text.len());
    let mut pos: HashMap<u32, usize> = HashMap::with_capacity(main.len() + text.len());
    let mut push = |r: u32, tag: u8| match pos.get(&r) {
        Some(&i) => out[i].1 |= tag,
        None => {
            pos.insert(r, out.len());
            out.push((r, tag));
        }
    };
    match policy {
        MergePolicy::AnnFirst => {
            main.iter().for_each(|c| push(c.0, main_tag));
            text.iter().for_each(|c| push(c.0, TAG_TEXT));
        }
        MergePolicy::TextFirst => {
            text.iter().for_each(|c| push(c.0, TAG_TEXT));
            main.iter().for_each(|c| push(c.0, main_tag));
        }
        MergePolicy::Interleave => {
            for i in 0..main.len().max(text.len()) {
                if let Some(c) = text.get(i) {
                    push(c.0, TAG_TEXT);
                }
                if let Some(c) = main.get(i) {
                    push(c.0, main_tag);
                }
            }
        }
    }
    out
}

/// Popularity candidates for a cold-start user: the most popular items passing the filters
/// (and, when configured, within the context's category).
fn popularity_candidates(
    cat: &ItemCatalog,
    scenario: &ScenarioConfig,
    req: &RecommendRequest,
    k: usize,
    keep: &dyn Fn(usize) -> bool,
) -> Vec<(u32, f32)> {
    let ctx_cat = scenario
        .cold_start_context_category
        .as_ref()
        .and_then(|key| req.context.as_ref()?.get(key)?.as_str())
        .and_then(|name| cat.categories.get(name));
    cat.by_popularity
        .iter()
        .map(|r| *r as usize)
        .filter(|&r| ctx_cat.is_none_or(|c| cat.category[r] == c || cat.subcategory[r] == c))
        .filter(|&r| keep(r))
        .take(k)
        .map(|r| (r as u32, cat.popularity[r] as f32))
        .collect()
}

/// The features of one model input `row` as a drift observer sees them (into `out`, cleared
/// first): categorical features as their raw value — the user table's cell, the context's
/// string, or for an item feature (`item`: catalog row and the table column of each feature)
/// the item table's cell — numeric ones as the model sees them, from `row`.
#[allow(clippy::too_many_arguments)]
fn observed_features<'a>(
    set: &'a FeatureSet,
    bound: &[Bound],
    item: Option<(usize, &[Option<usize>])>,
    snap: &'a Snapshot,
    user_row: Option<usize>,
    context: Option<&'a serde_json::Map<String, serde_json::Value>>,
    row: &[f32],
    out: &mut Vec<(&'a str, FeatureValue<'a>)>,
) {
    out.clear();
    let cat = &snap.items.catalog;
    for (i, (f, b)) in set.features.iter().zip(bound).enumerate() {
        let value = if f.is_categorical() {
            let raw = match b {
                Bound::UserColumn(c) => user_row.and_then(|u| text(snap.users.cell(u, *c))),
                Bound::Context(key) => match context.and_then(|c| c.get(key)) {
                    Some(serde_json::Value::String(s)) => text(s),
                    _ => None,
                },
                Bound::ItemPrecomputed(_) => {
                    item.and_then(|(r, columns)| columns[i].and_then(|c| text(cat.table.cell(r, c))))
                }
                _ => None,
            };
            raw.map_or(FeatureValue::Missing, FeatureValue::Categorical)
        } else {
            FeatureValue::Numeric(f64::from(row[set.offsets[i]]))
        };
        out.push((f.name.as_str(), value));
    }
}

/// Fills the request-constant columns (user.* and context.*) of one model row.
fn fill_request_features(
    set: &FeatureSet,
    bound: &[Bound],
    users: &Table,
    user_row: Option<usize>,
    context: Option<&serde_json::Map<String, serde_json::Value>>,
    row: &mut [f32],
) {
    let mut scratch = String::new();
    for ((f, b), &off) in set.features.iter().zip(bound).zip(&set.offsets) {
        let out = &mut row[off..off + f.width()];
        match b {
            Bound::UserColumn(c) => {
                let raw = user_row.map_or(Raw::Missing, |u| Raw::Str(users.cell(u, *c)));
                f.eval(raw, out);
            }
            Bound::Context(key) => {
                let raw = match context.and_then(|c| c.get(key)) {
                    Some(serde_json::Value::String(s)) => Raw::Str(s),
                    Some(serde_json::Value::Number(n)) => n.as_f64().map_or(Raw::Missing, Raw::Num),
                    Some(serde_json::Value::Bool(b)) => {
                        scratch.clear();
                        scratch.push_str(if *b { "true" } else { "false" });
                        Raw::Str(&scratch)
                    }
                    _ => Raw::Missing,
                };
                f.eval(raw, out);
            }
            _ => {}
        }
    }
}

/// Runs `set.model` on `rows` (`n` rows of `set.width`), returning (version, output tensor).
async fn run_model(
    runner: &dyn ModelRunner,
    set: &FeatureSet,
    rows: Vec<f32>,
    n: usize,
) -> Result<(String, Tensor), PipelineError> {
    let input = Tensor::new(vec![n, set.width], TensorData::F32(rows))
        .map_err(|e| PipelineError::Internal(format!("building the input of '{}': {e}", set.model)))?;
    let out = runner.run(&set.model, vec![(set.input.clone(), input)]).await?;
    let version = out.version;
    let tensor = out.outputs.into_iter().find(|(name, _)| *name == set.output).map(|(_, t)| t).ok_or_else(|| {
        PipelineError::Model(RunnerError::new(
            RunnerErrorKind::BadInput,
            set.model.clone(),
            format!("the model returned no output named '{}'", set.output),
        ))
    })?;
    Ok((version, tensor))
}

/// Extracts one value per row (column `column` of a `[n, C]` output, or the values of a
/// `[n]`/`[n, 1]` output), or, for `n == 1` and `column == None`, the whole row.
fn out_column_values(t: &Tensor, set: &FeatureSet, n: usize, column: Option<usize>) -> Result<Vec<f32>, PipelineError> {
    let bad = |m: String| PipelineError::Internal(format!("model '{}' output '{}': {m}", set.model, set.output));
    let values: Vec<f32> = match &t.data {
        TensorData::F32(v) => v.clone(),
        TensorData::F64(v) => v.iter().map(|x| *x as f32).collect(),
        other => return Err(bad(format!("expected FP32, received {}", other.datatype()))),
    };
    let rows = t.shape.first().copied().unwrap_or(1);
    if rows != n {
        return Err(bad(format!("expected {n} rows, received shape {:?}", t.shape)));
    }
    let width = values.len().checked_div(n).unwrap_or(0);
    match column {
        None if n == 1 => Ok(values),
        None if width == 1 => Ok(values),
        None => Err(bad(format!("shape {:?} has {width} columns; set output_column", t.shape))),
        Some(c) if c < width => Ok(values.chunks_exact(width).map(|r| r[c]).collect()),
        Some(c) => Err(bad(format!("output_column {c} is out of range for shape {:?}", t.shape))),
    }
}

/// A request checked against its scenario and the catalog.
struct Validated {
    k: usize,
    query: Option<String>,
    in_stock_only: bool,
    min_price: f64,
    max_price: f64,
    categories: Option<Vec<u32>>,
    brands: Option<Vec<u32>>,
    exclude: Vec<u32>,
    filters_nothing: bool,
}

impl Validated {
    fn keep(&self, cat: &ItemCatalog, r: usize) -> bool {
        if self.in_stock_only && cat.stock[r] <= 0 {
            return false;
        }
        let p = cat.price[r];
        if p < self.min_price || p > self.max_price {
            return false;
        }
        if let Some(c) = &self.categories
            && !c.contains(&cat.category[r])
            && !c.contains(&cat.subcategory[r])
        {
            return false;
        }
        if let Some(b) = &self.brands
            && !b.contains(&cat.brand[r])
        {
            return false;
        }
        self.exclude.binary_search(&(r as u32)).is_err()
    }
}

fn validate(req: &RecommendRequest, s: &ScenarioConfig, cat: &ItemCatalog) -> Result<Validated, PipelineError> {
    if req.user_id.trim().is_empty() {
        return Err(PipelineError::bad("user_id", "must not be empty"));
    }
    if req.user_id.len() > 256 {
        return Err(PipelineError::bad("user_id", "longer than 256 bytes"));
    }
    let k = req.k.unwrap_or(s.default_k);
    if k == 0 || k > s.max_k {
        return Err(PipelineError::bad(
            "k",
            format!("must be between 1 and {} for scenario '{}', received {k}", s.max_k, s.name),
        ));
    }
    let query = req.query.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(str::to_string);
    if let Some(q) = &req.query
        && q.len() > s.max_query_len
    {
        return Err(PipelineError::bad("query", format!("longer than {} bytes", s.max_query_len)));
    }
    if s.require_query && query.is_none() {
        return Err(PipelineError::bad("query", format!("required (non-empty) for scenario '{}'", s.name)));
    }
    if let Some(ctx) = &req.context {
        for (key, value) in ctx {
            if value.is_object() || value.is_array() {
                return Err(PipelineError::bad(format!("context.{key}"), "expected a string, number, boolean or null"));
            }
        }
    }
    let f = req.filters.clone().unwrap_or_default();
    let min_price = f.min_price.unwrap_or(f64::NEG_INFINITY);
    let max_price = f.max_price.unwrap_or(f64::INFINITY);
    for (name, v) in [("filters.min_price", f.min_price), ("filters.max_price", f.max_price)] {
        if let Some(x) = v
            && (!x.is_finite() || x < 0.0)
        {
            return Err(PipelineError::bad(name, format!("must be a finite number ≥ 0, received {x}")));
        }
    }
    if min_price > max_price {
        return Err(PipelineError::bad(
            "filters.min_price",
            format!("{min_price} is greater than filters.max_price {max_price}"),
        ));
    }
    let lookup = |names: &Option<Vec<String>>, field: &str, dict: &crate::tables::Dictionary, what: &str| {
        names
            .as_ref()
            .map(|names| {
                if names.is_empty() {
                    return Err(PipelineError::bad(field, "must not be empty (omit it to allow all)"));
                }
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        dict.get(n)
                            .ok_or_else(|| PipelineError::bad(format!("{field}[{i}]"), format!("unknown {what} '{n}'")))
                    })
                    .collect::<Result<Vec<u32>, _>>()
            })
            .transpose()
    };
    let categories = lookup(&f.categories, "filters.categories", &cat.categories, "category")?;
    let brands = lookup(&f.brands, "filters.brands", &cat.brands, "brand")?;
    let mut exclude: Vec<u32> =
        f.exclude_items.iter().flatten().filter_map(|id| cat.table.row(id).map(|r| r as u32)).collect();
    exclude.sort_unstable();
    exclude.dedup();
    let filters_nothing = !s.in_stock_only
        && f.min_price.is_none()
        && f.max_price.is_none()
        && categories.is_none()
        && brands.is_none()
        && exclude.is_empty();
    Ok(Validated {
        k,
        query,
        in_stock_only: s.in_stock_only,
        min_price,
        max_price,
        categories,
        brands,
        exclude,
        filters_nothing,
    })
}
