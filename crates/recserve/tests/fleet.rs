//! Fleet mode end to end: three `recserve serve` replicas on loopback sharing one MariaDB
//! database and one model repository, a real Prometheus scraping them and a real Alertmanager
//! receiving their alerts (its webhook is this test). Checked: a deployment change and a silence
//! made through one replica reach the others; exactly one replica evaluates; killing it (SIGKILL)
//! hands evaluation over, with no doubled notification of the alert that was firing and the
//! next alert notified once, and the canary it names rolled back once for the whole fleet; the
//! fleet's series come back through any replica's Prometheus
//! proxy; request logs of all replicas land in the same tables, each naming its replica.
//! Combined throughput with one, two and three replicas is printed, not asserted (they share
//! two cores).
//!
//! Needs RECSERVE_TEST_MYSQL_URL (scripts/services/mariadb.sh), `prometheus` and Debian's
//! `prometheus-alertmanager`: without them the test prints SKIP, or fails when
//! RECSERVE_REQUIRE_MYSQL / RECSERVE_REQUIRE_PROMETHEUS / RECSERVE_REQUIRE_ALERTMANAGER is 1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;

use super::{http, mlp_request, recserve};

const RULES: &str = r#"groups:
  - name: fleet
    interval: 1s
    rules:
      - alert: FleetAlwaysFiring
        expr: count(process_start_time_seconds) > 0
        labels:
          severity: info
      - alert: FleetCanaryTraffic
        expr: sum by (model, version) (recserve_requests_total{model="mlp",version="1"}) > 0
        labels:
          severity: info
          recserve_action: rollback
"#;

/// `Some(value)` of an environment variable; `None` after a SKIP line, or a panic when
/// `require` is set to 1.
fn needed(what: &str, found: Option<String>, require: &str) -> Option<String> {
    if found.is_some() {
        return found;
    }
    if std::env::var(require).is_ok_and(|v| v == "1") {
        panic!("{what} is missing and {require}=1: the fleet test must run");
    }
    println!("SKIP: fleet test ({what} missing)");
    None
}

