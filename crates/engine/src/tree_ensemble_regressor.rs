//! The ONNX-ML `TreeEnsembleRegressor` operator, which tract 0.23 parses for neither
//! `ai.onnx.ml` opset 1 nor 3 (it only registers `TreeEnsembleClassifier`). LightGBM, XGBoost
//! and scikit-learn regressors all convert to it.
//!
//! The parsed trees are packed into tract-onnx-opl's [`TreeEnsembleData`] layout (held in
//! its [`TreeEnsemble`]) and scored by [`TreeEnsembleScores`] rather than by opl's evaluator
//! (see there why). The rest follows onnxruntime's order: aggregate → (`AVERAGE`:
//! ÷ number of trees) → + `base_values` → post transform. The parser and the scorer are shared
//! with our `TreeEnsembleClassifier` ([`crate::tree_ensemble_classifier`]).
//!
//! The attribute parser is our own, after `parse_nodes_data` in tract-onnx 0.23
//! (`src/ops/ml/tree_ensemble_classifier.rs`, MIT/Apache-2.0, private there), with these
//! differences: node ids are looked up rather than assumed dense and sorted, every child,
//! target and tree is checked, cycles are rejected, the `aggregate_function` attribute is read
//! under its ONNX name (tract reads `aggregate`), and the opset-3 `*_as_tensor` attributes are
//! accepted.

use std::collections::HashMap;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx_opl::ml::tree::{Aggregate, Cmp, TreeEnsemble, TreeEnsembleData};
use tract_onnx_opl::ml::tree_ensemble_classifier::parse_aggregate;

use crate::tree_scores::TreeEnsembleScores;

/// Adds `TreeEnsembleRegressor` to an ONNX op register.
pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("TreeEnsembleRegressor", tree_regressor);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PostTransform {
    Logistic,
    Softmax,
}

pub(crate) fn parse_post_transform(s: &str) -> TractResult<Option<PostTransform>> {
    match s {
        "NONE" => Ok(None),
        "LOGISTIC" => Ok(Some(PostTransform::Logistic)),
        "SOFTMAX" => Ok(Some(PostTransform::Softmax)),
        "SOFTMAX_ZERO" | "PROBIT" => bail!("post_transform {s} is not supported"),
        _ => bail!("invalid post_transform {s}"),
    }
}

/// Comparator of a branch, or `None` for a leaf.
fn parse_node_mode(s: &str) -> TractResult<Option<Cmp>> {
    Ok(Some(match s {
        "BRANCH_LEQ" => Cmp::LessEqual,
        "BRANCH_LT" => Cmp::Less,
        "BRANCH_GTE" => Cmp::GreaterEqual,
        "BRANCH_GT" => Cmp::Greater,
        "BRANCH_EQ" => Cmp::Equal,
        "BRANCH_NEQ" => Cmp::NotEqual,
        "LEAF" => return Ok(None),
        _ => bail!("unsupported node mode {s}"),
    }))
}

/// A float-list attribute, or its opset-3 `<name>_as_tensor` double form.
pub(crate) fn floats_attr(ctx: &ParsingContext, node: &NodeProto, name: &str) -> TractResult<Option<Vec<f32>>> {
    if let Some(v) = node.get_attr_opt_vec::<f32>(name)? {
        return Ok(Some(v));
    }
    let tensor_name = format!("{name}_as_tensor");
    match node.get_attr_opt::<&tract_onnx::pb::TensorProto>(&tensor_name)? {
        Some(proto) => {
            let t = ctx.load_tensor(proto)?.cast_to::<f32>()?.into_owned();
            Ok(Some(t.try_as_plain_ram()?.as_slice::<f32>()?.to_vec()))
        }
        None => Ok(None),
    }
}

fn usizes(node: &NodeProto, name: &str, n: usize) -> TractResult<Vec<usize>> {
    let v = node.get_attr_vec::<usize>(name)?;
    node.expect_attr(name, v.len() == n, || format!("{n} values, got {}", v.len()))?;
    Ok(v)
}

/// The trees of a tree ensemble operator, packed in opl's layout.
#[derive(Debug)]
pub(crate) struct ParsedTrees {
    pub data: TreeEnsembleData,
    pub n_trees: usize,
    pub max_used_feature: usize,
    /// Which targets (classes) some leaf votes for.
    pub voted: Vec<bool>,
    /// No leaf weight is negative.
    pub weights_all_positive: bool,
}

