//! The ground truth: taste, position, stock, search relevance, event order, unknown users.

use crate::small;
use recserve_shop::{Event, SeedableRng, Shop, ShopConfig, ShopRng};

fn p_click(shop: &Shop, user: &str, item: &str, position: usize, query: Option<&str>) -> f64 {
    shop.outcome_probabilities(user, item, position, query).unwrap().click
}

#[test]
fn items_of_a_shoppers_favourite_subcategories_are_clicked_more_than_random_ones() {
    let shop = small(11);
    let mut rng = ShopRng::seed_from_u64(1);
    let (mut fav_shown, mut fav_clicks, mut other_shown, mut other_clicks) = (0u32, 0u32, 0u32, 0u32);
    let mut fav_p = 0.0;
    for user in shop.users().iter().take(100) {
        let favs = shop.favourite_subcategories(&user.id);
        assert!(!favs.is_empty());
        for it in shop.items().iter().step_by(4) {
            let p = p_click(&shop, &user.id, &it.id, 0, None);
            let clicks = (0..20)
                .map(|_| shop.respond(&user.id, &[&it.id], None, &mut rng))
                .filter(|f| f.iter().any(|e| e.event == Event::Click))
                .count() as u32;
            if favs.contains(&it.subcategory) {
                fav_shown += 20;
                fav_clicks += clicks;
                fav_p += p;
            } else {
                other_shown += 20;
                other_clicks += clicks;
            }
        }
    }
    let fav_rate = f64::from(fav_clicks) / f64::from(fav_shown);
    let other_rate = f64::from(other_clicks) / f64::from(other_shown);
    assert!(fav_shown > 2000 && other_shown > 2000);
    assert!(fav_rate > 2.5 * other_rate, "favourite {fav_rate:.4} vs other {other_rate:.4}");
    // The sampled rates agree with the probabilities they were drawn from.
    let fav_expected = fav_p / f64::from(fav_shown / 20);
    assert!((fav_rate - fav_expected).abs() < 0.2 * fav_expected, "{fav_rate} vs {fav_expected}");
}

#[test]
fn click_probability_falls_with_position() {
    let shop = small(12);
    for user in shop.users().iter().take(20) {
        for it in shop.items().iter().take(20) {
            let ps: Vec<f64> = (0..20).map(|pos| p_click(&shop, &user.id, &it.id, pos, None)).collect();
            assert!(ps.windows(2).all(|w| w[1] < w[0]), "{ps:?}");
            assert!(ps[19] < 0.3 * ps[0], "{ps:?}");
        }
    }
}

#[test]
fn out_of_stock_items_are_never_carted_or_bought() {
    let shop = small(13);
    let oos: Vec<&str> = shop.items().iter().filter(|it| it.stock == 0).map(|it| it.id.as_str()).collect();
    assert!(!oos.is_empty());
    let mut rng = ShopRng::seed_from_u64(2);
    let mut clicks = 0;
    for user in shop.users().iter().take(100) {
        for id in &oos {
            let p = shop.outcome_probabilities(&user.id, id, 0, None).unwrap();
            assert!(p.click > 0.0);
            assert_eq!((p.add_to_cart_given_click, p.purchase_given_cart, p.purchase()), (0.0, 0.0, 0.0));
        }
        for _ in 0..20 {
            let feedback = shop.respond(&user.id, &oos, None, &mut rng);
            clicks += feedback.iter().filter(|f| f.event == Event::Click).count();
            assert!(feedback.iter().all(|f| !matches!(f.event, Event::AddToCart | Event::Purchase)));
        }
    }
    assert!(clicks > 0, "out-of-stock items are still clicked");
}

#[test]
fn a_matching_search_raises_clicks_and_a_mismatching_one_lowers_them() {
    let shop = small(14);
    let headphones: Vec<&str> =
        shop.items().iter().filter(|it| it.subcategory == "headphones").map(|it| it.id.as_str()).collect();
    assert!(!headphones.is_empty());
    for user in shop.users().iter().take(30) {
        for id in &headphones {
            let feed = p_click(&shop, &user.id, id, 3, None);
            let matching = p_click(&shop, &user.id, id, 3, Some("headphones"));
            let mismatching = p_click(&shop, &user.id, id, 3, Some("dog food"));
            assert!(matching > feed && feed > mismatching, "{matching} {feed} {mismatching}");
            assert_eq!(p_click(&shop, &user.id, id, 3, Some("")), feed, "an empty query is a home feed");
        }
    }
}

