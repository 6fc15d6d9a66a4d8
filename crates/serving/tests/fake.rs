//! A scripted engine: one FP32 input `x` [N, 2] → output `y` = 2·x, recording each batch size,
//! optionally slowed down or held at a gate so tests can fill queues deterministically.

use recserve_engine::{DataType, Dim, Engine, EngineError, ModelSignature, Tensor, TensorData, TensorSpec};
use recserve_serving::EngineLoader;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
    pub waiting: Mutex<usize>,
}

impl Gate {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
    fn pass(&self) {
        *self.waiting.lock().unwrap() += 1;
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
    }
}

pub struct Doubler {
    signature: ModelSignature,
    pub batches: Mutex<Vec<usize>>,
    pub delay: Duration,
    pub gate: Option<Arc<Gate>>,
    pub factor: f32,
    /// The name of the thread each run ran on.
    pub threads: Mutex<Vec<String>>,
}

impl Doubler {
    pub fn new(factor: f32) -> Doubler {
        Doubler {
            signature: ModelSignature {
                inputs: vec![TensorSpec {
                    name: "x".into(),
                    datatype: DataType::F32,
                    shape: vec![Dim::Variable, Dim::Fixed(2)],
                }],
                outputs: vec![TensorSpec {
                    name: "y".into(),
                    datatype: DataType::F32,
                    shape: vec![Dim::Variable, Dim::Fixed(2)],
                }],
                batched: true,
            },
            batches: Mutex::new(Vec::new()),
            delay: Duration::ZERO,
            gate: None,
            factor,
            threads: Mutex::new(Vec::new()),
        }
    }
}

impl Engine for Doubler {
    fn signature(&self) -> &ModelSignature {
        &self.signature
    }
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EngineError> {
        if let Ok(mut t) = self.threads.lock() {
            t.push(std::thread::current().name().unwrap_or("").to_string());
        }
        if let Some(g) = &self.gate {
            g.pass();
        }
        std::thread::sleep(self.delay);
        let x = &inputs[0];
        self.batches.lock().unwrap().push(x.shape[0]);
        let TensorData::F32(v) = &x.data else { return Err(EngineError::Run("not f32".into())) };
        if v.iter().any(|f| f.is_nan()) {
            return Err(EngineError::Run("NaN input".into()));
        }
        let y = v.iter().map(|f| f * self.factor).collect();
        Ok(vec![Tensor::new(x.shape.clone(), TensorData::F32(y)).unwrap()])
    }
}

/// Loads `model.onnx` files whose text is "double", "triple" or "broken".
pub fn text_loader() -> EngineLoader {
    Arc::new(|path: &Path| {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EngineError::Io { path: path.display().to_string(), source: e })?;
        match text.trim() {
            "double" => Ok(Arc::new(Doubler::new(2.0)) as Arc<dyn Engine>),
            "triple" => Ok(Arc::new(Doubler::new(3.0)) as Arc<dyn Engine>),
            other => {
                Err(EngineError::Load { path: path.display().to_string(), reason: format!("not a model: {other}") })
            }
        }
    })
}

pub fn x(rows: &[[f32; 2]]) -> Tensor {
    Tensor::new(vec![rows.len(), 2], TensorData::F32(rows.iter().flatten().copied().collect())).unwrap()
}
