//! The audit trail: round trip with ids, filters (actor, action prefix, outcome, time), keyset
//! paging, input checks, and retention leaving it alone.

use recserve_telemetry::store::now_ms;
use std::time::Duration;

use recserve_store::{
    AuditOutcome, AuditQuery, AuditRecord, LogQuery, NotificationQuery, NotificationRecord, Retention, Store,
    StoreError, WriterConfig,
};

use crate::common::{Ctx, req, request};

const BASE: i64 = 1_700_000_000_000;

/// (actor, action, outcome) of the fixture rows, oldest first.
const ROWS: [(&str, &str, AuditOutcome); 12] = [
    ("alice", "auth.sign_in", AuditOutcome::Ok),
    ("mallory", "auth.sign_in", AuditOutcome::Denied),
    ("alice", "silence.create", AuditOutcome::Ok),
    ("bob", "deployment.promote", AuditOutcome::Ok),
    ("bob", "deployment.rollback", AuditOutcome::Failed),
    ("system", "rules.reload", AuditOutcome::Ok),
    ("alice", "Deployment.promote", AuditOutcome::Ok),
    ("alice", "deploymentX", AuditOutcome::Ok),
    ("bob", "auth.signXin", AuditOutcome::Ok),
    ("system", "deployment.rollback", AuditOutcome::Ok),
    ("mallory", "deployment.promote", AuditOutcome::Denied),
    ("alice", "silence.expire", AuditOutcome::Ok),
];

fn row(i: usize) -> AuditRecord {
    let (actor, action, outcome) = ROWS[i];
    let mut r = AuditRecord::new(BASE + (i as i64 / 3) * 1000, actor, action, outcome);
    r.role = (actor != "system").then(|| if actor == "bob" { "operator".into() } else { "admin".into() });
    r.target = action.starts_with("deployment").then(|| format!("ranker/{i}"));
    r.reason = (outcome != AuditOutcome::Ok).then(|| format!("reason {i}: not allowed ✗"));
    r.details = Some(format!(r#"{{"i":{i},"from":"3","to":"4"}}"#));
    r.request_id = Some(format!("req-{i}"));
    r.replica = i.is_multiple_of(2).then(|| "replica-a".to_string());
    r
}

fn with_id(mut r: AuditRecord, id: u64) -> AuditRecord {
    r.id = Some(id);
    r
}

async fn all_pages(store: &Store, mut q: AuditQuery) -> (Vec<AuditRecord>, usize) {
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.query_audit(&q).await.expect("query");
        pages += 1;
        out.extend(page.records);
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return (out, pages),
        }
    }
}

