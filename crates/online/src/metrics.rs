//! The online metrics of every deployment arm: requests, shown items and feedback events recorded
//! from the request and feedback handlers, kept as all-time totals and over a sliding window, and
//! snapshots with click-through, conversion, revenue per request and the comparison of each arm
//! with its control arm. This module owns the configuration, the arm keys, the hot recording path
//! and the rules that pair an arm with its control.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::stats::{two_proportion_test, wilson_interval};
use crate::window::Window;

/// Configuration of [`OnlineMetrics`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OnlineConfig {
    /// Length of the sliding window the comparisons use, in milliseconds (default 600 000,
    /// 10 minutes). Must be a positive multiple of `buckets`.
    pub window_ms: u64,
    /// Time sub-buckets the window is made of (default 10, so it moves in 1-minute steps).
    pub buckets: usize,
    /// The arm other arms are compared with by [`OnlineMetrics::snapshot_at`] (default
    /// `"stable"`).
    pub control_arm: String,
    /// Window impressions both arms need before a difference may be called significant
    /// (default 200).
    pub min_impressions: u64,
    /// Confidence level of the Wilson intervals and of the tests: a difference is significant
    /// at p < 1 − confidence (default 0.95).
    pub confidence: f64,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        Self { window_ms: 600_000, buckets: 10, control_arm: "stable".into(), min_impressions: 200, confidence: 0.95 }
    }
}

/// A configuration [`OnlineMetrics`] cannot run with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// `buckets` is 0.
    #[error("online metrics window: buckets must be at least 1")]
    NoBuckets,
    /// `window_ms` is 0.
    #[error("online metrics window: window_ms must be positive")]
    EmptyWindow,
    /// The window does not split into whole milliseconds per sub-bucket.
    #[error("online metrics window: window_ms ({window_ms}) must be a multiple of buckets ({buckets})")]
    WindowNotDivisible {
        /// The configured window.
        window_ms: u64,
        /// The configured number of sub-buckets.
        buckets: usize,
    },
    /// `confidence` is not strictly between 0 and 1.
    #[error("online metrics: confidence must be strictly between 0 and 1, got {0}")]
    Confidence(f64),
}

/// The deployment arm a request was served by: which pipeline, which model in it, which arm of
/// the deployment (`stable`, `canary`, an A/B arm name) and which model version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ArmKey {
    /// The recommendation pipeline.
    pub pipeline: String,
    /// The model the deployment routes.
    pub model: String,
    /// The arm of the deployment.
    pub arm: String,
    /// The model version the arm serves.
    pub version: String,
}

impl ArmKey {
    /// A key from its four parts.
    pub fn new(
        pipeline: impl Into<String>,
        model: impl Into<String>,
        arm: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        Self { pipeline: pipeline.into(), model: model.into(), arm: arm.into(), version: version.into() }
    }
}

/// A feedback event about an item shown by an arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The client reports the item as seen (counted in [`Counts::impression_events`], apart
    /// from the shown items of [`OnlineMetrics::record_request`]).
    Impression,
    /// The item was clicked.
    Click,
    /// The item was put in the cart.
    AddToCart,
    /// The item was bought; the event carries its price as revenue.
    Purchase,
}

impl Event {
    /// The snake_case name (the serde name), e.g. for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Impression => "impression",
            Self::Click => "click",
            Self::AddToCart => "add_to_cart",
            Self::Purchase => "purchase",
        }
    }
}

/// What was recorded for one arm, over the window or all time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Recommendation requests served.
    pub requests: u64,
    /// Items shown, summed over the requests (the denominator of CTR and conversion).
    pub impressions: u64,
    /// `impression` feedback events (kept apart from `impressions`: clients that report views
    /// report fewer than were shown).
    pub impression_events: u64,
    /// `click` events.
    pub clicks: u64,
    /// `add_to_cart` events.
    pub add_to_carts: u64,
    /// `purchase` events.
    pub purchases: u64,
    /// Revenue of the purchases.
    pub revenue: f64,
}

