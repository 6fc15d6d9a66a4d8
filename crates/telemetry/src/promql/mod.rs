//! recserve's PromQL subset, evaluated over the [`SeriesStore`](crate::store::SeriesStore).
//!
//! Queries are parsed by the `promql-parser` crate; evaluation is ours and follows the semantics
//! of Prometheus 2.x (the Debian package the comparison test runs), evaluated one instant at a
//! time. Range queries evaluate the expression at `start`, `start + step`, … `end`.
//!
//! # The subset
//!
//! | construct | supported |
//! | --- | --- |
//! | number literals, unary `-`, parentheses | yes |
//! | instant selectors with `=`, `!=`, `=~`, `!~` (regexes fully anchored), `{a="x" or b="y"}` | yes |
//! | range selectors `m[5m]` (at the top level of an instant query, or as a function argument) | yes |
//! | `offset` | yes |
//! | `@` modifier, subqueries `expr[5m:1m]` | no |
//! | `rate`, `increase`, `delta` (Prometheus extrapolation, counter resets), `irate`, `idelta`, `resets`, `changes` | yes |
//! | `avg_over_time`, `min_over_time`, `max_over_time`, `sum_over_time`, `count_over_time`, `last_over_time`, `quantile_over_time`, `stddev_over_time`, `stdvar_over_time` | yes |
//! | `histogram_quantile` (classic buckets, linear interpolation, monotonicity fix) | yes |
//! | `time`, `vector`, `scalar`, `abs`, `ceil`, `floor`, `round`, `sqrt`, `exp`, `ln`, `log2`, `log10`, `clamp`, `clamp_min`, `clamp_max` | yes |
//! | other functions (`label_replace`, `predict_linear`, `timestamp`, …) | no |
//! | `sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`, `stdvar` with `by (…)` / `without (…)` | yes |
//! | `topk`, `bottomk`, `quantile`, `count_values`, `limitk`, `limit_ratio` | no |
//! | `+ - * / % ^` between scalars, vector/scalar, vector/vector | yes |
//! | `== != > < >= <=`, filtering or with `bool` | yes |
//! | one-to-one vector matching, with `on (…)` / `ignoring (…)` | yes |
//! | `group_left`, `group_right`, `atan2`, fill modifiers | no |
//! | `and`, `or`, `unless` with optional `on` / `ignoring` | yes |
//!
//! Semantics details: the lookback delta is 5 minutes; a staleness marker ends a series at once;
//! range selectors include both ends `[t - range, t]` and instant selectors take the newest sample
//! in `[t - 5m, t]` (Prometheus 2.x; Prometheus 3 made the left end open). Functions and
//! arithmetic drop the metric name (`last_over_time` and filtering comparisons keep it). A
//! construct outside the subset is refused with [`QueryError::Unsupported`], whose message reads
//! "recserve's PromQL subset does not support `topk`".

mod eval;

pub(crate) use eval::selector_matches;
pub use eval::{
    DEFAULT_LOOKBACK_MS, MAX_POINTS_PER_SERIES, bucket_quantile, extrapolated_rate, instant_query, parse, range_query,
};

use crate::error::QueryError;
use crate::labels::LabelSet;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Labels (with `__name__` when the expression keeps it).
    pub labels: LabelSet,
    /// Value.
    pub value: f64,
}

/// One series of a range vector or range-query result.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Labels.
    pub labels: LabelSet,
    /// `(unix ms, value)` in time order.
    pub points: Vec<(i64, f64)>,
}

/// The value of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number.
    Scalar(f64),
    /// A string literal.
    String(String),
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector (or a range query's result).
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// The Prometheus `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }

    /// The vector, or an error naming the type found.
    pub fn into_vector(self) -> Result<Vec<Sample>, QueryError> {
        match self {
            Value::Vector(v) => Ok(v),
            other => Err(QueryError::Execution(format!("expected an instant vector, got a {}", other.type_name()))),
        }
    }
}
