//! Request observations, bounded label values and the sampler.

use std::time::Duration;

use recserve_telemetry::labels::{BoundedNames, OVERFLOW_VALUE};
use recserve_telemetry::metrics::{Registry, SnapshotValue};
use recserve_telemetry::process::{HostCpuTimes, ProcessStats};
use recserve_telemetry::sampler::SystemSampler;
use recserve_telemetry::{Outcome, ServingMetrics, ServingMetricsConfig, Stage};

fn value_of(r: &Registry, name: &str, labels: &[(&str, &str)]) -> Option<SnapshotValue> {
    r.gather()
        .into_iter()
        .find(|f| f.name == name)?
        .series
        .into_iter()
        .find_map(|s| labels.iter().all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v)).then_some(s.value))
}

fn hist_count(r: &Registry, name: &str, labels: &[(&str, &str)]) -> u64 {
    match value_of(r, name, labels) {
        Some(SnapshotValue::Histogram(h)) => h.count,
        other => panic!("{other:?}"),
    }
}

fn scalar(r: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    match value_of(r, name, labels) {
        Some(SnapshotValue::Scalar(v)) => v,
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

#[test]
fn each_stage_is_recorded_once_and_the_outcome_exactly_once() {
    let r = Registry::new();
    let m = ServingMetrics::new(&r, ServingMetricsConfig::default()).unwrap();
    let t = m.target("ranker", "2", "home").unwrap();
    let mut obs = t.start();
    assert_eq!(scalar(&r, "recserve_in_flight_requests", &[("model", "ranker")]), 1.0);
    assert!(obs.stage(Stage::Queue, Duration::from_millis(1)));
    assert!(!obs.stage(Stage::Queue, Duration::from_millis(1)), "second record refused");
    assert!(obs.stage(Stage::Inference, Duration::from_millis(4)));
    assert!(obs.has_stage(Stage::Inference) && !obs.has_stage(Stage::Ranking));
    obs.finish_with_duration(Outcome::Ok, Duration::from_millis(6));
    assert_eq!(hist_count(&r, "recserve_stage_duration_seconds", &[("stage", "queue")]), 1);
    assert_eq!(hist_count(&r, "recserve_stage_duration_seconds", &[("stage", "inference")]), 1);
    assert_eq!(hist_count(&r, "recserve_stage_duration_seconds", &[("stage", "ranking")]), 0);
    assert_eq!(hist_count(&r, "recserve_request_duration_seconds", &[("model", "ranker")]), 1);
    assert_eq!(scalar(&r, "recserve_requests_total", &[("outcome", "ok")]), 1.0);
    assert_eq!(scalar(&r, "recserve_in_flight_requests", &[("model", "ranker")]), 0.0);
    // A dropped observation counts as cancelled, once.
    drop(t.start());
    assert_eq!(scalar(&r, "recserve_requests_total", &[("outcome", "cancelled")]), 1.0);
    assert_eq!(hist_count(&r, "recserve_request_duration_seconds", &[("model", "ranker")]), 2);
    assert_eq!(scalar(&r, "recserve_in_flight_requests", &[("model", "ranker")]), 0.0);
    // The exact window sees both requests.
    assert!(t.window_quantile(0.5).is_some());
    // Batches and queue.
    t.observe_batch(3);
    t.set_queue_depth(7);
    assert_eq!(hist_count(&r, "recserve_batch_size", &[("model", "ranker")]), 1);
    assert_eq!(scalar(&r, "recserve_queue_depth", &[("model", "ranker")]), 7.0);
}

#[test]
fn the_same_target_is_shared() {
    let r = Registry::new();
    let m = ServingMetrics::new(&r, ServingMetricsConfig::default()).unwrap();
    let a = m.target("x", "1", "none").unwrap();
    let b = m.target("x", "1", "none").unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
}

#[test]
fn label_cardinality_is_capped() {
    let r = Registry::new();
    let cfg = ServingMetricsConfig { max_models: 2, ..ServingMetricsConfig::default() };
    let m = ServingMetrics::new(&r, cfg).unwrap();
    for name in ["a", "b", "c", "d", "e"] {
        m.target(name, "1", "none").unwrap().start().finish(Outcome::Ok);
    }
    // Invalid names (e.g. taken from a request body by mistake) never become label values.
    m.target("bad name{}\"", "1", "none").unwrap().start().finish(Outcome::Ok);
    assert_eq!(m.registered_models(), 2);
    let fam = r.gather().into_iter().find(|f| f.name == "recserve_requests_total").unwrap();
    let mut models: Vec<String> =
        fam.series.iter().map(|s| s.labels.iter().find(|(k, _)| k == "model").unwrap().1.clone()).collect();
    models.sort();
    models.dedup();
    assert_eq!(models, vec!["a", "b", OVERFLOW_VALUE]);
    assert_eq!(scalar(&r, "recserve_requests_total", &[("model", OVERFLOW_VALUE), ("outcome", "ok")]), 4.0);

    let names = BoundedNames::new("pipeline", 1);
    assert!(names.register("home").is_ok());
    assert!(names.register("home").is_ok());
    let err = names.register("search").unwrap_err().to_string();
    assert!(err.contains("cardinality cap"), "{err}");
    assert!(names.register("").is_err());
}

#[test]
fn family_series_cap_refuses_new_series() {
    let r = Registry::new();
    let v = r.counter_vec("flood_total", "x", &["k"]).unwrap();
    for i in 0..recserve_telemetry::metrics::DEFAULT_MAX_SERIES_PER_FAMILY {
        v.with(&[&i.to_string()]).unwrap();
    }
    assert!(v.with(&["one-more"]).is_err());
    assert!(v.with(&["0"]).is_ok());
}

#[test]
fn proc_readers_and_sampler_produce_sane_figures() {
    let p = ProcessStats::read().unwrap();
    assert!(p.resident_memory_bytes > 0.0 && p.threads >= 1.0 && p.open_fds >= 1.0 && p.max_fds >= p.open_fds);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(p.start_time_seconds > now - 86_400.0 * 365.0 && p.start_time_seconds <= now + 1.0);
    let h = HostCpuTimes::parse("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 1 1 1 1\ncpu1 1 1 1 1 1\n").unwrap();
    assert_eq!(h.cpus, 2);
    let later = HostCpuTimes::parse("cpu  200 0 200 800 100 0 0 0 0 0\ncpu0 1\ncpu1 1\n").unwrap();
    assert!((later.utilization_since(&h).unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(later.steal_since(&h), Some(0.0));
    // The eighth column is steal: 60 of the 300 ticks between the readings.
    let stolen = HostCpuTimes::parse("cpu  200 0 200 800 100 0 0 60 0 0\ncpu0 1\ncpu1 1\n").unwrap();
    assert!((stolen.steal_since(&h).unwrap() - 60.0 / 360.0).abs() < 1e-9);
    // Kernels without the column: no steal, the rest still read.
    let old = HostCpuTimes::parse("cpu  100 0 100 700 100\ncpu0 1\n").unwrap();
    assert_eq!((old.steal, old.cpus), (0.0, 1));

    let r = Registry::new();
    let mut s = SystemSampler::new(&r).unwrap();
    s.sample();
    std::thread::sleep(Duration::from_millis(30));
    s.sample();
    let host = scalar(&r, "recserve_host_cpu_utilization_ratio", &[]);
    assert!((0.0..=1.0).contains(&host));
    let steal = scalar(&r, "recserve_host_cpu_steal_ratio", &[]);
    assert!((0.0..=host.max(0.0)).contains(&steal), "steal {steal} over utilization {host}");
    assert!(scalar(&r, "recserve_host_cpus", &[]) >= 1.0);
    assert!(scalar(&r, "recserve_host_memory_total_bytes", &[]) > 0.0);
    let handle = s.start(Duration::from_millis(10));
    handle.stop();
}
