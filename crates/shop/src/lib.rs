//! A synthetic shop with a ground truth, deterministic for a given seed.
//!
//! [`Shop::new`] builds a catalog (category tree, brands, prices, stock, titles, popularity) and a
//! population of shoppers (segment, age band, device, tenure; hidden taste, price sensitivity and
//! brand preferences). The hidden part is the ground truth: [`Shop::outcome_probabilities`] says
//! how likely a shopper is to click, add to cart and buy an item shown at a position (for a search
//! query or a home feed), and [`Shop::respond`] samples those outcomes. The same truth produces
//! the training logs ([`export`], `recserve shop export`) and answers the demo's live traffic
//! ([`Shop::next_action`] draws the next simulated request), so the click-through the demo shows
//! reflects how good the served model really is.
//!
//! Modules: `taxonomy` (fixed vocabulary), `catalog` (items), `shoppers` (users), `truth` (click,
//! cart and purchase model), `simulate` (shopper actions for the demo), `export` (logging policy and
//! the files of FORMAT.md), `text` (query tokens), `sample` (seeded random helpers).

mod catalog;
pub mod export;
mod sample;
mod shoppers;
mod simulate;
mod taxonomy;
pub mod text;
mod truth;

pub use catalog::Item;
pub use export::{ExportConfig, ExportProgress, ExportSummary};
pub use shoppers::{AgeBand, Device, Segment, User};
pub use simulate::{Action, Scenario};
pub use truth::{Event, Feedback, Probabilities};

/// The random generator the shop's sampling functions are tested with; any `rand::Rng` works.
pub use rand::rngs::ChaCha8Rng as ShopRng;
pub use rand::{Rng, SeedableRng};

use catalog::{Catalog, ItemTruth};
use sample::Cumulative;
use shoppers::Shopper;
use std::borrow::Cow;
use std::path::PathBuf;

/// Largest catalog the `I` + 6 digits id format allows.
pub const MAX_ITEMS: usize = 1_000_000;
/// Largest population the `U` + 7 digits id format allows.
pub const MAX_USERS: usize = 10_000_000;

/// Size and seed of a shop. `Shop::new(ShopConfig::default())` is the bundled demo's shop and
/// stays stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShopConfig {
    pub items: usize,
    pub users: usize,
    pub seed: u64,
}

