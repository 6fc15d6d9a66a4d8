//! `Shop::export`: the four files of FORMAT.md section 1, byte-identical for the same settings.

use crate::small;
use recserve_shop::{ExportConfig, Shop, ShopConfig, ShopError};
use std::collections::BTreeMap;
use std::path::Path;

const FILES: [&str; 4] = ["items.csv", "users.csv", "interactions.csv", "meta.json"];

fn export(shop: &Shop, out: &Path, sessions: usize) -> recserve_shop::ExportSummary {
    shop.export(&ExportConfig { out: out.to_path_buf(), sessions }, &mut |_| {}).unwrap()
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r.records().map(|rec| rec.unwrap().iter().map(str::to_string).collect()).collect();
    (header, rows)
}

fn is_id(s: &str, prefix: char, digits: usize) -> bool {
    s.strip_prefix(prefix).is_some_and(|d| d.len() == digits && d.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn same_settings_give_identical_bytes_and_another_seed_other_bytes() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    export(&small(21), dirs[0].path(), 150);
    export(&small(21), dirs[1].path(), 150);
    export(&small(22), dirs[2].path(), 150);
    for f in FILES {
        let a = std::fs::read(dirs[0].path().join(f)).unwrap();
        let b = std::fs::read(dirs[1].path().join(f)).unwrap();
        let c = std::fs::read(dirs[2].path().join(f)).unwrap();
        assert!(!a.is_empty());
        assert!(a == b, "{f} differs between two runs with the same seed");
        assert!(a != c, "{f} is the same for another seed");
    }
    assert!(!dirs[0].path().join(".items.csv.tmp").exists(), "no temporary files are left");
}

#[test]
fn files_have_exactly_the_documented_columns_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let shop = small(23);
    let summary = export(&shop, dir.path(), 300);

    let (header, items) = read_csv(&dir.path().join("items.csv"));
    assert_eq!(
        header,
        ["item_id", "title", "category", "subcategory", "category_path", "brand", "price", "stock", "popularity"]
    );
    assert_eq!(items.len(), 400);
    for (i, row) in items.iter().enumerate() {
        assert_eq!(row[0], format!("I{i:06}"));
        assert_eq!(row[4], format!("{}>{}", row[2], row[3]));
        let price: f64 = row[6].parse().unwrap();
        assert!(price > 0.0 && row[6].split('.').nth(1).map(str::len) == Some(2), "price {}", row[6]);
        row[7].parse::<u32>().unwrap();
        assert!(row[8].parse::<f64>().unwrap() >= 0.0);
        assert_eq!(row[1], shop.items()[i].title);
    }

    let (header, users) = read_csv(&dir.path().join("users.csv"));
    assert_eq!(header, ["user_id", "segment", "age_band", "device", "tenure_days"]);
    assert_eq!(users.len(), 300);
    for (i, row) in users.iter().enumerate() {
        assert_eq!(row[0], format!("U{i:07}"));
        assert!(["bargain_hunter", "brand_loyal", "premium", "casual"].contains(&row[1].as_str()), "{row:?}");
        assert!(["18-24", "25-34", "35-44", "45-54", "55+"].contains(&row[2].as_str()), "{row:?}");
        assert!(["mobile", "desktop", "tablet"].contains(&row[3].as_str()), "{row:?}");
        assert!(row[4].parse::<u32>().unwrap() >= 1);
    }

    let (header, rows) = read_csv(&dir.path().join("interactions.csv"));
    assert_eq!(
        header,
        [
            "request_id",
            "session_id",
            "user_id",
            "ts",
            "scenario",
            "query",
            "item_id",
            "position",
            "clicked",
            "added_to_cart",
            "purchased"
        ]
    );
    assert_eq!(rows.len() as u64, summary.impressions);
    let mut pages: BTreeMap<String, Vec<&Vec<String>>> = BTreeMap::new();
    let (mut clicks, mut purchases, mut sessions) = (0u64, 0u64, std::collections::BTreeSet::new());
    for row in &rows {
        assert!(is_id(&row[0], 'R', 9) && is_id(&row[1], 'S', 8) && is_id(&row[2], 'U', 7), "{row:?}");
        assert!(is_id(&row[6], 'I', 6) && shop.item_index(&row[6]).is_some(), "{row:?}");
        assert!(shop.user_index(&row[2]).is_some(), "{row:?}");
        let ts: i64 = row[3].parse().unwrap();
        assert!((1_767_225_600..1_767_225_600 + 31 * 86_400).contains(&ts), "{row:?}");
        match row[4].as_str() {
            "home_feed" => assert_eq!(row[5], "", "{row:?}"),
            "search" => assert!(!row[5].is_empty(), "{row:?}"),
            other => panic!("scenario {other}"),
        }
        let flags: Vec<u8> = row[8..11].iter().map(|f| f.parse().unwrap()).collect();
        assert!(flags.iter().all(|f| *f <= 1));
        assert!(flags[0] >= flags[1] && flags[1] >= flags[2], "{row:?}");
        if flags[2] == 1 {
            assert!(shop.item(&row[6]).unwrap().stock > 0, "out-of-stock purchase {row:?}");
        }
        clicks += u64::from(flags[0]);
        purchases += u64::from(flags[2]);
        sessions.insert(row[1].clone());
        pages.entry(row[0].clone()).or_default().push(row);
    }
    assert_eq!(sessions.len(), 300);
    assert_eq!(pages.len() as u64, summary.requests);
    for (id, page) in &pages {
        assert!((10..=20).contains(&page.len()), "{id}: {} impressions", page.len());
        let positions: Vec<usize> = page.iter().map(|r| r[7].parse().unwrap()).collect();
        assert_eq!(positions, (0..page.len()).collect::<Vec<_>>(), "{id}");
        let mut items: Vec<&str> = page.iter().map(|r| r[6].as_str()).collect();
        items.sort_unstable();
        items.dedup();
        assert_eq!(items.len(), page.len(), "{id}: an item shown twice");
        assert!(page.iter().all(|r| r[1..6] == page[0][1..6]), "{id}: one session, user, time and query per page");
    }

    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("meta.json")).unwrap()).unwrap();
    let keys: Vec<&str> = meta.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys.iter().copied().collect::<std::collections::BTreeSet<_>>(),
        ["seed", "items", "users", "sessions", "generator_version", "impressions", "clicks", "purchases"].into(),
    );
    assert_eq!(meta["seed"], 23);
    assert_eq!(meta["items"], 400);
    assert_eq!(meta["users"], 300);
    assert_eq!(meta["sessions"], 300);
    assert_eq!(meta["generator_version"], 1);
    assert_eq!(meta["impressions"], rows.len() as u64);
    assert_eq!(meta["clicks"], clicks);
    assert_eq!(meta["purchases"], purchases);
    assert_eq!((summary.clicks, summary.purchases), (clicks, purchases));
}

