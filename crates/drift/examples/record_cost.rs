//! What one `DriftMonitor::record_at` costs: the demo's 19 features and one score per record,
//! values drawn from the reference, first on one thread, then on two at once. Prints ns/record;
//! a measurement, not a test (this machine is shared and noisy).
//!
//! `cargo run --release -p recserve-drift --example record_cost`

use std::sync::Arc;
use std::time::Instant;

use recserve_drift::{DriftConfig, DriftMonitor, FeatureReference, FeatureValue, ReferenceStats};

const RECORDS: u64 = 1_000_000;

/// One request's worth of values, cycling through the reference's buckets.
fn requests(stats: &ReferenceStats) -> Vec<Vec<(String, f64, Option<String>)>> {
    (0..64)
        .map(|i| {
            stats
                .features()
                .iter()
                .map(|(name, f)| match f {
                    FeatureReference::Numeric(n) => {
                        let edges = n.edges();
                        let x = edges.get(i % edges.len().max(1)).copied().unwrap_or(0.0) + 1e-3;
                        (name.clone(), x, None)
                    }
                    FeatureReference::Categorical(c) => {
                        (name.clone(), 0.0, c.categories().get(i % c.categories().len()).cloned())
                    }
                })
                .collect()
        })
        .collect()
}

fn run(monitor: &DriftMonitor, requests: &[Vec<(String, f64, Option<String>)>], records: u64) {
    let mut values: Vec<(&str, FeatureValue<'_>)> = Vec::with_capacity(32);
    for i in 0..records {
        let request = &requests[(i % requests.len() as u64) as usize];
        values.clear();
        values.extend(request.iter().map(|(name, x, cat)| {
            let v = cat.as_deref().map_or(FeatureValue::Numeric(*x), FeatureValue::Categorical);
            (name.as_str(), v)
        }));
        monitor.record_at(i / 1000, &values, &[0.05]);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/ecommerce/models/ranker/training_stats.json");
    let stats = ReferenceStats::load(path)?;
    let requests = Arc::new(requests(&stats));
    let monitor = Arc::new(DriftMonitor::new(stats, DriftConfig::default())?);

    run(&monitor, &requests, RECORDS / 10); // warm up
    let start = Instant::now();
    run(&monitor, &requests, RECORDS);
    let one = start.elapsed().as_nanos() as f64 / RECORDS as f64;
    println!("1 thread : {one:.0} ns/record (19 features + 1 score), {:.1} ns/value", one / 20.0);

    let start = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (monitor, requests) = (Arc::clone(&monitor), Arc::clone(&requests));
            std::thread::spawn(move || run(&monitor, &requests, RECORDS))
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "recording thread panicked")?;
    }
    let two = start.elapsed().as_nanos() as f64 / RECORDS as f64;
    println!("2 threads: {two:.0} ns per record pair in parallel (wall time / records per thread)");
    Ok(())
}
