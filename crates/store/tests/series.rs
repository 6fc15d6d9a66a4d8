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
    // Called inside the test's tokio runtime: must not panic.
    let p = SqlSeriesPersistence::open(&ctx.config).unwrap_or_else(|e| panic!("open persistence: {e}"));
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

crate::both_backends!(round_trip_through_series_store);
