//! Sampling helpers on top of `rand`: seeded streams, normal draws, unit vectors and a cumulative
//! weight table. Everything here is portable: the same seed gives the same draws on every machine.

use rand::{Rng, RngExt, SeedableRng, rngs::ChaCha8Rng};

/// Dimension of the hidden taste and item vectors.
pub(crate) const LATENT_DIM: usize = 16;
pub(crate) type Latent = [f32; LATENT_DIM];

/// SplitMix64 finaliser: spreads a seed and a stream number over 64 bits.
pub(crate) fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An independent random stream `stream` of `seed`.
pub(crate) fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(seed, stream))
}

/// 64-bit FNV-1a, as FORMAT.md's `hash` transform.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A standard normal draw (Box–Muller; one value per call keeps the stream simple).
pub(crate) fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub(crate) fn unit_vector<R: Rng + ?Sized>(rng: &mut R) -> Latent {
    let mut v = [0f32; LATENT_DIM];
    for x in &mut v {
        *x = normal(rng) as f32;
    }
    normalize(v)
}

pub(crate) fn normalize(mut v: Latent) -> Latent {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        for x in &mut v {
            *x /= n;
        }
    }
    v
}

/// `a + k * b`, element-wise.
pub(crate) fn add_scaled(a: &Latent, k: f32, b: &Latent) -> Latent {
    let mut out = *a;
    for (o, x) in out.iter_mut().zip(b) {
        *o += k * x;
    }
    out
}

pub(crate) fn dot(a: &Latent, b: &Latent) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Draws indices with probability proportional to their weights (binary search over the
/// running sum).
#[derive(Debug, Clone, Default)]
pub(crate) struct Cumulative {
    sums: Vec<f64>,
}

impl Cumulative {
    pub(crate) fn new(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut total = 0.0;
        let sums = weights
            .into_iter()
            .map(|w| {
                total += w.max(0.0);
                total
            })
            .collect();
        Self { sums }
    }

    /// An index drawn by weight, or `None` when every weight is 0.
    pub(crate) fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<usize> {
        let total = *self.sums.last()?;
        if total <= 0.0 {
            return None;
        }
        let x = rng.random::<f64>() * total;
        let i = self.sums.partition_point(|s| *s <= x);
        Some(i.min(self.sums.len() - 1))
    }
}

/// Picks from a small fixed table of (value, weight).
pub(crate) fn pick<T: Copy, R: Rng + ?Sized>(rng: &mut R, table: &[(T, f64)]) -> T {
    let total: f64 = table.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (v, w) in table {
        if x < *w {
            return *v;
        }
        x -= w;
    }
    table[table.len() - 1].0
}

/// Uniform integer in `0..n` (n > 0).
pub(crate) fn below<R: Rng + ?Sized>(rng: &mut R, n: usize) -> usize {
    rng.random_range(0..n)
}
