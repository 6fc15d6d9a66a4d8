//! `recserve demo`: serves the bundled shop (models, tables, pipelines) exactly as `serve`
//! would, and runs simulated shoppers against it as background traffic, so the whole system
//! can be watched live with one command.

pub mod bundle;
pub mod scenario;
pub mod traffic;

use crate::cli::DemoArgs;
use crate::serve::{self, Fallback, Settings};
use anyhow::Context;
use recserve_shop::{Shop, ShopConfig};
use std::sync::Arc;
use tracing::warn;

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve_or(
        &args.serve,
        Some(Fallback {
            what: "the demo shop bundled in this binary",
            make: Box::new(|data_dir| {
                let extracted = bundle::extract(data_dir)?;
                Ok((extracted.models, extracted.pipelines))
            }),
        }),
    )?;
    if !is_loopback(&settings.host) {
        warn!(host = %settings.host, "the demo has no authentication; it is meant for a loopback address");
    }
    let shop = tokio::task::spawn_blocking(|| Shop::new(ShopConfig::default()))
        .await
        .context("shop generator panicked")?
        .context("cannot build the demo shop")?;
    let running = serve::start(settings).await?;
    let scheme = if running.tls.is_some() { "https" } else { "http" };
    let base = format!("{scheme}://{}", running.http_addr);
    eprintln!("recserve demo: the shop is open");
    eprintln!("  dashboard        {base}/");
    eprintln!(
        "  recommendations  POST {base}/v1/recommend   {{\"scenario\": \"home_feed\", \"user_id\": \"U0000042\", \"k\": 10}}"
    );
    eprintln!(
        "  search           POST {base}/v1/recommend   {{\"scenario\": \"search\", \"user_id\": \"U0000042\", \"query\": \"running shoes\"}}"
    );
    eprintln!("  feedback         POST {base}/v1/feedback");
    eprintln!("  models (V2)      GET  {base}/v2/models/ranker   gRPC {}", running.grpc_addr);
    let traffic_rate = if running.tls.is_some() && args.traffic_rate > 0.0 {
        // The simulated shoppers and scenarios speak plain HTTP to the server.
        warn!("with TLS the demo's simulated shoppers and scenarios do not run");
        0.0
    } else {
        args.traffic_rate
    };
    if traffic_rate > 0.0 {
        eprintln!("  simulated shoppers: {} requests/s (--traffic-rate; 0 turns them off)", args.traffic_rate);
    }
    let config = traffic::TrafficConfig { rate: traffic_rate, seed: args.traffic_seed, ..Default::default() };
    let stats = Arc::new(traffic::TrafficStats::default());
    let control = Arc::new(traffic::TrafficControl::default());
    tokio::spawn(traffic::run(Arc::new(shop), running.http_addr, config, stats, control.clone(), running.stop.clone()));
    if let Some(scenario) = args.scenario.filter(|_| running.tls.is_none()) {
        let delay = std::time::Duration::from_secs(args.scenario_delay_secs);
        tokio::spawn(scenario::run(scenario, running.http_addr, delay, control, running.stop.clone()));
    }
    running.wait_for_shutdown().await
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
