//! Feature specs (`feature_spec.json`, examples/ecommerce/FORMAT.md §2) and the transforms
//! that turn one raw value into model input columns.
//!
//! This module owns parsing and checking the spec (every feature's default must survive its own
//! transform chain, `one_hot` must be last, boundaries ascending, …) and evaluating one feature
//! on one raw value. Where values come from (tables, request, derived) is `assemble`'s business.
//!
//! Evaluation rules, exactly as FORMAT.md states them, plus the points it leaves open:
//! - a missing value or an empty (or all-whitespace) string is replaced by the feature's
//!   `default` before the transforms run;
//! - numeric transforms parse a string value as f64 (surrounding whitespace ignored); a value
//!   that does not parse to a finite number, and `log1p` of a value ≤ −1, make the whole chain
//!   start again from the `default` (checked at load to succeed);
//! - string transforms (`vocabulary`, `hash`, `one_hot`) given a number use its text: integral
//!   values print without a decimal point (`3`, not `3.0`), others in Rust's shortest
//!   round-trip form; `vocabulary` and `hash` produce a number (the index) that later numeric
//!   transforms may use;
//! - the final value of a feature without `one_hot` must be numeric; a string that does not
//!   parse falls back to the default.

use std::collections::HashMap;

use serde::Deserialize;

/// Errors in `feature_spec.json`.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("feature_spec.json is not valid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("feature_spec.json: unsupported version {0} (expected 1)")]
    Version(u32),
    #[error("feature '{feature}': {message}")]
    Feature { feature: String, message: String },
    #[error("feature_spec.json: {0}")]
    Other(String),
}

/// `feature_spec.json` as written by train.py.
#[derive(Debug, Clone, Deserialize)]
pub struct FeatureSpecFile {
    pub version: u32,
    pub embedding_dim: usize,
    pub item_embeddings: String,
    pub user_tower: ModelFeatures,
    pub ranker: ModelFeatures,
}

/// One model's input and output names and its input features, in column order.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelFeatures {
    pub model: String,
    pub input: String,
    pub output: String,
    /// The column of the output that is the score (ranker); absent for a 1-column output.
    #[serde(default)]
    pub output_column: Option<usize>,
    pub features: Vec<FeatureDef>,
}

/// One FEATURE entry.
#[derive(Debug, Clone, Deserialize)]
pub struct FeatureDef {
    pub name: String,
    pub source: String,
    pub default: serde_json::Value,
    #[serde(default)]
    pub transforms: Vec<TransformDef>,
}

/// One transform entry (`{"op": ...}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransformDef {
    Clip {
        #[serde(default)]
        min: Option<f64>,
        #[serde(default)]
        max: Option<f64>,
    },
    Log1p,
    Standardize {
        mean: f64,
        std: f64,
    },
    Bucketize {
        boundaries: Vec<f64>,
    },
    Vocabulary {
        values: Vec<String>,
    },
    Hash {
        buckets: u64,
    },
    OneHot {
        values: Vec<String>,
    },
}

/// Where a feature's raw value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    User(String),
    Item(String),
    Context(String),
    RetrievalScore,
    QueryOverlap,
    CategoryAffinity,
    PriceRatio,
}

impl Source {
    pub fn parse(s: &str) -> Option<Source> {
        let some_col = |c: &str| (!c.is_empty()).then(|| c.to_string());
        Some(match s {
            "retrieval.score" => Source::RetrievalScore,
            "query.overlap" => Source::QueryOverlap,
            "cross.category_affinity" => Source::CategoryAffinity,
            "cross.price_ratio" => Source::PriceRatio,
            _ => {
                if let Some(c) = s.strip_prefix("user.") {
                    Source::User(some_col(c)?)
                } else if let Some(c) = s.strip_prefix("item.") {
                    Source::Item(some_col(c)?)
                } else if let Some(c) = s.strip_prefix("context.") {
                    Source::Context(some_col(c)?)
                } else {
                    return None;
                }
            }
        })
    }
}

/// A raw value before the transforms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw<'a> {
    Missing,
    Str(&'a str),
    Num(f64),
}

/// A value between two transforms.
enum Val<'a> {
    Num(f64),
    Str(&'a str),
}

/// A transform ready to run (lookups built).
#[derive(Debug, Clone)]
enum Op {
    Clip { min: f64, max: f64 },
    Log1p,
    Standardize { mean: f64, std: f64 },
    Bucketize(Vec<f64>),
    Vocabulary(HashMap<String, usize>, usize),
    Hash(u64),
    OneHot(HashMap<String, usize>, usize),
}

/// A feature with its transforms compiled.
#[derive(Debug, Clone)]
pub struct Feature {
    pub name: String,
    pub source: Source,
    default: DefaultValue,
    ops: Vec<Op>,
    width: usize,
}

