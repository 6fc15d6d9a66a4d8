//! Rule evaluation with Prometheus's alert states, over the embedded series store.
//!
//! This module owns [`Evaluator`]: the loaded groups, the active alerts of each alerting rule
//! and the health of each rule. [`Evaluator::evaluate_at`] evaluates every group that is due at
//! a given time (the manual clock of the tests; the task driver in [`crate::Alerting`] passes
//! the wall clock). Semantics follow Prometheus's `rules/alerting.go`:
//!
//! - a new result is *pending*; it fires once it has been active for `for` (at once with no
//!   `for`); a pending alert whose series disappears is dropped;
//! - a firing alert whose series disappears stays firing for `keep_firing_for`, then becomes
//!   inactive (*resolved*) and is kept, and re-sent, for 15 minutes;
//! - labels are the series labels without `__name__`, then the rule's labels (templates), then
//!   `alertname`; annotations are templates over `$labels` and `$value`; a template that fails
//!   marks the rule's health `err` and the annotation carries the error;
//! - `ALERTS{alertname, alertstate, …} 1` and `ALERTS_FOR_STATE{…} <activeAt seconds>` are
//!   written for each pending or firing alert, with staleness markers when they end;
//! - alerts are handed to the notifier when they fire, resolve, or every `resend_delay` while
//!   they last (firing alerts with `endsAt` = 4 × max(resend delay, interval) ahead);
//! - recording rules write their result under the record name.
//!
//! Reloading keeps the state of rules that still exist (matched by group file and name, then
//! by rule name and position among rules of that name), like Prometheus's `CopyState`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use recserve_telemetry::labels::METRIC_NAME;
use recserve_telemetry::promql::{self, Sample, Value};
use recserve_telemetry::store::stale_nan;
use recserve_telemetry::{LabelSet, SeriesStore};
use serde::{Deserialize, Serialize};

use crate::notify::NotifyAlert;
use crate::rules::{Rule, RuleFiles, RuleGroup, RuleKind};
use crate::template::{TemplateData, go_e};
use crate::time::rfc3339;

/// How long a resolved alert is kept (and re-sent), as in Prometheus.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Settings of the evaluator.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Interval of groups that set none (Prometheus's `evaluation_interval`; default 15 s).
    pub default_interval_ms: u64,
    /// How often an unchanged alert is re-sent to the notifier (Prometheus's
    /// `--rules.alert.resend-delay`, default 1 m).
    pub resend_delay_ms: u64,
    /// The URL alerts link back to (`generatorURL` = this + `/graph?g0.expr=…`).
    pub external_url: String,
    /// `$externalLabels` in templates.
    pub external_labels: LabelSet,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            default_interval_ms: 15_000,
            resend_delay_ms: 60_000,
            external_url: "http://localhost:8000".into(),
            external_labels: LabelSet::new(),
        }
    }
}

/// The state of one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Resolved (kept for 15 minutes after it stopped firing).
    Inactive,
    /// Active, `for` not yet elapsed.
    Pending,
    /// Firing.
    Firing,
}

impl AlertState {
    /// The Prometheus name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// Health of a rule, as in `/api/v1/rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleHealth {
    /// Not evaluated yet.
    Unknown,
    /// Last evaluation succeeded.
    Ok,
    /// Last evaluation failed (see the last error).
    Err,
}

/// One active (pending, firing, or recently resolved) alert of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Final labels (series labels, rule labels, `alertname`).
    pub labels: BTreeMap<String, String>,
    /// Expanded annotations.
    pub annotations: BTreeMap<String, String>,
    /// State.
    pub state: AlertState,
    /// The sample value of the last evaluation that returned it.
    pub value: f64,
    /// When it became active (unix ms).
    pub active_at: i64,
    /// When it started firing.
    pub fired_at: Option<i64>,
    /// When it resolved.
    pub resolved_at: Option<i64>,
    /// Since when it is kept firing by `keep_firing_for`.
    pub keep_firing_since: Option<i64>,
    /// When it was last handed to the notifier.
    pub last_sent_at: Option<i64>,
    /// `endsAt` given to Alertmanager while firing.
    pub valid_until: i64,
}

