//! Wilson intervals and two-proportion z-tests against values computed independently.
//!
//! Expected values come from scipy 1.17.1 (`.venv-train/bin/python`):
//! - Wilson: `scipy.stats.binomtest(k, n).proportion_ci(confidence_level=c, method="wilson")`.
//! - z-test: `z` by the pooled formula in Python, cross-checked as `sqrt(chi2)` of
//!   `scipy.stats.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)`, whose
//!   p-value is the two-sided z-test's (the p-values below are `2 * norm.sf(abs(z))`; the χ²
//!   p-values agree to 1e-14).

use recserve_online::{TestResult, two_proportion_test, wilson_interval, z_for_confidence};

fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= tolerance * expected.abs().max(1e-300)
}

#[track_caller]
fn assert_interval(actual: Option<(f64, f64)>, expected: (f64, f64)) {
    let (lo, hi) = actual.expect("an interval");
    assert!((lo - expected.0).abs() < 1e-12, "lower {lo} expected {}", expected.0);
    assert!((hi - expected.1).abs() < 1e-12, "upper {hi} expected {}", expected.1);
}

#[test]
fn z_quantiles() {
    // scipy.stats.norm.ppf(0.975), norm.ppf(0.995)
    assert!((z_for_confidence(0.95).expect("z") - 1.959_963_984_540_054).abs() < 1e-12);
    assert!((z_for_confidence(0.99).expect("z") - 2.575_829_303_548_900_4).abs() < 1e-12);
    for bad in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
        assert_eq!(z_for_confidence(bad), None, "{bad}");
    }
}

#[test]
fn wilson_matches_scipy() {
    assert_interval(wilson_interval(81, 263, 0.95), (0.2552885198782742, 0.36620957698280004));
    assert_interval(wilson_interval(0, 10, 0.95), (0.0, 0.27753279986288926));
    assert_interval(wilson_interval(10, 10, 0.95), (0.7224672001371109, 1.0));
    assert_interval(wilson_interval(50, 1000, 0.99), (0.035025075722532446, 0.0709069726905337));
    assert_interval(wilson_interval(1, 2, 0.5), (0.2847588845819623, 0.7152411154180377));
    assert_interval(wilson_interval(250, 5000, 0.95), (0.04429689670057055, 0.05639403504998086));
}

#[test]
fn wilson_without_an_answer() {
    assert_eq!(wilson_interval(0, 0, 0.95), None);
    assert_eq!(wilson_interval(11, 10, 0.95), None);
    assert_eq!(wilson_interval(1, 10, 1.0), None);
    assert_eq!(wilson_interval(1, 10, 0.0), None);
}

#[test]
fn two_proportion_test_matches_scipy() {
    // (x1, n1, x2, n2, z, p)
    let cases = [
        (100, 5000, 250, 5000, -8.161943426864148, 3.29676613803382e-16),
        (45, 100, 56, 120, -0.24701114309242347, 0.8048996003019151),
        (30, 400, 20, 400, 1.4605934866804426, 0.14412703481601533),
        (118, 2000, 100, 1900, 0.8653379138927455, 0.38685334698589036),
    ];
    for (x1, n1, x2, n2, z, p) in cases {
        let TestResult { z: got_z, p_value } = two_proportion_test(x1, n1, x2, n2).expect("a test");
        assert!(close(got_z, z, 1e-12), "z of {x1}/{n1} vs {x2}/{n2}: {got_z}, expected {z}");
        // The far tail (p ≈ 3e-16) is where erf implementations differ most.
        assert!(close(p_value, p, 1e-9), "p of {x1}/{n1} vs {x2}/{n2}: {p_value}, expected {p}");
    }
}

#[test]
fn two_proportion_test_is_antisymmetric_and_flat_for_equal_rates() {
    let equal = two_proportion_test(50, 1000, 50, 1000).expect("a test");
    assert_eq!(equal.z, 0.0);
    assert!((equal.p_value - 1.0).abs() < 1e-15);
    let ab = two_proportion_test(30, 400, 20, 400).expect("a test");
    let ba = two_proportion_test(20, 400, 30, 400).expect("a test");
    assert_eq!(ab.z, -ba.z);
    assert_eq!(ab.p_value, ba.p_value);
}

#[test]
fn two_proportion_test_without_an_answer() {
    assert_eq!(two_proportion_test(0, 0, 5, 100), None);
    assert_eq!(two_proportion_test(5, 100, 0, 0), None);
    assert_eq!(two_proportion_test(101, 100, 5, 100), None);
    // No variance: nobody clicked, or everybody did.
    assert_eq!(two_proportion_test(0, 100, 0, 200), None);
    assert_eq!(two_proportion_test(100, 100, 200, 200), None);
}
