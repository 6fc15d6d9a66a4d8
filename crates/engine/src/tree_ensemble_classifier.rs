//! The ONNX-ML `TreeEnsembleClassifier` operator, registered in place of tract 0.23's own.
//!
//! tract's version gets binary labels wrong: for the common binary layout (every leaf votes
//! for class 0, as LightGBM, XGBoost and scikit-learn random forests write it) it takes the
//! argmax of `[f(score), f(0)]` and so answers the opposite class whenever the positive score
//! wins. onnxruntime instead compares the positive score with 0.5 (all weights positive) or 0
//! (mixed weights). It also shares the comparator and indexing issues handled by our parser
//! (see [`crate::tree_ensemble_regressor`]).
//!
//! Here the trees are parsed and scored by the code the regressor uses, and
//! [`ClassifierOutputs`] turns the per-class scores into labels and probabilities following
//! onnxruntime's `TreeAggregatorClassifier::FinalizeScores` and `write_scores`
//! (onnxruntime/core/providers/cpu/ml/tree_ensemble_aggregator.h, ml_common.h): base values,
//! the binary special cases, then the post transform. One simplification: whether a class
//! "has a score" is decided per model (some leaf votes for it), not per row; the converters
//! we know give every leaf the same classes, where the two agree.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::tract_ndarray::{ArrayD, Axis, IxDyn};
use tract_onnx_opl::ml::tree::{Aggregate, TreeEnsemble};

use crate::tree_ensemble_regressor::{PostTransform, floats_attr, parse_post_transform, parse_trees};
use crate::tree_scores::TreeEnsembleScores;

/// Adds (replaces) `TreeEnsembleClassifier` in an ONNX op register.
pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("TreeEnsembleClassifier", tree_classifier);
}

fn class_labels(node: &NodeProto) -> TractResult<Arc<Tensor>> {
    let ints = node.get_attr_opt_slice::<i64>("classlabels_int64s")?;
    let strs = node.get_attr_opt_tvec::<&str>("classlabels_strings")?;
    match (ints, strs) {
        (Some(n), None) => Ok(rctensor1(n)),
        (None, Some(s)) => Ok(rctensor1(&s.iter().map(|d| d.to_string()).collect::<Vec<_>>())),
        (None, None) => bail!("neither classlabels_int64s nor classlabels_strings is set"),
        (Some(_), Some(_)) => {
            bail!("only one of classlabels_int64s and classlabels_strings can be set")
        }
    }
}

fn tree_classifier(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels = class_labels(node)?;
    let n_classes = labels.len();
    node.expect(n_classes >= 2, "at least two class labels")?;
    let parsed = parse_trees(ctx, node, "class", n_classes)?;
    let post_transform = parse_post_transform(node.get_attr_opt("post_transform")?.unwrap_or("NONE"))?;
    let base_values = floats_attr(ctx, node, "base_values")?.unwrap_or_default();
    let base_ok =
        base_values.is_empty() || base_values.len() == n_classes || (n_classes == 2 && base_values.len() == 1);
    node.expect_attr("base_values", base_ok, || format!("0 or {n_classes} values, got {}", base_values.len()))?;
    let binary_case = n_classes == 2 && parsed.voted.iter().filter(|v| **v).count() == 1;
    let ensemble = TreeEnsemble::build(parsed.data, parsed.max_used_feature, n_classes, Aggregate::Sum)?;
    Ok((
        expand(TreeEnsembleClassifier {
            ensemble,
            outputs: ClassifierOutputs {
                class_labels: labels,
                has_score: parsed.voted,
                base_values,
                post_transform,
                binary_case,
                weights_all_positive: parsed.weights_all_positive,
            },
        }),
        vec![],
    ))
}

#[derive(Debug, Clone, PartialEq)]
struct TreeEnsembleClassifier {
    ensemble: TreeEnsemble,
    outputs: ClassifierOutputs,
}

impl Expansion for TreeEnsembleClassifier {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifier".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 2)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].datum_type, self.outputs.class_labels.datum_type())?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].datum_type, DatumType::F32)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[1], self.outputs.class_labels.len().to_dim())?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let scores =
            model.wire_node(format!("{prefix}.trees"), TreeEnsembleScores::new(self.ensemble.clone())?, inputs)?;
        model.wire_node(format!("{prefix}.outputs"), self.outputs.clone(), &scores)
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }
}