impl Default for ShopConfig {
    fn default() -> Self {
        Self { items: 5_000, users: 10_000, seed: 42 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    #[error("invalid shop setting {field}: expected {expected}, got {got}")]
    InvalidConfig { field: &'static str, expected: String, got: String },
    #[error("cannot write {}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot write {}", path.display())]
    Csv { path: PathBuf, source: csv::Error },
    #[error("cannot encode {}", path.display())]
    Json { path: PathBuf, source: serde_json::Error },
}

/// The shop: catalog, shoppers and the hidden ground truth.
pub struct Shop {
    config: ShopConfig,
    catalog: Catalog,
    users: Vec<User>,
    shoppers: Vec<Shopper>,
    /// Per age band, the weight of each category among favourites.
    age_prior: Vec<Vec<f64>>,
    /// Visit frequency of each user.
    user_activity: Cumulative,
    /// Items by popularity.
    item_popularity: Cumulative,
    /// Items of each subcategory, and their popularity weights.
    subcat_items: Vec<Vec<u32>>,
    subcat_popularity: Vec<Cumulative>,
}

impl Shop {
    /// Builds the shop: a pure function of `config`.
    pub fn new(config: ShopConfig) -> Result<Self, ShopError> {
        check_range("items", config.items, 1, MAX_ITEMS)?;
        check_range("users", config.users, 1, MAX_USERS)?;
        let mut rng = sample::stream(config.seed, 1);
        let catalog = catalog::generate(&mut rng, config.items);
        let mut rng = sample::stream(config.seed, 2);
        let age_prior = shoppers::age_category_prior(&mut rng);
        let (users, shoppers): (Vec<User>, Vec<Shopper>) =
            (0..config.users).map(|i| shoppers::generate_user(&mut rng, i, &catalog, &age_prior)).unzip();

        let user_activity = Cumulative::new(shoppers.iter().map(|s| s.activity));
        let item_popularity = Cumulative::new(catalog.items.iter().map(|it| it.popularity + 1.0));
        let mut subcat_items = vec![Vec::new(); catalog.subcats.len()];
        for (i, t) in catalog.truth.iter().enumerate() {
            subcat_items[t.subcat as usize].push(i as u32);
        }
        let subcat_popularity = subcat_items
            .iter()
            .map(|ids| Cumulative::new(ids.iter().map(|i| catalog.items[*i as usize].popularity + 1.0)))
            .collect();
        Ok(Self {
            config,
            catalog,
            users,
            shoppers,
            age_prior,
            user_activity,
            item_popularity,
            subcat_items,
            subcat_popularity,
        })
    }

    pub fn config(&self) -> ShopConfig {
        self.config
    }

    /// The catalog, in id order (`items()[i].id == format!("I{i:06}")`).
    pub fn items(&self) -> &[Item] {
        &self.catalog.items
    }

    /// The shoppers, in id order (`users()[i].id == format!("U{i:07}")`).
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// Index of an item id of this catalog.
    pub fn item_index(&self, item_id: &str) -> Option<usize> {
        parse_id(item_id, 'I', 6).filter(|i| *i < self.catalog.items.len())
    }

    /// Index of a user id of this population.
    pub fn user_index(&self, user_id: &str) -> Option<usize> {
        parse_id(user_id, 'U', 7).filter(|i| *i < self.users.len())
    }

    pub fn item(&self, item_id: &str) -> Option<&Item> {
        self.item_index(item_id).map(|i| &self.catalog.items[i])
    }

    pub fn user(&self, user_id: &str) -> Option<&User> {
        self.user_index(user_id).map(|i| &self.users[i])
    }

    /// The subcategory ids, in taxonomy order.
    pub fn subcategories(&self) -> Vec<&'static str> {
        self.catalog.subcats.iter().map(|s| s.spec.id).collect()
    }

    /// Ground truth, for tests and oracle baselines only (a model must not see it): the shopper's
    /// favourite subcategories, most liked first. Unknown ids get the generic shopper's.
    pub fn favourite_subcategories(&self, user_id: &str) -> Vec<&'static str> {
        self.shopper(user_id).favourite_subcats.iter().map(|s| self.catalog.subcats[*s as usize].spec.id).collect()
    }

    /// Ground truth: cosine of the shopper's hidden taste and the item's hidden vector, in [-1, 1].
    pub fn affinity(&self, user_id: &str, item_id: &str) -> Option<f64> {
        let i = self.item_index(item_id)?;
        Some(sample::dot(&self.shopper(user_id).taste, &self.catalog.truth[i].latent))
    }

    /// The device a shopper usually uses (the users table's `device`); an id the shop does not
    /// know gets its generic shopper's.
    pub fn usual_device(&self, user_id: &str) -> Device {
        self.shopper(user_id).device
    }

    /// The hidden truth of a user id; an id the shop does not know gets a generic shopper derived
    /// from the id (the same id always behaves the same).
    pub(crate) fn shopper(&self, user_id: &str) -> Cow<'_, Shopper> {
        match self.user_index(user_id) {
            Some(i) => Cow::Borrowed(&self.shoppers[i]),
            None => Cow::Owned(self.generic_shopper(user_id)),
        }
    }

    fn generic_shopper(&self, user_id: &str) -> Shopper {
        let mut rng = sample::stream(self.config.seed ^ sample::fnv1a(user_id.as_bytes()), 3);
        let segment = Segment::ALL[sample::below(&mut rng, Segment::ALL.len())];
        let device = Device::ALL[sample::below(&mut rng, Device::ALL.len())];
        let n = self.age_prior.len().max(1) as f64;
        let prior: Vec<f64> =
            (0..taxonomy::CATEGORIES.len()).map(|c| self.age_prior.iter().map(|row| row[c]).sum::<f64>() / n).collect();
        shoppers::generate_shopper(&mut rng, segment, device, &self.catalog, &prior)
    }

    pub(crate) fn truth(&self, item: usize) -> &ItemTruth {
        &self.catalog.truth[item]
    }
}

fn check_range(field: &'static str, got: usize, min: usize, max: usize) -> Result<(), ShopError> {
    if got < min || got > max {
        return Err(ShopError::InvalidConfig { field, expected: format!("{min} to {max}"), got: got.to_string() });
    }
    Ok(())
}

/// `prefix` followed by exactly `digits` ASCII digits → the number.
fn parse_id(id: &str, prefix: char, digits: usize) -> Option<usize> {
    let rest = id.strip_prefix(prefix)?;
    if rest.len() != digits || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}
