//! End to end with a real Alertmanager (started by scripts/services/alertmanager.sh).

use std::sync::Arc;
use std::time::Duration;

use recserve_alerting::time::now_ms;
use recserve_alerting::{Alerting, AlertingConfig, EvalConfig, Matcher, NewSilence};
use serde_json::Value;

use crate::webhook::{Receiver, serve, wait_for};
use crate::{embedded, ls, store};

fn alertmanager() -> Option<(String, u16)> {
    let url = std::env::var("RECSERVE_TEST_ALERTMANAGER_URL").ok().filter(|u| !u.is_empty());
    let port = std::env::var("RECSERVE_TEST_ALERTMANAGER_WEBHOOK_PORT").ok().and_then(|p| p.parse().ok());
    match (url, port) {
        (Some(u), Some(p)) => Some((u, p)),
        _ => {
            assert!(
                std::env::var("RECSERVE_REQUIRE_ALERTMANAGER").as_deref() != Ok("1"),
                "RECSERVE_REQUIRE_ALERTMANAGER=1 but RECSERVE_TEST_ALERTMANAGER_URL / _WEBHOOK_PORT are not set"
            );
            println!("skipping: no Alertmanager (source scripts/services/alertmanager.sh to run this test)");
            None
        }
    }
}

async fn am_alerts(client: &reqwest::Client, am: &str, run: &str) -> Vec<Value> {
    let filter = recserve_alerting::eval::query_escape(&format!("run=\"{run}\""));
    let resp = client.get(format!("{am}/api/v2/alerts?filter={filter}")).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json::<Vec<Value>>().await.unwrap()
}

fn names(payloads: &[Value], status: &str) -> Vec<String> {
    payloads
        .iter()
        .flat_map(|p| p["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["status"] == status)
        .map(|a| a["labels"]["alertname"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_a_real_alertmanager_and_recserve_silences_mute_them() {
    let Some((am, hook_port)) = alertmanager() else { return };
    let run = format!("r{}", now_ms());
    let rules = format!(
        r#"
groups:
  - name: am-e2e
    interval: 1s
    rules:
      - alert: AmVisible
        expr: am_breach{{run="{run}"}} > 0
        annotations:
          summary: "visible {{{{ $labels.run }}}}"
      - alert: AmSilenced
        expr: am_breach{{run="{run}"}} > 0
"#
    );
    let receiver = Arc::new(Receiver::default());
    let server = serve(tokio::net::TcpListener::bind(("127.0.0.1", hook_port)).await.unwrap(), receiver.clone());
    let s = store();
    let config = AlertingConfig {
        rule_sources: vec![embedded(&rules)],
        eval: EvalConfig { external_url: "http://recserve.test".into(), ..EvalConfig::default() },
        alertmanagers: vec![am.clone()],
        eval_tick: Duration::from_millis(100),
        ..AlertingConfig::default()
    };
    let alerting = Alerting::new(config, s.clone(), None).unwrap();
    alerting
        .add_silence(NewSilence {
            matchers: vec![Matcher::equal("alertname", "AmSilenced")],
            starts_at: now_ms(),
            ends_at: now_ms() + 3_600_000,
            created_by: "test".into(),
            comment: "muted in recserve".into(),
        })
        .unwrap();
    let series = ls(&[("__name__", "am_breach"), ("run", &run)]);
    s.append(&[(series.clone(), now_ms(), 1.0)]);
    let tasks = alerting.start();

    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let listed = am_alerts(&client, &am, &run).await;
        if !listed.is_empty() {
            break listed;
        }
        assert!(tokio::time::Instant::now() < deadline, "Alertmanager never listed the alert");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let a = &listed[0];
    assert_eq!(a["labels"], serde_json::json!({"alertname": "AmVisible", "run": run}));
    assert_eq!(a["annotations"]["summary"], format!("visible {run}"));
    assert_eq!(a["status"]["state"], "active");
    assert!(a["generatorURL"].as_str().unwrap().starts_with("http://recserve.test/graph?g0.expr="));

    // Alertmanager's own webhook (group_wait 1 s) delivers the visible alert, never the silenced one.
    wait_for(20, "Alertmanager's webhook", || names(&receiver.payloads(), "firing").contains(&"AmVisible".to_string()))
        .await;
    // Resolve: recserve sends endsAt, Alertmanager notifies the resolution and stops listing it.
    s.append(&[(series, now_ms(), 0.0)]);
    wait_for(20, "the resolution through Alertmanager", || {
        names(&receiver.payloads(), "resolved").contains(&"AmVisible".to_string())
    })
    .await;
    assert!(am_alerts(&client, &am, &run).await.is_empty());
    let all = receiver.payloads();
    assert!(!names(&all, "firing").contains(&"AmSilenced".to_string()), "{all:#?}");
    assert!(!names(&all, "resolved").contains(&"AmSilenced".to_string()), "{all:#?}");
    let stats = &alerting.target_stats()[0];
    assert!(stats.sent >= 2 && stats.failed == 0, "{stats:?}");
    tasks.shutdown().await;
    server.abort();
}
