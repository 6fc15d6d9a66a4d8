//! End to end: real HTTP deliveries to a local webhook receiver that fails or is not there.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use recserve_alerting::delivery::RetryConfig;
use recserve_alerting::time::now_ms;
use recserve_alerting::{Alerting, AlertingConfig, EvalConfig, RouteConfig};
use recserve_telemetry::SeriesStore;
use serde_json::Value;

use crate::{embedded, ls, store};

/// A webhook receiver that answers 503 to its first `fail_first` requests.
#[derive(Default)]
pub struct Receiver {
    pub fail_first: AtomicUsize,
    pub attempts: AtomicUsize,
    pub received: Mutex<Vec<Value>>,
}

impl Receiver {
    pub fn payloads(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

async fn hook(State(r): State<Arc<Receiver>>, body: axum::Json<Value>) -> StatusCode {
    let n = r.attempts.fetch_add(1, Ordering::SeqCst);
    if n < r.fail_first.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    r.received.lock().unwrap().push(body.0);
    StatusCode::OK
}

/// Serves `receiver` on `listener` at `/hook`.
pub fn serve(listener: tokio::net::TcpListener, receiver: Arc<Receiver>) -> tokio::task::JoinHandle<()> {
    let app = Router::new().route("/hook", post(hook)).with_state(receiver);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

/// Waits up to `secs` for `cond`.
pub async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const RULES: &str = r#"
groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: Breach
        expr: breach > 0
        labels:
          severity: page
        annotations:
          summary: "breach of {{ $labels.model }} at {{ $value }}"
"#;

fn fast_config(url: String) -> AlertingConfig {
    AlertingConfig {
        rule_sources: vec![embedded(RULES)],
        eval: EvalConfig { external_url: "http://recserve.test".into(), ..EvalConfig::default() },
        route: RouteConfig { group_wait_ms: 100, group_interval_ms: 300, ..RouteConfig::default() },
        webhooks: vec![url],
        retry: RetryConfig {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            attempt_timeout: Duration::from_secs(2),
        },
        eval_tick: Duration::from_millis(100),
        dispatch_tick: Duration::from_millis(50),
        ..AlertingConfig::default()
    }
}

fn breach(s: &SeriesStore, v: f64) {
    s.append(&[(ls(&[("__name__", "breach"), ("model", "ranker")]), now_ms(), v)]);
}

fn check_firing_then_resolved(payloads: &[Value]) {
    assert_eq!(payloads.len(), 2, "{payloads:#?}");
    let (f, r) = (&payloads[0], &payloads[1]);
    for p in [f, r] {
        assert_eq!(p["version"], "4");
        assert_eq!(p["receiver"], "recserve");
        assert_eq!(p["groupKey"], "{}:{alertname=\"Breach\"}");
        assert_eq!(p["groupLabels"], serde_json::json!({"alertname": "Breach"}));
        assert_eq!(p["externalURL"], "http://recserve.test");
        assert_eq!(p["truncatedAlerts"], 0);
        assert_eq!(p["commonLabels"]["severity"], "page");
        assert_eq!(p["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(
            p["alerts"][0]["labels"],
            serde_json::json!({"alertname": "Breach", "model": "ranker", "severity": "page"})
        );
        assert!(
            p["alerts"][0]["generatorURL"].as_str().unwrap().starts_with("http://recserve.test/graph?g0.expr=breach")
        );
    }
    assert_eq!(f["status"], "firing");
    assert_eq!(f["alerts"][0]["status"], "firing");
    assert_eq!(f["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(f["alerts"][0]["annotations"]["summary"], "breach of ranker at 1");
    assert_eq!(f["commonAnnotations"]["summary"], "breach of ranker at 1");
    assert_eq!(r["status"], "resolved");
    assert_eq!(r["alerts"][0]["status"], "resolved");
    assert_ne!(r["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(r["alerts"][0]["startsAt"], f["alerts"][0]["startsAt"]);
    assert_eq!(r["alerts"][0]["fingerprint"], f["alerts"][0]["fingerprint"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_503_gets_everything_once_it_recovers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let receiver = Arc::new(Receiver { fail_first: AtomicUsize::new(3), ..Receiver::default() });
    let server = serve(listener, receiver.clone());
    let s = store();
    let alerting = Alerting::new(fast_config(url), s.clone(), None).unwrap();
    breach(&s, 1.0);
    let tasks = alerting.start();
    wait_for(15, "the firing notification", || receiver.payloads().len() == 1).await;
    breach(&s, 0.0);
    wait_for(15, "the resolved notification", || receiver.payloads().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    check_firing_then_resolved(&receiver.payloads());
    assert_eq!(receiver.attempts.load(Ordering::SeqCst), 5);

    let log = alerting.notification_log();
    let outcomes: Vec<(&str, &str, u32)> =
        log.iter().map(|e| (e.outcome.as_str(), e.status.as_str(), e.attempt)).collect();
    assert_eq!(
        outcomes,
        vec![
            ("failed", "firing", 1),
            ("failed", "firing", 2),
            ("failed", "firing", 3),
            ("sent", "firing", 4),
            ("sent", "resolved", 1)
        ]
    );
    assert!(log[0].error.as_deref().unwrap().contains("503"), "{:?}", log[0].error);
    assert_eq!(log[0].group_key, "{}:{alertname=\"Breach\"}");
    let stats = &alerting.target_stats()[0];
    assert_eq!((stats.sent, stats.failed, stats.dropped, stats.queued), (2, 3, 0, 0));
    tasks.shutdown().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_for_a_while_loses_nothing() {
    // A port with nothing listening on it (yet).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let s = store();
    let alerting = Alerting::new(fast_config(url), s.clone(), None).unwrap();
    breach(&s, 1.0);
    let tasks = alerting.start();
    wait_for(15, "failed attempts", || {
        alerting.notification_log().iter().filter(|e| e.outcome == "failed").count() >= 3
    })
    .await;
    // The condition clears while the receiver is still down: both notifications queue up.
    breach(&s, 0.0);
    wait_for(15, "the resolution to queue", || alerting.target_stats()[0].queued == 2).await;
    let receiver = Arc::new(Receiver::default());
    let server = serve(tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap(), receiver.clone());
    wait_for(15, "both notifications", || receiver.payloads().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    check_firing_then_resolved(&receiver.payloads());
    let stats = &alerting.target_stats()[0];
    assert_eq!((stats.sent, stats.queued), (2, 0));
    assert!(stats.failed >= 3);
    assert!(
        alerting
            .notification_log()
            .iter()
            .any(|e| e.error.as_deref().is_some_and(|m| m.contains("POST http://127.0.0.1")))
    );
    tasks.shutdown().await;
    server.abort();
}
