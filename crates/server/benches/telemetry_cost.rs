//! Serving throughput with telemetry on against off, in one process and one run (issue 4 wants
//! on / off ≥ 0.95).
//!
//! Two servers on loopback port 0, each over its own registry of the fixture `mlp` model (so the
//! telemetry one's observers cannot reach the other's versions): one built with
//! `AppState::with_telemetry(registry, Some(telemetry))` with the sampler and store scraper
//! running as in `recserve serve`, one with `AppState::with_telemetry(registry, None)`. Nothing
//! else differs (no request log, no store, default limits). The same closed-loop load (the
//! `recserve-loadgen` crate behind `recserve bench`: V2 JSON, 1 row, one keep-alive connection
//! per worker) drives them in alternating rounds (on, off, then off, on, ...) so that drift in
//! the machine's load hits both; the servers run on their own tokio runtime, the load generator
//! on another, in this process.
//!
//! ```sh
//! cargo bench -p recserve-server --bench telemetry_cost
//! ROUNDS=5 DURATION=10 CONCURRENCY=32 cargo bench -p recserve-server --bench telemetry_cost
//! ```
//!
//! Prints one line per run, the medians, their spread and the ratio on / off (of the medians,
//! and the median of the per-round ratios: on a busy machine, many short rounds give a steadier
//! figure than a few long ones, e.g. `ROUNDS=20 DURATION=3`). No assertion on
//! the figures: this is a measurement, not a test.

use recserve_loadgen::{BenchArgs, Report};
use recserve_server::AppState;
use recserve_telemetry::{Telemetry, TelemetryConfig};
use recserve_testkit::{TestServer, loaded_registry};
use std::sync::Arc;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn spread(xs: &[f64]) -> String {
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.0}–{max:.0}")
}

struct Side {
    name: &'static str,
    url: String,
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is ignored too.
    let rounds: usize = env_or("ROUNDS", 5);
    let duration: f64 = env_or("DURATION", 8.0);
    let warmup: f64 = env_or("WARMUP", 1.0);
    let concurrency: u32 = env_or("CONCURRENCY", 32);
    let server_threads: usize = env_or("SERVER_THREADS", std::thread::available_parallelism().map_or(2, |n| n.get()));

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .thread_name("server")
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .thread_name("loadgen")
        .enable_all()
        .build()
        .expect("client runtime");

    let (on_server, off_server, _tasks, _repo) = server_rt.block_on(async {
        let repo = recserve_testkit::repository_with(&["mlp"]);
        let on_registry = loaded_registry(repo.path()).await;
        let off_registry = loaded_registry(repo.path()).await;
        let telemetry = Arc::new(Telemetry::new(TelemetryConfig::default()).expect("telemetry"));
        let on_state = AppState::with_telemetry(on_registry, Some(telemetry.clone()));
        // Started after `with_telemetry` wired it to the registry, as `recserve serve` does.
        let tasks = telemetry.start();
        let off_state = AppState::with_telemetry(off_registry, None);
        let on = TestServer::start(on_state).await;
        let off = TestServer::start(off_state).await;
        (on, off, tasks, repo)
    });

    let mut sides = [
        Side { name: "telemetry on", url: format!("http://{}", on_server.http), rps: vec![], p50: vec![], p99: vec![] },
        Side {
            name: "telemetry off",
            url: format!("http://{}", off_server.http),
            rps: vec![],
            p50: vec![],
            p99: vec![],
        },
    ];
    eprintln!(
        "telemetry_cost: {rounds} rounds × 2 × {duration} s (+{warmup} s warm-up), concurrency {concurrency}, \
         mlp V2 JSON 1 row, {server_threads} server worker threads"
    );
    let mut errors = 0u64;
    for round in 0..rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let side = &mut sides[i];
            let mut args = BenchArgs::new("mlp");
            args.url = side.url.clone();
            args.concurrency = concurrency;
            args.duration = duration;
            args.warmup = warmup;
            args.quiet = true;
            let reports: Vec<Report> = client_rt.block_on(recserve_loadgen::run(&args)).expect("load run");
            let r = &reports[0];
            errors += r.errors;
            println!(
                "round {} {:<13} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
                round + 1,
                side.name,
                r.throughput_rps,
                r.latency_ms.p50,
                r.latency_ms.p99,
                r.errors
            );
            side.rps.push(r.throughput_rps);
            side.p50.push(r.latency_ms.p50);
            side.p99.push(r.latency_ms.p99);
        }
    }
    for s in &sides {
        println!(
            "{:<13}: median {:.0} req/s (runs {}), p50 {:.3} ms, p99 {:.3} ms (p99 runs {:?})",
            s.name,
            median(&s.rps),
            spread(&s.rps),
            median(&s.p50),
            median(&s.p99),
            s.p99
        );
    }
    let (on, off) = (&sides[0], &sides[1]);
    let per_round: Vec<f64> = on.rps.iter().zip(&off.rps).map(|(a, b)| a / b).collect();
    println!(
        "throughput on/off: {:.3} (ratio of medians), {:.3} (median of the per-round ratios); per round {:?}; \
         p99 on/off {:.2}; errors {errors}",
        median(&on.rps) / median(&off.rps),
        median(&per_round),
        per_round.iter().map(|r| (r * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        median(&on.p99) / median(&off.p99)
    );
    drop((on_server, off_server));
}
