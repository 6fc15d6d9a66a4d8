//! Deployments and traffic split: which versions of a model take traffic and in what share
//! (one stable arm, stable + canary, or an A/B test of 2–4 named arms), the transitions between
//! those states (start a canary or an A/B test, change the canary's share, promote, roll back),
//! and the deterministic, sticky choice of an arm for a request key.
//!
//! Everything here is pure: a transition returns a new [`Deployment`] or a [`DeployError`] that
//! says in a sentence what is wrong. The registry ([`crate::ModelRegistry::apply_deployment`])
//! loads the arms' versions through the validation gate and publishes the deployment; persisting
//! it is the caller's business (the type is serde-serialisable).
//!
//! Weights are basis points (1/100 of a percent); the arms of a deployment sum to
//! [`TOTAL_WEIGHT`]. A request key ([`route_key`]) is a fixed hash of the model name and the
//! subject (usually the user), so a user stays on one arm of a model across requests, processes
//! and restarts, while different models split users independently.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The sum of the arms' weights: weights are basis points of traffic.
pub const TOTAL_WEIGHT: u32 = 10_000;
/// Name of the arm that serves the established version.
pub const STABLE_ARM: &str = "stable";
/// Name of the arm that serves the candidate version in canary mode.
pub const CANARY_ARM: &str = "canary";
/// Fewest and most arms of an A/B test.
pub const AB_ARMS: std::ops::RangeInclusive<usize> = 2..=4;
/// Tolerance, in percent, on the sum of an A/B test's percents.
const PERCENT_SUM_TOLERANCE: f64 = 0.01;

/// One arm of a deployment: a named version and its share of traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arm {
    pub name: String,
    pub version: u64,
    /// Share of traffic in basis points; the arms of a deployment sum to [`TOTAL_WEIGHT`].
    pub weight: u32,
}

/// How a model's traffic is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One arm, "stable", takes all traffic.
    Stable,
    /// Arms "stable" and "canary".
    Canary,
    /// 2–4 operator-named arms; the first is the control.
    #[serde(rename = "ab")]
    AB,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Stable => "stable",
            Mode::Canary => "canary",
            Mode::AB => "ab",
        })
    }
}

/// Which versions of one model take traffic, in what share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub model: String,
    pub mode: Mode,
    /// Stable: one arm "stable"; Canary: "stable" then "canary"; AB: operator-named arms, the
    /// first one the control.
    pub arms: Vec<Arm>,
    /// Versions rolled back: the version policy does not load them again until a deployment
    /// names them explicitly.
    #[serde(default)]
    pub retired: BTreeSet<u64>,
}

/// Why a deployment change is refused. `Conflict`: the change does not fit the deployment's
/// current state (e.g. a canary is already running). `Invalid`: the change's arguments are wrong
/// whatever the state (a percent out of range, a bad arm name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

