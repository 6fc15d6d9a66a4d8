//! The telemetry series store persisted through SqlSeriesPersistence: history (with staleness
//! markers) survives a reopen, also after compaction.

use recserve_store::SqlSeriesPersistence;
use recserve_telemetry::LabelSet;
use recserve_telemetry::store::{SeriesData, SeriesStore, StoreConfig as SeriesConfig};

use crate::common::Ctx;

fn bits(data: Vec<SeriesData>) -> Vec<(LabelSet, Vec<(i64, u64)>)> {
    let mut v: Vec<_> =
        data.into_iter().map(|(l, pts)| (l, pts.into_iter().map(|(t, x)| (t, x.to_bits())).collect())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn labels(name: &str, model: &str) -> LabelSet {
    LabelSet::from_pairs([("__name__", name), ("model", model)])
}

fn open(ctx: &Ctx) -> SeriesStore {
    open_scoped(ctx, None)
}

fn open_scoped(ctx: &Ctx, scope: Option<&str>) -> SeriesStore {
    // Called inside the test's tokio runtime: must not panic.
    let p = SqlSeriesPersistence::open_scoped(&ctx.config, scope.map(str::to_string))
        .unwrap_or_else(|e| panic!("open persistence: {e}"));
    SeriesStore::open(SeriesConfig::default(), Box::new(p)).unwrap_or_else(|e| panic!("open series store: {e}"))
}

async fn round_trip_through_series_store(ctx: Ctx) {
    let t0 = 1_700_000_000_000;
    let first = open(&ctx);
    let a = labels("recserve_requests_total", "ranker");
    let b = labels("recserve_requests_total", "tower \"quoted\" é");
    first.ingest_scrape(t0, vec![(a.clone(), 1.0), (b.clone(), 2.5)]);
    first.ingest_scrape(t0 + 5000, vec![(a.clone(), 3.0)]); // b goes stale (NaN marker)
    first.ingest_scrape(t0 + 10_000, vec![(a.clone(), f64::INFINITY), (b.clone(), -0.0)]);
    let written = bits(first.dump());
    assert_eq!(written.iter().map(|(_, p)| p.len()).sum::<usize>(), 6);
    drop(first);

    let second = open(&ctx);
    assert_eq!(bits(second.dump()), written);
    assert!(second.dump().iter().any(|(_, pts)| pts.iter().any(|(_, v)| recserve_telemetry::store::is_stale(*v))));

    // Compaction replaces everything; appends after it persist too.
    second.compact().expect("compact");
    let c = labels("recserve_queue_depth", "ranker");
    second.ingest_scrape(t0 + 15_000, vec![(a.clone(), 4.0), (c.clone(), 7.0)]);
    let after = bits(second.dump());
    drop(second);
    let third = open(&ctx);
    assert_eq!(bits(third.dump()), after);
    assert_eq!(third.series_count(), 3);
    drop(third);
}

#[test]
fn usable_from_a_plain_thread() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = recserve_store::StoreConfig::sqlite_in(dir.path());
    let t = std::thread::spawn(move || {
        let p = SqlSeriesPersistence::open(&config).expect("open");
        let s = SeriesStore::open(SeriesConfig::default(), Box::new(p)).expect("series store");
        s.ingest_scrape(1000, vec![(labels("m", "x"), 1.0)]);
        drop(s);
        let p = SqlSeriesPersistence::open(&config).expect("reopen");
        let s = SeriesStore::open(SeriesConfig::default(), Box::new(p)).expect("series store");
        s.dump()
    });
    let dump = t.join().expect("thread");
    assert_eq!(dump.len(), 1);
    assert_eq!(dump[0].1, vec![(1000, 1.0)]);
}

/// Replicas sharing a store keep their own history: same metric names, no mixing, and one
/// replica's compaction leaves the others' series alone.
async fn replicas_keep_their_own_history(ctx: Ctx) {
    let t0 = 1_700_000_000_000;
    let a = labels("recserve_requests_total", "ranker");
    let one = open_scoped(&ctx, Some("replica-1"));
    let two = open_scoped(&ctx, Some("replica-2"));
    let single = open(&ctx);
    one.ingest_scrape(t0, vec![(a.clone(), 1.0)]);
    two.ingest_scrape(t0, vec![(a.clone(), 20.0)]);
    two.ingest_scrape(t0 + 5000, vec![(a.clone(), 21.0)]);
    single.ingest_scrape(t0, vec![(a.clone(), 300.0)]);
    one.compact().expect("compact replica-1");
    one.ingest_scrape(t0 + 5000, vec![(a.clone(), 2.0)]);
    let (want_one, want_two, want_single) = (bits(one.dump()), bits(two.dump()), bits(single.dump()));
    drop((one, two, single));

    let one = open_scoped(&ctx, Some("replica-1"));
    let two = open_scoped(&ctx, Some("replica-2"));
    let single = open(&ctx);
    assert_eq!(bits(one.dump()), want_one);
    assert_eq!(bits(two.dump()), want_two);
    assert_eq!(bits(single.dump()), want_single);
    assert_eq!(want_two[0].1.iter().map(|(_, v)| f64::from_bits(*v)).collect::<Vec<_>>(), vec![20.0, 21.0]);
    assert_eq!(want_one[0].1.iter().map(|(_, v)| f64::from_bits(*v)).collect::<Vec<_>>(), vec![1.0, 2.0]);
    assert!(
        one.dump().iter().all(|(l, _)| l.get(recserve_store::series::SCOPE_LABEL).is_none()),
        "the scope is not shown"
    );
}

/// A replica that is gone (no sample for longer than the age given) loses its history, at once
/// and at later compactions; live replicas, the unscoped series and the caller's own keep theirs.
async fn replicas_that_are_gone_are_forgotten(ctx: Ctx) {
    use recserve_telemetry::store::SeriesPersistence;
    let hour = 3_600_000;
    let now = recserve_telemetry::store::now_ms();
    let a = labels("recserve_requests_total", "ranker");
    let b = labels("recserve_requests_total", "tower");
    let open = |scope: Option<&str>| {
        SqlSeriesPersistence::open_scoped(&ctx.config, scope.map(str::to_string))
            .unwrap_or_else(|e| panic!("open {scope:?}: {e}"))
    };
    let (mut gone, mut live, mut single, mut me) =
        (open(Some("pod-gone")), open(Some("pod-live")), open(None), open(Some("pod-me")));
    gone.append(&[(&a, now - 3 * hour, 1.0), (&a, now - 2 * hour, 2.0), (&b, now - 2 * hour, 3.0)]).expect("append");
    live.append(&[(&a, now - 3 * hour, 1.0), (&a, now - 60_000, 5.0)]).expect("append");
    single.append(&[(&a, now - 3 * hour, 7.0)]).expect("append");
    me.append(&[(&a, now - 3 * hour, 9.0)]).expect("append");

    assert_eq!(me.forget_stale_scopes(std::time::Duration::from_secs(3600)).expect("forget"), 2);
    // A series of the live replica that stopped long ago goes too; the replica's others stay.
    live.append(&[(&b, now - 2 * hour, 1.0)]).expect("append");
    let mine = me.load().expect("load");
    me.compact(&mine).expect("compact");
    drop((gone, live, single, me));

    let points =
        |scope: Option<&str>| -> usize { open(scope).load().expect("load").iter().map(|(_, p)| p.len()).sum() };
    assert_eq!(points(Some("pod-gone")), 0, "the gone replica's history is removed");
    assert_eq!(points(Some("pod-live")), 2, "the live replica keeps its recent series, whole");
    assert_eq!(points(None), 1, "unscoped series are not a replica's");
    assert_eq!(points(Some("pod-me")), 1, "the caller's own series stay");
}

crate::both_backends!(
    round_trip_through_series_store,
    replicas_keep_their_own_history,
    replicas_that_are_gone_are_forgotten
);
