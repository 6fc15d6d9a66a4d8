//! The notifier: Alertmanager's grouping, timers, deduplication and silencing, and its payloads.
//!
//! This module owns [`NotifyAlert`] (an alert as the evaluator hands it on), [`RouteConfig`]
//! (`group_by`, `group_wait`, `group_interval`, `repeat_interval`, `send_resolved`),
//! [`Dispatcher`] (a synchronous state machine driven by a clock, so tests control time) and
//! the wire shapes: [`WebhookPayload`] (Alertmanager's webhook, version 4) and [`PostableAlert`]
//! (Alertmanager's `POST /api/v2/alerts`). Delivery, retries and the notification log are in
//! [`crate::delivery`].
//!
//! Semantics follow Alertmanager's `dispatch` and `notify` packages: alerts are grouped by the
//! values of the `group_by` labels (`...` groups by all labels); a new group is flushed after
//! `group_wait`, then every `group_interval`; a flush notifies when a firing alert is new to
//! the receiver, when alerts resolved (with `send_resolved`), when everything resolved, or when
//! `repeat_interval` passed; alerts muted by a silence are left out (if all of a group's alerts
//! are muted nothing is sent); resolved alerts leave the group after the flush that saw them.
//! A firing alert's `endsAt` in the payload is the zero time, as in Alertmanager.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use recserve_telemetry::LabelSet;
use serde::{Deserialize, Serialize};

use crate::time::{ZERO_TIME, rfc3339};

/// An alert handed from the evaluator to the notifier.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyAlert {
    /// Labels (with `alertname`).
    pub labels: LabelSet,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it started firing (unix ms).
    pub starts_at: i64,
    /// When it resolved, or until when it is valid while firing (unix ms).
    pub ends_at: Option<i64>,
    /// Link back to the expression.
    pub generator_url: String,
}

/// Prometheus's label-set fingerprint (FNV-1a 64 over sorted names and values, 0xff separated).
pub fn fingerprint(labels: &LabelSet) -> u64 {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut h = OFFSET;
    let mut add = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    };
    for (k, v) in labels.iter() {
        k.bytes().for_each(&mut add);
        add(0xff);
        v.bytes().for_each(&mut add);
        add(0xff);
    }
    h
}

impl NotifyAlert {
    /// Whether it is resolved at `now_ms`.
    pub fn is_resolved(&self, now_ms: i64) -> bool {
        self.ends_at.is_some_and(|e| e <= now_ms)
    }

    /// The fingerprint as Alertmanager prints it (16 hex digits).
    pub fn fingerprint_hex(&self) -> String {
        format!("{:016x}", fingerprint(&self.labels))
    }

    /// The shape of `POST /api/v2/alerts`.
    pub fn postable(&self) -> PostableAlert {
        PostableAlert {
            labels: self.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            annotations: self.annotations.clone(),
            starts_at: rfc3339(self.starts_at),
            ends_at: self.ends_at.map(rfc3339),
            generator_url: self.generator_url.clone(),
        }
    }
}

/// One alert of `POST /api/v2/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// Link back.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// One alert of the webhook payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339; the zero time while firing.
    pub ends_at: String,
    /// Link back.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// 16 hex digits.
    pub fingerprint: String,
}

/// Alertmanager's webhook payload, version 4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// Receiver name.
    pub receiver: String,
    /// `firing` when any alert fires, else `resolved`.
    pub status: String,
    /// The alerts.
    pub alerts: Vec<WebhookAlert>,
    /// The group's labels.
    pub group_labels: BTreeMap<String, String>,
    /// Labels all alerts share.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations all alerts share.
    pub common_annotations: BTreeMap<String, String>,
    /// Link to the sender.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// `"4"`.
    pub version: String,
    /// `{}:{alertname="…"}`.
    pub group_key: String,
    /// Alerts left out (always 0: no limit).
    pub truncated_alerts: u64,
}

