//! PSI and Jensen–Shannon distance against values computed by hand.

use recserve_drift::{js_distance, psi};

fn close(actual: f64, expected: f64, tol: f64) {
    assert!((actual - expected).abs() <= tol, "expected {expected}, got {actual}");
}

#[test]
fn three_bins_by_hand() {
    // e = [0.5, 0.3, 0.2], a = [0.3, 0.3, 0.4]
    // PSI = (0.3-0.5)·ln(0.6) + 0 + (0.4-0.2)·ln(2) = 0.1021651 + 0.1386294 = 0.2407946
    let p = psi(&[50, 30, 20], &[30, 30, 40]).expect("psi");
    close(p, 0.240_794_6, 1e-6);
    // m = [0.4, 0.3, 0.3]
    // KL(e‖m) = 0.5·log2(1.25) + 0.2·log2(2/3) = 0.1609640 - 0.1169925 = 0.0439716
    // KL(a‖m) = 0.3·log2(0.75) + 0.4·log2(4/3) = -0.1245112 + 0.1660150 = 0.0415037
    // JS = sqrt((0.0439716 + 0.0415037) / 2) = sqrt(0.0427377) = 0.2067310
    let js = js_distance(&[50, 30, 20], &[30, 30, 40]).expect("js");
    close(js, 0.206_731, 1e-6);
}

#[test]
fn empty_reference_bin_is_floored_at_1e_4() {
    // e = [1, 0 → 0.0001], a = [0.5, 0.5]
    // PSI = (0.5-1)·ln(0.5) + (0.5-0.0001)·ln(0.5/0.0001) = 0.3465736 + 0.4999·8.5171932
    //     = 0.3465736 + 4.2577449 = 4.6043185
    close(psi(&[100, 0], &[50, 50]).expect("psi"), 4.604_318_5, 1e-6);
    // No floor in JS: p = [1, 0], q = [0.5, 0.5], m = [0.75, 0.25]
    // KL(p‖m) = log2(4/3) = 0.4150375; KL(q‖m) = 0.5·log2(2/3) + 0.5·log2(2) = 0.2075187
    // JS = sqrt(0.3112781) = 0.5579230
    close(js_distance(&[100, 0], &[50, 50]).expect("js"), 0.557_923_0, 1e-6);
}

#[test]
fn identical_proportions_are_zero() {
    let p = psi(&[10, 20, 30, 0], &[100, 200, 300, 0]).expect("psi");
    let js = js_distance(&[10, 20, 30, 0], &[100, 200, 300, 0]).expect("js");
    assert!(p.abs() < 1e-12, "psi {p}");
    assert!(js < 1e-6, "js {js}");
}

#[test]
fn disjoint_distributions_have_js_one() {
    close(js_distance(&[10, 0], &[0, 10]).expect("js"), 1.0, 1e-12);
    close(js_distance(&[3, 7, 0, 0], &[0, 0, 5, 1]).expect("js"), 1.0, 1e-12);
    // PSI = 2 · (1 - 0.0001) · ln(1 / 0.0001) = 18.4188387
    close(psi(&[10, 0], &[0, 10]).expect("psi"), 2.0 * 0.9999 * 1e4f64.ln(), 1e-9);
}

#[test]
fn both_metrics_are_symmetric_and_grow_with_the_shift() {
    let reference = [25, 25, 25, 25];
    let small = [28, 24, 24, 24];
    let large = [55, 15, 15, 15];
    let (p_small, p_large) = (psi(&reference, &small), psi(&reference, &large));
    assert!(p_small.expect("psi") < p_large.expect("psi"));
    assert_eq!(psi(&reference, &large), psi(&large, &reference));
    let (j1, j2) = (js_distance(&reference, &large), js_distance(&large, &reference));
    close(j1.expect("js"), j2.expect("js"), 1e-15);
}

#[test]
fn empty_or_mismatched_histograms_have_no_value() {
    assert_eq!(psi(&[0, 0], &[1, 2]), None);
    assert_eq!(psi(&[1, 2], &[0, 0]), None);
    assert_eq!(js_distance(&[1, 2], &[1, 2, 3]), None);
    assert_eq!(js_distance(&[], &[]), None);
}
