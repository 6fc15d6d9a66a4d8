use std::sync::Arc;

use recserve_alerting::silence::SilenceState;
use recserve_alerting::{
    AlertStatePersistence, Alerting, AlertingConfig, JsonFilePersistence, Matcher, NewSilence, SilenceError, Silences,
};

use crate::{T, ls, store};

fn new(matchers: Vec<Matcher>, start: i64, end: i64) -> NewSilence {
    NewSilence { matchers, starts_at: start, ends_at: end, created_by: "ops".into(), comment: "deploy".into() }
}

#[test]
fn matchers_and_time_window() {
    let s = Silences::new();
    let neq = Matcher { name: "env".into(), value: "prod".into(), is_regex: false, is_equal: false };
    let nre = Matcher { name: "model".into(), value: "tower.*".into(), is_regex: true, is_equal: false };
    let a = s.add(new(vec![Matcher::equal("alertname", "Down"), neq.clone()], T, T + 3_600_000), T).unwrap();
    let b = s.add(new(vec![Matcher::regex("model", "rank.*"), nre], T + 60_000, T + 120_000), T).unwrap();
    let down_staging = ls(&[("alertname", "Down"), ("env", "staging")]);
    let down_prod = ls(&[("alertname", "Down"), ("env", "prod")]);
    assert_eq!(s.muting(&down_staging, T), vec![a.id.clone()]);
    assert!(s.muting(&down_prod, T).is_empty(), "!= excludes prod");
    let ranker = ls(&[("model", "ranker")]);
    assert!(s.muting(&ranker, T).is_empty(), "b is pending");
    assert_eq!(s.muting(&ranker, T + 60_000), vec![b.id.clone()]);
    assert!(s.muting(&ls(&[("model", "xranker")]), T + 60_000).is_empty(), "regexes are anchored");
    assert!(s.muting(&ranker, T + 120_000).is_empty(), "ended");
    let states: Vec<_> = s.list(T + 90_000).into_iter().map(|v| (v.silence.id, v.status.state)).collect();
    assert!(states.contains(&(a.id.clone(), SilenceState::Active)));
    assert!(states.contains(&(b.id.clone(), SilenceState::Active)));

    let expired = s.expire(&a.id, T + 100_000).unwrap();
    assert_eq!(expired.ends_at, T + 100_000);
    assert!(s.muting(&down_staging, T + 100_000).is_empty());
    assert_eq!(s.expire(&a.id, T + 100_001), Err(SilenceError::AlreadyExpired(a.id.clone())));
    assert_eq!(s.expire("nope", T), Err(SilenceError::NotFound("nope".into())));
    // Expired silences leave the list after 5 days.
    assert_eq!(s.list(T + 100_000 + 121 * 3_600_000).len(), 0);
}

#[test]
fn invalid_silences_are_refused() {
    let s = Silences::new();
    let err = |n: NewSilence| s.add(n, T).unwrap_err().to_string();
    assert!(err(new(vec![], T, T + 1)).contains("at least one matcher"));
    assert!(err(new(vec![Matcher::regex("a", ".*")], T, T + 1)).contains("must not match the empty string"));
    assert!(err(new(vec![Matcher::regex("a", "(")], T, T + 1)).contains("matcher a"));
    assert!(err(new(vec![Matcher::equal("a", "b")], T + 10, T + 5)).contains("must be after"));
    assert!(err(new(vec![Matcher::equal("bad-name", "b")], T, T + 5)).contains("invalid label name"));
}

#[test]
fn json_shape_is_alertmanagers() {
    let s = Silences::new();
    s.add(new(vec![Matcher::equal("alertname", "Down")], T, T + 60_000), T).unwrap();
    let v = serde_json::to_value(&s.list(T)[0]).unwrap();
    assert_eq!(
        v["matchers"][0],
        serde_json::json!({"name": "alertname", "value": "Down", "isRegex": false, "isEqual": true})
    );
    assert_eq!(v["startsAt"], "2023-11-14T22:13:20Z");
    assert_eq!(v["createdBy"], "ops");
    assert_eq!(v["status"]["state"], "active");
    // The API accepts Alertmanager's postable shape.
    let n: NewSilence = serde_json::from_value(serde_json::json!({
        "matchers": [{"name": "severity", "value": "page", "isRegex": false}],
        "startsAt": "2030-01-01T00:00:00Z", "endsAt": "2030-01-01T01:00:00Z",
        "createdBy": "me", "comment": "c"
    }))
    .unwrap();
    assert!(n.matchers[0].is_equal);
    assert_eq!(n.ends_at - n.starts_at, 3_600_000);
}

#[test]
fn silences_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(JsonFilePersistence::new(dir.path()).unwrap());
    let far = recserve_alerting::time::now_ms() + 3_600_000;
    let id = {
        let a = Alerting::new(AlertingConfig::default(), store(), Some(p.clone())).unwrap();
        a.add_silence(new(vec![Matcher::equal("alertname", "Down")], 0, far)).unwrap().id
    };
    assert_eq!(p.load_silences().unwrap().len(), 1);
    let a = Alerting::new(AlertingConfig::default(), store(), Some(p)).unwrap();
    let list = a.silences();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].silence.id.as_str(), list[0].status.state), (id.as_str(), SilenceState::Active));
    a.expire_silence(&id).unwrap();
    assert_eq!(a.silences()[0].status.state, SilenceState::Expired);
}