#[derive(Debug, Clone)]
enum DefaultValue {
    Num(f64),
    Str(String),
}

impl Feature {
    /// Compiles and checks one FEATURE entry.
    pub fn compile(def: &FeatureDef) -> Result<Feature, SpecError> {
        let err = |message: String| SpecError::Feature { feature: def.name.clone(), message };
        let source = Source::parse(&def.source).ok_or_else(|| {
            err(format!(
                "unknown source '{}' (expected user.<column>, item.<column>, context.<key>, retrieval.score, \
                 query.overlap, cross.category_affinity or cross.price_ratio)",
                def.source
            ))
        })?;
        let default = match &def.default {
            serde_json::Value::Number(n) => DefaultValue::Num(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => DefaultValue::Str(s.clone()),
            other => return Err(err(format!("default must be a number or a string, found {other}"))),
        };
        let mut ops = Vec::with_capacity(def.transforms.len());
        let mut width = 1;
        for (i, t) in def.transforms.iter().enumerate() {
            let last = i + 1 == def.transforms.len();
            ops.push(match t {
                TransformDef::Clip { min, max } => {
                    let (min, max) = (min.unwrap_or(f64::NEG_INFINITY), max.unwrap_or(f64::INFINITY));
                    if min > max || min.is_nan() || max.is_nan() {
                        return Err(err(format!("clip: min {min} is greater than max {max}")));
                    }
                    Op::Clip { min, max }
                }
                TransformDef::Log1p => Op::Log1p,
                TransformDef::Standardize { mean, std } => {
                    if !mean.is_finite() || !std.is_finite() {
                        return Err(err("standardize: mean and std must be finite".into()));
                    }
                    Op::Standardize { mean: *mean, std: *std }
                }
                TransformDef::Bucketize { boundaries } => {
                    if boundaries.windows(2).any(|w| w[0] > w[1]) || boundaries.iter().any(|b| b.is_nan()) {
                        return Err(err("bucketize: boundaries must be ascending".into()));
                    }
                    Op::Bucketize(boundaries.clone())
                }
                TransformDef::Vocabulary { values } => Op::Vocabulary(index_of(values), values.len()),
                TransformDef::Hash { buckets } => {
                    if *buckets == 0 {
                        return Err(err("hash: buckets must be at least 1".into()));
                    }
                    Op::Hash(*buckets)
                }
                TransformDef::OneHot { values } => {
                    if !last {
                        return Err(err("one_hot must be the last transform".into()));
                    }
                    if values.is_empty() {
                        return Err(err("one_hot needs at least one value".into()));
                    }
                    width = values.len();
                    Op::OneHot(index_of(values), values.len())
                }
            });
        }
        let feature = Feature { name: def.name.clone(), source, default, ops, width };
        let mut probe = vec![0.0; width];
        if !feature.run(feature.default_raw(), &mut probe) {
            return Err(err(
                "the default does not survive the transforms (not a number, or log1p of a value ≤ -1)".into()
            ));
        }
        Ok(feature)
    }

    /// Number of f32 columns this feature produces.
    pub fn width(&self) -> usize {
        self.width
    }

    /// True when the feature encodes a category (its last transform is `one_hot`, `vocabulary`
    /// or `hash`): drift monitoring then counts its raw values, as `reference_stats.json` does.
    pub fn is_categorical(&self) -> bool {
        matches!(self.ops.last(), Some(Op::OneHot(..) | Op::Vocabulary(..) | Op::Hash(_)))
    }

    fn default_raw(&self) -> Raw<'_> {
        match &self.default {
            DefaultValue::Num(x) => Raw::Num(*x),
            DefaultValue::Str(s) => Raw::Str(s),
        }
    }

    /// Evaluates the feature on `raw`, writing `width()` columns to `out`.
    pub fn eval(&self, raw: Raw<'_>, out: &mut [f32]) {
        let raw = match raw {
            Raw::Missing => self.default_raw(),
            Raw::Str(s) if s.trim().is_empty() => self.default_raw(),
            Raw::Num(x) if !x.is_finite() => self.default_raw(),
            r => r,
        };
        if !self.run(raw, out) {
            // Checked at compile time to succeed.
            let ok = self.run(self.default_raw(), out);
            debug_assert!(ok);
        }
    }

