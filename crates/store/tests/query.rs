//! Log queries: each filter returns exactly the records a plain Rust filter picks from what was
//! written, newest first; cursors page through everything exactly once, also while new records
//! arrive.

use recserve_store::{LogQuery, RequestRecord, ServiceRecord, StatusFilter, Store, WriterConfig};

use crate::common::{Ctx, req, request, service, svc};

const BASE: i64 = 1_700_000_000_000;
const N_REQ: usize = 120;
const N_SVC: usize = 60;

/// A query and the plain Rust filter that must select the same records.
type Case<'a, T> = (LogQuery, Box<dyn Fn(&T) -> bool + 'a>);

/// Pairs of records share a time, so ties are ordered by insertion (id).
fn time_of(i: usize) -> i64 {
    BASE + (i / 2) as i64 * 10
}

async fn fill(store: &Store) -> (Vec<RequestRecord>, Vec<ServiceRecord>) {
    let writer = store.start_writer(WriterConfig::default());
    let sink = writer.sink();
    let requests: Vec<RequestRecord> = (0..N_REQ).map(|i| request(i, time_of(i))).collect();
    let services: Vec<ServiceRecord> = (0..N_SVC).map(|i| service(i, time_of(i))).collect();
    for r in &requests {
        assert!(sink.submit(req(r.clone())));
    }
    for s in &services {
        assert!(sink.submit(svc(s.clone())));
    }
    let stats = writer.shutdown().await;
    assert_eq!(stats.committed as usize, N_REQ + N_SVC);
    (requests, services)
}

/// Newest first: reverse insertion order (times are non-decreasing in insertion order).
fn newest_first<T: Clone>(all: &[T], keep: impl Fn(&T) -> bool) -> Vec<T> {
    all.iter().rev().filter(|r| keep(r)).cloned().collect()
}

async fn all_requests(store: &Store, q: &LogQuery) -> Vec<RequestRecord> {
    let mut q = q.clone();
    q.limit = Some(1000);
    let page = store.query_requests(&q).await.unwrap_or_else(|e| panic!("{q:?}: {e}"));
    assert!(page.next_cursor.is_none());
    page.records
}

async fn all_service(store: &Store, q: &LogQuery) -> Vec<ServiceRecord> {
    let mut q = q.clone();
    q.limit = Some(1000);
    let page = store.query_service(&q).await.unwrap_or_else(|e| panic!("{q:?}: {e}"));
    assert!(page.next_cursor.is_none());
    page.records
}

async fn request_filters(ctx: Ctx) {
    let store = ctx.open().await;
    let (all, _) = fill(&store).await;
    let q = LogQuery::default;
    let cases: Vec<Case<'_, RequestRecord>> = vec![
        (q(), Box::new(|_| true)),
        (
            LogQuery { from_ms: Some(BASE + 200), to_ms: Some(BASE + 400), ..q() },
            Box::new(|r| (BASE + 200..=BASE + 400).contains(&r.time_ms)),
        ),
        (LogQuery { from_ms: Some(BASE + 500), ..q() }, Box::new(|r| r.time_ms >= BASE + 500)),
        (LogQuery { model: Some("tower".into()), ..q() }, Box::new(|r| r.model.as_deref() == Some("tower"))),
        (LogQuery { model: Some("Tower".into()), ..q() }, Box::new(|_| false)),
        (LogQuery { version: Some("2".into()), ..q() }, Box::new(|r| r.version.as_deref() == Some("2"))),
        (
            LogQuery { model: Some("ranker".into()), version: Some("3".into()), ..q() },
            Box::new(|r| r.model.as_deref() == Some("ranker") && r.version.as_deref() == Some("3")),
        ),
        (LogQuery { pipeline: Some("home".into()), ..q() }, Box::new(|r| r.pipeline.as_deref() == Some("home"))),
        (LogQuery { status: Some(StatusFilter::Ok), ..q() }, Box::new(|r| r.status < 400)),
        (LogQuery { status: Some(StatusFilter::Error), ..q() }, Box::new(|r| r.status >= 400)),
        (LogQuery { status: Some(StatusFilter::Code(503)), ..q() }, Box::new(|r| r.status == 503)),
        (LogQuery { request_id: Some("req-000042".into()), ..q() }, Box::new(|r| r.request_id == "req-000042")),
        (LogQuery { user: Some("user-3".into()), ..q() }, Box::new(|r| r.user.as_deref() == Some("user-3"))),
        // Case-insensitive substring over error, input and output.
        (
            LogQuery { text: Some("timeout".into()), ..q() },
            Box::new(|r| r.error.as_deref().is_some_and(|e| e.contains("TIMEOUT"))),
        ),
        (
            LogQuery { text: Some("notfound 13".into()), ..q() },
            Box::new(|r| r.error.as_deref() == Some("model NotFound 13")),
        ),
        (
            LogQuery { text: Some("SHOES SIZE 10".into()), ..q() },
            Box::new(|r| r.input.as_deref().is_some_and(|i| i.contains("Shoes size 10"))),
        ),
        (LogQuery { text: Some("[7,8]".into()), ..q() }, Box::new(|r| r.request_id == "req-000007")),
        // LIKE wildcards in the text are literal.
        (LogQuery { text: Some("50%".into()), ..q() }, Box::new(|r| r.status == 503)),
        (LogQuery { text: Some("_".into()), ..q() }, Box::new(|_| false)),
        (
            LogQuery {
                status: Some(StatusFilter::Error),
                model: Some("tower".into()),
                from_ms: Some(BASE + 300),
                ..q()
            },
            Box::new(|r| r.status >= 400 && r.model.as_deref() == Some("tower") && r.time_ms >= BASE + 300),
        ),
        // Level does not apply to requests.
        (LogQuery { level: Some("ERROR".into()), ..q() }, Box::new(|_| true)),
    ];
    for (query, keep) in cases {
        let expected = newest_first(&all, &keep);
        let got = all_requests(&store, &query).await;
        let ids = |v: &[RequestRecord]| v.iter().map(|r| r.request_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&got), ids(&expected), "{:?} on {:?}", query, ctx.kind);
        assert_eq!(got, expected);
        if query.status.is_some() || query.text.is_some() {
            assert!(!expected.is_empty() || query.text.as_deref() == Some("_"), "case selects nothing: {query:?}");
        }
    }
    store.close().await;
}

