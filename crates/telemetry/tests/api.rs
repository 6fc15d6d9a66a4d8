//! Prometheus HTTP API shapes.

use recserve_telemetry::api::{self, QueryParams, RangeParams, SeriesParams, parse_duration, parse_form, parse_time};
use recserve_telemetry::{SeriesStore, StoreConfig};

use crate::{T, ls};

fn store() -> SeriesStore {
    let st = SeriesStore::new(StoreConfig::default());
    st.append(&[
        (ls(&[("__name__", "up"), ("job", "a")]), T, 1.0),
        (ls(&[("__name__", "up"), ("job", "a")]), T + 15_000, 1.0),
        (ls(&[("__name__", "up"), ("job", "b")]), T + 15_000, 0.0),
        (ls(&[("__name__", "other"), ("zone", "z1")]), T + 15_000, 2.5),
    ]);
    st
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn times_and_durations_parse_like_prometheus() {
    assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000);
    assert_eq!(parse_time("1700000000.123").unwrap(), 1_700_000_000_123);
    assert_eq!(parse_time("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000_000);
    assert_eq!(parse_time("2023-11-14T23:13:20.5+01:00").unwrap(), 1_700_000_000_500);
    assert!(parse_time("yesterday").is_err());
    assert_eq!(parse_duration("15s").unwrap(), 15_000);
    assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
    assert_eq!(parse_duration("250ms").unwrap(), 250);
    assert_eq!(parse_duration("0.5").unwrap(), 500);
    assert_eq!(parse_duration("2d").unwrap(), 172_800_000);
    assert!(parse_duration("5x").is_err());
    assert!(parse_duration("").is_err());
    assert_eq!(
        parse_form("query=sum%28up%29+by+%28job%29&match[]=up&match%5B%5D=other"),
        vec![
            ("query".to_string(), "sum(up) by (job)".to_string()),
            ("match[]".to_string(), "up".to_string()),
            ("match[]".to_string(), "other".to_string())
        ]
    );
}

#[test]
fn instant_query_vector_json() {
    let st = store();
    let p = QueryParams { query: some("up{job=\"a\"}"), time: some("1700000015") };
    let r = api::query(&st, &p, 0);
    assert_eq!(r.http_status(), 200);
    assert_eq!(
        r.to_json(),
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000015.0,"1"]}]}}"#
    );
}

#[test]
fn scalar_and_default_time() {
    let st = store();
    let r = api::query(&st, &QueryParams { query: some("1 / 0"), time: None }, T + 1_500);
    assert_eq!(r.to_json(), r#"{"status":"success","data":{"resultType":"scalar","result":[1700000001.5,"+Inf"]}}"#);
}

#[test]
fn range_query_matrix_json() {
    let st = store();
    let p = RangeParams {
        query: some("up"),
        start: some("2023-11-14T22:13:20Z"),
        end: some("1700000015"),
        step: some("15s"),
    };
    let r = api::query_range(&st, &p);
    assert_eq!(
        r.to_json(),
        concat!(
            r#"{"status":"success","data":{"resultType":"matrix","result":["#,
            r#"{"metric":{"__name__":"up","job":"a"},"values":[[1700000000.0,"1"],[1700000015.0,"1"]]},"#,
            r#"{"metric":{"__name__":"up","job":"b"},"values":[[1700000015.0,"0"]]}]}}"#
        )
    );
}

#[test]
fn errors_have_prometheus_shape_and_status() {
    let st = store();
    let r = api::query(&st, &QueryParams { query: None, time: None }, T);
    assert_eq!(r.http_status(), 400);
    assert_eq!(
        r.to_json(),
        r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": parameter is required"}"#
    );
    let r = api::query(&st, &QueryParams { query: some("topk(1, up)"), time: None }, T);
    assert_eq!(r.http_status(), 400);
    assert_eq!(r.error.as_deref(), Some("recserve's PromQL subset does not support `topk`"));
    let r = api::query(&st, &QueryParams { query: some("sum(up"), time: None }, T);
    assert!(r.error.unwrap().starts_with("invalid parameter \"query\": "));
    let r = api::query(&st, &QueryParams { query: some("up"), time: some("noon") }, T);
    assert!(r.error.unwrap().starts_with("invalid parameter \"time\""));
    let p = RangeParams { query: some("up"), start: some("10"), end: some("5"), step: some("1s") };
    assert_eq!(api::query_range(&st, &p).http_status(), 400);
    let p = RangeParams { query: some("up"), start: some("5"), end: some("10"), step: some("0s") };
    assert_eq!(api::query_range(&st, &p).http_status(), 400);
    let r =
        api::query(&st, &QueryParams { query: some("up + on (job) up{job=\"a\"} or up"), time: some("1700000015") }, T);
    assert_eq!(r.http_status(), 200);
    let r = api::query(&st, &QueryParams { query: some("up * on () up"), time: some("1700000015") }, T);
    assert_eq!(r.http_status(), 422);
    assert_eq!(r.error_type, Some("execution"));
}

#[test]
fn series_labels_and_values() {
    let st = store();
    let p = SeriesParams { matchers: vec!["up".into(), "{zone=\"z1\"}".into()], start: None, end: None };
    assert_eq!(
        api::series(&st, &p).to_json(),
        concat!(
            r#"{"status":"success","data":[{"__name__":"other","zone":"z1"},"#,
            r#"{"__name__":"up","job":"a"},{"__name__":"up","job":"b"}]}"#
        )
    );
    // Time bounds filter series without samples in the range.
    let p = SeriesParams { matchers: vec!["up".into()], start: some("1700000000"), end: some("1700000001") };
    assert_eq!(api::series(&st, &p).to_json(), r#"{"status":"success","data":[{"__name__":"up","job":"a"}]}"#);
    assert_eq!(api::series(&st, &SeriesParams::default()).http_status(), 400);
    assert_eq!(
        api::series(&st, &SeriesParams { matchers: vec!["sum(up)".into()], ..Default::default() }).http_status(),
        400
    );
    assert_eq!(
        api::labels(&st, &SeriesParams::default()).to_json(),
        r#"{"status":"success","data":["__name__","job","zone"]}"#
    );
    assert_eq!(
        api::label_values(&st, "job", &SeriesParams::default()).to_json(),
        r#"{"status":"success","data":["a","b"]}"#
    );
    assert_eq!(
        api::label_values(
            &st,
            "__name__",
            &SeriesParams { matchers: vec!["{job=\"a\"}".into()], ..Default::default() }
        )
        .to_json(),
        r#"{"status":"success","data":["up"]}"#
    );
}
