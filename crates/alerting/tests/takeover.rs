//! A fleet's evaluator hand-over: the replica that takes over continues from what the previous
//! evaluator saved (firing alerts keep their start, what was notified is not notified again,
//! new alerts are notified), and a follower's API shows the evaluator's alerts.

use std::sync::Arc;

use recserve_alerting::{AlertState, Alerting, AlertingConfig, JsonFilePersistence};

use crate::{T, embedded, set_errors, store};

const RULES: &str = r#"
groups:
  - name: g
    interval: 15s
    rules:
      - alert: TooManyErrors
        expr: errors > 5
        for: 1m
"#;

#[test]
fn the_next_evaluator_neither_repeats_nor_loses_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let persistence = Arc::new(JsonFilePersistence::new(dir.path()).unwrap());
    let s = store();
    let config = AlertingConfig { rule_sources: vec![embedded(RULES)], ..AlertingConfig::default() };
    let (wait, interval) = (config.route.group_wait_ms as i64, config.route.group_interval_ms as i64);
    let a = Alerting::new(config.clone(), s.clone(), Some(persistence.clone())).unwrap();
    let b = Alerting::new(config, s.clone(), Some(persistence)).unwrap();
    assert!(b.set_evaluating(false), "b follows");
    assert!(!b.set_evaluating(false), "no change the second time");
    assert!(a.is_evaluating() && !b.is_evaluating());

    set_errors(&s, "ranker", T, 10.0);
    a.evaluate_at(T);
    a.evaluate_at(T + 60_000);
    let sent = a.flush_at(T + 60_000 + wait);
    assert_eq!(sent.len(), 1, "the evaluator notifies the firing alert");

    // The follower shows the evaluator's alerts once it reads them.
    assert!(b.alerts().alerts.is_empty());
    b.follow();
    let seen = b.alerts();
    assert_eq!(seen.alerts.len(), 1);
    assert_eq!(seen.alerts[0].state, AlertState::Firing);
    assert_eq!(seen.alerts[0].active_at, recserve_alerting::time::rfc3339(T));

    // `a` dies; `b` takes over. The alert is still firing: it is re-sent to Alertmanagers
    // (which deduplicate) but the webhook group, already notified, is not notified again.
    assert!(b.set_evaluating(true));
    set_errors(&s, "ranker", T + 70_000, 11.0);
    let out = b.evaluate_at(T + 75_000);
    assert_eq!(out.to_send.len(), 1);
    assert_eq!(out.to_send[0].starts_at, T + 60_000, "the firing alert keeps its start");
    assert!(b.flush_at(T + 75_000 + wait).is_empty(), "no second notification after the hand-over");

    // A new alert after the hand-over is notified.
    set_errors(&s, "ranker", T + 90_000, 11.0);
    set_errors(&s, "tower", T + 90_000, 9.0);
    b.evaluate_at(T + 90_000);
    set_errors(&s, "ranker", T + 150_000, 11.0);
    set_errors(&s, "tower", T + 150_000, 9.0);
    b.evaluate_at(T + 150_000);
    // The group is updated at its next interval after the hand-over flush.
    let at = T + 75_000 + wait + interval;
    set_errors(&s, "ranker", at, 11.0);
    set_errors(&s, "tower", at, 9.0);
    b.evaluate_at(at);
    let sent = b.flush_at(at);
    assert_eq!(sent.len(), 1);
    let models: Vec<&str> = sent[0].alerts.iter().filter_map(|a| a.labels.get("model").map(String::as_str)).collect();
    assert!(models.contains(&"tower"), "the new alert is in the notification: {models:?}");
}

#[test]
fn a_follower_does_not_evaluate_or_overwrite_the_saved_state() {
    let dir = tempfile::tempdir().unwrap();
    let persistence = Arc::new(JsonFilePersistence::new(dir.path()).unwrap());
    let s = store();
    let config = AlertingConfig { rule_sources: vec![embedded(RULES)], ..AlertingConfig::default() };
    let a = Alerting::new(config.clone(), s.clone(), Some(persistence.clone())).unwrap();
    set_errors(&s, "ranker", T, 10.0);
    a.evaluate_at(T);
    a.evaluate_at(T + 60_000);
    let saved = std::fs::read(dir.path().join("alerts.json")).unwrap();

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let b = Alerting::new(config, s.clone(), Some(persistence)).unwrap();
        b.set_evaluating(false);
        let tasks = b.start();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        tasks.shutdown().await;
    });
    assert_eq!(
        std::fs::read(dir.path().join("alerts.json")).unwrap(),
        saved,
        "a follower leaves the saved state alone"
    );
}
