//! Alerting in the real binary: rule files given with --rules reload on SIGHUP and when they
//! change on disk; a broken file keeps the rules in use; the bundled rules load by default.

use super::http;
use super::telemetry::{serve_with, server_log, terminate};
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn rules(name: &str) -> String {
    format!("groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: {name}\n        expr: vector(1) > 2\n")
}

fn serve(data: &Path, rules: &Path, extra: &[&str]) -> (Child, String) {
    let mut args: Vec<&OsStr> = vec![OsStr::new("--rules"), rules.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    serve_with(data, &args)
}

/// Names of the alerting rules the server has loaded.
fn rule_names(addr: &str) -> Vec<String> {
    let (status, body) = http(addr, "GET", "/api/v1/rules", "");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()))
        .collect()
}

fn wait_for(addr: &str, want: &str, data: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !rule_names(addr).iter().any(|n| n == want) {
        assert!(Instant::now() < deadline, "rule {want} never loaded; server log:\n{}", server_log(data));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn rules_reload_on_sighup_and_on_change_and_bundled_rules_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, rules("First")).unwrap();
    let (child, addr) = serve(dir.path(), &file, &[]);
    let names = rule_names(&addr);
    assert!(names.contains(&"First".to_string()), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("RecserveModel") || n.contains("Latency")), "bundled rules: {names:?}");

    // SIGHUP reloads.
    std::fs::write(&file, rules("Second")).unwrap();
    assert!(Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success());
    wait_for(&addr, "Second", dir.path());

    // A broken file is refused; the rules in use stay.
    std::fs::write(&file, "groups:\n  - name: g\n    rules:\n      - alert: Broken\n        expr: (\n").unwrap();
    let (status, body) = http(&addr, "POST", "/api/v1/rules/reload", "");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("rules.yml:5:"), "{body}");
    assert!(rule_names(&addr).contains(&"Second".to_string()));

    // A change on disk is picked up by the watcher (every 5 s) without a signal.
    std::fs::write(&file, rules("Third")).unwrap();
    wait_for(&addr, "Third", dir.path());
    terminate(child);

    let (child, addr) = serve(dir.path(), &file, &["--no-default-rules"]);
    assert_eq!(rule_names(&addr), vec!["Third".to_string()]);
    terminate(child);
}

fn alert_names(addr: &str) -> Vec<String> {
    let (status, body) = http(addr, "GET", "/api/v1/alerts", "");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string))
        .collect()
}

fn fleet_view(addr: &str) -> serde_json::Value {
    let (status, body) = http(addr, "GET", "/api/v1/fleet", "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["data"].clone()
}

/// `--alert-evaluation off` leaves evaluation to a Prometheus loaded with the exported rules:
/// the rules load and are listed, nothing is evaluated. The default on SQLite (`local`) on the
/// same rules fires.
#[test]
fn evaluation_off_leaves_the_rules_to_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(
        &file,
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Always\n        expr: vector(1) > 0\n",
    )
    .unwrap();
    let (child, addr) = serve(dir.path(), &file, &["--no-default-rules", "--alert-evaluation", "off"]);
    let view = fleet_view(&addr);
    assert_eq!((view["evaluation"].as_str(), view["evaluating"].as_bool()), (Some("off"), Some(false)), "{view}");
    assert!(view["evaluator"].is_null(), "{view}");
    assert_eq!(rule_names(&addr), vec!["Always".to_string()]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(alert_names(&addr).is_empty(), "nothing is evaluated with --alert-evaluation off");
    terminate(child);

    let (child, addr) = serve(dir.path(), &file, &["--no-default-rules"]);
    let view = fleet_view(&addr);
    assert_eq!((view["evaluation"].as_str(), view["evaluating"].as_bool()), (Some("local"), Some(true)), "{view}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !alert_names(&addr).contains(&"Always".to_string()) {
        assert!(Instant::now() < deadline, "the rule never fired; server log:\n{}", server_log(dir.path()));
        std::thread::sleep(Duration::from_millis(200));
    }
    terminate(child);
}
