use std::collections::BTreeMap;

use recserve_alerting::notify::fingerprint;
use recserve_alerting::{Dispatcher, NotifyAlert, RouteConfig};
use recserve_telemetry::LabelSet;

use crate::{T, ls};

const S: i64 = 1000;
const M: i64 = 60 * S;

fn alert(name: &str, inst: &str, starts: i64, ends: Option<i64>) -> NotifyAlert {
    NotifyAlert {
        labels: ls(&[("alertname", name), ("instance", inst), ("severity", "page")]),
        annotations: BTreeMap::from([("summary".to_string(), format!("{inst} broke"))]),
        starts_at: starts,
        ends_at: ends,
        generator_url: "http://recserve/graph?g0.expr=up".into(),
    }
}

fn never(_: &LabelSet) -> bool {
    false
}

fn statuses(p: &recserve_alerting::WebhookPayload) -> Vec<(String, String)> {
    p.alerts.iter().map(|a| (a.labels["instance"].clone(), a.status.clone())).collect()
}

#[test]
fn group_wait_interval_resolution_and_repeat() {
    let mut d = Dispatcher::new(RouteConfig::default(), "http://recserve".into());
    d.put(&[alert("Down", "a", T, Some(T + 4 * M))], T);
    assert!(d.flush(T + 29 * S, &never).is_empty(), "group_wait not over");
    let p = d.flush(T + 30 * S, &never);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].status, "firing");
    assert_eq!(statuses(&p[0]), vec![("a".to_string(), "firing".to_string())]);
    assert_eq!(p[0].alerts[0].ends_at, "0001-01-01T00:00:00Z");
    assert_eq!(p[0].group_key, "{}:{alertname=\"Down\"}");

    // A second alert of the group waits for group_interval.
    d.put(&[alert("Down", "a", T, Some(T + 10 * M)), alert("Down", "b", T + M, Some(T + 10 * M))], T + M);
    assert!(d.flush(T + 5 * M, &never).is_empty());
    let p = d.flush(T + 5 * M + 30 * S, &never);
    assert_eq!(statuses(&p[0]), vec![("a".into(), "firing".into()), ("b".into(), "firing".into())]);
    assert_eq!(p[0].common_labels.get("instance"), None);
    assert_eq!(p[0].common_labels["severity"], "page");

    // Keep them alive; nothing changes → nothing sent.
    d.put(&[alert("Down", "a", T, Some(T + 20 * M)), alert("Down", "b", T + M, Some(T + 20 * M))], T + 6 * M);
    assert!(d.flush(T + 10 * M + 30 * S, &never).is_empty());

    // a resolves: sent with send_resolved, then leaves the group.
    d.put(&[alert("Down", "a", T, Some(T + 11 * M))], T + 11 * M);
    let p = d.flush(T + 15 * M + 30 * S, &never);
    assert_eq!(p[0].status, "firing");
    assert_eq!(statuses(&p[0]), vec![("a".into(), "resolved".into()), ("b".into(), "firing".into())]);
    assert_eq!(p[0].alerts[0].ends_at, recserve_alerting::time::rfc3339(T + 11 * M));

    // Repeat interval: an unchanged firing group is re-notified after 4 h.
    let long = Some(T + 10 * 60 * M);
    d.put(&[alert("Down", "b", T + M, long)], T + 16 * M);
    assert!(d.flush(T + 20 * M + 30 * S, &never).is_empty());
    let mut t = T + 20 * M + 30 * S;
    let mut repeats = Vec::new();
    while t < T + 5 * 60 * M {
        t += 5 * M;
        if !d.flush(t, &never).is_empty() {
            repeats.push(t);
        }
    }
    assert_eq!(repeats, vec![T + 15 * M + 30 * S + 4 * 60 * M], "one repeat, 4 h after the last notification");

    // Everything resolved: a resolved notification, then the group is gone.
    d.put(&[alert("Down", "b", T + M, Some(t + M))], t + M);
    let p = d.flush(t + 5 * M, &never);
    assert_eq!(p[0].status, "resolved");
    assert_eq!(d.group_count(), 0);
}