/// Parses the `nodes_*` attributes and the leaf attributes `<prefix>_ids`, `_nodeids`,
/// `_treeids`, `_weights` (prefix `target` for the regressor, `class` for the classifier);
/// leaf ids must be below `n_targets`.
pub(crate) fn parse_trees(
    ctx: &ParsingContext,
    node: &NodeProto,
    prefix: &str,
    n_targets: usize,
) -> TractResult<ParsedTrees> {
    let attr = |name: &str| format!("{prefix}_{name}");
    let n_nodes = node.get_attr_slice::<i64>("nodes_featureids")?.len();
    node.expect_attr("nodes_featureids", n_nodes != 0, "at least one node")?;
    let node_ids = usizes(node, "nodes_nodeids", n_nodes)?;
    let tree_ids = usizes(node, "nodes_treeids", n_nodes)?;
    let feature_ids = usizes(node, "nodes_featureids", n_nodes)?;
    let true_ids = usizes(node, "nodes_truenodeids", n_nodes)?;
    let false_ids = usizes(node, "nodes_falsenodeids", n_nodes)?;
    let values = floats_attr(ctx, node, "nodes_values")?.unwrap_or_default();
    node.expect_attr("nodes_values", values.len() == n_nodes, || format!("{n_nodes} values, got {}", values.len()))?;
    let nan_is_true = match node.get_attr_opt_vec::<bool>("nodes_missing_value_tracks_true")? {
        Some(v) => {
            node.expect_attr("nodes_missing_value_tracks_true", v.len() == n_nodes, "one value per node")?;
            v
        }
        None => vec![false; n_nodes],
    };
    let modes: Vec<Option<Cmp>> =
        node.get_attr_vec::<&str>("nodes_modes")?.iter().map(|s| parse_node_mode(s)).collect::<TractResult<_>>()?;
    node.expect_attr("nodes_modes", modes.len() == n_nodes, "one value per node")?;

    let n_leaves = node.get_attr_slice::<i64>(&attr("ids"))?.len();
    let leaf_targets = usizes(node, &attr("ids"), n_leaves)?;
    let leaf_node_ids = usizes(node, &attr("nodeids"), n_leaves)?;
    let leaf_tree_ids = usizes(node, &attr("treeids"), n_leaves)?;
    let leaf_weights = floats_attr(ctx, node, &attr("weights"))?.unwrap_or_default();
    node.expect_attr(&attr("weights"), leaf_weights.len() == n_leaves, "one value per leaf id")?;
    if let Some(bad) = leaf_targets.iter().find(|t| **t >= n_targets) {
        bail!("{prefix} id {bad} out of range: there are {n_targets}");
    }
    let mut voted = vec![false; n_targets];
    leaf_targets.iter().for_each(|t| voted[*t] = true);
    let weights_all_positive = leaf_weights.iter().all(|w| *w >= 0.0);

    // Trees in id order, each tree's nodes in id order: rows of the packed table.
    let mut order: Vec<usize> = (0..n_nodes).collect();
    order.sort_by_key(|&ix| (tree_ids[ix], node_ids[ix]));
    let mut row_of: HashMap<(usize, usize), usize> = HashMap::with_capacity(n_nodes);
    for (row, &ix) in order.iter().enumerate() {
        if row_of.insert((tree_ids[ix], node_ids[ix]), row).is_some() {
            bail!("node {} of tree {} is defined twice", node_ids[ix], tree_ids[ix]);
        }
    }
    let mut weights_of: HashMap<(usize, usize), Vec<(usize, f32)>> = HashMap::new();
    for i in 0..n_leaves {
        let key = (leaf_tree_ids[i], leaf_node_ids[i]);
        match row_of.get(&key) {
            Some(&row) if modes[order[row]].is_none() => {}
            Some(_) => bail!("{prefix} weight attached to branch node {} of tree {}", key.1, key.0),
            None => bail!("{prefix} weight attached to unknown node {} of tree {}", key.1, key.0),
        }
        weights_of.entry(key).or_default().push((leaf_targets[i], leaf_weights[i]));
    }

    let mut trees: Vec<u32> = vec![];
    let mut nodes: Vec<u32> = Vec::with_capacity(n_nodes * 5);
    let mut leaves: Vec<u32> = Vec::with_capacity(n_leaves * 2);
    let mut current_tree = None;
    let as_u32 = |v: usize| u32::try_from(v).map_err(|_| format_err!("tree ensemble too large"));
    for (row, &ix) in order.iter().enumerate() {
        let tree = tree_ids[ix];
        if current_tree != Some(tree) {
            current_tree = Some(tree);
            trees.push(as_u32(row)?);
        }
        let child = |id: usize| {
            row_of
                .get(&(tree, id))
                .copied()
                .ok_or_else(|| format_err!("node {} of tree {tree} points to missing node {id}", node_ids[ix]))
        };
        match modes[ix] {
            Some(cmp) => {
                nodes.extend([
                    as_u32(feature_ids[ix])?,
                    as_u32(child(true_ids[ix])?)?,
                    as_u32(child(false_ids[ix])?)?,
                    values[ix].to_bits(),
                    (0x0100 * nan_is_true[ix] as u32) | cmp as u32,
                ]);
            }
            None => {
                let start = as_u32(leaves.len() / 2)?;
                for (target, w) in weights_of.get(&(tree, node_ids[ix])).into_iter().flatten() {
                    leaves.extend([as_u32(*target)?, w.to_bits()]);
                }
                nodes.extend([start, as_u32(leaves.len() / 2)?, 0, 0, 0]);
            }
        }
    }
    check_acyclic(&trees, &nodes)?;
    let max_used_feature =
        feature_ids.iter().zip(&modes).filter(|(_, m)| m.is_some()).map(|(f, _)| *f).max().unwrap_or(0);
    let n_trees = trees.len();
    let data = TreeEnsembleData {
        trees: rctensor1(&trees),
        nodes: tensor1(&nodes).into_shape(&[nodes.len() / 5, 5])?.into_arc_tensor(),
        leaves: tensor1(&leaves).into_shape(&[leaves.len() / 2, 2])?.into_arc_tensor(),
    };
    Ok(ParsedTrees { data, n_trees, max_used_feature, voted, weights_all_positive })
}

