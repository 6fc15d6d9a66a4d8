//! `kill -9` during heavy writing: the store opens cleanly afterwards and holds every record the
//! writer had reported committed, each one complete.
//!
//! The test binary runs itself again as a child (`crash::child_writer` with [`CHILD_ENV`] set)
//! that writes as fast as it can and prints `committed <n>` after each flush; the parent kills it
//! with SIGKILL after about a second.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use recserve_store::{Retention, Store, StoreConfig, WriterConfig};

use crate::common::{CHILD_ENV, Ctx, child, req, request, stored_request_numbers};

const URL_ENV: &str = "RECSERVE_STORE_TEST_URL";
const DIR_ENV: &str = "RECSERVE_STORE_TEST_DIR";

/// Child side: a no-op unless started by [`killed_writer_loses_nothing_committed`].
#[test]
fn child_writer() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("crash") {
        return;
    }
    let config = StoreConfig {
        url: std::env::var(URL_ENV).ok().filter(|u| !u.is_empty()),
        data_dir: std::env::var(DIR_ENV).expect("dir").into(),
        retention: Retention::default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let store = Store::open(&config).await.expect("child open");
        let writer =
            store.start_writer(WriterConfig { flush_interval: Duration::from_millis(20), ..Default::default() });
        let sink = writer.sink();
        let started = Instant::now();
        let mut i = 0usize;
        // Safety stop in case the parent never kills us.
        while started.elapsed() < Duration::from_secs(30) {
            for _ in 0..5000 {
                sink.submit(req(request(i, 1000 + i as i64)));
                i += 1;
            }
            writer.flush().await;
            println!("committed {}", writer.stats().committed);
        }
    });
}

async fn killed_writer_loses_nothing_committed(ctx: Ctx) {
    let mut cmd = child(
        "crash::child_writer",
        &[
            (CHILD_ENV, "crash".into()),
            (URL_ENV, ctx.config.url.clone().unwrap_or_default()),
            (DIR_ENV, ctx.config.data_dir.display().to_string()),
        ],
    );
    let mut proc = cmd.spawn().expect("spawn child");
    let stdout = proc.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.rsplit_once("committed ").map(|(_, n)| n).and_then(|n| n.trim().parse::<u64>().ok()) {
                let _ = tx.send(n);
            }
        }
    });
    // Wait for writing to be under way, then about a second more.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = 0u64;
    let mut since: Option<Instant> = None;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(n) => last = last.max(n),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
        if last > 0 && since.is_none() {
            since = Some(Instant::now());
        }
        if since.is_some_and(|s| s.elapsed() > Duration::from_millis(1000)) {
            break;
        }
    }
    proc.kill().expect("SIGKILL the child");
    let status = proc.wait().expect("wait");
    reader.join().expect("reader");
    // libtest may print its own text before the first line; the number follows "committed ".
    // Lines already in the pipe were printed after their flush returned: they count too.
    while let Ok(n) = rx.try_recv() {
        last = last.max(n);
    }
    assert!(!status.success(), "the child was killed, not finished: {status:?}");
    assert!(last > 0, "the child reported no commit before the kill");

    let store = Store::open(&ctx.config).await.unwrap_or_else(|e| panic!("reopen after kill -9: {e}"));
    let (count, _) = store.count_logs().await.expect("count");
    println!("{:?}: reported committed {last}, found {count}", ctx.kind);
    assert!(count >= last, "the store holds {count} records, the writer had reported {last} committed");
    // Every record complete: equal to what was written for its number.
    let seen: usize = stored_request_numbers(&store).await.values().sum();
    assert_eq!(seen as u64, count);
    store.close().await;
}

crate::both_backends!(killed_writer_loses_nothing_committed);
