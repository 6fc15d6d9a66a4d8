//! Schema migrations: both dialects hold the same versions; opening twice applies nothing twice.

use std::collections::BTreeSet;
use std::path::Path;

use recserve_store::db::{MYSQL_MIGRATIONS, SQLITE_MIGRATIONS};
use recserve_store::{
    AuditOutcome, AuditQuery, AuditRecord, Backend, LogQuery, NotificationQuery, NotificationRecord, RequestRecord,
};

use crate::common::{Ctx, Kind, req, request};

fn versions_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.ends_with(".sql"))
        .map(|n| n.split('_').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn both_dialects_have_the_same_migration_versions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let sqlite = versions_in(&root.join("sqlite"));
    let mysql = versions_in(&root.join("mysql"));
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, mysql, "migrations/sqlite and migrations/mysql must hold the same versions");
    let embedded_sqlite: Vec<i64> = SQLITE_MIGRATIONS.iter().map(|m| m.version).collect();
    let embedded_mysql: Vec<i64> = MYSQL_MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(embedded_sqlite, embedded_mysql);
    assert_eq!(embedded_sqlite.len(), sqlite.len());
}

async fn open_twice_keeps_data(ctx: Ctx) {
    let store = ctx.open().await;
    assert_eq!(store.backend(), if ctx.kind == Kind::Sqlite { Backend::Sqlite } else { Backend::MySql });
    let w = store.start_writer(Default::default());
    assert!(w.sink().submit(req(request(1, 1000))));
    let stats = w.shutdown().await;
    assert_eq!(stats.committed, 1);
    store.close().await;
    // Second open: migrations already applied, data kept.
    let again = ctx.open().await;
    assert_eq!(again.count_logs().await.expect("count"), (1, 0));
    let third = ctx.open().await;
    assert_eq!(third.count_logs().await.expect("count"), (1, 0));
    let d = again.describe();
    match ctx.kind {
        Kind::Sqlite => assert!(d.starts_with("sqlite ") && d.ends_with("recserve.db"), "{d}"),
        Kind::MySql => {
            assert!(d.starts_with("mysql 127.0.0.1:") || d.starts_with("mysql "), "{d}");
            assert!(!d.contains("recserve:recserve"), "describe must not show credentials: {d}");
        }
    }
    again.close().await;
    third.close().await;
}

async fn sqlite_pragmas_are_set(ctx: Ctx) {
    if ctx.kind != Kind::Sqlite {
        return;
    }
    let store = ctx.open().await;
    store.close().await;
    let path = crate::common::sqlite_file(&ctx.config);
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut conn).await.expect("journal_mode");
    assert_eq!(mode.to_lowercase(), "wal");
    let av: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(&mut conn).await.expect("auto_vacuum");
    assert_eq!(av, 2, "auto_vacuum must be INCREMENTAL (2)");
}

/// Schema 2 (state documents, notifications, audit): reopening applies nothing again; the
/// revision counter row is not reset and the data is kept.
async fn schema_2_is_applied_once(ctx: Ctx) {
    let store = ctx.open().await;
    assert_eq!(store.state_revision().await.expect("revision"), 0);
    assert_eq!(store.put_document("alerting/states", "{}").await.expect("put"), 1);
    let id = store.audit(&AuditRecord::new(1000, "alice", "rules.reload", AuditOutcome::Ok)).await.expect("audit");
    store.record_notification(&NotificationRecord::new(1000, "ops", "g", "sent")).await.expect("notification");
    store.close().await;
    for _ in 0..2 {
        let again = ctx.open().await;
        assert_eq!(again.state_revision().await.expect("revision"), 1);
        let audit = again.query_audit(&AuditQuery::default()).await.expect("audit");
        assert_eq!(audit.records.iter().map(|r| r.id).collect::<Vec<_>>(), vec![Some(id)]);
        assert_eq!(again.query_notifications(&NotificationQuery::default()).await.expect("q").records.len(), 1);
        again.close().await;
    }
    let again = ctx.open().await;
    assert_eq!(again.put_document("alerting/states", "{}").await.expect("put"), 2);
    assert_eq!(again.state_revision().await.expect("revision"), 2);
    again.close().await;
}

/// Schema 7: request rows written by schemas 1-6 (one `request_log` row per request) are moved
/// into blocks when the store opens, every field kept, each row once, and the old table is left
/// empty.
async fn old_request_rows_move_into_blocks_at_open(ctx: Ctx) {
    let store = ctx.open().await;
    store.close().await;
    let n = 1500;
    let want: Vec<RequestRecord> = (0..n).map(|i| request(i, 1_000_000 + i as i64)).collect();
    let insert = "INSERT INTO request_log (request_id, time_ms, replica, model, version, arm, pipeline, user_hash, raw_user, \
                  input, output, stages, latency_ms, status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    macro_rules! fill {
        ($conn:expr) => {{
            let mut tx = sqlx::Connection::begin(&mut $conn).await.expect("begin");
            for r in &want {
                sqlx::query(insert)
                    .bind(&r.request_id)
                    .bind(r.time_ms)
                    .bind(&r.replica)
                    .bind(&r.model)
                    .bind(&r.version)
                    .bind(&r.arm)
                    .bind(&r.pipeline)
                    .bind(&r.user)
                    .bind(&r.raw_user)
                    .bind(&r.input)
                    .bind(&r.output)
                    .bind(serde_json::to_string(&r.stages).expect("stages"))
                    .bind(r.latency_ms)
                    .bind(i32::from(r.status))
                    .bind(&r.error)
                    .execute(&mut *tx)
                    .await
                    .expect("insert an old-schema row");
            }
            tx.commit().await.expect("commit");
        }};
    }
    match ctx.kind {
        Kind::Sqlite => {
            let path = crate::common::sqlite_file(&ctx.config);
            let mut conn =
                <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .expect("connect");
            fill!(conn);
        }
        Kind::MySql => {
            let url = ctx.config.url.clone().expect("mysql url");
            let mut conn = <sqlx::MySqlConnection as sqlx::Connection>::connect(&url).await.expect("connect");
            fill!(conn);
        }
    }
    // Two stores opening at once (a fleet's replicas, or the store and the series persistence of
    // one process) move every row exactly once.
    let (store, other) = tokio::join!(ctx.open(), ctx.open());
    other.close().await;
    assert_eq!(store.count_logs().await.expect("count"), (n as u64, 0));
    let mut got = Vec::new();
    let mut cursor = None;
    loop {
        let page =
            store.query_requests(&LogQuery { limit: Some(1000), cursor, ..Default::default() }).await.expect("q");
        got.extend(page.records);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    got.reverse();
    assert_eq!(got, want);
    store.close().await;
    // Nothing moves twice.
    let again = ctx.open().await;
    assert_eq!(again.count_logs().await.expect("count"), (n as u64, 0));
    again.close().await;
}

crate::both_backends!(
    open_twice_keeps_data,
    sqlite_pragmas_are_set,
    schema_2_is_applied_once,
    old_request_rows_move_into_blocks_at_open
);
