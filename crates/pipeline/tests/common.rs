//! Shared helpers: fixture paths, a ModelRunner over real ONNX models (tract), a temp copy of
//! the fixture shop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use recserve_engine::{Engine, Tensor, TractEngine};
use recserve_pipeline::{ModelOutput, ModelRunner, RunnerError, RunnerErrorKind};

pub fn shop() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shop")
}

/// Runs the fixture models with tract, synchronously, as version "1"; counts calls per model.
pub struct TractRunner {
    engines: HashMap<String, TractEngine>,
    pub calls: std::sync::Mutex<Vec<(String, Vec<usize>)>>,
}

impl TractRunner {
    pub fn new(repo: &Path) -> TractRunner {
        let mut engines = HashMap::new();
        for m in ["user_tower", "ranker"] {
            engines.insert(m.to_string(), TractEngine::load(&repo.join(m).join("1/model.onnx")).unwrap());
        }
        TractRunner { engines, calls: Default::default() }
    }
}

impl ModelRunner for TractRunner {
    fn run<'a>(
        &'a self,
        model: &'a str,
        inputs: Vec<(String, Tensor)>,
    ) -> BoxFuture<'a, Result<ModelOutput, RunnerError>> {
        Box::pin(async move {
            let engine = self
                .engines
                .get(model)
                .ok_or_else(|| RunnerError::new(RunnerErrorKind::NotReady, model, "no such model"))?;
            self.calls.lock().unwrap().push((model.to_string(), inputs[0].1.shape.clone()));
            let sig = engine.signature().clone();
            let ordered: Vec<Tensor> =
                sig.inputs.iter().map(|s| inputs.iter().find(|(n, _)| *n == s.name).unwrap().1.clone()).collect();
            let out =
                engine.run(ordered).map_err(|e| RunnerError::new(RunnerErrorKind::Failed, model, e.to_string()))?;
            Ok(ModelOutput {
                version: "1".into(),
                outputs: sig.outputs.iter().map(|s| s.name.clone()).zip(out).collect(),
            })
        })
    }
}

/// A runner that always fails with `kind`.
pub struct FailingRunner(pub RunnerErrorKind);

impl ModelRunner for FailingRunner {
    fn run<'a>(&'a self, model: &'a str, _: Vec<(String, Tensor)>) -> BoxFuture<'a, Result<ModelOutput, RunnerError>> {
        Box::pin(async move { Err(RunnerError::new(self.0, model, "queue full")) })
    }
}

/// A temp copy of the fixture shop (for tests that change files).
pub fn shop_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&shop(), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}