async fn round_trip_filters_and_paging(ctx: Ctx) {
    let store = ctx.open().await;
    let mut ids = Vec::new();
    for i in 0..ROWS.len() {
        ids.push(store.audit(&row(i)).await.expect("audit"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // Newest first, with the ids given out.
    let expected: Vec<AuditRecord> = (0..ROWS.len()).rev().map(|i| with_id(row(i), ids[i])).collect();
    let (all, pages) = all_pages(&store, AuditQuery { limit: Some(5), ..Default::default() }).await;
    assert_eq!(pages, 3);
    assert_eq!(all, expected);
    let select = |f: &dyn Fn(&AuditRecord) -> bool| expected.iter().filter(|r| f(r)).cloned().collect::<Vec<_>>();

    let q = |actor: Option<&str>, action: Option<&str>, outcome: Option<AuditOutcome>| AuditQuery {
        actor: actor.map(str::to_string),
        action: action.map(str::to_string),
        outcome,
        ..Default::default()
    };
    let page = store.query_audit(&q(Some("alice"), None, None)).await.expect("q");
    assert_eq!(page.records, select(&|r| r.actor == "alice"));
    // Prefix match, case-sensitive, no wildcards.
    let page = store.query_audit(&q(None, Some("deployment."), None)).await.expect("q");
    assert_eq!(page.records, select(&|r| r.action.starts_with("deployment.")));
    assert_eq!(page.records.len(), 4);
    let page = store.query_audit(&q(None, Some("auth.sign_"), None)).await.expect("q");
    assert_eq!(
        page.records.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        vec!["auth.sign_in", "auth.sign_in"]
    );
    let page = store.query_audit(&q(None, Some("rules.reload"), None)).await.expect("q");
    assert_eq!(page.records, select(&|r| r.action == "rules.reload"));
    let page =
        store.query_audit(&q(Some("mallory"), Some("deployment."), Some(AuditOutcome::Denied))).await.expect("q");
    assert_eq!(page.records, vec![with_id(row(10), ids[10])]);
    let page = store.query_audit(&q(None, None, Some(AuditOutcome::Failed))).await.expect("q");
    assert_eq!(page.records, vec![with_id(row(4), ids[4])]);
    let page = store.query_audit(&q(Some("nobody"), None, None)).await.expect("q");
    assert!(page.records.is_empty() && page.next_cursor.is_none());
    let window = store
        .query_audit(&AuditQuery { from_ms: Some(BASE + 1000), to_ms: Some(BASE + 2000), ..Default::default() })
        .await
        .expect("q");
    assert_eq!(window.records, (3..9).rev().map(|i| with_id(row(i), ids[i])).collect::<Vec<_>>());
    // Paging within a filter.
    let (alice, pages) =
        all_pages(&store, AuditQuery { actor: Some("alice".into()), limit: Some(2), ..Default::default() }).await;
    assert_eq!((alice.len(), pages), (5, 3));
    assert_eq!(alice, select(&|r| r.actor == "alice"));

    // Checked, not cut: nothing is written for a bad record.
    let bad = [
        AuditRecord::new(BASE, "", "silence.create", AuditOutcome::Ok),
        AuditRecord::new(BASE, "alice", "a".repeat(191), AuditOutcome::Ok),
        AuditRecord { target: Some("t".repeat(256)), ..row(0) },
        AuditRecord { details: Some("{not json".into()), ..row(0) },
    ];
    for (r, what) in bad.iter().zip(["audit actor", "audit action", "audit target", "audit details"]) {
        match store.audit(r).await {
            Err(StoreError::Invalid { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{what}: {other:?}"),
        }
    }
    let max = AuditRecord::new(BASE + 60_000, "é".repeat(190), "ä".repeat(190), AuditOutcome::Ok);
    let id = store.audit(&max).await.expect("190 characters");
    let page = store.query_audit(&AuditQuery { limit: Some(1), ..Default::default() }).await.expect("q");
    assert_eq!(page.records, vec![with_id(max, id)]);
    assert_eq!(all_pages(&store, AuditQuery::default()).await.0.len(), ROWS.len() + 1);
    store.close().await;
}

async fn retention_leaves_audit_alone(ctx: Ctx) {
    // Everything two hours old is over the age limit, and the size limit cannot be met.
    let ctx = ctx.with_retention(Retention { max_age: Some(Duration::from_secs(3600)), max_bytes: Some(1) });
    let store = ctx.open().await;
    let now = now_ms();
    let old = now - 2 * 3_600_000;
    for i in 0..5 {
        store.audit(&AuditRecord::new(old + i, "alice", "silence.create", AuditOutcome::Ok)).await.expect("audit");
    }
    store.audit(&AuditRecord::new(now, "bob", "rules.reload", AuditOutcome::Ok)).await.expect("audit");
    for i in 0..3 {
        store.record_notification(&NotificationRecord::new(old + i, "ops", "g", "sent")).await.expect("notification");
    }
    store.record_notification(&NotificationRecord::new(now, "ops", "g", "failed")).await.expect("notification");
    store.put_document("alerting/states", r#"{"old":true}"#).await.expect("put");
    let writer = store.start_writer(WriterConfig::default());
    for i in 0..20 {
        assert!(writer.sink().submit(req(request(i, if i < 10 { old } else { now }))));
    }
    writer.shutdown().await;

    let report = store.enforce_retention().await.expect("retention");
    assert_eq!(report.deleted_requests, 20, "age then size: every request record goes {report:?}");
    assert_eq!(report.deleted_notifications, 3, "{report:?}");
    assert!(store.query_requests(&LogQuery::default()).await.expect("q").records.is_empty());
    let audit = store.query_audit(&AuditQuery::default()).await.expect("q");
    assert_eq!(audit.records.len(), 6, "retention must not delete audit rows");
    assert_eq!(audit.records.iter().filter(|r| r.time_ms < now - 3_600_000).count(), 5);
    let notes = store.query_notifications(&NotificationQuery::default()).await.expect("q");
    assert_eq!(notes.records.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(), vec!["failed"]);
    assert_eq!(store.get_document("alerting/states").await.expect("get").map(|d| d.version), Some(1));
    store.close().await;
}

crate::both_backends!(round_trip_filters_and_paging, retention_leaves_audit_alone);
