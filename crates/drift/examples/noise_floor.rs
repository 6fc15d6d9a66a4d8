//! How often pure sampling noise crosses the verdict thresholds, per sample size: values are drawn
//! from the demo's reference statistics themselves (no drift), `TRIALS` windows per size, and the
//! share of windows with a verdict other than `Ok` is printed per feature (by PSI and JS alone,
//! ignoring the minimum sample size). This is how the default minimum sample size was chosen
//! (see `DriftConfig::min_samples_per_bucket`).
//!
//! `cargo run --release -p recserve-drift --example noise_floor`

use recserve_drift::{ReferenceStats, Thresholds, Verdict, js_distance, psi};

const TRIALS: usize = 300;

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/ecommerce/models/ranker/training_stats.json");
    let stats = ReferenceStats::load(path)?;
    let thresholds = Thresholds::default();
    let mut rng = Rng(1);
    let sizes = [100u64, 200, 500, 1000, 2000, 5000];
    print!("{:<28} {:>7}", "feature", "buckets");
    for n in sizes {
        print!(" {:>8}", format!("n={n}"));
    }
    println!("   (share of no-drift windows judged Moderate or worse)");
    let features = stats.features().iter().map(|(name, f)| (name.as_str(), f.histogram()));
    let score = stats.score().map(|s| ("score", s.counts().to_vec()));
    for (name, reference) in features.chain(score) {
        let total: u64 = reference.iter().sum();
        // Cumulative counts for drawing a bucket in proportion to the reference.
        let cumulative: Vec<u64> = reference
            .iter()
            .scan(0, |acc, c| {
                *acc += c;
                Some(*acc)
            })
            .collect();
        print!("{name:<28} {:>7}", reference.len());
        for n in sizes {
            let mut alarms = 0;
            for _ in 0..TRIALS {
                let mut live = vec![0u64; reference.len()];
                for _ in 0..n {
                    let r = rng.next_u64() % total;
                    live[cumulative.partition_point(|&c| c <= r)] += 1;
                }
                let (p, j) = (psi(&reference, &live).unwrap_or(0.0), js_distance(&reference, &live).unwrap_or(0.0));
                if thresholds.verdict(p, j) != Verdict::Ok {
                    alarms += 1;
                }
            }
            print!(" {:>7.1}%", 100.0 * alarms as f64 / TRIALS as f64);
        }
        println!();
    }
    Ok(())
}
