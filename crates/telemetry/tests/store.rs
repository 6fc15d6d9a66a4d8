//! Series store: scraping, retention, persistence round trip, torn tails, compaction.

use std::io::Write;
use std::time::Duration;

use recserve_telemetry::store::{SeriesStore, StoreConfig, is_stale};
use recserve_telemetry::{Registry, Telemetry, TelemetryConfig};

use crate::{T, ls};

fn cfg(retention_s: u64) -> StoreConfig {
    StoreConfig { scrape_interval: Duration::from_secs(5), retention: Duration::from_secs(retention_s) }
}

#[test]
fn scrape_flattens_histograms_like_prometheus() {
    let r = Registry::new();
    let h = r.histogram_vec("x_seconds", "x", &["stage"], &[0.5, 1.0]).unwrap().with(&["queue"]).unwrap();
    h.observe(0.25);
    h.observe(2.0);
    r.counter("c_total", "c").unwrap().inc();
    let st = SeriesStore::new(cfg(3600));
    st.scrape(&r, T);
    let names: Vec<String> = st.dump().iter().map(|(l, _)| l.to_string()).collect();
    assert_eq!(
        names,
        vec![
            "c_total{}",
            "x_seconds_bucket{le=\"+Inf\", stage=\"queue\"}",
            "x_seconds_bucket{le=\"0.5\", stage=\"queue\"}",
            "x_seconds_bucket{le=\"1\", stage=\"queue\"}",
            "x_seconds_count{stage=\"queue\"}",
            "x_seconds_sum{stage=\"queue\"}",
        ]
    );
    let dump = st.dump();
    assert_eq!(dump[1].1, vec![(T, 2.0)]);
    assert_eq!(dump[5].1, vec![(T, 2.25)]);
}

#[test]
fn retention_drops_old_samples() {
    let st = SeriesStore::new(cfg(60));
    for i in 0..100 {
        st.ingest_scrape(T + i * 5_000, vec![(ls(&[("__name__", "g")]), i as f64)]);
    }
    let (oldest, newest) = st.time_range().unwrap();
    assert_eq!(newest, T + 99 * 5_000);
    assert_eq!(oldest, newest - 60_000);
    assert_eq!(st.sample_count(), 13);
}

#[test]
fn default_retention_is_six_hours_at_five_seconds() {
    let c = StoreConfig::default();
    assert_eq!(c.retention, Duration::from_secs(6 * 3600));
    assert_eq!(c.scrape_interval, Duration::from_secs(5));
    // 6 h of 5 s scrapes of one series are all kept.
    let st = SeriesStore::new(c);
    for i in 0..=(6 * 720) {
        st.ingest_scrape(T + i * 5_000, vec![(ls(&[("__name__", "g")]), i as f64)]);
    }
    assert_eq!(st.sample_count(), 6 * 720 + 1);
}

#[test]
fn persistence_round_trip_keeps_history_and_staleness() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let st = SeriesStore::open_dir(cfg(3600), dir.path()).unwrap();
        st.ingest_scrape(T, vec![(ls(&[("__name__", "a"), ("x", "1")]), 1.5), (ls(&[("__name__", "b")]), 2.0)]);
        st.ingest_scrape(T + 5_000, vec![(ls(&[("__name__", "a"), ("x", "1")]), 2.5)]);
        st.dump()
    };
    let st = SeriesStore::open_dir(cfg(3600), dir.path()).unwrap();
    let after = st.dump();
    assert_eq!(after.len(), before.len());
    for ((la, pa), (lb, pb)) in after.iter().zip(&before) {
        assert_eq!(la, lb);
        assert_eq!(pa.len(), pb.len());
        for (x, y) in pa.iter().zip(pb) {
            assert_eq!(x.0, y.0);
            assert_eq!(x.1.to_bits(), y.1.to_bits());
        }
    }
    assert!(is_stale(after[1].1[1].1), "b got a staleness marker");
    // Appending after a reload continues the same file.
    st.ingest_scrape(T + 10_000, vec![(ls(&[("__name__", "a"), ("x", "1")]), 3.5)]);
    drop(st);
    let st = SeriesStore::open_dir(cfg(3600), dir.path()).unwrap();
    assert_eq!(st.dump()[0].1.len(), 3);
}

#[test]
fn torn_tail_is_cut_and_bad_header_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let st = SeriesStore::open_dir(cfg(3600), dir.path()).unwrap();
        st.ingest_scrape(T, vec![(ls(&[("__name__", "a")]), 1.0)]);
    }
    let path = dir.path().join("series.bin");
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&[2, 1, 2, 3]).unwrap();
    let st = SeriesStore::open_dir(cfg(3600), dir.path()).unwrap();
    assert_eq!(st.sample_count(), 1);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    drop(st);
    std::fs::write(&path, b"garbage!garbage").unwrap();
    assert!(SeriesStore::open_dir(cfg(3600), dir.path()).is_err());
}

#[test]
fn compaction_drops_expired_samples_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let st = SeriesStore::open_dir(cfg(60), dir.path()).unwrap();
    for i in 0..200 {
        st.ingest_scrape(T + i * 5_000, vec![(ls(&[("__name__", "g"), ("k", "v")]), i as f64)]);
    }
    let path = dir.path().join("series.bin");
    let big = std::fs::metadata(&path).unwrap().len();
    st.compact().unwrap();
    let small = std::fs::metadata(&path).unwrap().len();
    assert!(small < big / 5, "{small} vs {big}");
    drop(st);
    let st = SeriesStore::open_dir(cfg(60), dir.path()).unwrap();
    assert_eq!(st.sample_count(), 13);
}

#[test]
fn telemetry_with_data_dir_keeps_history_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = TelemetryConfig { data_dir: Some(dir.path().to_path_buf()), ..TelemetryConfig::default() };
    {
        let t = Telemetry::new(config.clone()).unwrap();
        let target = t.serving.target("m", "1", "none").unwrap();
        target.start().finish(recserve_telemetry::Outcome::Ok);
        t.store.scrape(&t.registry, T);
    }
    let t = Telemetry::new(config).unwrap();
    let v = recserve_telemetry::promql::instant_query(
        &t.store,
        "recserve_requests_total{model=\"m\", outcome=\"ok\"}",
        T + 1_000,
    )
    .unwrap()
    .into_vector()
    .unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].value, 1.0);
}

#[test]
fn scraper_thread_scrapes_and_stops() {
    let r = std::sync::Arc::new(Registry::new());
    r.gauge("g", "g").unwrap().set(1.0);
    let st = std::sync::Arc::new(SeriesStore::new(StoreConfig {
        scrape_interval: Duration::from_millis(20),
        retention: Duration::from_secs(60),
    }));
    let handle = st.start_scraper(r);
    while st.sample_count() < 3 {
        std::thread::sleep(Duration::from_millis(10));
    }
    handle.stop();
    let n = st.sample_count();
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(st.sample_count(), n);
}
