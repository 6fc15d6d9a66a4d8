//! The ground truth: how likely a shopper is to click an item shown at a position, then add it to
//! the cart, then buy it, and the sampling of those outcomes.
//!
//! A click needs the shopper to look at the slot (examination falls with position:
//! `(1 + position)^-0.6`) and to find the item attractive: a logistic function of taste · item
//! vector, item quality, a little social proof from popularity, price against the shopper's price
//! sensitivity (relative to the subcategory's typical price), favourite brands, a per-shopper
//! propensity and, for a search, how much of the query the item's text matches. Add-to-cart and
//! purchase follow the same signals; an out-of-stock item is never added to a cart or bought.

use crate::Shop;
use crate::sample::{self, sigmoid};
use crate::shoppers::Shopper;
use crate::text;
use rand::{Rng, RngExt};

const CLICK_BASE: f64 = -4.6;
const CLICK_AFFINITY: f64 = 3.5;
const CLICK_QUALITY: f64 = 0.5;
const CLICK_POPULARITY: f64 = 0.2;
const POSITION_DECAY: f64 = 0.6;
const SEARCH_RELEVANCE: f64 = 3.0;
const SEARCH_OFFSET: f64 = -2.2;

/// Probabilities of the three outcomes of one impression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probabilities {
    pub click: f64,
    pub add_to_cart_given_click: f64,
    pub purchase_given_cart: f64,
}

impl Probabilities {
    /// P(purchase) of the impression.
    pub fn purchase(&self) -> f64 {
        self.click * self.add_to_cart_given_click * self.purchase_given_cart
    }
}

/// What happened to one shown item: the online metrics' event (`as_str` gives the name
/// `/v1/feedback` uses: `impression`, `click`, `add_to_cart`, `purchase`).
pub use recserve_online::Event;

/// One feedback event on a shown item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    pub item_id: String,
    /// 0-based position of the item in the shown list.
    pub position: usize,
    pub event: Event,
}

/// Sampled outcome of one impression; each flag implies the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub clicked: bool,
    pub added_to_cart: bool,
    pub purchased: bool,
}

/// The query tokens a search brings to the truth; `None` for a home feed.
pub(crate) fn query_tokens(query: Option<&str>) -> Option<Vec<String>> {
    query.map(text::tokenize).filter(|t| !t.is_empty())
}

impl Shop {
    /// Ground-truth outcome probabilities of showing `item_id` at `position` (0-based) to
    /// `user_id`, for a search `query` or (None or empty) a home feed. Unknown users are answered
    /// as a generic shopper; an unknown item gives `None`.
    pub fn outcome_probabilities(
        &self,
        user_id: &str,
        item_id: &str,
        position: usize,
        query: Option<&str>,
    ) -> Option<Probabilities> {
        let item = self.item_index(item_id)?;
        let shopper = self.shopper(user_id);
        Some(self.probabilities(&shopper, item, position, query_tokens(query).as_deref()))
    }

    /// Samples the shopper's response to a shown list: an `impression` for every item of this
    /// catalog, then `click`, `add_to_cart` and `purchase` as they happen, in list order. Items
    /// the catalog does not know get an impression and nothing else.
    pub fn respond<S: AsRef<str>, R: Rng + ?Sized>(
        &self,
        user_id: &str,
        shown: &[S],
        query: Option<&str>,
        rng: &mut R,
    ) -> Vec<Feedback> {
        let shopper = self.shopper(user_id);
        let tokens = query_tokens(query);
        let mut out = Vec::with_capacity(shown.len() + 4);
        for (position, id) in shown.iter().enumerate() {
            let id = id.as_ref();
            out.push(Feedback { item_id: id.to_string(), position, event: Event::Impression });
            let Some(item) = self.item_index(id) else { continue };
            let outcome = sample_outcome(&self.probabilities(&shopper, item, position, tokens.as_deref()), rng);
            let events = [
                (outcome.clicked, Event::Click),
                (outcome.added_to_cart, Event::AddToCart),
                (outcome.purchased, Event::Purchase),
            ];
            for (happened, event) in events {
                if happened {
                    out.push(Feedback { item_id: id.to_string(), position, event });
                }
            }
        }
        out
    }

    /// Ground truth: the expected number of clicks on a shown list (the sum of the click
    /// probabilities), without sampling noise. Unknown items count 0.
    pub fn expected_clicks<S: AsRef<str>>(&self, user_id: &str, shown: &[S], query: Option<&str>) -> f64 {
        let shopper = self.shopper(user_id);
        let tokens = query_tokens(query);
        shown
            .iter()
            .enumerate()
            .filter_map(|(pos, id)| self.item_index(id.as_ref()).map(|i| (pos, i)))
            .map(|(pos, i)| self.probabilities(&shopper, i, pos, tokens.as_deref()).click)
            .sum()
    }

    /// Ground truth, for oracle baselines only: the `k` items the shopper is most likely to click
    /// (in stock or not), best first: the ceiling a served model can approach.
    pub fn oracle_ranking(&self, user_id: &str, query: Option<&str>, k: usize) -> Vec<&str> {
        let shopper = self.shopper(user_id);
        let tokens = query_tokens(query);
        let mut scored: Vec<(f64, usize)> =
            (0..self.items().len()).map(|i| (self.probabilities(&shopper, i, 0, tokens.as_deref()).click, i)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.iter().take(k).map(|(_, i)| self.items()[*i].id.as_str()).collect()
    }

    pub(crate) fn probabilities(
        &self,
        shopper: &Shopper,
        item: usize,
        position: usize,
        query: Option<&[String]>,
    ) -> Probabilities {
        let truth = self.truth(item);
        let affinity = sample::dot(&shopper.taste, &truth.latent);
        let price = -shopper.price_beta * truth.log_price_ratio;
        let brand = if shopper.favourite_brands.contains(&truth.brand) { shopper.brand_bonus } else { 0.0 };
        let search = match query {
            Some(q) => SEARCH_OFFSET + SEARCH_RELEVANCE * text::overlap_tokens(q, &truth.tokens),
            None => 0.0,
        };
        let attractive = sigmoid(
            CLICK_BASE
                + CLICK_AFFINITY * affinity
                + CLICK_QUALITY * truth.quality
                + CLICK_POPULARITY * truth.popularity_z
                + price
                + brand
                + shopper.propensity
                + search,
        );
        let examined = (1.0 + position as f64).powf(-POSITION_DECAY);
        let in_stock = self.items()[item].in_stock();
        let add_to_cart_given_click = if in_stock {
            sigmoid(-2.4 + 1.5 * affinity + 0.4 * truth.quality + 0.5 * price + 0.5 * brand)
        } else {
            0.0
        };
        let purchase_given_cart =
            if in_stock { sigmoid(-0.7 + 0.8 * affinity + 0.3 * truth.quality + 0.7 * price) } else { 0.0 };
        Probabilities { click: examined * attractive, add_to_cart_given_click, purchase_given_cart }
    }
}

/// Draws the three outcomes in order; a later one only after the earlier happened.
pub(crate) fn sample_outcome<R: Rng + ?Sized>(p: &Probabilities, rng: &mut R) -> Outcome {
    let clicked = rng.random::<f64>() < p.click;
    let added_to_cart = clicked && rng.random::<f64>() < p.add_to_cart_given_click;
    let purchased = added_to_cart && rng.random::<f64>() < p.purchase_given_cart;
    Outcome { clicked, added_to_cart, purchased }
}
