//! State documents: versions and the revision counter, compare-and-set (also raced by concurrent
//! writers on two pools), change polling, input checks, and the sync facade from a plain thread
//! and from inside a tokio runtime.

use recserve_telemetry::store::now_ms;
use std::collections::BTreeSet;

use recserve_store::{SqlStateDocuments, Store, StoreError};
use tokio::task::JoinSet;

use crate::common::Ctx;

async fn versions_revisions_and_compare_and_set(ctx: Ctx) {
    let store = ctx.open().await;
    assert_eq!(store.state_revision().await.expect("revision"), 0);
    assert!(store.get_document("alerting/states").await.expect("get").is_none());

    let before = now_ms();
    assert_eq!(store.put_document("alerting/states", r#"{"firing":["a"]}"#).await.expect("put"), 1);
    let after = now_ms();
    let d = store.get_document("alerting/states").await.expect("get").expect("stored");
    assert_eq!(
        (d.name.as_str(), d.body.as_str(), d.version, d.revision),
        ("alerting/states", r#"{"firing":["a"]}"#, 1, 1)
    );
    assert!((before..=after).contains(&d.updated_ms), "{} not in {before}..={after}", d.updated_ms);
    assert_eq!(store.put_document("alerting/states", r#"{"firing":[]}"#).await.expect("put"), 2);
    assert_eq!(
        store.put_document("alerting/silences", r#"[{"id":"s1","comment":"déjà vu ✓"}]"#).await.expect("put"),
        1
    );
    assert_eq!(store.state_revision().await.expect("revision"), 3);
    let s = store.get_document("alerting/silences").await.expect("get").expect("stored");
    assert_eq!((s.body.as_str(), s.version, s.revision), (r#"[{"id":"s1","comment":"déjà vu ✓"}]"#, 1, 3));

    // Compare-and-set: a stale version writes nothing and does not move the revision.
    assert_eq!(store.put_document_if("alerting/states", r#"{"stale":true}"#, 1).await.expect("cas"), None);
    assert_eq!(store.state_revision().await.expect("revision"), 3);
    let d = store.get_document("alerting/states").await.expect("get").expect("stored");
    assert_eq!((d.body.as_str(), d.version), (r#"{"firing":[]}"#, 2));
    assert_eq!(store.put_document_if("alerting/states", r#"{"firing":["b"]}"#, 2).await.expect("cas"), Some(3));
    assert_eq!(
        store.get_document("alerting/states").await.expect("get").map(|d| (d.body, d.version, d.revision)),
        Some((r#"{"firing":["b"]}"#.to_string(), 3, 4))
    );
    // Expected version 0: create only.
    assert_eq!(store.put_document_if("deployments/ranker", r#"{"stable":"3"}"#, 0).await.expect("cas"), Some(1));
    assert_eq!(store.put_document_if("deployments/ranker", r#"{"stable":"4"}"#, 0).await.expect("cas"), None);
    assert_eq!(store.put_document_if("alerting/states", "{}", 0).await.expect("cas"), None);
    // A document that does not exist has no version 5.
    assert_eq!(store.put_document_if("missing", "{}", 5).await.expect("cas"), None);
    assert!(store.get_document("missing").await.expect("get").is_none());
    assert_eq!(store.state_revision().await.expect("revision"), 5);

    // Polling for changes.
    let all = store.documents_changed_since(0).await.expect("changes");
    assert_eq!(all.revision, 5);
    let names: Vec<(&str, u64)> = all.documents.iter().map(|d| (d.name.as_str(), d.revision)).collect();
    assert_eq!(names, vec![("alerting/silences", 3), ("alerting/states", 4), ("deployments/ranker", 5)]);
    let since = store.documents_changed_since(3).await.expect("changes");
    assert_eq!(
        since.documents.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        vec!["alerting/states", "deployments/ranker"]
    );
    assert_eq!(since.documents[0], store.get_document("alerting/states").await.expect("get").expect("stored"));
    let none = store.documents_changed_since(5).await.expect("changes");
    assert_eq!((none.revision, none.documents.len()), (5, 0));

    // Names up to 190 characters (also multi-byte ones), bodies must be JSON.
    let long = "é".repeat(190);
    assert_eq!(store.put_document(&long, "1").await.expect("190 chars"), 1);
    assert_eq!(store.get_document(&long).await.expect("get").map(|d| d.name), Some(long.clone()));
    for bad in [String::new(), "x".repeat(191)] {
        match store.put_document(&bad, "{}").await {
            Err(StoreError::Invalid { what, reason }) => {
                assert_eq!(what, "state document name");
                assert!(reason.contains(&bad.chars().count().to_string()), "{reason}");
            }
            other => panic!("name of {} chars: {other:?}", bad.len()),
        }
    }
    let err = store.put_document("alerting/states", "{not json").await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("alerting/states") && err.contains("JSON"), "{err}");
    assert!(store.put_document_if("alerting/states", "nope", 3).await.is_err());
    assert_eq!(store.state_revision().await.expect("revision"), 6, "failed writes must not move the revision");
    // Names compare exactly.
    assert!(store.get_document("Alerting/States").await.expect("get").is_none());
    store.close().await;
}

async fn concurrent_writers(ctx: Ctx) {
    // Two pools, like two replicas.
    let stores = [ctx.open().await, ctx.open().await];
    let pick = |i: usize| -> Store { stores[i % 2].clone() };

    // Plain puts: every write gets its own version.
    let mut set = JoinSet::new();
    for i in 0..16 {
        let s = pick(i);
        set.spawn(async move { s.put_document("counter", &format!("{{\"writer\":{i}}}")).await });
    }
    let mut versions = BTreeSet::new();
    while let Some(r) = set.join_next().await {
        versions.insert(r.expect("task").expect("put"));
    }
    assert_eq!(versions, (1..=16).collect::<BTreeSet<u64>>());
    assert_eq!(stores[1].get_document("counter").await.expect("get").map(|d| d.version), Some(16));

    // Compare-and-set races: of the writers that read the same version, exactly one wins.
    for round in 0..8u64 {
        let current = stores[0].get_document("cas").await.expect("get").map_or(0, |d| d.version);
        assert_eq!(current, round);
        let mut set = JoinSet::new();
        for w in 0..4 {
            let s = pick(w);
            let body = format!("{{\"round\":{round},\"writer\":{w}}}");
            set.spawn(async move { (body.clone(), s.put_document_if("cas", &body, current).await) });
        }
        let mut winners = Vec::new();
        while let Some(r) = set.join_next().await {
            let (body, result) = r.expect("task");
            if let Some(v) = result.expect("cas") {
                winners.push((body, v));
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let stored = stores[1].get_document("cas").await.expect("get").expect("stored");
        assert_eq!((stored.body, stored.version), (winners[0].0.clone(), current + 1));
        assert_eq!(winners[0].1, current + 1);
    }
    assert_eq!(stores[0].state_revision().await.expect("revision"), 16 + 8);
    for s in stores {
        s.close().await;
    }
}

async fn sync_facade(ctx: Ctx) {
    // Inside the test's tokio runtime: must not panic.
    let docs = SqlStateDocuments::open(&ctx.config).unwrap_or_else(|e| panic!("open facade: {e}"));
    assert_eq!(docs.get("silences").expect("get"), None);
    assert_eq!(docs.put("silences", "[]").expect("put"), 1);
    assert_eq!(docs.put("silences", r#"[{"id":"s1"}]"#).expect("put"), 2);
    assert_eq!(docs.put_if("silences", "[]", 1).expect("cas"), None);
    assert_eq!(docs.revision().expect("revision"), 2);
    assert!(matches!(docs.put("", "{}"), Err(StoreError::Invalid { .. })));

    // The async API sees what the facade wrote, and the other way round.
    let store = ctx.open().await;
    assert_eq!(store.get_document("silences").await.expect("get").map(|d| d.version), Some(2));
    assert_eq!(store.put_document("alerts", r#"{"n":1}"#).await.expect("put"), 1);
    assert_eq!(docs.get("alerts").expect("get").map(|d| d.body), Some(r#"{"n":1}"#.to_string()));

    // From a plain thread with no runtime, with a facade of its own.
    let config = ctx.config.clone();
    let from_thread = std::thread::spawn(move || {
        let docs = SqlStateDocuments::open(&config).expect("open on a plain thread");
        let v = docs.put_if("silences", r#"[{"id":"s2"}]"#, 2).expect("cas");
        (v, docs.changed_since(2).expect("changes"))
    })
    .join()
    .expect("thread");
    assert_eq!(from_thread.0, Some(3));
    assert_eq!(from_thread.1.revision, 4);
    assert_eq!(
        from_thread.1.documents.iter().map(|d| (d.name.as_str(), d.version)).collect::<Vec<_>>(),
        vec![("alerts", 1), ("silences", 3)]
    );
    // The first facade, shared with a plain thread.
    let docs = std::sync::Arc::new(docs);
    let shared = docs.clone();
    let got = std::thread::spawn(move || shared.get("silences").expect("get")).join().expect("thread");
    assert_eq!(got.map(|d| (d.body, d.version)), Some((r#"[{"id":"s2"}]"#.to_string(), 3)));
    drop(docs);
    store.close().await;
}

crate::both_backends!(versions_revisions_and_compare_and_set, concurrent_writers, sync_facade);
