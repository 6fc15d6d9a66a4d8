//! Log writer throughput: submits request records at a fixed rate for N seconds and reports
//! accepted / dropped / committed and the sustained rate, against SQLite (temp dir) and, when
//! `RECSERVE_TEST_MYSQL_URL` is set, MariaDB/MySQL (a fresh database, dropped afterwards).
//!
//! `cargo bench -p recserve-store --bench writer -- [seconds] [rate,rate,…]`
//! (defaults: 5 s; SQLite 25k,50k,100k/s; MySQL 10k,20k,40k,80k/s). A rate is sustained when
//! nothing was dropped and the queue drained within a second of the last submit.
//! `RECSERVE_BENCH_MAX_BATCH` and `RECSERVE_BENCH_CAPACITY` override the writer's defaults.
//! Records: `RECSERVE_BENCH_RECORDS` = `users` (recommend-like: 10 000 distinct users, ~150-byte
//! input, top-10 output, 4 stages), `nousers` (V2-like: the same sizes, no user, no pipeline) or
//! `both` (default: each rate runs with both kinds).
//!
//! `cpu µs/rec` is the CPU time of the whole process (writer task, the store's worker threads,
//! and the producer thread, which costs the same in every version) per committed record, from
//! `/proc/self/stat` (Linux; blank elsewhere): unlike committed/s it hardly moves when other work
//! shares the machine, so it is the figure to compare versions with at a rate both sustain.

use std::time::{Duration, Instant};

use recserve_store::{
    LogRecord, Pseudonymizer, RequestRecord, Retention, Store, StoreConfig, WriterConfig, input_or_digest,
};
use sqlx::{AssertSqlSafe, Connection};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Recommend-like: pseudonymised user, pipeline.
    Users,
    /// V2-inference-like: no user, no pipeline.
    NoUsers,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Users => "recommend-like records (with users)",
            Kind::NoUsers => "V2-like records (no user)",
        }
    }
}

fn record(i: usize, p: &Pseudonymizer, kind: Kind) -> RequestRecord {
    if kind == Kind::NoUsers {
        let mut r = record(i, p, Kind::Users);
        r.user = None;
        r.pipeline = None;
        r.model = Some("classifier".into());
        r.input = Some(format!(
            r#"{{"inputs":[{{"name":"features","shape":[1,12],"datatype":"FP32","data":[{}]}}]}}"#,
            (0..12).map(|k| format!("{:.3}", (i % 97 + k) as f64 / 7.0)).collect::<Vec<_>>().join(",")
        ));
        return r;
    }
    let items: Vec<String> =
        (0..10).map(|k| format!("{{\"item\":{},\"score\":{:.4}}}", i * 7 + k, 1.0 / (k + 1) as f64)).collect();
    RequestRecord {
        request_id: format!("bench-{i:09}"),
        time_ms: 1_700_000_000_000 + i as i64,
        replica: Some("replica-1".into()),
        model: Some("ranker".into()),
        version: Some("3".into()),
        arm: Some("stable".into()),
        pipeline: Some("home".into()),
        user: Some(p.pseudonymize(&format!("user-{}", i % 10_000))),
        raw_user: None,
        input: Some(input_or_digest(
            format!(
                r#"{{"user":"u{}","context":{{"device":"mobile","page":"home","query":"running shoes size {}"}},"k":10}}"#,
                i % 10_000,
                i % 13
            ),
            4096,
        )),
        output: Some(format!("[{}]", items.join(","))),
        stages: vec![
            ("retrieval".into(), 1.8),
            ("preprocess".into(), 0.2),
            ("ranking".into(), 2.9),
            ("postprocess".into(), 0.1),
        ],
        latency_ms: 5.1,
        status: if i.is_multiple_of(50) { 503 } else { 200 },
        error: if i.is_multiple_of(50) { Some("overloaded".into()) } else { None },
    }
}

/// CPU seconds (user + system) this process used so far, from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks / 100.0)
}

struct Outcome {
    accepted: u64,
    dropped: u64,
    committed: u64,
    batches: u64,
    submit_secs: f64,
    total_secs: f64,
    cpu_secs: Option<f64>,
}

