//! Fault tests of the log writer (issue 8): the store's disk fills up, and the MariaDB server is
//! killed and restarted under load. In each, the writer logs and counts the failure
//! ([`WriterStats::write_errors`], [`WriterStats::store_failing`], exposed as
//! `recserve_log_write_errors_total` and `recserve_log_store_failing`), keeps taking records
//! without blocking, reports nothing committed that is not, and once the store is back commits
//! everything it had accepted: nothing is counted failed or dropped, and every record is stored.
//!
//! The other faults of the issue are covered elsewhere (README "Fault tests"); `crash.rs` kills
//! the writing process itself.
//!
//! # How the disk fills
//!
//! `disk_full_on_tmpfs` puts the SQLite store on a 16 MiB tmpfs it mounts (root only) and fills
//! it with a file: SQLite's WAL writes then get a real `ENOSPC`. Mounting needs `CAP_SYS_ADMIN`,
//! which a CI container may not grant; when `mount` is refused the test says so and falls back to
//! SQLite's page limit. `disk_full_by_page_limit` always uses that limit
//! ([`Store::open_with_max_pages`], `PRAGMA max_page_count`): a table of filler rows takes the
//! pages left, and SQLite answers `SQLITE_FULL`, the same result code a full disk gives, so the
//! writer's path is the same. Space returns by deleting the file, or dropping the filler table.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use recserve_store::{LogSink, LogWriter, Retention, Store, StoreConfig, WriterConfig, WriterStats};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::common::{req, request, sqlite_file, stored_request_numbers};
use crate::private_mariadb::PrivateMariaDb;

/// Page limit of the page-limit variant (4 KiB pages: 8 MiB).
const MAX_PAGES: u32 = 2000;
/// Size of the tmpfs.
const TMPFS_SIZE: &str = "16m";

