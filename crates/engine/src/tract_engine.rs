//! [`TractEngine`]: an ONNX model loaded, optimized and planned by tract, behind [`Engine`].
//!
//! Loading reads the signature from the file: input and output names, datatypes and shapes.
//! A first input dimension that the file leaves symbolic, unnamed or unknown is the batch
//! dimension; it stays one symbol through optimization, so one optimized plan runs every batch
//! size. `run` takes `&self` and builds a fresh tract state per call, so one engine serves
//! several threads at once.
//!
//! tract's API changes between minor versions; everything tract-specific stays in this file
//! and in the tree ensemble ops (`tree_ensemble_regressor`, `tree_ensemble_classifier`,
//! `tree_scores`), which are registered on the ONNX parser before every load.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoRunnable, IntoTValue, Symbol, TDim,
    TValue, TVec, TractResult, TypedModel, TypedRunnableModel, tract_ndarray,
};
use tract_onnx::tract_core::model::SpecialOps;
use tract_onnx::tract_hir::infer::{Factoid, GenericFactoid, ShapeFactoid};

use crate::{DataType, Dim, Engine, EngineError, ModelSignature, Tensor, TensorData, TensorSpec};

/// An ONNX model run by tract. Cheap to share behind an `Arc`; `run` may be called from
/// several threads at once.
pub struct TractEngine {
    signature: ModelSignature,
    plan: Arc<TypedRunnableModel>,
}

impl fmt::Debug for TractEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TractEngine").field("signature", &self.signature).finish_non_exhaustive()
    }
}

impl TractEngine {
    /// Loads, optimizes and plans the ONNX model at `path`. External tensor data, if the model
    /// has any, is read relative to the file's folder.
    pub fn load(path: &Path) -> Result<TractEngine, EngineError> {
        let bytes =
            std::fs::read(path).map_err(|source| EngineError::Io { path: path.display().to_string(), source })?;
        let dir = path.parent().and_then(|d| d.to_str());
        Self::from_bytes(&bytes, dir, &path.display().to_string())
    }

    /// Loads a model from the bytes of an ONNX file (external tensor data is not supported).
    pub fn load_bytes(bytes: &[u8]) -> Result<TractEngine, EngineError> {
        Self::from_bytes(bytes, None, "<bytes>")
    }

    fn from_bytes(bytes: &[u8], dir: Option<&str>, label: &str) -> Result<TractEngine, EngineError> {
        let load = || {
            let proto =
                framework().proto_model_for_read(&mut &*bytes).map_err(|e| format!("not an ONNX model: {e:#}"))?;
            build(&proto, dir)
        };
        Self::guarded(load, label)
    }

    /// Builds an engine from an already decoded model (tests build models in code).
    #[cfg(test)]
    pub(crate) fn from_proto(proto: &tract_onnx::pb::ModelProto) -> Result<TractEngine, EngineError> {
        Self::guarded(|| build(proto, None), "<proto>")
    }

    fn guarded(load: impl FnOnce() -> Result<TractEngine, String>, label: &str) -> Result<TractEngine, EngineError> {
        let load_err = |reason: String| EngineError::Load { path: label.to_string(), reason };
        // tract indexes and unwraps in places while parsing; a malformed file must come back
        // as an error, not take the process down.
        match catch_unwind(AssertUnwindSafe(load)) {
            Ok(Ok(engine)) => Ok(engine),
            Ok(Err(reason)) => Err(load_err(reason)),
            Err(panic) => Err(load_err(format!("tract panicked while loading: {}", panic_message(&*panic)))),
        }
    }

    /// Position of the input called `name` in the signature.
    pub fn input_index(&self, name: &str) -> Option<usize> {
        self.signature.inputs.iter().position(|s| s.name == name)
    }

    /// Position of the output called `name` in the signature.
    pub fn output_index(&self, name: &str) -> Option<usize> {
        self.signature.outputs.iter().position(|s| s.name == name)
    }