#[test]
fn logs_have_a_realistic_click_rate_and_signal_beyond_popularity() {
    let shop = Shop::new(ShopConfig { items: 2_000, users: 1_000, seed: 24 }).unwrap();
    let (mut impressions, mut clicks, mut searches) = (0u64, 0u64, 0u64);
    let (mut fav, mut fav_clicks) = (0u64, 0u64);
    let mut per_position = [(0u64, 0u64); 10];
    let mut progress_calls = 0;
    shop.simulate_logs::<()>(
        3_000,
        &mut |p| {
            progress_calls += 1;
            assert!(p.sessions_done <= p.sessions_total);
        },
        |req| {
            searches += u64::from(req.scenario == "search");
            let favs = shop.favourite_subcategories(&shop.users()[req.user].id);
            for (pos, (item, (c, _, _))) in req.items.iter().zip(req.outcomes).enumerate() {
                impressions += 1;
                clicks += u64::from(*c);
                if favs.contains(&shop.items()[*item as usize].subcategory) {
                    fav += 1;
                    fav_clicks += u64::from(*c);
                }
                if pos < 10 {
                    per_position[pos].0 += 1;
                    per_position[pos].1 += u64::from(*c);
                }
            }
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(progress_calls, 3);
    let ctr = clicks as f64 / impressions as f64;
    assert!((0.02..0.09).contains(&ctr), "CTR {ctr}");
    assert!(searches > 0);
    let fav_ctr = fav_clicks as f64 / fav as f64;
    let other_ctr = (clicks - fav_clicks) as f64 / (impressions - fav) as f64;
    assert!(fav_ctr > 2.0 * other_ctr, "favourites {fav_ctr:.4} vs others {other_ctr:.4}");
    let rate = |(n, c): (u64, u64)| c as f64 / n as f64;
    assert!(rate(per_position[0]) > 1.5 * rate(per_position[9]), "{per_position:?}");
}

#[test]
fn export_replaces_its_files_and_leaves_others_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new/nested");
    let shop = Shop::new(ShopConfig { items: 50, users: 20, seed: 1 }).unwrap();
    export(&shop, &out, 5);
    std::fs::write(out.join("items.csv"), "stale").unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    export(&shop, &out, 5);
    assert!(std::fs::read_to_string(out.join("items.csv")).unwrap().starts_with("item_id,title,"));
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
}

#[test]
fn an_unwritable_destination_or_zero_sessions_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let shop = Shop::new(ShopConfig { items: 50, users: 20, seed: 1 }).unwrap();
    let err = shop.export(&ExportConfig { out: file.join("out"), sessions: 5 }, &mut |_| {}).unwrap_err();
    assert!(matches!(err, ShopError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("a-file/out"), "{err}");
    let err = shop.export(&ExportConfig { out: dir.path().join("x"), sessions: 0 }, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("sessions"), "{err}");
}
