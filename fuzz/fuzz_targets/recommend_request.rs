//! The shop's `POST /v1/recommend`: `RecommendRequest::from_json` (field-by-field parsing with
//! named errors), the request-log helpers of the server, then the whole pipeline
//! (`Pipelines::recommend`: validation against the scenario and catalog, user tower, ANN/BM25
//! retrieval, ranking, business rules, top-k) over the pipeline crate's tiny fixture shop, with
//! its two ONNX models run by tract.
#![no_main]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use futures::future::BoxFuture;
use libfuzzer_sys::fuzz_target;
use recserve_engine::{Engine, Tensor, TractEngine};
use recserve_pipeline::{ModelOutput, ModelRunner, Pipelines, RecommendRequest, RunnerError, RunnerErrorKind};
use recserve_server::shop::{loggable_body, loggable_request};

fn shop() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/pipeline/tests/fixtures/shop")
}

struct TractRunner(HashMap<String, TractEngine>);

impl ModelRunner for TractRunner {
    fn run<'a>(
        &'a self,
        model: &'a str,
        inputs: Vec<(String, Tensor)>,
    ) -> BoxFuture<'a, Result<ModelOutput, RunnerError>> {
        Box::pin(async move {
            let engine =
                self.0.get(model).ok_or_else(|| RunnerError::new(RunnerErrorKind::NotReady, model, "no such model"))?;
            let sig = engine.signature();
            let mut ordered = Vec::with_capacity(sig.inputs.len());
            for spec in &sig.inputs {
                let t = inputs.iter().find(|(n, _)| *n == spec.name).map(|(_, t)| t.clone()).ok_or_else(|| {
                    RunnerError::new(RunnerErrorKind::BadInput, model, format!("no input '{}'", spec.name))
                })?;
                ordered.push(t);
            }
            let out =
                engine.run(ordered).map_err(|e| RunnerError::new(RunnerErrorKind::Failed, model, e.to_string()))?;
            Ok(ModelOutput {
                version: "1".into(),
                outputs: sig.outputs.iter().map(|s| s.name.clone()).zip(out).collect(),
            })
        })
    }
}

fn fixture() -> &'static (Pipelines, TractRunner) {
    static FIXTURE: OnceLock<(Pipelines, TractRunner)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pipelines = Pipelines::load(&shop().join("pipelines.toml")).expect("the fixture shop loads");
        let mut engines = HashMap::new();
        for m in ["user_tower", "ranker"] {
            let path = shop().join("models").join(m).join("1/model.onnx");
            engines.insert(m.to_string(), TractEngine::load(&path).expect("the fixture model loads"));
        }
        (pipelines, TractRunner(engines))
    })
}

fuzz_target!(|body: &[u8]| {
    let _ = loggable_body(body);
    let Ok(request) = RecommendRequest::from_json(body) else { return };
    let _ = loggable_request(&request);
    let (pipelines, runner) = fixture();
    if let Ok(response) = futures::executor::block_on(pipelines.recommend(request.clone(), runner)) {
        let k = request.k.unwrap_or(usize::MAX);
        assert!(response.items.len() <= k, "{} items for k = {k}", response.items.len());
    }
});
