//! The evaluator: walks a `promql-parser` AST at one instant over the series store.

use std::collections::{HashMap, HashSet};

use promql_parser::label::Matcher;
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector, Offset, VectorMatchCardinality,
    VectorSelector,
};

use super::{RangeSeries, Sample, Value};
use crate::error::QueryError;
use crate::labels::{LabelSet, METRIC_NAME};
use crate::store::{SeriesStore, is_stale};

/// Prometheus's default lookback delta: 5 minutes.
pub const DEFAULT_LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// Prometheus's limit on points per series in a range query.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// The deepest expression nesting a query may have (functions, aggregations, parentheses,
/// operands of operators). The evaluator recurses once per level: a query nested 20,000 deep
/// overflowed the stack and aborted the process (found with the promql fuzz target). Dashboards
/// and rules stay far below.
pub const MAX_DEPTH: usize = 256;

/// Parses a query with `promql-parser` and refuses expressions nested deeper than [`MAX_DEPTH`].
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    let expr = promql_parser::parser::parse(query).map_err(QueryError::Parse)?;
    if depth_exceeds(&expr, MAX_DEPTH) {
        drop_iteratively(expr);
        return Err(QueryError::BadParameter(format!("the query nests expressions more than {MAX_DEPTH} levels deep")));
    }
    Ok(expr)
}

/// The sub-expressions of `e`.
fn children(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::Aggregate(a) => std::iter::once(&*a.expr).chain(a.param.as_deref()).collect(),
        Expr::Unary(u) => vec![&u.expr],
        Expr::Binary(b) => vec![&b.lhs, &b.rhs],
        Expr::Paren(p) => vec![&p.expr],
        Expr::Subquery(s) => vec![&s.expr],
        Expr::Call(c) => c.args.args.iter().map(|a| &**a).collect(),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => Vec::new(),
    }
}

/// Whether `expr` nests deeper than `max` levels, found without recursion.
fn depth_exceeds(expr: &Expr, max: usize) -> bool {
    let mut stack = vec![(expr, 1usize)];
    while let Some((e, depth)) = stack.pop() {
        if depth > max {
            return true;
        }
        stack.extend(children(e).into_iter().map(|c| (c, depth + 1)));
    }
    false
}

/// Drops a deep expression without recursion (the derived drop recurses once per level too).
fn drop_iteratively(expr: Expr) {
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::Aggregate(a) => {
                stack.push(*a.expr);
                stack.extend(a.param.map(|p| *p));
            }
            Expr::Unary(u) => stack.push(*u.expr),
            Expr::Binary(b) => {
                stack.push(*b.lhs);
                stack.push(*b.rhs);
            }
            Expr::Paren(p) => stack.push(*p.expr),
            Expr::Subquery(s) => stack.push(*s.expr),
            Expr::Call(c) => stack.extend(c.args.args.into_iter().map(|a| *a)),
            _ => {}
        }
    }
}

/// Evaluates `query` at `t_ms` (unix ms).
pub fn instant_query(store: &SeriesStore, query: &str, t_ms: i64) -> Result<Value, QueryError> {
    let expr = parse(query)?;
    let ev = Evaluator { store, lookback: DEFAULT_LOOKBACK_MS };
    ev.eval(&expr, t_ms)
}