#[test]
fn groups_by_labels_and_old_alerts_skip_group_wait() {
    let route = RouteConfig { group_by: vec!["alertname".into(), "instance".into()], ..RouteConfig::default() };
    let mut d = Dispatcher::new(route, "http://recserve".into());
    d.put(&[alert("Down", "a", T, None), alert("Down", "b", T + 10 * S, None)], T + 10 * S);
    assert_eq!(d.group_count(), 2);
    // "a" started 10 s ago: still waits; an alert older than group_wait is flushed at once.
    d.put(&[alert("Old", "c", T - 10 * M, None)], T + 10 * S);
    let p = d.flush(T + 10 * S, &never);
    assert_eq!(p.len(), 1);
    assert_eq!(
        p[0].group_labels,
        BTreeMap::from([("alertname".into(), "Old".into()), ("instance".into(), "c".into())])
    );
    assert_eq!(d.flush(T + 40 * S, &never).len(), 2);
}

#[test]
fn silenced_alerts_are_left_out_and_send_resolved_false_hides_resolutions() {
    let route = RouteConfig { send_resolved: false, group_wait_ms: 0, ..RouteConfig::default() };
    let mut d = Dispatcher::new(route, "http://recserve".into());
    let muted = |l: &LabelSet| l.get("instance") == Some("b");
    d.put(&[alert("Down", "a", T, None), alert("Down", "b", T, None)], T);
    let p = d.flush(T, &muted);
    assert_eq!(statuses(&p[0]), vec![("a".into(), "firing".into())]);
    // Only the silenced alert changes: nothing.
    d.put(&[alert("Down", "b", T, Some(T + M))], T + M);
    assert!(d.flush(T + 5 * M, &muted).is_empty());
    // a resolves: without send_resolved nothing is sent, and the group empties.
    d.put(&[alert("Down", "a", T, Some(T + 6 * M))], T + 6 * M);
    assert!(d.flush(T + 10 * M, &muted).is_empty());
    assert_eq!(d.group_count(), 0);
}

#[test]
fn payload_has_the_webhook_v4_fields() {
    let mut d = Dispatcher::new(RouteConfig { group_wait_ms: 0, ..RouteConfig::default() }, "http://rs:8000".into());
    d.put(&[alert("Down", "a", T, None)], T);
    let p = d.flush(T, &never).remove(0);
    let v = serde_json::to_value(&p).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "alerts",
            "commonAnnotations",
            "commonLabels",
            "externalURL",
            "groupKey",
            "groupLabels",
            "receiver",
            "status",
            "truncatedAlerts",
            "version"
        ]
    );
    assert_eq!(v["version"], "4");
    assert_eq!(v["externalURL"], "http://rs:8000");
    let mut akeys: Vec<&str> = v["alerts"][0].as_object().unwrap().keys().map(String::as_str).collect();
    akeys.sort();
    assert_eq!(akeys, ["annotations", "endsAt", "fingerprint", "generatorURL", "labels", "startsAt", "status"]);
    assert_eq!(v["alerts"][0]["startsAt"], "2023-11-14T22:13:20Z");
    assert_eq!(v["alerts"][0]["fingerprint"].as_str().unwrap().len(), 16);
}

#[test]
fn fingerprint_matches_prometheus() {
    // The empty label set hashes to the FNV-1a offset basis, as in Prometheus's common/model.
    assert_eq!(fingerprint(&LabelSet::new()), 0xcbf2_9ce4_8422_2325);
    let a = fingerprint(&ls(&[("a", "b")]));
    let b = fingerprint(&ls(&[("a", "c")]));
    assert_ne!(a, b);
    assert_eq!(a, fingerprint(&ls(&[("a", "b")])));
}