/// An alert saved across restarts, with the rule it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedAlert {
    /// The group's file.
    pub file: String,
    /// The group.
    pub group: String,
    /// The rule (alert name).
    pub rule: String,
    /// The alert.
    pub alert: Alert,
}

#[derive(Debug)]
struct RuleState {
    rule: Rule,
    active: HashMap<LabelSet, Alert>,
    health: RuleHealth,
    last_error: Option<String>,
    last_eval: Option<i64>,
    eval_seconds: f64,
    /// Series written by the last successful evaluation (for staleness markers).
    written: HashSet<LabelSet>,
}

impl RuleState {
    fn new(rule: Rule) -> Self {
        Self {
            rule,
            active: HashMap::new(),
            health: RuleHealth::Unknown,
            last_error: None,
            last_eval: None,
            eval_seconds: 0.0,
            written: HashSet::new(),
        }
    }
}

#[derive(Debug)]
struct GroupState {
    group: RuleGroup,
    interval_ms: u64,
    rules: Vec<RuleState>,
    last_eval: Option<i64>,
    eval_seconds: f64,
}

/// What one evaluation hands on: the alerts to notify, each with the group it came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalOutput {
    /// Alerts to send (firing, newly resolved, or due for a re-send).
    pub to_send: Vec<NotifyAlert>,
    /// Whether any alert changed state, appeared or disappeared (persist when true).
    pub state_changed: bool,
    /// Groups evaluated.
    pub groups_evaluated: usize,
    /// Alerts that started firing in this evaluation (once per firing episode; an alert
    /// restored as firing after a restart is not in here again).
    pub fired: Vec<Alert>,
}

/// The rule evaluator.
pub struct Evaluator {
    store: Arc<SeriesStore>,
    config: EvalConfig,
    groups: Vec<GroupState>,
    latest_t: i64,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator").field("groups", &self.groups.len()).field("config", &self.config).finish()
    }
}

fn to_map(l: &LabelSet) -> BTreeMap<String, String> {
    l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The label set of a map.
pub fn to_labelset(m: &BTreeMap<String, String>) -> LabelSet {
    LabelSet::from_pairs(m.iter().map(|(k, v)| (k.clone(), v.clone())))
}

/// `application/x-www-form-urlencoded` escaping (Go's `url.QueryEscape`).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn build_groups(files: RuleFiles, config: &EvalConfig) -> Vec<GroupState> {
    files
        .groups
        .into_iter()
        .map(|g| GroupState {
            interval_ms: g.interval_ms.unwrap_or(config.default_interval_ms).max(1),
            rules: g.rules.iter().cloned().map(RuleState::new).collect(),
            group: g,
            last_eval: None,
            eval_seconds: 0.0,
        })
        .collect()
}

impl Evaluator {
    /// An evaluator over `store` running `files`.
    pub fn new(files: RuleFiles, store: Arc<SeriesStore>, config: EvalConfig) -> Self {
        let groups = build_groups(files, &config);
        Self { store, config, groups, latest_t: 0 }
    }

    /// The settings.
    pub fn config(&self) -> &EvalConfig {
        &self.config
    }

    /// Replaces the rules, keeping the state of rules that still exist; the series of rules
    /// that are gone get staleness markers.
    pub fn reload(&mut self, files: RuleFiles) {
        let mut new_groups = build_groups(files, &self.config);
        let mut old: Vec<GroupState> = std::mem::take(&mut self.groups);
        for ng in &mut new_groups {
            let Some(oi) = old.iter().position(|o| o.group.file == ng.group.file && o.group.name == ng.group.name)
            else {
                continue;
            };
            let og = &mut old[oi];
            ng.last_eval = og.last_eval;
            ng.eval_seconds = og.eval_seconds;
            let mut seen: HashMap<(RuleKind, String), usize> = HashMap::new();
            for nr in &mut ng.rules {
                let key = (nr.rule.kind, nr.rule.name.clone());
                let nth = *seen.entry(key.clone()).and_modify(|n| *n += 1).or_insert(0);
                let Some(or) = og.rules.iter_mut().filter(|r| r.rule.kind == key.0 && r.rule.name == key.1).nth(nth)
                else {
                    continue;
                };
                nr.active = std::mem::take(&mut or.active);
                nr.written = std::mem::take(&mut or.written);
                nr.health = or.health;
                nr.last_error = or.last_error.take();
                nr.last_eval = or.last_eval;
                nr.eval_seconds = or.eval_seconds;
            }
        }
        // Whatever was not carried over is gone: end its series.
        let t = self.latest_t + 1;
        let stale: Vec<(LabelSet, i64, f64)> = old
            .iter()
            .flat_map(|g| g.rules.iter())
            .flat_map(|r| r.written.iter())
            .map(|l| (l.clone(), t, stale_nan()))
            .collect();
        if !stale.is_empty() {
            self.store.append(&stale);
        }
        self.groups = new_groups;
    }