async fn service_filters(ctx: Ctx) {
    let store = ctx.open().await;
    let (_, all) = fill(&store).await;
    let q = LogQuery::default;
    let rank = |l: &str| ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].iter().position(|x| *x == l).unwrap_or(0);
    let cases: Vec<Case<'_, ServiceRecord>> = vec![
        (q(), Box::new(|_| true)),
        (LogQuery { level: Some("WARN".into()), ..q() }, Box::new(move |s| rank(&s.level) >= 3)),
        (LogQuery { level: Some("warning".into()), ..q() }, Box::new(move |s| rank(&s.level) >= 3)),
        (LogQuery { level: Some("error".into()), ..q() }, Box::new(|s| s.level == "ERROR")),
        (LogQuery { level: Some("TRACE".into()), ..q() }, Box::new(|_| true)),
        (LogQuery { level: Some("info".into()), ..q() }, Box::new(move |s| rank(&s.level) >= 2)),
        (
            LogQuery { from_ms: Some(BASE + 100), to_ms: Some(BASE + 150), ..q() },
            Box::new(|s| (BASE + 100..=BASE + 150).contains(&s.time_ms)),
        ),
        (
            LogQuery { request_id: Some("req-000004".into()), ..q() },
            Box::new(|s| s.request_id.as_deref() == Some("req-000004")),
        ),
        (LogQuery { text: Some("EVENT 5 handled".into()), ..q() }, Box::new(|s| s.message == "event 5 Handled")),
        (LogQuery { text: Some("peer\":\"10.0.0.2".into()), ..q() }, Box::new(|s| s.fields.contains("10.0.0.2"))),
        (
            LogQuery { level: Some("WARN".into()), text: Some("10.0.0.1".into()), ..q() },
            Box::new(move |s| rank(&s.level) >= 3 && s.fields.contains("10.0.0.1")),
        ),
        // Request-only filters do not apply to the service log.
        (LogQuery { model: Some("tower".into()), status: Some(StatusFilter::Error), ..q() }, Box::new(|_| true)),
    ];
    for (query, keep) in cases {
        let expected = newest_first(&all, &keep);
        assert!(!expected.is_empty(), "case selects nothing: {query:?}");
        let got = all_service(&store, &query).await;
        assert_eq!(got, expected, "{query:?} on {:?}", ctx.kind);
    }
    let err = store.query_service(&LogQuery { level: Some("loud".into()), ..q() }).await.err().map(|e| e.to_string());
    assert!(err.as_deref().is_some_and(|e| e.contains("level") && e.contains("loud")), "{err:?}");
    let err = store.query_requests(&LogQuery { cursor: Some("nope".into()), ..q() }).await.err().map(|e| e.to_string());
    assert!(err.as_deref().is_some_and(|e| e.contains("cursor") && e.contains("nope")), "{err:?}");
    store.close().await;
}