impl Counts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &Counts) {
        self.requests = self.requests.saturating_add(other.requests);
        self.impressions = self.impressions.saturating_add(other.impressions);
        self.impression_events = self.impression_events.saturating_add(other.impression_events);
        self.clicks = self.clicks.saturating_add(other.clicks);
        self.add_to_carts = self.add_to_carts.saturating_add(other.add_to_carts);
        self.purchases = self.purchases.saturating_add(other.purchases);
        self.revenue += other.revenue;
    }

    fn request(&mut self, impressions: u64) {
        self.requests = self.requests.saturating_add(1);
        self.impressions = self.impressions.saturating_add(impressions);
    }

    fn event(&mut self, event: Event, revenue: f64) {
        let count = match event {
            Event::Impression => &mut self.impression_events,
            Event::Click => &mut self.clicks,
            Event::AddToCart => &mut self.add_to_carts,
            Event::Purchase => {
                self.revenue += revenue;
                &mut self.purchases
            }
        };
        *count = count.saturating_add(1);
    }
}

/// One arm in a snapshot. Serialized flat: the key fields and the window counts at the top
/// level, the all-time counts under `totals`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmStats {
    /// The arm.
    #[serde(flatten)]
    pub key: ArmKey,
    /// Counts over the window (what the rates and comparisons use).
    #[serde(flatten)]
    pub window: Counts,
    /// All-time counts since the process started (for Prometheus counters).
    pub totals: Counts,
    /// Window click-through rate, `clicks / impressions`; `None` without impressions.
    pub ctr: Option<f64>,
    /// Wilson score interval of `ctr` at the configured confidence; `None` without impressions
    /// (or with more clicks than impressions, possible at the window's edge).
    pub ctr_interval: Option<(f64, f64)>,
    /// Window conversion, `purchases / impressions`; `None` without impressions.
    pub conversion: Option<f64>,
    /// Wilson score interval of `conversion`.
    pub conversion_interval: Option<(f64, f64)>,
    /// Window `revenue / requests`; `None` without requests.
    pub revenue_per_request: Option<f64>,
    /// The comparison with the control arm of the same pipeline and model; `None` for the
    /// control arm itself and for arms without a control.
    pub vs_control: Option<Comparison>,
}

/// An arm against its control arm over the window. Rates are per shown item; lifts are relative
/// (`arm / control − 1`), differences absolute (`arm − control`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The control arm's name.
    pub control_arm: String,
    /// The control arm's model version.
    pub control_version: String,
    /// Both arms have at least `min_impressions` window impressions.
    pub enough_samples: bool,
    /// Relative CTR lift; `None` when either CTR is unknown or the control's is 0.
    pub ctr_lift: Option<f64>,
    /// CTR difference; `None` when either CTR is unknown.
    pub ctr_difference: Option<f64>,
    /// z of the two-proportion test of the CTRs (negative: the arm clicks less).
    pub z: Option<f64>,
    /// Two-sided p-value of that test.
    pub p_value: Option<f64>,
    /// `p_value < 1 − confidence` and `enough_samples`.
    pub significant: bool,
    /// Relative conversion lift; `None` when either conversion is unknown or the control's is 0.
    pub conversion_lift: Option<f64>,
    /// Conversion difference.
    pub conversion_difference: Option<f64>,
    /// z of the two-proportion test of the conversions.
    pub conversion_z: Option<f64>,
    /// Two-sided p-value of that test.
    pub conversion_p_value: Option<f64>,
    /// `conversion_p_value < 1 − confidence` and `enough_samples`.
    pub conversion_significant: bool,
}

/// Every arm at one time, sorted by pipeline, model, arm, version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OnlineSnapshot {
    /// The time of the snapshot (ms).
    pub at_ms: u64,
    /// The window length (ms).
    pub window_ms: u64,
    /// One entry per arm ever recorded.
    pub arms: Vec<ArmStats>,
}

#[derive(Debug)]
struct Arm {
    totals: Counts,
    window: Window,
}

/// Online experiment metrics of every deployment arm.
///
/// `Send + Sync`: share it in an `Arc` and record from request and feedback handlers. A record
/// takes one `Mutex` over the map of arms, one hash lookup of the key and a few additions; the
/// key is cloned only the first time an arm is seen, so recording allocates nothing after that.
#[derive(Debug)]
pub struct OnlineMetrics {
    config: OnlineConfig,
    slice_ms: u64,
    arms: Mutex<HashMap<ArmKey, Arm>>,
}