/// Evaluates `query` at every step from `start_ms` to `end_ms` and returns a matrix sorted by labels.
pub fn range_query(
    store: &SeriesStore,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> Result<Vec<RangeSeries>, QueryError> {
    if step_ms <= 0 {
        return Err(QueryError::BadParameter(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if end_ms < start_ms {
        return Err(QueryError::BadParameter("end timestamp must not be before start time".into()));
    }
    if (end_ms - start_ms) / step_ms > MAX_POINTS_PER_SERIES {
        return Err(QueryError::BadParameter(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                .into(),
        ));
    }
    let expr = parse(query)?;
    match expr.value_type() {
        ValueType::Scalar | ValueType::Vector => {}
        other => {
            return Err(QueryError::BadParameter(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                type_label(other)
            )));
        }
    }
    let ev = Evaluator { store, lookback: DEFAULT_LOOKBACK_MS };
    let mut index: HashMap<LabelSet, usize> = HashMap::new();
    let mut out: Vec<RangeSeries> = Vec::new();
    let mut t = start_ms;
    while t <= end_ms {
        let samples = match ev.eval(&expr, t)? {
            Value::Scalar(v) => vec![Sample { labels: LabelSet::new(), value: v }],
            Value::Vector(v) => v,
            other => {
                return Err(QueryError::Execution(format!("unexpected {} in range query", other.type_name())));
            }
        };
        for s in samples {
            let i = *index.entry(s.labels.clone()).or_insert_with(|| {
                out.push(RangeSeries { labels: s.labels.clone(), points: Vec::new() });
                out.len() - 1
            });
            out[i].points.push((t, s.value));
        }
        t += step_ms;
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

fn type_label(t: ValueType) -> &'static str {
    match t {
        ValueType::Vector => "instant vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}

fn unsupported<T>(what: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError::Unsupported(what.into()))
}

struct Evaluator<'a> {
    store: &'a SeriesStore,
    lookback: i64,
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// Whether `labels` satisfies a selector's name and matchers.
pub(crate) fn selector_matches(vs: &VectorSelector, labels: &LabelSet) -> bool {
    if let Some(name) = &vs.name
        && labels.metric_name() != Some(name.as_str())
    {
        return false;
    }
    let all = |ms: &[Matcher]| ms.iter().all(|m| m.is_match(labels.get(&m.name).unwrap_or("")));
    if vs.matchers.or_matchers.is_empty() {
        all(&vs.matchers.matchers)
    } else {
        vs.matchers.or_matchers.iter().any(|g| all(g))
    }
}

fn check_unique(samples: &[Sample]) -> Result<(), QueryError> {
    let mut seen = HashSet::with_capacity(samples.len());
    for s in samples {
        if !seen.insert(&s.labels) {
            return Err(QueryError::Execution("vector cannot contain metrics with the same labelset".into()));
        }
    }
    Ok(())
}

impl Evaluator<'_> {
    fn eval(&self, e: &Expr, t: i64) -> Result<Value, QueryError> {
        match e {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(vs) => Ok(Value::Vector(
                    vs.into_iter().map(|s| Sample { labels: s.labels.without_name(), value: -s.value }).collect(),
                )),
                other => Err(QueryError::Execution(format!("unary minus on a {}", other.type_name()))),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.select_instant(vs, t)?)),
            Expr::MatrixSelector(ms) => Ok(Value::Matrix(self.select_range(ms, t)?)),
            Expr::Subquery(_) => unsupported("subqueries (`expr[range:step]`)"),
            Expr::Aggregate(a) => self.aggregate(a, t),
            Expr::Binary(b) => self.binary(b, t),
            Expr::Call(c) => self.call(c, t),
            Expr::Extension(_) => unsupported("extension expressions"),
        }
    }

    fn select_instant(&self, vs: &VectorSelector, t: i64) -> Result<Vec<Sample>, QueryError> {
        if vs.at.is_some() {
            return unsupported("the `@` modifier");
        }
        let ref_t = t - offset_ms(&vs.offset);
        let series = self.store.select(&|l| selector_matches(vs, l), ref_t - self.lookback, ref_t);
        Ok(series
            .into_iter()
            .filter_map(|(labels, pts)| {
                let &(_, v) = pts.last()?;
                (!is_stale(v)).then_some(Sample { labels, value: v })
            })
            .collect())
    }

    fn select_range(&self, ms: &MatrixSelector, t: i64) -> Result<Vec<RangeSeries>, QueryError> {
        if ms.vs.at.is_some() {
            return unsupported("the `@` modifier");
        }
        let ref_t = t - offset_ms(&ms.vs.offset);
        let range = ms.range.as_millis() as i64;
        let series = self.store.select(&|l| selector_matches(&ms.vs, l), ref_t - range, ref_t);
        Ok(series
            .into_iter()
            .map(|(labels, pts)| RangeSeries { labels, points: pts.into_iter().filter(|p| !is_stale(p.1)).collect() })
            .filter(|s| !s.points.is_empty())
            .collect())
    }

    fn eval_vector(&self, e: &Expr, t: i64) -> Result<Vec<Sample>, QueryError> {
        self.eval(e, t)?.into_vector()
    }

    fn eval_scalar(&self, e: &Expr, t: i64) -> Result<f64, QueryError> {
        match self.eval(e, t)? {
            Value::Scalar(v) => Ok(v),
            other => Err(QueryError::Execution(format!("expected a scalar, got a {}", other.type_name()))),
        }
    }

    // ---- aggregation -------------------------------------------------------------------------

    fn aggregate(&self, a: &AggregateExpr, t: i64) -> Result<Value, QueryError> {
        let op = a.op.id();
        let kind = match op {
            token::T_SUM => Agg::Sum,
            token::T_AVG => Agg::Avg,
            token::T_COUNT => Agg::Count,
            token::T_MIN => Agg::Min,
            token::T_MAX => Agg::Max,
            token::T_GROUP => Agg::Group,
            token::T_STDDEV => Agg::Stddev,
            token::T_STDVAR => Agg::Stdvar,
            _ => return unsupported(format!("`{}`", token::TokenType::new(op))),
        };
        let input = self.eval_vector(&a.expr, t)?;
        let mut groups: Vec<(LabelSet, AggState)> = Vec::new();
        let mut index: HashMap<LabelSet, usize> = HashMap::new();
        for s in input {
            let key = group_labels(&s.labels, &a.modifier);
            match index.get(&key) {
                Some(&i) => groups[i].1.add(kind, s.value),
                None => {
                    index.insert(key.clone(), groups.len());
                    groups.push((key, AggState::new(s.value)));
                }
            }
        }
        Ok(Value::Vector(groups.into_iter().map(|(labels, st)| Sample { labels, value: st.result(kind) }).collect()))
    }

    // ---- binary operators --------------------------------------------------------------------

    fn binary(&self, b: &BinaryExpr, t: i64) -> Result<Value, QueryError> {
        let op = b.op.id();
        if op == token::T_ATAN2 {
            return unsupported("`atan2`");
        }
        let return_bool = b.return_bool();
        let matching = b.modifier.as_ref().and_then(|m| m.matching.clone());
        if let Some(m) = &b.modifier {
            match &m.card {
                VectorMatchCardinality::ManyToOne(_) => return unsupported("`group_left`"),
                VectorMatchCardinality::OneToMany(_) => return unsupported("`group_right`"),
                _ => {}
            }
            if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                return unsupported("`fill` modifiers");
            }
        }
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        let is_set = matches!(op, token::T_LAND | token::T_LOR | token::T_LUNLESS);
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let (v, keep) = elem_op(op, l, r)?;
                Ok(Value::Scalar(if is_comparison(op) { f64::from(u8::from(keep)) } else { v }))
            }
            (Value::Vector(vs), Value::Scalar(s)) => Ok(Value::Vector(vector_scalar(op, vs, s, false, return_bool)?)),
            (Value::Scalar(s), Value::Vector(vs)) => Ok(Value::Vector(vector_scalar(op, vs, s, true, return_bool)?)),
            (Value::Vector(l), Value::Vector(r)) if is_set => Ok(Value::Vector(set_op(op, l, r, &matching))),
            (Value::Vector(l), Value::Vector(r)) => {
                let out = vector_vector(op, l, r, &matching, return_bool)?;
                check_unique(&out)?;
                Ok(Value::Vector(out))
            }
            (l, r) => Err(QueryError::Execution(format!(
                "binary operator `{}` between a {} and a {}",
                token::TokenType::new(op),
                l.type_name(),
                r.type_name()
            ))),
        }
    }

    // ---- functions ---------------------------------------------------------------------------

    fn matrix_arg<'e>(&self, c: &'e Call, i: usize) -> Result<&'e MatrixSelector, QueryError> {
        match c.args.args.get(i).map(|b| b.as_ref()) {
            Some(Expr::MatrixSelector(ms)) => Ok(ms),
            Some(Expr::Subquery(_)) => unsupported("subqueries (`expr[range:step]`)"),
            _ => Err(QueryError::Execution(format!("{}() expects a range vector selector", c.func.name))),
        }
    }

    fn arg<'e>(&self, c: &'e Call, i: usize) -> Result<&'e Expr, QueryError> {
        c.args
            .args
            .get(i)
            .map(|b| b.as_ref())
            .ok_or_else(|| QueryError::Execution(format!("{}() is missing argument {}", c.func.name, i + 1)))
    }

    fn call(&self, c: &Call, t: i64) -> Result<Value, QueryError> {
        let name = c.func.name;
        let out = match name {
            "time" => return Ok(Value::Scalar(t as f64 / 1000.0)),
            "vector" => {
                let v = self.eval_scalar(self.arg(c, 0)?, t)?;
                return Ok(Value::Vector(vec![Sample { labels: LabelSet::new(), value: v }]));
            }
            "scalar" => {
                let v = self.eval_vector(self.arg(c, 0)?, t)?;
                return Ok(Value::Scalar(if v.len() == 1 { v[0].value } else { f64::NAN }));
            }
            "rate" | "increase" | "delta" | "irate" | "idelta" | "resets" | "changes" | "avg_over_time"
            | "min_over_time" | "max_over_time" | "sum_over_time" | "count_over_time" | "last_over_time"
            | "stddev_over_time" | "stdvar_over_time" | "quantile_over_time" => self.range_function(c, t)?,
            "histogram_quantile" => {
                let q = self.eval_scalar(self.arg(c, 0)?, t)?;
                let v = self.eval_vector(self.arg(c, 1)?, t)?;
                histogram_quantile(q, v)
            }
            "abs" | "ceil" | "floor" | "sqrt" | "exp" | "ln" | "log2" | "log10" | "round" | "clamp" | "clamp_min"
            | "clamp_max" => {
                let v = self.eval_vector(self.arg(c, 0)?, t)?;
                let mut params = Vec::new();
                for i in 1..c.args.args.len() {
                    params.push(self.eval_scalar(self.arg(c, i)?, t)?);
                }
                math_function(name, v, &params)
            }
            other => return unsupported(format!("`{other}`")),
        };
        check_unique(&out)?;
        Ok(Value::Vector(out))
    }

    fn range_function(&self, c: &Call, t: i64) -> Result<Vec<Sample>, QueryError> {
        let name = c.func.name;
        let (q, ms) = if name == "quantile_over_time" {
            (self.eval_scalar(self.arg(c, 0)?, t)?, self.matrix_arg(c, 1)?)
        } else {
            (0.0, self.matrix_arg(c, 0)?)
        };
        let range_ms = ms.range.as_millis() as i64;
        let range_end = t - offset_ms(&ms.vs.offset);
        let range_start = range_end - range_ms;
        let mut out = Vec::new();
        for s in self.select_range(ms, t)? {
            let p = &s.points;
            let v = match name {
                "rate" => extrapolated_rate(p, range_start, range_end, true, true),
                "increase" => extrapolated_rate(p, range_start, range_end, true, false),
                "delta" => extrapolated_rate(p, range_start, range_end, false, false),
                "irate" => instant_value(p, true),
                "idelta" => instant_value(p, false),
                "resets" => Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
                "changes" => {
                    Some(p.windows(2).filter(|w| w[1].1 != w[0].1 && !(w[1].1.is_nan() && w[0].1.is_nan())).count()
                        as f64)
                }
                "avg_over_time" => Some(avg(p.iter().map(|x| x.1))),
                "min_over_time" => p.iter().map(|x| x.1).reduce(|a, b| if b < a || a.is_nan() { b } else { a }),
                "max_over_time" => p.iter().map(|x| x.1).reduce(|a, b| if b > a || a.is_nan() { b } else { a }),
                "sum_over_time" => Some(p.iter().map(|x| x.1).sum()),
                "count_over_time" => Some(p.len() as f64),
                "last_over_time" => p.last().map(|x| x.1),
                "stddev_over_time" => Some(variance(p.iter().map(|x| x.1)).sqrt()),
                "stdvar_over_time" => Some(variance(p.iter().map(|x| x.1))),
                "quantile_over_time" => Some(quantile(q, p.iter().map(|x| x.1).collect())),
                _ => None,
            };
            if let Some(v) = v {
                let labels = if name == "last_over_time" { s.labels } else { s.labels.without_name() };
                out.push(Sample { labels, value: v });
            }
        }
        Ok(out)
    }
}