    /// Restores alerts saved by an earlier process (see [`Evaluator::persisted`]). Alerts of
    /// rules that no longer exist are ignored. Restored alerts are re-sent at the next evaluation.
    pub fn restore(&mut self, alerts: Vec<PersistedAlert>) -> usize {
        let mut restored = 0;
        for p in alerts {
            let rule = self
                .groups
                .iter_mut()
                .filter(|g| g.group.file == p.file && g.group.name == p.group)
                .flat_map(|g| g.rules.iter_mut())
                .find(|r| r.rule.kind == RuleKind::Alerting && r.rule.name == p.rule);
            if let Some(r) = rule {
                let mut a = p.alert;
                a.last_sent_at = None;
                r.active.insert(to_labelset(&a.labels), a);
                restored += 1;
            }
        }
        restored
    }

    /// Replaces every active alert with `alerts` (a replica following the one that evaluates,
    /// or taking over from it); returns how many matched a loaded rule.
    pub fn replace_active(&mut self, alerts: Vec<PersistedAlert>) -> usize {
        for g in &mut self.groups {
            for r in &mut g.rules {
                r.active.clear();
            }
        }
        self.restore(alerts)
    }

    /// Every active alert with its rule, for persistence.
    pub fn persisted(&self) -> Vec<PersistedAlert> {
        let mut out = Vec::new();
        for g in &self.groups {
            for r in &g.rules {
                for a in r.active.values() {
                    out.push(PersistedAlert {
                        file: g.group.file.clone(),
                        group: g.group.name.clone(),
                        rule: r.rule.name.clone(),
                        alert: a.clone(),
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.file, &a.group, &a.rule, &a.alert.labels).cmp(&(&b.file, &b.group, &b.rule, &b.alert.labels))
        });
        out
    }

    /// Evaluates every group that is due at `t_ms` (never evaluated, or its interval elapsed
    /// since its last evaluation).
    pub fn evaluate_at(&mut self, t_ms: i64) -> EvalOutput {
        let mut out = EvalOutput::default();
        for gi in 0..self.groups.len() {
            let g = &self.groups[gi];
            let due = g.last_eval.is_none_or(|last| t_ms - last >= g.interval_ms as i64);
            if due {
                self.evaluate_group(gi, t_ms, &mut out);
            }
        }
        out
    }

    /// When the next group is due (unix ms), `None` without groups.
    pub fn next_due(&self) -> Option<i64> {
        self.groups.iter().map(|g| g.last_eval.map_or(i64::MIN, |l| l + g.interval_ms as i64)).min()
    }

    fn evaluate_group(&mut self, gi: usize, t: i64, out: &mut EvalOutput) {
        self.latest_t = self.latest_t.max(t);
        let started = Instant::now();
        let store = self.store.clone();
        let config = self.config.clone();
        let g = &mut self.groups[gi];
        let interval = g.interval_ms;
        let limit = g.group.limit;
        for r in &mut g.rules {
            let rule_started = Instant::now();
            let result = match r.rule.kind {
                RuleKind::Recording => eval_recording(&store, r, t),
                RuleKind::Alerting => eval_alerting(&store, &config, r, t, interval, limit, out),
            };
            match result {
                Ok(template_error) => {
                    r.health = if template_error.is_some() { RuleHealth::Err } else { RuleHealth::Ok };
                    r.last_error = template_error;
                }
                Err(e) => {
                    r.health = RuleHealth::Err;
                    r.last_error = Some(e);
                }
            }
            r.last_eval = Some(t);
            r.eval_seconds = rule_started.elapsed().as_secs_f64();
        }
        g.last_eval = Some(t);
        g.eval_seconds = started.elapsed().as_secs_f64();
        out.groups_evaluated += 1;
    }

    /// The alerts of every rule (pending and firing; resolved ones too when `include_resolved`).
    pub fn alerts(&self, include_resolved: bool) -> Vec<(String, Alert)> {
        let mut out: Vec<(String, Alert)> = self
            .groups
            .iter()
            .flat_map(|g| g.rules.iter())
            .flat_map(|r| r.active.values().map(move |a| (r.rule.name.clone(), a.clone())))
            .filter(|(_, a)| include_resolved || a.state != AlertState::Inactive)
            .collect();
        out.sort_by(|a, b| a.1.labels.cmp(&b.1.labels));
        out
    }

    /// The `/api/v1/rules` view.
    pub fn rules_view(&self) -> RulesData {
        let groups = self
            .groups
            .iter()
            .map(|g| GroupView {
                name: g.group.name.clone(),
                file: g.group.file.clone(),
                interval: g.interval_ms as f64 / 1000.0,
                limit: g.group.limit,
                evaluation_time: g.eval_seconds,
                last_evaluation: g.last_eval.map_or_else(|| crate::time::ZERO_TIME.to_string(), rfc3339),
                rules: g.rules.iter().map(rule_view).collect(),
            })
            .collect();
        RulesData { groups }
    }

    /// The `/api/v1/alerts` view (pending and firing alerts).
    pub fn alerts_view(&self) -> AlertsData {
        AlertsData { alerts: self.alerts(false).into_iter().map(|(_, a)| alert_view(&a)).collect() }
    }
}

fn static_labels(rule: &Rule) -> BTreeMap<String, String> {
    rule.labels.iter().map(|(k, t)| (k.clone(), t.source().to_string())).collect()
}

fn rule_view(r: &RuleState) -> RuleView {
    let common = |kind: &'static str| RuleViewCommon {
        name: r.rule.name.clone(),
        query: r.rule.expr.clone(),
        labels: static_labels(&r.rule),
        health: r.health,
        last_error: r.last_error.clone().unwrap_or_default(),
        evaluation_time: r.eval_seconds,
        last_evaluation: r.last_eval.map_or_else(|| crate::time::ZERO_TIME.to_string(), rfc3339),
        kind,
    };
    match r.rule.kind {
        RuleKind::Recording => RuleView::Recording(common("recording")),
        RuleKind::Alerting => {
            let mut alerts: Vec<&Alert> = r.active.values().filter(|a| a.state != AlertState::Inactive).collect();
            alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
            let state = alerts.iter().map(|a| a.state).max_by_key(|s| *s as u8).unwrap_or(AlertState::Inactive);
            RuleView::Alerting(AlertingRuleView {
                state,
                duration: r.rule.for_ms as f64 / 1000.0,
                keep_firing_for: r.rule.keep_firing_for_ms as f64 / 1000.0,
                annotations: r.rule.annotations.iter().map(|(k, t)| (k.clone(), t.source().to_string())).collect(),
                alerts: alerts.into_iter().map(alert_view).collect(),
                common: common("alerting"),
            })
        }
    }
}

fn alert_view(a: &Alert) -> AlertView {
    AlertView {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        state: a.state,
        active_at: rfc3339(a.active_at),
        keep_firing_since: a.keep_firing_since.map(rfc3339),
        value: go_e(a.value),
    }
}

fn into_samples(v: Value) -> Result<Vec<Sample>, String> {
    match v {
        Value::Vector(v) => Ok(v),
        Value::Scalar(s) => Ok(vec![Sample { labels: LabelSet::new(), value: s }]),
        other => Err(format!("rule result is not a vector or scalar: got a {}", other.type_name())),
    }
}

fn write_series(store: &SeriesStore, r: &mut RuleState, samples: Vec<(LabelSet, i64, f64)>, t: i64) {
    let now: HashSet<LabelSet> = samples.iter().map(|s| s.0.clone()).collect();
    let mut all = samples;
    for gone in r.written.difference(&now) {
        all.push((gone.clone(), t, stale_nan()));
    }
    store.append(&all);
    r.written = now;
}

fn eval_recording(store: &SeriesStore, r: &mut RuleState, t: i64) -> Result<Option<String>, String> {
    let samples = into_samples(promql::instant_query(store, &r.rule.expr, t).map_err(|e| e.to_string())?)?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(samples.len());
    for s in samples {
        let mut l = s.labels;
        l.insert(METRIC_NAME.to_string(), r.rule.name.clone());
        for (k, tmpl) in &r.rule.labels {
            l.insert(k.clone(), tmpl.source().to_string());
        }
        if !seen.insert(l.clone()) {
            return Err("vector contains metrics with the same labelset after applying rule labels".into());
        }
        out.push((l, t, s.value));
    }
    write_series(store, r, out, t);
    Ok(None)
}

#[allow(clippy::too_many_arguments)]
fn eval_alerting(
    store: &SeriesStore,
    config: &EvalConfig,
    r: &mut RuleState,
    t: i64,
    interval_ms: u64,
    limit: usize,
    out: &mut EvalOutput,
) -> Result<Option<String>, String> {
    let samples = into_samples(promql::instant_query(store, &r.rule.expr, t).map_err(|e| e.to_string())?)?;
    let mut template_error: Option<String> = None;
    let mut results: HashMap<LabelSet, (BTreeMap<String, String>, f64)> = HashMap::new();
    for s in samples {
        let data = TemplateData {
            labels: &s.labels,
            value: s.value,
            external_labels: &config.external_labels,
            external_url: &config.external_url,
        };
        let mut expand = |text: &crate::template::Template| match text.expand(&data) {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("error expanding template: {e}");
                template_error.get_or_insert_with(|| msg.clone());
                format!("<{msg}>")
            }
        };
        let mut labels = s.labels.without_name();
        for (k, tmpl) in &r.rule.labels {
            let v = expand(tmpl);
            labels.insert(k.clone(), v);
        }
        labels.insert("alertname".to_string(), r.rule.name.clone());
        let annotations: BTreeMap<String, String> =
            r.rule.annotations.iter().map(|(k, tmpl)| (k.clone(), expand(tmpl))).collect();
        if results.insert(labels, (annotations, s.value)).is_some() {
            return Err("vector contains metrics with the same labelset after applying alert labels".into());
        }
    }

