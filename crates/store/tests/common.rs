//! Test fixtures: a fresh store per test on each backend, record factories, the child-process
//! helper.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use recserve_store::{LogQuery, LogRecord, RequestRecord, Retention, ServiceRecord, Store, StoreConfig};
use sqlx::{AssertSqlSafe, Connection};

pub const MYSQL_URL_ENV: &str = "RECSERVE_TEST_MYSQL_URL";
pub const REQUIRE_MYSQL_ENV: &str = "RECSERVE_REQUIRE_MYSQL";
/// Set in a child process started by [`child`]: which child behaviour to run.
pub const CHILD_ENV: &str = "RECSERVE_STORE_TEST_CHILD";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    MySql,
}

/// One test's store location.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub kind: Kind,
    pub config: StoreConfig,
}

impl Ctx {
    pub async fn open(&self) -> Store {
        match Store::open(&self.config).await {
            Ok(s) => s,
            Err(e) => panic!("opening {:?}: {e}", self.kind),
        }
    }

    pub fn with_retention(&self, retention: Retention) -> Ctx {
        let mut c = self.clone();
        c.config.retention = retention;
        c
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("OS randomness");
    hex::encode(b)
}

/// `mysql://…/<db>` → (`mysql://…/` prefix, query suffix).
fn split_db(url: &str) -> (String, String) {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (url.to_string(), String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let slash = base[scheme_end..].find('/').map(|i| i + scheme_end).unwrap_or(base.len());
    (base[..slash].to_string(), query)
}

/// A fresh database on the test MySQL server; `None` (after a skip line) when there is none.
async fn mysql_database() -> Option<(String, String)> {
    let Ok(url) = std::env::var(MYSQL_URL_ENV) else {
        if std::env::var(REQUIRE_MYSQL_ENV).is_ok_and(|v| v == "1") {
            panic!("{MYSQL_URL_ENV} is not set and {REQUIRE_MYSQL_ENV}=1: the MySQL variant must run");
        }
        println!("SKIP: MySQL variant ({MYSQL_URL_ENV} not set; scripts/services/mariadb.sh starts a server)");
        return None;
    };
    let name = format!("recserve_t_{}", random_hex(6));
    let mut conn =
        sqlx::MySqlConnection::connect(&url).await.unwrap_or_else(|e| panic!("connecting to {MYSQL_URL_ENV}: {e}"));
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("CREATE DATABASE");
    let _ = conn.close().await;
    let (base, query) = split_db(&url);
    Some((format!("{base}/{name}{query}"), name))
}

async fn drop_mysql_database(name: &str) {
    if let Ok(url) = std::env::var(MYSQL_URL_ENV)
        && let Ok(mut conn) = sqlx::MySqlConnection::connect(&url).await
    {
        let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&mut conn).await;
        let _ = conn.close().await;
    }
}

/// Runs `check` against a fresh store of `kind` (removed afterwards).
pub async fn run<F, Fut>(kind: Kind, check: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    match kind {
        Kind::Sqlite => {
            let config = StoreConfig::sqlite_in(dir.path());
            check(Ctx { kind, config }).await;
        }
        Kind::MySql => {
            let Some((url, name)) = mysql_database().await else { return };
            let config =
                StoreConfig { url: Some(url), data_dir: dir.path().to_path_buf(), retention: Retention::default() };
            check(Ctx { kind, config }).await;
            drop_mysql_database(&name).await;
        }
    }
}

/// Declares `<name>::sqlite` and `<name>::mysql` tests running `async fn <name>(ctx: Ctx)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                $crate::common::run($crate::common::Kind::Sqlite, super::$name).await
            }
            #[tokio::test]
            async fn mysql() {
                $crate::common::run($crate::common::Kind::MySql, super::$name).await
            }
        }
    )*};
}