/// Routing and timers (one route; Alertmanager's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// Receiver name in payloads.
    pub receiver: String,
    /// Labels to group by (`...`: all labels).
    pub group_by: Vec<String>,
    /// Wait before the first notification of a new group (30 s).
    pub group_wait_ms: u64,
    /// Wait between notifications of a group (5 m).
    pub group_interval_ms: u64,
    /// Re-notify an unchanged group after this (4 h).
    pub repeat_interval_ms: u64,
    /// Notify resolutions (true).
    pub send_resolved: bool,
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self {
            receiver: "recserve".into(),
            group_by: vec!["alertname".into()],
            group_wait_ms: 30_000,
            group_interval_ms: 300_000,
            repeat_interval_ms: 4 * 3600 * 1000,
            send_resolved: true,
        }
    }
}

#[derive(Debug)]
struct Group {
    labels: LabelSet,
    alerts: BTreeMap<LabelSet, NotifyAlert>,
    next_flush: i64,
    has_flushed: bool,
}

/// What a notification group was last notified of (Alertmanager's notification log): the
/// fingerprints of its firing and resolved alerts and when. Persisted so that a replica taking
/// over evaluation does not notify again what its predecessor already sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NflogEntry {
    pub firing: BTreeSet<u64>,
    pub resolved: BTreeSet<u64>,
    pub at: i64,
}

/// Alertmanager's dispatcher for one route, driven by explicit times.
#[derive(Debug)]
pub struct Dispatcher {
    route: RouteConfig,
    external_url: String,
    groups: BTreeMap<LabelSet, Group>,
    nflog: HashMap<String, NflogEntry>,
}

fn labels_map(l: &LabelSet) -> BTreeMap<String, String> {
    l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn common<'a>(maps: impl Iterator<Item = &'a BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut out: Option<BTreeMap<String, String>> = None;
    for m in maps {
        out = Some(match out {
            None => m.clone(),
            Some(mut acc) => {
                acc.retain(|k, v| m.get(k) == Some(v));
                acc
            }
        });
    }
    out.unwrap_or_default()
}

impl Dispatcher {
    /// A dispatcher for `route`; payloads carry `external_url`.
    pub fn new(route: RouteConfig, external_url: String) -> Self {
        Self { route, external_url, groups: BTreeMap::new(), nflog: HashMap::new() }
    }

    /// The route.
    pub fn route(&self) -> &RouteConfig {
        &self.route
    }

    fn group_labels(&self, labels: &LabelSet) -> LabelSet {
        if self.route.group_by.iter().any(|g| g == "...") {
            return labels.clone();
        }
        let mut l = labels.clone();
        l.keep_only(&self.route.group_by);
        l
    }

    /// The group key Alertmanager would print: `{}:{alertname="X"}`.
    pub fn group_key(group_labels: &LabelSet) -> String {
        format!("{{}}:{group_labels}")
    }

    /// Takes alerts from the evaluator at `now_ms`.
    pub fn put(&mut self, alerts: &[NotifyAlert], now_ms: i64) {
        let wait = self.route.group_wait_ms as i64;
        for a in alerts {
            let key = self.group_labels(&a.labels);
            let g = self.groups.entry(key.clone()).or_insert_with(|| Group {
                labels: key,
                alerts: BTreeMap::new(),
                next_flush: now_ms + wait,
                has_flushed: false,
            });
            let mut a = a.clone();
            if let Some(old) = g.alerts.get(&a.labels)
                && !old.is_resolved(now_ms)
            {
                a.starts_at = a.starts_at.min(old.starts_at);
            }
            if !g.has_flushed && a.starts_at + wait < now_ms {
                g.next_flush = g.next_flush.min(now_ms);
            }
            g.alerts.insert(a.labels.clone(), a);
        }
    }

