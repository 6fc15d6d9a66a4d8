//! [`TreeEnsembleScores`]: the typed op that evaluates a parsed tree ensemble into per-target
//! scores `[N, targets]`, shared by our `TreeEnsembleRegressor` and `TreeEnsembleClassifier`.
//!
//! The trees arrive in tract-onnx-opl's packed `TreeEnsembleData` layout and are compiled
//! once into an array of small nodes. A batch of one or a few rows walks sixteen trees of a
//! row in lock step; a larger batch (a ranker scoring its candidates) walks one tree for sixteen
//! rows in lock step, tree after tree, so each tree's nodes stay in the L1 cache while every
//! row passes through it, and each walk takes that tree's depth rather than the deepest of
//! sixteen trees. Both orders add a row's votes tree by tree, so they give the same bits.
//! We do not use opl's `TreeEnsemble::eval`: on the
//! LightGBM fixture it ran 100× slower than onnxruntime, because it decodes every leaf row by
//! building an error (`Cmp::try_from` fails on the leaf marker, and captures a backtrace when
//! RUST_BACKTRACE is set), finds a leaf's weights by stepping an iterator from the first leaf,
//! and starts min / max from 0.
//!
//! Semantics are onnxruntime's: a branch goes to its true child when `x CMP threshold`, or when
//! `x` is NaN and the node's missing value tracks true; `SUM` (and `AVERAGE`, divided later)
//! add the weights reached, `MIN` / `MAX` take the smallest / largest, and a target that no
//! reached leaf votes for scores 0.

use std::hash::{Hash, Hasher};

use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::tract_ndarray::{Array2, Axis};
use tract_onnx_opl::ml::tree::{Aggregate, Cmp, TreeEnsemble};

/// One node. A leaf points to itself on both sides (and compares against NaN), so a walk
/// that reaches it stays there: several trees can then be walked in lock step for a fixed
/// number of steps, with no data-dependent branch.
#[derive(Debug, Clone, Copy)]
struct Node {
    feature: u32,
    threshold: f32,
    /// `[false child, true child]`.
    children: [u32; 2],
    /// `Cmp as u8`; 0 for a leaf.
    cmp: u8,
    nan_goes_true: bool,
}

/// Trees walked together for one row: enough independent walks to keep the CPU busy while
/// each waits on its loads.
const LANES: usize = 16;

/// Rows walked together through one tree in the tree-major order (8 and 32 measured slower
/// than 16 on the demo ranker at 200 rows).
const ROW_LANES: usize = 16;

#[derive(Debug)]
struct CompiledTrees {
    roots: Vec<u32>,
    /// For each tree, its deepest leaf's depth.
    depths: Vec<u32>,
    /// For each group of `LANES` consecutive trees, the deepest leaf's depth.
    group_depths: Vec<u32>,
    nodes: Vec<Node>,
    /// For each node, the range of its votes in `votes` (empty for branches).
    leaf_votes: Vec<[u32; 2]>,
    /// (target, weight)
    votes: Vec<(u32, f32)>,
    /// The comparator of every branch, when they all share one (the usual case).
    uniform: Option<Cmp>,
}

fn compile(ensemble: &TreeEnsemble) -> TractResult<CompiledTrees> {
    let data = &ensemble.data;
    let roots = data.trees.try_as_plain_ram()?.as_slice::<u32>()?.to_vec();
    let packed = data.nodes.try_as_plain_ram()?.as_slice::<u32>()?;
    let leaves = data.leaves.try_as_plain_ram()?.as_slice::<u32>()?;
    let n_nodes = packed.len() / 5;
    let votes: Vec<(u32, f32)> = leaves.chunks_exact(2).map(|l| (l[0], f32::from_bits(l[1]))).collect();
    let mut nodes = Vec::with_capacity(n_nodes);
    let mut leaf_votes = Vec::with_capacity(n_nodes);
    let mut modes = std::collections::HashSet::new();
    for (ix, r) in packed.chunks_exact(5).enumerate() {
        let cmp = (r[4] & 0xFF) as u8;
        if cmp == 0 {
            ensure!(r[0] <= r[1] && r[1] as usize <= votes.len(), "leaf votes {}..{} out of range", r[0], r[1]);
            let me = u32::try_from(ix)?;
            nodes.push(Node { feature: 0, threshold: f32::NAN, children: [me, me], cmp, nan_goes_true: false });
            leaf_votes.push([r[0], r[1]]);
        } else {
            ensure!((1..=6).contains(&cmp), "bad comparator {cmp}");
            ensure!((r[1] as usize) < n_nodes && (r[2] as usize) < n_nodes, "child out of range");
            ensure!((r[0] as usize) <= ensemble.max_used_feature, "feature {} out of range", r[0]);
            modes.insert(cmp);
            nodes.push(Node {
                feature: r[0],
                threshold: f32::from_bits(r[3]),
                children: [r[2], r[1]],
                cmp,
                nan_goes_true: r[4] & 0x0100 != 0,
            });
            leaf_votes.push([0, 0]);
        }
    }
    ensure!(roots.iter().all(|r| (*r as usize) < n_nodes), "tree root out of range");
    ensure!(votes.iter().all(|(t, _)| (*t as usize) < ensemble.n_classes()), "vote for a target out of range");
    let depths = roots.iter().map(|r| depth(&nodes, *r)).collect::<TractResult<Vec<u32>>>()?;
    let group_depths = depths.chunks(LANES).map(|g| g.iter().copied().max().unwrap_or(0)).collect();
    let uniform = match modes.iter().collect::<Vec<_>>().as_slice() {
        [one] => Some(cmp_of(**one)?),
        _ => None,
    };
    Ok(CompiledTrees { roots, depths, group_depths, nodes, leaf_votes, votes, uniform })
}

