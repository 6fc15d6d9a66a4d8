//! [`TreeEnsembleScores`]: the typed op that evaluates a parsed tree ensemble into per-target
//! scores `[N, targets]`, shared by our `TreeEnsembleRegressor` and `TreeEnsembleClassifier`.
//!
//! The trees arrive in tract-onnx-opl's packed `TreeEnsembleData` layout and are compiled
//! once into an array of small nodes. A batch of one or a few rows walks sixteen trees of a
//! row in lock step; a larger batch (a ranker scoring its candidates) walks one tree for sixteen
//! rows in lock step, tree after tree, so each tree's nodes stay in the L1 cache while every
//! row passes through it, and each walk takes that tree's depth rather than the deepest of
//! sixteen trees. Both orders add a row's votes tree by tree, so they give the same bits.
//!
//! A large batch over a forest whose trees have at most 64 leaves and branch on `x <= t` (or
//! all on `x < t`), which is what LightGBM, XGBoost and scikit-learn's boosted trees export, is
//! scored by QuickScorer instead ([`BitVectors`]; Lucchese et al., "QuickScorer", SIGIR 2015):
//! no walk at all. Every branch node carries a bit mask of the leaves that stay reachable when
//! its test fails; the nodes are sorted by threshold per feature, so a row scans each feature's
//! thresholds from the smallest up to its value, ANDs the masks of the tests it fails into its
//! trees' leaf sets, and each tree's exit leaf is the lowest bit left. The scan reads memory in
//! order and branches once per feature, where a walk chains a dependent load per level.
//! Sixteen rows are scanned side by side (after V-QuickScorer, Lucchese et al., SIGIR 2016):
//! each test is read once for all of them and every row compares its own value, with no
//! branch, so the compiler turns the sixteen comparisons and ANDs into vector instructions;
//! leaf sets are 32-bit when every tree has at most 32 leaves (LightGBM's default), doubling
//! the rows per vector. QuickScorer reaches the same leaf as the walk and adds the votes in the
//! same tree order, so the bits are the same (checked against the row-by-row walk for every
//! tree fixture, NaNs included). We do not use opl's `TreeEnsemble::eval`: on the LightGBM
//! fixture it ran 100× slower than onnxruntime, because it decodes every leaf row by
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

/// Rows that QuickScorer scans side by side ([`BitVectors::narrow_lanes`]).
const QS_LANES: usize = 16;

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
    /// QuickScorer's layout, when the forest qualifies.
    bit_vectors: Option<BitVectors>,
}

/// A branch test in QuickScorer's layout: when a row's value fails it, `mask` clears the leaves
/// of the test's true subtree from `tree`'s leaf set.
#[derive(Debug, Clone, Copy)]
struct FalseTest {
    threshold: f32,
    tree: u32,
    mask: u64,
}

/// QuickScorer's layout of a forest whose branches all test `x <= t` (`strict`: all `x < t`)
/// and whose trees have at most 64 leaves, numbered left (true) to right within each tree.
#[derive(Debug)]
struct BitVectors {
    strict: bool,
    /// Every tree has at most 32 leaves: leaf sets fit a `u32`.
    narrow: bool,
    /// For each feature, its range of `tests`, sorted by threshold, smallest first.
    by_feature: Vec<[u32; 2]>,
    tests: Vec<FalseTest>,
    /// For each feature, its range of `nan_tests`: the tests a NaN fails (missing value goes
    /// false), in tree order.
    nan_by_feature: Vec<[u32; 2]>,
    nan_tests: Vec<(u32, u64)>,
    /// For each tree, its range of `leaf_nodes`; bit k of its leaf set is `leaf_nodes[start + k]`.
    tree_leaves: Vec<[u32; 2]>,
    leaf_nodes: Vec<u32>,
    /// When every leaf casts one vote, for the same target, and votes add up (`SUM`,
    /// `AVERAGE`): that target and each leaf's weight, indexed like `leaf_nodes`.
    leaf_weights: Option<(u32, Vec<f32>)>,
}

