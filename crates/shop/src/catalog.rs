//! The catalog: generates items (observable fields as `items.csv` writes them) together with each
//! item's hidden truth (latent vector, quality), and the brand table.

use crate::sample::{self, Cumulative, Latent};
use crate::taxonomy::{self, CATEGORIES, COLOURS, Subcategory};
use rand::{Rng, RngExt};

/// One catalog item: the columns of `items.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// `I` + 6 digits; the item's index in [`crate::Shop::items`].
    pub id: String,
    pub title: String,
    pub category: &'static str,
    pub subcategory: &'static str,
    pub brand: &'static str,
    /// Price in the shop's currency, rounded to cents, > 0.
    pub price: f64,
    /// Units in stock; 0 means out of stock (never purchased).
    pub stock: u32,
    /// Views in the last 30 days (a whole number, ≥ 0).
    pub popularity: f64,
}

impl Item {
    /// `category>subcategory`.
    pub fn category_path(&self) -> String {
        format!("{}>{}", self.category, self.subcategory)
    }

    pub fn in_stock(&self) -> bool {
        self.stock > 0
    }
}

/// Hidden per-item truth, parallel to the items.
#[derive(Debug, Clone)]
pub(crate) struct ItemTruth {
    pub subcat: u16,
    pub brand: u16,
    pub latent: Latent,
    /// Standard-normal quality: better items are clicked and bought more.
    pub quality: f64,
    /// ln(price / subcategory median price).
    pub log_price_ratio: f64,
    /// Standardised ln(1 + popularity): a small social-proof effect.
    pub popularity_z: f64,
    /// Lowercase tokens of title, subcategory and category (what a query can match).
    pub tokens: Vec<String>,
}

/// A brand: its name, its category and a hidden price tier and quality offset.
#[derive(Debug, Clone)]
pub(crate) struct Brand {
    pub name: &'static str,
    pub category: usize,
    pub price_factor: f64,
    pub quality: f64,
}

pub(crate) struct Catalog {
    pub subcats: Vec<Subcategory>,
    pub subcat_latent: Vec<Latent>,
    pub subcat_weight: Vec<f64>,
    pub brands: Vec<Brand>,
    /// For each category, the indices into `brands`.
    pub category_brands: Vec<Vec<u16>>,
    pub items: Vec<Item>,
    pub truth: Vec<ItemTruth>,
}

const PRICE_TIERS: &[(f64, f64)] = &[(0.6, 0.35), (1.0, 0.4), (1.8, 0.25)];

pub(crate) fn generate<R: Rng + ?Sized>(rng: &mut R, n_items: usize) -> Catalog {
    let subcats = taxonomy::subcategories();
    let cat_latent: Vec<Latent> = CATEGORIES.iter().map(|_| sample::unit_vector(rng)).collect();
    let subcat_latent: Vec<Latent> = subcats
        .iter()
        .map(|s| {
            let noise = sample::unit_vector(rng);
            sample::normalize(sample::add_scaled(&cat_latent[s.category], 0.8, &noise))
        })
        .collect();
    let subcat_weight: Vec<f64> = subcats.iter().map(|_| rng.random_range(0.5..2.0)).collect();

    let mut brands = Vec::new();
    let mut category_brands = Vec::new();
    for (c, cat) in CATEGORIES.iter().enumerate() {
        let mut ids = Vec::new();
        for name in cat.brands {
            ids.push(brands.len() as u16);
            let price_factor = sample::pick(rng, PRICE_TIERS);
            // Dearer brands are somewhat better on average.
            let quality = 0.4 * sample::normal(rng) + 0.3 * price_factor.ln();
            brands.push(Brand { name, category: c, price_factor, quality });
        }
        category_brands.push(ids);
    }

    let pick_subcat = Cumulative::new(subcat_weight.iter().copied());
    let mut items = Vec::with_capacity(n_items);
    let mut truth = Vec::with_capacity(n_items);
    for i in 0..n_items {
        let s = pick_subcat.draw(rng).unwrap_or(0);
        let sub = &subcats[s];
        let spec = sub.spec;
        let cat_brands = &category_brands[sub.category];
        let b = cat_brands[sample::below(rng, cat_brands.len())];
        let brand = &brands[b as usize];

        let raw_price = spec.median_price * brand.price_factor * (0.25 * sample::normal(rng)).exp();
        let price = ((raw_price * 100.0).round() / 100.0).max(0.99);
        let quality = brand.quality + 0.9 * sample::normal(rng);
        let latent = sample::normalize(sample::add_scaled(&subcat_latent[s], 0.5, &sample::unit_vector(rng)));

        let mut title = String::from(brand.name);
        let n_attr = 1 + usize::from(rng.random_bool(0.5));
        let first = sample::below(rng, spec.attributes.len());
        let mut attrs = vec![first];
        if n_attr == 2 && spec.attributes.len() > 1 {
            let second = (first + 1 + sample::below(rng, spec.attributes.len() - 1)) % spec.attributes.len();
            attrs.push(second);
            attrs.sort_unstable();
        }
        for a in attrs {
            title.push(' ');
            title.push_str(spec.attributes[a]);
        }
        title.push(' ');
        title.push_str(spec.noun);
        if spec.coloured {
            title.push(' ');
            title.push_str(COLOURS[sample::below(rng, COLOURS.len())]);
        }

        let stock =
            if rng.random_bool(0.08) { 0 } else { 1 + (3.0 + 1.0 * sample::normal(rng)).exp().min(5000.0) as u32 };
        let views = (3.5 + 0.8 * quality + 0.5 * subcat_weight[s].ln() + 0.6 * sample::normal(rng)).exp();
        let popularity = views.round().min(1e7);

        let mut tokens = crate::text::tokenize(&title);
        tokens.extend(crate::text::tokenize(spec.id));
        tokens.push(CATEGORIES[sub.category].id.to_string());
        tokens.sort();
        tokens.dedup();

        truth.push(ItemTruth {
            subcat: s as u16,
            brand: b,
            latent,
            quality,
            log_price_ratio: (price / spec.median_price).ln(),
            popularity_z: 0.0,
            tokens,
        });
        items.push(Item {
            id: format!("I{i:06}"),
            title,
            category: CATEGORIES[sub.category].id,
            subcategory: spec.id,
            brand: brand.name,
            price,
            stock,
            popularity,
        });
    }

    let logs: Vec<f64> = items.iter().map(|it| it.popularity.ln_1p()).collect();
    let n = logs.len().max(1) as f64;
    let mean = logs.iter().sum::<f64>() / n;
    let sd = (logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt().max(1e-9);
    for (t, l) in truth.iter_mut().zip(&logs) {
        t.popularity_z = (l - mean) / sd;
    }

    Catalog { subcats, subcat_latent, subcat_weight, brands, category_brands, items, truth }
}
