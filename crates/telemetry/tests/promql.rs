//! PromQL evaluation against hand-computed answers on synthetic series.

use recserve_telemetry::promql::{RangeSeries, Sample, Value, instant_query, range_query};
use recserve_telemetry::{QueryError, SeriesStore, StoreConfig};

use crate::{T, ls};

const S: i64 = 1000;

/// Synthetic data, timestamps relative to `T`:
/// - `http_requests_total{job="api"}`: 0, 10, 20, 30, 40 at 0, 15, 30, 45, 60 s.
/// - `resets_total`: 10, 20, 5, 15, 25 at 0, 15, 30, 45, 60 s (a reset at 30 s).
/// - `late_total`: 1, 11, 21 at 20, 30, 40 s.
/// - `temp{room="a"}`: 1, 5, 3, 7, 4 at 0, 15, 30, 45, 60 s.
/// - `m{job, inst}`: a/1 = 1, a/2 = 3, b/1 = 5 at 60 s.
/// - `lat_bucket{job="x"}`: le 0.1 → 10, 0.5 → 30, 1 → 40, +Inf → 40; `{job="y"}` +Inf → 50 at 60 s.
fn store() -> SeriesStore {
    let st = SeriesStore::new(StoreConfig::default());
    let mut samples = Vec::new();
    for (i, v) in [0.0, 10.0, 20.0, 30.0, 40.0].iter().enumerate() {
        samples.push((ls(&[("__name__", "http_requests_total"), ("job", "api")]), T + 15 * S * i as i64, *v));
    }
    for (i, v) in [10.0, 20.0, 5.0, 15.0, 25.0].iter().enumerate() {
        samples.push((ls(&[("__name__", "resets_total")]), T + 15 * S * i as i64, *v));
    }
    for (i, v) in [1.0, 11.0, 21.0].iter().enumerate() {
        samples.push((ls(&[("__name__", "late_total")]), T + 20 * S + 10 * S * i as i64, *v));
    }
    for (i, v) in [1.0, 5.0, 3.0, 7.0, 4.0].iter().enumerate() {
        samples.push((ls(&[("__name__", "temp"), ("room", "a")]), T + 15 * S * i as i64, *v));
    }
    for (job, inst, v) in [("a", "1", 1.0), ("a", "2", 3.0), ("b", "1", 5.0)] {
        samples.push((ls(&[("__name__", "m"), ("job", job), ("inst", inst)]), T + 60 * S, v));
    }
    for (job, le, v) in [
        ("x", "0.1", 10.0),
        ("x", "0.5", 30.0),
        ("x", "1", 40.0),
        ("x", "+Inf", 40.0),
        ("y", "0.1", 10.0),
        ("y", "0.5", 30.0),
        ("y", "1", 40.0),
        ("y", "+Inf", 50.0),
    ] {
        samples.push((ls(&[("__name__", "lat_bucket"), ("job", job), ("le", le)]), T + 60 * S, v));
    }
    st.append(&samples);
    st
}

fn vector(st: &SeriesStore, q: &str, t: i64) -> Vec<Sample> {
    match instant_query(st, q, t).unwrap_or_else(|e| panic!("{q}: {e}")) {
        Value::Vector(mut v) => {
            v.sort_by(|a, b| a.labels.cmp(&b.labels));
            v
        }
        other => panic!("{q}: expected a vector, got {other:?}"),
    }
}

fn single(st: &SeriesStore, q: &str, t: i64) -> f64 {
    let v = vector(st, q, t);
    assert_eq!(v.len(), 1, "{q}: {v:?}");
    v[0].value
}

