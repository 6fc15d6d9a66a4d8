//! Leases: one holder at a time, renewal keeps the term, expiry and release hand over (the term
//! grows), racing replicas agree on one winner, bad names are refused.

use recserve_store::StoreError;

use crate::common::Ctx;

const NAME: &str = "alert-evaluator";

async fn one_holder_renew_expire_release(ctx: Ctx) {
    let store = ctx.open().await;
    assert_eq!(store.lease(NAME).await.expect("read"), None, "no lease before anyone asks");
    let a = store.try_acquire_lease(NAME, "replica-a", 1_000, 10_000).await.expect("acquire");
    assert!(a.held_by("replica-a", 1_000));
    assert_eq!((a.term, a.acquired_ms, a.expires_ms), (1, 1_000, 11_000));

    // Another replica cannot take a live lease; it learns who holds it.
    let b = store.try_acquire_lease(NAME, "replica-b", 5_000, 10_000).await.expect("attempt");
    assert!(!b.held_by("replica-b", 5_000));
    assert_eq!(b.holder, "replica-a");

    // Renewal moves the expiry, keeps the term and the acquisition time.
    let a = store.try_acquire_lease(NAME, "replica-a", 6_000, 10_000).await.expect("renew");
    assert_eq!((a.holder.as_str(), a.term, a.acquired_ms, a.expires_ms), ("replica-a", 1, 1_000, 16_000));

    // Once expired, the other replica takes it: a new term.
    let b = store.try_acquire_lease(NAME, "replica-b", 16_001, 10_000).await.expect("take over");
    assert!(b.held_by("replica-b", 16_001));
    assert_eq!((b.term, b.acquired_ms), (2, 16_001));
    assert!(!b.held_by("replica-a", 16_001));

    // Release hands over at once, and only the holder can release.
    assert!(!store.release_lease(NAME, "replica-a").await.expect("not the holder"));
    assert!(store.release_lease(NAME, "replica-b").await.expect("release"));
    assert!(!store.release_lease(NAME, "replica-b").await.expect("already released"));
    let a = store.try_acquire_lease(NAME, "replica-a", 17_000, 10_000).await.expect("after release");
    assert!(a.held_by("replica-a", 17_000));
    assert_eq!(a.term, 3);

    // Leases are independent by name.
    let other = store.try_acquire_lease("other", "replica-b", 17_000, 10_000).await.expect("other lease");
    assert!(other.held_by("replica-b", 17_000));
    assert_eq!(other.term, 1);

    // Bad input is refused with what was expected.
    let e = store.try_acquire_lease("", "x", 0, 1).await.expect_err("empty name");
    assert!(matches!(e, StoreError::Invalid { what: "lease name", .. }), "{e}");
    let e = store.try_acquire_lease(NAME, "x", 0, 0).await.expect_err("no ttl");
    assert!(e.to_string().contains("not positive"), "{e}");
    store.close().await;
}

/// Replicas racing for an expired lease from separate pools: exactly one wins.
async fn racing_replicas_agree_on_one_holder(ctx: Ctx) {
    let setup = ctx.open().await;
    setup.try_acquire_lease(NAME, "gone", 0, 1).await.expect("an expired holder");
    let mut stores = Vec::new();
    for _ in 0..6 {
        stores.push(ctx.open().await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, s) in stores.iter().enumerate() {
        let (s, me) = (s.clone(), format!("replica-{i}"));
        tasks.spawn(async move {
            let lease = s.try_acquire_lease(NAME, &me, 100, 10_000).await.expect("attempt");
            (me, lease)
        });
    }
    let results = tasks.join_all().await;
    let winners: Vec<&String> = results.iter().filter(|(me, l)| l.held_by(me, 100)).map(|(me, _)| me).collect();
    assert_eq!(winners.len(), 1, "exactly one replica holds the lease: {results:?}");
    let stored = setup.lease(NAME).await.expect("read").expect("exists");
    assert_eq!(&stored.holder, winners[0]);
    assert_eq!(stored.term, 2, "one hand-over from the expired holder");
    for s in stores {
        s.close().await;
    }
    setup.close().await;
}

crate::both_backends!(one_holder_renew_expire_release, racing_replicas_agree_on_one_holder);
