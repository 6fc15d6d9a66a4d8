//! The store behind the real binary: the request and service logs of a running server are
//! searchable at /api/v1/logs, correlated by request id, counted in /metrics, and still there
//! after a restart (SQLite in the data directory).

use super::telemetry::{serve, terminate};
use super::{http, mlp_request, read_response};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn post_with_id(addr: &str, path: &str, body: &str, id: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nx-request-id: {id}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_response(&mut s).0
}

/// The records `/api/v1/logs?{query}` answers, waiting up to 10 s for at least one.
fn records(addr: &str, query: &str) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http(addr, "GET", &format!("/api/v1/logs?{query}"), "");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let records = v["data"]["records"].as_array().cloned().unwrap_or_default();
        if !records.is_empty() || Instant::now() > deadline {
            return records;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn request_and_service_logs_are_searchable_and_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let (child, addr) = serve(data.path());
    assert_eq!(post_with_id(&addr, "/v2/models/mlp/infer", "{oops", "bad-input-1"), 400);
    assert_eq!(post_with_id(&addr, "/v2/models/mlp/infer", &mlp_request(), "good-1"), 200);

    let bad = records(&addr, "request_id=bad-input-1");
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0]["status"], 400);
    assert!(bad[0]["error"].as_str().unwrap().contains("JSON"), "{bad:?}");
    let events = records(&addr, "kind=service&request_id=bad-input-1");
    assert!(
        events.iter().any(|e| e["message"] == "request rejected" && e["level"] == "INFO"),
        "the rejection is in the service log under the request's id: {events:?}"
    );
    let started = records(&addr, "kind=service&q=recserve%20listening");
    assert!(!started.is_empty(), "start-up events reach the store too");
    let (_, metrics) = http(&addr, "GET", "/metrics", "");
    assert!(metrics.contains("recserve_log_records_committed_total"), "writer figures in /metrics");
    assert!(metrics.contains("recserve_log_records_dropped_total 0"), "no drops");
    terminate(child);
    assert!(data.path().join("recserve.db").exists(), "SQLite store in the data directory");

    let (child, addr) = serve(data.path());
    let good = records(&addr, "request_id=good-1");
    assert_eq!(good.len(), 1, "kept across the restart: {good:?}");
    assert_eq!(good[0]["model"], "mlp");
    terminate(child);
}
