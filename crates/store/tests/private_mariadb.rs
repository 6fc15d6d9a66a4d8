//! A private MariaDB server for tests that must kill and restart it (the shared server of
//! `scripts/services/mariadb.sh` serves every other MySQL test at the same time).
//!
//! Same commands as that script: `mariadb-install-db` into a temp data directory, then
//! `mariadbd --datadir --socket --port` on a free loopback port, here with
//! `--skip-grant-tables` (the test connects as `root` without a password). [`PrivateMariaDb::kill`]
//! sends SIGKILL; [`PrivateMariaDb::start`] starts it again on the same data directory and port.
//! Dropping it kills the server and removes the directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::common::REQUIRE_MYSQL_ENV;

/// How long a start may take until the server answers.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct PrivateMariaDb {
    server: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> =
        std::env::split_paths(&path).chain(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from)).collect();
    names.iter().flat_map(|n| dirs.iter().map(move |d| d.join(n))).find(|p| p.is_file())
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    l.local_addr().expect("local addr").port()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl PrivateMariaDb {
    /// Installs and starts a server. `None` (after a `SKIPPED` line) when no MariaDB is
    /// installed here; with `RECSERVE_REQUIRE_MYSQL=1` (CI) a missing server fails the test.
    pub async fn launch(test: &str) -> Option<PrivateMariaDb> {
        let (Some(server), Some(install)) =
            (find(&["mariadbd", "mysqld"]), find(&["mariadb-install-db", "mysql_install_db"]))
        else {
            if std::env::var(REQUIRE_MYSQL_ENV).is_ok_and(|v| v == "1") {
                panic!("{test}: no mariadbd / mariadb-install-db found and {REQUIRE_MYSQL_ENV}=1: it must run");
            }
            println!("SKIPPED {test}: no mariadbd / mariadb-install-db installed (apt-get install mariadb-server)");
            return None;
        };
        let dir = tempfile::Builder::new().prefix("recserve-fault-mariadb").tempdir().expect("temp dir");
        let mut cmd = Command::new(&install);
        cmd.arg("--no-defaults").arg(format!("--datadir={}", dir.path().join("data").display()));
        if is_root() {
            cmd.arg("--user=root");
        }
        let out = cmd
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", install.display()));
        assert!(
            out.status.success(),
            "{} failed: {}{}",
            install.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut db = PrivateMariaDb { server, dir, port: free_port(), child: None };
        db.start().await;
        Some(db)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `mysql://root@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server (again) on the same data directory and port; returns once it answers.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "the private MariaDB is already running");
        let d = |p: &Path| p.display().to_string();
        let mut cmd = Command::new(&self.server);
        cmd.arg("--no-defaults");
        if is_root() {
            cmd.arg("--user=root");
        }
        cmd.args([
            format!("--datadir={}", d(&self.path("data"))),
            format!("--socket={}", d(&self.path("mysqld.sock"))),
            format!("--pid-file={}", d(&self.path("mysqld.pid"))),
            format!("--log-error={}", d(&self.path("error.log"))),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".into(),
            "--skip-name-resolve".into(),
            "--skip-grant-tables".into(),
            "--innodb-buffer-pool-size=32M".into(),
            "--max-allowed-packet=64M".into(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", self.server.display()));
        self.child = Some(child);
        let url = self.url("");
        let started = Instant::now();
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(2), sqlx::MySqlConnection::connect(&url)).await;
            if let Ok(Ok(conn)) = attempt {
                let _ = conn.close().await;
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                panic!("the private MariaDB exited ({status}) while starting:\n{}", self.error_log_tail());
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "the private MariaDB did not answer on port {} within {START_TIMEOUT:?}:\n{}",
                self.port,
                self.error_log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: the server dies on the spot, connections break, nothing is shut down cleanly.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the private MariaDB");
            let _ = child.wait();
        }
    }

    fn error_log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.path("error.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.kill();
    }
}