/// Depth of the deepest leaf under `root` (0 for a lone leaf); errors on a cycle.
fn depth(nodes: &[Node], root: u32) -> TractResult<u32> {
    let mut deepest = 0;
    let mut stack = vec![(root, 0u32)];
    while let Some((ix, d)) = stack.pop() {
        ensure!((d as usize) <= nodes.len(), "cycle in tree at node {root}");
        let node = &nodes[ix as usize];
        if node.cmp == 0 {
            deepest = deepest.max(d);
        } else {
            stack.push((node.children[0], d + 1));
            stack.push((node.children[1], d + 1));
        }
    }
    Ok(deepest)
}

fn cmp_of(code: u8) -> TractResult<Cmp> {
    Ok(match code {
        c if c == Cmp::Equal as u8 => Cmp::Equal,
        c if c == Cmp::NotEqual as u8 => Cmp::NotEqual,
        c if c == Cmp::Less as u8 => Cmp::Less,
        c if c == Cmp::Greater as u8 => Cmp::Greater,
        c if c == Cmp::LessEqual as u8 => Cmp::LessEqual,
        c if c == Cmp::GreaterEqual as u8 => Cmp::GreaterEqual,
        _ => bail!("bad comparator {code}"),
    })
}

/// A branch comparison fixed at compile time, so the walk over a uniform forest is a tight,
/// branch-free select per node.
trait Compare {
    fn holds(node: &Node, x: f32) -> bool;
}

macro_rules! comparator {
    ($name:ident, $op:tt) => {
        struct $name;
        impl Compare for $name {
            #[inline(always)]
            fn holds(node: &Node, x: f32) -> bool {
                x $op node.threshold
            }
        }
    };
}
comparator!(Leq, <=);
comparator!(Lt, <);
comparator!(Geq, >=);
comparator!(Gt, >);
comparator!(Eq_, ==);
comparator!(Neq, !=);

/// Mixed comparators: decided per node.
struct PerNode;
impl Compare for PerNode {
    #[inline(always)]
    fn holds(node: &Node, x: f32) -> bool {
        match node.cmp {
            c if c == Cmp::LessEqual as u8 => x <= node.threshold,
            c if c == Cmp::Less as u8 => x < node.threshold,
            c if c == Cmp::GreaterEqual as u8 => x >= node.threshold,
            c if c == Cmp::Greater as u8 => x > node.threshold,
            c if c == Cmp::Equal as u8 => x == node.threshold,
            _ => x != node.threshold,
        }
    }
}

/// The typed op. Equality and hashing go by the ensemble; the compiled form follows from it.
#[derive(Debug, Clone)]
pub(crate) struct TreeEnsembleScores {
    ensemble: TreeEnsemble,
    compiled: Arc<CompiledTrees>,
}

impl PartialEq for TreeEnsembleScores {
    fn eq(&self, other: &Self) -> bool {
        self.ensemble == other.ensemble
    }
}
impl Eq for TreeEnsembleScores {}
impl Hash for TreeEnsembleScores {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.ensemble.hash(state)
    }
}

impl TreeEnsembleScores {
    /// Checks and compiles the trees (parsing already rejected cycles).
    pub fn new(ensemble: TreeEnsemble) -> TractResult<TreeEnsembleScores> {
        let compiled = Arc::new(compile(&ensemble)?);
        Ok(TreeEnsembleScores { ensemble, compiled })
    }

    /// Rows of at least this many go tree by tree ([`Self::eval_trees`]).
    const TREE_MAJOR_ROWS: usize = LANES;

    fn eval_forest<C: Compare>(&self, x: &[f32], n_features: usize, out: &mut Array2<f32>) -> TractResult<()> {
        if x.len() / n_features >= Self::TREE_MAJOR_ROWS {
            self.eval_trees::<C>(x, n_features, out)
        } else {
            self.eval_rows::<C>(x, n_features, out)
        }
    }