    /// The chain on one value; false when the value is unusable (caller falls back to default).
    fn run(&self, raw: Raw<'_>, out: &mut [f32]) -> bool {
        let mut scratch = String::new();
        let mut v = match raw {
            Raw::Missing => return false,
            Raw::Str(s) => Val::Str(s),
            Raw::Num(x) => Val::Num(x),
        };
        for op in &self.ops {
            v = match op {
                Op::Clip { min, max } => {
                    let Some(x) = num(&v) else { return false };
                    Val::Num(x.max(*min).min(*max))
                }
                Op::Log1p => {
                    let Some(x) = num(&v) else { return false };
                    if x <= -1.0 {
                        return false;
                    }
                    Val::Num(x.ln_1p())
                }
                Op::Standardize { mean, std } => {
                    let Some(x) = num(&v) else { return false };
                    Val::Num(if *std == 0.0 { x - mean } else { (x - mean) / std })
                }
                Op::Bucketize(b) => {
                    let Some(x) = num(&v) else { return false };
                    Val::Num(b.partition_point(|e| *e <= x) as f64)
                }
                Op::Vocabulary(map, len) => {
                    let s = text(&v, &mut scratch);
                    Val::Num(map.get(s).copied().unwrap_or(*len) as f64)
                }
                Op::Hash(buckets) => Val::Num((fnv1a(text(&v, &mut scratch).as_bytes()) % buckets) as f64),
                Op::OneHot(map, len) => {
                    let s = text(&v, &mut scratch);
                    let slot = map.get(s).copied();
                    for (i, o) in out[..*len].iter_mut().enumerate() {
                        *o = if Some(i) == slot { 1.0 } else { 0.0 };
                    }
                    return true;
                }
            };
        }
        match num(&v) {
            Some(x) => {
                out[0] = x as f32;
                true
            }
            None => false,
        }
    }
}

fn index_of(values: &[String]) -> HashMap<String, usize> {
    let mut map = HashMap::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        // numpy/list.index semantics: the first occurrence wins.
        map.entry(v.clone()).or_insert(i);
    }
    map
}

fn num(v: &Val<'_>) -> Option<f64> {
    match v {
        Val::Num(x) => Some(*x),
        Val::Str(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
    }
}

fn text<'s>(v: &'s Val<'_>, scratch: &'s mut String) -> &'s str {
    match v {
        Val::Str(s) => s,
        Val::Num(x) => {
            use std::fmt::Write;
            scratch.clear();
            if x.fract() == 0.0 && x.abs() < 1e15 {
                let _ = write!(scratch, "{}", *x as i64);
            } else {
                let _ = write!(scratch, "{x}");
            }
            scratch
        }
    }
}

/// 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A model's features compiled, with each feature's first column in the model's input row.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    pub model: String,
    pub input: String,
    pub output: String,
    pub output_column: Option<usize>,
    pub features: Vec<Feature>,
    pub offsets: Vec<usize>,
    pub width: usize,
}

impl FeatureSet {
    pub fn compile(m: &ModelFeatures) -> Result<FeatureSet, SpecError> {
        let mut features = Vec::with_capacity(m.features.len());
        let mut offsets = Vec::with_capacity(m.features.len());
        let mut width = 0;
        let mut seen = std::collections::HashSet::new();
        for def in &m.features {
            if !seen.insert(def.name.as_str()) {
                return Err(SpecError::Feature { feature: def.name.clone(), message: "duplicate name".into() });
            }
            let f = Feature::compile(def)?;
            offsets.push(width);
            width += f.width();
            features.push(f);
        }
        if width == 0 {
            return Err(SpecError::Other(format!("model '{}' has no input features", m.model)));
        }
        Ok(FeatureSet {
            model: m.model.clone(),
            input: m.input.clone(),
            output: m.output.clone(),
            output_column: m.output_column,
            features,
            offsets,
            width,
        })
    }
}

/// `feature_spec.json` compiled.
#[derive(Debug, Clone)]
pub struct FeatureSpec {
    pub embedding_dim: usize,
    pub item_embeddings: String,
    pub user_tower: FeatureSet,
    pub ranker: FeatureSet,
}

impl FeatureSpec {
    pub fn parse(json: &str) -> Result<FeatureSpec, SpecError> {
        let file: FeatureSpecFile = serde_json::from_str(json)?;
        if file.version != 1 {
            return Err(SpecError::Version(file.version));
        }
        if file.embedding_dim == 0 {
            return Err(SpecError::Other("embedding_dim must be at least 1".into()));
        }
        let user_tower = FeatureSet::compile(&file.user_tower)?;
        for f in &user_tower.features {
            if !matches!(f.source, Source::User(_) | Source::Context(_)) {
                return Err(SpecError::Feature {
                    feature: f.name.clone(),
                    message: "the user tower can only read user.* and context.* sources".into(),
                });
            }
        }
        let ranker = FeatureSet::compile(&file.ranker)?;
        Ok(FeatureSpec { embedding_dim: file.embedding_dim, item_embeddings: file.item_embeddings, user_tower, ranker })
    }
}
