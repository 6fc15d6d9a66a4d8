//! Silences: label matchers and a time window that mute matching alerts in the notifier.
//!
//! This module owns [`Silence`], [`Matcher`] and [`Silences`] (the set, with validation, expiry,
//! listing and persistence through [`crate::persist::AlertStatePersistence`]). Shapes follow
//! Alertmanager's API v2 (`matchers[{name, value, isRegex, isEqual}]`, `startsAt`, `endsAt`,
//! `createdBy`, `comment`, `status.state` = `pending|active|expired`). Regex matchers are fully
//! anchored, as in Alertmanager. A silence must have at least one matcher that does not match
//! the empty string (so it cannot silence everything by accident).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use recserve_telemetry::LabelSet;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::SilenceError;
use crate::time::{rfc3339, serde_rfc3339};

/// How long an expired silence is kept in the list (Alertmanager keeps 120 h).
pub const EXPIRED_RETENTION_MS: i64 = 120 * 3600 * 1000;

/// One label matcher (`=`, `!=`, `=~`, `!~`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Value or regular expression.
    pub value: String,
    /// `=~` / `!~`.
    #[serde(default)]
    pub is_regex: bool,
    /// `=` / `=~` (true) or `!=` / `!~` (false).
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl Matcher {
    /// `name="value"`.
    pub fn equal(name: &str, value: &str) -> Self {
        Self { name: name.into(), value: value.into(), is_regex: false, is_equal: true }
    }

    /// `name=~"regex"`.
    pub fn regex(name: &str, value: &str) -> Self {
        Self { name: name.into(), value: value.into(), is_regex: true, is_equal: true }
    }

    fn compile(&self) -> Result<CompiledMatcher, SilenceError> {
        let re = if self.is_regex {
            Some(
                Regex::new(&format!("^(?:{})$", self.value))
                    .map_err(|e| SilenceError::Invalid(format!("matcher {}: {e}", self.name)))?,
            )
        } else {
            None
        };
        Ok(CompiledMatcher { m: self.clone(), re })
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match (self.is_equal, self.is_regex) {
            (true, false) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (false, true) => "!~",
        };
        write!(f, "{}{op}{:?}", self.name, self.value)
    }
}

#[derive(Debug, Clone)]
struct CompiledMatcher {
    m: Matcher,
    re: Option<Regex>,
}

impl CompiledMatcher {
    fn matches_value(&self, v: &str) -> bool {
        let hit = match &self.re {
            Some(re) => re.is_match(v),
            None => self.m.value == v,
        };
        hit == self.m.is_equal
    }
}

/// A silence as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// Identifier.
    pub id: String,
    /// All must match for an alert to be muted.
    pub matchers: Vec<Matcher>,
    /// Start (unix ms; RFC 3339 in JSON).
    #[serde(with = "serde_rfc3339")]
    pub starts_at: i64,
    /// End (unix ms; RFC 3339 in JSON).
    #[serde(with = "serde_rfc3339")]
    pub ends_at: i64,
    /// Author.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Last change (unix ms; RFC 3339 in JSON).
    #[serde(with = "serde_rfc3339")]
    pub updated_at: i64,
}

/// What a caller gives to create a silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSilence {
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// Start (unix ms; RFC 3339 in JSON).
    #[serde(with = "serde_rfc3339")]
    pub starts_at: i64,
    /// End (unix ms; RFC 3339 in JSON).
    #[serde(with = "serde_rfc3339")]
    pub ends_at: i64,
    /// Author.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// `pending`, `active` or `expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Starts later.
    Pending,
    /// In force.
    Active,
    /// Over.
    Expired,
}

/// `status` of a silence in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SilenceStatus {
    /// The state.
    pub state: SilenceState,
}

/// A silence with its status (Alertmanager's `gettableSilence`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SilenceView {
    /// The silence.
    #[serde(flatten)]
    pub silence: Silence,
    /// Its state now.
    pub status: SilenceStatus,
}

