//! The demo's simulated shoppers: at a steady rate they ask the running server for a home feed
//! or a search through `POST /v1/recommend`, look at the answer through the synthetic shop's
//! ground truth, and report what they did through `POST /v1/feedback`. Click-through in the
//! demo therefore reflects how well the served models match the shoppers' real taste.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use recserve_shop::{Event, SeedableRng, Shop, ShopRng};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How the simulated shoppers behave.
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    /// Recommendation requests per second.
    pub rate: f64,
    /// Seed of the shoppers' random choices.
    pub seed: u64,
    /// Items asked for per request.
    pub k: usize,
    /// Requests in flight at most; a tick that finds them all busy is skipped (and counted).
    pub max_in_flight: usize,
    /// How often a summary line is logged.
    pub report_every: Duration,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig { rate: 20.0, seed: 7, k: 20, max_in_flight: 64, report_every: Duration::from_secs(30) }
    }
}

/// Changes to the traffic while it runs (the demo scenarios use them).
#[derive(Debug)]
pub struct TrafficControl {
    /// Multiplies the configured rate (f64 bits).
    rate_factor: AtomicU64,
    /// When set, only shoppers who usually use this device arrive, and every request reports it
    /// (a shift in the population's inputs).
    device: std::sync::Mutex<Option<&'static str>>,
}

impl Default for TrafficControl {
    fn default() -> Self {
        TrafficControl { rate_factor: AtomicU64::new(1f64.to_bits()), device: std::sync::Mutex::new(None) }
    }
}

impl TrafficControl {
    pub fn set_rate_factor(&self, factor: f64) {
        self.rate_factor.store(factor.max(0.01).to_bits(), Ordering::Relaxed);
    }

    fn rate_factor(&self) -> f64 {
        f64::from_bits(self.rate_factor.load(Ordering::Relaxed))
    }

    pub fn force_device(&self, device: Option<&'static str>) {
        if let Ok(mut d) = self.device.lock() {
            *d = device;
        }
    }

    fn device(&self) -> Option<&'static str> {
        self.device.lock().ok().and_then(|d| *d)
    }
}

/// Running totals of the simulated traffic.
#[derive(Debug, Default)]
pub struct TrafficStats {
    pub requests: AtomicU64,
    pub failed_requests: AtomicU64,
    pub skipped: AtomicU64,
    pub impressions: AtomicU64,
    pub clicks: AtomicU64,
    pub add_to_carts: AtomicU64,
    pub purchases: AtomicU64,
    pub failed_feedback: AtomicU64,
}

impl TrafficStats {
    fn count(&self, event: Event) {
        let counter = match event {
            Event::Impression => &self.impressions,
            Event::Click => &self.clicks,
            Event::AddToCart => &self.add_to_carts,
            Event::Purchase => &self.purchases,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// One line for the log: requests, errors, CTR and conversion so far.
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let impressions = get(&self.impressions).max(1) as f64;
        format!(
            "{} requests ({} failed, {} skipped), {} impressions, CTR {:.2}%, {} purchases ({:.3}% of impressions)",
            get(&self.requests),
            get(&self.failed_requests),
            get(&self.skipped),
            get(&self.impressions),
            100.0 * get(&self.clicks) as f64 / impressions,
            get(&self.purchases),
            100.0 * get(&self.purchases) as f64 / impressions,
        )
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Sends simulated traffic to the server at `addr` until `stop` is cancelled.
pub async fn run(
    shop: Arc<Shop>,
    addr: SocketAddr,
    config: TrafficConfig,
    stats: Arc<TrafficStats>,
    control: Arc<TrafficControl>,
    stop: CancellationToken,
) {
    if config.rate <= 0.0 {
        return;
    }
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let base = format!("http://{addr}");
    let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let mut rng = ShopRng::seed_from_u64(config.seed);
    let every = |factor: f64| Duration::from_secs_f64(1.0 / (config.rate * factor));
    let mut factor = control.rate_factor();
    let mut ticks = tokio::time::interval(every(factor));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut report = tokio::time::interval(config.report_every);
    report.tick().await;
    info!(rate = config.rate, "demo traffic started: simulated shoppers are browsing and searching");
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = report.tick() => info!("demo traffic: {}", stats.summary()),
            _ = ticks.tick() => {
                if control.rate_factor() != factor {
                    factor = control.rate_factor();
                    ticks = tokio::time::interval(every(factor));
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    info!(rate = config.rate * factor, "demo traffic: rate changed");
                }
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    stats.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let device = control.device();
                let action = next_shopper(&shop, device, &mut rng);
                let task_rng = ShopRng::seed_from_u64(rand_u64(&mut rng));
                let (shop, client, base, stats, k) = (shop.clone(), client.clone(), base.clone(), stats.clone(), config.k);
                tokio::spawn(async move {
                    shopper_visit(&shop, &client, &base, action, device, k, task_rng, &stats).await;
                    drop(permit);
                });
            }
        }
    }
    info!("demo traffic stopped: {}", stats.summary());
}

/// The next simulated request; with `device` forced, only shoppers who usually use that device
/// arrive (a campaign for one app: the population shifts, not only the context).
fn next_shopper(shop: &Shop, device: Option<&str>, rng: &mut ShopRng) -> recserve_shop::Action {
    let mut action = shop.next_action(rng);
    if let Some(device) = device {
        for _ in 0..64 {
            if shop.usual_device(&action.user_id).as_str() == device {
                break;
            }
            action = shop.next_action(rng);
        }
    }
    action
}

fn rand_u64(rng: &mut ShopRng) -> u64 {
    use recserve_shop::Rng;
    rng.next_u64()
}

/// One request and the feedback it earns (`device`, when given, replaces the shopper's own).
#[allow(clippy::too_many_arguments)]
async fn shopper_visit(
    shop: &Shop,
    client: &HttpClient,
    base: &str,
    action: recserve_shop::Action,
    device: Option<&'static str>,
    k: usize,
    mut rng: ShopRng,
    stats: &TrafficStats,
) {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let query = action.scenario.query().map(str::to_string);
    let mut body = json!({
        "scenario": action.scenario.as_str(),
        "user_id": action.user_id,
        "context": {"device": device.unwrap_or(action.device.as_str())},
        "k": k,
    });
    if let Some(q) = &query {
        body["query"] = json!(q);
    }
    let reply = match post(client, &format!("{base}/v1/recommend"), &body).await {
        Ok(reply) => reply,
        Err(e) => {
            if stats.failed_requests.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
                warn!(error = %e, "demo traffic: a recommendation request failed");
            }
            return;
        }
    };
    let request_id = reply["request_id"].as_str().unwrap_or_default().to_string();
    let shown: Vec<String> = reply["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["item_id"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    for feedback in shop.respond(&action.user_id, &shown, query.as_deref(), &mut rng) {
        let body = json!({
            "request_id": request_id,
            "user_id": action.user_id,
            "item_id": feedback.item_id,
            "event": feedback.event.as_str(),
        });
        match post(client, &format!("{base}/v1/feedback"), &body).await {
            Ok(_) => stats.count(feedback.event),
            Err(e) => {
                if stats.failed_feedback.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
                    warn!(error = %e, "demo traffic: a feedback event was refused");
                }
            }
        }
    }
}

async fn post(client: &HttpClient, url: &str, body: &serde_json::Value) -> Result<serde_json::Value, String> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let bytes = response.into_body().collect().await.map_err(|e| format!("{url}: {e}"))?.to_bytes();
    if status != StatusCode::OK {
        return Err(format!("{url}: {status}: {}", String::from_utf8_lossy(&bytes)));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("{url}: invalid JSON answer: {e}"))
}