/// A request record with every field set, derived from `i`.
pub fn request(i: usize, time_ms: i64) -> RequestRecord {
    RequestRecord {
        request_id: format!("req-{i:06}"),
        time_ms,
        replica: Some("replica-a".into()),
        model: Some(if i.is_multiple_of(2) { "ranker" } else { "tower" }.into()),
        version: Some(format!("{}", 1 + i % 3)),
        arm: Some(if i.is_multiple_of(5) { "canary" } else { "stable" }.into()),
        pipeline: if i.is_multiple_of(4) { None } else { Some("home".into()) },
        user: Some(format!("user-{}", i % 7)),
        raw_user: None,
        input: Some(format!(r#"{{"i":{i},"query":"Shoes size {}"}}"#, i % 11)),
        output: Some(format!(r#"{{"items":[{i},{}]}}"#, i + 1)),
        stages: vec![("retrieval".into(), 1.25 + i as f64), ("ranking".into(), 0.5)],
        latency_ms: 2.5 + i as f64,
        status: match i % 10 {
            3 => 404,
            7 => 503,
            _ => 200,
        },
        error: match i % 10 {
            3 => Some(format!("model NotFound {i}")),
            7 => Some("upstream TIMEOUT after 50% of budget".into()),
            _ => None,
        },
    }
}

pub fn service(i: usize, time_ms: i64) -> ServiceRecord {
    let level = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"][i % 5];
    ServiceRecord {
        time_ms,
        replica: Some("replica-a".into()),
        level: level.into(),
        target: "recserve_server::rest".into(),
        message: format!("event {i} Handled"),
        fields: format!(r#"{{"n":{i},"Peer":"10.0.0.{}"}}"#, i % 3),
        request_id: Some(format!("req-{:06}", i % 13)),
    }
}

pub fn req(r: RequestRecord) -> LogRecord {
    LogRecord::Request(r)
}

pub fn svc(r: ServiceRecord) -> LogRecord {
    LogRecord::Service(r)
}

/// Runs this test binary again with only the test `name` (which must be a no-op unless
/// [`CHILD_ENV`] is set) and `env`, stdout piped.
pub fn child(name: &str, env: &[(&str, String)]) -> Command {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", name, "--nocapture", "--test-threads", "1"]).stdout(Stdio::piped()).stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The SQLite file of a default store in `dir`.
pub fn sqlite_file(config: &StoreConfig) -> PathBuf {
    config.data_dir.join(recserve_store::config::SQLITE_FILE)
}

/// The numbers `i` of the request records stored (written as `request(i, 1000 + i)`), with how
/// many times each is stored; panics on a record that differs from the one written.
pub async fn stored_request_numbers(store: &Store) -> BTreeMap<usize, usize> {
    let mut numbers = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page =
            store.query_requests(&LogQuery { limit: Some(1000), cursor, ..Default::default() }).await.expect("page");
        for r in &page.records {
            let i: usize =
                r.request_id.strip_prefix("req-").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{r:?}"));
            assert_eq!(r, &request(i, 1000 + i as i64), "stored record {i} differs from the one written");
            *numbers.entry(i).or_default() += 1;
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            return numbers;
        }
    }
}

/// Runs `sql` with one blob parameter on the test's database, outside the store (to damage what
/// the store wrote).
pub async fn raw_execute(ctx: &Ctx, sql: &str, blob: &[u8]) {
    match ctx.kind {
        Kind::Sqlite => {
            let path = sqlite_file(&ctx.config);
            let mut conn =
                sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.expect("connect");
            sqlx::query(AssertSqlSafe(sql.to_string())).bind(blob).execute(&mut conn).await.expect("raw statement");
        }
        Kind::MySql => {
            let url = ctx.config.url.clone().expect("mysql url");
            let mut conn = sqlx::MySqlConnection::connect(&url).await.expect("connect");
            sqlx::query(AssertSqlSafe(sql.to_string())).bind(blob).execute(&mut conn).await.expect("raw statement");
        }
    }
}
