//! The deployment loop in the real binary: a worse ranker deployed as a canary through the API
//! loses click-through against the stable arm, the bundled canary rule fires, recserve rolls it
//! back by itself, traffic returns to stable, no request fails, and the state survives a restart.
//! Also: the deployment API's refusals and the `recserve deploy` CLI, and drift showing up when
//! the shoppers' inputs shift.

use super::telemetry::{serve_with, server_log, terminate};
use super::{http, recserve};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A running demo, killed if the test fails before [`Demo::stop`].
struct Demo(Option<std::process::Child>);

impl Demo {
    /// SIGTERM, and a clean exit expected.
    fn stop(mut self) {
        if let Some(child) = self.0.take() {
            terminate(child);
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `recserve demo` in `dir` with `extra` flags; returns it and its HTTP address.
fn spawn_demo(dir: &Path, extra: &[&str]) -> (Demo, String) {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("demo.log")).unwrap();
    let mut child = Demo(Some(
        recserve()
            .current_dir(dir)
            .args([
                "demo",
                "--http-port",
                "0",
                "--grpc-port",
                "0",
                "--data-dir",
                "state",
                "--scrape-interval-secs",
                "1",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(log)
            .spawn()
            .unwrap(),
    ));
    let stderr = child.0.as_mut().and_then(|c| c.stderr.take()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("recserve: HTTP on http://") {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(180)).expect("the demo prints its address");
    let deadline = Instant::now() + Duration::from_secs(180);
    while http(&addr, "GET", "/v2/health/ready", "").0 != 200 {
        assert!(Instant::now() < deadline, "the demo never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    (child, addr)
}

fn demo_log(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("demo.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn get_json(addr: &str, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path, "");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn encode(q: &str) -> String {
    q.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// The value of an instant query that returns at most one sample (0 when it returns none).
fn query_value(addr: &str, q: &str) -> f64 {
    let v = get_json(addr, &format!("/api/v1/query?query={}", encode(q)));
    v["data"]["result"][0]["value"][1].as_str().map_or(0.0, |s| s.parse().unwrap())
}

/// The ranker's deployment as `GET /api/v1/deployments/ranker` shows it.
fn ranker(addr: &str) -> Value {
    get_json(addr, "/api/v1/deployments/ranker")["data"].clone()
}

fn audit(addr: &str) -> Vec<Value> {
    let v = get_json(addr, "/api/v1/audit?limit=100");
    v["data"]["records"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_bad_canary_is_rolled_back_by_its_alert_and_no_request_fails() {
    let dir = tempfile::tempdir().unwrap();
    // The bundled rules, evaluated faster: same expressions, 2 s groups, 10 s `for`.
    let bundled =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rules/recserve.rules.yml"))
            .unwrap();
    let mut fast = bundled.replace("interval: 15s", "interval: 2s").replace("for: 1m", "for: 10s");
    // This test is about the CTR rule. The latency rule's rollback depends on how fast the machine
    // is (a CI host in a slow phase put the canary's p99 over its 20 ms budget and that rule
    // rolled it back first), so here it only alerts.
    let action = "          recserve_action: rollback\n";
    let latency_rule = fast.find("alert: RecserveCanaryLatencyOverBudget").expect("the latency rule");
    let at = latency_rule + fast[latency_rule..].find(action).expect("the latency rule's action");
    fast.replace_range(at..at + action.len(), "");
    assert!(fast.contains("RecserveCanaryCtrWorse") && fast.contains("recserve_action: rollback"));
    let rules = dir.path().join("fast.rules.yml");
    std::fs::write(&rules, fast).unwrap();
    let rules_arg = rules.to_str().unwrap();
    let (child, addr) = spawn_demo(
        dir.path(),
        &[
            "--traffic-rate",
            "60",
            "--scenario",
            "bad-canary",
            "--scenario-delay-secs",
            "3",
            "--no-default-rules",
            "--rules",
            rules_arg,
            "--evaluation-interval-secs",
            "1",
        ],
    );

    // The scenario registers the weak ranker and starts a 50% canary.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = ranker(&addr);
        if r["arms"].as_array().is_some_and(|a| a.len() == 2) {
            assert_eq!(r["mode"], "canary", "{r}");
            assert_eq!(r["arms"][1]["version"], 2, "{r}");
            break;
        }
        assert!(Instant::now() < deadline, "the canary never started: {r}\n{}", demo_log(dir.path()));
        std::thread::sleep(Duration::from_millis(300));
    }
    // Sticky per user: the same shopper keeps their arm.
    let arm_of = |user: &str| {
        let body = format!(r#"{{"scenario": "home_feed", "user_id": "{user}"}}"#);
        let (status, text) = http(&addr, "POST", "/v1/recommend", &body);
        assert_eq!(status, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        (v["arms"]["ranker"].as_str().unwrap().to_string(), v["model_versions"]["ranker"].as_str().unwrap().to_string())
    };
    let mut arms = std::collections::BTreeSet::new();
    for u in 0..40 {
        let user = format!("U{:07}", 100 + u);
        let first = arm_of(&user);
        if first.0 == "canary" && ranker(&addr)["arms"].as_array().is_some_and(|a| a.len() == 2) {
            assert_eq!(first.1, "2");
        }
        assert_eq!(arm_of(&user).0, first.0, "user {user} changed arm");
        arms.insert(first.0);
    }

    // The canary's CTR falls, the rule fires, recserve rolls it back on its own.
    let deadline = Instant::now() + Duration::from_secs(240);
    let rollback = loop {
        if let Some(r) = audit(&addr).into_iter().find(|r| r["action"] == "deploy.rollback" && r["outcome"] == "ok") {
            break r;
        }
        assert!(Instant::now() < deadline, "no automatic rollback; server log:\n{}", demo_log(dir.path()));
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(rollback["actor"], "alerting", "{rollback}");
    let rollbacks: Vec<Value> = audit(&addr).into_iter().filter(|r| r["action"] == "deploy.rollback").collect();
    assert_eq!(rollbacks.len(), 1, "one rollback, however many alerts fired: {rollbacks:?}");
    assert!(rollback["reason"].as_str().unwrap().contains("RecserveCanaryCtrWorse"), "{rollback}");
    let r = ranker(&addr);
    assert_eq!(r["mode"], "stable", "{r}");
    assert_eq!(r["arms"][0]["version"], 1, "{r}");
    assert_eq!(r["retired"], serde_json::json!([2]), "{r}");
    assert!(arms.contains("stable"), "some users stayed on stable: {arms:?}");
    // The retired version's drift monitor goes at the next scrape (its series with it).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let drift = get_json(&addr, "/api/v1/drift");
        let versions: Vec<&Value> =
            drift["data"].as_array().unwrap().iter().filter(|v| v["model"] == "ranker").collect();
        if versions.iter().all(|v| v["version"] == 1) {
            break;
        }
        assert!(Instant::now() < deadline, "version 2's drift outlived its rollback: {drift}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // The comparison that triggered it: significant, more than 10 % worse. It keeps moving after
    // the rollback (late feedback on the canary's answers, the control's traffic), so the test
    // reads what the rule saw from the series' history; the experiments API still shows the arm.
    let significant =
        query_value(&addr, r#"max(max_over_time(recserve_online_ctr_significant{model="ranker",arm="canary"}[10m]))"#);
    assert_eq!(significant, 1.0, "the canary's comparison was significant while the rule held");
    let lift = query_value(&addr, r#"min(min_over_time(recserve_online_ctr_lift{model="ranker",arm="canary"}[10m]))"#);
    assert!(lift < -0.1, "the canary's CTR was more than 10 % below the control's: lift {lift}");
    let online = get_json(&addr, "/api/v1/experiments");
    let canary = online["data"]["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["model"] == "ranker" && a["arm"] == "canary")
        .cloned()
        .unwrap_or_else(|| panic!("no canary arm in {online}"));
    assert_eq!(canary["vs_control"]["control_arm"], "stable", "{canary}");
    assert!(canary["vs_control"]["ctr_lift"].as_f64().unwrap() < 0.0, "{canary}");

    // Traffic is back on stable, and no recommendation failed along the way.
    for u in 0..10 {
        assert_eq!(arm_of(&format!("U{:07}", 500 + u)), ("stable".into(), "1".into()));
    }
    std::thread::sleep(Duration::from_secs(2));
    let ok = query_value(&addr, r#"sum(recserve_requests_total{pipeline!="none",outcome="ok"})"#);
    let failed = query_value(&addr, r#"sum(recserve_requests_total{pipeline!="none",outcome!="ok"})"#);
    assert!(ok > 100.0, "traffic was served: {ok}");
    assert_eq!(failed, 0.0, "no request failed");
    assert!(
        query_value(&addr, r#"max(recserve_online_ctr_significant{arm="canary"})"#) >= 0.0,
        "the comparison is a series rules can use"
    );

    // The state survives a restart: v2 stays retired (not loaded) although it is the newest.
    child.stop();
    let (child, addr) = spawn_demo(dir.path(), &["--traffic-rate", "0"]);
    let r = ranker(&addr);
    assert_eq!((r["mode"].as_str(), r["retired"].clone()), (Some("stable"), serde_json::json!([2])), "{r}");
    assert!(
        r["versions"].as_array().unwrap().iter().all(|v| v["version"] != 2),
        "the retired version is not loaded: {r}"
    );
    child.stop();
}

#[test]
fn drift_shows_when_the_shoppers_inputs_shift() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn_demo(
        dir.path(),
        &["--traffic-rate", "60", "--drift-sample-rate", "1", "--scenario", "drift", "--scenario-delay-secs", "0"],
    );
    // The ranker's `device` comes from the request's context, the user tower's `ut_device` from
    // the users table: both shift when only tablet shoppers arrive.
    let significant = |drift: &Value, model: &str, feature: &str| {
        drift["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["model"] == model)
            .flat_map(|v| v["snapshot"]["features"].as_array().cloned().unwrap_or_default())
            .find(|f| f["name"] == feature && f["verdict"] == "significant")
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let drift = get_json(&addr, "/api/v1/drift");
        if let (Some(ranker), Some(tower)) =
            (significant(&drift, "ranker", "device"), significant(&drift, "user_tower", "ut_device"))
        {
            assert!(ranker["psi"].as_f64().unwrap() > 0.2, "{ranker}");
            assert!(tower["psi"].as_f64().unwrap() > 0.2, "{tower}");
            break;
        }
        assert!(Instant::now() < deadline, "no drift verdict: {drift}\n{}", demo_log(dir.path()));
        std::thread::sleep(Duration::from_millis(500));
    }
    let drift = get_json(&addr, "/api/v1/drift");
    for version in drift["data"].as_array().unwrap() {
        assert_eq!(version["reference"], "shipped", "the demo ships both models' references: {drift}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while query_value(&addr, r#"max(recserve_drift_psi{model="ranker",feature="device"})"#) <= 0.2 {
        assert!(Instant::now() < deadline, "the drift series never showed it");
        std::thread::sleep(Duration::from_millis(500));
    }
    let (status, reference) = http(&addr, "GET", "/api/v1/drift/reference?model=ranker&version=1", "");
    assert_eq!(status, 200, "{reference}");
    assert!(reference.contains("\"device\""), "the reference in use, in the shipped format");
    child.stop();
}

fn post(addr: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = http(addr, "POST", path, body);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn deployment_api_refusals_are_explained_and_the_cli_drives_a_promotion() {
    let data = tempfile::tempdir().unwrap();
    // A repository of our own (the fixtures' is shared): mlp with one version.
    let repo = data.path().join("repo");
    let fixture = recserve_testkit::fixture_models().join("mlp");
    std::fs::create_dir_all(repo.join("mlp/1")).unwrap();
    std::fs::copy(fixture.join("1/model.onnx"), repo.join("mlp/1/model.onnx")).unwrap();
    let model_file = fixture.join("1/model.onnx");
    let (child, addr) = serve_with(data.path(), &[std::ffi::OsStr::new("--model-repository"), repo.as_os_str()]);
    let base = "/api/v1/deployments/mlp";

    let (s, v) = post(&addr, &format!("{base}/versions"), r#"{"onnx_base64": "***"}"#);
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("base64"), "{v}");
    let (s, v) = post(&addr, &format!("{base}/versions"), r#"{"onnx_base64": "bm90IGEgbW9kZWw="}"#);
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("gate"), "the gate's reason: {v}");
    assert!(!repo.join("mlp/2").exists(), "a refused upload leaves nothing behind");
    let (s, v) = post(&addr, &format!("{base}/versions"), r#"{}"#);
    assert_eq!(s, 400, "{v}");
    let (s, v) =
        post(&addr, &format!("{base}/versions"), r#"{"onnx_base64": "AAAA", "config": "max_batch_size = -3"}"#);
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("config"), "{v}");
    let (s, v) = post(&addr, &format!("{base}/canary"), r#"{"version": 7, "percent": 10}"#);
    assert_eq!(s, 404, "{v}");
    let (s, v) = post(&addr, &format!("{base}/rollback"), "");
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("nothing to roll back"), "{v}");
    let (s, v) = post(&addr, "/api/v1/deployments/nosuch/canary", r#"{"version": 2, "percent": 10}"#);
    assert_eq!(s, 404, "{v}");
    let (s, v) = post(&addr, &format!("{base}/canary"), r#"{"version": 1, "percent": 10, "colour": "red"}"#);
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("colour"), "{v}");

    // The CLI: register an upload, canary it, refuse a bad percent, promote.
    let cli = |args: &[&str]| {
        let out = recserve().args(["deploy", "--server", &format!("http://{addr}")]).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let config = data.path().join("config.toml");
    std::fs::write(&config, "max_batch_size = 8\nlatency_budget_ms = 500\n").unwrap();
    let (ok, out, err) = cli(&[
        "register",
        "mlp",
        "--file",
        model_file.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--reason",
        "retrained",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("mlp: stable v1 100%") && out.contains("version 2 READY"), "{out}");
    assert_eq!(
        std::fs::read_to_string(repo.join("mlp/config.toml")).unwrap(),
        "max_batch_size = 8\nlatency_budget_ms = 500\n"
    );
    std::fs::write(&config, "max_batch_size = 4\n").unwrap();
    let (ok, out, err) =
        cli(&["register", "mlp", "--file", model_file.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    assert!(!ok && err.contains("different config.toml"), "{out}{err}");
    let (ok, out, err) = cli(&["canary", "mlp", "--version", "2", "--percent", "150"]);
    assert!(!ok && err.contains("percent"), "{out}{err}");
    let (ok, out, err) = cli(&["canary", "mlp", "--version", "2", "--percent", "30"]);
    assert!(ok && out.contains("stable v1 70%, canary v2 30%"), "{out}{err}");
    // V2 requests naming no version are split between the arms; naming one pins it.
    let mut versions = std::collections::BTreeMap::new();
    for _ in 0..200 {
        let (s, v) = post(&addr, "/v2/models/mlp/infer", &super::mlp_request());
        assert_eq!(s, 200, "{v}");
        *versions.entry(v["model_version"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    let canary = versions.get("2").copied().unwrap_or(0);
    assert!((30..=100).contains(&canary), "about 30% of 200 on the canary: {versions:?}");
    let (s, v) = post(&addr, "/v2/models/mlp/versions/1/infer", &super::mlp_request());
    assert_eq!((s, v["model_version"].as_str()), (200, Some("1")), "{v}");
    let (ok, out, err) = cli(&["promote", "mlp", "--reason", "looks good"]);
    assert!(ok && out.contains("mlp: stable v2 100%"), "{out}{err}");
    let (ok, out, err) = cli(&["status"]);
    assert!(ok && out.contains("mlp: stable v2 100%"), "{out}{err}");

    // Every change and refusal is in the audit trail, with its reason.
    let records =
        get_json(&addr, "/api/v1/audit?action=deploy.&limit=100")["data"]["records"].as_array().cloned().unwrap();
    let seen: Vec<(String, String)> = records
        .iter()
        .map(|r| (r["action"].as_str().unwrap().to_string(), r["outcome"].as_str().unwrap().to_string()))
        .collect();
    for want in
        [("deploy.register", "ok"), ("deploy.canary", "ok"), ("deploy.promote", "ok"), ("deploy.canary", "failed")]
    {
        assert!(seen.contains(&(want.0.to_string(), want.1.to_string())), "{want:?} in {seen:?}");
    }
    assert!(records.iter().any(|r| r["reason"] == "looks good"), "{records:?}");

    // Restart: the deployment is restored from the store.
    terminate(child);
    let (child, addr) = serve_with(data.path(), &[std::ffi::OsStr::new("--model-repository"), repo.as_os_str()]);
    let v = get_json(&addr, "/api/v1/deployments/mlp");
    assert_eq!(v["data"]["description"], "stable v2 100%", "{v}\n{}", server_log(data.path()));
    terminate(child);
}

/// Writes `change` of model `model`'s deployment document into the SQLite store in `data` the way
/// another replica's change lands (version and state revision bumped), behind the server's back.
fn another_replica_writes(data: &Path, model: &str, change: impl FnOnce(&mut Value)) {
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", data.join("recserve.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("opening the store");
        let name = format!("deployments/{model}");
        let body: String = sqlx::query_scalar("SELECT body FROM state_documents WHERE name = ?")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .expect("the deployment document");
        let mut doc: Value = serde_json::from_str(&body).unwrap();
        change(&mut doc);
        sqlx::query("UPDATE state_revision SET revision = revision + 1 WHERE id = 1").execute(&mut conn).await.unwrap();
        sqlx::query(
            "UPDATE state_documents SET body = ?, version = version + 1, \
             revision = (SELECT revision FROM state_revision WHERE id = 1) WHERE name = ?",
        )
        .bind(doc.to_string())
        .bind(&name)
        .execute(&mut conn)
        .await
        .unwrap();
    });
}

/// Two replicas changing one model's deployment at once: the change made on a replica that has
/// not seen the other's yet is refused with 409 (and audited), that replica then serves what the
/// store holds, and a retry applies. A restarted replica knows the stored version, so its first
/// change applies.
#[test]
fn a_deployment_change_racing_another_replicas_is_refused_not_lost() {
    let data = tempfile::tempdir().unwrap();
    let repo = data.path().join("repo");
    let fixture = recserve_testkit::fixture_models().join("mlp/1/model.onnx");
    for v in ["1", "2"] {
        std::fs::create_dir_all(repo.join("mlp").join(v)).unwrap();
        std::fs::copy(&fixture, repo.join("mlp").join(v).join("model.onnx")).unwrap();
    }
    // The version policy serves the newest (2); the canary is 1. The server never syncs by itself
    // during the test: the other replica's write stays unseen.
    let args = [
        std::ffi::OsStr::new("--model-repository"),
        repo.as_os_str(),
        std::ffi::OsStr::new("--state-sync-ms"),
        std::ffi::OsStr::new("3600000"),
    ];
    let describe = |addr: &str| get_json(addr, "/api/v1/deployments/mlp")["data"]["description"].clone();
    let (child, addr) = serve_with(data.path(), &args);
    let base = "/api/v1/deployments/mlp";
    let (s, v) = post(&addr, &format!("{base}/canary"), r#"{"version": 1, "percent": 10}"#);
    assert_eq!(s, 200, "{v}");
    assert_eq!(describe(&addr), "stable v2 90%, canary v1 10%");

    terminate(child);
    let (child, addr) = serve_with(data.path(), &args);
    let (s, v) = post(&addr, &format!("{base}/percent"), r#"{"percent": 20}"#);
    assert_eq!(s, 200, "the first change after a restart applies: {v}\n{}", server_log(data.path()));
    assert_eq!(describe(&addr), "stable v2 80%, canary v1 20%");

    another_replica_writes(data.path(), "mlp", |doc| {
        for arm in doc["arms"].as_array_mut().unwrap() {
            arm["weight"] = if arm["version"] == 1 { 4000.into() } else { 6000.into() };
        }
    });
    let (s, v) = post(&addr, &format!("{base}/percent"), r#"{"percent": 30, "reason": "more traffic"}"#);
    assert_eq!(s, 409, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("another replica") && error.contains("retry"), "{v}");
    assert_eq!(describe(&addr), "stable v2 60%, canary v1 40%", "the replica serves the stored change");
    let records = get_json(&addr, "/api/v1/audit?action=deploy.percent&limit=10")["data"]["records"].clone();
    assert!(
        records.as_array().unwrap().iter().any(|r| r["outcome"] == "failed" && r["reason"] == "more traffic"),
        "the refusal is audited: {records}"
    );

    let (s, v) = post(&addr, &format!("{base}/percent"), r#"{"percent": 30}"#);
    assert_eq!(s, 200, "a retry applies: {v}");
    assert_eq!(describe(&addr), "stable v2 70%, canary v1 30%");
    terminate(child);
    let (child, addr) = serve_with(data.path(), &args);
    assert_eq!(describe(&addr), "stable v2 70%, canary v1 30%", "the retried change was persisted");
    terminate(child);
}

#[test]
fn the_overload_scenario_multiplies_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) =
        spawn_demo(dir.path(), &["--traffic-rate", "4", "--scenario", "overload", "--scenario-delay-secs", "0"]);
    let total = || query_value(&addr, r#"sum(recserve_requests_total{pipeline!="none"})"#);
    // Let the faster traffic start, then count what arrives over a few seconds. 25 × 4 = 100
    // requests/s are asked; on a loaded 2-core machine far fewer arrive (20/s was seen with a
    // load average of 9), so the check is only that the scenario multiplied the base rate.
    std::thread::sleep(Duration::from_secs(3));
    let (before, start) = (total(), Instant::now());
    std::thread::sleep(Duration::from_secs(6));
    let rate = (total() - before) / start.elapsed().as_secs_f64();
    assert!(rate > 2.0 * 4.0, "25 × 4 requests/s asked, {rate:.1}/s arrived\n{}", demo_log(dir.path()));
    child.stop();
}