fn binary(names: &[&str]) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")]) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p.display().to_string());
            }
        }
    }
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn json(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = http(addr, method, path, body);
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn wait_until<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> (T, Duration) {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return (v, start.elapsed());
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Kills its child on drop, so a failing test leaves no process behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Replica {
    name: String,
    addr: String,
    proc: Proc,
}

fn start_replica(name: &str, repo: &Path, data: &Path, extra: &[String]) -> Replica {
    let mut cmd = recserve();
    cmd.args(["serve", "--http-port", "0", "--grpc-port", "0", "--repository-poll-secs", "0"])
        .arg("--model-repository")
        .arg(repo)
        .arg("--data-dir")
        .arg(data)
        .args(["--replica", name])
        .args(extra)
        .env("RECSERVE_LOG_FORMAT", "json")
        .stdout(Stdio::null());
    let up = recserve_testkit::spawn_listening(&mut cmd, Duration::from_secs(60));
    super::wait_ready(&up.bound);
    Replica { name: name.into(), addr: up.bound, proc: Proc(up.child) }
}

/// What Alertmanager posted to its webhook (this test).
#[derive(Clone, Default)]
struct Hook(Arc<Mutex<Vec<Value>>>);

impl Hook {
    fn listen() -> (Hook, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hook = Hook::default();
        let got = hook.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_ok()
                    && let Ok(v) = serde_json::from_slice::<Value>(&body)
                {
                    got.0.lock().unwrap().push(v);
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        (hook, port)
    }

    /// Notifications of the group `alertname` with `status`.
    fn count(&self, alertname: &str, status: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n["groupLabels"]["alertname"] == alertname && n["status"] == status)
            .count()
    }
}

/// Sequential V2 requests from `threads` threads over `replicas` for `secs`; requests/s.
fn throughput(replicas: &[&str], threads: usize, secs: f64) -> f64 {
    let request = mlp_request();
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let addrs: Vec<String> = replicas.iter().map(|s| s.to_string()).collect();
            let request = request.clone();
            std::thread::spawn(move || {
                let mut n = 0usize;
                while Instant::now() < stop {
                    let addr = &addrs[(i + n) % addrs.len()];
                    let (status, body) = http(addr, "POST", "/v2/models/mlp/infer", &request);
                    assert_eq!(status, 200, "{body}");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / secs
}

async fn fresh_database(url: &str) -> (String, String) {
    let name = format!("recserve_fleet_{}", std::process::id());
    let mut conn = sqlx::MySqlConnection::connect(url).await.expect("connecting to the test MariaDB");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&mut conn).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let _ = conn.close().await;
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (url.to_string(), String::new()),
    };
    let cut = base.rfind('/').unwrap();
    (format!("{}/{name}{query}", &base[..cut]), name)
}

#[test]
fn three_replicas_share_state_hand_over_evaluation_and_show_the_fleet() {
    let Some(mysql) =
        needed("RECSERVE_TEST_MYSQL_URL", std::env::var("RECSERVE_TEST_MYSQL_URL").ok(), "RECSERVE_REQUIRE_MYSQL")
    else {
        return;
    };
    let Some(prometheus) = needed("prometheus", binary(&["prometheus"]), "RECSERVE_REQUIRE_PROMETHEUS") else { return };
    let Some(alertmanager) =
        needed("alertmanager", binary(&["prometheus-alertmanager", "alertmanager"]), "RECSERVE_REQUIRE_ALERTMANAGER")
    else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (store_url, db_name) = rt.block_on(fresh_database(&mysql));
    let dir = tempfile::tempdir().unwrap();

    // One repository for the fleet (a shared volume on Kubernetes): mlp in versions 1 and 2.
    let repo = dir.path().join("models");
    let fixture = recserve_testkit::fixture_models().join("mlp").join("1").join("model.onnx");
    for v in ["1", "2"] {
        std::fs::create_dir_all(repo.join("mlp").join(v)).unwrap();
        std::fs::copy(&fixture, repo.join("mlp").join(v).join("model.onnx")).unwrap();
    }
    let rules = dir.path().join("fleet.rules.yml");
    std::fs::write(&rules, RULES).unwrap();

    // Alertmanager, whose only receiver is this test.
    let (hook, hook_port) = Hook::listen();
    let am_port = free_port();
    let am_dir = dir.path().join("alertmanager");
    std::fs::create_dir_all(&am_dir).unwrap();
    std::fs::write(
        am_dir.join("alertmanager.yml"),
        format!(
            "route:\n  receiver: test\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: test\n    webhook_configs:\n      - url: http://127.0.0.1:{hook_port}/hook\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let _am = Proc(
        Command::new(&alertmanager)
            .arg(format!("--config.file={}", am_dir.join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", am_dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let am = format!("127.0.0.1:{am_port}");
    wait_until("Alertmanager ready", Duration::from_secs(30), || {
        (http(&am, "GET", "/-/ready", "").0 == 200).then_some(())
    });

    let prom_port = free_port();
    let prom = format!("127.0.0.1:{prom_port}");
    let common: Vec<String> = [
        "--store",
        &store_url,
        "--alert-evaluation",
        "leader",
        "--evaluator-lease-secs",
        "3",
        "--state-sync-ms",
        "300",
        "--scrape-interval-secs",
        "1",
        "--evaluation-interval-secs",
        "1",
        "--no-default-rules",
        "--rules",
        &rules.display().to_string(),
        "--alertmanager-url",
        &format!("http://{am}"),
        "--prometheus-url",
        &format!("http://{prom}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut replicas: Vec<Replica> = ["r1", "r2", "r3"]
        .iter()
        .map(|name| {
            let data = dir.path().join(name);
            start_replica(name, &repo, &data, &common)
        })
        .collect();

    // Prometheus scraping the three.
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let targets: Vec<String> = replicas.iter().map(|r| format!("'{}'", r.addr)).collect();
    std::fs::write(
        prom_dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: recserve\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .unwrap();
    let _prom = Proc(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", prom_dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", prom_dir.join("data").display()))
            .arg(format!("--web.listen-address={prom}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("Prometheus ready", Duration::from_secs(30), || {
        (http(&prom, "GET", "/-/ready", "").0 == 200).then_some(())
    });

    // Exactly one replica evaluates, and every replica names the same one.
    let fleet = |addr: &str| json(addr, "GET", "/api/v1/fleet", "").1["data"].clone();
    let (leader, took) = wait_until("one evaluating replica", Duration::from_secs(20), || {
        let views: Vec<Value> = replicas.iter().map(|r| fleet(&r.addr)).collect();
        let evaluating: Vec<usize> = (0..3).filter(|&i| views[i]["evaluating"] == true).collect();
        let holders: Vec<&Value> = views.iter().map(|v| &v["evaluator"]["holder"]).collect();
        (evaluating.len() == 1 && holders.iter().all(|h| *h == holders[0])).then(|| evaluating[0])
    });
    let leader_name = replicas[leader].name.clone();
    println!("evaluator: {leader_name} (agreed in {took:?})");
    assert_eq!(fleet(&replicas[0].addr)["store"], "mysql");
    assert_eq!(fleet(&replicas[0].addr)["evaluation"], "leader");
    let (_, took) = wait_until("FleetAlwaysFiring notified", Duration::from_secs(30), || {
        (hook.count("FleetAlwaysFiring", "firing") >= 1).then_some(())
    });
    println!("first notification after {took:?}");

    // Combined throughput with 1, 2, 3 replicas (reported only: they share the machine's cores).
    let addrs: Vec<&str> = replicas.iter().map(|r| r.addr.as_str()).collect();
    let mut report = Vec::new();
    for n in 1..=3 {
        let rps = throughput(&addrs[..n], 4 * n, 2.0);
        report.push(format!("{n} replica(s): {rps:.0} requests/s"));
    }
    println!("fleet throughput (mlp, V2 REST, 4 client threads per replica): {}", report.join("; "));

    // A deployment change through one replica reaches the others.
    let (status, body) = json(
        &replicas[0].addr,
        "POST",
        "/api/v1/deployments/mlp/canary",
        r#"{"version":1,"percent":10,"reason":"fleet test"}"#,
    );
    assert_eq!(status, 200, "{body}");
    for r in &replicas[1..] {
        let (_, took) = wait_until(&format!("the canary reaching {}", r.name), Duration::from_secs(10), || {
            let (_, v) = json(&r.addr, "GET", "/api/v1/deployments/mlp", "");
            (v["data"]["mode"] == "canary").then_some(())
        });
        println!("canary visible on {} after {took:?}", r.name);
    }
    // So does a silence (for nothing that fires here), and the audit trail is shared.
    let silence = r#"{"matchers":[{"name":"alertname","value":"NothingHere","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"fleet-test","comment":"shared"}"#;
    let (status, body) = json(&replicas[1].addr, "POST", "/api/v2/silences", silence);
    assert_eq!(status, 200, "{body}");
    let id = body["silenceID"].as_str().unwrap_or_default().to_string();
    assert!(!id.is_empty(), "{body}");
    wait_until("the silence reaching r3", Duration::from_secs(10), || {
        let (_, v) = json(&replicas[2].addr, "GET", "/api/v2/silences", "");
        v.as_array().is_some_and(|a| a.iter().any(|s| s["id"] == id.as_str())).then_some(())
    });
    let (_, audit) = json(&replicas[2].addr, "GET", "/api/v1/audit?action=deploy.canary", "");
    let entries = audit["data"]["records"].as_array().cloned().unwrap_or_default();
    assert!(entries.iter().any(|e| e["replica"] == "r1"), "the canary's audit entry names r1: {audit}");

    // Kill the evaluating replica; another takes over within the lease's time to live.
    let killed = replicas.remove(leader);
    let term_before = fleet(&replicas[0].addr)["evaluator"]["term"].as_i64().unwrap_or(0);
    drop(killed.proc);
    let (next, took) = wait_until("evaluation handed over", Duration::from_secs(20), || {
        let views: Vec<Value> = replicas.iter().map(|r| fleet(&r.addr)).collect();
        let evaluating: Vec<usize> = (0..replicas.len()).filter(|&i| views[i]["evaluating"] == true).collect();
        (evaluating.len() == 1).then(|| evaluating[0])
    });
    let term_after = fleet(&replicas[next].addr)["evaluator"]["term"].as_i64().unwrap_or(0);
    println!(
        "{} took over from {} after {took:?} (term {term_before} -> {term_after})",
        replicas[next].name, killed.name
    );
    assert!(term_after > term_before, "a hand-over starts a new term");

    // Traffic to the canary version makes the new evaluator fire the second rule.
    for r in &replicas {
        for _ in 0..5 {
            let (status, body) = http(&r.addr, "POST", "/v2/models/mlp/versions/1/infer", &mlp_request());
            assert_eq!(status, 200, "{body}");
        }
    }
    wait_until("FleetCanaryTraffic notified", Duration::from_secs(30), || {
        (hook.count("FleetCanaryTraffic", "firing") >= 1).then_some(())
    });
    // Its rollback action ran once, on the evaluator, and every replica serves the result.
    for r in &replicas {
        wait_until(&format!("the rollback reaching {}", r.name), Duration::from_secs(15), || {
            let (_, v) = json(&r.addr, "GET", "/api/v1/deployments/mlp", "");
            (v["data"]["mode"] == "stable" && v["data"]["retired"] == serde_json::json!([1])).then_some(())
        });
    }
    std::thread::sleep(Duration::from_secs(5));
    let (_, audit) = json(&replicas[0].addr, "GET", "/api/v1/audit?action=deploy.rollback", "");
    let rollbacks = audit["data"]["records"].as_array().cloned().unwrap_or_default();
    assert_eq!(rollbacks.len(), 1, "one automatic rollback for the fleet: {audit}");
    assert_eq!(rollbacks[0]["actor"], "alerting");
    assert_eq!(rollbacks[0]["replica"].as_str(), Some(replicas[next].name.as_str()), "done by the evaluator");
    assert_eq!(hook.count("FleetAlwaysFiring", "firing"), 1, "the firing alert was notified once across the hand-over");
    assert_eq!(hook.count("FleetAlwaysFiring", "resolved"), 0, "the hand-over resolved nothing");
    assert_eq!(hook.count("FleetCanaryTraffic", "firing"), 1, "the new evaluator notified the new alert once");

    // The fleet's series through a surviving replica's Prometheus proxy.
    let q = |expr: &str| {
        let path = format!("/api/v1/fleet/query?query={}", recserve_testkit::form_encode(expr));
        json(&replicas[0].addr, "GET", &path, "").1
    };
    wait_until("Prometheus scraped three replicas", Duration::from_secs(20), || {
        (q("count(up)")["data"]["result"][0]["value"][1] == "3").then_some(())
    });
    wait_until("one evaluator in Prometheus' view", Duration::from_secs(20), || {
        (q("sum(recserve_alert_evaluator)")["data"]["result"][0]["value"][1] == "1").then_some(())
    });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (status, range) = json(
        &replicas[1].addr,
        "GET",
        &format!(
            "/api/v1/fleet/query_range?query={}&start={}&end={now}&step=1",
            recserve_testkit::form_encode("sum by (instance) (recserve_requests_total)"),
            now - 60
        ),
        "",
    );
    assert_eq!(status, 200, "{range}");
    assert!(range["data"]["result"].as_array().map_or(0, Vec::len) >= 2, "per-replica series: {range}");

    // Request logs of every replica in the shared tables, each naming its replica.
    wait_until("request logs of several replicas", Duration::from_secs(20), || {
        let (_, logs) = json(&replicas[0].addr, "GET", "/api/v1/logs?model=mlp&limit=1000", "");
        let mut names: Vec<String> = logs["data"]["records"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["replica"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        names.sort();
        names.dedup();
        (names.len() >= 3).then_some(())
    });

    drop(replicas);
    rt.block_on(async {
        if let Ok(mut conn) = sqlx::MySqlConnection::connect(&mysql).await {
            let _ =
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db_name}"))).execute(&mut conn).await;
        }
    });
}