impl BitVectors {
    /// The layout, or `None` when the forest does not qualify (another comparator, mixed
    /// comparators, a tree with more than 64 leaves, or a NaN threshold, which no scan
    /// order can place).
    fn build(trees: &CompiledTrees, aggregate: Aggregate, n_features: usize) -> Option<BitVectors> {
        let (nodes, roots) = (&trees.nodes, &trees.roots);
        let strict = match trees.uniform? {
            Cmp::LessEqual => false,
            Cmp::Less => true,
            _ => return None,
        };
        let mut per_feature: Vec<Vec<FalseTest>> = vec![Vec::new(); n_features];
        let mut nan_per_feature: Vec<Vec<(u32, u64)>> = vec![Vec::new(); n_features];
        let mut tree_leaves = Vec::with_capacity(roots.len());
        let mut leaf_nodes = Vec::new();
        for (tree, &root) in roots.iter().enumerate() {
            let tree = u32::try_from(tree).ok()?;
            let first = leaf_nodes.len();
            // Depth first, true child first, so a subtree's leaves are consecutive bits.
            // Each branch is visited twice: on the way down (`None`) and once its subtrees are
            // numbered (`Some(start)`: its true subtree's leaves are `start..` its false child's).
            let mut stack: Vec<(u32, Option<usize>)> = vec![(root, None)];
            let mut true_done: Vec<(u32, usize, usize)> = Vec::new();
            while let Some((ix, state)) = stack.pop() {
                let node = nodes[ix as usize];
                if node.cmp == 0 {
                    leaf_nodes.push(ix);
                    if leaf_nodes.len() - first > 64 {
                        return None;
                    }
                    continue;
                }
                match state {
                    None => {
                        let start = leaf_nodes.len() - first;
                        stack.push((ix, Some(start)));
                        stack.push((node.children[1], None));
                    }
                    Some(start) => {
                        // The true subtree is numbered: record it, then number the false one.
                        true_done.push((ix, start, leaf_nodes.len() - first));
                        stack.push((node.children[0], None));
                    }
                }
            }
            for (ix, start, end) in true_done {
                let node = nodes[ix as usize];
                if node.threshold.is_nan() {
                    return None;
                }
                let reachable = !(bits_below(end) & !bits_below(start));
                let feature = node.feature as usize;
                per_feature[feature].push(FalseTest { threshold: node.threshold, tree, mask: reachable });
                if !node.nan_goes_true {
                    nan_per_feature[feature].push((tree, reachable));
                }
            }
            tree_leaves.push([u32::try_from(first).ok()?, u32::try_from(leaf_nodes.len()).ok()?]);
        }
        let mut by_feature = Vec::with_capacity(n_features);
        let mut tests = Vec::new();
        for mut list in per_feature {
            list.sort_by(|a, b| a.threshold.total_cmp(&b.threshold));
            let start = u32::try_from(tests.len()).ok()?;
            tests.extend(list);
            by_feature.push([start, u32::try_from(tests.len()).ok()?]);
        }
        let mut nan_by_feature = Vec::with_capacity(n_features);
        let mut nan_tests = Vec::new();
        for list in nan_per_feature {
            let start = u32::try_from(nan_tests.len()).ok()?;
            nan_tests.extend(list);
            nan_by_feature.push([start, u32::try_from(nan_tests.len()).ok()?]);
        }
        let single_votes: Option<Vec<(u32, f32)>> = leaf_nodes
            .iter()
            .map(|&leaf| match trees.leaf_votes[leaf as usize] {
                [start, end] if end == start + 1 => Some(trees.votes[start as usize]),
                _ => None,
            })
            .collect();
        let leaf_weights = match (single_votes, aggregate) {
            (Some(votes), Aggregate::Sum | Aggregate::Avg) => match votes.first() {
                Some(&(target, _)) if votes.iter().all(|(t, _)| *t == target) => {
                    Some((target, votes.iter().map(|(_, w)| *w).collect()))
                }
                _ => None,
            },
            _ => None,
        };
        let narrow = tree_leaves.iter().all(|&[start, end]| end - start <= 32);
        Some(BitVectors {
            strict,
            narrow,
            by_feature,
            tests,
            nan_by_feature,
            nan_tests,
            tree_leaves,
            leaf_nodes,
            leaf_weights,
        })
    }

