//! The drift distances between two histograms over the same buckets: the population stability
//! index ([`psi`]) and the Jensen–Shannon distance ([`js_distance`]). This module owns the
//! formulas and their conventions for empty buckets; it knows nothing of features or windows.

/// The floor applied to every proportion in [`psi`], evidently's convention for empty bins.
pub const PSI_FLOOR: f64 = 1e-4;

/// Population stability index of `live` against `reference`, two histograms over the same
/// buckets (counts, same length).
///
/// With `e_i = max(reference_i / Σ reference, 1e-4)` and `a_i = max(live_i / Σ live, 1e-4)`
/// (the floor is evidently's convention: an empty bucket counts as a proportion of 0.0001, so the
/// logarithm stays finite), `PSI = Σ_i (a_i − e_i) · ln(a_i / e_i)` (natural logarithm). It is 0
/// for identical distributions and grows without bound as they separate; 0.1 and 0.2 are the
/// customary "moderate" and "significant" thresholds.
///
/// `None` when either histogram is empty (a total of 0) or the lengths differ.
pub fn psi(reference: &[u64], live: &[u64]) -> Option<f64> {
    let (ref_total, live_total) = totals(reference, live)?;
    let value = reference
        .iter()
        .zip(live)
        .map(|(&r, &l)| {
            let e = (r as f64 / ref_total).max(PSI_FLOOR);
            let a = (l as f64 / live_total).max(PSI_FLOOR);
            (a - e) * (a / e).ln()
        })
        .sum::<f64>();
    Some(value)
}

/// Jensen–Shannon distance of `live` against `reference`, two histograms over the same buckets:
/// the square root of the Jensen–Shannon divergence with base-2 logarithms, so it lies in
/// `[0, 1]` (0 for identical distributions, 1 for distributions with disjoint support).
///
/// With proportions `p_i = reference_i / Σ reference`, `q_i = live_i / Σ live` (no floor) and
/// `m_i = (p_i + q_i) / 2`: `JS = sqrt(½ KL(p‖m) + ½ KL(q‖m))`, `KL(x‖m) = Σ_i x_i log2(x_i / m_i)`
/// with `0 · log 0 = 0`. This is `scipy.spatial.distance.jensenshannon(p, q, base=2)`.
///
/// `None` when either histogram is empty (a total of 0) or the lengths differ.
pub fn js_distance(reference: &[u64], live: &[u64]) -> Option<f64> {
    let (ref_total, live_total) = totals(reference, live)?;
    let mut divergence = 0.0;
    for (&r, &l) in reference.iter().zip(live) {
        let p = r as f64 / ref_total;
        let q = l as f64 / live_total;
        let m = (p + q) / 2.0;
        if p > 0.0 {
            divergence += 0.5 * p * (p / m).log2();
        }
        if q > 0.0 {
            divergence += 0.5 * q * (q / m).log2();
        }
    }
    // Rounding can leave a tiny negative divergence for identical inputs, or a hair above 1.
    Some(divergence.clamp(0.0, 1.0).sqrt())
}

fn totals(reference: &[u64], live: &[u64]) -> Option<(f64, f64)> {
    if reference.len() != live.len() {
        return None;
    }
    let ref_total: u64 = reference.iter().sum();
    let live_total: u64 = live.iter().sum();
    if ref_total == 0 || live_total == 0 {
        return None;
    }
    Some((ref_total as f64, live_total as f64))
}
