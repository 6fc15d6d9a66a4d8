//! Deterministic synthetic embeddings for the retrieval tests, bench and comparison example
//! (included with `#[path]`; no `rand` dependency so the numbers are stable across versions).

#![allow(dead_code)]

/// SplitMix64: a small, well-mixed deterministic generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// `n` vectors of `dim` i.i.d. standard normal values, row-major.
pub fn random(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n * dim).map(|_| rng.normal()).collect()
}

/// `n` vectors around `clusters` random centres (centre ~ N(0, 1), noise ~ N(0, 0.35²)),
/// the shape item embeddings of a catalog with categories have.
pub fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| rng.normal()).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = (rng.next_u64() % clusters as u64) as usize;
        for d in 0..dim {
            out.push(centres[c * dim + d] + 0.35 * rng.normal());
        }
    }
    out
}

/// Share of `exact` found in `approx` (both lists of item rows).
pub fn recall(approx: &[(u32, f32)], exact: &[(u32, f32)]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let found = exact.iter().filter(|(r, _)| approx.iter().any(|(a, _)| a == r)).count();
    found as f64 / exact.len() as f64
}