fn scalar(st: &SeriesStore, q: &str, t: i64) -> f64 {
    match instant_query(st, q, t).unwrap() {
        Value::Scalar(v) => v,
        other => panic!("{q}: expected a scalar, got {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[track_caller]
fn assert_close(got: f64, want: f64) {
    assert!(close(got, want), "got {got}, want {want}");
}

fn values(v: &[Sample]) -> Vec<(String, f64)> {
    v.iter().map(|s| (s.labels.to_string(), s.value)).collect()
}

#[test]
fn rate_and_increase_without_extrapolation() {
    let st = store();
    // Samples on both range boundaries: increase = 40, rate = 40 / 60.
    assert_close(single(&st, "increase(http_requests_total[1m])", T + 60 * S), 40.0);
    assert_close(single(&st, "rate(http_requests_total[1m])", T + 60 * S), 40.0 / 60.0);
    // The result drops the metric name.
    assert_eq!(vector(&st, "rate(http_requests_total[1m])", T + 60 * S)[0].labels, ls(&[("job", "api")]));
}

#[test]
fn rate_extrapolates_to_the_range_boundaries() {
    let st = store();
    // Window [10 s, 70 s]: samples 10..40 at 15..60 s; 5 s to start, 10 s to end (both under the
    // 1.1 × 15 s threshold): 30 × 60 / 45 = 40.
    assert_close(single(&st, "increase(http_requests_total[1m])", T + 70 * S), 40.0);
    // Window [40 s, 100 s]: samples 30, 40 at 45, 60 s; 5 s to start, 40 s to end (beyond the
    // threshold → half an interval, 7.5 s): 10 × 27.5 / 15.
    assert_close(single(&st, "increase(http_requests_total[1m])", T + 100 * S), 10.0 * 27.5 / 15.0);
    assert_close(single(&st, "rate(http_requests_total[1m])", T + 100 * S), 10.0 * 27.5 / 15.0 / 60.0);
    // delta() does not treat the series as a counter (no zero clamp) but extrapolates alike.
    assert_close(single(&st, "delta(http_requests_total[1m])", T + 100 * S), 10.0 * 27.5 / 15.0);
}

#[test]
fn increase_extrapolation_stops_at_counter_zero() {
    let st = store();
    // late_total: 1, 11, 21 at 20, 30, 40 s; window [0, 40 s]. Start is 20 s away, but the
    // counter would reach zero 20 × 1/20 = 1 s before the first sample: 20 × 21 / 20 = 21.
    assert_close(single(&st, "increase(late_total[40s])", T + 40 * S), 21.0);
}

#[test]
fn counter_resets_are_corrected() {
    let st = store();
    // 10, 20, 5, 15, 25: 25 - 10 + 20 = 35.
    assert_close(single(&st, "increase(resets_total[1m])", T + 60 * S), 35.0);
    assert_close(single(&st, "rate(resets_total[1m])", T + 60 * S), 35.0 / 60.0);
    assert_close(single(&st, "resets(resets_total[1m])", T + 60 * S), 1.0);
    assert_close(single(&st, "changes(resets_total[1m])", T + 60 * S), 4.0);
    // irate: last two samples 15 → 25 over 15 s; across the reset it uses the new value.
    assert_close(single(&st, "irate(resets_total[1m])", T + 60 * S), 10.0 / 15.0);
    assert_close(single(&st, "irate(resets_total[1m])", T + 30 * S), 5.0 / 15.0);
    assert_close(single(&st, "idelta(resets_total[1m])", T + 30 * S), -15.0);
    // Fewer than two samples: no result.
    assert!(vector(&st, "rate(resets_total[10s])", T + 60 * S).is_empty());
}

#[test]
fn over_time_functions() {
    let st = store();
    let t = T + 60 * S;
    assert_close(single(&st, "avg_over_time(temp[1m])", t), 4.0);
    assert_close(single(&st, "min_over_time(temp[1m])", t), 1.0);
    assert_close(single(&st, "max_over_time(temp[1m])", t), 7.0);
    assert_close(single(&st, "sum_over_time(temp[1m])", t), 20.0);
    assert_close(single(&st, "count_over_time(temp[1m])", t), 5.0);
    assert_close(single(&st, "last_over_time(temp[1m])", t), 4.0);
    assert_close(single(&st, "quantile_over_time(0.5, temp[1m])", t), 4.0);
    assert_close(single(&st, "quantile_over_time(0.9, temp[1m])", t), 6.2);
    assert_close(single(&st, "stdvar_over_time(temp[1m])", t), 4.0);
    assert_close(single(&st, "stddev_over_time(temp[1m])", t), 2.0);
    // Range selectors include both ends: [30 s, 60 s] holds 3, 7, 4.
    assert_close(single(&st, "count_over_time(temp[30s])", t), 3.0);
    // last_over_time keeps the name, the others drop it.
    assert_eq!(vector(&st, "last_over_time(temp[1m])", t)[0].labels, ls(&[("__name__", "temp"), ("room", "a")]));
    assert_eq!(vector(&st, "avg_over_time(temp[1m])", t)[0].labels, ls(&[("room", "a")]));
}

#[test]
fn instant_selectors_lookback_offset_and_matchers() {
    let st = store();
    assert_close(single(&st, "temp", T + 60 * S), 4.0);
    assert_close(single(&st, "temp", T + 50 * S), 7.0);
    // Lookback of 5 minutes, inclusive at its start.
    assert_close(single(&st, "temp", T + 360 * S), 4.0);
    assert!(vector(&st, "temp", T + 361 * S).is_empty());
    assert_close(single(&st, "temp offset 30s", T + 60 * S), 3.0);
    let t = T + 60 * S;
    assert_eq!(vector(&st, "m{job=\"a\"}", t).len(), 2);
    assert_eq!(vector(&st, "m{job!=\"a\"}", t).len(), 1);
    assert_eq!(
        values(&vector(&st, "m{job=~\"a|b\", inst!~\"2\"}", t)),
        vec![("m{inst=\"1\", job=\"a\"}".into(), 1.0), ("m{inst=\"1\", job=\"b\"}".into(), 5.0)]
    );
    // Regexes are anchored.
    assert!(vector(&st, "m{job=~\"^?\"}", t).is_empty() || vector(&st, "m{job=~\"x\"}", t).is_empty());
    assert!(vector(&st, "m{job=~\"\"}", t).is_empty());
    assert_eq!(vector(&st, "{__name__=~\"m|temp\"}", t).len(), 4);
}

#[test]
fn staleness_markers_end_a_series_at_once() {
    let st = SeriesStore::new(StoreConfig::default());
    st.ingest_scrape(T, vec![(ls(&[("__name__", "g")]), 1.0), (ls(&[("__name__", "h")]), 2.0)]);
    st.ingest_scrape(T + 5 * S, vec![(ls(&[("__name__", "h")]), 3.0)]);
    assert!(vector(&st, "g", T + 6 * S).is_empty());
    assert_close(single(&st, "g", T + 4 * S), 1.0);
    assert_close(single(&st, "h", T + 6 * S), 3.0);
    // Range functions ignore the marker itself.
    assert_close(single(&st, "count_over_time(g[1m])", T + 6 * S), 1.0);
}

#[test]
fn histogram_quantile_interpolates_within_buckets() {
    let st = store();
    let t = T + 60 * S;
    let at = |q: &str| {
        vector(&st, q, t).into_iter().map(|s| (s.labels.get("job").unwrap().to_string(), s.value)).collect::<Vec<_>>()
    };
    // rank 20 → bucket (0.1, 0.5] holding 20, 10 in: 0.1 + 0.4 × 10/20.
    assert_close(at("histogram_quantile(0.5, lat_bucket{job=\"x\"})")[0].1, 0.3);
    // rank 39.6 → bucket (0.5, 1]: 0.5 + 0.5 × 9.6/10.
    let r = at("histogram_quantile(0.99, lat_bucket)");
    assert_close(r[0].1, 0.98);
    // y: rank 49.5 falls into +Inf → the highest finite bound.
    assert_close(r[1].1, 1.0);
    assert_eq!(at("histogram_quantile(0, lat_bucket{job=\"x\"})"), vec![("x".into(), 0.0)]);
    assert_eq!(at("histogram_quantile(1.5, lat_bucket{job=\"x\"})"), vec![("x".into(), f64::INFINITY)]);
    // The result drops le and the name.
    assert_eq!(vector(&st, "histogram_quantile(0.5, lat_bucket{job=\"x\"})", t)[0].labels, ls(&[("job", "x")]));
    // Buckets aggregated first, the usual shape.
    // Summed buckets: 20, 60, 80, 90 → rank 45 in (0.1, 0.5]: 0.1 + 0.4 × 25/40.
    assert_close(single(&st, "histogram_quantile(0.5, sum by (le) (lat_bucket))", t), 0.35);
}

#[test]
fn aggregation_by_and_without() {
    let st = store();
    let t = T + 60 * S;
    assert_eq!(
        values(&vector(&st, "sum by (job) (m)", t)),
        vec![("{job=\"a\"}".into(), 4.0), ("{job=\"b\"}".into(), 5.0)]
    );
    assert_eq!(
        values(&vector(&st, "sum without (inst) (m)", t)),
        vec![("{job=\"a\"}".into(), 4.0), ("{job=\"b\"}".into(), 5.0)]
    );
    assert_eq!(values(&vector(&st, "sum(m)", t)), vec![("{}".into(), 9.0)]);
    assert_eq!(
        values(&vector(&st, "avg by (job) (m)", t)),
        vec![("{job=\"a\"}".into(), 2.0), ("{job=\"b\"}".into(), 5.0)]
    );
    assert_eq!(
        values(&vector(&st, "min by (inst) (m)", t)),
        vec![("{inst=\"1\"}".into(), 1.0), ("{inst=\"2\"}".into(), 3.0)]
    );
    assert_eq!(
        values(&vector(&st, "max by (inst) (m)", t)),
        vec![("{inst=\"1\"}".into(), 5.0), ("{inst=\"2\"}".into(), 3.0)]
    );
    assert_eq!(values(&vector(&st, "count(m)", t)), vec![("{}".into(), 3.0)]);
    assert_eq!(
        values(&vector(&st, "group by (job) (m)", t)),
        vec![("{job=\"a\"}".into(), 1.0), ("{job=\"b\"}".into(), 1.0)]
    );
    assert_close(single(&st, "stddev(m)", t), (8.0f64 / 3.0).sqrt());
    // by (__name__) keeps the name.
    assert_eq!(values(&vector(&st, "count by (__name__) (m)", t)), vec![("m{}".into(), 3.0)]);
}

#[test]
fn arithmetic_and_comparisons() {
    let st = store();
    let t = T + 60 * S;
    assert_close(scalar(&st, "1 + 2 * 3", t), 7.0);
    assert_close(scalar(&st, "2 ^ 3 ^ 2", t), 512.0);
    assert_close(scalar(&st, "5 % 3", t), 2.0);
    assert_close(scalar(&st, "-(2 - 5) / 2", t), 1.5);
    assert_close(scalar(&st, "1 == bool 1", t), 1.0);
    assert_close(scalar(&st, "1 > bool 2", t), 0.0);
    assert_close(scalar(&st, "time()", t), (T + 60 * S) as f64 / 1000.0);
    // Vector/scalar arithmetic drops the name.
    assert_eq!(
        values(&vector(&st, "m{job=\"a\"} * 2", t)),
        vec![("{inst=\"1\", job=\"a\"}".into(), 2.0), ("{inst=\"2\", job=\"a\"}".into(), 6.0)]
    );
    assert_eq!(values(&vector(&st, "10 - m{job=\"b\"}", t)), vec![("{inst=\"1\", job=\"b\"}".into(), 5.0)]);
    // Filtering comparison keeps the name and the value.
    assert_eq!(
        values(&vector(&st, "m > 2", t)),
        vec![("m{inst=\"1\", job=\"b\"}".into(), 5.0), ("m{inst=\"2\", job=\"a\"}".into(), 3.0)]
    );
    assert_eq!(values(&vector(&st, "2 < m{job=\"b\"}", t)), vec![("m{inst=\"1\", job=\"b\"}".into(), 5.0)]);
    // bool turns the filter into 0/1 and drops the name.
    assert_eq!(
        values(&vector(&st, "m > bool 2", t)),
        vec![
            ("{inst=\"1\", job=\"a\"}".into(), 0.0),
            ("{inst=\"1\", job=\"b\"}".into(), 1.0),
            ("{inst=\"2\", job=\"a\"}".into(), 1.0)
        ]
    );
    assert_eq!(values(&vector(&st, "-m{job=\"b\"}", t)), vec![("{inst=\"1\", job=\"b\"}".into(), -5.0)]);
    assert_eq!(values(&vector(&st, "vector(3)", t)), vec![("{}".into(), 3.0)]);
    assert_close(scalar(&st, "scalar(m{job=\"b\"})", t), 5.0);
    assert!(scalar(&st, "scalar(m)", t).is_nan());
    assert_eq!(values(&vector(&st, "clamp_max(m, 2)", t)).iter().map(|x| x.1).sum::<f64>(), 1.0 + 2.0 + 2.0);
    assert_eq!(values(&vector(&st, "round(m{job=\"b\"} / 3, 0.5)", t))[0].1, 1.5);
}

#[test]
fn vector_matching_one_to_one() {
    let st = store();
    let t = T + 60 * S;
    // Same labels on both sides: all match.
    assert_eq!(vector(&st, "m / m", t).iter().map(|s| s.value).collect::<Vec<_>>(), vec![1.0, 1.0, 1.0]);
    // on(inst): a/1 + b/1 (rhs only b/1) → {inst="1"} = 6.
    assert_eq!(values(&vector(&st, "m{job=\"a\"} + on (inst) m{job=\"b\"}", t)), vec![("{inst=\"1\"}".into(), 6.0)]);
    assert_eq!(
        values(&vector(&st, "m{job=\"a\"} + ignoring (job) m{job=\"b\"}", t)),
        vec![("{inst=\"1\"}".into(), 6.0)]
    );
    // Comparison between vectors filters with the lhs value.
    assert_eq!(
        values(&vector(&st, "m{job=\"b\"} > ignoring (job) m{job=\"a\"}", t)),
        vec![("m{inst=\"1\"}".into(), 5.0)]
    );
    assert_eq!(
        values(&vector(&st, "m{job=\"a\"} >= bool ignoring (job) m{job=\"b\"}", t)),
        vec![("{inst=\"1\"}".into(), 0.0)]
    );
    // Duplicates are errors, as in Prometheus.
    let dup_right = instant_query(&st, "m{inst=\"1\"} + on (inst) m", t).unwrap_err();
    assert!(dup_right.to_string().contains("many-to-many matching not allowed"), "{dup_right}");
    let dup_left = instant_query(&st, "m + on (job) m{inst=\"1\"}", t).unwrap_err();
    assert!(dup_left.to_string().contains("many-to-one matching must be explicit"), "{dup_left}");
}

#[test]
fn set_operators() {
    let st = store();
    let t = T + 60 * S;
    let names = |q: &str| values(&vector(&st, q, t)).into_iter().map(|x| x.0).collect::<Vec<_>>();
    assert_eq!(names("m and m{inst=\"1\"}"), vec!["m{inst=\"1\", job=\"a\"}", "m{inst=\"1\", job=\"b\"}"]);
    assert_eq!(names("m unless m{inst=\"1\"}"), vec!["m{inst=\"2\", job=\"a\"}"]);
    assert_eq!(
        names("m{job=\"a\"} or m{inst=\"1\"}"),
        vec!["m{inst=\"1\", job=\"a\"}", "m{inst=\"1\", job=\"b\"}", "m{inst=\"2\", job=\"a\"}"]
    );
    assert_eq!(
        names("m and on (job) m{job=\"a\", inst=\"2\"}"),
        vec!["m{inst=\"1\", job=\"a\"}", "m{inst=\"2\", job=\"a\"}"]
    );
    assert_eq!(
        names("m unless ignoring (inst) m{job=\"b\"}"),
        vec!["m{inst=\"1\", job=\"a\"}", "m{inst=\"2\", job=\"a\"}"]
    );
}

#[test]
fn range_queries_evaluate_at_each_step() {
    let st = store();
    let m: Vec<RangeSeries> = range_query(&st, "temp", T, T + 60 * S, 15 * S).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].points, vec![(T, 1.0), (T + 15 * S, 5.0), (T + 30 * S, 3.0), (T + 45 * S, 7.0), (T + 60 * S, 4.0)]);
    let r = range_query(&st, "increase(http_requests_total[1m])", T + 60 * S, T + 100 * S, 40 * S).unwrap();
    assert_eq!(r[0].points.len(), 2);
    assert_close(r[0].points[0].1, 40.0);
    assert_close(r[0].points[1].1, 10.0 * 27.5 / 15.0);
    // Scalars become a series without labels.
    let s = range_query(&st, "1 + 1", T, T + 10 * S, 5 * S).unwrap();
    assert_eq!(s[0].points.len(), 3);
    assert!(s[0].labels.is_empty());
    assert!(range_query(&st, "temp[1m]", T, T + 10 * S, 5 * S).is_err());
    assert!(range_query(&st, "temp", T, T + 100_000 * S, S).is_err());
}

#[test]
fn range_vector_at_top_level_is_a_matrix() {
    let st = store();
    match instant_query(&st, "temp[30s]", T + 60 * S).unwrap() {
        Value::Matrix(m) => assert_eq!(m[0].points, vec![(T + 30 * S, 3.0), (T + 45 * S, 7.0), (T + 60 * S, 4.0)]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsupported_constructs_are_named() {
    let st = store();
    let t = T + 60 * S;
    let err = |q: &str| instant_query(&st, q, t).unwrap_err();
    assert_eq!(err("topk(1, m)").to_string(), "recserve's PromQL subset does not support `topk`");
    assert_eq!(err("quantile(0.5, m)").to_string(), "recserve's PromQL subset does not support `quantile`");
    assert_eq!(
        err("label_replace(m, \"a\", \"$1\", \"job\", \"(.*)\")").to_string(),
        "recserve's PromQL subset does not support `label_replace`"
    );
    assert_eq!(
        err("predict_linear(temp[1m], 60)").to_string(),
        "recserve's PromQL subset does not support `predict_linear`"
    );
    assert!(matches!(err("max_over_time(temp[1m:15s])"), QueryError::Unsupported(m) if m.contains("subqueries")));
    assert!(matches!(err("m @ 100"), QueryError::Unsupported(m) if m.contains("@")));
    assert!(matches!(err("m * on (job) group_left m"), QueryError::Unsupported(m) if m.contains("group_left")));
    assert!(matches!(err("m atan2 m"), QueryError::Unsupported(m) if m.contains("atan2")));
    assert!(matches!(err("sum(m"), QueryError::Parse(_)));
}