    /// ANDs into `leaf_sets` (one per tree) the masks of the tests that `row`'s values of the
    /// features in `features` fail.
    fn narrow<const STRICT: bool>(&self, row: &[f32], features: impl Iterator<Item = usize>, leaf_sets: &mut [u64]) {
        for f in features {
            let (Some(&x), Some(&[start, end]), Some(&[nan_start, nan_end])) =
                (row.get(f), self.by_feature.get(f), self.nan_by_feature.get(f))
            else {
                continue;
            };
            if x.is_nan() {
                for &(tree, mask) in &self.nan_tests[nan_start as usize..nan_end as usize] {
                    leaf_sets[tree as usize] &= mask;
                }
                continue;
            }
            for test in &self.tests[start as usize..end as usize] {
                let fails = if STRICT { x >= test.threshold } else { x > test.threshold };
                if !fails {
                    break;
                }
                leaf_sets[test.tree as usize] &= test.mask;
            }
        }
    }

    /// [`Self::narrow`] for up to [`QS_LANES`] rows side by side: `sets[tree][lane]` is row
    /// `lane`'s leaf set. Each feature's tests are scanned once, up to the largest value among
    /// the rows, and every row compares its own value to each threshold, so a test's mask is
    /// read once for all the rows and the AND needs no branch. A row whose value fails fewer
    /// tests ANDs all-ones for the rest: the same leaf sets as one scan per row.
    fn narrow_lanes<const STRICT: bool, W: LeafSet, const L: usize>(
        &self,
        rows: &[&[f32]],
        features: &[usize],
        sets: &mut [[W; L]],
    ) {
        for &f in features {
            let (Some(&[start, end]), Some(&[nan_start, nan_end])) =
                (self.by_feature.get(f), self.nan_by_feature.get(f))
            else {
                continue;
            };
            // A NaN fails no threshold test (lanes past the rows hold NaN too); a row whose
            // value is NaN takes its feature's missing-value masks instead.
            let mut xs = [f32::NAN; L];
            let mut top: Option<f32> = None;
            for (lane, row) in rows.iter().enumerate().take(L) {
                let Some(&x) = row.get(f) else { continue };
                if x.is_nan() {
                    for &(tree, mask) in &self.nan_tests[nan_start as usize..nan_end as usize] {
                        if let Some(set) = sets.get_mut(tree as usize) {
                            set[lane] &= W::from_mask(mask);
                        }
                    }
                } else {
                    xs[lane] = x;
                    top = Some(top.map_or(x, |t| t.max(x)));
                }
            }
            let Some(top) = top else { continue };
            let tests = &self.tests[start as usize..end as usize];
            let failed = tests.partition_point(|t| if STRICT { top >= t.threshold } else { top > t.threshold });
            and_failed_masks::<STRICT, W, L>(&tests[..failed], &xs, sets);
        }
    }

    /// The index in `leaf_nodes` of `tree`'s exit leaf, from its leaf set.
    #[inline(always)]
    fn exit_index(&self, tree: usize, leaf_set: u64) -> TractResult<usize> {
        let [start, end] = self.tree_leaves[tree];
        let at = start as usize + leaf_set.trailing_zeros() as usize;
        ensure!(at < end as usize, "tree {tree}: no reachable leaf (leaf set {leaf_set:#x})");
        Ok(at)
    }
}

/// A tree's leaf set in [`BitVectors::narrow_lanes`]: `u32` when every tree has at most 32
/// leaves (twice the lanes per vector register), `u64` otherwise.
trait LeafSet: Copy + std::ops::BitOr<Output = Self> + std::ops::BitAndAssign {
    /// Every leaf reachable.
    const ALL: Self;
    /// A mask of [`BitVectors`] (the bits above this type's width are always set: a tree that
    /// fits has no leaves there).
    fn from_mask(mask: u64) -> Self;
    /// All ones when `pass`, else none.
    fn all_if(pass: bool) -> Self;
    /// Back to a [`BitVectors`] mask, the bits above this type's width set.
    fn into_mask(self) -> u64;
}