/// The routing key of a subject (e.g. a user id) for a model: FNV-1a 64 of
/// `model + "\0" + subject`, then the MurmurHash3 finaliser so that similar subjects spread over
/// the whole range. Fixed: identical across processes, runs and platforms.
pub fn route_key(model: &str, subject: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in model.bytes().chain(std::iter::once(0)).chain(subject.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A percent as basis points: rounded, at least 1.
fn basis_points(percent: f64) -> u32 {
    ((percent * 100.0).round() as u32).max(1)
}

/// Basis points as a percent for people: "90", "10.5", "0.01".
fn percent_text(weight: u32) -> String {
    if weight.is_multiple_of(100) {
        (weight / 100).to_string()
    } else {
        let text = format!("{}.{:02}", weight / 100, weight % 100);
        text.trim_end_matches('0').to_string()
    }
}

/// Checks an A/B arm name: 1–32 characters of `[A-Za-z0-9_-]`.
fn check_arm_name(name: &str) -> Result<(), DeployError> {
    let ok =
        (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DeployError::Invalid(format!(
            "arm name '{name}' is not valid: use 1 to 32 characters of letters, digits, '_' and '-'"
        )))
    }
}

impl Deployment {
    /// All traffic to `version`.
    pub fn stable(model: impl Into<String>, version: u64) -> Deployment {
        Deployment {
            model: model.into(),
            mode: Mode::Stable,
            arms: vec![Arm { name: STABLE_ARM.into(), version, weight: TOTAL_WEIGHT }],
            retired: BTreeSet::new(),
        }
    }

    /// The version of the stable (or control) arm: the first arm's.
    pub fn stable_version(&self) -> u64 {
        self.arms.first().map_or(0, |a| a.version)
    }

    /// The canary arm, in canary mode.
    pub fn canary(&self) -> Option<&Arm> {
        match self.mode {
            Mode::Canary => self.arms.iter().find(|a| a.name == CANARY_ARM),
            Mode::Stable | Mode::AB => None,
        }
    }

    /// Every version an arm names.
    pub fn versions(&self) -> BTreeSet<u64> {
        self.arms.iter().map(|a| a.version).collect()
    }

    /// The arm serving `version`, if any.
    pub fn arm_of(&self, version: u64) -> Option<&Arm> {
        self.arms.iter().find(|a| a.version == version)
    }

    /// The arm named `name`, if any.
    pub fn arm(&self, name: &str) -> Option<&Arm> {
        self.arms.iter().find(|a| a.name == name)
    }

    /// The share of traffic of the arm named `arm`, in percent.
    pub fn percent(&self, arm: &str) -> Option<f64> {
        self.arm(arm).map(|a| f64::from(a.weight) / 100.0)
    }

    /// For people: "stable v2 90%, canary v3 10%".
    pub fn describe(&self) -> String {
        self.to_string()
    }

    /// The arm for a request key (see [`route_key`]): `key % 10_000` walks the cumulative
    /// weights, so the same key always gets the same arm while the weights stay the same.
    ///
    /// Every deployment the registry holds passed [`Deployment::validate`] and has at least one
    /// arm; this panics on a deployment without arms.
    pub fn pick(&self, key: u64) -> &Arm {
        let point = (key % u64::from(TOTAL_WEIGHT)) as u32;
        let mut cumulative = 0u32;
        for arm in &self.arms {
            cumulative = cumulative.saturating_add(arm.weight);
            if point < cumulative {
                return arm;
            }
        }
        // Weights that do not reach the total (not a valid deployment): the control takes the rest.
        &self.arms[0]
    }

    /// The arms as "stable v2 90%, canary v3 10%".
    fn arms_text(&self) -> String {
        let arms: Vec<String> =
            self.arms.iter().map(|a| format!("{} v{} {}%", a.name, a.version, percent_text(a.weight))).collect();
        arms.join(", ")
    }

    /// The refusal when a change needs stable mode and the deployment is not in it.
    fn busy(&self) -> DeployError {
        let model = &self.model;
        match (self.mode, self.canary()) {
            (Mode::Canary, Some(c)) => DeployError::Conflict(format!(
                "model '{model}' already has canary version {} at {}%; promote or roll it back first",
                c.version,
                percent_text(c.weight)
            )),
            _ => DeployError::Conflict(format!(
                "model '{model}' is running an A/B test ({}); promote an arm or roll it back first",
                self.arms_text()
            )),
        }
    }

    /// The refusal of promote / rollback in stable mode.
    fn idle(&self, action: &str) -> DeployError {
        DeployError::Conflict(format!(
            "model '{}' has nothing to {action}: it serves stable version {} only",
            self.model,
            self.stable_version()
        ))
    }

    /// Starts a canary: `version` takes `percent` of traffic (0 < percent < 100), the stable
    /// version the rest. Only from stable mode. Un-retires `version`.
    pub fn start_canary(&self, version: u64, percent: f64) -> Result<Deployment, DeployError> {
        if self.mode != Mode::Stable {
            return Err(self.busy());
        }
        let weight = canary_weight(percent)?;
        let stable = self.stable_version();
        if version == stable {
            return Err(DeployError::Invalid(format!(
                "version {version} is already the stable version of model '{}'; a canary needs another version",
                self.model
            )));
        }
        let mut retired = self.retired.clone();
        retired.remove(&version);
        Ok(Deployment {
            model: self.model.clone(),
            mode: Mode::Canary,
            arms: vec![
                Arm { name: STABLE_ARM.into(), version: stable, weight: TOTAL_WEIGHT - weight },
                Arm { name: CANARY_ARM.into(), version, weight },
            ],
            retired,
        })
    }

    /// Changes the canary's share of traffic. Only in canary mode.
    pub fn set_canary_percent(&self, percent: f64) -> Result<Deployment, DeployError> {
        let Some(canary) = self.canary() else {
            return Err(DeployError::Conflict(format!(
                "model '{}' has no canary ({} mode: {}); start a canary first",
                self.model,
                self.mode,
                self.arms_text()
            )));
        };
        let weight = canary_weight(percent)?;
        let canary_version = canary.version;
        Ok(Deployment {
            model: self.model.clone(),
            mode: Mode::Canary,
            arms: vec![
                Arm { name: STABLE_ARM.into(), version: self.stable_version(), weight: TOTAL_WEIGHT - weight },
                Arm { name: CANARY_ARM.into(), version: canary_version, weight },
            ],
            retired: self.retired.clone(),
        })
    }

    /// Starts an A/B test of 2–4 arms `(name, version, percent)`; the first arm is the control.
    /// Percents are > 0 and sum to 100 (± 0.01); they become basis points summing to exactly
    /// 10 000, the rounding remainder going to the control. Only from stable mode. Un-retires
    /// every arm's version.
    pub fn start_ab(&self, arms: Vec<(String, u64, f64)>) -> Result<Deployment, DeployError> {
        if self.mode != Mode::Stable {
            return Err(self.busy());
        }
        if !AB_ARMS.contains(&arms.len()) {
            return Err(DeployError::Invalid(format!(
                "an A/B test needs {} to {} arms, got {}",
                AB_ARMS.start(),
                AB_ARMS.end(),
                arms.len()
            )));
        }
        let mut sum = 0.0;
        for (i, (name, version, percent)) in arms.iter().enumerate() {
            check_arm_name(name)?;
            if let Some((other, _, _)) = arms[..i].iter().find(|(n, _, _)| n == name) {
                return Err(DeployError::Invalid(format!(
                    "arm name '{other}' is used twice; arm names must be unique"
                )));
            }
            if let Some((other, _, _)) = arms[..i].iter().find(|(_, v, _)| v == version) {
                return Err(DeployError::Invalid(format!(
                    "arms '{other}' and '{name}' both name version {version}; each arm needs its own version"
                )));
            }
            if !percent.is_finite() || *percent <= 0.0 {
                return Err(DeployError::Invalid(format!("arm '{name}' has percent {percent}; it must be > 0")));
            }
            sum += percent;
        }
        if (sum - 100.0).abs() > PERCENT_SUM_TOLERANCE {
            return Err(DeployError::Invalid(format!("the arms' percents sum to {sum}, not 100")));
        }
        let mut weights: Vec<i64> = arms.iter().map(|(_, _, p)| i64::from(basis_points(*p))).collect();
        let remainder = i64::from(TOTAL_WEIGHT) - weights.iter().sum::<i64>();
        weights[0] += remainder;
        if weights[0] < 1 {
            return Err(DeployError::Invalid(format!(
                "control arm '{}' gets no traffic once the other arms are rounded to basis points; give it more",
                arms[0].0
            )));
        }
        let mut retired = self.retired.clone();
        let arms: Vec<Arm> = arms
            .into_iter()
            .zip(weights)
            .map(|((name, version, _), weight)| {
                retired.remove(&version);
                Arm { name, version, weight: weight as u32 }
            })
            .collect();
        Ok(Deployment { model: self.model.clone(), mode: Mode::AB, arms, retired })
    }

    /// Makes one arm the sole stable arm and returns its version: the canary in canary mode
    /// (`arm` may be omitted or "canary"), the named arm in A/B mode (required). Versions that
    /// lose traffic are not retired: they can be deployed again.
    pub fn promote(&self, arm: Option<&str>) -> Result<(Deployment, u64), DeployError> {
        let names = || self.arms.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ");
        let winner = match (self.mode, arm) {
            (Mode::Stable, _) => return Err(self.idle("promote")),
            (Mode::Canary, None | Some(CANARY_ARM)) => self.canary().map(|a| a.version),
            (Mode::Canary, Some(other)) => {
                return Err(DeployError::Invalid(format!(
                    "model '{}' is in canary mode: only the 'canary' arm can be promoted, not '{other}'",
                    self.model
                )));
            }
            (Mode::AB, None) => {
                return Err(DeployError::Invalid(format!(
                    "model '{}' is running an A/B test; name the arm to promote (one of: {})",
                    self.model,
                    names()
                )));
            }
            (Mode::AB, Some(name)) => match self.arm(name) {
                Some(a) => Some(a.version),
                None => {
                    return Err(DeployError::Invalid(format!(
                        "model '{}' has no arm '{name}'; its arms are: {}",
                        self.model,
                        names()
                    )));
                }
            },
        };
        let Some(version) = winner else {
            return Err(DeployError::Conflict(format!(
                "model '{}' is in canary mode without a canary arm; deploy it again",
                self.model
            )));
        };
        let mut next = Deployment::stable(self.model.clone(), version);
        next.retired = self.retired.clone();
        next.retired.remove(&version);
        Ok((next, version))
    }

    /// Returns all traffic to the stable (control) arm and retires every other arm's version,
    /// which it returns.
    pub fn rollback(&self) -> Result<(Deployment, Vec<u64>), DeployError> {
        if self.mode == Mode::Stable {
            return Err(self.idle("roll back"));
        }
        let stable = self.stable_version();
        let dropped: Vec<u64> = self.arms.iter().skip(1).map(|a| a.version).filter(|v| *v != stable).collect();
        let mut next = Deployment::stable(self.model.clone(), stable);
        next.retired = self.retired.clone();
        next.retired.extend(&dropped);
        Ok((next, dropped))
    }

    /// Checks a deployment built elsewhere (persisted state, an API body): the arms fit the mode,
    /// names are valid and unique, versions distinct and not retired, weights ≥ 1 summing to
    /// 10 000.
    pub fn validate(&self) -> Result<(), DeployError> {
        let model = &self.model;
        let bad = |msg: String| Err(DeployError::Invalid(format!("deployment of model '{model}': {msg}")));
        if model.is_empty() {
            return Err(DeployError::Invalid("a deployment needs a model name".into()));
        }
        let names: Vec<&str> = self.arms.iter().map(|a| a.name.as_str()).collect();
        match self.mode {
            Mode::Stable if names != [STABLE_ARM] => {
                return bad(format!("stable mode has exactly one arm 'stable', got [{}]", names.join(", ")));
            }
            Mode::Canary if names != [STABLE_ARM, CANARY_ARM] => {
                return bad(format!("canary mode has arms 'stable' and 'canary', got [{}]", names.join(", ")));
            }
            Mode::AB if !AB_ARMS.contains(&names.len()) => {
                return bad(format!(
                    "an A/B test has {} to {} arms, got {}",
                    AB_ARMS.start(),
                    AB_ARMS.end(),
                    names.len()
                ));
            }
            _ => {}
        }
        for (i, arm) in self.arms.iter().enumerate() {
            check_arm_name(&arm.name).or_else(|e| bad(e.to_string()))?;
            if self.arms[..i].iter().any(|a| a.name == arm.name) {
                return bad(format!("arm name '{}' is used twice", arm.name));
            }
            if let Some(other) = self.arms[..i].iter().find(|a| a.version == arm.version) {
                return bad(format!("arms '{}' and '{}' both name version {}", other.name, arm.name, arm.version));
            }
            if arm.weight == 0 {
                return bad(format!("arm '{}' has weight 0", arm.name));
            }
            if self.retired.contains(&arm.version) {
                return bad(format!("version {} is both arm '{}' and retired", arm.version, arm.name));
            }
        }
        let total: u64 = self.arms.iter().map(|a| u64::from(a.weight)).sum();
        if total != u64::from(TOTAL_WEIGHT) {
            return bad(format!("arm weights sum to {total} basis points, not {TOTAL_WEIGHT}"));
        }
        Ok(())
    }
}

/// A canary percent as basis points, checked to lie strictly between 0 and 100.
fn canary_weight(percent: f64) -> Result<u32, DeployError> {
    if !(percent.is_finite() && percent > 0.0 && percent < 100.0) {
        return Err(DeployError::Invalid(format!(
            "canary percent must be between 0 and 100 (both excluded), got {percent}"
        )));
    }
    Ok(basis_points(percent).min(TOTAL_WEIGHT - 1))
}

impl fmt::Display for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arms_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary() -> Deployment {
        Deployment::stable("ranker", 2).start_canary(3, 10.0).unwrap()
    }

    fn ab() -> Deployment {
        Deployment::stable("ranker", 2)
            .start_ab(vec![("control".into(), 2, 50.0), ("b".into(), 3, 30.0), ("c".into(), 4, 20.0)])
            .unwrap()
    }

    fn conflict(r: Result<impl fmt::Debug, DeployError>) -> String {
        match r {
            Err(DeployError::Conflict(m)) => m,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    fn invalid(r: Result<impl fmt::Debug, DeployError>) -> String {
        match r {
            Err(DeployError::Invalid(m)) => m,
            other => panic!("expected an invalid-argument error, got {other:?}"),
        }
    }

    #[test]
    fn stable_has_one_arm_with_all_traffic() {
        let d = Deployment::stable("ranker", 2);
        assert_eq!(d.mode, Mode::Stable);
        assert_eq!(d.stable_version(), 2);
        assert_eq!(d.canary(), None);
        assert_eq!(d.versions(), BTreeSet::from([2]));
        assert_eq!(d.percent("stable"), Some(100.0));
        assert_eq!(d.describe(), "stable v2 100%");
        assert_eq!(d.pick(12345).version, 2);
        d.validate().unwrap();
    }

    #[test]
    fn canary_starts_from_stable_and_changes_share() {
        let d = canary();
        assert_eq!(d.mode, Mode::Canary);
        assert_eq!(d.stable_version(), 2);
        assert_eq!(d.canary(), Some(&Arm { name: "canary".into(), version: 3, weight: 1000 }));
        assert_eq!(d.arms[0].weight, 9000);
        assert_eq!(d.to_string(), "stable v2 90%, canary v3 10%");
        assert_eq!(d.versions(), BTreeSet::from([2, 3]));
        assert_eq!(d.arm_of(3).map(|a| a.name.as_str()), Some("canary"));
        assert_eq!(d.arm_of(9), None);
        d.validate().unwrap();

        let d = d.set_canary_percent(25.5).unwrap();
        assert_eq!(d.describe(), "stable v2 74.5%, canary v3 25.5%");
        assert_eq!(d.percent("canary"), Some(25.5));
        // Tiny shares round to at least one basis point; large ones leave the stable one.
        let tiny = Deployment::stable("m", 1).start_canary(2, 0.001).unwrap();
        assert_eq!(tiny.canary().unwrap().weight, 1);
        assert_eq!(tiny.describe(), "stable v1 99.99%, canary v2 0.01%");
        let huge = Deployment::stable("m", 1).start_canary(2, 99.999).unwrap();
        assert_eq!(huge.arms[0].weight, 1);
        huge.validate().unwrap();
    }

    #[test]
    fn canary_un_retires_its_version() {
        let (rolled, retired) = canary().rollback().unwrap();
        assert_eq!(retired, vec![3]);
        assert!(rolled.retired.contains(&3));
        let again = rolled.start_canary(3, 5.0).unwrap();
        assert!(again.retired.is_empty());
        again.validate().unwrap();
    }

    #[test]
    fn canary_refusals_say_why() {
        let m = conflict(canary().start_canary(4, 10.0));
        assert_eq!(m, "model 'ranker' already has canary version 3 at 10%; promote or roll it back first");
        let m = conflict(ab().start_canary(5, 10.0));
        assert!(m.contains("A/B test") && m.contains("control v2 50%"), "{m}");
        for bad in [0.0, 100.0, -1.0, 150.0, f64::NAN, f64::INFINITY] {
            let m = invalid(Deployment::stable("ranker", 2).start_canary(3, bad));
            assert!(m.contains("canary percent") && m.contains("between 0 and 100"), "{m}");
        }
        let m = invalid(Deployment::stable("ranker", 2).start_canary(2, 10.0));
        assert!(m.contains("version 2 is already the stable version"), "{m}");
        let m = conflict(Deployment::stable("ranker", 2).set_canary_percent(20.0));
        assert!(m.contains("no canary") && m.contains("start a canary"), "{m}");
        let m = conflict(ab().set_canary_percent(20.0));
        assert!(m.contains("no canary"), "{m}");
        let m = invalid(canary().set_canary_percent(100.0));
        assert!(m.contains("canary percent"), "{m}");
    }

    #[test]
    fn ab_splits_in_basis_points_with_the_remainder_to_the_control() {
        let d = ab();
        assert_eq!(d.mode, Mode::AB);
        assert_eq!(d.stable_version(), 2);
        assert_eq!(d.canary(), None);
        assert_eq!(d.arms.iter().map(|a| a.weight).collect::<Vec<_>>(), [5000, 3000, 2000]);
        assert_eq!(d.describe(), "control v2 50%, b v3 30%, c v4 20%");
        d.validate().unwrap();

        let thirds = Deployment::stable("m", 1)
            .start_ab(vec![("a".into(), 1, 33.34), ("b".into(), 2, 33.33), ("c".into(), 3, 33.33)])
            .unwrap();
        assert_eq!(thirds.arms.iter().map(|a| a.weight).collect::<Vec<_>>(), [3334, 3333, 3333]);
        let rounded = Deployment::stable("m", 1)
            .start_ab(vec![("a".into(), 1, 33.333), ("b".into(), 2, 33.333), ("c".into(), 3, 33.333)])
            .unwrap();
        assert_eq!(rounded.arms.iter().map(|a| a.weight).collect::<Vec<_>>(), [3334, 3333, 3333]);
        assert_eq!(rounded.arms.iter().map(|a| a.weight).sum::<u32>(), TOTAL_WEIGHT);
        // Four arms, names of every allowed character.
        let four = Deployment::stable("m", 1)
            .start_ab(vec![
                ("A-1".into(), 1, 25.0),
                ("b_2".into(), 2, 25.0),
                ("c".into(), 3, 25.0),
                ("x".repeat(32), 4, 25.0),
            ])
            .unwrap();
        four.validate().unwrap();
    }

    #[test]
    fn ab_refusals_say_why() {
        let stable = Deployment::stable("ranker", 2);
        let two = |a: (&str, u64, f64), b: (&str, u64, f64)| {
            stable.start_ab(vec![(a.0.into(), a.1, a.2), (b.0.into(), b.1, b.2)])
        };
        let m = invalid(stable.start_ab(vec![("a".into(), 2, 100.0)]));
        assert!(m.contains("2 to 4 arms, got 1"), "{m}");
        let five = (1..=5).map(|i| (format!("a{i}"), i, 20.0)).collect();
        assert!(invalid(stable.start_ab(five)).contains("got 5"));
        let m = invalid(two(("a", 2, 50.0), ("a", 3, 50.0)));
        assert!(m.contains("'a' is used twice"), "{m}");
        let m = invalid(two(("a", 2, 50.0), ("b", 2, 50.0)));
        assert!(m.contains("both name version 2"), "{m}");
        let long = "x".repeat(33);
        for name in ["", "has space", "slash/", "é", long.as_str()] {
            let m = invalid(two(("a", 2, 50.0), (name, 3, 50.0)));
            assert!(m.contains("not valid") && m.contains("1 to 32"), "{name}: {m}");
        }
        let m = invalid(two(("a", 2, 100.0), ("b", 3, 0.0)));
        assert!(m.contains("arm 'b' has percent 0") && m.contains("> 0"), "{m}");
        let m = invalid(two(("a", 2, 60.0), ("b", 3, 50.0)));
        assert!(m.contains("sum to 110") && m.contains("not 100"), "{m}");
        two(("a", 2, 50.005), ("b", 3, 50.0)).unwrap();
        let m = conflict(canary().start_ab(vec![("a".into(), 2, 50.0), ("b".into(), 3, 50.0)]));
        assert!(m.contains("already has canary version 3"), "{m}");
        let m = conflict(ab().start_ab(vec![("a".into(), 2, 50.0), ("b".into(), 3, 50.0)]));
        assert!(m.contains("A/B test") && m.contains("promote an arm or roll it back"), "{m}");
    }

    #[test]
    fn promote_makes_the_winner_stable() {
        let (d, v) = canary().promote(None).unwrap();
        assert_eq!((d.clone(), v), (Deployment::stable("ranker", 3), 3));
        assert_eq!(canary().promote(Some("canary")).unwrap().1, 3);
        let (d, v) = ab().promote(Some("b")).unwrap();
        assert_eq!(v, 3);
        assert_eq!(d.mode, Mode::Stable);
        assert_eq!(d.describe(), "stable v3 100%");
        assert!(d.retired.is_empty(), "promotion retires nothing");
    }

    #[test]
    fn promote_refusals_say_why() {
        let m = conflict(Deployment::stable("ranker", 2).promote(None));
        assert_eq!(m, "model 'ranker' has nothing to promote: it serves stable version 2 only");
        let m = invalid(ab().promote(None));
        assert!(m.contains("name the arm to promote") && m.contains("control, b, c"), "{m}");
        let m = invalid(ab().promote(Some("zzz")));
        assert!(m.contains("no arm 'zzz'"), "{m}");
        let m = invalid(canary().promote(Some("stable")));
        assert!(m.contains("only the 'canary' arm"), "{m}");
    }

    #[test]
    fn rollback_returns_to_the_control_and_retires_the_rest() {
        let (d, retired) = canary().rollback().unwrap();
        assert_eq!(retired, vec![3]);
        assert_eq!(d.mode, Mode::Stable);
        assert_eq!(d.stable_version(), 2);
        assert_eq!(d.retired, BTreeSet::from([3]));
        d.validate().unwrap();
        let (d, retired) = ab().rollback().unwrap();
        assert_eq!(retired, vec![3, 4]);
        assert_eq!(d.describe(), "stable v2 100%");
        assert_eq!(d.retired, BTreeSet::from([3, 4]));
        let m = conflict(Deployment::stable("ranker", 2).rollback());
        assert_eq!(m, "model 'ranker' has nothing to roll back: it serves stable version 2 only");
    }

    #[test]
    fn validate_refuses_malformed_deployments() {
        let mut d = canary();
        d.arms[1].weight = 5;
        assert!(invalid(d.validate()).contains("sum to 9005"));
        let mut d = canary();
        d.arms[1].name = "other".into();
        assert!(invalid(d.validate()).contains("canary mode has arms"));
        let mut d = Deployment::stable("m", 1);
        d.arms.clear();
        assert!(invalid(d.validate()).contains("exactly one arm"));
        let mut d = canary();
        d.retired.insert(3);
        assert!(invalid(d.validate()).contains("both arm 'canary' and retired"));
        let mut d = ab();
        d.arms[2].version = 2;
        assert!(invalid(d.validate()).contains("both name version 2"));
        let mut d = ab();
        d.arms[1].weight = 0;
        assert!(invalid(d.validate()).contains("weight 0"));
    }

    #[test]
    fn serialises_with_snake_case_modes() {
        let json = serde_json::to_value(ab()).unwrap();
        assert_eq!(json["mode"], "ab");
        assert_eq!(json["arms"][1], serde_json::json!({"name": "b", "version": 3, "weight": 3000}));
        assert_eq!(serde_json::to_value(canary()).unwrap()["mode"], "canary");
        let (rolled, _) = canary().rollback().unwrap();
        let text = serde_json::to_string(&rolled).unwrap();
        assert_eq!(serde_json::from_str::<Deployment>(&text).unwrap(), rolled);
        let without_retired: Deployment = serde_json::from_str(
            r#"{"model":"m","mode":"stable","arms":[{"name":"stable","version":1,"weight":10000}]}"#,
        )
        .unwrap();
        assert_eq!(without_retired, Deployment::stable("m", 1));
    }

    #[test]
    fn pick_walks_cumulative_weights() {
        let d = canary(); // stable 9000, canary 1000
        assert_eq!(d.pick(0).name, "stable");
        assert_eq!(d.pick(8999).name, "stable");
        assert_eq!(d.pick(9000).name, "canary");
        assert_eq!(d.pick(9999).name, "canary");
        assert_eq!(d.pick(10_000).name, "stable");
        assert_eq!(d.pick(u64::MAX).name, if u64::MAX % 10_000 < 9000 { "stable" } else { "canary" });
    }

    #[test]
    fn route_key_is_fixed_and_separates_models() {
        // Pinned values: the key must not change across processes, runs or releases.
        assert_eq!(route_key("ranker", "user-1"), route_key("ranker", "user-1"));
        assert_ne!(route_key("ranker", "user-1"), route_key("ranker", "user-2"));
        assert_ne!(route_key("ranker", "user-1"), route_key("tower", "user-1"));
        assert_ne!(route_key("ab", "c"), route_key("a", "bc"), "the separator keeps model and subject apart");
        assert_eq!(route_key("ranker", "user-1"), PINNED_RANKER_USER_1);
    }

    /// FNV-1a 64 of "ranker\0user-1" through the MurmurHash3 finaliser, computed independently.
    const PINNED_RANKER_USER_1: u64 = 0x612e_3a18_7865_18bd;

    #[test]
    fn split_over_many_users_matches_the_weights_and_is_sticky() {
        let d = ab(); // 50 / 30 / 20
        let n = 100_000u32;
        let mut counts = [0u32; 3];
        for i in 0..n {
            let subject = format!("user-{i}");
            let arm = d.pick(route_key("ranker", &subject));
            let again = d.pick(route_key("ranker", &subject));
            assert_eq!(arm, again, "user {i} must stay on one arm");
            let pos = d.arms.iter().position(|a| a == arm).unwrap();
            counts[pos] += 1;
        }
        for (arm, count) in d.arms.iter().zip(counts) {
            let share = f64::from(count) / f64::from(n) * 100.0;
            let want = f64::from(arm.weight) / 100.0;
            assert!((share - want).abs() <= 1.0, "arm {} got {share:.2}%, weight {want}%", arm.name);
        }
        // A 10 % canary over sequential ids, and independence between models: the users who get
        // the canary of one model are not the ones who get it of another.
        let c = canary();
        let (mut on_a, mut on_both) = (0u32, 0u32);
        for i in 0..n {
            let subject = i.to_string();
            let a = c.pick(route_key("ranker", &subject)).name == "canary";
            let b = c.pick(route_key("tower", &subject)).name == "canary";
            on_a += u32::from(a);
            on_both += u32::from(a && b);
        }
        let share = f64::from(on_a) / f64::from(n) * 100.0;
        assert!((share - 10.0).abs() <= 1.0, "canary got {share:.2}%");
        let both = f64::from(on_both) / f64::from(n) * 100.0;
        assert!((both - 1.0).abs() <= 0.5, "independent 10% splits overlap on ~1% of users, got {both:.2}%");
    }
}
