//! The bottleneck analysis names the dominant stage, queue and CPU saturation, CPU steal, errors.

use std::time::Duration;

use recserve_telemetry::analysis::{FindingKind, bottleneck};
use recserve_telemetry::{Outcome, Registry, SeriesStore, ServingMetrics, ServingMetricsConfig, Stage, StoreConfig};

use crate::{T, ls};

#[test]
fn names_the_dominant_stage() {
    let r = Registry::new();
    let m = ServingMetrics::new(&r, ServingMetricsConfig::default()).unwrap();
    let t = m.target("ranker", "1", "home").unwrap();
    t.set_queue_capacity(100);
    let st = SeriesStore::new(StoreConfig::default());
    for i in 0..=12 {
        for _ in 0..10 {
            let mut obs = t.start();
            obs.stage(Stage::Queue, Duration::from_micros(500));
            obs.stage(Stage::Retrieval, Duration::from_millis(2));
            obs.stage(Stage::Ranking, Duration::from_millis(12));
            obs.finish_with_duration(Outcome::Ok, Duration::from_micros(14_500));
        }
        t.set_queue_depth(10);
        st.scrape(&r, T + i * 5_000);
    }
    let report = bottleneck(&st, T + 60_000, Duration::from_secs(60));
    assert_eq!(report.stages[0].stage, "ranking");
    assert!((report.stages[0].share - 12.0 / 14.5).abs() < 1e-6, "{:?}", report.stages);
    assert!((report.stages[0].mean_seconds - 0.012).abs() < 1e-9);
    assert!(report.stages[0].p99_seconds > 0.01 && report.stages[0].p99_seconds <= 0.025);
    assert_eq!(report.findings[0].kind, FindingKind::StageLatency);
    assert!(report.summary.contains("ranking"), "{}", report.summary);
    let queue = report.findings.iter().find(|f| f.kind == FindingKind::QueueSaturation).unwrap();
    assert!((queue.value - 0.1).abs() < 1e-9, "{queue:?}");
    let errors = report.findings.iter().find(|f| f.kind == FindingKind::ErrorRatio).unwrap();
    assert_eq!(errors.value, 0.0);
}

#[test]
fn saturation_and_errors_outrank_stage_shares() {
    let st = SeriesStore::new(StoreConfig::default());
    let mut s = Vec::new();
    for i in 0..=12i64 {
        let t = T + i * 5_000;
        s.push((ls(&[("__name__", "recserve_host_cpu_utilization_ratio")]), t, 0.97));
        s.push((ls(&[("__name__", "recserve_process_cpu_utilization_ratio")]), t, 0.9));
        let ok = ls(&[("__name__", "recserve_requests_total"), ("model", "m"), ("outcome", "ok")]);
        let err = ls(&[("__name__", "recserve_requests_total"), ("model", "m"), ("outcome", "error")]);
        s.push((ok, t, 90.0 * i as f64));
        s.push((err, t, 10.0 * i as f64));
    }
    st.append(&s);
    let report = bottleneck(&st, T + 60_000, Duration::from_secs(60));
    let kinds: Vec<FindingKind> = report.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&FindingKind::CpuSaturation) && kinds.contains(&FindingKind::ErrorRatio));
    let cpu = report.findings.iter().find(|f| f.kind == FindingKind::CpuSaturation).unwrap();
    assert!(cpu.sentence.contains("saturated"), "{}", cpu.sentence);
    let err = report.findings.iter().find(|f| f.kind == FindingKind::ErrorRatio).unwrap();
    assert!((err.value - 0.1).abs() < 1e-9);
    assert!(report.summary.starts_with("The bottleneck"));
}

#[test]
fn cpu_steal_is_named_when_it_matters() {
    let report_with_steal = |steal: f64| {
        let st = SeriesStore::new(StoreConfig::default());
        let mut s = Vec::new();
        for i in 0..=12i64 {
            let t = T + i * 5_000;
            s.push((ls(&[("__name__", "recserve_host_cpu_utilization_ratio")]), t, 0.55));
            s.push((ls(&[("__name__", "recserve_host_cpu_steal_ratio")]), t, steal));
        }
        st.append(&s);
        bottleneck(&st, T + 60_000, Duration::from_secs(60))
    };
    // 12 % steal on a half-busy host: the hypervisor, not the CPU load, is the finding.
    let report = report_with_steal(0.12);
    assert_eq!(report.findings[0].kind, FindingKind::CpuSteal, "{:?}", report.findings);
    assert_eq!(report.findings[0].severity, 1.0);
    assert!((report.findings[0].value - 0.12).abs() < 1e-9);
    assert!(report.findings[0].sentence.contains("12.0%"), "{}", report.findings[0].sentence);
    assert!(report.summary.contains("hypervisor"), "{}", report.summary);
    // 3 %: reported, with a severity that grows with it (0.3).
    let report = report_with_steal(0.03);
    let steal = report.findings.iter().find(|f| f.kind == FindingKind::CpuSteal).expect("steal finding");
    assert!((steal.severity - 0.3).abs() < 1e-9);
    // Under 1 %: not worth a line.
    let report = report_with_steal(0.005);
    assert!(report.findings.iter().all(|f| f.kind != FindingKind::CpuSteal), "{:?}", report.findings);
}

#[test]
fn empty_store_says_so() {
    let st = SeriesStore::new(StoreConfig::default());
    let report = bottleneck(&st, T, Duration::from_secs(300));
    assert!(report.findings.is_empty());
    assert!(report.summary.contains("Not enough data"));
}
