//! The alerting endpoints over a real evaluator: Prometheus's /api/v1/alerts and /api/v1/rules
//! shapes, rule reload (a broken file keeps the rules in use and names its lines), and
//! Alertmanager's silence API (create, read, expire, errors).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use recserve_alerting::{Alerting, AlertingConfig, RuleSource};
use recserve_server::{AppState, rest};
use recserve_telemetry::LabelSet;
use recserve_testkit::{loaded_registry, repository_with};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

const RULES: &str = "groups:
  - name: test
    interval: 1s
    rules:
      - alert: QueueTooDeep
        expr: test_queue_depth > 5
        labels:
          severity: page
        annotations:
          summary: 'queue of {{ $labels.model }} is {{ $value }}'
";

async fn call(app: &axum::Router, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let body = if body.is_null() { Body::empty() } else { Body::from(body.to_string()) };
    let resp = app.clone().oneshot(Request::builder().method(method).uri(path).body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn alerts_rules_reload_and_silences() {
    let repo = repository_with(&["mlp"]);
    let mut state = AppState::new(loaded_registry(repo.path()).await);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let series = state.telemetry.as_ref().unwrap().store.clone();
    let config = AlertingConfig { rule_sources: vec![RuleSource::File(rules.clone())], ..AlertingConfig::default() };
    let alerting = Arc::new(Alerting::new(config, series.clone(), None).unwrap());
    state.alerting = Some(alerting.clone());
    let store_dir = tempfile::tempdir().unwrap();
    state.store =
        Some(recserve_store::Store::open(&recserve_store::StoreConfig::sqlite_in(store_dir.path())).await.unwrap());
    let app = rest::router(state);

    let now = recserve_telemetry::store::now_ms();
    let labels = LabelSet::from_pairs([
        ("__name__".to_string(), "test_queue_depth".to_string()),
        ("model".into(), "mlp".into()),
    ]);
    series.append(&[(labels, now, 9.0)]);
    alerting.evaluate_at(now);

    let (status, body) = call(&app, "GET", "/api/v1/alerts", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "success");
    let alerts = body["data"]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{body}");
    assert_eq!(alerts[0]["labels"]["alertname"], "QueueTooDeep");
    assert_eq!(alerts[0]["state"], "firing", "no `for`: fires at once");
    assert_eq!(alerts[0]["annotations"]["summary"], "queue of mlp is 9");

    let (status, body) = call(&app, "GET", "/api/v1/rules", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let rule = &body["data"]["groups"][0]["rules"][0];
    assert_eq!(rule["name"], "QueueTooDeep");
    assert_eq!(rule["health"], "ok");

    // A broken file is refused with its line; the rules in use stay.
    std::fs::write(&rules, RULES.replace("expr: test_queue_depth > 5", "expr: test_queue_depth >")).unwrap();
    let (status, body) = call(&app, "POST", "/api/v1/rules/reload", Value::Null).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("rules.yml:6:"), "the error names the line: {error}");
    let (_, body) = call(&app, "GET", "/api/v1/rules", Value::Null).await;
    assert_eq!(body["data"]["groups"][0]["rules"][0]["name"], "QueueTooDeep");
    std::fs::write(&rules, RULES.replace("QueueTooDeep", "QueueDeep")).unwrap();
    let (status, body) = call(&app, "POST", "/-/reload", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["rules"], 1);
    let (_, body) = call(&app, "GET", "/api/v1/rules", Value::Null).await;
    assert_eq!(body["data"]["groups"][0]["rules"][0]["name"], "QueueDeep");

    // Silences, in Alertmanager's API v2 shapes.
    let start = chrono::Utc::now();
    let silence = json!({
        "matchers": [{"name": "alertname", "value": "QueueDeep", "isRegex": false, "isEqual": true}],
        "startsAt": start.to_rfc3339(),
        "endsAt": (start + chrono::Duration::hours(1)).to_rfc3339(),
        "createdBy": "oncall",
        "comment": "known, fixing",
    });
    let (status, body) = call(&app, "POST", "/api/v2/silences", silence.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["silenceID"].as_str().unwrap().to_string();
    let (status, body) = call(&app, "GET", &format!("/api/v2/silence/{id}"), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"]["state"], "active");
    assert_eq!(body["createdBy"], "oncall");
    let (_, list) = call(&app, "GET", "/api/v2/silences", Value::Null).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, _) = call(&app, "DELETE", &format!("/api/v2/silence/{id}"), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = call(&app, "GET", &format!("/api/v2/silence/{id}"), Value::Null).await;
    assert_eq!(body["status"]["state"], "expired");
    let (status, body) = call(&app, "DELETE", "/api/v2/silence/nope", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let mut bad = silence.clone();
    bad["endsAt"] = json!((start - chrono::Duration::hours(1)).to_rfc3339());
    let (status, body) = call(&app, "POST", "/api/v2/silences", bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(&app, "POST", "/api/v2/silences", json!({"matchers": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("invalid silence"), "{body}");

    let (status, body) = call(&app, "GET", "/api/v1/notifications", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["data"]["log"].is_array());

    // Every control-plane action is in the audit trail, newest first.
    let (status, body) = call(&app, "GET", "/api/v1/audit", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let trail: Vec<(String, String)> = body["data"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["action"].as_str().unwrap().to_string(), r["outcome"].as_str().unwrap().to_string()))
        .collect();
    let want = [("silence.expire", "ok"), ("silence.create", "ok"), ("rules.reload", "ok"), ("rules.reload", "failed")];
    let want: Vec<(String, String)> = want.iter().map(|(a, o)| (a.to_string(), o.to_string())).collect();
    assert_eq!(trail, want, "{body}");
    let (_, body) = call(&app, "GET", "/api/v1/audit?action=silence.", Value::Null).await;
    assert_eq!(body["data"]["records"].as_array().unwrap().len(), 2);
    let (status, body) = call(&app, "GET", "/api/v1/audit?outcome=maybe", Value::Null).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("outcome"));
}

#[tokio::test]
async fn without_alerting_the_endpoints_say_so() {
    let repo = repository_with(&["mlp"]);
    let app = rest::router(AppState::new(loaded_registry(repo.path()).await));
    let (status, body) = call(&app, "GET", "/api/v1/alerts", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("alerting is off"));
}
