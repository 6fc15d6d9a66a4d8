//! Simulated shoppers for the live demo: who visits next, on which device, and whether they open
//! the home feed or search (and for what). A small share are ids the shop has never seen (cold
//! start); their responses come from the generic shopper of [`crate::Shop::respond`].

use crate::Shop;
use crate::sample;
use crate::shoppers::{Device, Shopper};
use crate::taxonomy;
use rand::{Rng, RngExt};

/// Share of simulated requests from users the shop does not know.
pub const UNKNOWN_USER_SHARE: f64 = 0.05;
/// Share of simulated requests that are searches.
pub const SEARCH_SHARE: f64 = 0.45;

/// What a simulated request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scenario {
    HomeFeed,
    Search { query: String },
}

impl Scenario {
    /// `home_feed` or `search`, as `interactions.csv` and the recommendation API name them.
    pub fn as_str(&self) -> &'static str {
        match self {
            Scenario::HomeFeed => "home_feed",
            Scenario::Search { .. } => "search",
        }
    }

    pub fn query(&self) -> Option<&str> {
        match self {
            Scenario::HomeFeed => None,
            Scenario::Search { query } => Some(query),
        }
    }
}

/// One simulated request: the demo sends it, shows the result to [`Shop::respond`] and posts the
/// feedback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub user_id: String,
    /// False for a new id the shop's users table does not hold.
    pub known_user: bool,
    pub scenario: Scenario,
    /// The request's `context.device`.
    pub device: Device,
}

impl Shop {
    /// Draws the next simulated request: a user by visit frequency (or, 5% of the time, a new id),
    /// a device (usually the user's own), and a home feed or a search with words the user would
    /// type.
    pub fn next_action<R: Rng + ?Sized>(&self, rng: &mut R) -> Action {
        let known = !rng.random_bool(UNKNOWN_USER_SHARE);
        let user_id = match self.user_activity.draw(rng) {
            Some(i) if known => self.users()[i].id.clone(),
            _ => {
                let start = self.users().len();
                let span = (crate::MAX_USERS - start).clamp(1, 1_000_000);
                format!("U{:07}", start + sample::below(rng, span))
            }
        };
        let shopper = self.shopper(&user_id);
        let device = if rng.random_bool(0.9) { shopper.device } else { Device::ALL[sample::below(rng, 3)] };
        let scenario = if rng.random_bool(SEARCH_SHARE) {
            let subcat = self.search_intent(&shopper, None, rng);
            Scenario::Search { query: self.query_for(&shopper, subcat, rng) }
        } else {
            Scenario::HomeFeed
        };
        Action { known_user: self.user_index(&user_id).is_some(), user_id, scenario, device }
    }

    /// The subcategory a shopper searches: mostly a favourite (or what they just looked at),
    /// sometimes anything.
    pub(crate) fn search_intent<R: Rng + ?Sized>(&self, shopper: &Shopper, recent: Option<u16>, rng: &mut R) -> u16 {
        if let Some(r) = recent
            && rng.random_bool(0.4)
        {
            return r;
        }
        let favs = &shopper.favourite_subcats;
        if !favs.is_empty() && rng.random_bool(0.8) {
            return favs[sample::below(rng, favs.len())];
        }
        sample::Cumulative::new(self.catalog.subcat_weight.iter().copied()).draw(rng).unwrap_or(0) as u16
    }

    /// Search words for a subcategory: the noun, an attribute and the noun, or a brand and the noun.
    pub(crate) fn query_for<R: Rng + ?Sized>(&self, shopper: &Shopper, subcat: u16, rng: &mut R) -> String {
        let sub = &self.catalog.subcats[subcat as usize];
        let spec = sub.spec;
        let x: f64 = rng.random();
        if x < 0.5 {
            taxonomy::query_for(spec, None, None)
        } else if x < 0.85 {
            let a = spec.attributes[sample::below(rng, spec.attributes.len())];
            taxonomy::query_for(spec, Some(a), None)
        } else {
            let fav = shopper
                .favourite_brands
                .iter()
                .map(|b| &self.catalog.brands[*b as usize])
                .find(|b| b.category == sub.category);
            let brand = match fav {
                Some(b) => b.name,
                None => {
                    let ids = &self.catalog.category_brands[sub.category];
                    self.catalog.brands[ids[sample::below(rng, ids.len())] as usize].name
                }
            };
            taxonomy::query_for(spec, None, Some(brand))
        }
    }
}