// ---- helpers (pure functions, Prometheus 2.x semantics) -------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Agg {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
}

struct AggState {
    sum: f64,
    mean: f64,
    count: f64,
    min: f64,
    max: f64,
    /// Welford accumulator for stddev/stdvar.
    m2: f64,
}

impl AggState {
    fn new(v: f64) -> Self {
        Self { sum: v, mean: v, count: 1.0, min: v, max: v, m2: 0.0 }
    }

    fn add(&mut self, kind: Agg, v: f64) {
        self.count += 1.0;
        self.sum += v;
        if self.max < v || self.max.is_nan() {
            self.max = v;
        }
        if self.min > v || self.min.is_nan() {
            self.min = v;
        }
        match kind {
            Agg::Avg => {
                // Prometheus's incremental mean, including its handling of infinities.
                if self.mean.is_infinite() {
                    if v.is_infinite() && (self.mean > 0.0) == (v > 0.0) {
                        return;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        return;
                    }
                }
                self.mean += v / self.count - self.mean / self.count;
            }
            Agg::Stddev | Agg::Stdvar => {
                let delta = v - self.mean;
                self.mean += delta / self.count;
                self.m2 += delta * (v - self.mean);
            }
            _ => {}
        }
    }

    fn result(&self, kind: Agg) -> f64 {
        match kind {
            Agg::Sum => self.sum,
            Agg::Avg => self.mean,
            Agg::Count => self.count,
            Agg::Min => self.min,
            Agg::Max => self.max,
            Agg::Group => 1.0,
            Agg::Stdvar => self.m2 / self.count,
            Agg::Stddev => (self.m2 / self.count).sqrt(),
        }
    }
}

