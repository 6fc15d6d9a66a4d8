//! `recserve demo` from a directory that is not the checkout: the bundled shop serves
//! recommendations at once, and the simulated shoppers drive the served models in the background.

use super::{http, recserve};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ranker_successes(addr: &str) -> u64 {
    let (status, body) = http(addr, "GET", "/v2/models/ranker/stats", "");
    assert_eq!(status, 200, "{body}");
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    stats["model_stats"][0]["inference_stats"]["success"]["count"].as_u64().unwrap()
}

/// Kills the demo if the test fails before it stops it, so no server outlives a failed test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn demo_serves_the_bundled_shop_with_simulated_shoppers() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        recserve()
            .current_dir(cwd.path())
            .args(["demo", "--http-port", "0", "--grpc-port", "0", "--data-dir", "state", "--traffic-rate", "40"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut addr = None;
    let mut printed = Vec::new();
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the demo never opened; it printed:\n{}", printed.join("\n")));
        if let Some(rest) = line.strip_prefix("recserve: HTTP on http://") {
            addr = Some(rest.split_whitespace().next().unwrap().to_string());
        }
        // The banner ends with the feedback endpoint's line.
        let done = line.contains("/v1/feedback");
        printed.push(line);
        if done {
            break;
        }
    }
    let addr = addr.expect("the demo prints its HTTP address");
    assert!(
        printed.iter().any(|l| l.contains("the shop is open"))
            && printed.iter().any(|l| l.contains(&format!("http://{addr}/v1/recommend"))),
        "the demo prints the API addresses:\n{}",
        printed.join("\n")
    );
    assert!(cwd.path().join("state/demo/models/ranker/1/model.onnx").is_file(), "bundle not extracted");

    let (status, body) =
        http(&addr, "POST", "/v1/recommend", r#"{"scenario": "search", "user_id": "U0000042", "query": "headphones"}"#);
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["items"].as_array().unwrap().len(), 20, "{reply}");

    // Background shoppers: the ranker keeps being called without any request of ours.
    let before = ranker_successes(&addr);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ranker_successes(&addr) < before + 20 {
        assert!(Instant::now() < deadline, "no simulated traffic reached the ranker");
        std::thread::sleep(Duration::from_millis(200));
    }

    Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "demo exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "demo did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
