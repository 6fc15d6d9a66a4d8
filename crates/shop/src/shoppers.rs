//! Shoppers: the observable profile `users.csv` writes (segment, age band, device, tenure) and the
//! hidden truth behind it (taste vector, favourite subcategories and brands, price sensitivity,
//! click propensity, activity). Also builds a generic shopper for an id the shop does not know.

use crate::catalog::Catalog;
use crate::sample::{self, Latent};
use crate::taxonomy::CATEGORIES;
use rand::{Rng, RngExt};

/// A shopper's segment. Price sensitivity and brand loyalty follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    BargainHunter,
    BrandLoyal,
    Premium,
    Casual,
}

impl Segment {
    pub const ALL: [Segment; 4] = [Segment::BargainHunter, Segment::BrandLoyal, Segment::Premium, Segment::Casual];

    pub fn as_str(self) -> &'static str {
        match self {
            Segment::BargainHunter => "bargain_hunter",
            Segment::BrandLoyal => "brand_loyal",
            Segment::Premium => "premium",
            Segment::Casual => "casual",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AgeBand {
    A18to24,
    A25to34,
    A35to44,
    A45to54,
    A55Plus,
}

impl AgeBand {
    pub const ALL: [AgeBand; 5] =
        [AgeBand::A18to24, AgeBand::A25to34, AgeBand::A35to44, AgeBand::A45to54, AgeBand::A55Plus];

    pub fn as_str(self) -> &'static str {
        match self {
            AgeBand::A18to24 => "18-24",
            AgeBand::A25to34 => "25-34",
            AgeBand::A35to44 => "35-44",
            AgeBand::A45to54 => "45-54",
            AgeBand::A55Plus => "55+",
        }
    }
}

/// The device of a shopper, or of one request (`context.device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Device {
    Mobile,
    Desktop,
    Tablet,
}

impl Device {
    pub const ALL: [Device; 3] = [Device::Mobile, Device::Desktop, Device::Tablet];

    pub fn as_str(self) -> &'static str {
        match self {
            Device::Mobile => "mobile",
            Device::Desktop => "desktop",
            Device::Tablet => "tablet",
        }
    }
}

/// One shopper's observable profile: the columns of `users.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// `U` + 7 digits; the user's index in [`crate::Shop::users`].
    pub id: String,
    pub segment: Segment,
    pub age_band: AgeBand,
    pub device: Device,
    pub tenure_days: u32,
}

/// Hidden truth of a shopper.
#[derive(Debug, Clone)]
pub(crate) struct Shopper {
    pub device: Device,
    pub taste: Latent,
    /// Favourite subcategories (indices), most liked first.
    pub favourite_subcats: Vec<u16>,
    pub favourite_brands: Vec<u16>,
    /// Click-logit bonus for a favourite brand.
    pub brand_bonus: f64,
    /// Multiplies ln(price / typical price) in the logits; negative for premium shoppers.
    pub price_beta: f64,
    /// Per-shopper click-logit offset.
    pub propensity: f64,
    /// Relative frequency of visits.
    pub activity: f64,
}

const SEGMENTS: &[(Segment, f64)] =
    &[(Segment::Casual, 0.40), (Segment::BargainHunter, 0.25), (Segment::BrandLoyal, 0.20), (Segment::Premium, 0.15)];
const AGES: &[(AgeBand, f64)] = &[
    (AgeBand::A18to24, 0.15),
    (AgeBand::A25to34, 0.28),
    (AgeBand::A35to44, 0.24),
    (AgeBand::A45to54, 0.18),
    (AgeBand::A55Plus, 0.15),
];

/// Age band → weight of each category when picking a shopper's favourites, so that observable
/// demographics carry some signal about taste (cold start).
pub(crate) fn age_category_prior<R: Rng + ?Sized>(rng: &mut R) -> Vec<Vec<f64>> {
    AgeBand::ALL.iter().map(|_| CATEGORIES.iter().map(|_| (0.8 * sample::normal(rng)).exp()).collect()).collect()
}

pub(crate) fn generate_user<R: Rng + ?Sized>(
    rng: &mut R,
    index: usize,
    catalog: &Catalog,
    prior: &[Vec<f64>],
) -> (User, Shopper) {
    let segment = sample::pick(rng, SEGMENTS);
    let age_band = sample::pick(rng, AGES);
    let age = AgeBand::ALL.iter().position(|a| *a == age_band).unwrap_or(0);
    let mobile = [0.75, 0.65, 0.55, 0.45, 0.35][age];
    let device =
        sample::pick(rng, &[(Device::Mobile, mobile), (Device::Tablet, 0.10), (Device::Desktop, 0.90 - mobile)]);
    let tenure_days = 1 + (-400.0 * (1.0 - rng.random::<f64>()).ln()).min(3650.0) as u32;
    let shopper = generate_shopper(rng, segment, device, catalog, &prior[age]);
    (User { id: format!("U{index:07}"), segment, age_band, device, tenure_days }, shopper)
}

pub(crate) fn generate_shopper<R: Rng + ?Sized>(
    rng: &mut R,
    segment: Segment,
    device: Device,
    catalog: &Catalog,
    category_prior: &[f64],
) -> Shopper {
    let n_cats = 1 + usize::from(rng.random_bool(0.55)) + usize::from(rng.random_bool(0.25));
    let mut weights = category_prior.to_vec();
    let mut favourite_subcats: Vec<u16> = Vec::new();
    let mut taste = [0f32; sample::LATENT_DIM];
    for _ in 0..n_cats {
        let Some(c) = sample::Cumulative::new(weights.iter().copied()).draw(rng) else { break };
        weights[c] = 0.0;
        let in_cat: Vec<u16> =
            (0..catalog.subcats.len()).filter(|s| catalog.subcats[*s].category == c).map(|s| s as u16).collect();
        let n_sub = if rng.random_bool(0.6) { 1 } else { 2 };
        let first = sample::below(rng, in_cat.len());
        for k in 0..n_sub.min(in_cat.len()) {
            let s = in_cat[(first + k * (1 + sample::below(rng, in_cat.len().max(2) - 1))) % in_cat.len()];
            if favourite_subcats.contains(&s) {
                continue;
            }
            let w: f32 = rng.random_range(0.5..1.5);
            taste = sample::add_scaled(&taste, w, &catalog.subcat_latent[s as usize]);
            favourite_subcats.push(s);
        }
    }
    let noise = sample::unit_vector(rng);
    let taste = sample::normalize(sample::add_scaled(&taste, 0.35, &noise));

    let (n_brands, brand_bonus) = match segment {
        Segment::BrandLoyal => (2, 1.4),
        _ if rng.random_bool(0.35) => (1, 0.5),
        _ => (0, 0.0),
    };
    let mut favourite_brands = Vec::new();
    for _ in 0..n_brands {
        let Some(&s) = favourite_subcats.get(sample::below(rng, favourite_subcats.len().max(1))) else { break };
        let brands = &catalog.category_brands[catalog.subcats[s as usize].category];
        let b = brands[sample::below(rng, brands.len())];
        if !favourite_brands.contains(&b) {
            favourite_brands.push(b);
        }
    }
    let beta_mean = match segment {
        Segment::BargainHunter => 1.6,
        Segment::BrandLoyal => 0.5,
        Segment::Premium => -0.5,
        Segment::Casual => 0.8,
    };
    Shopper {
        device,
        taste,
        favourite_subcats,
        favourite_brands,
        brand_bonus,
        price_beta: beta_mean + 0.25 * sample::normal(rng),
        propensity: 0.35 * sample::normal(rng),
        activity: (0.9 * sample::normal(rng)).exp(),
    }
}