fn group_labels(labels: &LabelSet, modifier: &Option<LabelModifier>) -> LabelSet {
    match modifier {
        None => LabelSet::new(),
        Some(LabelModifier::Include(keep)) => {
            let mut l = labels.clone();
            l.keep_only(&keep.labels);
            l
        }
        Some(LabelModifier::Exclude(drop)) => {
            let mut l = labels.without_name();
            for d in &drop.labels {
                l.remove(d);
            }
            l
        }
    }
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE)
}

/// `(value, keep)` as Prometheus's `vectorElemBinop`.
fn elem_op(op: TokenId, l: f64, r: f64) -> Result<(f64, bool), QueryError> {
    Ok(match op {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_POW => (l.powf(r), true),
        token::T_MOD => (l % r, true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        other => return unsupported(format!("the operator `{}`", token::TokenType::new(other))),
    })
}

fn vector_scalar(
    op: TokenId,
    vs: Vec<Sample>,
    s: f64,
    scalar_left: bool,
    return_bool: bool,
) -> Result<Vec<Sample>, QueryError> {
    let cmp = is_comparison(op);
    let mut out = Vec::with_capacity(vs.len());
    for mut x in vs {
        let (l, r) = if scalar_left { (s, x.value) } else { (x.value, s) };
        let (mut v, keep) = elem_op(op, l, r)?;
        if cmp {
            if return_bool {
                v = f64::from(u8::from(keep));
            } else if keep {
                v = x.value;
            } else {
                continue;
            }
        }
        if !cmp || return_bool {
            x.labels.remove(METRIC_NAME);
        }
        x.value = v;
        out.push(x);
    }
    Ok(out)
}

fn signature(labels: &LabelSet, matching: &Option<LabelModifier>) -> LabelSet {
    match matching {
        Some(LabelModifier::Include(on)) => {
            let mut l = labels.clone();
            l.keep_only(&on.labels);
            l
        }
        Some(LabelModifier::Exclude(ignoring)) => {
            let mut l = labels.without_name();
            for d in &ignoring.labels {
                l.remove(d);
            }
            l
        }
        None => labels.without_name(),
    }
}

fn vector_vector(
    op: TokenId,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    matching: &Option<LabelModifier>,
    return_bool: bool,
) -> Result<Vec<Sample>, QueryError> {
    let cmp = is_comparison(op);
    let mut right: HashMap<LabelSet, f64> = HashMap::with_capacity(rhs.len());
    for s in &rhs {
        let sig = signature(&s.labels, matching);
        if right.insert(sig.clone(), s.value).is_some() {
            return Err(QueryError::Execution(format!(
                "found duplicate series for the match group {sig} on the right hand-side of the operation: \
                 many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
    }
    let mut matched: HashSet<LabelSet> = HashSet::new();
    let mut out = Vec::new();
    for s in lhs {
        let sig = signature(&s.labels, matching);
        let Some(&r) = right.get(&sig) else { continue };
        if !matched.insert(sig) {
            return Err(QueryError::Execution(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
            ));
        }
        let (mut v, keep) = elem_op(op, s.value, r)?;
        if cmp {
            if return_bool {
                v = f64::from(u8::from(keep));
            } else if !keep {
                continue;
            }
        }
        let mut labels = s.labels;
        if !cmp || return_bool {
            labels.remove(METRIC_NAME);
        }
        match matching {
            Some(LabelModifier::Include(on)) => labels.keep_only(&on.labels),
            Some(LabelModifier::Exclude(ignoring)) => {
                for d in &ignoring.labels {
                    labels.remove(d);
                }
            }
            None => {}
        }
        out.push(Sample { labels, value: v });
    }
    Ok(out)
}

fn set_op(op: TokenId, lhs: Vec<Sample>, rhs: Vec<Sample>, matching: &Option<LabelModifier>) -> Vec<Sample> {
    match op {
        token::T_LAND => {
            let right: HashSet<LabelSet> = rhs.iter().map(|s| signature(&s.labels, matching)).collect();
            lhs.into_iter().filter(|s| right.contains(&signature(&s.labels, matching))).collect()
        }
        token::T_LUNLESS => {
            let right: HashSet<LabelSet> = rhs.iter().map(|s| signature(&s.labels, matching)).collect();
            lhs.into_iter().filter(|s| !right.contains(&signature(&s.labels, matching))).collect()
        }
        _ => {
            let left: HashSet<LabelSet> = lhs.iter().map(|s| signature(&s.labels, matching)).collect();
            let mut out = lhs;
            out.extend(rhs.into_iter().filter(|s| !left.contains(&signature(&s.labels, matching))));
            out
        }
    }
}

/// Prometheus 2.x `extrapolatedRate` for `rate`, `increase` and `delta`.
pub fn extrapolated_rate(
    points: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (first_t, first_v) = points[0];
    let (last_t, last_v) = points[points.len() - 1];
    let mut result = last_v - first_v;
    if is_counter {
        let mut prev = 0.0;
        for &(_, v) in points {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut duration_to_start = (first_t - range_start) as f64 / 1000.0;
    let duration_to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled_interval = (last_t - first_t) as f64 / 1000.0;
    let avg_between = sampled_interval / (points.len() - 1) as f64;
    if is_counter && result > 0.0 && first_v >= 0.0 {
        let duration_to_zero = sampled_interval * (first_v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = avg_between * 1.1;
    let mut extrapolate_to = sampled_interval;
    extrapolate_to += if duration_to_start < threshold { duration_to_start } else { avg_between / 2.0 };
    extrapolate_to += if duration_to_end < threshold { duration_to_end } else { avg_between / 2.0 };
    result *= extrapolate_to / sampled_interval;
    if is_rate {
        result /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(result)
}

/// Prometheus's `instantValue` for `irate` (`is_rate`) and `idelta`.
fn instant_value(points: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (t1, v1) = points[points.len() - 2];
    let (t2, v2) = points[points.len() - 1];
    let mut result = if is_rate && v2 < v1 { v2 } else { v2 - v1 };
    let interval = t2 - t1;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

fn avg(values: impl Iterator<Item = f64>) -> f64 {
    let mut mean = 0.0f64;
    let mut count = 0.0f64;
    for v in values {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        mean += v / count - mean / count;
    }
    mean
}

fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for v in values {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        m2 += delta * (v - mean);
    }
    m2 / count
}

/// Prometheus's `quantile` (linear interpolation between closest ranks).
fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Prometheus's `bucketQuantile` over classic buckets `(upper bound, cumulative count)`.
pub fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // coalesceBuckets: merge buckets with the same upper bound.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == b.0 => last.1 += b.1,
            _ => merged.push(b),
        }
    }
    // ensureMonotonic.
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    let n = merged.len();
    if n < 2 {
        return f64::NAN;
    }
    let observations = merged[n - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged.partition_point(|x| x.1 < rank);
    if b == n - 1 {
        return merged[n - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

fn histogram_quantile(q: f64, v: Vec<Sample>) -> Vec<Sample> {
    let mut groups: Vec<(LabelSet, Vec<(f64, f64)>)> = Vec::new();
    let mut index: HashMap<LabelSet, usize> = HashMap::new();
    for s in v {
        let Some(le) = s.labels.get("le").and_then(parse_le) else { continue };
        let mut key = s.labels.without_name();
        key.remove("le");
        match index.get(&key) {
            Some(&i) => groups[i].1.push((le, s.value)),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![(le, s.value)]));
            }
        }
    }
    groups.into_iter().map(|(labels, b)| Sample { labels, value: bucket_quantile(q, b) }).collect()
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn math_function(name: &str, v: Vec<Sample>, params: &[f64]) -> Vec<Sample> {
    let p = |i: usize, d: f64| params.get(i).copied().unwrap_or(d);
    let f: Box<dyn Fn(f64) -> f64> = match name {
        "abs" => Box::new(f64::abs),
        "ceil" => Box::new(f64::ceil),
        "floor" => Box::new(f64::floor),
        "sqrt" => Box::new(f64::sqrt),
        "exp" => Box::new(f64::exp),
        "ln" => Box::new(f64::ln),
        "log2" => Box::new(f64::log2),
        "log10" => Box::new(f64::log10),
        "round" => {
            let inv = 1.0 / p(0, 1.0);
            Box::new(move |x: f64| (x * inv + 0.5).floor() / inv)
        }
        "clamp_min" => {
            let lo = p(0, f64::NAN);
            Box::new(move |x: f64| x.max(lo))
        }
        "clamp_max" => {
            let hi = p(0, f64::NAN);
            Box::new(move |x: f64| x.min(hi))
        }
        _ => {
            // clamp(v, min, max): empty when min > max.
            let (lo, hi) = (p(0, f64::NAN), p(1, f64::NAN));
            if lo > hi {
                return Vec::new();
            }
            Box::new(move |x: f64| x.max(lo).min(hi))
        }
    };
    v.into_iter().map(|s| Sample { labels: s.labels.without_name(), value: f(s.value) }).collect()
}

#[cfg(test)]
mod depth_tests {
    use super::*;
    use crate::store::StoreConfig;

    #[test]
    fn deep_queries_are_refused_not_a_stack_overflow() {
        let store = SeriesStore::new(StoreConfig::default());
        let nested = |n: usize| format!("{}up{}", "abs(".repeat(n), ")".repeat(n));
        let parens = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(instant_query(&store, &parens(MAX_DEPTH - 1), 0), Ok(Value::Scalar(1.0)));
        assert!(instant_query(&store, &parens(MAX_DEPTH), 0).is_err());
        // Found with the promql fuzz target: 20,000 nested calls overflowed the evaluator's stack
        // and aborted the process (smaller here: the parser takes seconds on 20,000 in debug).
        for query in [nested(MAX_DEPTH), nested(3_000), vec!["1"; 3_000].join(" + ")] {
            let err = instant_query(&store, &query, 0).expect_err("too deep");
            assert!(err.to_string().contains("levels deep"), "{err}");
        }
    }
}