impl Silence {
    /// The state at `now_ms`.
    pub fn state(&self, now_ms: i64) -> SilenceState {
        if now_ms >= self.ends_at {
            SilenceState::Expired
        } else if now_ms < self.starts_at {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    silence: Silence,
    matchers: Vec<CompiledMatcher>,
}

impl Entry {
    fn matches(&self, labels: &LabelSet) -> bool {
        self.matchers.iter().all(|m| m.matches_value(labels.get(&m.m.name).unwrap_or("")))
    }
}

/// The set of silences.
#[derive(Debug, Default)]
pub struct Silences {
    entries: std::sync::RwLock<BTreeMap<String, Entry>>,
    counter: AtomicU64,
}

fn validate(matchers: &[Matcher], starts_at: i64, ends_at: i64) -> Result<Vec<CompiledMatcher>, SilenceError> {
    if matchers.is_empty() {
        return Err(SilenceError::Invalid("at least one matcher is required".into()));
    }
    let compiled = matchers
        .iter()
        .map(|m| {
            if !crate::rules::is_valid_label_name(&m.name) {
                return Err(SilenceError::Invalid(format!("invalid label name {:?}", m.name)));
            }
            m.compile()
        })
        .collect::<Result<Vec<_>, _>>()?;
    if compiled.iter().all(|m| m.matches_value("")) {
        return Err(SilenceError::Invalid("at least one matcher must not match the empty string".into()));
    }
    if ends_at <= starts_at {
        return Err(SilenceError::Invalid(format!(
            "end time {} must be after start time {}",
            rfc3339(ends_at),
            rfc3339(starts_at)
        )));
    }
    Ok(compiled)
}

impl Silences {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a silence at `now_ms`; returns it with its new id. A start in the past is moved to now.
    pub fn add(&self, new: NewSilence, now_ms: i64) -> Result<Silence, SilenceError> {
        let starts_at = new.starts_at.max(now_ms);
        let matchers = validate(&new.matchers, starts_at, new.ends_at)?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:012x}-{:04x}-{n:08x}", now_ms, std::process::id() & 0xffff);
        let silence = Silence {
            id: id.clone(),
            matchers: new.matchers,
            starts_at,
            ends_at: new.ends_at,
            created_by: new.created_by,
            comment: new.comment,
            updated_at: now_ms,
        };
        self.write().insert(id, Entry { silence: silence.clone(), matchers });
        Ok(silence)
    }

    /// Ends a silence at `now_ms` (a pending one is ended before it starts).
    pub fn expire(&self, id: &str, now_ms: i64) -> Result<Silence, SilenceError> {
        let mut entries = self.write();
        let e = entries.get_mut(id).ok_or_else(|| SilenceError::NotFound(id.to_string()))?;
        match e.silence.state(now_ms) {
            SilenceState::Expired => return Err(SilenceError::AlreadyExpired(id.to_string())),
            SilenceState::Pending => e.silence.starts_at = now_ms,
            SilenceState::Active => {}
        }
        e.silence.ends_at = now_ms;
        e.silence.updated_at = now_ms;
        Ok(e.silence.clone())
    }

    /// Every silence with its state at `now_ms`, newest first; drops those expired for longer
    /// than [`EXPIRED_RETENTION_MS`].
    pub fn list(&self, now_ms: i64) -> Vec<SilenceView> {
        self.write().retain(|_, e| now_ms - e.silence.ends_at < EXPIRED_RETENTION_MS);
        let mut out: Vec<SilenceView> = self
            .read()
            .values()
            .map(|e| SilenceView {
                status: SilenceStatus { state: e.silence.state(now_ms) },
                silence: e.silence.clone(),
            })
            .collect();
        out.sort_by(|a, b| b.silence.updated_at.cmp(&a.silence.updated_at).then(a.silence.id.cmp(&b.silence.id)));
        out
    }

    /// The ids of the active silences that mute `labels` at `now_ms`.
    pub fn muting(&self, labels: &LabelSet, now_ms: i64) -> Vec<String> {
        self.read()
            .values()
            .filter(|e| e.silence.state(now_ms) == SilenceState::Active && e.matches(labels))
            .map(|e| e.silence.id.clone())
            .collect()
    }

    /// All silences (for persistence).
    pub fn snapshot(&self) -> Vec<Silence> {
        self.read().values().map(|e| e.silence.clone()).collect()
    }

    /// Replaces the set with saved silences (invalid ones are skipped with a warning).
    pub fn replace(&self, saved: Vec<Silence>) {
        self.write().clear();
        self.restore(saved);
    }

    /// Adds saved silences (replacing those with the same id).
    pub fn restore(&self, saved: Vec<Silence>) {
        let mut entries = self.write();
        for s in saved {
            match s.matchers.iter().map(Matcher::compile).collect::<Result<Vec<_>, _>>() {
                Ok(matchers) => {
                    entries.insert(s.id.clone(), Entry { silence: s, matchers });
                }
                Err(err) => tracing::warn!(%err, id = %s.id, "skipping a saved silence"),
            }
        }
    }
}