/// Turns summed class scores `[N, classes]` into labels `[N]` and probabilities
/// `[N, classes]` the way onnxruntime does.
#[derive(Debug, Clone, PartialEq)]
struct ClassifierOutputs {
    /// i64 or String, one per class.
    class_labels: Arc<Tensor>,
    has_score: Vec<bool>,
    base_values: Vec<f32>,
    post_transform: Option<PostTransform>,
    /// Two classes and every leaf votes for the same one.
    binary_case: bool,
    weights_all_positive: bool,
}

// tract compares ops for equality when deduplicating nodes; NaN base values would only make
// two identical ops compare unequal, which is harmless.
impl Eq for ClassifierOutputs {}

fn logistic(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

fn post(transform: Option<PostTransform>, scores: &mut [f32]) {
    match transform {
        None => {}
        Some(PostTransform::Logistic) => scores.iter_mut().for_each(|s| *s = logistic(*s)),
        Some(PostTransform::Softmax) => {
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            scores.iter_mut().for_each(|s| *s = (*s - max).exp());
            let sum: f32 = scores.iter().sum();
            scores.iter_mut().for_each(|s| *s /= sum);
        }
    }
}

impl ClassifierOutputs {
    /// One row: the label index and the probabilities written into `probs`.
    fn finish_row(&self, scores: &[f32], probs: &mut [f32]) -> usize {
        let mut p = scores.to_vec();
        let mut has = self.has_score.clone();
        let base = &self.base_values;
        if p.len() > 2 {
            for (k, b) in base.iter().enumerate() {
                p[k] += b;
                has[k] = true;
            }
            // First maximum among the classes that have a score.
            let mut best: Option<usize> = None;
            for k in 0..p.len() {
                if has[k] && best.is_none_or(|b| p[k] > p[b]) {
                    best = Some(k);
                }
            }
            post(self.post_transform, &mut p);
            probs.copy_from_slice(&p);
            return best.unwrap_or(0);
        }
        // Two classes.
        let mut two_scores = true;
        match base.len() {
            2 if has[1] => {
                p[1] = base[1] + p[0];
                p[0] = -p[1];
            }
            2 => {
                p[0] += base[0];
                p[1] += base[1];
            }
            1 => {
                p[0] += base[0];
                two_scores = has[1];
            }
            _ => two_scores = has[1],
        }
        let positive = if two_scores && has[1] {
            p[1]
        } else if has[0] {
            p[0]
        } else {
            0.0
        };
        let threshold = if self.binary_case && self.weights_all_positive { 0.5 } else { 0.0 };
        let label = usize::from(positive > threshold);
        if two_scores {
            post(self.post_transform, &mut p);
            probs.copy_from_slice(&p);
        } else {
            let s = p[0];
            let pair = if self.weights_all_positive {
                [1.0 - s, s]
            } else if self.post_transform == Some(PostTransform::Logistic) {
                [logistic(-s), logistic(s)]
            } else {
                [-s, s]
            };
            probs.copy_from_slice(&pair);
        }
        label
    }
}

impl Op for ClassifierOutputs {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifierOutputs".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ClassifierOutputs {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let scores = args_1!(inputs);
        let scores = scores.to_plain_array_view::<f32>()?;
        let n_classes = self.class_labels.len();
        ensure!(scores.ndim() == 2 && scores.shape()[1] == n_classes, "scores of shape {:?}", scores.shape());
        let rows = scores.shape()[0];
        let mut probs = ArrayD::<f32>::zeros(IxDyn(&[rows, n_classes]));
        let mut label_ix = Vec::with_capacity(rows);
        for (row, mut out) in scores.axis_iter(Axis(0)).zip(probs.axis_iter_mut(Axis(0))) {
            let row: Vec<f32> = row.iter().copied().collect();
            let mut p = vec![0f32; n_classes];
            label_ix.push(self.finish_row(&row, &mut p));
            out.iter_mut().zip(p).for_each(|(o, v)| *o = v);
        }
        let labels = self.class_labels.try_as_plain_ram()?;
        let labels: Tensor = match self.class_labels.datum_type() {
            DatumType::I64 => {
                let l = labels.as_slice::<i64>()?;
                tensor1(&label_ix.iter().map(|i| l[*i]).collect::<Vec<i64>>())
            }
            DatumType::String => {
                let l = labels.as_slice::<String>()?;
                tensor1(&label_ix.iter().map(|i| l[*i].clone()).collect::<Vec<String>>())
            }
            other => bail!("class labels of type {other:?}"),
        };
        Ok(tvec!(labels.into_tvalue(), probs.into_tvalue()))
    }
}

