//! Table loading, typed catalog columns, reload keeping the old tables on error.

use std::path::Path;

use recserve_pipeline::tables::{ItemCatalog, Table};
use recserve_pipeline::{Pipelines, RecommendRequest};

use crate::common::{TractRunner, shop, shop_copy};

#[test]
fn table_parses_quoted_csv_and_indexes_keys() {
    let csv = b"id,title,price\nA,\"Red, shoe\",1.5\nB,\"say \"\"hi\"\"\",2\n";
    let t = Table::parse(Path::new("t.csv"), csv, "id").unwrap();
    assert_eq!(t.len(), 2);
    let title = t.column("title").unwrap();
    assert_eq!(t.cell(t.row("A").unwrap(), title), "Red, shoe");
    assert_eq!(t.cell(t.row("B").unwrap(), title), "say \"hi\"");
    assert!(t.row("C").is_none());
}

#[test]
fn table_errors_are_clear() {
    let e = Table::parse(Path::new("t.csv"), b"id,x\nA,1\nA,2\n", "id").unwrap_err().to_string();
    assert!(e.contains("duplicate key 'A'"), "{e}");
    let e = Table::parse(Path::new("t.csv"), b"x,y\n1,2\n", "id").unwrap_err().to_string();
    assert!(e.contains("no column 'id'"), "{e}");
    let e = Table::parse(Path::new("t.csv"), b"id,x\nA,1,2\n", "id").unwrap_err().to_string();
    assert!(e.contains("t.csv"), "{e}");
    let t = Table::parse(Path::new("i.csv"), b"item_id,title,category,price,stock\nI1,t,c,abc,1\n", "item_id").unwrap();
    let e = ItemCatalog::new(t, "popularity").unwrap_err().to_string();
    assert!(e.contains("row 1") && e.contains("price") && e.contains("abc"), "{e}");
}

#[test]
fn catalog_columns_and_popularity_order() {
    let csv = b"item_id,title,category,subcategory,brand,price,stock,popularity\n\
        I1,Red Shoe,fashion,shoes,Acme,10,0,5\nI2,Blue Lamp,home,lamps,Lumo,20.5,3,50\nI3,Lamp,home,lamps,Acme,1,1,7\n";
    let c = ItemCatalog::new(Table::parse(Path::new("i.csv"), csv, "item_id").unwrap(), "popularity").unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!(c.by_popularity, [1, 2, 0]);
    assert_eq!(c.price[1], 20.5);
    assert_eq!(c.stock[0], 0);
    assert_eq!(c.category_name(1), "home");
    assert_eq!(c.subcategory_name(0), "shoes");
    assert_eq!(c.brand_name(2), "Acme");
    assert_eq!(c.rows_of_category[c.categories.get("lamps").unwrap() as usize], [1, 2]);
}

#[test]
fn reload_swaps_tables_and_keeps_old_on_error() {
    let dir = shop_copy();
    let p = Pipelines::load(&dir.path().join("pipelines.toml")).unwrap();
    assert_eq!(p.table_sizes(), (40, 240));
    assert!(p.knows_user("U0000001"));

    // a broken users file: reload fails naming the file, the old table keeps serving
    let users = dir.path().join("user_features.csv");
    let good = std::fs::read_to_string(&users).unwrap();
    std::fs::write(&users, "nope,segment\nx,y\n").unwrap();
    let e = p.reload_tables().unwrap_err().to_string();
    assert!(e.contains("user_features.csv") && e.contains("user_id"), "{e}");
    assert!(p.knows_user("U0000001"));

    // a new user appears after a good reload
    let mut more = good.clone();
    more.push_str("U7777777,premium,25-34,mobile,10,50.00,0.5,0.5,0.5\n");
    std::fs::write(&users, more).unwrap();
    p.reload_tables().unwrap();
    assert!(p.knows_user("U7777777"));
    assert_eq!(p.table_sizes(), (41, 240));

    // a truncated embeddings file: error, items stay
    let emb = dir.path().join("data/item_embeddings.f32");
    let bytes = std::fs::read(&emb).unwrap();
    std::fs::write(&emb, &bytes[..100]).unwrap();
    let e = p.reload_tables().unwrap_err().to_string();
    assert!(e.contains("item_embeddings.f32") && e.contains("bytes"), "{e}");
    assert!(p.item("I000001").is_some());

    // item table change (a price) is picked up
    std::fs::write(&emb, &bytes).unwrap();
    let items = dir.path().join("item_features.csv");
    let text = std::fs::read_to_string(&items).unwrap();
    let old_price = format!("{}", p.item("I000000").unwrap().price);
    std::fs::write(&items, text.replacen(&format!(",{old_price},"), ",1234.5,", 1)).unwrap();
    p.reload_tables().unwrap();
    assert_eq!(p.item("I000000").unwrap().price, 1234.5);

    // and requests still work
    let runner = TractRunner::new(&shop().join("models"));
    let req = RecommendRequest::from_json(br#"{"scenario":"home_feed","user_id":"U7777777"}"#).unwrap();
    let r = futures::executor::block_on(p.recommend(req, &runner)).unwrap();
    assert_eq!(r.items.len(), 10);
}