    /// The notification log by group key.
    pub fn nflog(&self) -> BTreeMap<String, NflogEntry> {
        self.nflog.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Replaces the notification log (a replica taking over from another).
    pub fn restore_nflog(&mut self, entries: BTreeMap<String, NflogEntry>) {
        self.nflog = entries.into_iter().collect();
    }

    /// When the next group flush is due.
    pub fn next_flush(&self) -> Option<i64> {
        self.groups.values().map(|g| g.next_flush).min()
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    fn needs_update(
        &self,
        entry: Option<&NflogEntry>,
        firing: &BTreeSet<u64>,
        resolved: &BTreeSet<u64>,
        now: i64,
    ) -> bool {
        let Some(e) = entry else {
            return !firing.is_empty();
        };
        if !firing.is_subset(&e.firing) {
            return true;
        }
        if firing.is_empty() {
            return !e.firing.is_empty();
        }
        if self.route.send_resolved && !resolved.is_subset(&e.resolved) {
            return true;
        }
        e.at + (self.route.repeat_interval_ms as i64) <= now
    }

    /// Flushes every group that is due at `now_ms`; `muted` says whether a silence mutes an
    /// alert. Returns the webhook payloads to deliver, in group order.
    pub fn flush(&mut self, now_ms: i64, muted: &dyn Fn(&LabelSet) -> bool) -> Vec<WebhookPayload> {
        let due: Vec<LabelSet> =
            self.groups.iter().filter(|(_, g)| g.next_flush <= now_ms).map(|(k, _)| k.clone()).collect();
        let mut out = Vec::new();
        for key in due {
            let Some(g) = self.groups.get_mut(&key) else { continue };
            g.next_flush = now_ms + self.route.group_interval_ms as i64;
            g.has_flushed = true;
            let visible: Vec<NotifyAlert> = g.alerts.values().filter(|a| !muted(&a.labels)).cloned().collect();
            let resolved_now: Vec<LabelSet> =
                g.alerts.values().filter(|a| a.is_resolved(now_ms)).map(|a| a.labels.clone()).collect();
            let group_labels = g.labels.clone();
            let group_key = Self::group_key(&group_labels);
            if !visible.is_empty() {
                let firing: BTreeSet<u64> =
                    visible.iter().filter(|a| !a.is_resolved(now_ms)).map(|a| fingerprint(&a.labels)).collect();
                let resolved: BTreeSet<u64> =
                    visible.iter().filter(|a| a.is_resolved(now_ms)).map(|a| fingerprint(&a.labels)).collect();
                if self.needs_update(self.nflog.get(&group_key), &firing, &resolved, now_ms) {
                    self.nflog.insert(group_key.clone(), NflogEntry { firing, resolved, at: now_ms });
                    let to_send: Vec<&NotifyAlert> =
                        visible.iter().filter(|a| self.route.send_resolved || !a.is_resolved(now_ms)).collect();
                    if !to_send.is_empty() {
                        out.push(self.payload(&group_labels, &group_key, &to_send, now_ms));
                    }
                }
            }
            if let Some(g) = self.groups.get_mut(&key) {
                for l in resolved_now {
                    g.alerts.remove(&l);
                }
                if g.alerts.is_empty() {
                    self.groups.remove(&key);
                }
            }
        }
        out
    }

    fn payload(&self, group_labels: &LabelSet, group_key: &str, alerts: &[&NotifyAlert], now: i64) -> WebhookPayload {
        let alerts: Vec<WebhookAlert> = alerts
            .iter()
            .map(|a| {
                let resolved = a.is_resolved(now);
                WebhookAlert {
                    status: if resolved { "resolved" } else { "firing" }.into(),
                    labels: labels_map(&a.labels),
                    annotations: a.annotations.clone(),
                    starts_at: rfc3339(a.starts_at),
                    ends_at: match (resolved, a.ends_at) {
                        (true, Some(e)) => rfc3339(e),
                        _ => ZERO_TIME.into(),
                    },
                    generator_url: a.generator_url.clone(),
                    fingerprint: a.fingerprint_hex(),
                }
            })
            .collect();
        let any_firing = alerts.iter().any(|a| a.status == "firing");
        WebhookPayload {
            receiver: self.route.receiver.clone(),
            status: if any_firing { "firing" } else { "resolved" }.into(),
            group_labels: labels_map(group_labels),
            common_labels: common(alerts.iter().map(|a| &a.labels)),
            common_annotations: common(alerts.iter().map(|a| &a.annotations)),
            external_url: self.external_url.clone(),
            version: "4".into(),
            group_key: group_key.to_string(),
            truncated_alerts: 0,
            alerts,
        }
    }
}
