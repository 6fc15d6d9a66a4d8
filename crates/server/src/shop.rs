//! The shop's recommendation API, independent of the transport: `recommend` runs a scenario's
//! pipeline (its models through the same registry, batchers and engines as V2 requests) and
//! `feedback` records what a shopper did with a recommended item, joined to the request that
//! showed it. [`ShopApi`] owns the pipelines, the request ids and the recent-request journal.

use crate::error::ApiError;
use crate::experiments::{Experiments, ExperimentsConfig};
use recserve_engine::Tensor;
use recserve_online::ArmKey;
use recserve_pipeline::{
    ErrorClass, ModelOutput, ModelRunner, PipelineError, Pipelines, RecommendRequest, RecommendedItem, RunnerError,
    RunnerErrorKind, StageTimings,
};
use recserve_serving::{ModelRegistry, NamedTensor, ServingError, route_key};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// How many recent requests feedback can still be joined to.
const JOURNAL_CAPACITY: usize = 100_000;

/// Runs pipeline models through the model registry for one request: each model's version is
/// the deployment arm the user falls in (sticky per user, see `serving::deployment`), run
/// through its batcher exactly as a V2 request would be. Remembers, as the online metrics' keys,
/// which arm of each model ran.
pub struct RegistryRunner<'r> {
    registry: Arc<ModelRegistry>,
    pipeline: &'r str,
    subject: &'r str,
    served: Mutex<Vec<ArmKey>>,
}

impl<'r> RegistryRunner<'r> {
    /// A runner for a request of `pipeline` by `subject` (the user id: the same user keeps the
    /// same arm).
    pub fn new(registry: Arc<ModelRegistry>, pipeline: &'r str, subject: &'r str) -> RegistryRunner<'r> {
        RegistryRunner { registry, pipeline, subject, served: Mutex::new(Vec::new()) }
    }

    /// The arms that ran, in call order.
    pub fn into_served(self) -> Vec<ArmKey> {
        self.served.into_inner().unwrap_or_default()
    }
}

impl ModelRunner for RegistryRunner<'_> {
    fn run<'a>(
        &'a self,
        model: &'a str,
        inputs: Vec<(String, Tensor)>,
    ) -> futures::future::BoxFuture<'a, Result<ModelOutput, RunnerError>> {
        Box::pin(async move {
            let key = route_key(model, self.subject);
            let routed = self.registry.route(model, key).map_err(|e| runner_error(model, e))?;
            let loaded = routed.version;
            if let Ok(mut served) = self.served.lock() {
                served.push(ArmKey::new(self.pipeline, model, &*routed.arm, loaded.version.to_string()));
            }
            let inputs = inputs.into_iter().map(|(name, tensor)| NamedTensor { name, tensor }).collect();
            let tensors = loaded.infer(inputs).await.map_err(|e| runner_error(model, e))?;
            let outputs = loaded.signature.outputs.iter().map(|s| s.name.clone()).zip(tensors).collect();
            Ok(ModelOutput { version: loaded.version.to_string(), outputs })
        })
    }
}

fn runner_error(model: &str, e: ServingError) -> RunnerError {
    let kind = match e {
        ServingError::Overloaded { .. } => RunnerErrorKind::Overloaded,
        ServingError::ModelNotFound { .. }
        | ServingError::VersionNotFound { .. }
        | ServingError::NotReady { .. }
        | ServingError::ShuttingDown => RunnerErrorKind::NotReady,
        ServingError::InvalidInput(_) => RunnerErrorKind::BadInput,
        ServingError::Inference { .. }
        | ServingError::Repository(_)
        | ServingError::Deployment(_)
        | ServingError::BadDeployment(_) => RunnerErrorKind::Failed,
    };
    RunnerError::new(kind, model, e.to_string())
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> ApiError {
        match e.class() {
            ErrorClass::BadRequest => ApiError::BadRequest(e.to_string()),
            ErrorClass::Overloaded => ApiError::Overloaded(e.to_string()),
            ErrorClass::Unavailable => ApiError::Unavailable(e.to_string()),
            ErrorClass::Internal => ApiError::Internal(e.to_string()),
        }
    }
}

