//! The recommendation API's wire types (`POST /v1/recommend`), the model-runner seam through
//! which the pipeline reaches the served models, and the pipeline's error enum with its HTTP
//! class.
//!
//! Request parsing names the field on every error: unknown fields, wrong types and out-of-range
//! values all come back as [`PipelineError::BadRequest`] with `field` set (`filters.min_price`,
//! `context.device`, …). [`RecommendRequest::from_json`] checks the fields one by one instead
//! of relying on serde's messages, which do not name the field of a type error.

pub use recserve_drift::FeatureValue;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use recserve_engine::Tensor;

/// What went wrong running a model, as the serving layer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerErrorKind {
    /// The model's queue is full: retry later (429).
    Overloaded,
    /// No ready version of the model (503).
    NotReady,
    /// The inputs did not fit the model (a pipeline/spec mismatch: 500).
    BadInput,
    /// Inference failed (500).
    Failed,
}

/// An error from a [`ModelRunner`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model '{model}': {message}")]
pub struct RunnerError {
    pub kind: RunnerErrorKind,
    pub model: String,
    pub message: String,
}

impl RunnerError {
    pub fn new(kind: RunnerErrorKind, model: impl Into<String>, message: impl Into<String>) -> RunnerError {
        RunnerError { kind, model: model.into(), message: message.into() }
    }

    pub fn is_overload(&self) -> bool {
        self.kind == RunnerErrorKind::Overloaded
    }

    pub fn is_not_ready(&self) -> bool {
        self.kind == RunnerErrorKind::NotReady
    }
}

/// The outputs of one model run and the version that produced them.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutput {
    pub version: String,
    pub outputs: Vec<(String, Tensor)>,
}

/// Runs served models for the pipeline. The server implements it over its registry and
/// batchers, so pipeline calls share the batcher and engine with V2 requests.
pub trait ModelRunner: Send + Sync {
    /// Runs the latest ready version of `model` on one batch (a single request to the served
    /// model's batcher); returns the outputs by name and the version that ran.
    fn run<'a>(
        &'a self,
        model: &'a str,
        inputs: Vec<(String, Tensor)>,
    ) -> futures::future::BoxFuture<'a, Result<ModelOutput, RunnerError>>;
}

/// Sees the inputs the pipeline's models get (and the ranker's scores), for drift monitoring.
/// The server sets one on [`crate::Pipelines`]; without it the pipeline does no extra work.
pub trait ModelObserver: Send + Sync {
    /// Whether to observe this request (sampling is the observer's business). Asked once per
    /// request; when false the pipeline skips the feature gathering.
    fn wants(&self) -> bool;
    /// One observation of `model`'s inputs by feature name — categorical features as their raw
    /// value (what `reference_stats.json` counts), numeric ones as the model sees them (after
    /// the transforms) — and its scores: the ranker's score of one shown item, or none for the
    /// user tower (its output is an embedding, not a score).
    fn observe(&self, model: &str, version: &str, features: &[(&str, FeatureValue<'_>)], scores: &[f64]);
}

/// Errors of the pipeline layer.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    #[error("scenario: unknown scenario '{name}' (known: {})", known.join(", "))]
    UnknownScenario { name: String, known: Vec<String> },
    #[error(transparent)]
    Model(#[from] RunnerError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The HTTP class of a [`PipelineError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    BadRequest,
    Overloaded,
    Unavailable,
    Internal,
}

impl ErrorClass {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorClass::BadRequest => 400,
            ErrorClass::Overloaded => 429,
            ErrorClass::Unavailable => 503,
            ErrorClass::Internal => 500,
        }
    }
}

impl PipelineError {
    pub fn bad(field: impl Into<String>, message: impl Into<String>) -> PipelineError {
        PipelineError::BadRequest { field: field.into(), message: message.into() }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            PipelineError::BadRequest { .. } | PipelineError::UnknownScenario { .. } => ErrorClass::BadRequest,
            PipelineError::Model(e) => match e.kind {
                RunnerErrorKind::Overloaded => ErrorClass::Overloaded,
                RunnerErrorKind::NotReady => ErrorClass::Unavailable,
                RunnerErrorKind::BadInput | RunnerErrorKind::Failed => ErrorClass::Internal,
            },
            PipelineError::Internal(_) => ErrorClass::Internal,
        }
    }

    pub fn http_status(&self) -> u16 {
        self.class().http_status()
    }

    /// The request field an error is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            PipelineError::BadRequest { field, .. } => Some(field),
            PipelineError::UnknownScenario { .. } => Some("scenario"),
            _ => None,
        }
    }
}

/// Filters a request may set; every one narrows the candidates before ranking.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price: Option<f64>,
    /// Category or subcategory names; an item passes when either of its own is listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brands: Option<Vec<String>>,
    /// Item ids never to return (e.g. already in the cart); unknown ids are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_items: Option<Vec<String>>,
}

/// `POST /v1/recommend` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendRequest {
    pub scenario: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
    /// Number of items to return; the scenario's `default_k` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
}

const REQUEST_FIELDS: &[&str] = &["scenario", "user_id", "query", "context", "filters", "k"];
const FILTER_FIELDS: &[&str] = &["min_price", "max_price", "categories", "brands", "exclude_items"];

fn describe(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(b) => format!("boolean {b}"),
        serde_json::Value::Number(n) => format!("number {n}"),
        serde_json::Value::String(s) if s.len() > 40 => "a string".into(),
        serde_json::Value::String(s) => format!("string \"{s}\""),
        serde_json::Value::Array(_) => "an array".into(),
        serde_json::Value::Object(_) => "an object".into(),
    }
}

