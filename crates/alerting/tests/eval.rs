use std::sync::Arc;

use recserve_alerting::eval::RuleView;
use recserve_alerting::{AlertState, Alerting, AlertingConfig, EvalConfig, Evaluator, JsonFilePersistence, RuleHealth};
use recserve_telemetry::promql::{Value, instant_query};
use recserve_telemetry::{LabelSet, SeriesStore};

use crate::{T, embedded, ls, rule_files, set_errors, store};

const RULES: &str = r#"
groups:
  - name: g
    interval: 15s
    rules:
      - alert: TooManyErrors
        expr: errors > 5
        for: 1m
        labels:
          severity: critical
          team: "{{ $labels.model }}-team"
        annotations:
          summary: "{{ $labels.model }} has {{ $value }} errors"
"#;

fn query(store: &SeriesStore, q: &str, t: i64) -> Vec<(LabelSet, f64)> {
    match instant_query(store, q, t).unwrap() {
        Value::Vector(v) => {
            let mut v: Vec<(LabelSet, f64)> = v.into_iter().map(|s| (s.labels, s.value)).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn inactive_pending_firing_resolved() {
    let s = store();
    let mut ev = Evaluator::new(rule_files(RULES), s.clone(), EvalConfig::default());
    set_errors(&s, "ranker", T, 10.0);
    set_errors(&s, "tower", T, 1.0);

    let out = ev.evaluate_at(T);
    assert!(out.to_send.is_empty(), "pending alerts are not sent");
    let alerts = ev.alerts(false);
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0].1;
    assert_eq!(a.state, AlertState::Pending);
    assert_eq!(a.active_at, T);
    assert_eq!(a.labels.get("alertname").unwrap(), "TooManyErrors");
    assert_eq!(a.labels.get("team").unwrap(), "ranker-team");
    assert_eq!(a.labels.get("severity").unwrap(), "critical");
    assert!(!a.labels.contains_key("__name__"));
    assert_eq!(a.annotations.get("summary").unwrap(), "ranker has 10 errors");
    let pending = query(&s, "ALERTS", T);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].0.get("alertstate"), Some("pending"));
    assert_eq!(query(&s, "ALERTS_FOR_STATE", T)[0].1, (T / 1000) as f64);

    // Not due before the interval.
    assert_eq!(ev.evaluate_at(T + 10_000).groups_evaluated, 0);
    set_errors(&s, "ranker", T + 30_000, 12.0);
    ev.evaluate_at(T + 45_000);
    assert_eq!(ev.alerts(false)[0].1.state, AlertState::Pending);
    assert_eq!(ev.alerts(false)[0].1.annotations["summary"], "ranker has 12 errors");

    let out = ev.evaluate_at(T + 60_000);
    assert_eq!(ev.alerts(false)[0].1.state, AlertState::Firing);
    assert_eq!(out.to_send.len(), 1);
    let sent = &out.to_send[0];
    assert_eq!(sent.starts_at, T + 60_000, "startsAt is when it fired");
    assert_eq!(sent.ends_at, Some(T + 60_000 + 4 * 60_000), "valid for 4 resend delays");
    assert!(sent.generator_url.contains("/graph?g0.expr=errors+%3E+5"), "{}", sent.generator_url);
    let firing = query(&s, "ALERTS{alertstate=\"firing\"}", T + 60_000);
    assert_eq!(firing.len(), 1);
    assert!(query(&s, "ALERTS{alertstate=\"pending\"}", T + 60_000).is_empty());

    // Unchanged: re-sent only after the resend delay.
    assert!(ev.evaluate_at(T + 75_000).to_send.is_empty());
    assert_eq!(ev.evaluate_at(T + 135_000).to_send.len(), 1);

    // The condition clears: resolved, sent once with endsAt, ALERTS goes stale.
    set_errors(&s, "ranker", T + 140_000, 1.0);
    let out = ev.evaluate_at(T + 150_000);
    assert_eq!(out.to_send.len(), 1);
    assert_eq!(out.to_send[0].ends_at, Some(T + 150_000));
    assert!(ev.alerts(false).is_empty());
    assert_eq!(ev.alerts(true)[0].1.state, AlertState::Inactive);
    assert!(query(&s, "ALERTS", T + 150_000).is_empty());
    // Resolved alerts are re-sent for 15 minutes, then forgotten.
    assert_eq!(ev.evaluate_at(T + 225_000).to_send.len(), 1);
    ev.evaluate_at(T + 150_000 + 15 * 60_000 + 15_000);
    assert!(ev.alerts(true).is_empty());
}