/// The answer to `POST /v1/recommend`.
#[derive(Debug, Clone, Serialize)]
pub struct RecommendReply {
    pub request_id: String,
    pub scenario: String,
    pub items: Vec<RecommendedItem>,
    pub model_versions: BTreeMap<String, String>,
    /// Model → deployment arm that served it (`stable` without a canary or A/B test).
    pub arms: BTreeMap<String, String>,
    /// True when the user is unknown and was served by popularity within the context.
    pub cold_start: bool,
    /// Time spent per stage (for telemetry; not part of the JSON body).
    #[serde(skip)]
    pub stages: StageTimings,
    /// The request as parsed (for the request log; not part of the JSON body).
    #[serde(skip)]
    pub request: RecommendRequest,
}

/// A recommendation request as the request log keeps it: without the user id (the log holds
/// its pseudonym in a column of its own).
pub fn loggable_request(request: &RecommendRequest) -> String {
    let mut value = serde_json::to_value(request).unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(map) = &mut value {
        map.remove("user_id");
    }
    value.to_string()
}

/// A recommendation answer as the request log keeps it: the items with their scores, the model
/// versions and whether it was a cold start.
pub fn loggable_reply(reply: &RecommendReply) -> String {
    let items: Vec<_> = reply.items.iter().map(|i| serde_json::json!([i.item_id, i.score])).collect();
    serde_json::json!({"items": items, "model_versions": reply.model_versions, "cold_start": reply.cold_start})
        .to_string()
}

/// The user id (when the body names one as text) and the body without it, for the log record
/// of a request that failed; `None` when the body is not a JSON object.
pub fn loggable_body(body: &[u8]) -> Option<(Option<String>, String)> {
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let map = value.as_object_mut()?;
    let user = match map.remove("user_id") {
        Some(serde_json::Value::String(u)) => Some(u),
        _ => None,
    };
    Some((user, value.to_string()))
}

/// What a shopper did with an item (the online metrics' event type).
pub use recserve_online::Event as FeedbackEvent;

/// The body of `POST /v1/feedback`.
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackRequest {
    pub request_id: String,
    pub user_id: String,
    pub item_id: String,
    pub event: FeedbackEvent,
}

impl FeedbackRequest {
    const FIELDS: [&'static str; 4] = ["request_id", "user_id", "item_id", "event"];

    /// Parses a feedback body; every error names the field (serde's own messages do not for
    /// unknown enum values).
    pub fn from_json(body: &[u8]) -> Result<FeedbackRequest, ApiError> {
        let bad = |msg: String| ApiError::BadRequest(format!("invalid feedback: {msg}"));
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| bad(format!("the body is not valid JSON: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(bad("the body must be a JSON object".to_string()));
        };
        if let Some(unknown) = map.keys().find(|k| !Self::FIELDS.contains(&k.as_str())) {
            return Err(bad(format!("unknown field `{unknown}`; the fields are {}", Self::FIELDS.join(", "))));
        }
        let text = |field: &str| -> Result<String, ApiError> {
            match map.get(field) {
                None => Err(bad(format!("field `{field}` is missing"))),
                Some(serde_json::Value::String(s)) if s.trim().is_empty() => {
                    Err(bad(format!("field `{field}` is empty")))
                }
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(bad(format!("field `{field}` must be a string, received {other}"))),
            }
        };
        let event = match text("event")?.as_str() {
            "impression" => FeedbackEvent::Impression,
            "click" => FeedbackEvent::Click,
            "add_to_cart" => FeedbackEvent::AddToCart,
            "purchase" => FeedbackEvent::Purchase,
            other => {
                return Err(bad(format!(
                    "field `event`: '{other}' is not one of impression, click, add_to_cart, purchase"
                )));
            }
        };
        Ok(FeedbackRequest {
            request_id: text("request_id")?,
            user_id: text("user_id")?,
            item_id: text("item_id")?,
            event,
        })
    }
}

/// The answer to `POST /v1/feedback`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeedbackReply {
    /// Whether the request that showed the item is still in the journal (so the event counts
    /// toward that request's scenario and model versions).
    pub joined: bool,
}

/// Counts of feedback events by scenario, event and model version of the ranker.
pub type FeedbackCounts = BTreeMap<(String, FeedbackEvent), u64>;

/// A served request, as feedback needs it.
struct Shown {
    scenario: String,
    user_id: String,
    items: Vec<String>,
    arms: Vec<ArmKey>,
}

#[derive(Default)]
struct Journal {
    order: VecDeque<String>,
    shown: HashMap<String, Shown>,
    counts: FeedbackCounts,
}

/// The recommendation API's state.
pub struct ShopApi {
    pipelines: Arc<Pipelines>,
    registry: Arc<ModelRegistry>,
    journal: Mutex<Journal>,
    experiments: Arc<Experiments>,
}

impl ShopApi {
    /// The API with default experiment settings (see [`ExperimentsConfig`]).
    pub fn new(pipelines: Arc<Pipelines>, registry: Arc<ModelRegistry>) -> ShopApi {
        let experiments = Experiments::new(registry.clone(), ExperimentsConfig::default())
            .unwrap_or_else(|e| unreachable!("the default experiment settings are valid: {e}"));
        Self::with_experiments(pipelines, registry, Arc::new(experiments))
    }

