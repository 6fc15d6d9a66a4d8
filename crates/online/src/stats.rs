//! The statistics behind the comparisons: the Wilson score interval of a proportion and the
//! two-sided two-proportion z-test with a pooled proportion. This module owns the formulas and
//! their edge cases (empty samples, more successes than trials, no variance); it knows nothing of
//! arms or windows. The normal CDF and quantile come from `statrs`.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

/// The result of [`two_proportion_test`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TestResult {
    /// `(p1 − p2) / se` with the pooled standard error: negative when the first proportion is
    /// the smaller.
    pub z: f64,
    /// Two-sided p-value, `2 · (1 − Φ(|z|))`.
    pub p_value: f64,
}

/// The standard normal quantile `z` with `Φ(z) = 1 − (1 − confidence) / 2`: 1.959964… at 0.95.
/// `None` unless `0 < confidence < 1`.
pub fn z_for_confidence(confidence: f64) -> Option<f64> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    Some(Normal::standard().inverse_cdf(1.0 - (1.0 - confidence) / 2.0))
}

/// The Wilson score interval of the proportion `successes / trials` at `confidence` (e.g. 0.95),
/// without continuity correction:
///
/// ```text
/// centre = (p̂ + z²/2n) / (1 + z²/n)
/// half   = z / (1 + z²/n) · sqrt(p̂(1 − p̂)/n + z²/4n²)
/// ```
///
/// clamped to `[0, 1]`. Unlike the normal approximation it stays inside `[0, 1]` and is not
/// degenerate at 0 or `n` successes, which matters for click-through rates of a few percent.
/// This is scipy's `binomtest(k, n).proportion_ci(method="wilson")`.
///
/// `None` when `trials` is 0, `successes > trials` (possible for window counts at the edge of a
/// window: a click counted whose impression has already left it), or `confidence` is not in
/// `(0, 1)`.
pub fn wilson_interval(successes: u64, trials: u64, confidence: f64) -> Option<(f64, f64)> {
    if trials == 0 || successes > trials {
        return None;
    }
    let z = z_for_confidence(confidence)?;
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Two-sided two-proportion z-test of `x1 / n1` against `x2 / n2` with the pooled proportion
/// `p = (x1 + x2) / (n1 + n2)`:
///
/// ```text
/// z = (x1/n1 − x2/n2) / sqrt(p (1 − p) (1/n1 + 1/n2)),   p-value = 2 · (1 − Φ(|z|))
/// ```
///
/// This is statsmodels' `proportions_ztest([x1, x2], [n1, n2])`, and equals the χ² test of the
/// 2×2 table without continuity correction (`z² = χ²`).
///
/// `None` when a sample is empty, has more successes than trials, or the pooled proportion is 0
/// or 1 (no variance: both arms all failures or all successes, nothing to test).
pub fn two_proportion_test(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<TestResult> {
    if n1 == 0 || n2 == 0 || x1 > n1 || x2 > n2 {
        return None;
    }
    let (x1, n1, x2, n2) = (x1 as f64, n1 as f64, x2 as f64, n2 as f64);
    let pooled = (x1 + x2) / (n1 + n2);
    let variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2);
    if variance <= 0.0 {
        return None;
    }
    let z = (x1 / n1 - x2 / n2) / variance.sqrt();
    // The survival function keeps precision for large |z|, where 1 − Φ(|z|) would round to 0.
    let p_value = (2.0 * Normal::standard().sf(z.abs())).min(1.0);
    Some(TestResult { z, p_value })
}
