//! Authentication in the binary: `recserve token create | list | revoke` on a data directory
//! (secret printed once, bad roles named), `serve` refusing to listen unauthenticated on a
//! non-loopback address, enforcing once a token exists (on any address), picking up a CLI
//! revocation while running, and `recserve deploy --token`.

use super::telemetry::terminate;
use super::{recserve, start_in};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs `recserve token ARGS --data-dir DATA`; (success, stdout, stderr).
fn token_cli(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = recserve().arg("token").args(args).arg("--data-dir").arg(data).output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// Creates a token with the CLI; returns its secret.
fn create(data: &Path, name: &str, role: &str) -> String {
    let (ok, stdout, stderr) = token_cli(data, &["create", "--name", name, "--role", role]);
    assert!(ok, "{stderr}");
    let secret = stdout.trim().to_string();
    assert!(secret.starts_with("rs_") && !secret.contains('\n'), "only the secret on stdout: {stdout:?}");
    secret
}

/// GET with an optional bearer token; the status.
fn get(addr: &str, path: &str, token: Option<&str>) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn token_cli_creates_lists_and_revokes() {
    let data = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = token_cli(data.path(), &["list"]);
    assert!(ok && stderr.contains("no tokens"), "{stderr}");
    let secret = create(data.path(), "ci", "operator");
    let (ok, _, stderr) = token_cli(data.path(), &["create", "--name", "x", "--role", "root"]);
    assert!(!ok);
    assert!(stderr.contains("admin, operator, viewer, inference"), "{stderr}");
    let (ok, _, stderr) = token_cli(data.path(), &["create", "--name", "ci", "--role", "viewer"]);
    assert!(!ok && stderr.contains("exists already"), "{stderr}");

    let (ok, stdout, _) = token_cli(data.path(), &["list"]);
    assert!(ok);
    let line = stdout.lines().find(|l| l.contains(" ci ")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("operator") && line.ends_with("active"), "{line}");
    assert!(!stdout.contains(&secret), "list never shows a secret");
    let id = line.split_whitespace().next().unwrap();

    let (ok, _, stderr) = token_cli(data.path(), &["revoke", id]);
    assert!(ok, "{stderr}");
    let (_, stdout, _) = token_cli(data.path(), &["list"]);
    assert!(stdout.lines().any(|l| l.starts_with(id) && l.contains("revoked")), "{stdout}");
    let (ok, _, stderr) = token_cli(data.path(), &["revoke", "tok_missing"]);
    assert!(!ok && stderr.contains("no token with id"), "{stderr}");
}

#[test]
fn serve_refuses_an_open_non_loopback_address() {
    let data = tempfile::tempdir().unwrap();
    let out = recserve()
        .args(["serve", "--host", "0.0.0.0", "--http-port", "0", "--grpc-port", "0", "--repository-poll-secs", "0"])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--model-repository")
        .arg(recserve_testkit::fixture_models())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("refusing to serve without authentication"), "{err}");
    assert!(err.contains("--allow-unauthenticated") && err.contains("recserve token create"), "{err}");
}

#[test]
fn serve_enforces_tokens_and_picks_up_revocations() {
    let data = tempfile::tempdir().unwrap();
    let viewer = create(data.path(), "dashboard", "viewer");
    let ops = create(data.path(), "deployer", "operator");
    // With a token in the store, a non-loopback address is fine: authentication is enforced.
    let (child, addr, _log) = start_in(data.path(), &["--host", "0.0.0.0"], &[]);
    let addr = addr.replace("0.0.0.0", "127.0.0.1");
    assert_eq!(get(&addr, "/v2/health/live", None), 200);
    assert_eq!(get(&addr, "/v2/models/mlp", None), 401);
    assert_eq!(get(&addr, "/v2/models/mlp", Some(&viewer)), 200);

    // `recserve deploy` carries --token.
    let deploy = |token: Option<&str>| {
        let mut cmd = recserve();
        cmd.args(["deploy", "status", "--server", &format!("http://{addr}")]).env_remove("RECSERVE_TOKEN");
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        cmd.output().unwrap()
    };
    let out = deploy(None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = deploy(Some(&ops));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Revoked with the CLI while it runs: refused after the next refresh.
    let (_, stdout, _) = token_cli(data.path(), &["list"]);
    let id = stdout.lines().find(|l| l.contains(" dashboard ")).unwrap().split_whitespace().next().unwrap().to_string();
    assert!(token_cli(data.path(), &["revoke", &id]).0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&addr, "/v2/models/mlp", Some(&viewer)) == 200 {
        assert!(Instant::now() < deadline, "the revocation was never picked up");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get(&addr, "/v2/models/mlp", Some(&viewer)), 401);
    terminate(child);
    // Last use was written on the way out.
    let (_, stdout, _) = token_cli(data.path(), &["list"]);
    let line = stdout.lines().find(|l| l.contains(" deployer ")).unwrap();
    assert_eq!(line.matches("never").count(), 1, "expires never, but used: {line}");
}
