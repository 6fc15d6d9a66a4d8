//! Every request error names its field and is a 400; runner errors map to 429/503/500.

use std::sync::OnceLock;

use recserve_pipeline::{ErrorClass, PipelineError, Pipelines, RecommendRequest, RunnerErrorKind};

use crate::common::{FailingRunner, TractRunner, shop};

fn pipelines() -> &'static Pipelines {
    static P: OnceLock<Pipelines> = OnceLock::new();
    P.get_or_init(|| Pipelines::load(&shop().join("pipelines.toml")).unwrap())
}

fn parse_err(body: &str) -> (String, String) {
    match RecommendRequest::from_json(body.as_bytes()).unwrap_err() {
        PipelineError::BadRequest { field, message } => (field, message),
        e => panic!("not a bad request: {e}"),
    }
}

fn serve_err(body: &str) -> PipelineError {
    let req = RecommendRequest::from_json(body.as_bytes()).unwrap();
    let runner = TractRunner::new(&shop().join("models"));
    futures::executor::block_on(pipelines().recommend(req, &runner)).unwrap_err()
}

#[test]
fn parse_errors_name_the_field() {
    let cases = [
        (r#"{"scenario":"home_feed","user_id":"u","colour":"red"}"#, "colour", "unknown field"),
        (r#"{"user_id":"u"}"#, "scenario", "missing"),
        (r#"{"scenario":"home_feed"}"#, "user_id", "missing"),
        (r#"{"scenario":5,"user_id":"u"}"#, "scenario", "expected a string, received number 5"),
        (r#"{"scenario":"home_feed","user_id":"u","k":"ten"}"#, "k", "positive integer"),
        (r#"{"scenario":"home_feed","user_id":"u","k":-1}"#, "k", "positive integer"),
        (r#"{"scenario":"home_feed","user_id":"u","k":2.5}"#, "k", "positive integer"),
        (r#"{"scenario":"home_feed","user_id":"u","query":["a"]}"#, "query", "expected a string"),
        (r#"{"scenario":"home_feed","user_id":"u","context":"x"}"#, "context", "expected an object"),
        (r#"{"scenario":"home_feed","user_id":"u","filters":[]}"#, "filters", "expected an object"),
        (r#"{"scenario":"home_feed","user_id":"u","filters":{"colour":1}}"#, "filters.colour", "unknown field"),
        (r#"{"scenario":"home_feed","user_id":"u","filters":{"min_price":"5"}}"#, "filters.min_price", "number"),
        (r#"{"scenario":"home_feed","user_id":"u","filters":{"categories":"home"}}"#, "filters.categories", "array"),
        (r#"{"scenario":"home_feed","user_id":"u","filters":{"categories":[1]}}"#, "filters.categories[0]", "string"),
        (r#"[1,2]"#, "body", "JSON object"),
        (r#"{"scenario":"#, "body", "not valid JSON"),
    ];
    for (body, field, msg) in cases {
        let (f, m) = parse_err(body);
        assert_eq!(f, field, "{body}");
        assert!(m.contains(msg), "{body}: {m}");
    }
}

#[test]
fn serde_derive_also_rejects_unknown_fields() {
    let e = serde_json::from_str::<RecommendRequest>(r#"{"scenario":"s","user_id":"u","kk":1}"#).unwrap_err();
    assert!(e.to_string().contains("kk"));
}

#[test]
fn validation_errors_name_the_field() {
    let cases = [
        (r#"{"scenario":"home_feed","user_id":"u","k":0}"#, "k", "between 1 and 50"),
        (r#"{"scenario":"home_feed","user_id":"u","k":51}"#, "k", "received 51"),
        (r#"{"scenario":"home_feed","user_id":"  "}"#, "user_id", "empty"),
        (r#"{"scenario":"search","user_id":"u"}"#, "query", "required"),
        (r#"{"scenario":"search","user_id":"u","query":"  "}"#, "query", "required"),
        (
            r#"{"scenario":"home_feed","user_id":"u","filters":{"min_price":50,"max_price":10}}"#,
            "filters.min_price",
            "greater",
        ),
        (r#"{"scenario":"home_feed","user_id":"u","filters":{"min_price":-1}}"#, "filters.min_price", "≥ 0"),
        (
            r#"{"scenario":"home_feed","user_id":"u","filters":{"categories":["home","toys"]}}"#,
            "filters.categories[1]",
            "unknown category 'toys'",
        ),
        (r#"{"scenario":"home_feed","user_id":"u","filters":{"categories":[]}}"#, "filters.categories", "empty"),
        (
            r#"{"scenario":"home_feed","user_id":"u","filters":{"brands":["Nope"]}}"#,
            "filters.brands[0]",
            "unknown brand",
        ),
        (r#"{"scenario":"home_feed","user_id":"u","context":{"device":{"a":1}}}"#, "context.device", "string, number"),
    ];
    for (body, field, msg) in cases {
        let e = serve_err(body);
        assert_eq!(e.class(), ErrorClass::BadRequest, "{body}");
        assert_eq!(e.http_status(), 400);
        assert_eq!(e.field(), Some(field), "{body}: {e}");
        assert!(e.to_string().contains(msg), "{body}: {e}");
    }
}

#[test]
fn unknown_scenario_lists_known_ones() {
    let e = serve_err(r#"{"scenario":"frontpage","user_id":"u"}"#);
    assert_eq!(e.http_status(), 400);
    assert_eq!(e.field(), Some("scenario"));
    let msg = e.to_string();
    assert!(msg.contains("frontpage") && msg.contains("home_feed, search"), "{msg}");
}

#[test]
fn runner_errors_map_to_http_classes() {
    for (kind, status) in
        [(RunnerErrorKind::Overloaded, 429), (RunnerErrorKind::NotReady, 503), (RunnerErrorKind::Failed, 500)]
    {
        let req = RecommendRequest::from_json(br#"{"scenario":"home_feed","user_id":"U0000001"}"#).unwrap();
        let e = futures::executor::block_on(pipelines().recommend(req, &FailingRunner(kind))).unwrap_err();
        assert_eq!(e.http_status(), status, "{kind:?}");
        assert!(e.to_string().contains("user_tower"), "{e}");
    }
}
