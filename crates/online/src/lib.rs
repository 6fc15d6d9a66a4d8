//! recserve's online experiment metrics: per deployment arm (pipeline, model, arm, version) the
//! requests served, items shown and the shoppers' feedback (impressions, clicks, add-to-carts,
//! purchases and their revenue), as all-time totals for Prometheus counters and over a sliding
//! window for comparisons; click-through and conversion with Wilson score intervals; and every
//! arm compared with its control arm by a two-proportion z-test, significant only above a minimum
//! number of impressions.
//!
//! - [`metrics`]: [`OnlineMetrics`], recorded from the request and feedback handlers, and
//!   [`OnlineSnapshot`] with an [`ArmStats`] per arm and its [`Comparison`] with the control.
//! - [`stats`]: [`wilson_interval`] and [`two_proportion_test`], pure functions.
//!
//! # Defaults
//!
//! Window 10 minutes in 10 one-minute sub-buckets (the drift crate's windowing); control arm
//! `stable`; at least 200 window impressions in both arms before a difference is significant;
//! confidence 0.95 (intervals at 95 %, significant at p < 0.05).
//!
//! # Usage
//!
//! ```
//! use recserve_online::{ArmKey, Event, OnlineConfig, OnlineMetrics};
//!
//! let metrics = OnlineMetrics::new(OnlineConfig::default())?;
//! let stable = ArmKey::new("home", "ranker", "stable", "3");
//! let canary = ArmKey::new("home", "ranker", "canary", "4");
//!
//! // In the recommendation handler (times in ms): 500 requests of 10 items per arm.
//! for i in 0..500u64 {
//!     metrics.record_request(&stable, 1_000 + i, 10);
//!     metrics.record_request(&canary, 1_000 + i, 10);
//! }
//! // In the feedback handler: 5 % CTR on stable, 2 % on the canary.
//! for i in 0..250u64 {
//!     metrics.record_event(&stable, Event::Click, 0.0, 2_000 + i);
//! }
//! for i in 0..100u64 {
//!     metrics.record_event(&canary, Event::Click, 0.0, 2_000 + i);
//! }
//! metrics.record_event(&canary, Event::Purchase, 19.99, 2_500);
//!
//! let snapshot = metrics.snapshot_at(3_000);
//! let canary = snapshot.arms.iter().find(|a| a.key.arm == "canary").expect("canary");
//! assert_eq!((canary.window.impressions, canary.window.clicks, canary.totals.purchases), (5_000, 100, 1));
//! assert_eq!(canary.ctr, Some(0.02));
//! let vs = canary.vs_control.as_ref().expect("compared with stable");
//! assert!(vs.significant && vs.ctr_lift.expect("lift") < -0.5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod metrics;
pub mod stats;
mod window;

pub use metrics::{
    ArmKey, ArmStats, Comparison, ConfigError, Counts, Event, OnlineConfig, OnlineMetrics, OnlineSnapshot,
};
pub use stats::{TestResult, two_proportion_test, wilson_interval, z_for_confidence};
