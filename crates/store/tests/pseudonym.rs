//! Pseudonymous user ids (stable per key, key file 0600 and reused, environment, configured key
//! wins) and input digests; raw ids never reach the database unless `raw_user` is set.

use recserve_store::{LogQuery, PSEUDONYM_KEY_ENV, Pseudonymizer, input_or_digest};
use sha2::{Digest, Sha256};

use crate::common::{CHILD_ENV, Ctx, Kind, child, req, request};

#[test]
fn stable_per_key_and_different_across_keys() {
    let a = Pseudonymizer::new(b"key-one");
    let b = Pseudonymizer::new(b"key-two");
    let p = a.pseudonymize("alice");
    assert_eq!(p, a.pseudonymize("alice"));
    assert_eq!(p, Pseudonymizer::new(b"key-one").pseudonymize("alice"));
    assert_ne!(p, b.pseudonymize("alice"));
    assert_ne!(p, a.pseudonymize("alicf"));
    assert_eq!(p.len(), 64);
    assert!(p.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    // RFC 4231 test case 2: HMAC-SHA-256("Jefe", "what do ya want for nothing?").
    assert_eq!(
        Pseudonymizer::new(b"Jefe").pseudonymize("what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert!(!format!("{a:?}").contains("key-one"), "Debug must hide the key");
}

#[test]
fn key_file_created_0600_and_reused() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("nested/data");
    let first = Pseudonymizer::resolve(&data, None, None).expect("create");
    let path = data.join("pseudonym.key");
    let text = std::fs::read_to_string(&path).expect("key file");
    assert_eq!(text.trim().len(), 64, "32 random bytes in hex: {text:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = Pseudonymizer::resolve(&data, None, None).expect("reuse");
    assert_eq!(first.pseudonymize("u"), again.pseudonymize("u"));
    assert_eq!(std::fs::read_to_string(&path).expect("key file"), text, "the file is not rewritten");
    // The file's key is the hex it holds.
    let key = hex::decode(text.trim()).expect("hex");
    assert_eq!(first.pseudonymize("u"), Pseudonymizer::new(&key).pseudonymize("u"));
    // Another data dir → another key.
    let other = Pseudonymizer::resolve(&dir.path().join("other"), None, None).expect("other");
    assert_ne!(first.pseudonymize("u"), other.pseudonymize("u"));
}

#[test]
fn configured_key_wins_over_env_and_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let from_file = Pseudonymizer::resolve(dir.path(), None, None).expect("file");
    let configured = Pseudonymizer::resolve(dir.path(), Some("configured secret"), Some("env secret")).expect("cfg");
    assert_eq!(configured.pseudonymize("u"), Pseudonymizer::new(b"configured secret").pseudonymize("u"));
    let env = Pseudonymizer::resolve(dir.path(), None, Some("env secret")).expect("env");
    assert_eq!(env.pseudonymize("u"), Pseudonymizer::new(b"env secret").pseudonymize("u"));
    assert_ne!(env.pseudonymize("u"), from_file.pseudonymize("u"));
    // Hex keys are decoded; empty values count as absent.
    let hex_key = "00112233445566778899aabbccddeeff";
    let h = Pseudonymizer::resolve(dir.path(), Some(hex_key), None).expect("hex");
    assert_eq!(h.pseudonymize("u"), Pseudonymizer::new(&hex::decode(hex_key).expect("hex")).pseudonymize("u"));
    let empty = Pseudonymizer::resolve(dir.path(), Some(""), Some(" ")).expect("empty");
    assert_eq!(empty.pseudonymize("u"), from_file.pseudonymize("u"));
}

/// Child side of [`load_or_create_reads_the_environment`]: prints the pseudonym of "alice".
#[test]
fn child_print_pseudonym() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("pseudonym") {
        return;
    }
    let dir = std::env::var("RECSERVE_STORE_TEST_DIR").expect("dir");
    let p = Pseudonymizer::load_or_create(std::path::Path::new(&dir), None).expect("load");
    println!("pseudonym {}", p.pseudonymize("alice"));
}

#[test]
fn load_or_create_reads_the_environment() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = child(
        "pseudonym::child_print_pseudonym",
        &[
            (CHILD_ENV, "pseudonym".into()),
            (PSEUDONYM_KEY_ENV, "from the environment".into()),
            ("RECSERVE_STORE_TEST_DIR", dir.path().display().to_string()),
        ],
    )
    .output()
    .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.rsplit_once("pseudonym ").map(|(_, p)| p.trim()))
        .unwrap_or_else(|| panic!("child printed {stdout}"));
    assert_eq!(line, Pseudonymizer::new(b"from the environment").pseudonymize("alice"));
    assert!(!dir.path().join("pseudonym.key").exists(), "no key file when the environment gives the key");
}

