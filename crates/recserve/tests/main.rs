//! End-to-end tests of the `recserve` binary: its help, settings from flags and environment,
//! serving the fixture repository, and a clean drain on SIGTERM.

#![allow(clippy::unwrap_used)]

mod alerting;
mod auth;
mod demo;
mod deployments;
mod fleet;
mod logs;
mod shop_export;
mod telemetry;
mod tls;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn recserve() -> Command {
    Command::new(env!("CARGO_BIN_EXE_recserve"))
}

/// Starts `recserve serve` on free ports and returns the child and its HTTP address, read from
/// the line it prints when listening. The caller waits for the child.
fn start(extra_env: &[(&str, &str)]) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    start_in(&tempfile::tempdir().unwrap().keep(), &[], extra_env)
}

/// [`start`] with the data directory `data` and extra flags.
#[allow(clippy::zombie_processes)]
fn start_in(
    data: &std::path::Path,
    extra_args: &[&str],
    extra_env: &[(&str, &str)],
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let repo = recserve_testkit::fixture_models();
    let mut cmd = recserve();
    cmd.args(["serve", "--http-port", "0", "--grpc-port", "0", "--repository-poll-secs", "0"])
        .arg("--data-dir")
        .arg(data)
        .args(extra_args)
        .env("RECSERVE_MODEL_REPOSITORY", &repo)
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let up = recserve_testkit::spawn_listening(&mut cmd, Duration::from_secs(60));
    wait_ready(&up.bound);
    (up.child, up.bound, up.stderr)
}

fn wait_ready(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http(addr, "GET", "/v2/health/ready", "").0 == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server at {addr} never became ready");
}

/// A minimal blocking HTTP/1.1 exchange; returns status and body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else { return (0, String::new()) };
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    read_response(&mut s)
}

fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn mlp_request() -> String {
    let features: Vec<String> = (0..16).map(|i| format!("{}", i as f32 / 16.0)).collect();
    format!(r#"{{"inputs":[{{"name":"features","datatype":"FP32","shape":[1,16],"data":[{}]}}]}}"#, features.join(","))
}

#[test]
fn help_explains_every_serve_flag() {
    let out = recserve().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--model-repository",
        "--host",
        "--http-port",
        "--grpc-port",
        "--data-dir",
        "--config",
        "--repository-poll-secs",
        "RECSERVE_HTTP_PORT",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}:\n{help}");
    }
    let out = recserve().args(["bench", "--help"]).output().unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("--concurrency"));
}

#[test]
fn serve_without_a_repository_says_what_is_missing() {
    let out = recserve().arg("serve").env_remove("RECSERVE_MODEL_REPOSITORY").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--model-repository"), "{err}");
    let out = recserve().args(["serve", "--model-repository", "/nonexistent/models"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("/nonexistent/models is not a directory"));
}

#[test]
fn serves_and_drains_in_flight_requests_on_sigterm() {
    let (mut child, addr, _log) = start(&[("RECSERVE_LOG_FORMAT", "json")]);
    let (status, body) = http(&addr, "POST", "/v2/models/mlp/infer", &mlp_request());
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"model_name\":\"mlp\""), "{body}");

    // A request in flight: headers and half the body sent before SIGTERM, the rest after.
    let request = mlp_request();
    let (head, tail) = request.split_at(request.len() / 2);
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
        request.len()
    )
    .unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(tail.as_bytes()).unwrap();
    let (status, body) = read_response(&mut s);
    assert_eq!(status, 200, "the in-flight request completes: {body}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(Instant::now() < deadline, "server did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "clean exit, got {exit:?}");
    // New connections are refused once it is gone.
    assert_eq!(http(&addr, "GET", "/v2/health/live", "").0, 0);
}

#[test]
fn rules_check_points_at_each_error_and_default_rules_pass() {
    let dir = tempfile::tempdir().unwrap();
    let default = dir.path().join("default.yml");
    let out = recserve().args(["rules", "default"]).output().unwrap();
    assert!(out.status.success());
    std::fs::write(&default, &out.stdout).unwrap();
    let out = recserve().args(["rules", "check"]).arg(&default).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout).unwrap().contains(": ok ("));

    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n      - alert: B\n        expr: up\n        for: soon\n",
    )
    .unwrap();
    let out = recserve().args(["rules", "check"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let name = bad.display().to_string();
    assert!(err.contains(&format!("{name}:5:")), "the expr error names line 5: {err}");
    assert!(err.contains(&format!("{name}:8:")), "the duration error names line 8: {err}");
}