fn check_fields(
    obj: &serde_json::Map<String, serde_json::Value>,
    allowed: &[&str],
    prefix: &str,
) -> Result<(), PipelineError> {
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(PipelineError::bad(
            format!("{prefix}{k}"),
            format!("unknown field; expected one of: {}", allowed.join(", ")),
        ));
    }
    Ok(())
}

fn string_field(v: Option<&serde_json::Value>, field: &str, required: bool) -> Result<Option<String>, PipelineError> {
    match v {
        None | Some(serde_json::Value::Null) if !required => Ok(None),
        None | Some(serde_json::Value::Null) => Err(PipelineError::bad(field, "missing; expected a string")),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(PipelineError::bad(field, format!("expected a string, received {}", describe(other)))),
    }
}

fn number_field(v: Option<&serde_json::Value>, field: &str) -> Result<Option<f64>, PipelineError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(PipelineError::bad(field, format!("expected a finite number, received {n}"))),
        },
        Some(other) => Err(PipelineError::bad(field, format!("expected a number, received {}", describe(other)))),
    }
}

fn strings_field(v: Option<&serde_json::Value>, field: &str) -> Result<Option<Vec<String>>, PipelineError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, x)| match x {
                serde_json::Value::String(s) => Ok(s.clone()),
                other => Err(PipelineError::bad(
                    format!("{field}[{i}]"),
                    format!("expected a string, received {}", describe(other)),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => {
            Err(PipelineError::bad(field, format!("expected an array of strings, received {}", describe(other))))
        }
    }
}

impl RecommendRequest {
    /// Parses a JSON body; every error names the field it is about (`body` for a body that is
    /// not a JSON object).
    pub fn from_json(body: &[u8]) -> Result<RecommendRequest, PipelineError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| PipelineError::bad("body", format!("not valid JSON: {e}")))?;
        Self::from_value(value)
    }

    /// Like [`RecommendRequest::from_json`], from an already parsed JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<RecommendRequest, PipelineError> {
        let serde_json::Value::Object(obj) = value else {
            return Err(PipelineError::bad("body", format!("expected a JSON object, received {}", describe(&value))));
        };
        check_fields(&obj, REQUEST_FIELDS, "")?;
        let scenario = string_field(obj.get("scenario"), "scenario", true)?.unwrap_or_default();
        let user_id = string_field(obj.get("user_id"), "user_id", true)?.unwrap_or_default();
        let query = string_field(obj.get("query"), "query", false)?;
        let context = match obj.get("context") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Object(m)) => Some(m.clone()),
            Some(other) => {
                return Err(PipelineError::bad("context", format!("expected an object, received {}", describe(other))));
            }
        };
        let filters = match obj.get("filters") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Object(f)) => {
                check_fields(f, FILTER_FIELDS, "filters.")?;
                Some(Filters {
                    min_price: number_field(f.get("min_price"), "filters.min_price")?,
                    max_price: number_field(f.get("max_price"), "filters.max_price")?,
                    categories: strings_field(f.get("categories"), "filters.categories")?,
                    brands: strings_field(f.get("brands"), "filters.brands")?,
                    exclude_items: strings_field(f.get("exclude_items"), "filters.exclude_items")?,
                })
            }
            Some(other) => {
                return Err(PipelineError::bad("filters", format!("expected an object, received {}", describe(other))));
            }
        };
        let k = match obj.get("k") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => match n.as_u64() {
                Some(k) => Some(usize::try_from(k).unwrap_or(usize::MAX)),
                None => return Err(PipelineError::bad("k", format!("expected a positive integer, received {n}"))),
            },
            Some(other) => {
                return Err(PipelineError::bad(
                    "k",
                    format!("expected a positive integer, received {}", describe(other)),
                ));
            }
        };
        Ok(RecommendRequest { scenario, user_id, query, context, filters, k })
    }
}

/// One recommended item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendedItem {
    pub item_id: String,
    /// The ranker's score (P(click) for the shipped ranker).
    pub score: f32,
    pub title: String,
    pub category: String,
    pub subcategory: String,
    pub brand: String,
    pub price: f64,
    pub stock: i64,
    /// Which retrievers proposed the item: `ann`, `text`, `ann+text` or `popularity`.
    pub retrieved_by: String,
}

/// Time spent in each stage of one request (for telemetry; not part of the JSON body).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    /// Assembling the user tower's input row.
    pub user_features: Duration,
    /// The user tower call (queue + inference), zero for a cold-start user.
    pub user_tower: Duration,
    /// ANN + text + popularity retrieval and merging.
    pub retrieval: Duration,
    /// Assembling the ranker's input rows.
    pub preprocess: Duration,
    /// The ranker call (queue + inference).
    pub ranking: Duration,
    /// Business rules and top-k.
    pub rules: Duration,
    pub total: Duration,
}

/// The result of one recommendation (the server adds `request_id`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecommendResponse {
    pub scenario: String,
    pub items: Vec<RecommendedItem>,
    /// Model name → version that ran.
    pub model_versions: BTreeMap<String, String>,
    /// True when the user is not in the user table (served by popularity).
    pub cold_start: bool,
    /// Candidates retrieved and ranked.
    pub candidates: usize,
    #[serde(skip)]
    pub stages: StageTimings,
}

impl fmt::Display for RecommendResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} items for scenario {}", self.items.len(), self.scenario)
    }
}