#[test]
fn a_pending_alert_that_disappears_is_dropped_unsent() {
    let s = store();
    let mut ev = Evaluator::new(rule_files(RULES), s.clone(), EvalConfig::default());
    set_errors(&s, "ranker", T, 10.0);
    ev.evaluate_at(T);
    set_errors(&s, "ranker", T + 10_000, 0.0);
    let out = ev.evaluate_at(T + 15_000);
    assert!(out.to_send.is_empty());
    assert!(ev.alerts(true).is_empty());
    // It starts over when it comes back.
    set_errors(&s, "ranker", T + 20_000, 9.0);
    ev.evaluate_at(T + 30_000);
    assert_eq!(ev.alerts(false)[0].1.active_at, T + 30_000);
}

#[test]
fn keep_firing_for_holds_the_alert() {
    let rules = r#"
groups:
  - name: g
    interval: 15s
    rules:
      - alert: Flappy
        expr: errors > 5
        keep_firing_for: 1m
"#;
    let s = store();
    let mut ev = Evaluator::new(rule_files(rules), s.clone(), EvalConfig::default());
    set_errors(&s, "m", T, 10.0);
    let out = ev.evaluate_at(T);
    assert_eq!(ev.alerts(false)[0].1.state, AlertState::Firing, "no `for`: fires at once");
    assert_eq!(out.to_send.len(), 1);
    set_errors(&s, "m", T + 10_000, 0.0);
    ev.evaluate_at(T + 15_000);
    let a = &ev.alerts(false)[0].1;
    assert_eq!((a.state, a.keep_firing_since), (AlertState::Firing, Some(T + 15_000)));
    assert_eq!(query(&s, "ALERTS{alertstate=\"firing\"}", T + 15_000).len(), 1);
    ev.evaluate_at(T + 60_000);
    assert_eq!(ev.alerts(false)[0].1.state, AlertState::Firing);
    // Back within the window: the hold resets.
    set_errors(&s, "m", T + 65_000, 10.0);
    ev.evaluate_at(T + 75_000);
    assert_eq!(ev.alerts(false)[0].1.keep_firing_since, None);
    set_errors(&s, "m", T + 80_000, 0.0);
    ev.evaluate_at(T + 90_000);
    ev.evaluate_at(T + 135_000);
    assert_eq!(ev.alerts(false)[0].1.state, AlertState::Firing);
    let out = ev.evaluate_at(T + 150_000);
    assert!(ev.alerts(false).is_empty(), "resolved once keep_firing_for elapsed");
    assert_eq!(out.to_send[0].ends_at, Some(T + 150_000));
}

#[test]
fn template_errors_set_rule_health() {
    let rules = r#"
groups:
  - name: g
    rules:
      - alert: Bad
        expr: errors > 5
        annotations:
          summary: "{{ $labels.model | humanize }}"
"#;
    let s = store();
    let mut ev = Evaluator::new(rule_files(rules), s.clone(), EvalConfig::default());
    set_errors(&s, "ranker", T, 10.0);
    ev.evaluate_at(T);
    let a = &ev.alerts(false)[0].1;
    assert_eq!(a.state, AlertState::Firing, "the alert still fires");
    assert!(a.annotations["summary"].contains("error expanding template"), "{:?}", a.annotations);
    let view = ev.rules_view();
    let RuleView::Alerting(r) = &view.groups[0].rules[0] else { panic!() };
    assert_eq!(r.common.health, RuleHealth::Err);
    assert!(r.common.last_error.contains("error calling humanize"), "{}", r.common.last_error);
}

#[test]
fn query_errors_and_duplicate_labelsets_are_rule_errors() {
    let rules = r#"
groups:
  - name: g
    rules:
      - alert: Dup
        expr: errors > 5
        labels:
          model: same
      - alert: Fine
        expr: vector(1)
"#;
    let s = store();
    let mut ev = Evaluator::new(rule_files(rules), s.clone(), EvalConfig::default());
    set_errors(&s, "a", T, 10.0);
    set_errors(&s, "b", T, 10.0);
    ev.evaluate_at(T);
    let view = ev.rules_view();
    let json = serde_json::to_value(&view).unwrap();
    let rules = &json["groups"][0]["rules"];
    assert_eq!(rules[0]["health"], "err");
    assert!(rules[0]["lastError"].as_str().unwrap().contains("same labelset"));
    assert_eq!(rules[1]["health"], "ok");
    assert_eq!(rules[1]["state"], "firing");
    assert_eq!(rules[1]["type"], "alerting");
    assert_eq!(rules[1]["alerts"][0]["labels"]["alertname"], "Fine");
    assert_eq!(rules[1]["alerts"][0]["value"], "1e+00");
    assert_eq!(json["groups"][0]["interval"], 15.0);
}

