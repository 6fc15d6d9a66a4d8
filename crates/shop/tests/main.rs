//! Tests of the synthetic shop: determinism, the export's files against FORMAT.md, the ground
//! truth's behaviour, the demo's simulated shoppers, and bad input.

#![allow(clippy::unwrap_used)]

mod export;
mod simulate;
mod truth;

use recserve_shop::{Shop, ShopConfig};

/// A small shop that builds fast in debug builds.
pub fn small(seed: u64) -> Shop {
    Shop::new(ShopConfig { items: 400, users: 300, seed }).unwrap()
}

#[test]
fn same_config_gives_the_same_shop_and_another_seed_another() {
    let a = small(7);
    let b = small(7);
    let c = small(8);
    assert_eq!(a.items(), b.items());
    assert_eq!(a.users(), b.users());
    assert_ne!(a.items(), c.items());
    assert_ne!(a.users(), c.users());
}

#[test]
fn ids_are_indices_in_the_documented_format() {
    let shop = small(1);
    for (i, it) in shop.items().iter().enumerate() {
        assert_eq!(it.id, format!("I{i:06}"));
        assert_eq!(shop.item_index(&it.id), Some(i));
    }
    for (i, u) in shop.users().iter().enumerate() {
        assert_eq!(u.id, format!("U{i:07}"));
        assert_eq!(shop.user_index(&u.id), Some(i));
    }
    assert_eq!(shop.item_index("I000400"), None, "past the catalog");
    assert_eq!(shop.item_index("I00001"), None, "too few digits");
    assert_eq!(shop.item_index("i000001"), None);
    assert_eq!(shop.item_index("I+00001"), None);
    assert_eq!(shop.user_index("U0000300"), None);
    assert_eq!(shop.user_index("U000001"), None);
}

#[test]
fn catalog_values_are_in_range_and_titles_name_brand_and_subcategory() {
    let shop = small(3);
    let mut categories = std::collections::BTreeSet::new();
    let mut out_of_stock = 0;
    for it in shop.items() {
        assert!(it.price > 0.0, "{it:?}");
        assert_eq!((it.price * 100.0).round() / 100.0, it.price, "price in cents: {it:?}");
        assert!(it.popularity >= 0.0 && it.popularity.fract() == 0.0, "{it:?}");
        assert!(it.title.starts_with(it.brand), "{it:?}");
        assert_eq!(it.category_path(), format!("{}>{}", it.category, it.subcategory));
        out_of_stock += usize::from(it.stock == 0);
        categories.insert(it.category);
    }
    assert_eq!(categories.len(), 8, "every top-level category is stocked: {categories:?}");
    assert!((8..=70).contains(&out_of_stock), "about 8% out of stock, got {out_of_stock} of 400");
    let headphones = shop.items().iter().find(|it| it.subcategory == "headphones").unwrap();
    assert!(headphones.title.contains("headphones"), "{headphones:?}");
}

#[test]
fn the_default_shop_is_the_demo_shop_and_stays_stable() {
    let shop = Shop::new(ShopConfig::default()).unwrap();
    assert_eq!(ShopConfig::default(), ShopConfig { items: 5_000, users: 10_000, seed: 42 });
    assert_eq!(shop.items().len(), 5_000);
    assert_eq!(shop.users().len(), 10_000);
    // Pinned: a change here changes the bundled demo's catalog (and needs a re-trained model).
    let first = &shop.items()[0];
    assert_eq!(
        (first.title.as_str(), first.price, first.stock),
        (PINNED_FIRST_ITEM.0, PINNED_FIRST_ITEM.1, PINNED_FIRST_ITEM.2),
        "{first:?}"
    );
    assert_eq!(catalog_fingerprint(&shop), PINNED_FINGERPRINT);
}

const PINNED_FIRST_ITEM: (&str, f64, u32) = ("Folio italian cookbook", 40.17, 0);
const PINNED_FINGERPRINT: u64 = 8_143_992_159_560_821_290;

/// FNV-1a over every observable item and user field.
fn catalog_fingerprint(shop: &Shop) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for it in shop.items() {
        eat(&format!(
            "{}|{}|{}|{}|{:.2}|{}|{:.1}",
            it.id,
            it.title,
            it.category_path(),
            it.brand,
            it.price,
            it.stock,
            it.popularity
        ));
    }
    for u in shop.users() {
        eat(&format!(
            "{}|{}|{}|{}|{}",
            u.id,
            u.segment.as_str(),
            u.age_band.as_str(),
            u.device.as_str(),
            u.tenure_days
        ));
    }
    h
}

#[test]
fn bad_sizes_are_refused_with_the_field_named() {
    let err = Shop::new(ShopConfig { items: 0, users: 10, seed: 1 }).err().unwrap().to_string();
    assert!(err.contains("items") && err.contains("got 0"), "{err}");
    let err = Shop::new(ShopConfig { items: 10, users: 0, seed: 1 }).err().unwrap().to_string();
    assert!(err.contains("users"), "{err}");
    let err = Shop::new(ShopConfig { items: 1_000_001, users: 10, seed: 1 }).err().unwrap().to_string();
    assert!(err.contains("items") && err.contains("1000000"), "{err}");
}

#[test]
fn query_overlap_follows_the_format() {
    use recserve_shop::text::{query_overlap, tokenize};
    assert_eq!(
        tokenize("Nordlys wireless Noise-Cancelling headphones, black"),
        ["nordlys", "wireless", "noise", "cancelling", "headphones", "black"]
    );
    assert_eq!(query_overlap("wireless headphones", "Nordlys wireless noise-cancelling headphones black"), 1.0);
    assert_eq!(query_overlap("noise cancelling speaker", "Nordlys noise-cancelling headphones"), 2.0 / 3.0);
    assert_eq!(query_overlap("", "anything"), 0.0);
    assert_eq!(query_overlap("--", "anything"), 0.0);
}
