//! A tiny HTTP server (no axum: tokio `TcpListener` and hand-written HTTP/1.1) exposing a
//! deterministic workload's metrics at `/metrics`, and answering `/api/v1/query`,
//! `/api/v1/query_range`, `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values` from
//! its own series store, which scrapes the same registry every `EXPOSE_SCRAPE_MS` (default 1000).
//! `/api/v1/bottleneck?window=60s` returns the bottleneck analysis as JSON.
//!
//! A real Prometheus scraping `/metrics` and this store answer the same queries, so a script can
//! compare them by hand (CI compares against the real server: `tests/telemetry/compare_recserve.sh`).
//!
//! ```sh
//! EXPOSE_ADDR=127.0.0.1:9185 cargo run -p recserve-telemetry --example expose
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use recserve_telemetry::api::{self, QueryParams, RangeParams, SeriesParams, parse_duration, parse_form};
use recserve_telemetry::exposition::CONTENT_TYPE;
use recserve_telemetry::store::now_ms;
use recserve_telemetry::{Outcome, Stage, StoreConfig, Telemetry, TelemetryConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The synthetic workload: every 100 ms, four requests to two models with fixed stage latencies;
/// one in 20 fails. Rates are constant, so any two scrapers agree on them.
fn drive(telemetry: &Telemetry, tick: u64) {
    let targets =
        [telemetry.serving.target("ranker", "1", "home").ok(), telemetry.serving.target("retriever", "2", "none").ok()];
    for (i, target) in targets.iter().flatten().enumerate() {
        target.set_queue_capacity(64);
        target.set_queue_depth(((tick / 100) % 5) as usize * (i + 1));
        target.set_model_memory(1_000_000 * (i as u64 + 1));
        target.observe_batch(1 + (tick as usize % 4));
        for r in 0..2u64 {
            let mut obs = target.start();
            let k = (tick * 2 + r) % 10;
            obs.stage(Stage::Queue, Duration::from_micros(200 + 50 * k));
            obs.stage(Stage::Preprocess, Duration::from_micros(300));
            obs.stage(Stage::Inference, Duration::from_micros(1_000 + 400 * k * (i as u64 + 1)));
            obs.stage(Stage::Postprocess, Duration::from_micros(150));
            let outcome = if (tick * 2 + r) % 20 == 7 { Outcome::Error } else { Outcome::Ok };
            let total = Duration::from_micros(1_650 + 50 * k + 400 * k * (i as u64 + 1));
            obs.finish_with_duration(outcome, total);
        }
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
}

fn json(r: api::ApiResponse) -> Response {
    Response { status: r.http_status(), content_type: "application/json", body: r.to_json() }
}

fn route(telemetry: &Telemetry, path: &str, pairs: &[(String, String)]) -> Response {
    let store = &telemetry.store;
    match path {
        "/metrics" => Response { status: 200, content_type: CONTENT_TYPE, body: telemetry.render_metrics() },
        "/api/v1/query" => json(api::query(store, &QueryParams::from_pairs(pairs), now_ms())),
        "/api/v1/query_range" => json(api::query_range(store, &RangeParams::from_pairs(pairs))),
        "/api/v1/series" => json(api::series(store, &SeriesParams::from_pairs(pairs))),
        "/api/v1/labels" => json(api::labels(store, &SeriesParams::from_pairs(pairs))),
        "/api/v1/bottleneck" => {
            let window =
                pairs.iter().find(|(k, _)| k == "window").and_then(|(_, v)| parse_duration(v).ok()).unwrap_or(60_000);
            let report = recserve_telemetry::analysis::bottleneck(
                store,
                now_ms(),
                Duration::from_millis(u64::try_from(window).unwrap_or(60_000)),
            );
            Response {
                status: 200,
                content_type: "application/json",
                body: serde_json::to_string(&report).unwrap_or_default(),
            }
        }
        p if p.starts_with("/api/v1/label/") && p.ends_with("/values") => {
            let name = &p["/api/v1/label/".len()..p.len() - "/values".len()];
            json(api::label_values(store, name, &SeriesParams::from_pairs(pairs)))
        }
        _ => Response { status: 404, content_type: "text/plain", body: "not found\n".into() },
    }
}

async fn serve(mut stream: TcpStream, telemetry: Arc<Telemetry>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let content_length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + content_length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut pairs = parse_form(query);
    if method == "POST" {
        let end = buf.len().min(header_end + content_length);
        pairs.extend(parse_form(&String::from_utf8_lossy(&buf[header_end..end])));
    }
    let resp = route(&telemetry, path, &pairs);
    let reason = match resp.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.status,
        resp.content_type,
        resp.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(resp.body.as_bytes()).await?;
    stream.shutdown().await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("EXPOSE_ADDR").unwrap_or_else(|_| "127.0.0.1:9185".into());
    let scrape_ms: u64 = std::env::var("EXPOSE_SCRAPE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let config = TelemetryConfig {
        store: StoreConfig { scrape_interval: Duration::from_millis(scrape_ms), ..StoreConfig::default() },
        data_dir: std::env::var_os("EXPOSE_DATA_DIR").map(Into::into),
        ..TelemetryConfig::default()
    };
    let telemetry = Arc::new(Telemetry::new(config).map_err(std::io::Error::other)?);
    let _tasks = telemetry.start();
    let driver = telemetry.clone();
    tokio::spawn(async move {
        let start = Instant::now();
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        let mut tick = 0u64;
        loop {
            interval.tick().await;
            // Catch up on missed ticks so the request rate stays exactly 40/s per model.
            let due = (start.elapsed().as_millis() / 100) as u64;
            while tick <= due {
                drive(&driver, tick);
                tick += 1;
            }
        }
    });
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("expose: listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let t = telemetry.clone();
        tokio::spawn(async move {
            if let Err(err) = serve(stream, t).await {
                eprintln!("expose: connection error: {err}");
            }
        });
    }
}