#[test]
fn recording_rules_write_series_that_later_rules_see() {
    let rules = r#"
groups:
  - name: g
    interval: 10s
    rules:
      - record: model:errors:sum
        expr: sum by (model) (errors)
        labels:
          source: rule
      - alert: FromRecord
        expr: model:errors:sum > 15
"#;
    let s = store();
    let mut ev = Evaluator::new(rule_files(rules), s.clone(), EvalConfig::default());
    s.append(&[
        (ls(&[("__name__", "errors"), ("model", "a"), ("pod", "1")]), T, 10.0),
        (ls(&[("__name__", "errors"), ("model", "a"), ("pod", "2")]), T, 7.0),
    ]);
    ev.evaluate_at(T);
    let rec = query(&s, "model:errors:sum", T);
    assert_eq!(rec, vec![(ls(&[("__name__", "model:errors:sum"), ("model", "a"), ("source", "rule")]), 17.0)]);
    assert_eq!(ev.alerts(false).len(), 1);
    assert_eq!(ev.alerts(false)[0].1.labels["source"], "rule");
}

#[test]
fn reload_keeps_state_of_rules_that_still_exist() {
    let s = store();
    let mut ev = Evaluator::new(rule_files(RULES), s.clone(), EvalConfig::default());
    set_errors(&s, "ranker", T, 10.0);
    ev.evaluate_at(T);
    let more = format!("{RULES}      - alert: Other\n        expr: errors > 100\n");
    ev.reload(rule_files(&more));
    let a = &ev.alerts(false)[0].1;
    assert_eq!((a.state, a.active_at), (AlertState::Pending, T), "state carried over");
    ev.evaluate_at(T + 60_000);
    assert_eq!(ev.alerts(false)[0].1.state, AlertState::Firing);
    assert_eq!(ev.rules_view().groups[0].rules.len(), 2);
    // Removing the rule ends its ALERTS series at once.
    ev.reload(rule_files("groups:\n  - name: g\n    rules:\n      - alert: Other\n        expr: errors > 100\n"));
    assert!(ev.alerts(true).is_empty());
    assert!(query(&s, "ALERTS", T + 60_001).is_empty());
    assert_eq!(query(&s, "ALERTS", T + 60_000).len(), 1);
}

#[test]
fn a_restart_keeps_firing_alerts_and_their_active_at() {
    let dir = tempfile::tempdir().unwrap();
    let s = store();
    let config = AlertingConfig { rule_sources: vec![embedded(RULES)], ..AlertingConfig::default() };
    let persistence = Arc::new(JsonFilePersistence::new(dir.path()).unwrap());
    {
        let alerting = Alerting::new(config.clone(), s.clone(), Some(persistence.clone())).unwrap();
        set_errors(&s, "ranker", T, 10.0);
        alerting.evaluate_at(T);
        alerting.evaluate_at(T + 60_000);
        assert_eq!(alerting.alerts().alerts[0].state, AlertState::Firing);
    }
    assert!(dir.path().join("alerts.json").exists());
    let alerting = Alerting::new(config, s.clone(), Some(persistence)).unwrap();
    let before = alerting.alerts();
    assert_eq!(before.alerts.len(), 1);
    assert_eq!(before.alerts[0].state, AlertState::Firing);
    assert_eq!(before.alerts[0].active_at, recserve_alerting::time::rfc3339(T));
    // The restored alert is re-sent at the next evaluation and keeps its activeAt.
    set_errors(&s, "ranker", T + 70_000, 11.0);
    let out = alerting.evaluate_at(T + 75_000);
    assert_eq!(out.to_send.len(), 1);
    assert_eq!(out.to_send[0].starts_at, T + 60_000);
    let after = alerting.alerts();
    assert_eq!(
        (after.alerts[0].state, after.alerts[0].active_at.as_str()),
        (AlertState::Firing, before.alerts[0].active_at.as_str())
    );
}

