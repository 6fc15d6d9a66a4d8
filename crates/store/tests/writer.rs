//! The batched log writer: everything submitted is committed and counted; a full channel drops
//! and counts exactly; records come back exactly as written.

use std::time::Duration;

use recserve_store::{LogQuery, WriterConfig};

use crate::common::{Ctx, req, request, service, svc};

async fn commits_everything_and_counts(ctx: Ctx) {
    let store = ctx.open().await;
    let writer = store.start_writer(WriterConfig {
        capacity: 20_000,
        max_batch: 1000,
        flush_interval: Duration::from_millis(50),
    });
    let sink = writer.sink();
    for i in 0..7000 {
        assert!(sink.submit(req(request(i, 1_000_000 + i as i64))));
        if i < 3000 {
            assert!(sink.submit(svc(service(i, 1_000_000 + i as i64))));
        }
    }
    writer.flush().await;
    let s = sink.stats();
    assert_eq!((s.accepted, s.dropped, s.committed, s.failed, s.queued), (10_000, 0, 10_000, 0, 0), "{s:?}");
    assert_eq!((s.requests_committed, s.service_committed), (7000, 3000));
    assert!(s.batches >= 10, "{s:?}");
    assert_eq!(store.count_logs().await.expect("count"), (7000, 3000));

    // Round trip: the newest request comes back field for field.
    let page = store.query_requests(&LogQuery { limit: Some(1), ..Default::default() }).await.expect("query");
    assert_eq!(page.records, vec![request(6999, 1_000_000 + 6999)]);
    let page = store.query_service(&LogQuery { limit: Some(1), ..Default::default() }).await.expect("query");
    assert_eq!(page.records, vec![service(2999, 1_000_000 + 2999)]);

    // flush with nothing pending returns; shutdown commits the rest; later submits are dropped.
    writer.flush().await;
    for i in 7000..7100 {
        assert!(sink.submit(req(request(i, 2_000_000 + i as i64))));
    }
    let s = writer.shutdown().await;
    assert_eq!((s.accepted, s.committed, s.queued, s.dropped), (10_100, 10_100, 0, 0), "{s:?}");
    assert!(!sink.submit(req(request(1, 1))), "submit after shutdown must drop");
    assert_eq!(sink.stats().dropped, 1);
    assert_eq!(store.count_logs().await.expect("count"), (7100, 3000));
    store.close().await;
}

async fn full_channel_drops_and_counts_exactly(ctx: Ctx) {
    let store = ctx.open().await;
    // The test runs on a current-thread runtime: the writer task cannot run between these
    // submits, so the channel fills at exactly `capacity`.
    let writer =
        store.start_writer(WriterConfig { capacity: 10, max_batch: 4, flush_interval: Duration::from_millis(10) });
    let sink = writer.sink();
    let results: Vec<bool> = (0..25).map(|i| sink.submit(req(request(i, i as i64)))).collect();
    assert_eq!(results.iter().filter(|&&ok| ok).count(), 10);
    assert!(results[..10].iter().all(|&ok| ok) && results[10..].iter().all(|&ok| !ok));
    let s = sink.stats();
    assert_eq!((s.accepted, s.dropped, s.queued), (10, 15, 10), "{s:?}");
    writer.flush().await;
    let s = writer.shutdown().await;
    assert_eq!((s.accepted, s.dropped, s.committed, s.queued), (10, 15, 10, 0), "{s:?}");
    assert_eq!(store.count_logs().await.expect("count"), (10, 0));
    let ids: Vec<String> = store
        .query_requests(&LogQuery::default())
        .await
        .expect("query")
        .records
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    let expected: Vec<String> = (0..10).rev().map(|i| format!("req-{i:06}")).collect();
    assert_eq!(ids, expected, "the first ten submitted are the ones kept");
    store.close().await;
}

async fn flush_waits_for_records_submitted_concurrently(ctx: Ctx) {
    let store = ctx.open().await;
    let writer =
        store.start_writer(WriterConfig { capacity: 100_000, max_batch: 512, flush_interval: Duration::from_secs(5) });
    let sink = writer.sink();
    let producer = std::thread::spawn(move || {
        for i in 0..20_000 {
            assert!(sink.submit(req(request(i, i as i64))));
        }
    });
    producer.join().expect("producer");
    // The flush interval is 5 s; flush must not wait for it.
    let started = std::time::Instant::now();
    writer.flush().await;
    assert!(started.elapsed() < Duration::from_secs(4), "flush waited for the interval");
    assert_eq!(writer.stats().committed, 20_000);
    assert_eq!(store.count_logs().await.expect("count"), (20_000, 0));
    writer.shutdown().await;
    store.close().await;
}

async fn oversized_and_long_values_are_capped(ctx: Ctx) {
    let store = ctx.open().await;
    let writer = store.start_writer(WriterConfig::default());
    let mut r = request(1, 10);
    r.request_id = "x".repeat(400);
    r.model = Some("é".repeat(300));
    let huge = "y".repeat(recserve_store::writer::MAX_TEXT_BYTES + 1);
    r.output = Some(huge.clone());
    assert!(writer.sink().submit(req(r)));
    let s = writer.shutdown().await;
    assert_eq!((s.committed, s.failed), (1, 0), "{s:?}");
    let got = store.query_requests(&LogQuery::default()).await.expect("query").records;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].request_id, "x".repeat(255));
    assert_eq!(got[0].model.as_deref(), Some("é".repeat(255).as_str()));
    assert_eq!(got[0].output, Some(recserve_store::input_or_digest(huge, recserve_store::writer::MAX_TEXT_BYTES)));
    store.close().await;
}

crate::both_backends!(
    commits_everything_and_counts,
    full_channel_drops_and_counts_exactly,
    flush_waits_for_records_submitted_concurrently,
    oversized_and_long_values_are_capped
);
