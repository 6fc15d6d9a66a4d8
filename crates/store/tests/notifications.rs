//! The notification log: round trip, filters, keyset paging, and the recorder that never blocks
//! and counts what it drops.

use recserve_store::{NotificationQuery, NotificationRecord, Page, StoreError};

use crate::common::Ctx;

fn record(i: usize) -> NotificationRecord {
    let failed = i % 3 == 2;
    NotificationRecord {
        // Pairs share a time: the id breaks the tie.
        time_ms: 1_700_000_000_000 + (i as i64 / 2) * 1000,
        receiver: if i.is_multiple_of(2) { "ops-webhook".into() } else { "alertmanager".into() },
        group_key: format!("{{}}:{{alertname=\"HighLatency\",model=\"m{}\"}}", i % 4),
        status: if failed { "failed".into() } else { "sent".into() },
        alerts: 1 + i as u32 % 5,
        attempt: if failed { 2 } else { 1 },
        error: failed.then(|| format!("HTTP 503 from receiver ({i}) — réessayer")),
        payload: Some(format!("sha256:{i:064x}")),
        replica: if i.is_multiple_of(4) { None } else { Some("replica-b".into()) },
    }
}

async fn all_pages(store: &recserve_store::Store, mut q: NotificationQuery) -> (Vec<NotificationRecord>, usize) {
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let Page { records, next_cursor } = store.query_notifications(&q).await.expect("query");
        pages += 1;
        out.extend(records);
        match next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return (out, pages),
        }
    }
}

async fn round_trip_filters_and_paging(ctx: Ctx) {
    let store = ctx.open().await;
    let n = 25;
    for i in 0..n {
        store.record_notification(&record(i)).await.expect("record");
    }
    // Newest first; equal times newest-written first.
    let expected: Vec<NotificationRecord> = (0..n).rev().map(record).collect();
    let (all, pages) = all_pages(&store, NotificationQuery { limit: Some(10), ..Default::default() }).await;
    assert_eq!(pages, 3);
    assert_eq!(all, expected);
    let (all, _) = all_pages(&store, NotificationQuery::default()).await;
    assert_eq!(all, expected);

    let q = NotificationQuery { receiver: Some("ops-webhook".into()), limit: Some(4), ..Default::default() };
    let (ops, pages) = all_pages(&store, q).await;
    assert_eq!(pages, 4);
    assert_eq!(ops, expected.iter().filter(|r| r.receiver == "ops-webhook").cloned().collect::<Vec<_>>());
    let failed = store
        .query_notifications(&NotificationQuery { status: Some("failed".into()), ..Default::default() })
        .await
        .expect("query");
    assert_eq!(failed.records, expected.iter().filter(|r| r.status == "failed").cloned().collect::<Vec<_>>());
    assert!(failed.records.iter().all(|r| r.error.as_deref().is_some_and(|e| e.contains("réessayer"))));
    let t = |i: usize| record(i).time_ms;
    let window = store
        .query_notifications(&NotificationQuery { from_ms: Some(t(4)), to_ms: Some(t(9)), ..Default::default() })
        .await
        .expect("query");
    assert_eq!(window.records, (4..=9).rev().map(record).collect::<Vec<_>>());
    assert_eq!(window.next_cursor, None);

    // Long receivers are cut to 255 characters on both backends.
    let mut long = record(99);
    long.receiver = "r".repeat(300);
    long.time_ms = 1;
    store.record_notification(&long).await.expect("record");
    let got =
        store.query_notifications(&NotificationQuery { to_ms: Some(1), ..Default::default() }).await.expect("query");
    assert_eq!(got.records[0].receiver.len(), 255);

    match store.query_notifications(&NotificationQuery { cursor: Some("nope".into()), ..Default::default() }).await {
        Err(StoreError::BadQuery { field: "cursor", .. }) => {}
        other => panic!("bad cursor: {other:?}"),
    }
    store.close().await;
}

async fn recorder_never_blocks_and_counts_drops(ctx: Ctx) {
    let store = ctx.open().await;
    let recorder = store.start_notification_recorder(4);
    // The test runtime is single-threaded: the recorder task cannot run until this test awaits,
    // so exactly the channel's capacity is taken.
    let taken: Vec<bool> = (0..10).map(|i| recorder.record(record(i))).collect();
    assert_eq!(taken, [vec![true; 4], vec![false; 6]].concat());
    let s = recorder.stats();
    assert_eq!((s.accepted, s.dropped, s.committed, s.failed), (4, 6, 0, 0));
    recorder.flush().await;
    assert_eq!(recorder.stats().committed, 4);
    let page = store.query_notifications(&NotificationQuery::default()).await.expect("query");
    assert_eq!(page.records, (0..4).rev().map(record).collect::<Vec<_>>());

    // From inside a tokio task and from a plain thread, through clones.
    let in_task = recorder.clone();
    assert!(tokio::spawn(async move { in_task.record(record(10)) }).await.expect("task"));
    let in_thread = recorder.clone();
    assert!(std::thread::spawn(move || in_thread.record(record(11))).join().expect("thread"));
    recorder.flush().await;
    let s = recorder.stats();
    assert_eq!((s.accepted, s.dropped, s.committed, s.failed), (6, 6, 6, 0));
    let page = store.query_notifications(&NotificationQuery::default()).await.expect("query");
    assert_eq!(page.records.len(), 6);
    assert_eq!(page.records[0], record(11));
    store.close().await;
}

crate::both_backends!(round_trip_filters_and_paging, recorder_never_blocks_and_counts_drops);