#[test]
fn input_or_digest_caps() {
    let small = r#"{"a":1}"#.to_string();
    assert_eq!(input_or_digest(small.clone(), 7), small);
    let big = "x".repeat(100);
    let d = input_or_digest(big.clone(), 99);
    assert_eq!(d, format!("sha256:{} (100 bytes)", hex::encode(Sha256::digest(big.as_bytes()))));
    assert_eq!(input_or_digest(String::new(), 0), "");
}

async fn raw_ids_never_stored_unless_allowed(ctx: Ctx) {
    let store = ctx.open().await;
    let p = Pseudonymizer::new(b"k");
    let writer = store.start_writer(Default::default());
    for i in 0..50 {
        let mut r = request(i, 1000 + i as i64);
        r.user = Some(p.pseudonymize("alice.secret@example.com"));
        assert!(writer.sink().submit(req(r)));
    }
    let mut allowed = request(99, 5000);
    allowed.user = Some(p.pseudonymize("bob.raw@example.com"));
    allowed.raw_user = Some("bob.raw@example.com".into());
    assert!(writer.sink().submit(req(allowed)));
    writer.shutdown().await;

    let by_user = store
        .query_requests(&LogQuery {
            user: Some(p.pseudonymize("alice.secret@example.com")),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("query");
    assert_eq!(by_user.records.len(), 50);
    assert!(by_user.records.iter().all(|r| r.raw_user.is_none()));
    let bob = store
        .query_requests(&LogQuery { user: Some(p.pseudonymize("bob.raw@example.com")), ..Default::default() })
        .await
        .expect("query");
    assert_eq!(bob.records.len(), 1);
    assert_eq!(bob.records[0].raw_user.as_deref(), Some("bob.raw@example.com"));

    // Everything stored about requests, as the query API returns it: the allowed raw id is
    // there (the check can see a raw id), Alice's is nowhere.
    let everything = store.query_requests(&LogQuery { limit: Some(1000), ..Default::default() }).await.expect("query");
    assert_eq!(everything.records.len(), 51);
    let text = serde_json::to_string(&everything.records).expect("json");
    assert!(text.contains("bob.raw@example.com"), "the allowed raw id is stored (the scan works)");
    assert!(!text.contains("alice.secret"), "a raw user id reached the request log");
    let hits =
        store.query_requests(&LogQuery { text: Some("alice.secret".into()), ..Default::default() }).await.expect("q");
    assert!(hits.records.is_empty());
    store.close().await;
    if ctx.kind == Kind::Sqlite {
        // Request records are compressed on disk, so the file cannot show Bob's id; it must not
        // show Alice's in any table either.
        let path = crate::common::sqlite_file(&ctx.config);
        let mut bytes = std::fs::read(&path).expect("db file");
        if let Ok(wal) = std::fs::read(recserve_store_wal(&path)) {
            bytes.extend(wal);
        }
        let has = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!has("alice.secret"), "a raw user id reached the database file");
    }
}

fn recserve_store_wal(path: &std::path::Path) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-wal");
    s.into()
}

crate::both_backends!(raw_ids_never_stored_unless_allowed);