    /// Tree-major: for each tree, `LANES` rows at a time walk it in lock step for its depth.
    fn eval_trees<C: Compare>(&self, x: &[f32], n_features: usize, out: &mut Array2<f32>) -> TractResult<()> {
        let trees = &*self.compiled;
        let n_targets = self.ensemble.n_classes();
        let aggregate = self.ensemble.aggregate_fn;
        let rows = x.len() / n_features;
        let Some(y) = out.as_slice_mut() else { bail!("output rows are not contiguous") };
        ensure!(y.len() == rows * n_targets, "output holds {} values, expected {}", y.len(), rows * n_targets);
        let mut seen = vec![false; rows * n_targets];
        for (&root, &depth) in trees.roots.iter().zip(&trees.depths) {
            for (block, xs) in x.chunks(ROW_LANES * n_features).enumerate() {
                let n = xs.len() / n_features;
                let mut at = [root; ROW_LANES];
                for _ in 0..depth {
                    for (ix, row) in at.iter_mut().zip(xs.chunks_exact(n_features)) {
                        let node = &trees.nodes[*ix as usize];
                        let v = row[node.feature as usize];
                        let go = C::holds(node, v) | (node.nan_goes_true & v.is_nan());
                        *ix = node.children[go as usize];
                    }
                }
                for (lane, &leaf) in at[..n].iter().enumerate() {
                    let base = (block * ROW_LANES + lane) * n_targets;
                    let [start, end] = trees.leaf_votes[leaf as usize];
                    for &(target, w) in &trees.votes[start as usize..end as usize] {
                        let t = base + target as usize;
                        match aggregate {
                            Aggregate::Sum | Aggregate::Avg => y[t] += w,
                            _ if !seen[t] => y[t] = w,
                            Aggregate::Max => y[t] = y[t].max(w),
                            Aggregate::Min => y[t] = y[t].min(w),
                        }
                        seen[t] = true;
                    }
                }
            }
        }
        Ok(())
    }

    /// Row-major: for each row, `LANES` trees at a time walked in lock step.
    fn eval_rows<C: Compare>(&self, x: &[f32], n_features: usize, out: &mut Array2<f32>) -> TractResult<()> {
        let trees = &*self.compiled;
        let n_targets = self.ensemble.n_classes();
        let aggregate = self.ensemble.aggregate_fn;
        let mut seen = vec![false; n_targets];
        for (row, mut y) in x.chunks_exact(n_features).zip(out.axis_iter_mut(Axis(0))) {
            let Some(y) = y.as_slice_mut() else { bail!("output rows are not contiguous") };
            seen.iter_mut().for_each(|s| *s = false);
            for (roots, &depth) in trees.roots.chunks(LANES).zip(&trees.group_depths) {
                let mut at = [0u32; LANES];
                at[..roots.len()].copy_from_slice(roots);
                for _ in 0..depth {
                    for ix in at.iter_mut().take(roots.len()) {
                        let node = &trees.nodes[*ix as usize];
                        let v = row[node.feature as usize];
                        let go = C::holds(node, v) | (node.nan_goes_true & v.is_nan());
                        *ix = node.children[go as usize];
                    }
                }
                for &leaf in &at[..roots.len()] {
                    let [start, end] = trees.leaf_votes[leaf as usize];
                    for &(target, w) in &trees.votes[start as usize..end as usize] {
                        let t = target as usize;
                        match aggregate {
                            Aggregate::Sum | Aggregate::Avg => y[t] += w,
                            _ if !seen[t] => y[t] = w,
                            Aggregate::Max => y[t] = y[t].max(w),
                            Aggregate::Min => y[t] = y[t].min(w),
                        }
                        seen[t] = true;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Op for TreeEnsembleScores {
    fn name(&self) -> StaticName {
        "TreeEnsembleScores".into()
    }

    op_as_typed_op!();
}

impl EvalOp for TreeEnsembleScores {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let input = input.cast_to::<f32>()?;
        ensure!(input.rank() == 2, "tree ensemble input must have rank 2, has shape {:?}", input.shape());
        let (rows, n_features) = (input.shape()[0], input.shape()[1]);
        // Also guarantees that every feature index the walk reads is in range.
        self.ensemble.check_n_features(n_features)?;
        let x = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let mut out = Array2::<f32>::zeros((rows, self.ensemble.n_classes()));
        if n_features > 0 {
            match self.compiled.uniform {
                Some(Cmp::LessEqual) => self.eval_forest::<Leq>(x, n_features, &mut out)?,
                Some(Cmp::Less) => self.eval_forest::<Lt>(x, n_features, &mut out)?,
                Some(Cmp::GreaterEqual) => self.eval_forest::<Geq>(x, n_features, &mut out)?,
                Some(Cmp::Greater) => self.eval_forest::<Gt>(x, n_features, &mut out)?,
                Some(Cmp::Equal) => self.eval_forest::<Eq_>(x, n_features, &mut out)?,
                Some(Cmp::NotEqual) => self.eval_forest::<Neq>(x, n_features, &mut out)?,
                None => self.eval_forest::<PerNode>(x, n_features, &mut out)?,
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for TreeEnsembleScores {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = &inputs[0].shape[0];
        Ok(tvec!(f32::fact(&[n.clone(), self.ensemble.n_classes().into()])))
    }

    as_op!();
}
