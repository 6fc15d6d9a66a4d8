use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use recserve_telemetry::exposition::{encode, format_float};
use recserve_telemetry::{Outcome, Registry, Stage, Telemetry, TelemetryConfig};

#[test]
fn exact_text_for_a_small_registry() {
    let r = Registry::new();
    let c = r.counter_vec("demo_requests_total", "Requests \\ handled.\nSecond line.", &["code"]).unwrap();
    c.with(&["200"]).unwrap().inc_by(3.0);
    c.with(&["a\"b\\c\nd"]).unwrap().inc();
    r.gauge("demo_temperature_celsius", "Temperature.").unwrap().set(-1.5);
    let h = r.histogram("demo_latency_seconds", "Latency.", &[0.1, 1.0]).unwrap();
    h.observe(0.0625);
    h.observe(0.1);
    h.observe(0.5);
    h.observe(3.0);
    // A family without series is omitted.
    r.gauge_vec("demo_empty", "Nothing.", &["x"]).unwrap();
    let text = encode(&r.gather());
    let expected = "# HELP demo_requests_total Requests \\\\ handled.\\nSecond line.\n\
# TYPE demo_requests_total counter\n\
demo_requests_total{code=\"200\"} 3\n\
demo_requests_total{code=\"a\\\"b\\\\c\\nd\"} 1\n\
# HELP demo_temperature_celsius Temperature.\n\
# TYPE demo_temperature_celsius gauge\n\
demo_temperature_celsius -1.5\n\
# HELP demo_latency_seconds Latency.\n\
# TYPE demo_latency_seconds histogram\n\
demo_latency_seconds_bucket{le=\"0.1\"} 2\n\
demo_latency_seconds_bucket{le=\"1\"} 3\n\
demo_latency_seconds_bucket{le=\"+Inf\"} 4\n\
demo_latency_seconds_sum 3.6625\n\
demo_latency_seconds_count 4\n";
    assert_eq!(text, expected);
}

#[test]
fn floats_are_formatted_like_prometheus() {
    assert_eq!(format_float(f64::INFINITY), "+Inf");
    assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
    assert_eq!(format_float(f64::NAN), "NaN");
    assert_eq!(format_float(1.0), "1");
    assert_eq!(format_float(0.00025), "0.00025");
    assert_eq!(format_float(1e21), "1000000000000000000000");
}

#[test]
fn registry_rejects_bad_names_duplicates_and_buckets() {
    let r = Registry::new();
    assert!(r.counter("9bad", "x").is_err());
    assert!(r.counter_vec("ok_total", "x", &["__reserved"]).is_err());
    assert!(r.histogram_vec("h_seconds", "x", &["le"], &[1.0]).is_err());
    assert!(r.histogram("h2_seconds", "x", &[1.0, 1.0]).is_err());
    r.counter("dup_total", "x").unwrap();
    assert!(r.counter("dup_total", "x").is_err());
    let v = r.counter_vec("lc_total", "x", &["a", "b"]).unwrap();
    assert!(v.with(&["only-one"]).is_err());
}

fn populated_telemetry() -> Telemetry {
    let t = Telemetry::new(TelemetryConfig::default()).unwrap();
    let target = t.serving.target("ranker", "3", "home").unwrap();
    target.set_queue_capacity(128);
    target.set_queue_depth(4);
    target.set_model_memory(1 << 20);
    target.observe_batch(8);
    for (i, outcome) in [Outcome::Ok, Outcome::Ok, Outcome::Error].into_iter().enumerate() {
        let mut obs = target.start();
        for s in Stage::ALL {
            obs.stage(s, Duration::from_micros(100 * (i as u64 + 1)));
        }
        obs.finish(outcome);
    }
    let mut sampler = recserve_telemetry::sampler::SystemSampler::new(&Registry::new()).unwrap();
    sampler.sample();
    t
}

#[test]
fn full_exposition_has_process_metrics_and_consistent_histograms() {
    let t = populated_telemetry();
    let text = t.render_metrics();
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_threads",
        "recserve_requests_total{model=\"ranker\",version=\"3\",pipeline=\"home\",outcome=\"error\"} 1",
        "recserve_stage_duration_seconds_count{model=\"ranker\",version=\"3\",pipeline=\"home\",stage=\"ranking\"} 3",
        "recserve_request_duration_seconds_bucket{model=\"ranker\",version=\"3\",pipeline=\"home\",le=\"+Inf\"} 3",
        "recserve_in_flight_requests{model=\"ranker\",version=\"3\",pipeline=\"home\"} 0",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
    assert!(text.ends_with('\n'));
    // Each TYPE appears once per family.
    let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
    let mut dedup = types.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(types.len(), dedup.len());
}

/// `promtool check metrics` must be silent. Skips when promtool is missing unless
/// RECSERVE_REQUIRE_PROMTOOL=1, in which case it fails.
#[test]
fn promtool_check_metrics_is_clean() {
    let required = std::env::var("RECSERVE_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
    let found = Command::new("promtool").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if found.is_err() {
        assert!(!required, "RECSERVE_REQUIRE_PROMTOOL=1 but promtool is not on PATH (apt-get install prometheus)");
        eprintln!("NOTICE: promtool not on PATH; skipping promtool_check_metrics_is_clean");
        return;
    }
    let t = populated_telemetry();
    // Include the sampler's gauges too.
    let mut sampler = recserve_telemetry::sampler::SystemSampler::new(&t.registry);
    if let Ok(s) = sampler.as_mut() {
        s.sample();
        s.sample();
    }
    let text = t.render_metrics();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let complaints = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && complaints.trim().is_empty(), "promtool complained:\n{complaints}\n---\n{text}");
}