/// Every tree is walked from its root; a node reached twice means a cycle or shared subtree,
/// which the evaluators (and onnxruntime) do not expect.
fn check_acyclic(trees: &[u32], nodes: &[u32]) -> TractResult<()> {
    let n_rows = nodes.len() / 5;
    let mut seen = vec![false; n_rows];
    for &root in trees {
        let mut stack = vec![root as usize];
        while let Some(row) = stack.pop() {
            ensure!(row < n_rows, "tree node {row} out of range");
            ensure!(!seen[row], "tree node {row} is reached twice (cycle or shared subtree)");
            seen[row] = true;
            let r = &nodes[row * 5..row * 5 + 5];
            if r[4] & 0xFF != 0 {
                stack.push(r[1] as usize);
                stack.push(r[2] as usize);
            }
        }
    }
    Ok(())
}

fn tree_regressor(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let n_targets: usize = node.get_attr_opt("n_targets")?.unwrap_or(1);
    node.expect_attr("n_targets", n_targets > 0, "at least one target")?;
    let aggregate = parse_aggregate(node.get_attr_opt("aggregate_function")?.unwrap_or("SUM"))?;
    let post_transform = parse_post_transform(node.get_attr_opt("post_transform")?.unwrap_or("NONE"))?;
    let base_values = floats_attr(ctx, node, "base_values")?;
    if let Some(b) = &base_values {
        node.expect_attr("base_values", b.len() == n_targets, || {
            format!("{n_targets} values (n_targets), got {}", b.len())
        })?;
    }
    let parsed = parse_trees(ctx, node, "target", n_targets)?;
    let ensemble = TreeEnsemble::build(parsed.data, parsed.max_used_feature, n_targets, aggregate)?;
    Ok((
        expand(TreeEnsembleRegressor {
            ensemble,
            aggregate,
            n_trees: parsed.n_trees,
            base_values: base_values
                .map(|b| tensor1(&b).into_shape(&[1, n_targets]))
                .transpose()?
                .map(Tensor::into_arc_tensor),
            post_transform,
        }),
        vec![],
    ))
}

/// The inference-time form of the operator: checks shapes, then wires typed ops.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct TreeEnsembleRegressor {
    /// For `Avg`, [`TreeEnsembleScores`] sums; the division is wired after it.
    ensemble: TreeEnsemble,
    aggregate: Aggregate,
    n_trees: usize,
    /// `[1, n_targets]`
    base_values: Option<Arc<Tensor>>,
    post_transform: Option<PostTransform>,
}

