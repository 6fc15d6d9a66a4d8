//! The recommendation API over the e-commerce example (real models through the registry and
//! batchers, real tables): answers, business rules, cold start, every request error, feedback.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use recserve_server::shop::FeedbackEvent;
use recserve_server::{AppState, rest};
use recserve_testkit::{loaded_registry, repository_with, shop_state};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use tower::ServiceExt;

async fn post(app: &axum::Router, path: &str, body: impl Into<Vec<u8>>) -> (StatusCode, Value) {
    let req = Request::builder().method("POST").uri(path).body(Body::from(body.into())).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

async fn recommend(app: &axum::Router, body: Value) -> (StatusCode, Value) {
    post(app, "/v1/recommend", body.to_string()).await
}

async fn shop_app() -> (axum::Router, AppState) {
    let state = shop_state().await;
    (rest::router(state.clone()), state)
}

fn items(reply: &Value) -> &Vec<Value> {
    reply["items"].as_array().expect("items array")
}

#[tokio::test]
async fn home_feed_applies_ranking_and_business_rules() {
    let (app, state) = shop_app().await;
    let (status, reply) = recommend(&app, json!({"scenario": "home_feed", "user_id": "U0000042", "k": 20})).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let list = items(&reply);
    assert_eq!(list.len(), 20);
    assert_eq!(reply["scenario"], "home_feed");
    assert_eq!(reply["cold_start"], false);
    assert_eq!(reply["model_versions"], json!({"ranker": "1", "user_tower": "1"}));
    let scores: Vec<f64> = list.iter().map(|i| i["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "scores not descending: {scores:?}");
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)), "P(click) out of range: {scores:?}");
    let ids: HashSet<&str> = list.iter().map(|i| i["item_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), list.len(), "duplicate items");
    assert!(list.iter().all(|i| i["stock"].as_i64().unwrap() > 0), "an out-of-stock item was recommended");
    let mut per_category: HashMap<&str, usize> = HashMap::new();
    for i in list {
        *per_category.entry(i["category"].as_str().unwrap()).or_default() += 1;
        assert!(!i["title"].as_str().unwrap().is_empty());
    }
    assert!(per_category.values().all(|&n| n <= 5), "diversity cap broken: {per_category:?}");

    // The ranker ran through the same batcher as V2 requests.
    let stats = state.registry.resolve("ranker", None).unwrap().stats.success.get();
    assert!(stats >= 1, "the ranker's V2 statistics did not count the pipeline's call");

    // Every answer gets its own request id.
    let (_, again) = recommend(&app, json!({"scenario": "home_feed", "user_id": "U0000042", "k": 20})).await;
    assert_ne!(again["request_id"], reply["request_id"]);
    assert_eq!(again["items"], reply["items"], "the same request should give the same items");
}

#[tokio::test]
async fn search_matches_the_query_and_honours_filters() {
    let (app, _) = shop_app().await;
    let (status, reply) =
        recommend(&app, json!({"scenario": "search", "user_id": "U0000042", "query": "running shoes", "k": 10})).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let list = items(&reply);
    assert_eq!(list.len(), 10);
    let matching = list.iter().filter(|i| i["title"].as_str().unwrap().to_lowercase().contains("running")).count();
    assert!(matching >= 5, "a search for running shoes should mostly find running shoes: {reply}");

    let (status, cheap) = recommend(
        &app,
        json!({"scenario": "search", "user_id": "U0000042", "query": "running shoes", "k": 10,
               "filters": {"max_price": 60.0, "min_price": 10.0}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cheap}");
    assert!(!items(&cheap).is_empty());
    for i in items(&cheap) {
        let price = i["price"].as_f64().unwrap();
        assert!((10.0..=60.0).contains(&price), "price filter broken: {i}");
    }

    let (status, sports) = recommend(
        &app,
        json!({"scenario": "home_feed", "user_id": "U0000042", "k": 10, "filters": {"categories": ["sports"]}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{sports}");
    assert!(!items(&sports).is_empty());
    assert!(items(&sports).iter().all(|i| i["category"] == "sports"), "category filter broken: {sports}");
}

#[tokio::test]
async fn unknown_users_are_served_from_popularity() {
    let (app, _) = shop_app().await;
    let (status, reply) =
        recommend(&app, json!({"scenario": "home_feed", "user_id": "someone-new", "context": {"device": "mobile"}}))
            .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["cold_start"], true);
    assert_eq!(items(&reply).len(), 20, "default k of home_feed is 20");
    assert!(reply["model_versions"].get("user_tower").is_none(), "no user tower for a cold start: {reply}");
}

#[tokio::test]
async fn every_request_error_is_a_400_naming_the_field() {
    let (app, _) = shop_app().await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (json!({"scenario": "checkout", "user_id": "U1"}).to_string().into(), "scenario"),
        (json!({"scenario": "home_feed", "user_id": "U1", "k": 0}).to_string().into(), "k"),
        (json!({"scenario": "home_feed", "user_id": "U1", "k": 1000}).to_string().into(), "k"),
        (json!({"scenario": "home_feed", "user_id": "U1", "k": "ten"}).to_string().into(), "k"),
        (json!({"scenario": "home_feed", "user_id": "U1", "colour": "red"}).to_string().into(), "colour"),
        (json!({"scenario": "home_feed", "user_id": ""}).to_string().into(), "user_id"),
        (json!({"scenario": "home_feed"}).to_string().into(), "user_id"),
        (json!({"user_id": "U1"}).to_string().into(), "scenario"),
        (json!({"scenario": "search", "user_id": "U1"}).to_string().into(), "query"),
        (
            json!({"scenario": "home_feed", "user_id": "U1", "filters": {"min_price": 50, "max_price": 10}})
                .to_string()
                .into(),
            "price",
        ),
        (json!({"scenario": "home_feed", "user_id": "U1", "filters": {"size": 3}}).to_string().into(), "size"),
        (json!({"scenario": "home_feed", "user_id": "U1", "context": "mobile"}).to_string().into(), "context"),
        (b"{\"scenario\": \"home_feed\", ".to_vec(), "JSON"),
        (b"[1, 2]".to_vec(), "object"),
    ];
    for (body, field) in cases {
        let (status, reply) = post(&app, "/v1/recommend", body.clone()).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text} → {reply}");
        let message = reply["error"].as_str().unwrap();
        assert!(message.contains(field), "{text}: error {message:?} does not name {field:?}");
    }
    // The server keeps serving after all of that.
    let (status, _) = recommend(&app, json!({"scenario": "home_feed", "user_id": "U0000042"})).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn feedback_is_validated_and_joined_to_its_request() {
    let (app, state) = shop_app().await;
    let (_, reply) = recommend(&app, json!({"scenario": "home_feed", "user_id": "U0000042", "k": 5})).await;
    let request_id = reply["request_id"].as_str().unwrap();
    let shown = items(&reply)[0]["item_id"].as_str().unwrap();
    let feedback = |item: &str, event: &str| {
        json!({"request_id": request_id, "user_id": "U0000042", "item_id": item, "event": event}).to_string()
    };
    for event in ["impression", "click", "add_to_cart", "purchase"] {
        let (status, answer) = post(&app, "/v1/feedback", feedback(shown, event)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer, json!({"joined": true}));
    }
    // A request this server does not remember (another replica's, or evicted) is accepted unjoined.
    let (status, answer) = post(
        &app,
        "/v1/feedback",
        json!({"request_id": "elsewhere-1", "user_id": "U0000042", "item_id": shown, "event": "click"}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"joined": false}));

    let not_shown =
        (0..).map(|i| format!("I{i:06}")).find(|id| items(&reply).iter().all(|i| i["item_id"] != id.as_str())).unwrap();
    let errors: Vec<(String, &str)> = vec![
        (feedback(shown, "like"), "event"),
        (feedback("I999999", "click"), "item_id"),
        (feedback(&not_shown, "click"), "item_id"),
        (
            json!({"request_id": request_id, "user_id": "U0000043", "item_id": shown, "event": "click"}).to_string(),
            "user_id",
        ),
        (json!({"request_id": request_id, "user_id": "U0000042", "item_id": shown}).to_string(), "event"),
        (
            json!({"request_id": "", "user_id": "U0000042", "item_id": shown, "event": "click"}).to_string(),
            "request_id",
        ),
        (
            json!({"request_id": request_id, "user_id": "U0000042", "item_id": shown, "event": "click", "price": 3})
                .to_string(),
            "price",
        ),
        ("not json".to_string(), "feedback"),
    ];
    for (body, field) in errors {
        let (status, answer) = post(&app, "/v1/feedback", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(field), "{body}: error {message:?} does not name {field:?}");
    }

    let counts = state.shop.as_ref().unwrap().feedback_counts();
    assert_eq!(counts.get(&("home_feed".to_string(), FeedbackEvent::Click)), Some(&1));
    assert_eq!(counts.get(&("home_feed".to_string(), FeedbackEvent::Purchase)), Some(&1));
    assert_eq!(counts.get(&("unknown".to_string(), FeedbackEvent::Click)), Some(&1));
    assert_eq!(counts.values().sum::<u64>(), 5, "refused events must not be counted: {counts:?}");
}

#[tokio::test]
async fn without_pipelines_the_recommendation_api_says_how_to_enable_it() {
    let repo = repository_with(&["mlp"]);
    let app = rest::router(AppState::new(loaded_registry(repo.path()).await));
    let (status, reply) = recommend(&app, json!({"scenario": "home_feed", "user_id": "U1"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(reply["error"].as_str().unwrap().contains("--pipelines"), "{reply}");
    // Listing scenarios is not an error: there are none.
    let req = Request::builder().uri("/v1/scenarios").body(Body::empty()).unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body, json!({"scenarios": []}));
}

#[tokio::test]
async fn scenarios_are_listed() {
    let (app, _) = shop_app().await;
    let req = Request::builder().uri("/v1/scenarios").body(Body::empty()).unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let names: Vec<&str> = body["scenarios"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(names.contains(&"home_feed") && names.contains(&"search"), "{body}");
}

#[tokio::test]
async fn tables_reload_and_a_bad_table_keeps_the_old_one() {
    let copy = tempfile::tempdir().unwrap();
    recserve_testkit::copy_dir(&recserve_testkit::shop_dir(), copy.path());
    let state = recserve_testkit::shop_state_at(copy.path()).await;
    let app = rest::router(state);
    let (status, sizes) = post(&app, "/v1/tables/reload", "").await;
    assert_eq!(status, StatusCode::OK, "{sizes}");
    let users = sizes["users"].as_u64().unwrap();
    assert!(users >= 10_000 && sizes["items"].as_u64().unwrap() >= 5_000, "{sizes}");

    // A new shopper appended to the user table is known after the reload.
    let table = copy.path().join("data/user_features.csv");
    let text = std::fs::read_to_string(&table).unwrap();
    let row = text.lines().nth(1).unwrap();
    let (_, rest) = row.split_once(',').unwrap();
    std::fs::write(&table, format!("{}\nNEWUSER1,{rest}\n", text.trim_end())).unwrap();
    let body = json!({"scenario": "home_feed", "user_id": "NEWUSER1"});
    assert_eq!(recommend(&app, body.clone()).await.1["cold_start"], true);
    let (status, sizes) = post(&app, "/v1/tables/reload", "").await;
    assert_eq!(status, StatusCode::OK, "{sizes}");
    assert_eq!(sizes["users"].as_u64().unwrap(), users + 1);
    assert_eq!(recommend(&app, body.clone()).await.1["cold_start"], false);

    // A broken table is refused with the reason; the one in use stays.
    std::fs::write(&table, "no,such,columns\n1,2,3\n").unwrap();
    let (status, reply) = post(&app, "/v1/tables/reload", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("previous ones stay"), "{reply}");
    let (status, reply) = recommend(&app, body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["cold_start"], false, "the old table must still serve");
}
