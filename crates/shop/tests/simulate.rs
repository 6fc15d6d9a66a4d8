//! `Shop::next_action`: the demo's simulated shoppers.

use crate::small;
use recserve_shop::{Scenario, SeedableRng, ShopRng};

#[test]
fn actions_mix_known_and_new_users_home_feeds_and_searches() {
    let shop = small(31);
    let mut rng = ShopRng::seed_from_u64(1);
    let actions: Vec<_> = (0..4_000).map(|_| shop.next_action(&mut rng)).collect();
    let unknown = actions.iter().filter(|a| !a.known_user).count();
    assert!((120..=280).contains(&unknown), "about 5% new users, got {unknown} of 4000");
    for a in &actions {
        assert_eq!(a.known_user, shop.user_index(&a.user_id).is_some(), "{a:?}");
        assert!(a.user_id.starts_with('U') && a.user_id.len() == 8, "{a:?}");
    }
    let searches: Vec<&str> = actions.iter().filter_map(|a| a.scenario.query()).collect();
    assert!((1_500..=2_100).contains(&searches.len()), "{}", searches.len());
    assert!(actions.iter().any(|a| a.scenario == Scenario::HomeFeed));
    assert_eq!(Scenario::HomeFeed.as_str(), "home_feed");
    assert_eq!(Scenario::Search { query: "tent".into() }.as_str(), "search");
    // Every query names something the catalog sells.
    for q in &searches {
        assert!(
            shop.items().iter().any(|it| recserve_shop::text::query_overlap(q, &it.title) > 0.0),
            "nothing matches {q:?}"
        );
    }
    let distinct: std::collections::BTreeSet<&str> = searches.iter().copied().collect();
    assert!(distinct.len() > 50, "{distinct:?}");
}

#[test]
fn known_users_search_mostly_for_their_favourites() {
    let shop = small(32);
    let mut rng = ShopRng::seed_from_u64(2);
    let (mut searches, mut favourite) = (0, 0);
    for _ in 0..3_000 {
        let a = shop.next_action(&mut rng);
        let (Some(q), true) = (a.scenario.query(), a.known_user) else { continue };
        searches += 1;
        let favs = shop.favourite_subcategories(&a.user_id);
        let hit = shop
            .items()
            .iter()
            .any(|it| favs.contains(&it.subcategory) && recserve_shop::text::query_overlap(q, &it.title) >= 0.5);
        favourite += usize::from(hit);
    }
    assert!(favourite * 10 > searches * 7, "{favourite} of {searches} searches are for a favourite");
}