    /// The API feeding `experiments` (the server's, shared with V2 inference).
    pub fn with_experiments(
        pipelines: Arc<Pipelines>,
        registry: Arc<ModelRegistry>,
        experiments: Arc<Experiments>,
    ) -> ShopApi {
        if pipelines.set_observer(experiments.clone()).is_err() {
            tracing::warn!("the pipelines already report to another drift observer; drift is not monitored here");
        }
        ShopApi { pipelines, registry, journal: Mutex::new(Journal::default()), experiments }
    }

    /// Online metrics per arm and drift per model version.
    pub fn experiments(&self) -> &Arc<Experiments> {
        &self.experiments
    }

    pub fn pipelines(&self) -> &Arc<Pipelines> {
        &self.pipelines
    }

    /// Parses and runs one recommendation request; `request_id` names it in the answer, the
    /// journal that feedback joins to, and the logs.
    pub async fn recommend(&self, request: RecommendRequest, request_id: String) -> Result<RecommendReply, ApiError> {
        let runner = RegistryRunner::new(self.registry.clone(), &request.scenario, &request.user_id);
        let response = self.pipelines.recommend(request.clone(), &runner).await?;
        let served = runner.into_served();
        self.experiments.record_request(&served, response.items.len() as u64);
        let arms = served.iter().map(|a| (a.model.clone(), a.arm.clone())).collect();
        self.remember(
            &request_id,
            Shown {
                scenario: response.scenario.clone(),
                user_id: request.user_id.clone(),
                items: response.items.iter().map(|i| i.item_id.clone()).collect(),
                arms: served,
            },
        );
        Ok(RecommendReply {
            request_id,
            scenario: response.scenario,
            items: response.items,
            model_versions: response.model_versions,
            arms,
            cold_start: response.cold_start,
            stages: response.stages,
            request,
        })
    }

    fn remember(&self, request_id: &str, shown: Shown) {
        let Ok(mut journal) = self.journal.lock() else { return };
        if journal.order.len() >= JOURNAL_CAPACITY
            && let Some(old) = journal.order.pop_front()
        {
            journal.shown.remove(&old);
        }
        journal.order.push_back(request_id.to_string());
        journal.shown.insert(request_id.to_string(), shown);
    }

    /// Validates and records one feedback event.
    pub fn feedback(&self, body: &[u8]) -> Result<FeedbackReply, ApiError> {
        let event = FeedbackRequest::from_json(body)?;
        let Some(item) = self.pipelines.item(&event.item_id) else {
            return Err(ApiError::BadRequest(format!(
                "invalid feedback: field `item_id`: no item '{}' in the catalog",
                event.item_id
            )));
        };
        let mut journal =
            self.journal.lock().map_err(|_| ApiError::Internal("feedback journal is poisoned".to_string()))?;
        let scenario = match journal.shown.get(&event.request_id) {
            Some(shown) if shown.user_id != event.user_id => {
                return Err(ApiError::BadRequest(format!(
                    "invalid feedback: field `user_id`: request '{}' was made for another user",
                    event.request_id
                )));
            }
            Some(shown) if !shown.items.contains(&event.item_id) => {
                return Err(ApiError::BadRequest(format!(
                    "invalid feedback: field `item_id`: item '{}' was not shown in request '{}'",
                    event.item_id, event.request_id
                )));
            }
            Some(shown) => {
                let revenue = if event.event == FeedbackEvent::Purchase { item.price } else { 0.0 };
                self.experiments.record_event(&shown.arms, event.event, revenue);
                Some(shown.scenario.clone())
            }
            None => None,
        };
        let joined = scenario.is_some();
        let key = (scenario.unwrap_or_else(|| "unknown".to_string()), event.event);
        *journal.counts.entry(key).or_insert(0) += 1;
        Ok(FeedbackReply { joined })
    }

    /// Feedback events counted so far, by scenario ("unknown" when not joined) and event.
    pub fn feedback_counts(&self) -> FeedbackCounts {
        self.journal.lock().map(|j| j.counts.clone()).unwrap_or_default()
    }
}