impl TypedOp for ClassifierOutputs {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        Ok(tvec!(
            self.class_labels.datum_type().fact(std::slice::from_ref(&n)),
            f32::fact(&[n, self.class_labels.len().into()])
        ))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(binary_case: bool, all_positive: bool, post: Option<PostTransform>, base: &[f32]) -> ClassifierOutputs {
        ClassifierOutputs {
            class_labels: rctensor1(&[0i64, 1]),
            has_score: vec![true, false],
            base_values: base.to_vec(),
            post_transform: post,
            binary_case,
            weights_all_positive: all_positive,
        }
    }

    fn row(o: &ClassifierOutputs, score: f32) -> (usize, [f32; 2]) {
        let mut p = [0f32; 2];
        let label = o.finish_row(&[score, 0.0], &mut p);
        (label, p)
    }

    #[test]
    fn binary_with_positive_weights_thresholds_at_one_half() {
        let o = outputs(true, true, None, &[]);
        assert_eq!(row(&o, 0.75), (1, [0.25, 0.75]));
        assert_eq!(row(&o, 0.25), (0, [0.75, 0.25]));
    }

    #[test]
    fn binary_logistic_with_mixed_weights_thresholds_the_raw_score_at_zero() {
        let o = outputs(true, false, Some(PostTransform::Logistic), &[0.5]);
        let (label, p) = row(&o, -0.2); // -0.2 + 0.5 > 0
        assert_eq!(label, 1);
        assert!((p[1] - logistic(0.3)).abs() < 1e-6 && (p[0] - logistic(-0.3)).abs() < 1e-6, "{p:?}");
        assert_eq!(row(&o, -0.7).0, 0);
    }

    #[test]
    fn multiclass_takes_the_first_maximum_before_the_transform() {
        let o = ClassifierOutputs {
            class_labels: rctensor1(&[10i64, 20, 30]),
            has_score: vec![true; 3],
            base_values: vec![],
            post_transform: Some(PostTransform::Softmax),
            binary_case: false,
            weights_all_positive: false,
        };
        let mut p = [0f32; 3];
        assert_eq!(o.finish_row(&[1.0, 3.0, 3.0], &mut p), 1);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[0] && (p[1] - p[2]).abs() < 1e-7);
    }

    /// A stump on feature 0 voting for class 0 only (the binary layout), string labels,
    /// `BRANCH_GTE` (which opl's evaluator cannot decode itself), through the whole engine.
    #[test]
    fn string_labels_and_gte_branches_through_the_engine() {
        use crate::test_models::{floats, ints, one_node_model, string, strings};
        use crate::{DataType, Engine, Tensor, TensorData, TractEngine};
        let attributes = vec![
            ints("nodes_treeids", &[0, 0, 0]),
            ints("nodes_nodeids", &[0, 1, 2]),
            ints("nodes_featureids", &[0, 0, 0]),
            strings("nodes_modes", &["BRANCH_GTE", "LEAF", "LEAF"]),
            floats("nodes_values", &[1.0, 0.0, 0.0]),
            ints("nodes_truenodeids", &[1, 0, 0]),
            ints("nodes_falsenodeids", &[2, 0, 0]),
            ints("class_treeids", &[0, 0]),
            ints("class_nodeids", &[1, 2]),
            ints("class_ids", &[0, 0]),
            floats("class_weights", &[0.9, 0.2]),
            strings("classlabels_strings", &["no", "yes"]),
            string("post_transform", "NONE"),
        ];
        let model = one_node_model(
            "TreeEnsembleClassifier",
            attributes,
            1,
            &[("label", 8, &[None]), ("probabilities", 1, &[None, Some(2)])],
        );
        let engine = TractEngine::from_proto(&model).expect("loads");
        assert_eq!(engine.signature().outputs[0].datatype, DataType::Bytes);
        let x = Tensor::new(vec![3, 1], TensorData::F32(vec![1.0, 0.5, f32::NAN])).expect("tensor");
        let out = engine.run(vec![x]).expect("runs");
        // x >= 1 → 0.9 → "yes"; x < 1 → 0.2 → "no"; NaN (missing goes false) → 0.2 → "no".
        assert_eq!(out[0].data, TensorData::Bytes(vec![b"yes".to_vec(), b"no".to_vec(), b"no".to_vec()]));
        let TensorData::F32(p) = &out[1].data else { panic!("probabilities are FP32") };
        let want = [0.1, 0.9, 0.8, 0.2, 0.8, 0.2];
        assert!(p.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{p:?}");
    }
}