#[test]
fn file_changes_are_picked_up_and_bad_files_keep_the_old_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.yml");
    std::fs::write(&path, RULES).unwrap();
    let config = AlertingConfig {
        rule_sources: vec![recserve_alerting::RuleSource::File(path.clone())],
        ..AlertingConfig::default()
    };
    let alerting = Alerting::new(config, store(), None).unwrap();
    assert!(alerting.reload_if_changed().is_none());
    std::fs::write(&path, format!("{RULES}      - alert: Second\n        expr: errors > 1\n")).unwrap();
    // Make sure the modification time differs even on coarse clocks.
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
    let outcome = alerting.reload_if_changed().unwrap().unwrap();
    assert_eq!((outcome.groups, outcome.rules), (1, 2));
    std::fs::write(&path, "groups:\n  - name: g\n    rules:\n      - alert: X\n").unwrap();
    let err = alerting.reload().unwrap_err();
    assert!(err.to_string().contains("r.yml:4:7: field 'expr' must be set"), "{err}");
    assert_eq!(alerting.rules().groups[0].rules.len(), 2, "old rules kept");
    assert_eq!(alerting.last_reload_error().unwrap().len(), 1);
}

/// Remembers the alerts it was asked to act on.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<recserve_alerting::Alert>>);

impl recserve_alerting::Remediation for Recorder {
    fn on_fired(&self, alert: &recserve_alerting::Alert) {
        self.0.lock().unwrap().push(alert.clone());
    }
}

const ACTION_RULES: &str = r#"
groups:
  - name: g
    interval: 15s
    rules:
      - alert: BadCanary
        expr: errors > 5
        for: 30s
        labels:
          recserve_action: rollback
      - alert: JustTelling
        expr: errors > 5
"#;

#[test]
fn alerts_with_an_action_label_reach_the_remediation_once_per_firing_episode() {
    // Silences start no earlier than the wall clock, so this timeline starts now.
    let t0 = recserve_alerting::time::now_ms();
    let dir = tempfile::tempdir().unwrap();
    let s = store();
    let config = AlertingConfig { rule_sources: vec![embedded(ACTION_RULES)], ..AlertingConfig::default() };
    let persistence = Arc::new(JsonFilePersistence::new(dir.path()).unwrap());
    let recorder = Arc::new(Recorder::default());
    {
        let alerting = Alerting::new(config.clone(), s.clone(), Some(persistence.clone())).unwrap();
        alerting.set_remediation(recorder.clone());
        set_errors(&s, "ranker", t0, 10.0);
        alerting.evaluate_at(t0);
        assert!(recorder.0.lock().unwrap().is_empty(), "pending alerts do not act");
        alerting.evaluate_at(t0 + 30_000);
        alerting.evaluate_at(t0 + 45_000);
        let acted = recorder.0.lock().unwrap().clone();
        assert_eq!(acted.len(), 1, "once, although it keeps firing: {acted:?}");
        assert_eq!(acted[0].labels["alertname"], "BadCanary");
        assert_eq!(acted[0].labels["model"], "ranker");
        assert_eq!(acted[0].labels["recserve_action"], "rollback");
    }
    // A restart restores the firing alert without acting again.
    let alerting = Alerting::new(config, s.clone(), Some(persistence)).unwrap();
    alerting.set_remediation(recorder.clone());
    set_errors(&s, "ranker", t0 + 50_000, 10.0);
    alerting.evaluate_at(t0 + 60_000);
    assert_eq!(recorder.0.lock().unwrap().len(), 1);
    // Resolved, then firing again: a new episode acts again.
    set_errors(&s, "ranker", t0 + 70_000, 0.0);
    alerting.evaluate_at(t0 + 75_000);
    set_errors(&s, "ranker", t0 + 80_000, 9.0);
    alerting.evaluate_at(t0 + 90_000);
    alerting.evaluate_at(t0 + 120_000);
    assert_eq!(recorder.0.lock().unwrap().len(), 2);
    // A silenced alert does not act.
    alerting
        .add_silence(recserve_alerting::NewSilence {
            matchers: vec![recserve_alerting::Matcher {
                name: "alertname".into(),
                value: "BadCanary".into(),
                is_regex: false,
                is_equal: true,
            }],
            starts_at: t0,
            ends_at: t0 + 3_600_000,
            created_by: "test".into(),
            comment: "hold".into(),
        })
        .unwrap();
    set_errors(&s, "ranker", t0 + 130_000, 0.0);
    alerting.evaluate_at(t0 + 135_000);
    set_errors(&s, "ranker", t0 + 140_000, 9.0);
    alerting.evaluate_at(t0 + 150_000);
    alerting.evaluate_at(t0 + 180_000);
    assert_eq!(recorder.0.lock().unwrap().len(), 2, "silenced");
}