    for (labels, (annotations, value)) in &results {
        match r.active.get_mut(labels) {
            Some(a) if a.state != AlertState::Inactive => {
                a.value = *value;
                a.annotations = annotations.clone();
            }
            _ => {
                r.active.insert(
                    labels.clone(),
                    Alert {
                        labels: to_map(labels),
                        annotations: annotations.clone(),
                        state: AlertState::Pending,
                        value: *value,
                        active_at: t,
                        fired_at: None,
                        resolved_at: None,
                        keep_firing_since: None,
                        last_sent_at: None,
                        valid_until: 0,
                    },
                );
                out.state_changed = true;
            }
        }
    }

    let hold = r.rule.for_ms as i64;
    let keep_for = r.rule.keep_firing_for_ms as i64;
    let mut remove = Vec::new();
    let mut series = Vec::new();
    let mut active_count = 0;
    for (key, a) in r.active.iter_mut() {
        if !results.contains_key(key) {
            let mut keep_firing = false;
            if a.state == AlertState::Firing && keep_for > 0 {
                let since = *a.keep_firing_since.get_or_insert(t);
                keep_firing = t - since < keep_for;
            }
            if a.state == AlertState::Pending || a.resolved_at.is_some_and(|at| t - at > RESOLVED_RETENTION_MS) {
                remove.push(key.clone());
                out.state_changed = true;
            }
            if a.state != AlertState::Inactive && !keep_firing {
                a.state = AlertState::Inactive;
                a.resolved_at = Some(t);
                a.keep_firing_since = None;
                out.state_changed = true;
            }
            if !keep_firing {
                continue;
            }
        } else {
            a.keep_firing_since = None;
        }
        active_count += 1;
        if a.state == AlertState::Pending && t - a.active_at >= hold {
            a.state = AlertState::Firing;
            a.fired_at = Some(t);
            out.state_changed = true;
            out.fired.push(a.clone());
        }
        let mut l = key.clone();
        l.insert(METRIC_NAME.to_string(), "ALERTS".to_string());
        l.insert("alertstate".to_string(), a.state.as_str().to_string());
        series.push((l, t, 1.0));
        let mut l = key.clone();
        l.insert(METRIC_NAME.to_string(), "ALERTS_FOR_STATE".to_string());
        series.push((l, t, (a.active_at / 1000) as f64));
    }
    for k in remove {
        r.active.remove(&k);
    }
    if limit > 0 && active_count > limit {
        r.active.clear();
        write_series(store, r, Vec::new(), t);
        out.state_changed = true;
        return Err(format!("exceeded limit of {limit} with {active_count} alerts"));
    }
    write_series(store, r, series, t);