impl LeafSet for u32 {
    const ALL: u32 = u32::MAX;
    #[inline(always)]
    fn from_mask(mask: u64) -> u32 {
        mask as u32
    }
    #[inline(always)]
    fn all_if(pass: bool) -> u32 {
        u32::from(pass).wrapping_neg()
    }
    #[inline(always)]
    fn into_mask(self) -> u64 {
        u64::from(self) | !u64::from(u32::MAX)
    }
}

impl LeafSet for u64 {
    const ALL: u64 = u64::MAX;
    #[inline(always)]
    fn from_mask(mask: u64) -> u64 {
        mask
    }
    #[inline(always)]
    fn all_if(pass: bool) -> u64 {
        u64::from(pass).wrapping_neg()
    }
    #[inline(always)]
    fn into_mask(self) -> u64 {
        self
    }
}

/// For each test, ANDs its mask into the leaf set of each lane whose value fails it. Written
/// without a branch on the comparison (all ones where the value passes), so that the lanes
/// compile to vector compares and ANDs.
#[inline(never)]
fn and_failed_masks<const STRICT: bool, W: LeafSet, const L: usize>(
    tests: &[FalseTest],
    xs: &[f32; L],
    sets: &mut [[W; L]],
) {
    for test in tests {
        let Some(set) = sets.get_mut(test.tree as usize) else { continue };
        let mask = W::from_mask(test.mask);
        for lane in 0..L {
            let fails = if STRICT { xs[lane] >= test.threshold } else { xs[lane] > test.threshold };
            set[lane] &= mask | W::all_if(!fails);
        }
    }
}