impl OnlineMetrics {
    /// Metrics with `config`.
    ///
    /// # Errors
    /// No buckets, an empty window, a window that is not a multiple of the buckets, or a
    /// confidence outside `(0, 1)`.
    pub fn new(config: OnlineConfig) -> Result<Self, ConfigError> {
        if config.buckets == 0 {
            return Err(ConfigError::NoBuckets);
        }
        if config.window_ms == 0 {
            return Err(ConfigError::EmptyWindow);
        }
        if !config.window_ms.is_multiple_of(config.buckets as u64) {
            return Err(ConfigError::WindowNotDivisible { window_ms: config.window_ms, buckets: config.buckets });
        }
        if !(config.confidence > 0.0 && config.confidence < 1.0) {
            return Err(ConfigError::Confidence(config.confidence));
        }
        let slice_ms = config.window_ms / config.buckets as u64;
        Ok(Self { config, slice_ms, arms: Mutex::new(HashMap::new()) })
    }

    /// The configuration.
    pub fn config(&self) -> &OnlineConfig {
        &self.config
    }

    /// Records one recommendation request served by `key` at `t_ms` (ms since the Unix epoch)
    /// that showed `impressions` items.
    pub fn record_request(&self, key: &ArmKey, t_ms: u64, impressions: u64) {
        self.record(key, t_ms, |counts| counts.request(impressions));
    }

    /// Records one feedback event about an item `key` showed, at `t_ms`. `revenue` (the item's
    /// price) counts for [`Event::Purchase`] only and is ignored for other events, and when it is
    /// not finite (the purchase itself still counts).
    pub fn record_event(&self, key: &ArmKey, event: Event, revenue: f64, t_ms: u64) {
        let revenue = if revenue.is_finite() { revenue } else { 0.0 };
        self.record(key, t_ms, |counts| counts.event(event, revenue));
    }