    // Hand on what needs sending (Prometheus's needsSending / sendAlerts).
    let resend = config.resend_delay_ms as i64;
    let delta = resend.max(interval_ms as i64);
    let generator_url =
        format!("{}/graph?g0.expr={}&g0.tab=1", config.external_url.trim_end_matches('/'), query_escape(&r.rule.expr));
    for (key, a) in r.active.iter_mut() {
        if a.state == AlertState::Pending {
            continue;
        }
        let needs = match a.last_sent_at {
            None => true,
            Some(last) => a.resolved_at.is_some_and(|res| res > last) || last + resend < t,
        };
        if !needs {
            continue;
        }
        a.last_sent_at = Some(t);
        a.valid_until = t + 4 * delta;
        out.to_send.push(NotifyAlert {
            labels: key.clone(),
            annotations: a.annotations.clone(),
            starts_at: a.fired_at.unwrap_or(a.active_at),
            ends_at: Some(a.resolved_at.unwrap_or(a.valid_until)),
            generator_url: generator_url.clone(),
        });
    }
    Ok(template_error)
}

/// `/api/v1/alerts` `data`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertsData {
    /// Pending and firing alerts.
    pub alerts: Vec<AlertView>,
}

/// One alert as `/api/v1/alerts` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// `pending` or `firing`.
    pub state: AlertState,
    /// RFC 3339.
    pub active_at: String,
    /// RFC 3339, only while kept firing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_firing_since: Option<String>,
    /// The value as Go's `%e` (`"1e+00"`).
    pub value: String,
}