async fn cursors_page_through_everything_once(ctx: Ctx) {
    let store = ctx.open().await;
    let (all, services) = fill(&store).await;
    let expected = newest_first(&all, |_| true);

    // Pages of 7 while newer records keep arriving: keyset paging neither repeats nor skips.
    let writer = store.start_writer(WriterConfig::default());
    let mut got = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .query_requests(&LogQuery { limit: Some(7), cursor: cursor.clone(), ..Default::default() })
            .await
            .expect("page");
        assert!(page.records.len() <= 7);
        pages += 1;
        got.extend(page.records);
        // A newer record (after the first page was read) must not show up in later pages.
        assert!(writer.sink().submit(req(request(10_000 + pages, BASE + 1_000_000))));
        writer.flush().await;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    assert_eq!(pages, N_REQ.div_ceil(7));
    assert_eq!(got, expected);
    writer.shutdown().await;

    // Filtered paging, service log, limit clamped to at least 1.
    let mut got = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .query_service(&LogQuery { limit: Some(0), level: Some("INFO".into()), cursor, ..Default::default() })
            .await
            .expect("page");
        assert!(page.records.len() <= 1);
        got.extend(page.records);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<ServiceRecord> =
        newest_first(&services, |s| matches!(s.level.as_str(), "INFO" | "WARN" | "ERROR"));
    assert_eq!(got, expected);

    // Default limit 100, maximum 1000.
    let page = store.query_requests(&LogQuery::default()).await.expect("page");
    assert_eq!(page.records.len(), 100);
    assert!(page.next_cursor.is_some());
    store.close().await;
}

/// Schema 7: request records live in blocks of up to 1024. A query decodes only the blocks whose
/// summary allows a match (time range, errors, key hashes of request id, user, model, version,
/// pipeline and status), and stops walking once the page is full; what it returns is exactly
/// what the plain filter picks.
async fn queries_decode_only_the_blocks_that_can_match(ctx: Ctx) {
    let store = ctx.open().await;
    let writer = store.start_writer(WriterConfig::default());
    let sink = writer.sink();
    let n = 3000;
    let all: Vec<RequestRecord> = (0..n)
        .map(|i| {
            let mut r = request(i, BASE + i as i64);
            r.status = if (2100..2110).contains(&i) { 503 } else { 200 };
            r.error = None;
            r.user = match i {
                _ if i % 3 == 0 => None,
                0..1000 => Some("user-early".to_string()),
                _ => Some(format!("user-{}", i % 7)),
            };
            r
        })
        .collect();
    for r in &all {
        assert!(sink.submit(req(r.clone())));
    }
    assert_eq!(writer.shutdown().await.committed as usize, n);
    // Records are written in time order, so block b holds records 1024 b .. 1024 (b + 1).
    let blocks_with =
        |keep: &dyn Fn(&RequestRecord) -> bool| all.chunks(1024).filter(|c| c.iter().any(keep)).count() as u64;
    let run = async |q: LogQuery| {
        let q = LogQuery { limit: q.limit.or(Some(1000)), ..q };
        let (page, stats) = store.query_requests_with_stats(&q).await.unwrap_or_else(|e| panic!("{q:?}: {e}"));
        (page.records, stats)
    };

    // No filter, a small page: only the newest block is decoded.
    let (got, stats) = run(LogQuery { limit: Some(10), ..LogQuery::default() }).await;
    assert_eq!(got[..10], newest_first(&all, |_| true)[..10]);
    assert_eq!(stats.blocks_decoded, 1, "{stats:?}");

    let cases: Vec<Case<'_, RequestRecord>> = vec![
        (
            LogQuery { user: Some("user-early".into()), ..LogQuery::default() },
            Box::new(|r| r.user.as_deref() == Some("user-early")),
        ),
        (
            LogQuery { user: Some("user-3".into()), ..LogQuery::default() },
            Box::new(|r| r.user.as_deref() == Some("user-3")),
        ),
        (
            LogQuery { request_id: Some(all[1500].request_id.clone()), ..LogQuery::default() },
            Box::new(|r| r.request_id == all[1500].request_id),
        ),
        (LogQuery { status: Some(StatusFilter::Error), ..LogQuery::default() }, Box::new(|r| r.status >= 400)),
        (LogQuery { status: Some(StatusFilter::Code(503)), ..LogQuery::default() }, Box::new(|r| r.status == 503)),
        (LogQuery { model: Some("no-such-model".into()), ..LogQuery::default() }, Box::new(|_| false)),
        (
            LogQuery { from_ms: Some(BASE + 1100), to_ms: Some(BASE + 1200), ..LogQuery::default() },
            Box::new(|r| (BASE + 1100..=BASE + 1200).contains(&r.time_ms)),
        ),
    ];
    for (q, keep) in cases {
        let (got, stats) = run(q.clone()).await;
        assert_eq!(got, newest_first(&all, |r| keep(r)), "{q:?}");
        let decoded = blocks_with(&*keep);
        assert!(decoded < 3 || q.user.as_deref() == Some("user-3"), "{q:?}: the case should let blocks be skipped");
        assert_eq!(stats.blocks_decoded, decoded, "{q:?}: {stats:?}");
    }
    store.close().await;
}

crate::both_backends!(
    request_filters,
    service_filters,
    cursors_page_through_everything_once,
    queries_decode_only_the_blocks_that_can_match
);
