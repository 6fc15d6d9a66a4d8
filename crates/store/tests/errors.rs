//! Bad store URLs and unreachable servers give errors that name the store (without password).

use std::time::{Duration, Instant};

use recserve_store::{Retention, Store, StoreConfig};

fn config(url: &str) -> StoreConfig {
    StoreConfig { url: Some(url.into()), data_dir: std::env::temp_dir(), retention: Retention::default() }
}

async fn open_err(url: &str) -> String {
    match Store::open(&config(url)).await {
        Ok(_) => panic!("{url} opened"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn unsupported_scheme_names_the_url_without_password() {
    let e = open_err("postgres://admin:hunter2@db.example:5432/recserve").await;
    assert!(e.contains("postgres://admin:***@db.example:5432/recserve"), "{e}");
    assert!(e.contains("unsupported scheme"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let e = open_err("just-a-path").await;
    assert!(e.contains("just-a-path"), "{e}");
    let e = open_err("mysql://u:p@127.0.0.1:3306").await;
    assert!(e.contains("no database name") && e.contains("127.0.0.1:3306"), "{e}");
    let e = open_err("sqlite::memory:").await;
    assert!(e.contains("sqlite::memory:") && e.contains("file path"), "{e}");
}

#[tokio::test]
async fn unreachable_mysql_fails_fast_naming_it() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let started = Instant::now();
    let e = open_err("mysql://recserve:topsecret@127.0.0.1:1/recserve").await;
    assert!(e.contains("127.0.0.1:1/recserve"), "{e}");
    assert!(e.contains("cannot connect"), "{e}");
    assert!(!e.contains("topsecret"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(9), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn sqlite_url_and_unwritable_path() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("sub/custom.db");
    let url = format!("sqlite://{}", file.display());
    let store = Store::open(&config(&url)).await.expect("open sqlite url");
    assert_eq!(store.describe(), format!("sqlite {}", file.display()));
    assert!(file.exists());
    store.close().await;
    // A data dir below a regular file cannot be created.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").expect("write");
    let e = match Store::open(&StoreConfig::sqlite_in(blocker.join("data"))).await {
        Ok(_) => panic!("opened below a file"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains(&blocker.display().to_string()), "{e}");
}