/// `/api/v1/rules` `data`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RulesData {
    /// Groups in load order.
    pub groups: Vec<GroupView>,
}

/// One group as `/api/v1/rules` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    /// Name.
    pub name: String,
    /// File.
    pub file: String,
    /// Rules.
    pub rules: Vec<RuleView>,
    /// Seconds.
    pub interval: f64,
    /// Alert limit (0: none).
    pub limit: usize,
    /// Seconds the last evaluation took.
    pub evaluation_time: f64,
    /// RFC 3339 (zero time when never evaluated).
    pub last_evaluation: String,
}

/// One rule as `/api/v1/rules` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RuleView {
    /// An alerting rule.
    Alerting(AlertingRuleView),
    /// A recording rule.
    Recording(RuleViewCommon),
}

/// The fields every rule view has.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleViewCommon {
    /// Alert or record name.
    pub name: String,
    /// The expression.
    pub query: String,
    /// Labels (as written).
    pub labels: BTreeMap<String, String>,
    /// `ok`, `err`, `unknown`.
    pub health: RuleHealth,
    /// Empty when healthy.
    pub last_error: String,
    /// Seconds the last evaluation took.
    pub evaluation_time: f64,
    /// RFC 3339.
    pub last_evaluation: String,
    /// `alerting` or `recording`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// An alerting rule as `/api/v1/rules` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertingRuleView {
    /// The highest state of its alerts.
    pub state: AlertState,
    /// `for` in seconds.
    pub duration: f64,
    /// `keep_firing_for` in seconds.
    pub keep_firing_for: f64,
    /// Annotations (as written).
    pub annotations: BTreeMap<String, String>,
    /// Its pending and firing alerts.
    pub alerts: Vec<AlertView>,
    /// Name, query, health…
    #[serde(flatten)]
    pub common: RuleViewCommon,
}