/// A mask of the lowest `n` bits (`n` ≤ 64).
fn bits_below(n: usize) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
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
    let mut compiled =
        CompiledTrees { roots, depths, group_depths, nodes, leaf_votes, votes, uniform, bit_vectors: None };
    compiled.bit_vectors = BitVectors::build(&compiled, ensemble.aggregate_fn, ensemble.max_used_feature + 1);
    Ok(compiled)
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

    /// Rows of at least this many go by QuickScorer ([`Self::eval_bit_vectors`]) or tree by tree
    /// ([`Self::eval_trees`]).
    const TREE_MAJOR_ROWS: usize = LANES;

    fn eval_forest<C: Compare>(&self, x: &[f32], n_features: usize, out: &mut Array2<f32>) -> TractResult<()> {
        if x.len() / n_features < Self::TREE_MAJOR_ROWS {
            return self.eval_rows::<C>(x, n_features, out);
        }
        match &self.compiled.bit_vectors {
            Some(bv) => match (bv.strict, bv.narrow) {
                (true, true) => self.eval_bit_vectors::<true, u32, QS_LANES>(bv, x, n_features, out),
                (true, false) => self.eval_bit_vectors::<true, u64, QS_LANES>(bv, x, n_features, out),
                (false, true) => self.eval_bit_vectors::<false, u32, QS_LANES>(bv, x, n_features, out),
                (false, false) => self.eval_bit_vectors::<false, u64, QS_LANES>(bv, x, n_features, out),
            },
            None => self.eval_trees::<C>(x, n_features, out),
        }
    }

    /// Adds the votes of `leaf` to one row's scores, by the ensemble's aggregate.
    #[inline(always)]
    fn add_votes(&self, leaf: u32, y: &mut [f32], seen: &mut [bool]) {
        let trees = &*self.compiled;
        let [start, end] = trees.leaf_votes[leaf as usize];
        for &(target, w) in &trees.votes[start as usize..end as usize] {
            let t = target as usize;
            match self.ensemble.aggregate_fn {
                Aggregate::Sum | Aggregate::Avg => y[t] += w,
                _ if !seen[t] => y[t] = w,
                Aggregate::Max => y[t] = y[t].max(w),
                Aggregate::Min => y[t] = y[t].min(w),
            }
            seen[t] = true;
        }
    }

    /// QuickScorer ([`BitVectors`]), `L` rows side by side, then each row's votes of every
    /// tree's exit leaf in tree order. The candidates of one ranking request share their user's
    /// and context's features, so the rows come in runs that agree on some columns: the tests
    /// of those columns are scanned once per run into a base set that each row of the run
    /// starts from (AND is order-free, so the leaf sets, and the bits, are the same).
    fn eval_bit_vectors<const STRICT: bool, W: LeafSet, const L: usize>(
        &self,
        bv: &BitVectors,
        x: &[f32],
        n_features: usize,
        out: &mut Array2<f32>,
    ) -> TractResult<()> {
        /// Columns that agree over this many rows (or the rest of the batch) are shared.
        const LOOKAHEAD: usize = 8;
        let n_targets = self.ensemble.n_classes();
        let rows: Vec<&[f32]> = x.chunks_exact(n_features).collect();
        let Some(y) = out.as_slice_mut() else { bail!("output rows are not contiguous") };
        ensure!(
            y.len() == rows.len() * n_targets,
            "output holds {} values, expected {}",
            y.len(),
            rows.len() * n_targets
        );
        let n_trees = bv.tree_leaves.len();
        let mut base = vec![u64::MAX; n_trees];
        let mut sets = vec![[W::ALL; L]; n_trees];
        let mut seen = vec![false; n_targets];
        let same = |a: &[f32], b: &[f32], f: usize| a[f].to_bits() == b[f].to_bits();
        let mut first = 0;
        while first < rows.len() {
            let lead = rows[first];
            let ahead = &rows[first + 1..rows.len().min(first + LOOKAHEAD)];
            let shared: Vec<bool> =
                (0..n_features).map(|f| !ahead.is_empty() && ahead.iter().all(|r| same(lead, r, f))).collect();
            let end = first
                + rows[first..]
                    .iter()
                    .take_while(|r| shared.iter().enumerate().all(|(f, s)| !s || same(lead, r, f)))
                    .count();
            base.iter_mut().for_each(|s| *s = u64::MAX);
            bv.narrow::<STRICT>(lead, (0..n_features).filter(|&f| shared[f]), &mut base);
            let own: Vec<usize> = (0..n_features).filter(|&f| !shared[f]).collect();
            for block_start in (first..end).step_by(L) {
                let block = &rows[block_start..end.min(block_start + L)];
                for (set, &b) in sets.iter_mut().zip(&base) {
                    *set = [W::from_mask(b); L];
                }
                bv.narrow_lanes::<STRICT, W, L>(block, &own, &mut sets);
                let y = &mut y[block_start * n_targets..(block_start + block.len()) * n_targets];
                match &bv.leaf_weights {
                    Some((target, weights)) => {
                        // Tree by tree, a running sum per row: each row still adds its trees in
                        // order (the same bits), and the rows' additions overlap.
                        let target = *target as usize;
                        let mut sums = [0f32; L];
                        for (sum, y) in sums.iter_mut().zip(y.chunks_exact(n_targets)) {
                            *sum = y[target];
                        }
                        for (tree, set) in sets.iter().enumerate() {
                            for (sum, &lane_set) in sums.iter_mut().zip(set).take(block.len()) {
                                *sum += weights[bv.exit_index(tree, lane_set.into_mask())?];
                            }
                        }
                        for (sum, y) in sums.iter().zip(y.chunks_exact_mut(n_targets)) {
                            y[target] = *sum;
                        }
                    }
                    None => {
                        for (lane, y) in y.chunks_exact_mut(n_targets).enumerate() {
                            seen.iter_mut().for_each(|s| *s = false);
                            for (tree, set) in sets.iter().enumerate() {
                                self.add_votes(
                                    bv.leaf_nodes[bv.exit_index(tree, set[lane].into_mask())?],
                                    y,
                                    &mut seen,
                                );
                            }
                        }
                    }
                }
            }
            // `end` > `first`: the run holds its lead row.
            first = end;
        }
        Ok(())
    }

    /// Tree-major: for each tree, `LANES` rows at a time walk it in lock step for its depth.
    fn eval_trees<C: Compare>(&self, x: &[f32], n_features: usize, out: &mut Array2<f32>) -> TractResult<()> {
        let trees = &*self.compiled;
        let n_targets = self.ensemble.n_classes();
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
                    let row = (block * ROW_LANES + lane) * n_targets..(block * ROW_LANES + lane + 1) * n_targets;
                    self.add_votes(leaf, &mut y[row.clone()], &mut seen[row]);
                }
            }
        }
        Ok(())
    }

    /// Row-major: for each row, `LANES` trees at a time walked in lock step.
    fn eval_rows<C: Compare>(&self, x: &[f32], n_features: usize, out: &mut Array2<f32>) -> TractResult<()> {
        let trees = &*self.compiled;
        let n_targets = self.ensemble.n_classes();
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
                    self.add_votes(leaf, y, &mut seen);
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

#[cfg(test)]
mod tests {
    //! Random forests, built as ONNX models, scored by every evaluator (QuickScorer, the
    //! tree-major and the row-major walk) against a plain reference walk, bit for bit.
    use crate::test_models::{floats, int, ints, one_node_model, string, strings};
    use crate::{Engine, Tensor, TensorData, TractEngine};

    const FEATURES: usize = 5;

    /// A fixed-seed generator, so every run builds the same forests.
    struct Rng(proptest::test_runner::TestRng);
    impl Rng {
        fn new() -> Rng {
            Rng(proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha))
        }
        fn below(&mut self, n: usize) -> usize {
            use proptest::prelude::RngExt;
            self.0.random_range(0..n)
        }
        /// On a coarse grid, so that values often equal thresholds (`<=` and `<` then differ).
        fn value(&mut self) -> f32 {
            (self.below(17) as f32 - 8.0) / 4.0
        }
    }

    #[derive(Clone)]
    struct TestNode {
        mode: &'static str,
        feature: usize,
        threshold: f32,
        children: [usize; 2], // [true, false]
        nan_true: bool,
        votes: Vec<(usize, f32)>,
    }

    /// A tree grown by splitting a random leaf until it has `leaves` leaves.
    fn grow(rng: &mut Rng, leaves: usize, modes: &[&'static str], targets: usize) -> Vec<TestNode> {
        let leaf = |rng: &mut Rng| TestNode {
            mode: "LEAF",
            feature: 0,
            threshold: 0.0,
            children: [0, 0],
            nan_true: false,
            votes: (0..targets)
                .filter(|_| targets == 1 || rng.below(3) > 0)
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| (t, rng.value() + 0.125))
                .collect(),
        };
        let mut nodes = vec![leaf(rng)];
        for _ in 1..leaves {
            let leaf_ids: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].mode == "LEAF").collect();
            let at = leaf_ids[rng.below(leaf_ids.len())];
            let (t, f) = (nodes.len(), nodes.len() + 1);
            nodes.push(leaf(rng));
            nodes.push(leaf(rng));
            nodes[at] = TestNode {
                mode: modes[rng.below(modes.len())],
                feature: rng.below(FEATURES),
                threshold: rng.value(),
                children: [t, f],
                nan_true: rng.below(2) == 0,
                votes: Vec::new(),
            };
        }
        nodes
    }

    fn reference(forest: &[Vec<TestNode>], row: &[f32], targets: usize, max: bool) -> Vec<f32> {
        let mut y = vec![0.0f32; targets];
        let mut seen = vec![false; targets];
        for tree in forest {
            let mut at = 0;
            while tree[at].mode != "LEAF" {
                let n = &tree[at];
                let (x, t) = (row[n.feature], n.threshold);
                let holds = match n.mode {
                    "BRANCH_LEQ" => x <= t,
                    "BRANCH_LT" => x < t,
                    "BRANCH_GTE" => x >= t,
                    _ => x > t,
                };
                at = n.children[if holds || (x.is_nan() && n.nan_true) { 0 } else { 1 }];
            }
            for &(target, w) in &tree[at].votes {
                y[target] = match (max, seen[target]) {
                    (true, true) => y[target].max(w),
                    (true, false) => w,
                    (false, _) => y[target] + w,
                };
                seen[target] = true;
            }
        }
        y
    }

    fn engine(forest: &[Vec<TestNode>], targets: usize, max: bool) -> TractEngine {
        let all =
            || forest.iter().enumerate().flat_map(|(t, nodes)| nodes.iter().enumerate().map(move |(i, n)| (t, i, n)));
        let mut votes = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (t, i, n) in all() {
            for &(target, w) in &n.votes {
                votes.0.push(t as i64);
                votes.1.push(i as i64);
                votes.2.push(target as i64);
                votes.3.push(w);
            }
        }
        let attributes = vec![
            ints("nodes_treeids", &all().map(|(t, _, _)| t as i64).collect::<Vec<_>>()),
            ints("nodes_nodeids", &all().map(|(_, i, _)| i as i64).collect::<Vec<_>>()),
            ints("nodes_featureids", &all().map(|(_, _, n)| n.feature as i64).collect::<Vec<_>>()),
            strings("nodes_modes", &all().map(|(_, _, n)| n.mode).collect::<Vec<_>>()),
            floats("nodes_values", &all().map(|(_, _, n)| n.threshold).collect::<Vec<_>>()),
            ints("nodes_truenodeids", &all().map(|(_, _, n)| n.children[0] as i64).collect::<Vec<_>>()),
            ints("nodes_falsenodeids", &all().map(|(_, _, n)| n.children[1] as i64).collect::<Vec<_>>()),
            ints("nodes_missing_value_tracks_true", &all().map(|(_, _, n)| n.nan_true as i64).collect::<Vec<_>>()),
            ints("target_treeids", &votes.0),
            ints("target_nodeids", &votes.1),
            ints("target_ids", &votes.2),
            floats("target_weights", &votes.3),
            int("n_targets", targets as i64),
            string("aggregate_function", if max { "MAX" } else { "SUM" }),
        ];
        let proto = one_node_model(
            "TreeEnsembleRegressor",
            attributes,
            FEATURES as i64,
            &[("y", 1, &[None, Some(targets as i64)])],
        );
        TractEngine::from_proto(&proto).expect("forest loads")
    }

    /// Rows in runs that share some columns (as a ranking request's candidates share their
    /// user's features), with NaNs.
    fn rows(rng: &mut Rng, n: usize) -> Vec<f32> {
        let mut x: Vec<f32> = Vec::with_capacity(n * FEATURES);
        let (mut lead, mut shared, mut left) = (0, 0, 0);
        for r in 0..n {
            if left == 0 {
                (lead, shared, left) = (r, rng.below(FEATURES + 1), 1 + rng.below(20));
            }
            left -= 1;
            for f in 0..FEATURES {
                let v = match rng.below(12) {
                    _ if f < shared && r > lead => x[lead * FEATURES + f],
                    0 => f32::NAN,
                    _ => rng.value(),
                };
                x.push(v);
            }
        }
        x
    }

    #[test]
    fn every_evaluator_matches_a_plain_walk_bit_for_bit() {
        let mut rng = Rng::new();
        // (modes, leaves per tree): QuickScorer takes the first four (32-bit leaf sets for the
        // first two, 64-bit for the next two); more than 64 leaves or another comparator goes
        // to the walks.
        let shapes: [(&[&str], usize); 7] = [
            (&["BRANCH_LEQ"], 32),
            (&["BRANCH_LT"], 20),
            (&["BRANCH_LEQ"], 40),
            (&["BRANCH_LT"], 64),
            (&["BRANCH_LEQ"], 90),
            (&["BRANCH_GTE"], 30),
            (&["BRANCH_LEQ", "BRANCH_GT"], 30),
        ];
        for (modes, max_leaves) in shapes {
            for (targets, max) in [(1, false), (2, false), (1, true)] {
                let forest: Vec<Vec<TestNode>> = (0..12)
                    .map(|_| {
                        let leaves = 1 + rng.below(max_leaves);
                        grow(&mut rng, leaves, modes, targets)
                    })
                    .collect();
                let engine = engine(&forest, targets, max);
                for n in [1, 5, 16, 40, 200] {
                    let x = rows(&mut rng, n);
                    let input = Tensor::new(vec![n, FEATURES], TensorData::F32(x.clone())).expect("tensor");
                    let out = engine.run(vec![input]).expect("runs");
                    let TensorData::F32(got) = &out[0].data else { panic!("not f32") };
                    for (r, row) in x.chunks(FEATURES).enumerate() {
                        let want = reference(&forest, row, targets, max);
                        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            bits(&got[r * targets..(r + 1) * targets]),
                            bits(&want),
                            "modes {modes:?}, ≤{max_leaves} leaves, {targets} targets, max {max}, batch {n}, row {r} {row:?}"
                        );
                    }
                }
            }
        }
    }
}
