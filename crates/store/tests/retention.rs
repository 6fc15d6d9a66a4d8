//! Retention by age and by size; the space is given back (the SQLite file shrinks).

use recserve_telemetry::store::now_ms;
use std::time::Duration;

use recserve_store::{LogQuery, Retention, WriterConfig};

use crate::common::{Ctx, Kind, raw_execute, req, request, service, svc};

async fn deletes_by_age(ctx: Ctx) {
    let ctx = ctx.with_retention(Retention { max_age: Some(Duration::from_secs(3600)), max_bytes: None });
    let store = ctx.open().await;
    let now = now_ms();
    let writer = store.start_writer(WriterConfig::default());
    let sink = writer.sink();
    for i in 0..300 {
        // 0..100 two hours old, 100..300 recent.
        let t = if i < 100 { now - 2 * 3_600_000 + i as i64 } else { now - 60_000 + i as i64 };
        assert!(sink.submit(req(request(i, t))));
        if i % 3 == 0 {
            assert!(sink.submit(svc(service(i, t))));
        }
    }
    writer.shutdown().await;
    let report = store.enforce_retention().await.expect("retention");
    assert_eq!(report.deleted_requests, 100);
    assert_eq!(report.deleted_service, 34, "{report:?}"); // i % 3 == 0 for i in 0..100
    assert_eq!(store.count_logs().await.expect("count"), (200, 66));
    let oldest =
        store.query_requests(&LogQuery { to_ms: Some(now - 3_600_000), ..Default::default() }).await.expect("q");
    assert!(oldest.records.is_empty());
    // Nothing more to delete the second time.
    let again = store.enforce_retention().await.expect("retention");
    assert_eq!((again.deleted_requests, again.deleted_service), (0, 0));
    store.close().await;
}

async fn deletes_oldest_until_under_size_and_shrinks(ctx: Ctx) {
    let store = ctx.open().await;
    let writer = store.start_writer(WriterConfig::default());
    let sink = writer.sink();
    let n = 20_000;
    for i in 0..n {
        let mut r = request(i, 1_000_000 + i as i64);
        // Random text: request records are stored compressed, and this must take space.
        let mut pad = [0u8; 750];
        getrandom::fill(&mut pad).expect("OS randomness");
        r.input = Some(format!(
            "{{\"pad\":\"{}\"}}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pad)
        ));
        assert!(sink.submit(req(r)));
        if i % 4 == 0 {
            assert!(sink.submit(svc(service(i, 1_000_000 + i as i64))));
        }
    }
    let stats = writer.shutdown().await;
    assert_eq!(stats.committed as usize, n + n / 4);
    store.analyze().await.expect("analyze");
    let before = store.size_bytes().await.expect("size");
    assert!(before > 14_000_000, "{before} bytes for 20k records of 1 kB (750 random bytes)");
    store.close().await;

    let max_bytes = before / 4;
    let ctx = ctx.with_retention(Retention { max_age: None, max_bytes: Some(max_bytes) });
    let store = ctx.open().await;
    let report = store.enforce_retention().await.expect("retention");
    assert!(report.deleted_requests > 0 && report.deleted_service > 0, "{report:?}");
    assert!(report.bytes_after < report.bytes_before, "{report:?}");
    assert!(report.bytes_after <= max_bytes, "{report:?} max {max_bytes}");
    if ctx.kind == Kind::Sqlite {
        let path = crate::common::sqlite_file(&ctx.config);
        let file = std::fs::metadata(&path).expect("meta").len();
        assert!(file <= max_bytes, "the database file was not shrunk: {file} > {max_bytes}");
    }
    let (left_req, left_svc) = store.count_logs().await.expect("count");
    assert_eq!(left_req as usize + report.deleted_requests as usize, n);
    assert_eq!(left_svc as usize + report.deleted_service as usize, n / 4);
    // Oldest first: what is left is the newest records.
    let all = store.query_requests(&LogQuery { limit: Some(1000), ..Default::default() }).await.expect("q");
    assert_eq!(all.records[0].request_id, format!("req-{:06}", n - 1));
    let oldest_left = 1_000_000 + (n as i64 - left_req as i64);
    let older =
        store.query_requests(&LogQuery { to_ms: Some(oldest_left - 1), ..Default::default() }).await.expect("q");
    assert!(older.records.is_empty(), "an older record survived while newer ones were deleted");
    let kept = store
        .query_requests(&LogQuery { to_ms: Some(oldest_left), limit: Some(1), ..Default::default() })
        .await
        .expect("q");
    assert_eq!(kept.records.len(), 1);
    store.close().await;
}

/// A request log block that cannot be decoded: queries over it fail naming it, retention by age
/// keeps it (rather than failing the pass: the service log is still cleaned), and the size
/// limit deletes it whole.
async fn an_undecodable_block_neither_stops_retention_nor_survives_the_size_limit(ctx: Ctx) {
    let ctx = ctx.with_retention(Retention { max_age: Some(Duration::from_secs(3600)), max_bytes: None });
    let store = ctx.open().await;
    let now = now_ms();
    let writer = store.start_writer(WriterConfig::default());
    for i in 0..300 {
        let t = if i < 100 { now - 2 * 3_600_000 + i as i64 } else { now - 60_000 + i as i64 };
        assert!(writer.sink().submit(req(request(i, t))));
        assert!(writer.sink().submit(svc(service(i, t))));
    }
    writer.shutdown().await;
    store.close().await;
    raw_execute(&ctx, "UPDATE request_blocks SET payload = ?", &[1, 2, 3, 4]).await;

    let store = ctx.open().await;
    let err = store.query_requests(&LogQuery::default()).await.map(|_| ()).expect_err("corrupt block");
    let text = err.to_string();
    assert!(text.contains("request_blocks") && text.contains("block"), "{text}");
    let report = store.enforce_retention().await.expect("retention goes on");
    assert_eq!((report.deleted_requests, report.deleted_service), (0, 100), "{report:?}");
    store.close().await;

    let ctx = ctx.with_retention(Retention { max_age: None, max_bytes: Some(1) });
    let store = ctx.open().await;
    let report = store.enforce_retention().await.expect("retention");
    assert_eq!(report.deleted_requests, 300, "{report:?}");
    assert_eq!(store.count_logs().await.expect("count").0, 0);
    assert!(store.query_requests(&LogQuery::default()).await.expect("query").records.is_empty());
    store.close().await;
}

crate::both_backends!(
    deletes_by_age,
    deletes_oldest_until_under_size_and_shrinks,
    an_undecodable_block_neither_stops_retention_nor_survives_the_size_limit
);
