//! The embedded dashboard's routes, and the Grafana dashboard (deploy/grafana): well formed, made
//! from dashboard/queries.json, and every panel query, `$instance` substituted, parsed (with
//! promql-parser) and answered by recserve's `/api/v1/query` over a store holding live series of
//! the demo shop. (tests/dashboard/run.sh runs the same queries against the release binary and
//! drives the dashboard in headless Chromium.)

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use recserve_server::rest;
use recserve_telemetry::store::now_ms;
use recserve_testkit::shop_state;
use serde_json::{Value, json};
use std::collections::HashSet;
use tower::ServiceExt;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn read_json(path: &str) -> Value {
    let path = format!("{ROOT}/{path}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON: {e}"))
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.into_body().collect().await.unwrap().to_bytes().to_vec())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn dashboard_routes_serve_the_embedded_files() {
    let app = rest::router(shop_state().await);
    let (status, headers, body) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert!(String::from_utf8(body).unwrap().contains("/dashboard/js/app.js"));

    for (path, ctype, cache) in [
        ("/dashboard/js/app.js", "text/javascript; charset=utf-8", "no-cache"),
        ("/dashboard/css/app.css", "text/css; charset=utf-8", "no-cache"),
        ("/dashboard/queries.json", "application/json", "no-cache"),
        ("/dashboard/vendor/uplot/uPlot.iife.min.js", "text/javascript; charset=utf-8", "public, max-age=86400"),
    ] {
        let (status, headers, body) = send(&app, get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], ctype, "{path}");
        assert_eq!(headers[header::CACHE_CONTROL], cache, "{path}");
        assert!(!body.is_empty());
        // Revalidation with the ETag answers 304 without a body.
        let etag = headers[header::ETAG].clone();
        let req = Request::get(path).header(header::IF_NONE_MATCH, etag).body(Body::empty()).unwrap();
        let (status, _, body) = send(&app, req).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(body.is_empty());
    }
    for path in ["/dashboard/nope.js", "/dashboard/../Cargo.toml", "/dashboard/js/", "/dashboard/%2e%2e/Cargo.toml"] {
        let (status, _, _) = send(&app, get(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

/// (panel title, expr) of every Grafana panel target, checking the JSON's structure on the way.
fn grafana_targets() -> Vec<(String, String)> {
    let dash = read_json("deploy/grafana/recserve-dashboard.json");
    for field in ["uid", "title", "schemaVersion", "panels", "templating", "time", "refresh"] {
        assert!(dash.get(field).is_some(), "dashboard has {field}");
    }
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 36);
    let vars: Vec<&str> =
        dash["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(vars, ["datasource", "instance"]);
    assert_eq!(dash["templating"]["list"][0]["type"], "datasource");

    let mut ids = HashSet::new();
    let mut targets = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        let id = panel["id"].as_u64().unwrap();
        assert!(ids.insert(id), "panel id {id} is unique");
        let grid = &panel["gridPos"];
        for k in ["h", "w", "x", "y"] {
            assert!(grid[k].is_u64(), "panel {id}: gridPos.{k}");
        }
        assert!(grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24, "panel {id} fits the grid");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"], json!({"type": "prometheus", "uid": "${datasource}"}), "panel {id}");
        assert!(panel["fieldConfig"]["defaults"]["unit"].is_string(), "panel {id}: unit");
        let title = panel["title"].as_str().unwrap().to_string();
        let panel_targets = panel["targets"].as_array().unwrap();
        assert!(!panel_targets.is_empty(), "panel {id} has targets");
        for t in panel_targets {
            let expr = t["expr"].as_str().unwrap_or_else(|| panic!("panel {id}: a target without expr"));
            assert!(!expr.trim().is_empty());
            assert!(t["refId"].is_string() && t["legendFormat"].is_string(), "panel {id}");
            targets.push((title.clone(), expr.to_string()));
        }
    }

    // One source of truth: exactly the queries of dashboard/queries.json, in order.
    let spec = read_json("dashboard/queries.json");
    let want: Vec<(String, String)> = spec["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["panels"].as_array().unwrap().iter())
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (p["title"].as_str().unwrap().to_string(), t["expr"].as_str().unwrap().to_string()))
        })
        .collect();
    assert_eq!(targets, want, "run python3 deploy/grafana/generate.py");
    targets
}

#[tokio::test]
async fn every_grafana_panel_query_is_answered_by_the_query_api() {
    let targets = grafana_targets();
    assert!(targets.len() >= 15, "{} targets", targets.len());

    let state = shop_state().await;
    let telemetry = state.telemetry.clone().expect("telemetry on");
    let app = rest::router(state);
    let t0 = now_ms();
    // Series of a scenario appear with its first request: two before the first scrape, so rate()
    // over the scrapes sees every series twice.
    for i in 0..14 {
        if i == 2 {
            telemetry.store.scrape(&telemetry.registry, t0 - 20_000);
        }
        let body = if i % 2 == 0 {
            json!({"scenario": "search", "user_id": format!("U{:07}", i + 1), "query": "running shoes", "k": 5})
        } else {
            json!({"scenario": "home_feed", "user_id": format!("U{:07}", i + 1)})
        };
        let req = Request::post("/v1/recommend")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let (status, _, body) = send(&app, req).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    telemetry.store.scrape(&telemetry.registry, t0);

    let mut with_data = Vec::new();
    for (title, expr) in &targets {
        let query = expr.replace("$instance", ".*");
        let uri = format!("/api/v1/query?query={}&time={}", recserve_testkit::form_encode(&query), t0 as f64 / 1000.0);
        let (status, _, body) = send(&app, get(&uri)).await;
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, StatusCode::OK, "{title}: {query}: {answer}");
        assert_eq!(answer["status"], "success", "{title}: {query}: {answer}");
        if !answer["data"]["result"].as_array().unwrap().is_empty() {
            with_data.push(title.as_str());
        }
    }
    // The request families answer with data after 14 recommendations.
    for title in
        ["Throughput", "End-to-end latency", "p99 per stage", "Requests per scenario", "Inference rows per second"]
    {
        assert!(with_data.contains(&title), "{title} answers with data; with data: {with_data:?}");
    }
}
