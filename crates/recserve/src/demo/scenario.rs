//! `recserve demo --scenario`: scripted incidents that show the monitoring loop on the
//! dashboard within a few minutes. Each waits `delay`, then acts like an operator or a change in
//! the world would, through the same public APIs a user has:
//!
//! - `bad-canary`: registers the bundled weak ranker (`examples/ecommerce/canary/ranker_weak`,
//!   no personalisation) as a new ranker version and sends it half of the shoppers as a canary.
//!   Its click-through falls well below the stable arm's; the bundled rule
//!   `RecserveCanaryCtrWorse` fires after a minute and recserve rolls the canary back.
//! - `drift`: a tablet-app campaign: from now on only shoppers who use a tablet arrive, all on
//!   tablets. The user tower's `ut_device` and the ranker's `device` drift from the reference,
//!   and so do the other inputs and scores that follow from the changed population;
//!   `recserve_drift_psi` rises and `RecserveFeatureDrift` fires after five minutes.
//! - `overload`: the shoppers arrive 25 times faster: queues fill, requests are refused at once
//!   with 429, latency rises, and the saturation and rejection alerts fire.

use super::traffic::TrafficControl;
use anyhow::{Context, bail};
use base64::Engine as _;
use include_dir::{Dir, include_dir};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

static CANARY: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../examples/ecommerce/canary/ranker_weak");

/// The scripted scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// A worse ranker as a 50% canary, rolled back automatically when its CTR falls.
    BadCanary,
    /// The shoppers' inputs shift away from the reference (only tablet shoppers arrive).
    Drift,
    /// Traffic at 25 times the configured rate.
    Overload,
}

/// Runs `scenario` against the server at `addr` after `delay` (unless `stop` comes first).
pub async fn run(
    scenario: Scenario,
    addr: SocketAddr,
    delay: Duration,
    control: Arc<TrafficControl>,
    stop: CancellationToken,
) {
    eprintln!("  scenario {scenario:?}: starts in {} s", delay.as_secs());
    tokio::select! {
        _ = stop.cancelled() => return,
        _ = tokio::time::sleep(delay) => {}
    }
    let result = match scenario {
        Scenario::BadCanary => bad_canary(addr).await,
        Scenario::Drift => {
            control.force_device(Some("tablet"));
            Ok("a tablet-app campaign: only tablet shoppers arrive now: watch recserve_drift_psi{feature=~\"device|ut_device\"} and the Deployments page".into())
        }
        Scenario::Overload => {
            control.set_rate_factor(25.0);
            Ok("the shoppers now arrive 25 times faster: watch the queue, 429s and latency".into())
        }
    };
    match result {
        Ok(what) => {
            info!(scenario = ?scenario, "{what}");
            eprintln!("recserve demo: scenario {scenario:?}: {what}");
        }
        Err(e) => error!(scenario = ?scenario, error = %format!("{e:#}"), "the scenario could not run"),
    }
}

/// Registers the weak ranker and starts a 50% canary through the deployment API.
async fn bad_canary(addr: SocketAddr) -> anyhow::Result<String> {
    let file = |name: &str| {
        CANARY.get_file(name).map(|f| f.contents()).with_context(|| format!("the bundled canary has no {name}"))
    };
    let onnx = file("model.onnx")?;
    let validation: serde_json::Value =
        serde_json::from_slice(file("validation.json")?).context("the bundled canary's validation.json")?;
    let client = reqwest::Client::new();
    let base = format!("http://{addr}/api/v1/deployments/ranker");
    let answer = client
        .post(format!("{base}/versions"))
        .json(&serde_json::json!({
            "onnx_base64": base64::engine::general_purpose::STANDARD.encode(onnx),
            "validation": validation,
            "reason": "demo scenario bad-canary: a ranker without personalisation",
        }))
        .send()
        .await
        .context("cannot reach the deployment API")?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.context("the deployment API's answer")?;
    if !status.is_success() {
        bail!("registering the weak ranker was refused ({status}): {}", body["error"]);
    }
    let version = body["data"]["versions"]
        .as_array()
        .and_then(|v| v.iter().filter_map(|v| v["version"].as_u64()).max())
        .context("the deployment API did not list the new version")?;
    let answer = client
        .post(format!("{base}/canary"))
        .json(&serde_json::json!({"version": version, "percent": 50, "reason": "demo scenario bad-canary"}))
        .send()
        .await
        .context("cannot reach the deployment API")?;
    if !answer.status().is_success() {
        let status = answer.status();
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        bail!("starting the canary was refused ({status}): {}", body["error"]);
    }
    Ok(format!(
        "ranker version {version} (no personalisation) takes 50% of shoppers as a canary: watch its CTR on the Deployments page; the rule RecserveCanaryCtrWorse rolls it back"
    ))
}