async fn run_rate(store: &Store, rate: u64, seconds: u64, kind: Kind) -> Outcome {
    let mut config = WriterConfig::default();
    if let Some(n) = std::env::var("RECSERVE_BENCH_MAX_BATCH").ok().and_then(|v| v.parse().ok()) {
        config.max_batch = n;
    }
    if let Some(n) = std::env::var("RECSERVE_BENCH_CAPACITY").ok().and_then(|v| v.parse().ok()) {
        config.capacity = n;
    }
    let writer = store.start_writer(config);
    let sink = writer.sink();
    let p = Pseudonymizer::new(b"bench");
    let templates: Vec<RequestRecord> = (0..4096).map(|i| record(i, &p, kind)).collect();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let producer = std::thread::spawn(move || {
        let total = rate * seconds;
        let mut sent = 0u64;
        while sent < total {
            let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
            while sent < due {
                let mut r = templates[(sent % 4096) as usize].clone();
                r.request_id = format!("bench-{sent:09}");
                r.time_ms = 1_700_000_000_000 + sent as i64;
                sink.submit(LogRecord::Request(r));
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    });
    let _ = tokio::task::spawn_blocking(move || producer.join()).await;
    let submit_secs = started.elapsed().as_secs_f64();
    let s = writer.shutdown().await;
    Outcome {
        accepted: s.accepted,
        dropped: s.dropped,
        committed: s.committed,
        batches: s.batches,
        submit_secs,
        total_secs: started.elapsed().as_secs_f64(),
        cpu_secs: cpu_seconds().zip(cpu_before).map(|(after, before)| after - before),
    }
}

async fn bench_backend(name: &str, config: &StoreConfig, rates: &[u64], seconds: u64, kind: Kind) {
    let name = format!("{name}, {}", kind.label());
    println!("\n{name}: {seconds} s per rate, WriterConfig::default() (capacity 65536, max_batch 16384, flush 200 ms)");
    println!(
        "{:>10} {:>10} {:>9} {:>10} {:>8} {:>12} {:>10} {:>12}  sustained",
        "rate/s", "accepted", "dropped", "committed", "batches", "committed/s", "drain s", "cpu µs/rec"
    );
    let mut best = 0;
    for &rate in rates {
        let store = match Store::open(config).await {
            Ok(s) => s,
            Err(e) => {
                println!("cannot open {name}: {e}");
                return;
            }
        };
        let o = run_rate(&store, rate, seconds, kind).await;
        let sustained = o.dropped == 0 && o.committed == o.accepted && o.total_secs - o.submit_secs < 1.0;
        if sustained {
            best = best.max(rate);
        }
        let cpu = o
            .cpu_secs
            .filter(|_| o.committed > 0)
            .map_or(String::new(), |c| format!("{:.2}", c * 1e6 / o.committed as f64));
        println!(
            "{:>10} {:>10} {:>9} {:>10} {:>8} {:>12.0} {:>10.2} {:>12}  {}",
            rate,
            o.accepted,
            o.dropped,
            o.committed,
            o.batches,
            o.committed as f64 / o.total_secs,
            o.total_secs - o.submit_secs,
            cpu,
            if sustained { "yes" } else { "no" }
        );
        store.close().await;
    }
    println!("{name}: highest sustained rate with zero drops: {best} records/s");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let custom: Option<Vec<u64>> = args.get(1).map(|s| s.split(',').filter_map(|r| r.trim().parse().ok()).collect());
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("temp dir: {e}");
                std::process::exit(1);
            }
        };
        let kinds = match std::env::var("RECSERVE_BENCH_RECORDS").as_deref() {
            Ok("users") => vec![Kind::Users],
            Ok("nousers") => vec![Kind::NoUsers],
            _ => vec![Kind::Users, Kind::NoUsers],
        };
        let mut run = 0;
        for &kind in &kinds {
            for rate in custom.clone().unwrap_or_else(|| vec![25_000, 50_000, 100_000]) {
                // A fresh SQLite file per rate so earlier runs do not grow the indexes.
                let config = StoreConfig::sqlite_in(dir.path().join(format!("run{run}")));
                run += 1;
                bench_backend("SQLite", &config, &[rate], seconds, kind).await;
            }
        }
        match std::env::var("RECSERVE_TEST_MYSQL_URL") {
            Ok(url) => {
                let name = format!("recserve_bench_{}", std::process::id());
                let Ok(mut conn) = sqlx::MySqlConnection::connect(&url).await else {
                    println!("MySQL: cannot connect to RECSERVE_TEST_MYSQL_URL");
                    return;
                };
                let _ = sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await;
                let base = url.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(url.clone());
                let config = StoreConfig {
                    url: Some(format!("{base}/{name}")),
                    data_dir: dir.path().to_path_buf(),
                    retention: Retention::default(),
                };
                let rates = custom.clone().unwrap_or_else(|| vec![10_000, 20_000, 40_000, 80_000]);
                for &kind in &kinds {
                    bench_backend("MySQL/MariaDB", &config, &rates, seconds, kind).await;
                }
                let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE {name}"))).execute(&mut conn).await;
            }
            Err(_) => println!("\nMySQL: skipped (RECSERVE_TEST_MYSQL_URL not set)"),
        }
    });
}