    /// Applies `update` to the arm's totals and to its window slice at `t_ms`. Times may arrive
    /// slightly out of order; one older than the whole window counts in the totals only.
    fn record(&self, key: &ArmKey, t_ms: u64, update: impl Fn(&mut Counts)) {
        let epoch = t_ms / self.slice_ms;
        let mut arms = self.lock();
        if let Some(arm) = arms.get_mut(key) {
            arm.update(epoch, update);
            return;
        }
        let buckets = self.config.buckets;
        let arm =
            arms.entry(key.clone()).or_insert_with(|| Arm { totals: Counts::default(), window: Window::new(buckets) });
        arm.update(epoch, update);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ArmKey, Arm>> {
        // A panic while holding the lock can only interrupt an addition; the counts stay usable.
        self.arms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every arm at wall-clock time; see [`Self::snapshot_at`].
    pub fn snapshot(&self) -> OnlineSnapshot {
        self.snapshot_at(now_ms())
    }

    /// Every arm over the window ending at `t_ms`, each non-control arm compared with the arm
    /// named `config.control_arm` of the same pipeline and model.
    pub fn snapshot_at(&self, t_ms: u64) -> OnlineSnapshot {
        let control = self.config.control_arm.as_str();
        self.snapshot_at_with_control(t_ms, |_, _| Some(control.to_owned()))
    }

    /// Every arm over the window ending at `t_ms`, with the control arm of each pipeline and
    /// model named by `control(pipeline, model)` (`None`: no comparisons for that model), for
    /// A/B deployments whose control is not `config.control_arm`.
    ///
    /// Each arm of the model whose name is not the control's is compared with the control arm.
    /// When the control arm has counts under several versions (it was promoted during the
    /// process's life), the version with the most window impressions is the control (ties: the
    /// greatest version string).
    pub fn snapshot_at_with_control(
        &self,
        t_ms: u64,
        control: impl Fn(&str, &str) -> Option<String>,
    ) -> OnlineSnapshot {
        let epoch = t_ms / self.slice_ms;
        let mut rows: Vec<(ArmKey, Counts, Counts)> = {
            let arms = self.lock();
            arms.iter().map(|(key, arm)| (key.clone(), arm.window.sum(epoch), arm.totals)).collect()
        };
        rows.sort_by(|a, b| a.0.cmp(&b.0));

        let mut arms: Vec<ArmStats> = rows.into_iter().map(|(key, w, t)| self.arm_stats(key, w, t)).collect();
        // Rows are sorted, so each pipeline + model is one contiguous group.
        let mut start = 0;
        while start < arms.len() {
            let (pipeline, model) = (&arms[start].key.pipeline, &arms[start].key.model);
            let len = arms[start..].iter().take_while(|a| &a.key.pipeline == pipeline && &a.key.model == model).count();
            let group = &mut arms[start..start + len];
            start += len;
            let Some(control_arm) = control(&group[0].key.pipeline, &group[0].key.model) else {
                continue;
            };
            let Some(control) = group
                .iter()
                .filter(|a| a.key.arm == control_arm)
                .max_by_key(|a| a.window.impressions)
                .map(|a| (a.key.version.clone(), a.window))
            else {
                continue;
            };
            for arm in group.iter_mut().filter(|a| a.key.arm != control_arm) {
                arm.vs_control = Some(self.compare(&arm.window, &control_arm, &control.0, &control.1));
            }
        }
        OnlineSnapshot { at_ms: t_ms, window_ms: self.config.window_ms, arms }
    }

    fn arm_stats(&self, key: ArmKey, window: Counts, totals: Counts) -> ArmStats {
        let confidence = self.config.confidence;
        ArmStats {
            key,
            ctr: rate(window.clicks, window.impressions),
            ctr_interval: wilson_interval(window.clicks, window.impressions, confidence),
            conversion: rate(window.purchases, window.impressions),
            conversion_interval: wilson_interval(window.purchases, window.impressions, confidence),
            revenue_per_request: (window.requests > 0).then(|| window.revenue / window.requests as f64),
            window,
            totals,
            vs_control: None,
        }
    }

    fn compare(&self, arm: &Counts, control_arm: &str, control_version: &str, control: &Counts) -> Comparison {
        let alpha = 1.0 - self.config.confidence;
        let enough_samples =
            arm.impressions >= self.config.min_impressions && control.impressions >= self.config.min_impressions;
        let ctr = two_proportion_test(arm.clicks, arm.impressions, control.clicks, control.impressions);
        let conversion = two_proportion_test(arm.purchases, arm.impressions, control.purchases, control.impressions);
        let (arm_ctr, control_ctr) = (rate(arm.clicks, arm.impressions), rate(control.clicks, control.impressions));
        let (arm_conv, control_conv) =
            (rate(arm.purchases, arm.impressions), rate(control.purchases, control.impressions));
        Comparison {
            control_arm: control_arm.to_owned(),
            control_version: control_version.to_owned(),
            enough_samples,
            ctr_lift: lift(arm_ctr, control_ctr),
            ctr_difference: arm_ctr.zip(control_ctr).map(|(a, c)| a - c),
            z: ctr.map(|t| t.z),
            p_value: ctr.map(|t| t.p_value),
            significant: enough_samples && ctr.is_some_and(|t| t.p_value < alpha),
            conversion_lift: lift(arm_conv, control_conv),
            conversion_difference: arm_conv.zip(control_conv).map(|(a, c)| a - c),
            conversion_z: conversion.map(|t| t.z),
            conversion_p_value: conversion.map(|t| t.p_value),
            conversion_significant: enough_samples && conversion.is_some_and(|t| t.p_value < alpha),
        }
    }
}

impl Arm {
    fn update(&mut self, epoch: u64, update: impl Fn(&mut Counts)) {
        update(&mut self.totals);
        if let Some(slice) = self.window.slice(epoch) {
            update(slice);
        }
    }
}

fn rate(successes: u64, trials: u64) -> Option<f64> {
    (trials > 0).then(|| successes as f64 / trials as f64)
}

fn lift(arm: Option<f64>, control: Option<f64>) -> Option<f64> {
    let (arm, control) = (arm?, control?);
    (control > 0.0).then(|| arm / control - 1.0)
}

use recserve_drift::now_ms;