impl Expansion for TreeEnsembleRegressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.ensemble.n_classes().to_dim())?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let mut scores =
            model.wire_node(format!("{prefix}.trees"), TreeEnsembleScores::new(self.ensemble.clone())?, inputs)?;
        if self.aggregate == Aggregate::Avg {
            let n = model.add_const(format!("{prefix}.n_trees"), rctensor2(&[[self.n_trees as f32]]))?;
            scores = model.wire_node(format!("{prefix}.average"), tract_core::ops::math::div(), &[scores[0], n])?;
        }
        if let Some(base) = &self.base_values {
            let base = model.add_const(format!("{prefix}.base_values"), base.clone())?;
            scores = model.wire_node(format!("{prefix}.add_base"), tract_core::ops::math::add(), &[scores[0], base])?;
        }
        match self.post_transform {
            None => {}
            Some(PostTransform::Logistic) => {
                scores = model.wire_node(format!("{prefix}.logistic"), tract_core::ops::nn::sigmoid(), &scores)?;
            }
            Some(PostTransform::Softmax) => {
                scores = tract_onnx::tract_hir::ops::nn::LayerSoftmax::new(1, false).wire(
                    &format!("{prefix}.softmax"),
                    model,
                    &scores,
                )?;
            }
        }
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    //! Hand-made ensembles whose outputs are worked out by hand, run through the whole engine.
    use crate::test_models::{floats, int, ints, one_node_model, string, strings};
    use crate::{Engine, EngineError, Tensor, TensorData, TractEngine};
    use tract_onnx::pb::{AttributeProto, ModelProto};

    fn model(attributes: Vec<AttributeProto>, n_features: i64, n_targets: i64) -> ModelProto {
        one_node_model("TreeEnsembleRegressor", attributes, n_features, &[("y", 1, &[None, Some(n_targets)])])
    }

    /// Two trees on feature 0, listed out of order and with sparse node ids:
    /// tree 0: x <= 0.5 ? 1.0 : 3.0 (NaN goes false);
    /// tree 1: x >= 1.5 ? 10.0 : 20.0 (NaN goes true), node ids 5, 7, 9.
    fn two_trees() -> Vec<AttributeProto> {
        vec![
            ints("nodes_treeids", &[1, 0, 0, 0, 1, 1]),
            ints("nodes_nodeids", &[7, 0, 1, 2, 5, 9]),
            ints("nodes_featureids", &[0, 0, 0, 0, 0, 0]),
            strings("nodes_modes", &["LEAF", "BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_GTE", "LEAF"]),
            floats("nodes_values", &[0.0, 0.5, 0.0, 0.0, 1.5, 0.0]),
            ints("nodes_truenodeids", &[0, 1, 0, 0, 7, 0]),
            ints("nodes_falsenodeids", &[0, 2, 0, 0, 9, 0]),
            ints("nodes_missing_value_tracks_true", &[0, 0, 0, 0, 1, 0]),
            ints("target_treeids", &[1, 0, 0, 1]),
            ints("target_nodeids", &[9, 1, 2, 7]),
            ints("target_ids", &[0, 0, 0, 0]),
            floats("target_weights", &[20.0, 1.0, 3.0, 10.0]),
        ]
    }

    fn run(proto: &ModelProto, x: Vec<f32>) -> Vec<f32> {
        let engine = TractEngine::from_proto(proto).expect("model loads");
        let rows = x.len();
        let out = engine.run(vec![Tensor::new(vec![rows, 1], TensorData::F32(x)).expect("tensor")]).expect("runs");
        match &out[0].data {
            TensorData::F32(v) => v.clone(),
            other => panic!("unexpected output {other:?}"),
        }
    }

    const X: [f32; 4] = [0.0, 2.0, f32::NAN, 1.0];

    #[test]
    fn sum_is_the_default_and_nan_follows_the_missing_flag() {
        // x=0: 1+20; x=2: 3+10; NaN: 3 (false) + 10 (true); x=1: 3+20
        assert_eq!(run(&model(two_trees(), 1, 1), X.to_vec()), vec![21.0, 13.0, 13.0, 23.0]);
    }

    #[test]
    fn aggregates_match_onnxruntime_semantics() {
        let with = |agg: &str| {
            let mut a = two_trees();
            a.push(string("aggregate_function", agg));
            run(&model(a, 1, 1), X.to_vec())
        };
        assert_eq!(with("AVERAGE"), vec![10.5, 6.5, 6.5, 11.5]);
        // All weights are positive: a min that started from 0 would give 0 here.
        assert_eq!(with("MIN"), vec![1.0, 3.0, 3.0, 3.0]);
        assert_eq!(with("MAX"), vec![20.0, 10.0, 10.0, 20.0]);
    }

    #[test]
    fn base_values_and_post_transform_apply_after_aggregation() {
        let mut a = two_trees();
        a.push(floats("base_values", &[-20.0]));
        a.push(string("aggregate_function", "AVERAGE"));
        a.push(string("post_transform", "LOGISTIC"));
        let got = run(&model(a, 1, 1), vec![0.0, 2.0]);
        let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
        let want = [sigmoid(10.5 - 20.0), sigmoid(6.5 - 20.0)];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn several_targets_with_softmax() {
        // One stump; each leaf votes for both targets.
        let a = vec![
            ints("nodes_treeids", &[0, 0, 0]),
            ints("nodes_nodeids", &[0, 1, 2]),
            ints("nodes_featureids", &[1, 0, 0]),
            strings("nodes_modes", &["BRANCH_LT", "LEAF", "LEAF"]),
            floats("nodes_values", &[0.0, 0.0, 0.0]),
            ints("nodes_truenodeids", &[1, 0, 0]),
            ints("nodes_falsenodeids", &[2, 0, 0]),
            ints("target_treeids", &[0, 0, 0, 0]),
            ints("target_nodeids", &[1, 1, 2, 2]),
            ints("target_ids", &[0, 1, 0, 1]),
            floats("target_weights", &[1.0, 2.0, 3.0, 1.0]),
            int("n_targets", 2),
            floats("base_values", &[0.5, 0.25]),
        ];
        let engine = TractEngine::from_proto(&model(a.clone(), 2, 2)).expect("loads");
        let x = Tensor::new(vec![2, 2], TensorData::F32(vec![9.0, -1.0, 9.0, 1.0])).expect("tensor");
        let out = engine.run(vec![x.clone()]).expect("runs");
        assert_eq!(out[0].shape, vec![2, 2]);
        assert_eq!(out[0].data, TensorData::F32(vec![1.5, 2.25, 3.5, 1.25]));

        let mut soft = a;
        soft.push(string("post_transform", "SOFTMAX"));
        let engine = TractEngine::from_proto(&model(soft, 2, 2)).expect("loads");
        let out = engine.run(vec![x]).expect("runs");
        let TensorData::F32(v) = &out[0].data else { panic!("not f32") };
        let e = |a: f32, b: f32| (a.exp() / (a.exp() + b.exp()), b.exp() / (a.exp() + b.exp()));
        let (p0, p1) = e(1.5, 2.25);
        let (q0, q1) = e(3.5, 1.25);
        for (g, w) in v.iter().zip([p0, p1, q0, q1]) {
            assert!((g - w).abs() < 1e-6, "{v:?}");
        }
    }

    fn load_err(a: Vec<AttributeProto>) -> String {
        match TractEngine::from_proto(&model(a, 1, 1)) {
            Err(EngineError::Load { reason, .. }) => reason,
            other => panic!("expected a load error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_ensembles_are_load_errors() {
        let mut cyclic = two_trees();
        cyclic[5] = ints("nodes_truenodeids", &[0, 0, 0, 0, 7, 0]); // node 0 of tree 0 points to itself
        assert!(load_err(cyclic).contains("reached twice"), "cycle");

        let mut dangling = two_trees();
        dangling[6] = ints("nodes_falsenodeids", &[0, 2, 0, 0, 4, 0]);
        assert!(load_err(dangling).contains("missing node 4"), "dangling child");

        let mut bad_target = two_trees();
        bad_target[10] = ints("target_ids", &[0, 0, 3, 0]);
        assert!(load_err(bad_target).contains("target id 3 out of range"), "target out of range");

        let mut agg = two_trees();
        agg.push(string("aggregate_function", "MEDIAN"));
        assert!(load_err(agg).contains("MEDIAN"), "unknown aggregate");

        let mut post = two_trees();
        post.push(string("post_transform", "PROBIT"));
        assert!(load_err(post).contains("PROBIT"), "unsupported post transform");
    }
}