#[test]
fn feedback_has_an_impression_per_item_and_each_event_implies_the_previous() {
    let shop = small(15);
    let mut rng = ShopRng::seed_from_u64(3);
    let shown: Vec<String> = shop.items().iter().take(20).map(|it| it.id.clone()).collect();
    let (mut clicks, mut carts, mut purchases) = (0, 0, 0);
    for user in shop.users() {
        let feedback = shop.respond(&user.id, &shown, None, &mut rng);
        let impressions: Vec<(&str, usize)> = feedback
            .iter()
            .filter(|f| f.event == Event::Impression)
            .map(|f| (f.item_id.as_str(), f.position))
            .collect();
        let expected: Vec<(&str, usize)> = shown.iter().enumerate().map(|(p, id)| (id.as_str(), p)).collect();
        assert_eq!(impressions, expected);
        for (pos, id) in shown.iter().enumerate() {
            let has = |e: Event| feedback.iter().any(|f| f.item_id == *id && f.position == pos && f.event == e);
            let (c, a, p) = (has(Event::Click), has(Event::AddToCart), has(Event::Purchase));
            assert!((!a || c) && (!p || a), "{id}: click {c} cart {a} purchase {p}");
            clicks += usize::from(c);
            carts += usize::from(a);
            purchases += usize::from(p);
        }
    }
    assert!(clicks > carts && carts > purchases && purchases > 0, "{clicks} {carts} {purchases}");
}

#[test]
fn unknown_users_get_a_consistent_generic_shopper_and_unknown_items_only_an_impression() {
    let shop = small(16);
    let item = &shop.items()[5].id;
    let p = shop.outcome_probabilities("U9999999", item, 0, None).unwrap();
    assert!(p.click > 0.0 && p.click < 1.0);
    assert_eq!(shop.outcome_probabilities("U9999999", item, 0, None), Some(p), "same id, same shopper");
    assert!(shop.outcome_probabilities("someone-new", item, 0, Some("tent")).is_some());
    assert!(!shop.favourite_subcategories("U9999999").is_empty());
    assert_eq!(shop.outcome_probabilities("U0000001", "I999999", 0, None), None);

    let mut rng = ShopRng::seed_from_u64(4);
    let feedback = shop.respond("", &["I999999", "not-an-item"], None, &mut rng);
    assert_eq!(feedback.len(), 2);
    assert!(feedback.iter().all(|f| f.event == Event::Impression));

    // Generic shoppers click at a plausible rate over a whole catalog.
    let shown: Vec<&str> = shop.items().iter().map(|it| it.id.as_str()).collect();
    let mean: f64 = (0..50)
        .map(|u| {
            let id = format!("U{:07}", 5_000_000 + u);
            shown.iter().map(|i| p_click(&shop, &id, i, 0, None)).sum::<f64>() / shown.len() as f64
        })
        .sum::<f64>()
        / 50.0;
    assert!((0.005..0.2).contains(&mean), "{mean}");
}

#[test]
fn the_same_rng_seed_replays_the_same_feedback() {
    let shop = Shop::new(ShopConfig { items: 100, users: 50, seed: 5 }).unwrap();
    let shown: Vec<&str> = shop.items().iter().take(15).map(|it| it.id.as_str()).collect();
    let run = |seed| {
        let mut rng = ShopRng::seed_from_u64(seed);
        (0..50).flat_map(|u| shop.respond(&format!("U{u:07}"), &shown, Some("tent"), &mut rng)).collect::<Vec<_>>()
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
}

#[test]
fn the_oracle_ranking_beats_popularity_in_expected_clicks() {
    let shop = small(17);
    let mut by_popularity: Vec<&recserve_shop::Item> = shop.items().iter().collect();
    by_popularity.sort_by(|a, b| b.popularity.total_cmp(&a.popularity));
    let popular: Vec<&str> = by_popularity.iter().take(10).map(|it| it.id.as_str()).collect();
    let (mut oracle_total, mut popular_total) = (0.0, 0.0);
    for user in shop.users().iter().take(50) {
        let oracle = shop.oracle_ranking(&user.id, None, 10);
        assert_eq!(oracle.len(), 10);
        let o = shop.expected_clicks(&user.id, &oracle, None);
        let p = shop.expected_clicks(&user.id, &popular, None);
        assert!(o >= p, "{} oracle {o} < popular {p}", user.id);
        oracle_total += o;
        popular_total += p;
        let manual: f64 = oracle.iter().enumerate().map(|(pos, id)| p_click(&shop, &user.id, id, pos, None)).sum();
        assert!((manual - o).abs() < 1e-12);
    }
    assert!(oracle_total > 2.0 * popular_total, "oracle {oracle_total} vs popularity {popular_total}");
    assert_eq!(shop.expected_clicks("U0000000", &["I999999"], None), 0.0);
}
