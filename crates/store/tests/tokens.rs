//! API tokens: created with a secret that is returned once and stored only as its SHA-256,
//! listed without secrets, names unique among usable tokens, revocation, expiry checks, lazy
//! last-use times.

use recserve_store::tokens::{TOKEN_PREFIX, hash_secret};
use recserve_store::{Store, StoreError};
use recserve_telemetry::store::now_ms;

use crate::common::{Ctx, Kind};

async fn create_list_revoke_touch(ctx: Ctx) {
    let store = ctx.open().await;
    assert!(store.list_tokens().await.expect("list").is_empty());
    let admin = store.create_token("admin", "admin", None).await.expect("create");
    assert!(admin.secret.starts_with(TOKEN_PREFIX));
    assert!(admin.record.id.starts_with("tok_"));
    let expires = now_ms() + 86_400_000;
    let ci = store.create_token("ci", "operator", Some(expires)).await.expect("create");

    // Names are unique among usable tokens.
    let e = store.create_token("ci", "viewer", None).await.expect_err("refused");
    assert!(matches!(e, StoreError::Invalid { what: "token name", .. }), "{e}");
    assert!(e.to_string().contains("exists already"), "{e}");
    // Bad names, roles and expiries are refused with what was expected.
    assert!(store.create_token("has space", "admin", None).await.expect_err("refused").to_string().contains("letters"));
    assert!(store.create_token("x", "", None).await.expect_err("refused").to_string().contains("token role"));
    assert!(store.create_token("old", "admin", Some(1000)).await.expect_err("refused").to_string().contains("future"));

    let stored = store.token_hashes().await.expect("hashes");
    assert_eq!(stored.len(), 2);
    // Listed by creation time; tokens made in the same millisecond come in id order.
    let by_id = |id: &str| stored.iter().find(|t| t.record.id == id).expect("listed");
    assert_eq!(by_id(&admin.record.id).record, admin.record);
    assert_eq!(by_id(&admin.record.id).hash, hash_secret(&admin.secret));
    let ci_stored = &by_id(&ci.record.id).record;
    assert_eq!((ci_stored.role.as_str(), ci_stored.expires_ms), ("operator", Some(expires)));
    assert!(stored.iter().all(|t| t.record.usable_at(now_ms())));
    assert!(!ci_stored.usable_at(expires));

    // Revoking keeps the row (refused from now on) and frees the name; a second revocation
    // keeps the first time; an unknown id is None.
    let revoked = store.revoke_token(&ci.record.id).await.expect("revoke").expect("found");
    let at = revoked.revoked_ms.expect("revoked");
    assert!(!revoked.usable_at(now_ms()));
    let again = store.revoke_token(&ci.record.id).await.expect("revoke").expect("found");
    assert_eq!(again.revoked_ms, Some(at));
    assert!(store.revoke_token("tok_missing").await.expect("revoke").is_none());
    let ci2 = store.create_token("ci", "viewer", None).await.expect("the name is free again");
    assert_ne!(ci2.secret, ci.secret);

    // Last use: written in one call, never moved backwards.
    store.touch_tokens(&[(admin.record.id.clone(), 5_000), (ci2.record.id.clone(), 7_000)]).await.expect("touch");
    store.touch_tokens(&[(admin.record.id.clone(), 4_000)]).await.expect("touch");
    let listed = store.list_tokens().await.expect("list");
    assert_eq!(listed.len(), 3);
    let last_used = |id: &str| listed.iter().find(|t| t.id == id).expect("listed").last_used_ms;
    assert_eq!(
        [&admin.record.id, &ci.record.id, &ci2.record.id].map(|id| last_used(id)),
        [Some(5_000), None, Some(7_000)]
    );
    store.close().await;
}

/// The secret is nowhere in the database file: only its hash is.
async fn secrets_are_stored_hashed(ctx: Ctx) {
    if ctx.kind != Kind::Sqlite {
        return;
    }
    let store = ctx.open().await;
    let token = store.create_token("reader", "viewer", None).await.expect("create");
    store.close().await;
    drop(store);
    let path = crate::common::sqlite_file(&ctx.config);
    let mut bytes = std::fs::read(&path).expect("db file");
    if let Ok(wal) = std::fs::read(format!("{}-wal", path.display())) {
        bytes.extend(wal);
    }
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(token.secret.as_bytes()), "the secret must not be stored");
    assert!(!contains(&token.secret.as_bytes()[TOKEN_PREFIX.len()..]), "not even without its prefix");
    assert!(contains(hash_secret(&token.secret).as_bytes()), "the hash is what is stored");
    let again: Store = ctx.open().await;
    assert_eq!(again.list_tokens().await.expect("list")[0].name, "reader");
}

crate::both_backends!(create_list_revoke_touch, secrets_are_stored_hashed);
