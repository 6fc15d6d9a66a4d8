//! Telemetry of the real binary: metric history in the store (SQLite under `--data-dir`)
//! survives a restart.

use super::{http, mlp_request, wait_ready};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `recserve serve` with `data` as its data directory, scraping every second.
pub(crate) fn serve(data: &Path) -> (Child, String) {
    serve_with(data, &[])
}

/// As [`serve`], with more flags; the service log goes to `<data>/server.log`.
pub(crate) fn serve_with(data: &Path, extra: &[&std::ffi::OsStr]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_recserve"))
        .args(["serve", "--http-port", "0", "--grpc-port", "0", "--repository-poll-secs", "0"])
        .args(["--scrape-interval-secs", "1", "--retention-hours", "1"])
        .arg("--data-dir")
        .arg(data)
        .args(if extra.iter().any(|a| *a == "--model-repository") {
            Vec::new()
        } else {
            vec![std::ffi::OsString::from("--model-repository"), recserve_testkit::fixture_models().into_os_string()]
        })
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(log_file(data))
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("recserve: HTTP on http://") {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("server prints its address");
    wait_ready(&addr);
    (child, addr)
}

/// The server's service log (JSON lines on stdout), appended to `<data>/server.log`.
fn log_file(data: &Path) -> std::fs::File {
    std::fs::OpenOptions::new().create(true).append(true).open(data.join("server.log")).unwrap()
}

/// The last lines of the servers' logs in `data`, for failure messages.
pub(crate) fn server_log(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join("server.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

pub(crate) fn terminate(mut child: Child) {
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "clean exit, got {status:?}");
            return;
        }
        assert!(Instant::now() < deadline, "server did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ok_count(addr: &str, at: f64) -> Option<f64> {
    let q = "recserve_requests_total%7Bmodel%3D%22mlp%22%2Coutcome%3D%22ok%22%7D";
    let (status, body) = http(addr, "GET", &format!("/api/v1/query?query={q}&time={at}"), "");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"][0]["value"][1].as_str().map(|s| s.parse().unwrap())
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn metric_history_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let (child, addr) = serve(data.path());
    let start = now();
    for _ in 0..3 {
        let (status, body) = http(&addr, "POST", "/v2/models/mlp/infer", &mlp_request());
        assert_eq!(status, 200, "{body}");
    }
    // Wait until a scrape has the three requests.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ok_count(&addr, now()) != Some(3.0) {
        assert!(Instant::now() < deadline, "the store never saw the requests");
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = now();
    terminate(child);
    assert!(data.path().join("recserve.db").is_file(), "the history is in the store");

    let (child, addr) = serve(data.path());
    // The new process counts from zero, but the history from before is still there. The range
    // ends exactly at `before` (an evaluation point), where the sample that showed the three
    // requests is within the lookback; a range whose steps all fell before that scrape would
    // see none of it.
    let start = before - (before - start).ceil();
    let range = format!(
        "/api/v1/query_range?query={}&start={start:.3}&end={before:.3}&step=1",
        "recserve_requests_total%7Bmodel%3D%22mlp%22%2Coutcome%3D%22ok%22%7D"
    );
    let (status, body) = http(&addr, "GET", &range, "");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["resultType"], "matrix");
    let points = v["data"]["result"][0]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no history: {body}\nserver log:\n{}", server_log(data.path())));
    assert_eq!(points.last().unwrap()[1], "3", "{points:?}");
    assert_eq!(ok_count(&addr, before), Some(3.0));
    terminate(child);
}