/// Everything the writer logs while a test runs (fmt output, no colours).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures this thread's tracing events (the tests run on a current-thread runtime, so the
    /// writer task logs on this thread too) until the guard is dropped.
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        (logs.clone(), tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

/// Polls `cond` every 20 ms; panics with `what` and the stats after `timeout`.
async fn wait_for(what: &str, timeout: Duration, sink: &LogSink, cond: impl Fn(&WriterStats) -> bool) {
    let started = Instant::now();
    loop {
        let s = sink.stats();
        if cond(&s) {
            return;
        }
        assert!(started.elapsed() < timeout, "{what}: not within {timeout:?}; {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `writer.flush()`, failing the test (with the log) instead of hanging.
async fn flush(writer: &LogWriter, timeout: Duration, logs: &Logs) {
    if tokio::time::timeout(timeout, writer.flush()).await.is_err() {
        panic!("flush did not return within {timeout:?}; {:?}; log:\n{}", writer.stats(), logs.text());
    }
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs: {} {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs { dir: dir.to_path_buf() })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.dir).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// What takes the space left, and gives it back.
enum Filler {
    /// A file filling the tmpfs.
    File(PathBuf),
    /// A connection of the test's own (under the same page limit) with a table of filler rows.
    Table(SqliteConnection),
}

impl Filler {
    /// Writes a file into `dir` until the file system answers ENOSPC (down to single pages).
    fn file(dir: &Path) -> Filler {
        let path = dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler file");
        for chunk in [1 << 16, 4096, 512] {
            let block = vec![0xa5u8; chunk];
            loop {
                match f.write_all(&block).and_then(|()| f.sync_data()) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(28) => break,
                    Err(e) => panic!("filling {}: {e}", path.display()),
                }
            }
        }
        Filler::File(path)
    }

    /// Inserts filler rows until SQLite answers SQLITE_FULL at the page limit.
    async fn table(db: &Path) -> Filler {
        let options = SqliteConnectOptions::new()
            .filename(db)
            .busy_timeout(Duration::from_secs(10))
            .pragma("max_page_count", MAX_PAGES.to_string());
        let mut conn = SqliteConnection::connect_with(&options).await.expect("filler connection");
        sqlx::query("CREATE TABLE fault_filler (b BLOB NOT NULL)").execute(&mut conn).await.expect("filler table");
        for size in [1 << 16, 4096, 512, 64] {
            loop {
                match sqlx::query("INSERT INTO fault_filler (b) VALUES (zeroblob(?))")
                    .bind(size)
                    .execute(&mut conn)
                    .await
                {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("13") => break,
                    Err(e) => panic!("filling the database: {e}"),
                }
            }
        }
        Filler::Table(conn)
    }

    async fn free(self) {
        match self {
            Filler::File(path) => std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            Filler::Table(mut conn) => {
                sqlx::query("DROP TABLE fault_filler").execute(&mut conn).await.expect("dropping the filler");
                let _ = conn.close().await;
            }
        }
    }
}

/// How [`disk_full`] fills the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fill {
    /// A tmpfs if it can be mounted, else the page limit.
    TmpfsOrPageLimit,
    PageLimit,
}

async fn disk_full(fill: Fill) {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut tmpfs = None;
    if fill == Fill::TmpfsOrPageLimit {
        match Tmpfs::mount(&dir.path().join("tmpfs")) {
            Ok(t) => tmpfs = Some(t),
            Err(why) => println!("disk full: cannot mount a tmpfs ({why}); using SQLite's page limit instead"),
        }
    }
    let data_dir = tmpfs.as_ref().map_or_else(|| dir.path().join("data"), |t| t.dir.clone());
    let config = StoreConfig::sqlite_in(&data_dir);
    let store = match &tmpfs {
        Some(_) => {
            println!("disk full: a real ENOSPC on a {TMPFS_SIZE} tmpfs at {}", data_dir.display());
            Store::open(&config).await
        }
        None => {
            println!("disk full: SQLITE_FULL at a limit of {MAX_PAGES} pages (PRAGMA max_page_count)");
            Store::open_with_max_pages(&config, MAX_PAGES).await
        }
    }
    .expect("open the store");
    let writer = store.start_writer(WriterConfig {
        capacity: 100_000,
        max_batch: 500,
        flush_interval: Duration::from_millis(20),
    });
    let sink = writer.sink();
    let submit = |range: std::ops::Range<usize>| {
        for i in range {
            assert!(sink.submit(req(request(i, 1000 + i as i64))), "submit {i} was refused");
        }
    };

    // Records committed while there is space: acknowledged.
    submit(0..1000);
    flush(&writer, Duration::from_secs(20), &logs).await;
    assert_eq!(writer.stats().committed, 1000);

    let filler = match &tmpfs {
        Some(t) => Filler::file(&t.dir),
        None => Filler::table(&sqlite_file(&config)).await,
    };

    // The disk is full: the writer fails, says so, and retries past its fixed retries. (On the
    // tmpfs a retried batch may still fit now and then, in file space a failed attempt had
    // allocated: that is a real full disk too. What counts is that the stored records and the
    // committed count agree.)
    submit(1000..2000);
    wait_for("the writer reports the full disk", Duration::from_secs(10), &sink, |s| {
        s.write_errors >= 1 && s.store_failing
    })
    .await;
    submit(2000..3000);
    wait_for("the writer keeps retrying after its fixed retries", Duration::from_secs(15), &sink, |s| {
        s.write_errors as usize > recserve_store::writer::RETRY_BACKOFF.len() + 1
    })
    .await;
    let s = writer.stats();
    assert_eq!((s.accepted, s.failed, s.dropped), (3000, 0, 0), "{s:?}");
    assert!(s.store_failing && (1000..3000).contains(&s.committed), "{s:?}");
    // Reads go on where they can (a connection the pool opens anew may itself need space for
    // its set-up and fail, saying so); what is stored is what was reported committed (the writer
    // may commit between the two counter reads).
    match store.count_logs().await {
        Ok((stored, _)) => {
            let after = writer.stats().committed;
            println!("disk full: {} committed, {stored} stored, {after} committed", s.committed);
            assert!(s.committed <= stored && stored <= after, "{} ≤ {stored} ≤ {after}", s.committed);
        }
        Err(e) => {
            println!("disk full: a read failed too: {e}");
            assert!(e.to_string().contains("full"), "{e}");
        }
    }
    let text = logs.text();
    assert!(text.contains("log batch failed, retrying"), "no retry logged:\n{text}");
    assert!(text.contains("full"), "the log does not say the disk is full:\n{text}");
    assert!(!text.contains("records lost"), "records were given up:\n{text}");

    // Space returns: everything accepted is committed, nothing lost or doubled.
    filler.free().await;
    submit(3000..3500);
    flush(&writer, Duration::from_secs(20), &logs).await;
    let s = writer.shutdown().await;
    assert_eq!((s.accepted, s.committed, s.failed, s.dropped, s.queued), (3500, 3500, 0, 0, 0), "{s:?}");
    assert!(!s.store_failing, "{s:?}");
    let ids = stored_request_numbers(&store).await;
    assert_eq!(ids.len(), 3500);
    assert!(ids.iter().enumerate().all(|(n, (&i, &times))| n == i && times == 1), "ids 0..3500 once each");
    assert!(logs.text().contains("log writes resumed"), "no resume logged:\n{}", logs.text());
    store.close().await;
    drop(tmpfs);
}

#[tokio::test]
async fn disk_full_on_tmpfs() {
    disk_full(Fill::TmpfsOrPageLimit).await;
}

#[tokio::test]
async fn disk_full_by_page_limit() {
    disk_full(Fill::PageLimit).await;
}

/// Submits 50 records every 10 ms (5000/s) until `stop`; counts submitted and accepted.
fn produce(sink: LogSink, stop: Arc<AtomicBool>, submitted: Arc<AtomicUsize>, accepted: Arc<Mutex<Vec<usize>>>) {
    tokio::spawn(async move {
        let mut i = 0usize;
        while !stop.load(Ordering::Acquire) {
            for _ in 0..50 {
                if sink.submit(req(request(i, 1000 + i as i64))) {
                    accepted.lock().expect("accepted").push(i);
                }
                i += 1;
            }
            submitted.store(i, Ordering::Release);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

/// MariaDB is killed (SIGKILL) while the writer writes ~5000 records/s, stays down ≥ 2 s and is
/// started again on the same data directory. Records submitted meanwhile wait in the writer's
/// queue (100 000 deep, so none is dropped) and are committed after it reconnects by itself.
/// A batch whose `COMMIT` was cut may be stored twice (at least once; see `writer`'s docs).
#[tokio::test]
async fn mariadb_restarted_under_load() {
    let (logs, _guard) = Logs::capture();
    let Some(mut db) = PrivateMariaDb::launch("faults::mariadb_restarted_under_load").await else { return };
    let mut conn = sqlx::MySqlConnection::connect(&db.url("")).await.expect("connect to the private MariaDB");
    sqlx::query("CREATE DATABASE faults").execute(&mut conn).await.expect("CREATE DATABASE");
    let _ = conn.close().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = StoreConfig {
        url: Some(db.url("faults")),
        data_dir: dir.path().to_path_buf(),
        retention: Retention::default(),
    };
    let store = Store::open(&config).await.expect("open the store on the private MariaDB");
    let writer = store.start_writer(WriterConfig {
        capacity: 100_000,
        max_batch: 500,
        flush_interval: Duration::from_millis(20),
    });
    let sink = writer.sink();
    let stop = Arc::new(AtomicBool::new(false));
    let submitted = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(Mutex::new(Vec::new()));
    produce(sink.clone(), stop.clone(), submitted.clone(), accepted.clone());

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = writer.stats();
    assert!(before.committed > 0 && !before.store_failing, "writing is under way before the kill: {before:?}");
    db.kill();
    let killed = Instant::now();
    wait_for("the writer reports the dead server", Duration::from_secs(10), &sink, |s| s.store_failing).await;
    let reported_after = killed.elapsed();
    let down = writer.stats();
    if let Some(rest) = Duration::from_secs(2).checked_sub(killed.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let during = writer.stats();
    db.start().await;
    let restarted = killed.elapsed();
    wait_for("the writer reconnects by itself", Duration::from_secs(30), &sink, |s| !s.store_failing).await;
    let resumed = killed.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Release);
    tokio::time::sleep(Duration::from_millis(50)).await;
    flush(&writer, Duration::from_secs(30), &logs).await;
    let s = writer.shutdown().await;
    let accepted = accepted.lock().expect("accepted").clone();
    let submitted = submitted.load(Ordering::Acquire);
    println!(
        "mariadb restart: committed {} before the kill; failing reported after {reported_after:?}, \
         server back after {restarted:?}, writing resumed after {resumed:?}; down {during:?}, end {s:?}",
        before.committed
    );

    // While the server is down nothing is reported committed.
    assert_eq!(during.committed, down.committed, "commits reported while the server was dead");
    assert!(during.store_failing, "{during:?}");
    // Every record submitted was accepted (the queue held the outage) and is committed: none
    // failed, none dropped.
    assert_eq!(accepted.len(), submitted);
    assert_eq!((s.accepted as usize, s.dropped, s.failed, s.queued), (submitted, 0, 0, 0), "{s:?}");
    assert_eq!(s.committed as usize, submitted, "{s:?}");
    assert!(!s.store_failing, "{s:?}");
    // Every record is in the table: the ids exactly, at least once each.
    let ids = stored_request_numbers(&store).await;
    let (requests, _) = store.count_logs().await.expect("count");
    assert_eq!(ids.keys().copied().collect::<Vec<_>>(), accepted, "stored ids differ from the accepted ones");
    let doubled = ids.values().filter(|&&n| n > 1).count();
    println!("mariadb restart: {requests} rows for {} ids ({doubled} stored twice: a cut COMMIT)", ids.len());
    assert!(requests as usize >= submitted && doubled <= 500, "{requests} rows, {doubled} doubled");
    let text = logs.text();
    assert!(
        text.contains("log batch failed, retrying") || text.contains("has not answered a log batch"),
        "the outage is not in the log:\n{text}"
    );
    assert!(text.contains("log writes resumed"), "the recovery is not in the log:\n{text}");
    store.close().await;
}