    fn check_inputs(&self, inputs: &[Tensor]) -> Result<(), EngineError> {
        let specs = &self.signature.inputs;
        if inputs.len() != specs.len() {
            return Err(EngineError::InputCount { expected: specs.len(), received: inputs.len() });
        }
        let mut batch: Option<(usize, &str)> = None;
        for (spec, t) in specs.iter().zip(inputs) {
            let bad = |reason: String| EngineError::BadInput { name: spec.name.clone(), reason };
            if t.datatype() != spec.datatype {
                return Err(bad(format!("expected datatype {}, received {}", spec.datatype, t.datatype())));
            }
            let fits = t.shape.len() == spec.shape.len() && spec.shape.iter().zip(&t.shape).all(|(d, n)| d.accepts(*n));
            if !fits {
                return Err(bad(format!("expected shape {}, received {:?}", shape_text(&spec.shape), t.shape)));
            }
            let elements: usize = t.shape.iter().product();
            if elements != t.data.len() {
                return Err(bad(format!("shape {:?} holds {elements} elements, received {}", t.shape, t.data.len())));
            }
            if self.signature.batched {
                let rows = t.shape[0];
                match batch {
                    None => batch = Some((rows, &spec.name)),
                    Some((first, first_name)) if first != rows => {
                        return Err(bad(format!(
                            "batch size {rows} differs from the {first} rows of input '{first_name}'"
                        )));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }
}

impl Engine for TractEngine {
    fn signature(&self) -> &ModelSignature {
        &self.signature
    }

    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EngineError> {
        self.check_inputs(&inputs)?;
        let mut values: TVec<TValue> = TVec::with_capacity(inputs.len());
        for (spec, t) in self.signature.inputs.iter().zip(inputs) {
            values.push(to_tract(t).map_err(|reason| EngineError::BadInput { name: spec.name.clone(), reason })?);
        }
        let outputs = match catch_unwind(AssertUnwindSafe(|| self.plan.run(values))) {
            Ok(Ok(outputs)) => outputs,
            Ok(Err(e)) => return Err(EngineError::Run(format!("{e:#}"))),
            Err(panic) => {
                return Err(EngineError::Run(format!("tract panicked: {}", panic_message(&*panic))));
            }
        };
        if outputs.len() != self.signature.outputs.len() {
            return Err(EngineError::Run(format!(
                "model produced {} outputs, its signature has {}",
                outputs.len(),
                self.signature.outputs.len()
            )));
        }
        outputs
            .iter()
            .zip(&self.signature.outputs)
            .map(|(v, spec)| {
                from_tract(v).map_err(|reason| EngineError::Run(format!("output '{}': {reason}", spec.name)))
            })
            .collect()
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

fn shape_text(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// The ONNX framework with recserve's extra ops registered.
fn framework() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    crate::tree_ensemble_regressor::register(&mut onnx.op_register);
    crate::tree_ensemble_classifier::register(&mut onnx.op_register);
    onnx
}

/// A dimension as the file declares it.
enum Declared {
    Fixed(usize),
    Symbolic(TDim),
    Unknown,
}

fn build(proto: &tract_onnx::pb::ModelProto, dir: Option<&str>) -> Result<TractEngine, String> {
    let parsed = framework().parse(proto, dir).map_err(|e| format!("{e:#}"))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(format!("graph uses undefined values {:?}", parsed.unresolved_inputs));
    }
    let mut model = parsed.model;
    let (input_specs, batch) = fix_input_facts(&mut model)?;
    let output_names = output_names(&model)?;
    let mut typed = model.into_typed().map_err(|e| format!("cannot type the model: {e:#}"))?;
    tdim_outputs_to_i64(&mut typed).map_err(|e| format!("{e:#}"))?;
    let typed = typed.into_optimized().map_err(|e| format!("cannot optimize the model: {e:#}"))?;

    let mut outputs = Vec::with_capacity(output_names.len());
    let mut outputs_batched = true;
    for (ix, name) in output_names.into_iter().enumerate() {
        let fact = typed.output_fact(ix).map_err(|e| format!("{e:#}"))?;
        let datatype = datatype_of(fact.datum_type).ok_or_else(|| {
            format!("output '{name}' has datatype {:?}, which recserve cannot serve", fact.datum_type)
        })?;
        let dims: Vec<&TDim> = fact.shape.iter().collect();
        let batch_first = match (&batch, dims.first()) {
            (Some(b), Some(d)) => **d == TDim::Sym(b.clone()),
            _ => false,
        };
        outputs_batched &= batch_first;
        let shape = dims
            .iter()
            .map(|d| match d.as_i64() {
                Some(n) if n >= 0 => Dim::Fixed(n as usize),
                _ => Dim::Variable,
            })
            .collect();
        outputs.push(TensorSpec { name, datatype, shape });
    }
    let plan = typed.into_runnable().map_err(|e| format!("cannot plan the model: {e:#}"))?;
    let batched = batch.is_some() && outputs_batched && !input_specs.is_empty();
    Ok(TractEngine { signature: ModelSignature { inputs: input_specs, outputs, batched }, plan })
}

/// tract reads ONNX `Cast(to=INT64)` as a cast to its symbolic-dimension type (TDim), so a
/// model whose output comes out of such a cast (LightGBM's `label`) would answer in TDim; cast
/// those outputs to i64, which is what the file says they are.
fn tdim_outputs_to_i64(model: &mut TypedModel) -> TractResult<()> {
    let mut outlets = model.output_outlets()?.to_vec();
    for (ix, outlet) in outlets.iter_mut().enumerate() {
        if model.outlet_fact(*outlet)?.datum_type == DatumType::TDim {
            let cast = tract_onnx::tract_core::ops::cast::cast(DatumType::I64);
            *outlet = model.wire_node(format!("recserve.output_{ix}.to_i64"), cast, &[*outlet])?[0];
        }
    }
    model.select_output_outlets(&outlets)
}

fn output_names(model: &InferenceModel) -> Result<Vec<String>, String> {
    let outlets = model.output_outlets().map_err(|e| format!("{e:#}"))?;
    Ok(outlets
        .iter()
        .map(|o| model.outlet_label(*o).map(str::to_string).unwrap_or_else(|| model.node(o.node).name.clone()))
        .collect())
}

/// Reads each input's declared datatype and shape, makes every dimension a concrete size or a
/// symbol (the first dimension of every input being the one batch symbol when they all leave
/// it open), and sets those facts on the model. Returns the input specs and the batch symbol.
fn fix_input_facts(model: &mut InferenceModel) -> Result<(Vec<TensorSpec>, Option<Symbol>), String> {
    let n_inputs = model.input_outlets().map_err(|e| format!("{e:#}"))?.len();
    let mut declared: Vec<(String, DatumType, Vec<Declared>)> = Vec::with_capacity(n_inputs);
    for ix in 0..n_inputs {
        let outlet = model.input_outlets().map_err(|e| format!("{e:#}"))?[ix];
        let name = model.node(outlet.node).name.clone();
        let fact = model.input_fact(ix).map_err(|e| format!("{e:#}"))?;
        let dt = fact.datum_type.concretize().ok_or_else(|| format!("input '{name}' declares no datatype"))?;
        if datatype_of(dt).is_none() {
            return Err(format!("input '{name}' has datatype {dt:?}, which recserve cannot serve"));
        }
        if fact.shape.is_open() {
            return Err(format!("input '{name}' declares no shape"));
        }
        let dims = fact
            .shape
            .dims()
            .map(|d| match d {
                GenericFactoid::Only(d) => match d.as_i64() {
                    Some(n) if n >= 0 => Declared::Fixed(n as usize),
                    _ => Declared::Symbolic(d.clone()),
                },
                GenericFactoid::Any => Declared::Unknown,
            })
            .collect();
        declared.push((name, dt, dims));
    }

    // The batch dimension: every input's first dimension is open, and those that are named
    // share one plain symbol (differently named first dimensions are independent sizes).
    let mut batch: Option<Symbol> = None;
    let mut batched = !declared.is_empty();
    for (_, _, dims) in &declared {
        match dims.first() {
            Some(Declared::Unknown) => {}
            Some(Declared::Symbolic(TDim::Sym(s))) => match &batch {
                None => batch = Some(s.clone()),
                Some(b) if b == s => {}
                Some(_) => batched = false,
            },
            _ => batched = false,
        }
    }
    let batch = if batched { Some(batch.unwrap_or_else(|| model.symbols.new_with_prefix("batch"))) } else { None };

    let mut specs = Vec::with_capacity(declared.len());
    for (ix, (name, dt, dims)) in declared.into_iter().enumerate() {
        let mut shape = Vec::with_capacity(dims.len());
        let mut facts = TVec::new();
        for (axis, d) in dims.into_iter().enumerate() {
            let (dim, fact) = match (d, &batch) {
                (Declared::Fixed(n), _) => (Dim::Fixed(n), TDim::Val(n as i64)),
                (_, Some(b)) if axis == 0 => (Dim::Variable, TDim::Sym(b.clone())),
                (Declared::Symbolic(t), _) => (Dim::Variable, t),
                (Declared::Unknown, _) => (Dim::Variable, TDim::Sym(model.symbols.new_with_prefix("unk"))),
            };
            shape.push(dim);
            facts.push(GenericFactoid::Only(fact));
        }
        let fact = InferenceFact::dt_shape(dt, ShapeFactoid::closed(facts));
        model.set_input_fact(ix, fact).map_err(|e| format!("input '{name}': {e:#}"))?;
        let datatype = datatype_of(dt).ok_or_else(|| format!("input '{name}' has datatype {dt:?}"))?;
        specs.push(TensorSpec { name, datatype, shape });
    }
    Ok((specs, batch))
}

/// Our datatype for a tract datum type (ONNX STRING is BYTES); `None` for types the V2
/// protocol does not have.
fn datatype_of(dt: DatumType) -> Option<DataType> {
    Some(match dt {
        DatumType::Bool => DataType::Bool,
        DatumType::U8 => DataType::U8,
        DatumType::U16 => DataType::U16,
        DatumType::U32 => DataType::U32,
        DatumType::U64 => DataType::U64,
        DatumType::I8 => DataType::I8,
        DatumType::I16 => DataType::I16,
        DatumType::I32 => DataType::I32,
        DatumType::I64 => DataType::I64,
        DatumType::F16 => DataType::F16,
        DatumType::F32 => DataType::F32,
        DatumType::F64 => DataType::F64,
        DatumType::String => DataType::Bytes,
        _ => return None,
    })
}

/// Moves a checked tensor into tract's storage (one copy; BYTES become UTF-8 strings).
fn to_tract(t: Tensor) -> Result<TValue, String> {
    use tract_onnx::prelude::Tensor as TT;
    let err = |e: tract_onnx::prelude::TractError| format!("{e:#}");
    let Tensor { shape, data } = t;
    let tensor = match data {
        TensorData::Bool(v) => TT::from_shape(&shape, &v),
        TensorData::U8(v) => TT::from_shape(&shape, &v),
        TensorData::U16(v) => TT::from_shape(&shape, &v),
        TensorData::U32(v) => TT::from_shape(&shape, &v),
        TensorData::U64(v) => TT::from_shape(&shape, &v),
        TensorData::I8(v) => TT::from_shape(&shape, &v),
        TensorData::I16(v) => TT::from_shape(&shape, &v),
        TensorData::I32(v) => TT::from_shape(&shape, &v),
        TensorData::I64(v) => TT::from_shape(&shape, &v),
        TensorData::F16(v) => TT::from_shape(&shape, &v),
        TensorData::F32(v) => TT::from_shape(&shape, &v),
        TensorData::F64(v) => TT::from_shape(&shape, &v),
        TensorData::Bytes(v) => {
            let strings = v
                .into_iter()
                .enumerate()
                .map(|(i, b)| String::from_utf8(b).map_err(|_| format!("element {i} is not valid UTF-8")))
                .collect::<Result<Vec<String>, String>>()?;
            let array = tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(&shape), strings)
                .map_err(|e| e.to_string())?;
            Ok(TT::from(array))
        }
    }
    .map_err(err)?;
    Ok(tensor.into_tvalue())
}

/// Copies a tract output into our tensor type.
fn from_tract(v: &TValue) -> Result<Tensor, String> {
    let err = |e: tract_onnx::prelude::TractError| format!("{e:#}");
    let plain = v.try_as_plain_ram().map_err(err)?;
    macro_rules! copy {
        ($variant:ident, $t:ty) => {
            TensorData::$variant(plain.as_slice::<$t>().map_err(err)?.to_vec())
        };
    }
    let data = match v.datum_type() {
        DatumType::Bool => copy!(Bool, bool),
        DatumType::U8 => copy!(U8, u8),
        DatumType::U16 => copy!(U16, u16),
        DatumType::U32 => copy!(U32, u32),
        DatumType::U64 => copy!(U64, u64),
        DatumType::I8 => copy!(I8, i8),
        DatumType::I16 => copy!(I16, i16),
        DatumType::I32 => copy!(I32, i32),
        DatumType::I64 => copy!(I64, i64),
        DatumType::F16 => copy!(F16, half::f16),
        DatumType::F32 => copy!(F32, f32),
        DatumType::F64 => copy!(F64, f64),
        DatumType::String => {
            TensorData::Bytes(plain.as_slice::<String>().map_err(err)?.iter().map(|s| s.as_bytes().to_vec()).collect())
        }
        other => return Err(format!("datatype {other:?} is not served")),
    };
    Tensor::new(v.shape().to_vec(), data).map_err(|e| e.to_string())
}
